"""The lab's distilled model, registered with ``rdpt_core`` through the ``rdpt_core.models``
entry point (pyproject.toml): the Gemma base plus the LoRA adapter committed in ``demo/lab/``."""

from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent.parent / "demo" / "lab"
MODELS = {"gemma3-270m-distilled": {"base": "gemma3-270m", "adapter": str(LAB_DIR / "adapter")}}
