from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rdpt_core.records import (
    ColumnMapping,
    Record,
    RecordIssue,
    RecordsError,
    load_records,
    records_from_rows,
    records_to_frame,
    write_records_jsonl,
)


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """Rows that are str are written verbatim (to plant broken lines)."""
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def brief(issues: list[RecordIssue]) -> list[tuple[int, str | None]]:
    return [(issue.line, issue.field) for issue in issues]


# ---------------------------------------------------------------- flat layout, JSONL

def test_jsonl_flat_all_fields(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [
        {"record_id": "a", "question_id": "q1", "prompt": "1+1?", "response": "2", "correct": True,
         "source": "teacher", "difficulty": 3},
        {"record_id": 7, "question_id": 1, "prompt": "2+2?", "response": "5", "correct": 0},
    ])
    result = load_records(path)
    assert result.issues == []
    assert result.records == [
        Record("a", "q1", "1+1?", "2", True, "teacher", {"difficulty": 3}),
        Record("7", "1", "2+2?", "5", False, None, {}),
    ]


def test_missing_ids_use_line_number_and_question_id_equals_record_id(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "response": "r"}, "",
                                               {"prompt": "p2", "response": "r2"}])
    records = load_records(path).records
    assert [(r.record_id, r.question_id) for r in records] == [("1", "1"), ("3", "3")]


def test_source_argument_fills_only_rows_without_source(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"prompt": "p", "response": "r", "source": "gemma"},
        {"prompt": "p", "response": "r", "source": ""},
        {"prompt": "p", "response": "r"},
    ])
    records = load_records(path, source="sky-t1").records
    assert [r.source for r in records] == ["gemma", "sky-t1", "sky-t1"]


@pytest.mark.parametrize("prompt_key, response_key", [
    ("question", "output"), ("instruction", "completion"),
    ("input", "answer_text"), ("problem", "generation"),
])
def test_default_mapping_accepts_aliases(tmp_path: Path, prompt_key: str,
                                         response_key: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{prompt_key: "Q", response_key: "A", "x": 1}])
    assert load_records(path).records == [Record("1", "1", "Q", "A", None, None, {"x": 1})]


def test_custom_mapping_reads_named_columns_and_disables_aliases(tmp_path: Path) -> None:
    mapping = ColumnMapping(prompt="q", response="a", record_id="id", question_id=None,
                            correct="ok", source=None)
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"id": "r1", "q": "Q", "a": "A", "ok": "yes", "source": "kept in meta"},
        {"id": "r2", "question": "Q", "output": "A"},
    ])
    result = load_records(path, mapping=mapping, lenient=True)
    assert result.records == [Record("r1", "r1", "Q", "A", True, None, {"source": "kept in meta"})]
    assert brief(result.issues) == [(2, "q")]
    assert result.issues[0].message == "missing column 'q'"


def test_missing_response_names_the_field_and_the_aliases(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p"}])
    result = load_records(path, lenient=True)
    assert result.records == []
    assert str(result.issues[0]) == (
        f"{path}, line 1, field 'response': missing column 'response' "
        "(also tried output, completion, answer_text, generation)")


def test_non_string_prompt_is_an_issue(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": 42, "response": "r"},
                                               {"prompt": "p", "response": None}])
    result = load_records(path, lenient=True)
    assert [str(i) for i in result.issues] == [
        f"{path}, line 1, field 'prompt': expected a string, got 42",
        f"{path}, line 2, field 'response': expected a string, got null",
    ]


@pytest.mark.parametrize("raw, expected", [
    (True, True), (False, False), (1, True), (0, False), (1.0, True), (None, None), ("", None),
    ("TRUE", True), ("false", False), ("Yes", True), ("no", False), ("1", True), ("0", False),
    ("Correct", True), ("incorrect", False), (" null ", None), ("NaN", None), (float("nan"), None),
])
def test_correct_values_accepted(raw: Any, expected: bool | None) -> None:
    result = records_from_rows([(1, {"prompt": "p", "response": "r", "correct": raw})],
                               file="mem", layout="flat")
    assert result.records[0].correct is expected


@pytest.mark.parametrize("raw, shown", [("maybe", "'maybe'"), (2, "2"), ([True], "a list")])
def test_correct_values_rejected(raw: Any, shown: str) -> None:
    with pytest.raises(RecordsError) as info:
        records_from_rows([(4, {"prompt": "p", "response": "r", "correct": raw})], file="mem",
                          layout="flat")
    assert [str(i) for i in info.value.issues] == [
        f"mem, line 4, field 'correct': expected true/false/null, got {shown}"]


@pytest.mark.parametrize("raw", ["", "   ", None, 1.5, True])
def test_bad_ids_are_issues(raw: Any) -> None:
    result = records_from_rows([(1, {"record_id": raw, "prompt": "p", "response": "r"})],
                               file="mem", layout="flat", lenient=True)
    assert result.records == []
    assert brief(result.issues) == [(1, "record_id")]


