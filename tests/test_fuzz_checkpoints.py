"""Hostile model names, directories and checkpoints (issue 12).

Each must end, within seconds, in an error the CLI and the app report (FileNotFoundError,
NotADirectoryError or ValueError; the library's ModelNotFoundError and CheckpointError are
those) whose message names what was asked for and says what to do; never another exception,
never a hang, never code from the checkpoint run, never a file read outside what was named.
The hub is offline here (HF_HUB_OFFLINE=1), as in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rdpt_core.backends.hf  # noqa: F401  (imported now, so no test below sees an import's file reads)
from rdpt_core.backends import create_backend
from rdpt_core.models import ZOO, resolve_spec, zoo

CLEAR = (FileNotFoundError, NotADirectoryError, ValueError)  # what the CLI and the Models page catch
FAST_S = 5.0  # everything but the chat-template probe fails before transformers is asked
FUZZ = settings(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
zoo()  # the entry-point plug-ins are read once, here
OUTCOMES: Counter[str] = Counter()  # per run, for docs/reliability.md (printed at the end)


@pytest.fixture(autouse=True)
def _hub_offline(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module", autouse=True)
def _report_outcomes():
    yield
    print(f"\nhostile checkpoint outcomes: {dict(OUTCOMES)}")


def attempt(name: str, **overrides) -> Exception:
    """Resolve and open ``name`` as the app does; the clear error it must end in."""
    started = time.monotonic()
    try:
        backend = create_backend(resolve_spec(name, **overrides))
    except CLEAR as err:
        elapsed = time.monotonic() - started
        assert elapsed < FAST_S, f"{name!r} took {elapsed:.1f} s to fail"
        assert str(err).strip(), f"{name!r}: {type(err).__name__} without a message"
        OUTCOMES["clean error"] += 1
        return err
    except Exception:
        OUTCOMES["crash"] += 1
        raise
    OUTCOMES["accepted"] += 1
    pytest.fail(f"{name!r} was accepted as {backend.spec}")


def names(message: str, name: str) -> bool:
    """The message says which name or path it is about."""
    name = name.strip()
    return any(form in message for form in (name, repr(name), str(Path(name)), os.path.abspath(name)))


# ---- a tiny real checkpoint to break ---------------------------------------------------------
def copy_of(tiny: Path, where: Path) -> Path:
    target = Path(tempfile.mkdtemp(dir=where)) / "model"
    shutil.copytree(tiny, target)
    return target


def test_a_sound_tiny_checkpoint_loads_renders_and_scores(tiny):
    """The checks refuse nothing sound: the tiny model opens, its (real) chat template is
    probed once and renders as transformers does, and it scores."""
    backend = create_backend(resolve_spec(str(tiny)))
    chat = backend.render_context("What is 2+2?")
    assert chat == backend.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True, tokenize=False)
    scores = backend.score(chat, "It is 4.")
    assert scores.n_tokens > 0 and (scores.logprobs <= 0).all()
    backend.unload()


# ---- names -----------------------------------------------------------------------------------
@pytest.mark.parametrize("typo", ["smollm2-135m-instrut", "gemma3-207m", "SmolLM2-135M-Instruct", "gema3-270m"])
def test_a_packaged_name_typo_suggests_the_name_and_fails_at_once(typo):
    """Before: taken for a hub id, ~50 s of retries (4 s offline), then a bare OSError."""
    err = attempt(typo)
    assert isinstance(err, FileNotFoundError) and names(str(err), typo)
    assert "Did you mean '" in str(err) and any(f"'{z}'" in str(err) for z in ZOO)


def test_an_uncached_hub_id_offline_fails_at_once_saying_why():
    err = attempt("someone/no-such-model")
    assert isinstance(err, FileNotFoundError)
    assert "'someone/no-such-model'" in str(err) and "HF_HUB_OFFLINE" in str(err)


_SEEN: list[str] | None = None  # paths opened or listed while file_access() records


def _audit(event: str, args: tuple) -> None:
    if _SEEN is not None and event in ("open", "os.listdir", "os.scandir") and args:
        if isinstance(args[0], (str, bytes, os.PathLike)):
            _SEEN.append(os.path.normpath(os.path.join(os.getcwd(), os.fsdecode(args[0]))))


sys.addaudithook(_audit)  # audit hooks cannot be removed: it records only inside file_access()


@contextmanager
def file_access() -> Iterator[list[str]]:
    """Every path stat-ed, opened or listed inside the block (absolute, normalised)."""
    global _SEEN
    seen: list[str] = []

    def spy(real):
        def stat(path, *args, **kwargs):
            if isinstance(path, (str, bytes, os.PathLike)):
                seen.append(os.path.normpath(os.path.join(os.getcwd(), os.fsdecode(path))))
            return real(path, *args, **kwargs)

        return stat

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "stat", spy(os.stat))
        patch.setattr(os, "lstat", spy(os.lstat))
        _SEEN = seen
        try:
            yield seen
        finally:
            _SEEN = None


def outside(seen: list[str], *allowed: Path) -> list[str]:
    roots = [str(p) for p in allowed]
    return [p for p in seen if not any(p == r or p.startswith(r + os.sep) for r in roots)]


def test_traversal_in_a_hub_like_name_is_refused_before_any_file_access(tmp_path, monkeypatch, tiny):
    """``owner/../../x`` reads like a hub id; followed as a path it leaves the working
    directory (here it would reach a real checkpoint at ../x)."""
    work = tmp_path / "work"
    (work / "owner").mkdir(parents=True)
    shutil.copytree(tiny, tmp_path / "x")
    monkeypatch.chdir(work)
    with file_access() as seen:
        err = attempt("owner/../../x")
    assert isinstance(err, ValueError) and "'owner/../../x'" in str(err) and "./" in str(err)
    assert outside(seen, work) == []


@pytest.mark.parametrize("name", ["smollm2\x00-135m-instruct", "../../etc/passwd\x00", "owner/name\nINFO forged",
                                  "\x1b[31mred", "models/\rsmollm2"])
def test_control_characters_are_refused_without_touching_a_file(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with file_access() as seen:
        err = attempt(name)
    assert isinstance(err, ValueError) and repr(name.strip()) in str(err) and "control character" in str(err)
    assert seen == []


def test_an_explicit_path_reads_only_the_directory_it_names(tmp_path, monkeypatch):
    """``../x`` is what the user named: it may be read, and nothing beside it."""
    work, named = tmp_path / "work", tmp_path / "x"
    work.mkdir()
    named.mkdir()
    (tmp_path / "beside").mkdir()
    monkeypatch.chdir(work)
    with file_access() as seen:
        err = attempt("../x")
    assert isinstance(err, ValueError) and f"no config.json in {Path('../x')}" in str(err)
    assert seen and outside(seen, named) == []


# ---- directories -----------------------------------------------------------------------------
def _safetensors(size_of_data: int) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [size_of_data // 4], "data_offsets": [0, size_of_data]}})
    return struct.pack("<Q", len(header)) + header.encode() + b"\0" * size_of_data


def break_checkpoint(tiny: Path, where: Path, kind: str, cut: float = 0.5, junk: bytes = b"") -> tuple[Path, str]:
    """A damaged copy of ``tiny`` (or an empty dir) and a phrase its error must hold."""
    directory = copy_of(tiny, where)
    weights = directory / "model.safetensors"
    if kind == "missing":
        shutil.rmtree(directory)
        return directory, "local model directory not found"
    if kind == "empty":
        shutil.rmtree(directory)
        directory.mkdir()
        return directory, f"no config.json in {directory}"
    if kind == "no weights":
        weights.unlink()
        return directory, f"no weights in {directory}"
    if kind == "no tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            (directory / name).unlink()
        return directory, f"no tokenizer in {directory}"
    if kind == "config not JSON":
        (directory / "config.json").write_bytes(b'{"model_type": "llama",\n' + junk)
        return directory, f"{directory / 'config.json'}: not valid JSON ("
    if kind == "config not an object":
        (directory / "config.json").write_text("[1, 2]")
        return directory, f"{directory / 'config.json'}: expected a JSON object"
    if kind == "truncated weights":
        data = weights.read_bytes()
        weights.write_bytes(data[: int(len(data) * cut)])
        return directory, f"{weights} is truncated or corrupt"
    if kind == "garbage weights":
        weights.write_bytes(junk)
        return directory, f"{weights} is truncated or corrupt"
    if kind == "missing shard":
        weights.rename(directory / "model-00001-of-00002.safetensors")
        index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index))
        return directory, f"weights file missing: {directory / 'model-00002-of-00002.safetensors'}"
    if kind == "shard outside":
        (directory.parent / "outside.safetensors").write_bytes(_safetensors(16))
        weights.unlink()
        (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "../outside.safetensors"}}))
        return directory, "shard '../outside.safetensors' is not a file name in"
    if kind == "remote code":
        config = json.loads((directory / "config.json").read_text())
        config["auto_map"] = {"AutoModelForCausalLM": "evil.EvilModel"}
        (directory / "config.json").write_text(json.dumps(config))
        return directory, "trust_remote_code"
    raise AssertionError(kind)


KINDS = ["missing", "empty", "no weights", "no tokenizer", "config not JSON", "config not an object",
         "truncated weights", "garbage weights", "missing shard", "shard outside", "remote code"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_broken_checkpoint_says_which_file_and_what_to_do(kind, tiny, tmp_path):
    """Before: an empty dir said "install sentencepiece or tiktoken"; a truncated file failed
    only when the weights loaded, deep in safetensors; ``auto_map`` was silently ignored."""
    directory, phrase = break_checkpoint(tiny, tmp_path, kind, cut=0.9, junk=b"\xff" * 7)
    err = attempt(str(directory))
    assert phrase in str(err), str(err)


@settings(FUZZ, max_examples=40)
@given(kind=st.sampled_from(KINDS), cut=st.floats(0, 0.999), junk=st.binary(max_size=64))
def test_fuzz_broken_checkpoints(tiny, tmp_path_factory, kind, cut, junk):
    directory, phrase = break_checkpoint(tiny, tmp_path_factory.mktemp("broken"), kind, cut, junk)
    err = attempt(str(directory))
    assert phrase in str(err), str(err)


def _typos(name: str) -> st.SearchStrategy[str]:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-"
    edit = st.tuples(st.integers(0, len(name) - 1), st.sampled_from(["drop", "swap", "add", "change"]),
                     st.sampled_from(alphabet))

    def apply(edits):
        out = name
        for at, how, char in edits:
            at = min(at, len(out) - 1)
            if how == "drop":
                out = out[:at] + out[at + 1:]
            elif how == "swap" and at + 1 < len(out):
                out = out[:at] + out[at + 1] + out[at] + out[at + 2:]
            elif how == "add":
                out = out[:at] + char + out[at:]
            else:
                out = out[:at] + char + out[at + 1:]
        return out

    return st.lists(edit, min_size=1, max_size=2).map(apply).filter(lambda t: t not in ZOO and t.strip() == t)


HOSTILE_PIECES = ["..", "/", "\x00", "\n", "\r", "owner", "~", ".", "etc", "passwd", "\\", " ", "x", "--", "%2e",
                  "models", "smollm2-135m", "\u202e", "ｅｔｃ", "a" * 300]
hostile_names = st.one_of(
    st.sampled_from(sorted(ZOO)).flatmap(_typos),
    st.lists(st.sampled_from(HOSTILE_PIECES), min_size=1, max_size=8).map("".join),
    st.text(min_size=1, max_size=40),
)


@settings(FUZZ, max_examples=60)
@given(name=hostile_names)
def test_fuzz_hostile_names(tmp_path_factory, monkeypatch, name):
    """Typos, traversal, control characters, odd Unicode, over-long names, in an empty working
    directory: a clear error naming the input, fast."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    if not name.strip():
        with pytest.raises(ValueError, match="no model given"):
            resolve_spec(name)
        OUTCOMES["clean error"] += 1
        return
    err = attempt(name)
    assert names(str(err), name), str(err)


