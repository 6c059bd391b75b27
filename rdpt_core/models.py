"""Model specifications, the packaged model zoo, and memory estimates before loading.

A :class:`ModelSpec` says *what* to load (zoo name, hub id or local dir) and *how* (dtype,
bitsandbytes quantization, device, how to render the context). Loading itself lives in the
backends (``rdpt_core.backends``); nothing here imports torch at module import time.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import logging
import os
import re
import zipfile
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
HUB_TIMEOUT_S = 5.0  # one metadata request to the hub; never the library's minute of retries


class ModelNotFoundError(FileNotFoundError):
    """No model by that name: not packaged, no such directory, or not on (or not reachable on)
    the hub. The message names what was asked for and suggests close packaged names."""


class CheckpointError(ValueError):
    """A model that exists but cannot be used as it is (no config.json, missing or truncated
    weights, code it wants to run, a chat template that does not finish). The message names the
    model or file and says what to do."""


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
    adapter_revision: str | None = None  # hub adapter's commit (pinned by the backend)
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        check_model_name(self.path, "model path")
        if self.adapter is not None:
            check_model_name(self.adapter, "adapter")
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


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def check_model_name(name: str, what: str = "model") -> None:
    """Refuse a name no file system or hub call should see: empty, or with a control character
    (NUL cuts a C path short, a newline forges log lines)."""
    if not name.strip():
        raise ValueError(f"no {what} given: choose a packaged model, a hub id or a local directory")
    if _CONTROL_CHARS.search(name):
        raise ValueError(f"{what} {name!r} contains a control character (NUL, newline, tab…); "
                         "give a packaged model name, a hub id (owner/name) or a directory path")


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
    return (_is_explicit_path(name_or_path) or name_or_path.count("/") > 1
            or (os.sep != "/" and os.sep in name_or_path))


def _is_explicit_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", "\\")) or name in (".", "..")


def _is_hub_id(name: str) -> bool:
    """huggingface_hub's own rule: "name" or "owner/name", letters, digits, ``-_.``, ≤ 96 chars."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def close_model_names(name: str) -> list[str]:
    """Named models spelled like ``name`` (for "did you mean"), closest first."""
    named = list(zoo())
    by_lower = {n.lower(): n for n in named}
    return [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.75)]


def _did_you_mean(name: str) -> str:
    close = close_model_names(name.rsplit("/", 1)[-1])
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _local_dir(name: str) -> Path:
    """The directory a path-like name names, or a clear error; touches nothing else."""
    try:
        local = Path(name).expanduser()
    except RuntimeError as err:  # "~someone" without such a user
        raise ModelNotFoundError(f"local model directory not found: {name} ({err})") from None
    try:
        is_dir = local.is_dir()
        exists = is_dir or local.exists()
    except OSError as err:  # a name too long for the file system, a permission denied on the way
        raise ModelNotFoundError(f"local model directory not found: {local} ({err.strerror})") from None
    shown = name if str(local) == name else f"{name} ({local.absolute()})"
    if not exists:
        raise ModelNotFoundError(f"local model directory not found: {shown}")
    if not is_dir:
        raise NotADirectoryError(f"{shown} is a file; give the checkpoint's directory")
    return local


