"""The upload page (pages/trajectories_page.py) under failing loaders and generated files.

Every upload must end in one of two ways: the good rows load (exactly those an independent
reading of the generated file gives), or an ``st.error`` names the file and the working dataset
is unchanged. Never an exception in the app. The app helpers come from tests/test_app.py.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rdpt_core.records as records_module
from rdpt_core.records import RecordIssue, RecordsError
from test_app import button, page, upload

LOADER_FAILURES = [
    RecordsError([RecordIssue("mine.jsonl", 3, "response", "expected a string, got 5")]),
    OSError(5, "Input/output error"),
    pa.ArrowInvalid("Parquet magic bytes not found in footer"),
    UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    RecursionError("maximum recursion depth exceeded"),
    MemoryError(),
]


TALLY: Counter[str] = Counter()  # outcome of every generated upload, printed after the module


@pytest.fixture(scope="module", autouse=True)
def _print_tally():
    yield
    print(f"\nfuzz upload tally: {dict(TALLY)}")


def working_dataset(at) -> tuple[str, list[str]]:
    return at.session_state["dataset_id"], [r.record_id for r in at.session_state["records"]]


def test_any_loader_failure_is_an_error_naming_the_file_and_changes_nothing(monkeypatch):
    # issue 12: the page caught only ValueError; an OSError, RecursionError, MemoryError... from
    # the loader crashed the page. One app for all failures: the page is rerun for each.
    at = upload(page("trajectories").run(), "mine.jsonl", b'{"prompt": "p", "response": "r"}\n')
    before = working_dataset(at)
    for error in LOADER_FAILURES:
        def failing_loader(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(records_module, "load_records", failing_loader)
        button(at, "up_load").click().run()
        assert not at.exception, (type(error).__name__, [e.value for e in at.exception])
        errors = [e.value for e in at.error]
        assert any("mine.jsonl" in e and "unchanged" in e for e in errors), (type(error).__name__, errors)
        assert working_dataset(at) == before


def test_a_failure_while_reading_the_columns_is_an_error_naming_the_file(monkeypatch):
    def failing_peek(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(records_module, "peek_columns", failing_peek)
    at = page("trajectories").run()
    before = working_dataset(at)
    at.file_uploader[0].set_value(("mine.csv", b"prompt,response\np,r\n", "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("mine.csv" in e.value and "No space left on device" in e.value for e in at.error)
    assert not any(b.key == "up_load" for b in at.button)
    assert working_dataset(at) == before


def test_a_non_utf8_line_is_reported_and_the_other_rows_load():
    # replaces test_app's check that the whole file was refused: now only the bad line is skipped
    at = upload(page("trajectories").run(), "latin.csv", "prompt,response\nq,caf\xe9\nq2,fine\n".encode("latin-1"))
    button(at, "up_load").click().run()
    assert not at.exception
    report = next(d.value for d in at.dataframe if "problem" in d.value.columns)
    assert (report["line"].tolist(), report["field"].tolist()) == ([2], ["response"])
    assert report["problem"][0].startswith("byte 0xe9 is not UTF-8 text")
    assert [(r.prompt, r.response) for r in at.session_state["records"]] == [("q2", "fine")]
    assert at.session_state["dataset_name"] == "Upload: latin.csv"


# ---- generated uploads ----------------------------------------------------------------------
_APP: list = []  # one app for all generated uploads: each upload reruns its page


def trajectories_app():
    if not _APP:
        _APP.append(page("trajectories").run())
    return _APP[0]


KINDS = ["good", "good", "good", "missing_response", "bad_correct", "number_response", "not_json", "not_object",
         "lone_surrogate", "non_utf8", "deep"]
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=12)


@st.composite
def upload_files(draw):
    """(file name, bytes, planned rows: (line, kind, row fields)) of a JSONL or CSV upload, or a
    whole file that cannot be read (planned None)."""
    n = draw(st.integers(0, 10**6))
    broken = draw(st.sampled_from([None] * 6 + ["empty.json", "random.parquet", "broken.json", "blank.jsonl"]))
    if broken == "empty.json":
        return f"e{n}.json", b"", None
    if broken == "random.parquet":
        return f"r{n}.parquet", draw(st.binary(max_size=40)), None
    if broken == "broken.json":
        return f"b{n}.json", b'[{"prompt": "p", ', None
    if broken == "blank.jsonl":
        return f"w{n}.jsonl", b"\n \n\t\n", None
    fmt = draw(st.sampled_from(["jsonl", "csv"]))
    planned = []
    for line in range(1, draw(st.integers(1, 5)) + 1):
        kind = draw(st.sampled_from([k for k in KINDS if fmt == "jsonl" or k not in
                                     ("number_response", "not_json", "not_object", "lone_surrogate", "deep")]))
        fields = {"prompt": draw(texts), "response": draw(texts), "correct": draw(st.sampled_from([True, False, None]))}
        if kind == "missing_response":
            fields.pop("response") if fmt == "jsonl" else fields.update(response=None)
        elif kind == "bad_correct":
            fields["correct"] = "maybe"
        elif kind == "number_response":
            fields["response"] = draw(st.integers())
        elif kind == "lone_surrogate":
            fields["response"] += "\ud800"
        elif kind == "non_utf8":
            fields["response"] += "@@BYTE@@"
        elif kind == "deep":
            fields["tag"] = json.loads("[" * 500 + "]" * 500)
        planned.append((line, kind, fields))
    if fmt == "jsonl":
        lines = [{"not_json": '{"prompt": ', "not_object": "[1, 2]"}.get(kind) or json.dumps(fields)
                 for _, kind, fields in planned]
        data = "\n".join(lines).encode("utf-8", "surrogatepass") + b"\n"
    else:
        chunks, renumbered, line = ['"prompt","response","correct"\n'], [], 2
        for _, kind, f in planned:
            out = io.StringIO()
            csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(
                ["" if f[c] is None else str(f[c]) for c in ("prompt", "response", "correct")])
            chunks.append(out.getvalue())
            # missing_response in CSV: an empty cell is an empty (good) response
            renumbered.append((line, "good" if kind == "missing_response" else kind, f))
            line += out.getvalue().count("\n")  # quoted newlines make a row span lines ("\r" is never drawn)
        data, planned = "".join(chunks).encode("utf-8"), renumbered
    return f"u{n}.{fmt}", data.replace(b"@@BYTE@@", b"\xe9"), planned


def expected_good_rows(planned) -> list[tuple[str, str, bool | None]]:
    rows = []
    for _, kind, f in planned:
        if kind in ("good", "deep"):
            rows.append((f["prompt"], f["response"] if f["response"] is not None else "", f["correct"]))
    return rows


@settings(derandomize=True, deadline=None, max_examples=20, suppress_health_check=list(HealthCheck))
@given(spec=upload_files())
def test_fuzz_uploads_load_the_good_rows_or_say_why_and_change_nothing(spec):
    name, data, planned = spec
    at = trajectories_app()
    before = working_dataset(at)
    at.file_uploader[0].set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, [e.value for e in at.exception]
    load = next((b for b in at.button if b.key == "up_load"), None)
    if load is None or load.disabled:  # unreadable, or nothing to map: said, and nothing loaded
        assert any(name in e.value for e in at.error), [e.value for e in at.error]
        assert working_dataset(at) == before
        assert planned is None or not expected_good_rows(planned) or load is not None
        TALLY["clean error, nothing loaded"] += 1
        return
    load.click().run()
    assert not at.exception, [e.value for e in at.exception]
    good = expected_good_rows(planned) if planned is not None else []
    if not good:
        assert any(f"No record could be read from {name}" in e.value for e in at.error)
        assert working_dataset(at) == before
        TALLY["clean error, nothing loaded"] += 1
        return
    assert at.session_state["dataset_name"] == f"Upload: {name}"
    got = [(r.prompt, r.response, r.correct) for r in at.session_state["records"]]
    assert got == good
    bad_lines = [line for line, kind, _ in planned if kind not in ("good", "deep")]
    reports = [d.value for d in at.dataframe if "problem" in d.value.columns]
    assert (reports[0]["line"].tolist() if reports else []) == bad_lines
    TALLY["clean error (bad lines reported, good rows loaded)" if bad_lines else "accepted and correct"] += 1
