"""Fuzz the batch CLI in-process: ``rdpt_core.cli.main([...])`` with generated options and input
files for every subcommand (stand-in models, see ``test_cli.FakeBackend``; no model is loaded).

Each case must end one of two ways: exit code 0 with a correct output, or a non-zero code with
a clear message on stderr (argparse's ``usage`` + ``error:``, or ``error: ...``), no traceback,
and nothing at an output path but what was there before (complete) or nothing. An exception out
of ``main`` is a crash. In lenient mode every good input row must reach the output (else: data
lost). Outcomes are tallied in ``OUTCOMES`` and printed per test (``pytest -s`` shows them).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import string
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_cli import patch_fake_models

from rdpt_core.cli import main
from rdpt_core.provenance import CLASSES_3, CLASSES_4, UNSCORED, classify_table
from rdpt_core.store import read_table

def fuzz(max_examples: int) -> settings:
    """Seeded (the same cases every run), no deadline, no example database."""
    return settings(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                    max_examples=max_examples)


OUTCOMES: dict[str, Counter] = {}
STALE = b"an older run's complete output"


# ---- generated pieces ----------------------------------------------------------------------------
class Plan:
    """Which one part of a case is broken, if any: half the cases break nothing (they must
    succeed), the other half break exactly one ``aspect`` (garbage everywhere at once would
    leave no case that should succeed)."""

    def __init__(self, data, aspects: list[str]) -> None:
        self.data = data
        self.broken = data.draw(st.sampled_from([None] * len(aspects) + aspects), label="broken")

    def pick(self, aspect: str, good, bad):
        return self.data.draw(bad if self.broken == aspect else good, label=aspect)


words = st.text(alphabet=string.ascii_letters + string.digits + " .,;:!?'\"\\/\n\t{}[]<>é中😀", min_size=0, max_size=40)
# a response that segments into at least one action (the fake model scores any text)
responses = st.builds(lambda a, b: f"{a}Answer {b}.", words, st.integers(0, 99))
option_text = st.one_of(st.sampled_from(["", " ", "-1", "0", "1.5", "nan", "inf", "-inf", "1e309", "0x10",
                                         "--out", "\x00", "é", "10" * 20]), words)
def reads_as(kind, text: str) -> bool:
    """Would Python read ``text`` as a valid value (``int`` >= 1, or a ``float`` in [0, 1])?
    Generated garbage can happen to be valid ("0", " 1"): a "broken" option must not be."""
    try:
        value = kind(text)
    except ValueError:
        return False
    return value >= 1 if kind is int else math.isfinite(value) and 0.0 <= value <= 1.0


BAD_LINES = st.sampled_from([
    "{not json", "[1, 2, 3]", '"just a string"',
    json.dumps({"record_id": "bad1", "prompt": "p"}),  # no response
    json.dumps({"record_id": "bad2", "prompt": "p", "response": "r", "correct": "maybe"}),
])
INPUT_ASPECTS = ["file", "bad lines"]


def good_rows(draw, n: int) -> list[dict]:
    return [{"record_id": f"r{i}", "question_id": f"q{draw(st.integers(0, 2))}", "prompt": draw(words) + "?",
             "response": draw(responses), "correct": draw(st.sampled_from([True, False, None]))} for i in range(n)]


def records_file(plan: Plan, directory: Path):
    """An input file: (path, the good ids in order or None when the file as a whole is unusable,
    how many bad lines it has). Broken "file": unusable; "bad lines": some lines every loader
    must refuse among the good ones."""
    draw = plan.data.draw
    kind = plan.pick("file", st.sampled_from(["jsonl", "jsonl", "csv", "parquet"]),
                     st.sampled_from(["no rows", "empty", "bytes", "txt", "missing", "dir"]))
    good = good_rows(draw, 0 if kind == "no rows" else draw(st.integers(1, 5)))
    bad = plan.pick("bad lines", st.just([]), st.lists(BAD_LINES, min_size=1, max_size=3))
    path = directory / f"in.{kind if kind in ('csv', 'parquet', 'txt') else 'jsonl'}"
    if kind in ("jsonl", "no rows"):
        lines = [json.dumps(r, ensure_ascii=draw(st.booleans())) for r in good]
        for line in bad:
            lines.insert(draw(st.integers(0, len(lines))), line)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path, [r["record_id"] for r in good] or None, len(bad)
    if kind == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["record_id", "question_id", "prompt", "response", "correct"])
        rows = [[r["record_id"], r["question_id"], r["prompt"], r["response"],
                 "" if r["correct"] is None else str(r["correct"]).lower()] for r in good]
        for _ in bad:  # a row with one field too many
            rows.insert(draw(st.integers(0, len(rows))), ["x", "q", "p", "r", "", "extra"])
        writer.writerows(rows)
        path.write_text(buf.getvalue(), encoding="utf-8")
        return path, [r["record_id"] for r in good], len(bad)
    if kind == "parquet":  # typed columns: no bad line to write
        pd.DataFrame(good, columns=["record_id", "question_id", "prompt", "response", "correct"]).to_parquet(path)
        return path, [r["record_id"] for r in good], 0
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "bytes":
        path.write_bytes(draw(st.binary(min_size=1, max_size=64)) + b"\xff\xfe")
    elif kind == "txt":
        path.write_text("prompt,response\np,r\n")
    elif kind == "dir":
        path.mkdir()
    return path, None, 0


def out_name(plan: Plan, aspect: str, good_suffixes: list[str]) -> str:
    stem = plan.data.draw(st.sampled_from(["stale", "new"]))  # "stale": an older output is there
    return stem + plan.pick(aspect, st.sampled_from(good_suffixes),
                            st.sampled_from([".txt", ".json", "", ".csv.gz", ".xlsx"]))


# ---- one case ------------------------------------------------------------------------------------
def run_case(argv: list[str], outputs: list[Path]) -> tuple[int | None, str, BaseException | None]:
    for out in outputs:
        if out.name.startswith("stale"):
            out.write_bytes(STALE)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main([str(a) for a in argv])
    except BaseException as crash:  # noqa: BLE001 - any escape from main() is what we look for
        return None, err.getvalue(), crash
    return code, err.getvalue(), None


def judge(test: str, code, err: str, crash, outputs: list[Path], check_ok) -> None:
    """Classify the outcome (tallied) and fail on a crash, an unclear error or a bad output."""
    tally = OUTCOMES.setdefault(test, Counter())
    if crash is not None:
        tally["crash"] += 1
        raise AssertionError(f"main() raised {type(crash).__name__}: {crash}\nstderr: {err}") from crash
    leftovers = [p.name for out in outputs for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert not leftovers, f"temporary files left: {leftovers}"
    if code == 0:
        lost = check_ok()
        tally["data lost" if lost else "accepted-correct"] += 1
        assert not lost, lost
        return
    tally["clean error"] += 1
    last = err.rstrip().splitlines()[-1] if err.strip() else ""
    assert "Traceback" not in err, err
    assert last.startswith("error: ") or ": error: " in last, f"exit {code} without a clear message: {err!r}"
    for out in outputs:  # an error leaves nothing, or the older output untouched
        assert not out.exists() or (out.name.startswith("stale") and out.read_bytes() == STALE), out


def outputs_at(directory: Path, names: list[str | None]) -> list[Path]:
    return [directory / n for n in names if n]


# ---- score ---------------------------------------------------------------------------------------
def expected_ids(good_ids, n_bad, lenient, limit=None):
    """What a correct run keeps: the good records (first ``limit``), or None: it must refuse."""
    if not good_ids or (n_bad and not lenient):
        return None
    return good_ids[: int(limit)] if limit is not None else good_ids


@fuzz(45)
@given(data=st.data())
def test_fuzz_score(data):
    plan = Plan(data, [*INPUT_ASPECTS, "limit", "model", "out", "options"])
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        directory = Path(tmp)
        patch_fake_models(mp)
        path, good_ids, n_bad = records_file(plan, directory)
        lenient = data.draw(st.booleans())
        limit = plan.pick("limit", st.sampled_from([None, "1", "2", "5", "7"]),
                          st.one_of(st.sampled_from(["-1", "0", "1.5"]), option_text.filter(lambda t: not reads_as(int, t))))
        role, name = plan.pick("model", st.tuples(st.sampled_from(["--teacher", "--distilled"]),
                                                  st.sampled_from(["fake-t", "fake-d"])),
                               st.tuples(st.sampled_from(["--teacher", "--student", "--distilled"]), st.just("")))
        models = {"--teacher": "fake-t", "--student": "fake-s", role: name}
        out = out_name(plan, "out", [".parquet", ".csv"])
        argv = ["score", "--input", path, *[a for kv in models.items() for a in kv], "--out", directory / out,
                "--cache-dir", directory / "cache"] + ["--lenient"] * lenient
        argv += ["--limit", limit] if limit is not None else []
        argv += plan.pick("options", st.sampled_from([[], ["--segmenter", "paragraph"], ["--marker", "Answer"]]),
                          st.sampled_from([["--segmenter", "bogus"], ["--marker", ""], ["--max-context", "0"],
                                           ["--template", "raw", "--raw-template", "no placeholder"]]))
        outputs = outputs_at(directory, [out])
        code, err, crash = run_case(argv, outputs)

        def check_ok():
            assert plan.broken is None or plan.broken == "bad lines", f"accepted a broken {plan.broken}"
            want = expected_ids(good_ids, n_bad, lenient, limit)
            assert want is not None, "accepted a file it should refuse"
            table = read_table(directory / out)
            got = list(dict.fromkeys(table["record_id"]))
            if got != want:
                return f"records {want} in, {got} out"
            assert table[["p_teacher", "p_student"]].stack().between(0, 1).all()
            return None

        judge("score", code, err, crash, outputs, check_ok)


# ---- classify and report: generated action tables ---------------------------------------------------
BAD_PROBABILITIES = st.sampled_from([-0.1, 1.5, float("inf"), "high", "0.5%", True])  # not "": CSV's missing


def scores_file(plan: Plan, directory: Path):
    """A scores table (Parquet or CSV). Broken "table": unreadable, a probability column
    missing, or a value that is no probability."""
    draw = plan.data.draw
    n = draw(st.integers(1, 8))
    kind = plan.pick("table", st.sampled_from(["parquet", "csv"]),
                     st.sampled_from(["garbage", "missing", "no p_student", "bad value"]))
    columns = ["p_teacher", "p_student"] + (["p_distilled"] if draw(st.booleans()) else [])
    table = pd.DataFrame({
        "record_id": [f"r{i % 3}" for i in range(n)], "question_id": [f"q{i % 2}" for i in range(n)],
        "action_index": [i // 3 for i in range(n)], "text": [draw(words) for _ in range(n)],
        "kind": ["sentence"] * n, "correct": [draw(st.sampled_from([True, False, None])) for _ in range(n)],
        **{c: [draw(st.one_of(st.floats(0, 1), st.none())) for _ in range(n)] for c in columns},
    })
    if kind == "no p_student":
        table = table.drop(columns="p_student")
    elif kind == "bad value":
        column = draw(st.sampled_from(columns))
        table[column] = table[column].astype(object)
        table.loc[draw(st.integers(0, n - 1)), column] = draw(BAD_PROBABILITIES)
    suffix = draw(st.sampled_from([".parquet", ".csv"])) if kind not in ("parquet", "csv") else f".{kind}"
    path = directory / f"scores{suffix}"
    if kind == "garbage":
        path.write_bytes(draw(st.binary(max_size=64)))
    elif kind != "missing":
        try:
            table.to_parquet(path) if suffix == ".parquet" else table.to_csv(path, index=False)
        except Exception:  # mixed types pyarrow will not store: a CSV holds anything
            path = path.with_suffix(".csv")
            table.to_csv(path, index=False)
    return path, table


@fuzz(45)
@given(data=st.data())
def test_fuzz_classify(data):
    plan = Plan(data, ["table", "alpha", "beta", "out"])
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path, table = scores_file(plan, directory)
        alpha, beta = (plan.pick(name, st.floats(0, 1).map(repr), option_text.filter(lambda t: not reads_as(float, t)))
                       for name in ("alpha", "beta"))
        out = out_name(plan, "out", [".parquet", ".csv"])
        outputs = outputs_at(directory, [out])
        code, err, crash = run_case(["classify", "--scores", path, "--alpha", alpha, "--beta", beta,
                                     "--out", directory / out], outputs)

        def check_ok():
            assert plan.broken is None, f"accepted a broken {plan.broken}"
            got = read_table(directory / out)
            assert len(got) == len(table)
            given = read_table(path)
            given[[c for c in given if c.startswith("p_")]] = given.filter(like="p_").apply(pd.to_numeric)
            pd.testing.assert_frame_equal(got, classify_table(given, float(alpha), float(beta)), check_dtype=False)
            assert set(got["cls3"]) <= {*CLASSES_3, UNSCORED}
            assert "cls" not in got or set(got["cls"]) <= {*CLASSES_4, UNSCORED}
            return None

        judge("classify", code, err, crash, outputs, check_ok)


@pytest.mark.slow  # ~1-4 s a case: each report draws its charts
@fuzz(20)
@given(data=st.data())
def test_fuzz_report(data):
    """Tables `score` wrote from generated records (a report is slow to draw, so fewer cases),
    or generated tables that lack its columns; generated options."""
    plan = Plan(data, ["table", "option", "out", "sources"])
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        directory = Path(tmp)
        patch_fake_models(mp)
        if plan.broken == "table":
            path, _ = scores_file(plan, directory)  # lacks the columns `score` writes, at least
        else:
            records = directory / "in.jsonl"
            records.write_text("".join(json.dumps(r) + "\n" for r in good_rows(data.draw, data.draw(st.integers(1, 4)))))
            path = directory / data.draw(st.sampled_from(["t.parquet", "t.csv"]))
            student = data.draw(st.sampled_from(["fake-s", "fake-t"]))  # fake-t: one class only, Common
            code, err, _ = run_case(["score", "--input", records, "--teacher", "fake-t", "--student", student,
                                     "--out", path, "--cache-dir", directory / "cache"], [])
            assert code == 0, err
        out = out_name(plan, "out", [".html", ".htm"])
        argv = ["report", "--scores", path, "--out", directory / out]
        sources = plan.pick("sources", st.sampled_from([None, "resp.csv", "resp.parquet"]),
                            st.sampled_from(["bad.csv", "bad.parquet", "resp.txt"]))
        if sources is not None:
            argv += ["--sources", responses_file(data, directory, sources)]
        broken_option = data.draw(st.sampled_from(["--alpha", "--beta", "--min-n", "--token-step", "--seed"]))
        for option, good in (("--alpha", "0.2"), ("--beta", "0.05"), ("--min-n", "2"), ("--token-step", "10"),
                             ("--seed", "3"), ("--title", "T <b>&")):
            if option == broken_option and plan.broken == "option":
                argv += [option, data.draw(st.one_of(st.sampled_from(["-1", "0", "nan", "1.5"]), option_text))]
            elif data.draw(st.booleans()):
                argv += [option, good]
        outputs = outputs_at(directory, [out])
        code, err, crash = run_case(argv, outputs)

        def check_ok():
            # "0" is a fine --seed, and --min-n 0 or --alpha 0 are fine too
            assert plan.broken in (None, "option"), f"accepted a broken {plan.broken}"
            page = (directory / out).read_text(encoding="utf-8")
            assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
            return None

        judge("report", code, err, crash, outputs, check_ok)


def responses_file(data, directory: Path, name: str) -> Path:
    """``sources --responses`` output from generated records, or (``bad.*``) a table that is not one."""
    path = directory / name
    if name.startswith("bad"):
        table = data.draw(st.sampled_from([
            pd.DataFrame({"record_id": ["r0"], "n_tokens": [3]}),
            pd.DataFrame({"record_id": ["r0"], "question_id": ["q"], "source": ["s"], "correct": [True],
                          "n_tokens": ["many"], "n_chars": [3], "sum_logp": [-1.0], "n_logp": [3]}),
        ]))
        table.to_csv(path, index=False) if path.suffix == ".csv" else table.to_parquet(path)
        return path
    records = directory / "sources-in.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in good_rows(data.draw, data.draw(st.integers(1, 4)))))
    code, err, _ = run_case(["sources", "--input", records, "--reference", "fake-r", "--out", directory / "stats.csv",
                             "--responses", path, "--cache-dir", directory / "cache"], [])
    assert code == 0, err
    return path


# ---- select and sources ----------------------------------------------------------------------------
@fuzz(30)
@given(data=st.data())
def test_fuzz_select(data):
    plan = Plan(data, [*INPUT_ASPECTS, "model", "out", "features", "strategy", "option"])
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        directory = Path(tmp)
        patch_fake_models(mp)
        path, good_ids, n_bad = records_file(plan, directory)
        lenient = data.draw(st.booleans())
        out = out_name(plan, "out", [".jsonl"])
        features = plan.pick("features", st.sampled_from([None, "f.csv", "f.parquet"]),
                             st.sampled_from(["f.xlsx", out, "in.jsonl"]))
        strategy = plan.pick("strategy", st.sampled_from(["max_teacher_count", "random", "grape", "longest"]),
                             st.just("bogus"))
        argv = ["select", "--input", path, "--teacher", "fake-t", "--student", plan.pick("model", st.just("fake-s"),
                st.just(" ")), "--out", directory / out, "--strategy", strategy,
                "--cache-dir", directory / "cache"] + ["--lenient"] * lenient
        argv += ["--features", directory / features] if features else []
        option = data.draw(st.sampled_from(["--beta", "--seed"]))
        argv += [option, plan.pick("option", st.sampled_from(["0", "1"]), st.sampled_from(["-1", "1.5", "x", ""]))]
        outputs = outputs_at(directory, [out, features])
        code, err, crash = run_case(argv, outputs)

        def check_ok():
            assert plan.broken is None or plan.broken == "bad lines", f"accepted a broken {plan.broken}"
            want = expected_ids(good_ids, n_bad, lenient)
            assert want is not None, "accepted a file it should refuse"
            rows = [json.loads(line) for line in (directory / out).read_text(encoding="utf-8").splitlines()]
            questions = [r["question_id"] for r in rows]
            if not {r["record_id"] for r in rows} <= set(want) or len(questions) != len(set(questions)):
                return f"chose {[r['record_id'] for r in rows]} from {want}"
            if set(questions) != {r["question_id"] for r in rows}:
                return "a question without a chosen answer"
            if features:
                got = read_table(directory / features)["record_id"].astype(str).tolist()
                if got != want:
                    return f"features of {got}, records {want}"
            return None

        judge("select", code, err, crash, outputs, check_ok)


@fuzz(20)
@given(data=st.data())
def test_fuzz_sources(data):
    plan = Plan(data, [*INPUT_ASPECTS, "model", "out", "responses", "report"])
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        directory = Path(tmp)
        patch_fake_models(mp)
        files = []
        for i in range(data.draw(st.integers(1, 2))):
            sub = directory / f"s{i}"
            sub.mkdir()
            files.append(records_file(plan, sub))
        lenient = data.draw(st.booleans())
        out = out_name(plan, "out", [".csv", ".parquet"])
        responses = plan.pick("responses", st.sampled_from([None, "r.csv", "r.parquet"]), st.just("r.txt"))
        report = plan.pick("report", st.sampled_from([None, "r.html"]), st.just("r.pdf"))
        argv = ["sources", *[a for f in files for a in ("--input", f[0])], "--reference",
                plan.pick("model", st.just("fake-r"), st.just("")), "--out", directory / out,
                "--cache-dir", directory / "cache"] + ["--lenient"] * lenient
        argv += ["--responses", directory / responses] if responses else []
        argv += ["--report", directory / report] if report else []
        outputs = outputs_at(directory, [out, responses, report])
        code, err, crash = run_case(argv, outputs)

        def check_ok():
            assert plan.broken is None or plan.broken == "bad lines", f"accepted a broken {plan.broken}"
            wants = [expected_ids(ids, n_bad, lenient) for _, ids, n_bad in files]
            assert None not in wants, "accepted a file it should refuse"
            stats = read_table(directory / out)
            if stats["responses"].sum() != sum(map(len, wants)):
                return f"{stats['responses'].sum()} responses counted, {wants} given"
            return None

        judge("sources", code, err, crash, outputs, check_ok)


# ---- anything at all on the command line ------------------------------------------------------------
@fuzz(40)
@given(argv=st.lists(st.one_of(st.sampled_from(["score", "classify", "report", "select", "sources",
                                                 "prepare-models", "--input", "--out", "--scores", "--teacher",
                                                 "--student", "--limit", "--alpha", "-h", "--", "-"]),
                               option_text), max_size=8))
def test_fuzz_any_command_line(argv):
    """Garbage argument lists: never a crash; what fails says why. (prepare-models with no
    bad option would install the models: such lines are skipped.)"""
    if argv[:1] == ["prepare-models"] and all(a in ("prepare-models", "--") for a in argv):
        return
    with tempfile.TemporaryDirectory() as tmp:
        with contextlib.chdir(tmp):  # a relative --out lands here, not in the repository
            code, err, crash = run_case(argv, [])
        judge("any", code, err, crash, [], lambda: None if "-h" in argv else f"exit 0 for {argv}")


def teardown_module():
    for test, tally in OUTCOMES.items():
        print(f"\n{test}: {sum(tally.values())} cases, {dict(tally)}")