def test_meta_object_is_unpacked_and_other_columns_added() -> None:
    rows = [(1, {"prompt": "p", "response": "r", "meta": {"gt": "3"}, "tag": "x"}),
            (2, {"prompt": "p", "response": "r", "meta": '{"gt": "4"}'}),
            (3, {"prompt": "p", "response": "r", "meta": "free text"})]
    records = records_from_rows(rows, file="mem").records
    assert [r.meta for r in records] == [
        {"gt": "3", "tag": "x"}, {"gt": "4"}, {"meta": "free text"}]


# ---------------------------------------------------------------- strict and lenient

def test_strict_mode_raises_with_file_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [
        {"prompt": "p", "response": "r", "correct": True},
        {"prompt": "p", "response": "r", "correct": False},
        {"prompt": "p", "response": "r", "correct": "maybe"},
    ])
    with pytest.raises(RecordsError) as info:
        load_records(path)
    issue = RecordIssue(str(path), 3, "correct", "expected true/false/null, got 'maybe'")
    assert info.value.issues == [issue]
    assert str(issue) == f"{path}, line 3, field 'correct': expected true/false/null, got 'maybe'"
    assert str(info.value) == f"1 problem(s) in the input:\n  {issue}"
    assert isinstance(info.value, ValueError)


def test_strict_error_lists_first_five_issues_then_count() -> None:
    rows = [(n, {"prompt": "p"}) for n in range(1, 9)]
    with pytest.raises(RecordsError) as info:
        records_from_rows(rows, file="f.jsonl", layout="flat")
    assert len(info.value.issues) == 8
    lines = str(info.value).splitlines()
    assert lines[0] == "8 problem(s) in the input:"
    assert lines[1].startswith("  f.jsonl, line 1, field 'response': missing column 'response'")
    assert lines[5].startswith("  f.jsonl, line 5, ")
    assert lines[6] == "  ... and 3 more"
    assert len(lines) == 7


def test_lenient_keeps_good_lines_around_bad_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        {"record_id": "a", "prompt": "p", "response": "r1"},
        '{"record_id": "b", "prompt": "p", ',  # broken JSON
        {"record_id": "c", "prompt": "p", "response": "r3"},
        {"record_id": "d", "prompt": "p", "response": "r4", "correct": "maybe"},
        {"record_id": "e", "prompt": "p", "response": "r5", "correct": "yes"},
        {"record_id": "f", "prompt": "p"},
        {"record_id": "g", "prompt": "p", "response": "r7"},
    ])
    result = load_records(path, lenient=True)
    assert [(r.record_id, r.response, r.correct) for r in result.records] == [
        ("a", "r1", None), ("c", "r3", None), ("e", "r5", True), ("g", "r7", None)]
    assert brief(result.issues) == [(2, None), (4, "correct"), (6, "response")]
    assert str(result.issues[0]).startswith(f"{path}, line 2: invalid JSON: ")
    with pytest.raises(RecordsError) as info:
        load_records(path)
    assert brief(info.value.issues) == [(2, None), (4, "correct"), (6, "response")]


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [[1, 2], {"prompt": "p", "response": "r"}])
    result = load_records(path, lenient=True)
    assert [r.record_id for r in result.records] == ["2"]
    assert [str(i) for i in result.issues] == [f"{path}, line 1: expected an object, got a list"]


def test_duplicate_record_id_reports_later_line_and_drops_it(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"record_id": "x", "prompt": "p", "response": "first"},
        {"record_id": "y", "prompt": "p", "response": "other"},
        {"record_id": "x", "prompt": "p", "response": "second"},
    ])
    result = load_records(path, lenient=True)
    assert [(r.record_id, r.response) for r in result.records] == [("x", "first"), ("y", "other")]
    assert [str(i) for i in result.issues] == [
        f"{path}, line 3, field 'record_id': duplicate record_id 'x' (first on line 1)"]
    with pytest.raises(RecordsError):
        load_records(path)


# ---------------------------------------------------------------- formats

def test_unknown_extension_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text('{"prompt": "p", "response": "r"}\n')
    with pytest.raises(ValueError, match="data.txt"):
        load_records(path)
    assert load_records(path, fmt="jsonl").records == [Record("1", "1", "p", "r")]


def test_ndjson_extension_is_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.NDJSON", [{"prompt": "p", "response": "r"}])
    assert load_records(path).records == [Record("1", "1", "p", "r")]


@pytest.mark.parametrize("wrap", [None, "data", "records"])
def test_json_list_or_wrapped_list(tmp_path: Path, wrap: str | None) -> None:
    items = [{"record_id": "a", "prompt": "p", "response": "r"}, {"prompt": "p2", "response": "r2"}]
    path = tmp_path / "d.json"
    path.write_text(json.dumps(items if wrap is None else {wrap: items, "version": 1}, indent=2))
    assert load_records(path).records == [Record("a", "a", "p", "r"), Record("2", "2", "p2", "r2")]


def test_json_issues_count_items(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"prompt": "p", "response": "r"}, {"prompt": "p"}], indent=2))
    result = load_records(path, lenient=True)
    assert [r.record_id for r in result.records] == ["1"]
    assert str(result.issues[0]).startswith(f"{path}, item 2, field 'response': missing column")


