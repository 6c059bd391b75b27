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
    batched = estimate_memory(smollm2_spec, n_tokens=1024, batch_tokens=4096)  # a batch outweighs one record
    assert batched.pass_tokens == 4096 and batched.activation_bytes > short.activation_bytes


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


def test_the_lab_registers_its_models_through_the_entry_point():
    from rdpt_core.models import zoo
    from rdpt_lab.models import ROOT, STEPS_DIR

    assert zoo()["gemma3-270m-distilled"] == {"base": "gemma3-270m",
                                              "adapter": str(ROOT / "data" / "math500_subset" / "adapter")}
    assert zoo()["smollm2-135m-steps-teacher"] == {"base": "smollm2-135m-instruct",
                                                   "adapter": str(STEPS_DIR / "teacher_adapter")}
    assert zoo()["gemma3-270m-steps-distilled"] == {"base": "gemma3-270m",
                                                    "adapter": str(STEPS_DIR / "distilled_adapter")}
    assert zoo()["smollm2-135m-narrative-teacher"] == {
        "base": "smollm2-135m-instruct", "adapter": str(ROOT / "demo" / "ensemble" / "narrative_teacher_adapter")}


def test_the_bundled_math500_scores_belong_to_the_registered_distilled_model():
    """The MATH500 subset was scored before its adapter moved to data/: the files, not the path,
    make the fingerprint, so opening it finds its scores instead of scoring 10 answers again."""
    import json

    from rdpt_lab.models import ROOT

    recorded = json.loads((ROOT / "data" / "math500_subset" / "corpus" / "corpus.json").read_text())["fingerprints"]
    spec = resolve_spec("gemma3-270m-distilled")
    assert fingerprint(spec, "float32") == recorded["distilled"]


def test_the_library_does_not_depend_on_the_lab():
    """rdpt_core imports nothing from rdpt_lab and names none of its outputs (demo/)."""
    import ast
    from pathlib import Path

    import rdpt_core

    offenders = []
    for path in Path(rdpt_core.__file__).parent.rglob("*.py"):
        text = path.read_text()
        imported = [n.module or "" for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom)]
        imported += [a.name for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Import) for a in n.names]
        if any(m.startswith("rdpt_lab") for m in imported) or "demo/" in text:
            offenders.append(path.name)
    assert not offenders, offenders


# ---- issue 12: the fingerprint is the identity of the numbers ----------------------------------
def test_fingerprint_covers_every_setting_that_changes_numbers(tmp_path):
    """Same label, other numbers: the template (chat vs raw), the raw template, remote code,
    the window and a hub adapter's commit must each give another fingerprint; the label and
    the device must not."""
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"a" * 100)
    spec = ModelSpec(path=str(tmp_path), name="same label")
    base = fingerprint(spec, "float32")
    changed = {
        "template chat": with_overrides(spec, template="chat"),
        "template raw": with_overrides(spec, template="raw"),
        "raw template": with_overrides(spec, raw_template="Q: {prompt}\nA:"),
        "remote code": with_overrides(spec, trust_remote_code=True),
        "window": with_overrides(spec, max_context=512),
        "overlap": with_overrides(spec, min_left_context=64),
    }
    prints = {what: fingerprint(s, "float32") for what, s in changed.items()}
    assert base not in prints.values() and len(set(prints.values())) == len(prints), prints
    assert fingerprint(with_overrides(spec, name="other label", device="cpu"), "float32") == base
    hub_adapter = with_overrides(spec, adapter="org/adapter")
    assert (fingerprint(with_overrides(hub_adapter, adapter_revision="a" * 40), "float32")
            != fingerprint(with_overrides(hub_adapter, adapter_revision="b" * 40), "float32"))


def _hub_answers(monkeypatch, answer):
    """The hub, online, answering model_info with ``answer`` (a sha, or an exception to raise)."""
    from huggingface_hub import HfApi, constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    calls = []

    def model_info(self, repo_id, *, revision=None, timeout=None, **kwargs):
        calls.append((repo_id, revision, timeout))
        if isinstance(answer, BaseException):
            raise answer
        from types import SimpleNamespace

        return SimpleNamespace(sha=answer)

    monkeypatch.setattr(HfApi, "model_info", model_info)
    return calls


def test_a_hub_id_is_pinned_to_its_commit_so_a_moved_main_is_a_new_identity(monkeypatch):
    from rdpt_core import models

    spec = ModelSpec(path="org/model")
    calls = _hub_answers(monkeypatch, "1" * 40)
    pinned, online = models.pin_revision(spec)
    assert (pinned.revision, online) == ("1" * 40, True)
    assert calls == [("org/model", None, models.HUB_TIMEOUT_S)]  # one short request, no retries
    _hub_answers(monkeypatch, "2" * 40)  # main moved on the hub
    moved, _ = models.pin_revision(spec)
    assert fingerprint(moved, "float32") != fingerprint(pinned, "float32")
    # a commit given by the user is used as it is, without asking the hub
    calls = _hub_answers(monkeypatch, "3" * 40)
    assert models.pin_revision(with_overrides(spec, revision="4" * 40))[0].revision == "4" * 40 and not calls