# ---- code shipped with a checkpoint ----------------------------------------------------------
EVIL = "import pathlib\npathlib.Path({marker!r}).write_text('executed')\nEvilModel = EvilConfig = None\n"


@pytest.mark.parametrize("config_file", ["config.json", "tokenizer_config.json"])
def test_remote_code_is_never_run_without_trust_and_the_error_says_how_to_opt_in(tiny, tmp_path, config_file):
    """Before: ``auto_map`` in a Llama config was silently ignored (the built-in class loaded),
    so the user never learnt the checkpoint wanted its own code."""
    directory = copy_of(tiny, tmp_path)
    marker = tmp_path / "remote-code-ran"
    (directory / "evil.py").write_text(EVIL.format(marker=str(marker)))
    config = json.loads((directory / config_file).read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel",
                          "AutoTokenizer": ["evil.EvilModel", None]}
    (directory / config_file).write_text(json.dumps(config))
    err = attempt(str(directory))
    assert isinstance(err, ValueError) and f"auto_map in {config_file}" in str(err)
    assert "turn on trust_remote_code" in str(err) and "--trust-remote-code" in str(err)
    assert not marker.exists()
    # the marker does prove execution: running the module writes it
    import runpy

    runpy.run_path(str(directory / "evil.py"))
    assert marker.read_text() == "executed"


