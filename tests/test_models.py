import pytest

from rdpt_core.models import ModelSpec, fingerprint, resolve_spec, with_overrides


def test_spec_defaults_are_safe():
    spec = ModelSpec(path="org/model")
    assert spec.trust_remote_code is False
    assert (spec.quantization, spec.template, spec.raw_template, spec.dtype) == ("none", "auto", "{prompt}\n\n", "auto")


@pytest.mark.parametrize("field, value, message", [
    ("quantization", "int3", "quantization must be one of none, 8bit, nf4"),
    ("template", "jinja", "template must be one of"),
    ("raw_template", "no placeholder", "must contain '{prompt}'"),
    ("device", "tpu", "device must be one of"),
    ("max_context", 1, "max_context"),
])
def test_spec_rejects_bad_settings(field, value, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec(path="m", **{field: value})


def test_unprepared_zoo_model_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("RDPT_MODELS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make setup"):
        resolve_spec("gemma3-270m")


def test_hub_ids_and_local_dirs_pass_through(tmp_path):
    assert resolve_spec("Qwen/Qwen3-8B", quantization="nf4").quantization == "nf4"
    assert resolve_spec(str(tmp_path)).path == str(tmp_path)


def test_fingerprint_follows_weights_and_numeric_settings(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"a" * 100)
    spec = ModelSpec(path=str(tmp_path))
    base = fingerprint(spec, "float32")
    assert fingerprint(spec, "float32") == base
    assert fingerprint(spec, "bfloat16") != base
    assert fingerprint(with_overrides(spec, quantization="nf4"), "float32") != base
    assert fingerprint(with_overrides(spec, device="cpu"), "float32") == base  # device: same numbers
    (tmp_path / "model.safetensors").write_bytes(b"b" * 100)
    assert fingerprint(spec, "float32") != base
    hub = ModelSpec(path="org/m")
    assert fingerprint(hub, "float32") != fingerprint(with_overrides(hub, revision="abc"), "float32")