def test_json_broken_or_wrong_shape_is_a_whole_file_issue(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"prompt": "p",\n  oops}\n]')
    result = load_records(broken, lenient=True)
    assert result.records == []
    assert [str(i) for i in result.issues] == [
        f"{broken}: invalid JSON at line 3, column 3: "
        "Expecting property name enclosed in double quotes"]
    shape = tmp_path / "shape.json"
    shape.write_text('{"rows": []}')
    with pytest.raises(RecordsError, match="'data' or 'records' list"):
        load_records(shape)


def test_csv_multiline_quoted_fields_keep_physical_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        "record_id,prompt,response,correct,model\n"        # line 1
        'a,"Line one\nline two",Short,yes,m1\n'             # lines 2-3
        'b,P,"Step 1.\n\nStep 2, done.\nEnd",no,m2\n'      # lines 4-7
        'c,P,"R\nR",maybe,m3\n'                             # lines 8-9: bad correct
        '"d",P,"x\ny",1,m4\n'                               # lines 10-11
        "e,P\n",                                            # line 12: too few fields
        encoding="utf-8")
    result = load_records(path, lenient=True)
    assert result.records == [
        Record("a", "a", "Line one\nline two", "Short", True, None, {"model": "m1"}),
        Record("b", "b", "P", "Step 1.\n\nStep 2, done.\nEnd", False, None, {"model": "m2"}),
        Record("d", "d", "P", "x\ny", True, None, {"model": "m4"}),
    ]
    assert [str(i) for i in result.issues] == [
        f"{path}, line 8, field 'correct': expected true/false/null, got 'maybe'",
        f"{path}, line 12: expected 5 fields, got 2",
    ]


def test_csv_generated_ids_are_the_starting_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('prompt,response\n"a\nb\nc",r\n\np,"x\r\ny"\nq,z\n', encoding="utf-8")
    records = load_records(path).records
    assert [(r.record_id, r.prompt, r.response) for r in records] == [
        ("2", "a\nb\nc", "r"), ("6", "p", "x\r\ny"), ("8", "q", "z")]


def test_csv_long_field_and_bom(tmp_path: Path) -> None:
    long = "word " * 60_000  # 300k characters: over csv's default field limit
    path = tmp_path / "d.csv"
    pd.DataFrame({"prompt": ["p"], "response": [long]}).to_csv(path, index=False,
                                                                encoding="utf-8-sig")
    assert load_records(path).records == [Record("2", "2", "p", long)]


