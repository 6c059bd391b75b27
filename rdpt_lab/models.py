"""The lab's trained models, registered with ``rdpt_core`` through the ``rdpt_core.models``
entry point (pyproject.toml): a packaged base plus a LoRA adapter committed under ``demo/``.

* ``gemma3-270m-distilled`` – the first lineage's distilled student (``demo/lab/``);
* ``smollm2-135m-steps-teacher`` / ``gemma3-270m-steps-distilled`` – the steps lineage's teacher
  and distilled student (``demo/steps/``, docs/lab.md).
"""

from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent.parent / "demo" / "lab"
STEPS_DIR = LAB_DIR.parent / "steps"
_STEPS = {
    "smollm2-135m-steps-teacher": {"base": "smollm2-135m-instruct", "adapter": str(STEPS_DIR / "teacher_adapter")},
    "gemma3-270m-steps-distilled": {"base": "gemma3-270m", "adapter": str(STEPS_DIR / "distilled_adapter")},
}
# A model is offered once its adapter has been trained (`python -m rdpt_lab.lineage`).
MODELS = {"gemma3-270m-distilled": {"base": "gemma3-270m", "adapter": str(LAB_DIR / "adapter")}} | {
    name: entry for name, entry in _STEPS.items() if (Path(entry["adapter"]) / "adapter_config.json").exists()}
