"""The lab's trained models, registered with ``rdpt_core`` through the ``rdpt_core.models``
entry point (pyproject.toml): a packaged base plus a LoRA adapter committed in the repository.

* ``smollm2-135m-steps-teacher`` / ``gemma3-270m-steps-distilled`` – the lab lineage's teacher
  and distilled student (``demo/steps/``, docs/lab.md), offered once their adapters exist;
* ``gemma3-270m-distilled`` – the distilled student of an earlier, weaker lab lineage (dropped),
  kept because the bundled MATH500 subset (``data/math500_subset/``) was scored with it.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS_DIR = ROOT / "demo" / "steps"
_STEPS = {
    "smollm2-135m-steps-teacher": {"base": "smollm2-135m-instruct", "adapter": str(STEPS_DIR / "teacher_adapter")},
    "gemma3-270m-steps-distilled": {"base": "gemma3-270m", "adapter": str(STEPS_DIR / "distilled_adapter")},
}
# A model is offered once its adapter has been trained (`python -m rdpt_lab.lineage`).
MODELS = {"gemma3-270m-distilled": {"base": "gemma3-270m",
                                    "adapter": str(ROOT / "data" / "math500_subset" / "adapter")}} | {
    name: entry for name, entry in _STEPS.items() if (Path(entry["adapter"]) / "adapter_config.json").exists()}
