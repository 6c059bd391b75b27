"""The lab's trained models, registered with ``rdpt_core`` through the ``rdpt_core.models``
entry point (pyproject.toml): a packaged base plus a LoRA adapter committed in the repository.

* ``smollm2-135m-steps-teacher`` / ``gemma3-270m-steps-distilled`` – the lab lineage's teacher
  and distilled student (``demo/steps/``, docs/lab.md), offered once their adapters exist;
* ``smollm2-135m-narrative-teacher`` / ``gemma3-270m-mixed-distilled`` – the two-teacher
  lineage's second teacher and its student distilled from both teachers (``demo/ensemble/``);
* ``gemma3-270m-distilled`` – the distilled student of an earlier, weaker lab lineage (dropped),
  kept because the bundled MATH500 subset (``data/math500_subset/``) was scored with it.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS_DIR = ROOT / "demo" / "steps"
ENSEMBLE_DIR = ROOT / "demo" / "ensemble"
_TRAINED = {
    "smollm2-135m-steps-teacher": {"base": "smollm2-135m-instruct", "adapter": str(STEPS_DIR / "teacher_adapter")},
    "gemma3-270m-steps-distilled": {"base": "gemma3-270m", "adapter": str(STEPS_DIR / "distilled_adapter")},
    "smollm2-135m-narrative-teacher": {"base": "smollm2-135m-instruct",
                                       "adapter": str(ENSEMBLE_DIR / "narrative_teacher_adapter")},
    "gemma3-270m-mixed-distilled": {"base": "gemma3-270m", "adapter": str(ENSEMBLE_DIR / "mixed_distilled_adapter")},
}
# A model is offered once its adapter has been trained (`make lab`, `make ensemble-lab`).
MODELS = {"gemma3-270m-distilled": {"base": "gemma3-270m",
                                    "adapter": str(ROOT / "data" / "math500_subset" / "adapter")}} | {
    name: entry for name, entry in _TRAINED.items() if (Path(entry["adapter"]) / "adapter_config.json").exists()}