def resolve_spec(name_or_path: str, **overrides: Any) -> ModelSpec:
    """A zoo name, a local directory or a hub id → :class:`ModelSpec` (``overrides`` win).

    A name that can only be a path must be an existing directory: a missing one says "not
    found" here rather than failing later as a malformed hub id. A name with ``..`` that is not
    written as a path (``owner/../../x``) is refused before any file access, and a bare name
    close to a packaged one is taken for a typo (a hub id is ``owner/name``). Nothing here
    contacts the hub; the backend does (see :func:`pin_revision`)."""
    name_or_path = name_or_path.strip()
    check_model_name(name_or_path)
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
    if not _is_explicit_path(name_or_path) and ".." in Path(name_or_path).parts:
        raise ValueError(
            f"model {name_or_path!r} is neither a hub id (owner/name, without '..') nor a directory "
            "path; to mean a directory write it as ./… or an absolute path"
        )
    if looks_like_path(name_or_path) or is_local(name_or_path):  # transformers reads a dir first too
        name_or_path = str(_local_dir(name_or_path))
    elif not _is_hub_id(name_or_path):
        raise ModelNotFoundError(
            f"unknown model {name_or_path!r}: not a packaged model ({', '.join(named)}), not a hub "
            f"id (owner/name) and not a local directory.{_did_you_mean(name_or_path)}"
        )
    elif "/" not in name_or_path and close_model_names(name_or_path):
        raise ModelNotFoundError(
            f"unknown model {name_or_path!r}: not a packaged model.{_did_you_mean(name_or_path)} "
            "(A hub id is owner/name; a local directory is written ./dir or /path/to/dir.)"
        )
    return ModelSpec(path=name_or_path, name=overrides.pop("name", name_or_path), **overrides)


# ---- hub ids: pin the commit, fail fast when the hub cannot answer -----------------------------
_COMMIT = re.compile(r"[0-9a-f]{40}")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE, read now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return env or bool(constants.HF_HUB_OFFLINE)


def _cached_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit of ``repo_id@revision`` in the local Hugging Face cache, if it is there."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json", revision=revision or "main")
    if isinstance(found, str) and _COMMIT.fullmatch(Path(found).parent.name):
        return Path(found).parent.name
    return None


def _not_on_hub(repo_id: str, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"model {repo_id!r}: {why}.{_did_you_mean(repo_id)}")


def hub_commit(repo_id: str, revision: str | None) -> tuple[str, bool]:
    """The commit sha ``repo_id@revision`` stands for now, and whether the hub answered.

    Scores are filed under the commit, so an update of ``main`` is a new model to the cache.
    Offline (HF_HUB_OFFLINE) or when the hub does not answer within :data:`HUB_TIMEOUT_S`, the
    commit already in the local cache is used (logged); with none there it fails at once."""
    if revision is not None and _COMMIT.fullmatch(revision):
        return revision, not hub_offline()
    at = f"{repo_id}@{revision or 'main'}"
    if hub_offline():
        cached = _cached_commit(repo_id, revision)
        if cached is None:
            raise _not_on_hub(repo_id, "not in the local Hugging Face cache, and the hub is offline "
                                       "(HF_HUB_OFFLINE=1); download it once with the hub reachable")
        log.info("hub offline (HF_HUB_OFFLINE): %s is the cached commit %s", at, cached)
        return cached, False
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        sha = HfApi().model_info(repo_id, revision=revision, timeout=HUB_TIMEOUT_S).sha
    except GatedRepoError:
        raise CheckpointError(f"model {repo_id!r} is gated on the hub: accept its terms on its hub page "
                              "and log in (`hf auth login`)") from None
    except RepositoryNotFoundError:
        raise _not_on_hub(repo_id, "no such model on the Hugging Face hub (or it is private: log in "
                                   "with `hf auth login`)") from None
    except RevisionNotFoundError:
        raise _not_on_hub(repo_id, f"the hub has no revision {revision!r} of it") from None
    except Exception as err:  # unreachable: DNS, timeout, proxy, a 5xx (their types vary by version)
        cached = _cached_commit(repo_id, revision)
        if cached is None:
            raise _not_on_hub(repo_id, f"the Hugging Face hub did not answer ({type(err).__name__}: {err}) "
                                       "and it is not in the local cache") from None
        log.warning("hub unreachable (%s); %s is the cached commit %s", err, at, cached)
        return cached, False
    if not sha:
        raise _not_on_hub(repo_id, "the hub reported no commit for it")
    return sha, True


def is_local(location: str) -> bool:
    """An existing directory (what transformers loads from instead of the hub)."""
    try:
        return Path(location).is_dir()
    except (OSError, ValueError):  # a name too long for a path, a NUL: not a directory
        return False