def test_parquet_columns_become_plain_python(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({
        "record_id": ["r1", "r2"], "question_id": [10, 10], "prompt": ["p", "p"],
        "response": ["a", "b"], "correct": [True, False], "tags": [["x", "y"], []],
        "score": [0.5, np.nan],
    }).to_parquet(path)
    result = load_records(path)
    assert result.records == [
        Record("r1", "10", "p", "a", True, None, {"tags": ["x", "y"], "score": 0.5}),
        Record("r2", "10", "p", "b", False, None, {"tags": [], "score": None}),
    ]
    assert type(result.records[0].meta["tags"]) is list


def test_parquet_issue_counts_rows(tmp_path: Path) -> None:
    path = tmp_path / "d.pq"
    pd.DataFrame({"prompt": ["p", "p"], "response": ["r", None]}).to_parquet(path)
    result = load_records(path, lenient=True)
    assert [str(i) for i in result.issues] == [
        f"{path}, row 2, field 'response': expected a string, got null"]


def test_parquet_round_trip_through_records_to_frame(tmp_path: Path) -> None:
    records = [
        Record("a", "q", "p", "r1", True, "teacher", {"gt": "3", "level": 2}),
        Record("b", "q", "p", "r2", None, None, {}),
        Record("c", "q2", "p2", "r3", False, "student",
               {"history": [{"role": "user", "content": "hi"}]}),
    ]
    frame = records_to_frame(records)
    frame["meta"] = frame["meta"].map(json.dumps)  # heterogeneous dicts are stored as JSON text
    path = tmp_path / "round.parquet"
    frame.to_parquet(path)
    assert load_records(path).records == records


def test_jsonl_round_trip(tmp_path: Path) -> None:
    records = [
        Record("0:0", "0", "Q\n", "<think>x</think>", True, "sky", {"gt": "1", "pred": "1"}),
        Record("0:1", "0", "Q\n", "é \u2028 ✓", None, None, {}),
    ]
    path = tmp_path / "out.jsonl"
    write_records_jsonl(records, path)
    assert path.read_bytes().count(b"\n") == 2  # U+2028 stays inside its line
    assert load_records(path).records == records


def test_records_to_frame_columns_and_types() -> None:
    frame = records_to_frame([Record("a", "q", "p", "r", True, "s", {"k": 1}),
                              Record("b", "q", "p", "r")])
    assert list(frame.columns) == ["record_id", "question_id", "prompt", "response", "correct",
                                   "source", "meta"]
    assert str(frame["correct"].dtype) == "boolean"
    assert frame["correct"].tolist() == [True, pd.NA]
    assert frame["meta"].tolist() == [{"k": 1}, {}]
    assert list(records_to_frame([]).columns) == list(frame.columns)


def test_records_from_rows_accepts_pandas_rows() -> None:
    frame = pd.DataFrame({"prompt": ["p"], "response": ["r"], "correct": [np.bool_(True)],
                          "ids": [np.array([1, 2])], "n": [np.int64(3)]})
    rows = enumerate(frame.to_dict("records"), start=1)
    result = records_from_rows(rows, file="pasted", layout="auto")
    expected = Record("1", "1", "p", "r", True, None, {"ids": [1, 2], "n": 3})
    assert (result.records, result.issues) == ([expected], [])
    assert type(result.records[0].meta["n"]) is int


def test_unknown_layout_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown layout"):
        records_from_rows([], file="mem", layout="alpaca")


# ---------------------------------------------------------------- SkyThought layout

SKY_ROWS = [
    {"idx": 7, "question": "What is 2+3?", "gt": "5", "solution": "2+3=5", "level": 2,
     "code": ["<|begin_of_thought|>\n\nIt is 5.<|end_of_thought|>", "It is 6."],
     "pred": ["5", "6"], "report": [None, None], "score": [True, False]},
    {"question": "Name a prime.", "gt": "2", "solution": "2",
     "code": ["2", "4", "7"], "pred": "2", "score": [True]},
]


def test_skythought_one_record_per_response(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "math500.model.jsonl", SKY_ROWS)
    result = load_records(path, source="model")
    assert result.issues == []
    assert result.records == [
        Record("7:0", "7", "What is 2+3?", "<|begin_of_thought|>\n\nIt is 5.<|end_of_thought|>",
               True, "model", {"gt": "5", "level": 2, "pred": "5"}),
        Record("7:1", "7", "What is 2+3?", "It is 6.", False, "model",
               {"gt": "5", "level": 2, "pred": "6"}),
        Record("2:0", "2", "Name a prime.", "2", True, "model", {"gt": "2", "pred": "2"}),
        Record("2:1", "2", "Name a prime.", "4", None, "model", {"gt": "2", "pred": "2"}),
        Record("2:2", "2", "Name a prime.", "7", None, "model", {"gt": "2", "pred": "2"}),
    ]


def test_skythought_bad_types_name_the_element(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "sky.jsonl", [
        {"idx": 0, "question": "Q0", "code": ["ok", 5, "fine"], "score": [True, True, "yes"]},
        {"idx": 1, "question": "Q1", "code": ["a"], "score": "all"},
        {"idx": 2, "question": "Q2", "code": ["b"], "score": [False], "pred": []},
    ])
    result = load_records(path, lenient=True)
    assert [(r.record_id, r.correct, r.meta) for r in result.records] == [
        ("0:0", True, {}), ("2:0", False, {"pred": None})]
    assert [str(i) for i in result.issues] == [
        f"{path}, line 1, field 'code[1]': expected a string, got 5",
        f"{path}, line 1, field 'score[2]': expected true/false/null, got 'yes'",
        f"{path}, line 2, field 'score': expected a list of true/false, got 'all'",
    ]


def test_skythought_duplicate_idx_is_a_duplicate_record_id(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "sky.jsonl", [{"idx": 3, "question": "Q", "code": ["a"]},
                                                 {"idx": 3, "question": "Q", "code": ["b"]}])
    result = load_records(path, lenient=True)
    assert [r.response for r in result.records] == ["a"]
    assert brief(result.issues) == [(2, "record_id")]


def test_forced_skythought_layout_reports_missing_fields() -> None:
    result = records_from_rows([(1, {"question": "Q", "code": "not a list"}),
                                (2, {"prompt": "p", "response": "r"})],
                               file="mem", layout="skythought", lenient=True)
    assert result.records == []
    assert brief(result.issues) == [(1, "code"), (2, "question")]


def test_auto_layout_is_chosen_per_row(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mix.jsonl", [
        {"idx": 0, "question": "Q", "code": ["sky"]},
        {"messages": [{"role": "user", "content": "U"}, {"role": "assistant", "content": "chat"}]},
        {"question": "Q", "output": "flat"},
    ])
    assert [(r.record_id, r.prompt, r.response) for r in load_records(path).records] == [
        ("0:0", "Q", "sky"), ("2", "U", "chat"), ("3", "Q", "flat")]


# ---------------------------------------------------------------- chat layout

def test_openai_messages(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "chat.jsonl", [{
        "record_id": "c1", "question_id": "q9", "correct": "correct", "model": "gpt",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user",
             "content": [{"type": "text", "text": "2+2"}, {"type": "text", "text": "?"}]},
            {"role": "assistant", "content": "4"},
        ],
    }])
    assert load_records(path).records == [Record(
        "c1", "q9", "2+2?", "4", True, None,
        {"model": "gpt", "system": "Be brief.",
         "history": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
    )]


def test_sharegpt_conversations(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "share.jsonl", [
        {"id": "s1", "conversations": [{"from": "system", "value": "Sys"},
                                       {"from": "human", "value": "Q"},
                                       {"from": "gpt", "value": "A"}]},
        {"conversations": [{"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"},
                           {"from": "human", "value": "trailing, no answer"}]},
    ])
    assert load_records(path, source="teacher").records == [
        Record("1", "1", "Q", "A", None, "teacher", {"id": "s1", "system": "Sys"}),
        Record("2", "2", "Q2", "A2", None, "teacher", {}),
    ]


def test_chat_turns_between_prompt_and_answer_go_to_meta() -> None:
    row = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "draft"},
                        {"role": "assistant", "content": "final"}]}
    [record] = records_from_rows([(1, row)], file="mem").records
    assert (record.prompt, record.response) == ("Q", "final")
    assert record.meta == {"between": [{"role": "assistant", "content": "draft"}]}