# ---- chat templates are code too -------------------------------------------------------------
HOSTILE_TEMPLATES = {
    # 10^10 iterations inside the sandbox's range limit: a hang before the fix
    "nested loops": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    # the sandbox refuses ranges over 100,000 items: the error must still name the template
    "huge range": "{% for a in range(10**6) %}{% for b in range(10**6) %}{% endfor %}{% endfor %}",
    # minutes inside C (folded to a constant when compiled): only a process-level stop ends it
    "huge power": "{{ 7**(10**8) }}",
    "huge string": "{{ 'x' * 10**11 }}",
    "raises": "{{ raise_exception('no system prompt') }}",
}


@pytest.mark.parametrize("which", list(HOSTILE_TEMPLATES))
def test_a_hostile_chat_template_fails_bounded_naming_the_model(which, tiny, tmp_path, monkeypatch):
    from rdpt_core.backends import hf

    monkeypatch.setattr(hf, "CHAT_TEMPLATE_BUDGET_S", 1.0)
    directory = copy_of(tiny, tmp_path)
    (directory / "chat_template.jinja").write_text(HOSTILE_TEMPLATES[which])
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"hostile: its chat template (did not finish|fails on a test prompt)") as err:
        create_backend(resolve_spec(str(directory), name="hostile"))
    elapsed = time.monotonic() - started
    assert elapsed < 30, f"{which}: {elapsed:.1f} s"  # 1 s of rendering plus the child's imports
    assert "template 'raw'" in str(err.value)
    OUTCOMES["clean error"] += 1
    # the same model opened with the raw template is usable: the template is never rendered
    create_backend(resolve_spec(str(directory), template="raw")).render_context("Hi")


def test_weights_swapped_after_opening_are_not_scored_under_the_old_identity(tiny, tmp_path):
    """The fingerprint is taken when the backend is made, the weights load on the first score:
    before the fix, new weights were scored and cached under the old files' fingerprint."""
    import torch
    from transformers import LlamaForCausalLM

    directory = copy_of(tiny, tmp_path)
    backend = create_backend(resolve_spec(str(directory), template="raw"))
    torch.manual_seed(1)
    other = LlamaForCausalLM.from_pretrained(directory)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p))
    other.save_pretrained(directory)
    with pytest.raises(ValueError, match=f"files in {directory} changed since the model was opened"):
        backend.score("Q\n\n", "A.")
    assert not backend.is_loaded