def pin_revision(spec: ModelSpec) -> tuple[ModelSpec, bool]:
    """``spec`` with the hub commits of its model and adapter filled in (local dirs unchanged),
    and whether files may come from the hub (False: from the local cache only, so the loaders
    do not retry an unreachable hub for a minute)."""
    online = True
    changes: dict[str, Any] = {}
    for location, field_name in ((spec.path, "revision"), (spec.adapter, "adapter_revision")):
        if location is None or is_local(location):
            continue
        changes[field_name], reachable = hub_commit(location, getattr(spec, field_name))
        online = online and reachable
    return replace(spec, **changes), online


# ---- local checkpoints: refuse what cannot load, before anything is loaded ---------------------
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
_ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "tekken.json")
_SAFETENSORS_MAX_HEADER = 100_000_000  # the safetensors library's own limit


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON (not UTF-8 text at byte {err.start})") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror})") from None


def _json_object(path: Path) -> dict[str, Any]:
    data = _json_file(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole safetensors file (header only: cheap), or None."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{size} bytes, shorter than a safetensors header"
        n = int.from_bytes(head, "little")
        if n > min(size - 8, _SAFETENSORS_MAX_HEADER):
            return f"header of {n} bytes does not fit in the file's {size} bytes"
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "header is not valid JSON"
    if not isinstance(header, dict):
        return "header is not a JSON object"
    try:
        ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
    except (KeyError, IndexError, TypeError, ValueError):
        return "header has a tensor without data_offsets"
    want = 8 + n + max(ends, default=0)
    if want != size:
        return f"holds {size} bytes, its header describes {want}"
    return None


def _check_weights_file(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"weights file missing: {path}")
    if path.suffix == ".safetensors":
        problem = _safetensors_problem(path)
    else:  # torch.save writes a zip; a truncated zip loses its directory at the end
        with path.open("rb") as f:
            is_zip_start = f.read(2) == b"PK"
        problem = "a truncated zip archive" if is_zip_start and not zipfile.is_zipfile(path) else None
    if problem:
        raise CheckpointError(f"{path} is truncated or corrupt ({problem}); copy or download it again")


def _check_shards(index: Path) -> None:
    """Every shard an index names is a plain file name in the index's directory and is whole."""
    weight_map = _json_object(index).get("weight_map")
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"{index}: no 'weight_map' object")
    for shard in sorted({str(v) for v in weight_map.values()}):
        if Path(shard).name != shard or shard in (".", ".."):
            raise CheckpointError(f"{index}: shard {shard!r} is not a file name in {index.parent}; refused")
        _check_weights_file(index.parent / shard)


def _remote_code(directory: Path) -> dict[str, Any]:
    """Classes a checkpoint asks to import from its own Python files (``auto_map``)."""
    wanted: dict[str, Any] = {}
    for name in ("config.json", "tokenizer_config.json"):
        path = directory / name
        if path.is_file():
            auto_map = _json_object(path).get("auto_map")
            if auto_map:
                wanted[name] = auto_map
    return wanted


def _check_trust(directory: Path, spec: ModelSpec) -> None:
    wanted = _remote_code(directory)
    if wanted and not spec.trust_remote_code:
        where = "; ".join(f"auto_map in {name}: {value}" for name, value in wanted.items())
        raise CheckpointError(
            f"{directory} ships Python code to run ({where}); it was not run. If you trust this "
            "model's code, turn on trust_remote_code for it (the Models page checkbox, or "
            "--trust-remote-code on the command line)"
        )


def _check_model_dir(directory: Path, spec: ModelSpec) -> None:
    if spec.gguf_file:  # config, tokenizer and weights all live in the one GGUF file
        if Path(spec.gguf_file).name != spec.gguf_file:
            raise CheckpointError(f"gguf_file {spec.gguf_file!r} must be a file name inside {directory}")
        _check_weights_file(directory / spec.gguf_file)
        return
    if not (directory / "config.json").is_file():
        raise CheckpointError(f"no config.json in {directory}: not a transformers checkpoint (give the "
                              "directory that holds config.json, the weights and the tokenizer)")
    _json_object(directory / "config.json")
    _check_trust(directory, spec)
    present = [name for name in _WEIGHT_FILES if (directory / name).exists()]
    if not present:
        raise CheckpointError(f"no weights in {directory}: expected one of {', '.join(_WEIGHT_FILES)}")
    for name in present:
        (_check_shards if name.endswith(".index.json") else _check_weights_file)(directory / name)
    if not any((directory / name).is_file() for name in _TOKENIZER_FILES):
        raise CheckpointError(f"no tokenizer in {directory}: expected one of {', '.join(_TOKENIZER_FILES)}")