def test_chat_problems_are_issues(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "user", "content": "Q"}]},
        {"conversations": [{"from": "gpt", "value": "A"}]},
        {"messages": [{"role": "user", "content": "Q"}, "oops"]},
        {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "A"}]},
        {"messages": [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "fine"}]},
    ])
    result = load_records(path, lenient=True)
    assert [(r.record_id, r.response) for r in result.records] == [("5", "fine")]
    assert [str(i) for i in result.issues] == [
        f"{path}, line 1, field 'messages': no assistant turn",
        f"{path}, line 2, field 'conversations': no user turn before the final assistant turn",
        f"{path}, line 3, field 'messages[1]': expected an object, got 'oops'",
        f"{path}, line 4, field 'messages[0]': expected a string, got null",
    ]


def test_forced_chat_layout_without_messages() -> None:
    result = records_from_rows([(1, {"prompt": "p", "response": "r"})], file="mem",
                               layout="chat", lenient=True)
    assert [str(i) for i in result.issues] == [
        "mem, line 1, field 'messages': expected a 'messages' or 'conversations' list"]


def test_peek_columns_lists_first_rows_keys_in_order(tmp_path):
    from rdpt_core.records import peek_columns

    path = tmp_path / "x.jsonl"
    path.write_text('{"q": "a", "out": "b"}\nnot json\n{"q": "c", "extra": 1}\n')
    assert peek_columns(path) == ["q", "out", "extra"]


# ---------------------------------------------------------------- origins and exports

def test_origins_give_back_each_flat_row_as_read(tmp_path: Path) -> None:
    rows = [{"id": "a", "prompt": "P", "response": "R", "extra": [1, 2], "correct": "yes"},
            {"prompt": "P2", "response": "R2", "score": 0.5}]
    result = load_records(write_jsonl(tmp_path / "in.jsonl", rows),
                          mapping=ColumnMapping(record_id="id"))
    assert [result.origins[r.record_id].original_row() for r in result.records] == rows
    assert [result.origins[r.record_id].line for r in result.records] == [1, 2]


def test_skythought_origin_is_cut_to_the_record_response(tmp_path: Path) -> None:
    result = load_records(write_jsonl(tmp_path / "sky.jsonl", SKY_ROWS))
    rows = {rid: o.original_row() for rid, o in result.origins.items()}
    assert rows["7:1"] == {**SKY_ROWS[0], "code": ["It is 6."], "pred": ["6"], "report": [None],
                           "score": [False]}
    # a short score list: the third response's score is unknown, so its list is empty
    assert rows["2:2"] == {**SKY_ROWS[1], "code": ["7"], "score": []}
    # reading the cut row back gives the same record (same layout, same fields)
    back = records_from_rows([(1, rows["7:1"])], file="x").records[0]
    assert (back.response, back.correct, back.meta["pred"]) == ("It is 6.", False, "6")


def test_real_skythought_rows_keep_every_field(tmp_path: Path) -> None:
    from conftest import DATA

    path = DATA / "aime24.gemma-2-27b-it.jsonl"
    first = json.loads(path.read_text().splitlines()[0])
    origin = load_records(path).origins[f"{first['idx']}:0"]
    assert origin.original_row() == first  # one response per row: nothing to cut


def test_export_row_adds_columns_and_refuses_to_overwrite() -> None:
    from rdpt_core.records import Origin, export_row

    rec = Record("a", "q", "P", "R")
    assert export_row(rec, Origin(1, {"prompt": "P", "response": "R", "x": 1}), {"rdpt_n": 2}) == {
        "prompt": "P", "response": "R", "x": 1, "rdpt_n": 2}
    assert export_row(rec, None, {"rdpt_n": 2})["record_id"] == "a"  # no origin: the flat layout
    with pytest.raises(ValueError, match="record 'a'.*x already exist"):
        export_row(rec, Origin(1, {"x": 1}), {"x": 2})


# ---- column mapping helpers and non-UTF-8 input ------------------------------------------------
def test_guess_mapping_takes_the_first_alias_present_and_none_when_nothing_fits():
    from rdpt_core.records import guess_mapping

    assert guess_mapping(["a", "b"]) == {"prompt": None, "response": None, "record_id": None,
                                         "question_id": None, "correct": None, "source": None}
    got = guess_mapping(["problem", "generation", "id", "is_correct", "model", "question"])
    assert got == {"prompt": "question", "response": "generation", "record_id": "id", "question_id": None,
                   "correct": "is_correct", "source": "model"}