def _fake_hub_cache(root, repo_id, commit, source):
    """A Hugging Face cache holding ``repo_id`` at ``commit`` (refs/main → it): config and
    tokenizer files of ``source`` (no weights: the backend loads those lazily)."""
    import shutil

    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, snapshot / name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)


def test_offline_the_cached_commit_is_the_identity_and_the_log_says_so(monkeypatch, tmp_path, caplog, smollm2_spec):
    """HF_HUB_OFFLINE: the backend files a hub id's scores under the commit in the local cache
    (not under "revision None", which an update of main would leave serving stale scores)."""
    from pathlib import Path

    from huggingface_hub import constants

    from rdpt_core.backends import create_backend

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    prints = []
    for commit in ("a" * 40, "b" * 40):
        cache = tmp_path / commit[:1]
        _fake_hub_cache(cache, "someone/tiny", commit, Path(smollm2_spec.path))
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
        with caplog.at_level("INFO", logger="rdpt_core.models"):
            backend = create_backend(ModelSpec(path="someone/tiny", template="raw"))
        assert backend.spec.revision == commit
        assert f"someone/tiny@main is the cached commit {commit}" in caplog.text
        prints.append(backend.fingerprint)
    assert prints[0] != prints[1]


def test_a_hub_that_does_not_answer_fails_fast_unless_the_model_is_cached(monkeypatch, tmp_path, caplog):
    import time

    from huggingface_hub import constants

    from rdpt_core import models

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    _hub_answers(monkeypatch, ConnectionError("Name or service not known"))
    started = time.monotonic()
    with pytest.raises(models.ModelNotFoundError, match="'org/model': the Hugging Face hub did not answer"):
        models.pin_revision(ModelSpec(path="org/model"))
    assert time.monotonic() - started < 2
    (tmp_path / "models--org--model" / "snapshots" / ("c" * 40)).mkdir(parents=True)
    (tmp_path / "models--org--model" / "snapshots" / ("c" * 40) / "config.json").write_text("{}")
    (tmp_path / "models--org--model" / "refs").mkdir()
    (tmp_path / "models--org--model" / "refs" / "main").write_text("c" * 40)
    with caplog.at_level("WARNING", logger="rdpt_core.models"):
        assert models.pin_revision(ModelSpec(path="org/model")) == (ModelSpec(path="org/model", revision="c" * 40),
                                                                    False)
    assert "hub unreachable" in caplog.text and "cached commit " + "c" * 40 in caplog.text


def test_a_name_the_hub_does_not_know_says_so_and_suggests_packaged_names(monkeypatch):
    from types import SimpleNamespace

    from huggingface_hub.errors import RepositoryNotFoundError

    from rdpt_core import models

    response = SimpleNamespace(headers={}, status_code=404, request=None, url="https://hub/x")
    _hub_answers(monkeypatch, RepositoryNotFoundError("404 Not Found", response=response))
    with pytest.raises(models.ModelNotFoundError,
                       match=r"'me/smollm2-135m-instrut': no such model on the Hugging Face hub.*"
                             r"Did you mean 'smollm2-135m-instruct'\?"):
        models.pin_revision(ModelSpec(path="me/smollm2-135m-instrut"))


@pytest.mark.parametrize("field", ["path", "adapter"])
def test_a_spec_refuses_control_characters_in_its_locations(field):
    """A spec made without resolve_spec (the lab, a script) is checked too: a NUL would cut the
    path short in C, a newline would forge log lines."""
    with pytest.raises(ValueError, match="control character"):
        ModelSpec(**{"path": "org/model", field: "org/mo\x00del"})


def test_the_memory_estimate_fails_like_the_backend_on_a_bad_or_unreachable_model(tmp_path, monkeypatch):
    """The Models page estimates memory before any backend exists: an empty directory must say
    "no config.json", and an uncached hub id offline must fail at once, as opening it does."""
    import time

    from huggingface_hub import constants

    from rdpt_core.models import estimate_memory

    with pytest.raises(ValueError, match=f"no config.json in {tmp_path}"):
        estimate_memory(ModelSpec(path=str(tmp_path)))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    started = time.monotonic()
    with pytest.raises(FileNotFoundError, match="'someone/absent': not in the local Hugging Face cache"):
        estimate_memory(ModelSpec(path="someone/absent"))
    assert time.monotonic() - started < 5