def _check_adapter_dir(directory: Path, spec: ModelSpec) -> None:
    if not (directory / "adapter_config.json").is_file():
        raise CheckpointError(f"no adapter_config.json in {directory}: not a PEFT adapter directory")
    _json_object(directory / "adapter_config.json")
    _check_trust(directory, spec)
    present = [name for name in _ADAPTER_WEIGHTS if (directory / name).exists()]
    if not present:
        raise CheckpointError(f"no adapter weights in {directory}: expected {' or '.join(_ADAPTER_WEIGHTS)}")
    for name in present:
        _check_weights_file(directory / name)


def check_local_checkpoint(spec: ModelSpec) -> None:
    """Refuse a local model or adapter directory that cannot load, with the file and the fix:
    no config.json, no or truncated weights (safetensors headers are read, not the tensors),
    shards outside the directory, no tokenizer, or code to run without ``trust_remote_code``.
    Hub ids are checked by the hub (:func:`pin_revision`)."""
    for location, what, check in ((spec.path, "model", _check_model_dir), (spec.adapter, "adapter", _check_adapter_dir)):
        if location is None:
            continue
        if is_local(location):
            check(Path(location), spec)
        elif looks_like_path(location):
            raise ModelNotFoundError(f"local {what} directory not found: {location}")


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

    Local dirs are identified by their files (size, head and tail), hub ids by id + revision
    (the backend pins a commit, :func:`pin_revision`, so a moved ``main`` is a new identity).
    Every setting that changes the numbers is part of it: dtype, quantization, GGUF file, the
    window, how the context is rendered (template mode, raw template), whether the model's own
    code runs, the backend. The device is not (scores are cached per model, not per machine),
    nor is the label (two names for one model share their scores).
    """
    ident: dict[str, Any] = {
        "dtype": resolved_dtype,
        "quantization": spec.quantization,
        "gguf_file": spec.gguf_file,
        "max_context": spec.max_context,
        "min_left_context": spec.min_left_context,
        "template": spec.template,
        "raw_template": spec.raw_template,
        "trust_remote_code": spec.trust_remote_code,
        "backend": spec.backend,
    }
    for key, loc, rev in (("model", spec.path, spec.revision), ("adapter", spec.adapter, spec.adapter_revision)):
        if loc is None:
            continue
        ident[key] = _dir_digest(Path(loc)) if is_local(loc) else {"hub": loc, "rev": rev}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes needed to hold the weights plus one forward pass.

    ``n_tokens`` is the sequence length asked about; a sequence longer than the model's
    ``window`` is scored with a sliding window, so one pass covers min(n_tokens, window) tokens,
    or more when batches are larger: ``pass_tokens``, what the estimate is for."""

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


def estimate_memory(spec: ModelSpec, n_tokens: int = 4096, resolved_dtype: str = "float32",
                    batch_tokens: int = 0) -> MemoryEstimate:
    """Estimate memory for ``spec`` from its config alone (meta-device init, no weights read).
    One pass holds a window of the sequence or a batch of ``batch_tokens`` padded tokens
    (docs/engine.md, "Batches"), whichever is larger.
    A bad checkpoint or an unanswering hub fails here as it does when the backend opens it."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    check_local_checkpoint(spec)
    spec, online = pin_revision(spec)
    config = AutoConfig.from_pretrained(
        spec.path, revision=spec.revision, trust_remote_code=spec.trust_remote_code, local_files_only=not online,
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
    pass_tokens = max(min(n_tokens, window) if window else n_tokens, batch_tokens)
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