def test_mapping_problems_refuse_missing_and_repeated_columns():
    from rdpt_core.records import mapping_problems

    columns = ["a", "b"]
    assert mapping_problems({"prompt": "a", "response": "b"}, columns) == []
    assert mapping_problems({"prompt": None, "response": "b"}, columns) == ["choose the column that holds the prompt"]
    same = mapping_problems({"prompt": "a", "response": "a"}, columns)
    assert same == ["column 'a' is mapped to prompt and response; each column can feed one field"]
    assert mapping_problems({"prompt": "a", "response": "b", "correct": "z"}, columns) == [
        "correct: no column 'z' in the file"]


def test_non_utf8_jsonl_line_is_reported_and_the_good_lines_load(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"prompt": "p", "response": "ok"}\n{"prompt": "p", "response": "caf\xe9"}\n')
    result = load_records(path, lenient=True, name="mine.jsonl")
    assert [r.response for r in result.records] == ["ok"]
    assert [(i.file, i.line, i.field) for i in result.issues] == [("mine.jsonl", 2, "response")]
    assert result.issues[0].message.startswith("byte 0xe9 is not UTF-8 text")


# ---- issue 12: defects found by fuzzing (each test failed before its fix) ----------------------
def issue_texts(result_or_error: Any) -> list[str]:
    return [str(issue) for issue in result_or_error.issues]


def test_a_too_long_integer_in_an_unused_field_skips_only_its_line(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text('{"prompt": "p", "response": "ok1"}\n'
                    '{"prompt": "p", "response": "r", "x": ' + "7" * 5000 + '}\n'
                    '{"prompt": "p", "response": "ok3"}\n', encoding="utf-8")
    result = load_records(path, lenient=True)
    assert [r.response for r in result.records] == ["ok1", "ok3"]
    assert brief(result.issues) == [(2, "x")]
    assert "5000 digits" in result.issues[0].message
    with pytest.raises(RecordsError, match=rf"{path}, line 2, field 'x': "):
        load_records(path)


def test_a_too_long_integer_in_a_json_list_names_the_item(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text('[{"prompt": "p", "response": "a"}, {"prompt": "p", "response": "b", "n": [1, '
                    + "9" * 4400 + ']}]', encoding="utf-8")
    result = load_records(path, lenient=True)
    assert [r.response for r in result.records] == ["a"]
    assert brief(result.issues) == [(2, "n")] and result.issues[0].unit == "item"


def test_a_non_utf8_byte_in_a_csv_skips_only_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"prompt,response\nq,fine\nq,caf\xe9\nq,also fine\n")
    result = load_records(path, lenient=True)
    assert [r.response for r in result.records] == ["fine", "also fine"]
    assert issue_texts(result) == [
        f"{path}, line 3, field 'response': byte 0xe9 is not UTF-8 text (or '\\udce9' is half of a "
        "surrogate pair); save the file as UTF-8"]
    with pytest.raises(RecordsError, match=rf"{path}, line 3, field 'response': byte 0xe9"):
        load_records(path)


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
def test_a_non_utf8_file_is_named_with_the_line_and_the_offending_byte(tmp_path, suffix):
    path = tmp_path / f"upload{suffix}"
    body = {".csv": "prompt,response\nq,caf\xe9\n",
            ".json": '[{"prompt": "q", "response": "caf\xe9"}]',
            ".jsonl": '{"prompt": "q", "response": "caf\xe9"}\n'}[suffix]
    path.write_bytes(body.encode("latin-1"))
    unit = "item 1" if suffix == ".json" else ("line 2" if suffix == ".csv" else "line 1")
    with pytest.raises(RecordsError, match=rf"mine{suffix}, {unit}, field 'response': byte 0xe9 is not UTF-8"):
        load_records(path, name=f"mine{suffix}")


def test_legal_deeply_nested_json_in_an_unused_field_keeps_the_row(tmp_path: Path) -> None:
    deep = "[" * 500 + "]" * 500
    jsonl = tmp_path / "deep.jsonl"
    jsonl.write_text('{"prompt": "p", "response": "r", "x": ' + deep + '}\n', encoding="utf-8")
    [record] = load_records(jsonl).records
    depth, value = 0, record.meta["x"]
    while value:
        depth, value = depth + 1, value[0]
    assert depth == 499  # 500 brackets: 499 non-empty lists around the innermost empty one
    as_list = tmp_path / "deep.json"
    as_list.write_text('[{"prompt": "p", "response": "r", "x": ' + deep + '}]', encoding="utf-8")
    assert load_records(as_list).records == [record]


def test_json_nested_too_deeply_to_read_is_a_clear_error_naming_the_line(tmp_path: Path) -> None:
    too_deep = '{"prompt": "p", "response": "r", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    jsonl = tmp_path / "deep.jsonl"
    jsonl.write_text('{"prompt": "p", "response": "ok"}\n' + too_deep + "\n", encoding="utf-8")
    result = load_records(jsonl, lenient=True)
    assert [r.response for r in result.records] == ["ok"]
    assert brief(result.issues) == [(2, None)] and "nested" in result.issues[0].message
    as_list = tmp_path / "deep.json"
    as_list.write_text('[\n{"prompt": "p", "response": "ok"},\n' + too_deep + "\n]", encoding="utf-8")
    with pytest.raises(RecordsError, match=rf"{as_list}: nested more than \d+ levels deep at line 3"):
        load_records(as_list)


def test_lone_surrogates_are_rejected_at_load_naming_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"prompt": "p", "response": "half \\ud800 of a pair"}\n'
                    '{"prompt": "p", "response": "fine \\ud83d\\ude00"}\n'
                    '{"prompt": "p", "response": "r", "meta": {"k": ["\\udfff"]}}\n', encoding="utf-8")
    result = load_records(path, lenient=True)
    assert [r.response for r in result.records] == ["fine \U0001F600"]
    assert brief(result.issues) == [(1, "response"), (3, "meta")]
    assert "'\\ud800' is half of a surrogate pair" in result.issues[0].message
    rows = records_from_rows([(4, {"prompt": "p", "response": "r", "\udc80key": 1})], file="mem", lenient=True)
    assert rows.records == [] and "half of a surrogate pair" in rows.issues[0].message


