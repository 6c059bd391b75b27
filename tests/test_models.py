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


@pytest.mark.slow
@pytest.mark.parametrize("which", ["smollm2", "gemma"])
def test_memory_estimate_counts_the_real_parameters(which, request):
    from rdpt_core.models import estimate_memory

    spec = request.getfixturevalue(f"{which}_spec")
    ref = request.getfixturevalue(f"{which}_ref").model
    n_params = sum(p.numel() for p in ref.parameters())
    fp32 = estimate_memory(spec, n_tokens=2048)
    assert fp32.n_params == n_params
    assert fp32.weight_bytes == 4 * n_params
    nf4 = estimate_memory(with_overrides(spec, quantization="nf4"), n_tokens=2048)
    int8 = estimate_memory(with_overrides(spec, quantization="8bit"), n_tokens=2048)
    # bitsandbytes quantizes the Linear layers only; embeddings stay fp32
    import torch

    linear = sum(m.weight.numel() for name, m in ref.named_modules()
                 if isinstance(m, torch.nn.Linear) and name != "lm_head")
    assert fp32.weight_bytes - nf4.weight_bytes == pytest.approx(linear * (4 - 0.5 - 4 / 64), rel=1e-6)
    assert nf4.weight_bytes < int8.weight_bytes < fp32.weight_bytes
    assert fp32.activation_bytes > 0 and fp32.total_bytes == fp32.weight_bytes + fp32.activation_bytes


@pytest.mark.parametrize("path", ["/no/such/checkpoint", "./missing-dir", "~/nowhere-rdpt-test", "a/b/c"])
def test_missing_local_directory_says_not_found(path):
    with pytest.raises(FileNotFoundError, match="local model directory not found"):
        resolve_spec(path)


def test_a_file_is_not_a_checkpoint_directory(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="directory"):
        resolve_spec(str(weights))


@pytest.mark.slow
def test_memory_estimate_is_for_one_window_when_the_sequence_is_longer(smollm2_spec):
    from rdpt_core.models import estimate_memory

    long = estimate_memory(smollm2_spec, n_tokens=131_072)
    at_window = estimate_memory(smollm2_spec, n_tokens=8192)
    assert (long.window, long.pass_tokens, long.windowed) == (8192, 8192, True)  # SmolLM2's window
    assert long.activation_bytes == at_window.activation_bytes and not at_window.windowed
    short = estimate_memory(smollm2_spec, n_tokens=1024)
    assert short.pass_tokens == 1024 and short.activation_bytes < at_window.activation_bytes


def test_named_models_come_from_the_packaged_zoo_and_entry_point_plugins(monkeypatch):
    from importlib import metadata

    from rdpt_core import models

    class Plugin:
        name, value = "extra", "somewhere:MODELS"

        def __init__(self, payload):
            self.payload = payload

        def load(self):
            if isinstance(self.payload, Exception):
                raise self.payload
            return self.payload

    plugins = [Plugin({"mine": {"base": "gemma3-270m", "adapter": "/abs/adapter"}}), Plugin(ImportError("gone"))]
    monkeypatch.setattr(metadata, "entry_points", lambda group: plugins if group == models.ZOO_ENTRY_POINTS else [])
    models.zoo.cache_clear()
    try:
        named = models.zoo()
    finally:
        models.zoo.cache_clear()
    # the plug-in's model is added, the broken plug-in is skipped, the packaged models stay
    assert named["mine"]["adapter"] == "/abs/adapter"
    assert set(models.ZOO) <= set(named) and "gemma3-270m-distilled" not in models.ZOO


def test_the_lab_registers_its_distilled_model_through_the_entry_point():
    from rdpt_core.models import zoo
    from rdpt_lab.models import LAB_DIR

    assert zoo()["gemma3-270m-distilled"] == {"base": "gemma3-270m", "adapter": str(LAB_DIR / "adapter")}


def test_the_library_does_not_depend_on_the_lab():
    """rdpt_core imports nothing from rdpt_lab and names none of its outputs (demo/lab/)."""
    import ast
    from pathlib import Path

    import rdpt_core

    offenders = []
    for path in Path(rdpt_core.__file__).parent.rglob("*.py"):
        text = path.read_text()
        imported = [n.module or "" for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom)]
        imported += [a.name for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Import) for a in n.names]
        if any(m.startswith("rdpt_lab") for m in imported) or "demo/lab" in text:
            offenders.append(path.name)
    assert not offenders, offenders