def test_skythought_row_without_responses_is_reported(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "sky.jsonl", [{"idx": 1, "question": "Q", "code": []},
                                                 {"idx": 2, "question": "Q", "code": ["a"]}])
    result = load_records(path, lenient=True)
    assert [r.record_id for r in result.records] == ["2:0"]
    assert issue_texts(result) == [f"{path}, line 1, field 'code': no responses (an empty list)"]


def test_rows_without_ids_never_collide_with_explicit_ids(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ids.jsonl", [
        {"prompt": "p", "response": "no id, line 1"},
        {"record_id": "1", "prompt": "p", "response": "explicit 1"},
        {"record_id": "a", "question_id": "4", "prompt": "p", "response": "explicit a of question 4"},
        {"prompt": "p", "response": "no id, line 4"},
        {"question": "Q", "code": ["sky without idx, line 5"]},
        {"record_id": "5:0", "prompt": "p", "response": "explicit 5:0"},
        {"prompt": "p", "response": "no id, line 7"},
        {"question_id": "8", "prompt": "p", "response": "no id, question 8, line 8"},
        {"question_id": "q", "prompt": "p", "response": "no id, question q, line 9"},
    ])
    result = load_records(path)
    got = {r.response: (r.record_id, r.question_id) for r in result.records}
    assert len(got) == 9 and result.issues == []
    assert got["no id, question 8, line 8"] == ("line-8", "8")  # "8" is an explicit (question) id
    assert got["no id, question q, line 9"] == ("9", "q")
    assert got["explicit 1"] == ("1", "1") and got["explicit 5:0"] == ("5:0", "5:0")
    assert got["no id, line 7"] == ("7", "7")  # nothing to avoid: the line number, as before
    explicit = {"1", "a", "4", "5:0"}
    for text in ("no id, line 1", "no id, line 4", "sky without idx, line 5"):
        assert not set(got[text]) & explicit, text  # neither its record id nor its question id
    assert got["sky without idx, line 5"][0].endswith(":0")


def test_genuine_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dup.jsonl", [{"prompt": "p", "response": "no id"},
                                                 {"record_id": 9, "prompt": "p", "response": "a"},
                                                 {"record_id": "9", "prompt": "p", "response": "b"}])
    result = load_records(path, lenient=True)
    assert [r.response for r in result.records] == ["no id", "a"]
    assert issue_texts(result) == [f"{path}, line 3, field 'record_id': duplicate record_id '9' (first on line 2)"]


def test_duplicate_json_keys_are_an_error_naming_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "dup.jsonl"
    path.write_text('{"prompt": "p", "response": "a", "response": "b"}\n'
                    '{"prompt": "p", "response": "ok", "meta": {"k": 1, "k": 2}}\n'
                    '{"prompt": "p", "response": "fine"}\n', encoding="utf-8")
    result = load_records(path, lenient=True)
    assert [r.response for r in result.records] == ["fine"]
    assert issue_texts(result) == [f"{path}, line 1, field 'response': duplicate key 'response' in one object",
                                   f"{path}, line 2, field 'meta': duplicate key 'k' in one object"]
    as_list = tmp_path / "dup.json"
    as_list.write_text('[{"prompt": "p", "response": "a", "prompt": "q"}]', encoding="utf-8")
    with pytest.raises(RecordsError, match=rf"{as_list}, item 1, field 'prompt': duplicate key 'prompt'"):
        load_records(as_list)


def test_duplicate_csv_headers_are_an_error_naming_the_column(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("prompt,response,response\np,a,b\n", encoding="utf-8")
    with pytest.raises(RecordsError) as info:
        load_records(path)
    assert issue_texts(info.value) == [f"{path}, line 1, field 'response': duplicate column name "
                                       "'response' (columns 2 and 3)"]


def test_parquet_binary_timestamp_date_and_decimal_columns_map_to_plain_values(tmp_path: Path) -> None:
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "typed.parquet"
    pq.write_table(pa.table({
        "prompt": ["p", "p"], "response": pa.array([b"text as bytes", b"r"], pa.binary()),
        "blob": pa.array([b"\x00\xff", b"ok"], pa.binary()),
        "at": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5), None], pa.timestamp("us")),
        "at_ns": pa.array([1, 2], pa.timestamp("ns", tz="UTC")),
        "day": pa.array([dt.date(2024, 1, 2), dt.date(1999, 12, 31)]),
        "price": pa.array([Decimal("1.50"), Decimal("-2.25")], pa.decimal128(5, 2)),
        "count": pa.array([Decimal("12345678901234567890"), Decimal("0")], pa.decimal128(38, 0)),
        "took": pa.array([1500, 0], pa.duration("ms")),
    }), path)
    first, second = load_records(path).records
    assert first.response == "text as bytes"  # binary that holds UTF-8 text is that text
    assert first.meta == {"blob": "base64:AP8=", "at": "2024-01-02T03:04:05",
                          "at_ns": "1970-01-01T00:00:00.000000001+00:00", "day": "2024-01-02",
                          "price": 1.5, "count": 12345678901234567890, "took": 1.5}
    assert second.meta["at"] is None and second.meta["price"] == -2.25 and second.meta["blob"] == "ok"
    bad = tmp_path / "binary_prompt.parquet"
    pq.write_table(pa.table({"prompt": pa.array([b"\xff\xfe"], pa.binary()), "response": ["r"]}), bad)
    result = load_records(bad, lenient=True)
    assert result.records == [] and issue_texts(result) == [
        f"{bad}, row 1, field 'prompt': expected a string, got binary data (2 bytes, not UTF-8 text)"]


def test_a_file_that_is_not_parquet_is_a_whole_file_issue(tmp_path: Path) -> None:
    path = tmp_path / "fake.parquet"
    path.write_bytes(b'{"prompt": "p", "response": "r"}\n')
    result = load_records(path, lenient=True, name="fake.parquet")
    assert result.records == [] and [(i.file, i.line) for i in result.issues] == [("fake.parquet", 0)]
    assert result.issues[0].message.startswith("not a readable Parquet file")
    with pytest.raises(RecordsError, match="fake.parquet: not a readable Parquet file"):
        load_records(path, name="fake.parquet")


def test_duplicate_parquet_column_names_are_an_error(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array(["p"]), pa.array(["a"]), pa.array(["b"])],
                                        names=["prompt", "response", "response"]), path)
    with pytest.raises(RecordsError, match=rf"{path}, field 'response': duplicate column name 'response'"):
        load_records(path)


def test_an_unterminated_csv_quote_loses_only_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "quote.csv"
    path.write_text('prompt,response\np,"never closed\nq,good one\nr,"quoted, fine"\ns,"bad"x\nt,last\n',
                    encoding="utf-8")
    result = load_records(path, lenient=True)
    assert [(r.record_id, r.response) for r in result.records] == [
        ("3", "good one"), ("4", "quoted, fine"), ("6", "last")]
    assert brief(result.issues) == [(2, None), (5, None)]
    assert "quote" in result.issues[0].message


def test_write_jsonl_is_atomic_and_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    from rdpt_core.records import write_jsonl as write_rows

    path = tmp_path / "out.jsonl"
    assert write_rows([{"a": 1}], path) == 1

    def rows_then_failure():
        yield {"a": 2}
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_rows(rows_then_failure(), path)
    assert path.read_text(encoding="utf-8") == '{"a": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_peek_columns_says_why_when_no_row_can_be_read(tmp_path: Path) -> None:
    from rdpt_core.records import peek_columns

    broken = tmp_path / "broken.json"
    broken.write_text('[{"prompt": "p",', encoding="utf-8")
    with pytest.raises(RecordsError, match=rf"{broken}: invalid JSON at line 1"):
        peek_columns(broken)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(RecordsError, match=rf"{empty}: no rows to read: the file is empty"):
        peek_columns(empty)
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        peek_columns(empty, fmt="xml")


def test_a_csv_header_that_is_not_utf8_is_one_clear_issue(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_bytes(b"prompt,r\xe9ponse\np,r\n")
    with pytest.raises(RecordsError) as info:
        load_records(path)
    assert issue_texts(info.value) == [
        f"{path}, line 1: column name 'r\\udce9ponse': byte 0xe9 is not UTF-8 text (or '\\udce9' is half "
        "of a surrogate pair); save the file as UTF-8"]

def test_made_up_ids_avoid_the_ids_of_the_dataset_they_join(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "more.jsonl", [
        {"prompt": "p", "response": "no id, line 1"},
        {"prompt": "p", "response": "no id, line 2"},
        {"record_id": "2", "prompt": "p", "response": "explicit 2"},
    ])
    in_use = {"1", "line-1", "2"}  # ids of an earlier id-less upload, already in the dataset
    got = {r.response: (r.record_id, r.question_id) for r in load_records(path, in_use=in_use).records}
    assert got["no id, line 1"] == ("line-1-2", "line-1-2")
    assert got["no id, line 2"] == ("line-2", "line-2")
    assert got["explicit 2"] == ("2", "2")  # an id the input names is kept (and skipped when added)
    assert load_records(path).records[0].record_id == "1"  # alone, the line number as before
