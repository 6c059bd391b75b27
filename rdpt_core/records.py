"""Load evaluation outputs into normalised :class:`Record` objects (docs/method.md §1 and §14).

Every format (JSONL, JSON, CSV, Parquet) is first turned into ``(line, row)`` pairs and then fed
to :func:`records_from_rows`, so layout detection, validation and error messages are shared by
all formats and by data pasted or uploaded in the app. Each record remembers its input row
(:class:`Origin`), so selected data can be written back in the input's own schema.

What a bad input does (strict mode raises :class:`RecordsError`; lenient mode skips and reports):

* Text is UTF-8. A byte that is not (CSV, JSON, JSONL alike), or a lone surrogate from a JSON
  escape such as ``"\\ud800"``, is reported at its line/item and field; the other rows load.
* A JSON object with a key twice, a CSV header or Parquet schema with a column name twice, and a
  JSON integer too long for Python to read (over 4300 digits) are reported, never resolved
  silently. Values nested deeper than :data:`MAX_DEPTH` levels are reported, shallower ones
  (in any field) load.
* A CSV record that breaks the quoting rules (a quote never closed, text after a closing quote)
  is reported and skipped without swallowing the good rows after it (see :func:`_csv_records`).
* Parquet values become plain JSON-able Python: binary that holds UTF-8 text is that text, other
  binary is ``"base64:<data>"`` (a field that needs text refuses it as binary data); timestamps,
  dates and times are ISO 8601 text; decimals are numbers (int when the column has no scale,
  else float); durations are seconds (float). A file pyarrow cannot read is a whole-file issue.
* A row without an id gets its line number (SkyThought: ``<line>:<k>``), unless an explicit id
  of the same file (record or question id) already says that; then ``<unit>-<line>``
  (``line-3``, ``row-3``, ``item-3``), so a generated id never takes another row's place.
"""
from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as dt
import json
import math
import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path

FORMATS = ("jsonl", "json", "csv", "parquet")
LAYOUTS = ("auto", "flat", "chat", "skythought")
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
              ".parquet": "parquet", ".pq": "parquet"}
PROMPT_ALIASES = ("question", "instruction", "input", "problem")
RESPONSE_ALIASES = ("output", "completion", "answer_text", "generation")
# Column names a flat file may use for each record field, in order of preference: the loader
# tries the prompt/response aliases under the default mapping; the app's column-mapping step
# pre-selects the first name present for every field (``guess_mapping``).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "prompt": ("prompt", *PROMPT_ALIASES),
    "response": ("response", *RESPONSE_ALIASES),
    "record_id": ("record_id", "id"),
    "question_id": ("question_id",),
    "correct": ("correct", "is_correct", "label"),
    "source": ("source", "model"),
}
REQUIRED_FIELDS = ("prompt", "response")
FRAME_COLUMNS = ("record_id", "question_id", "prompt", "response", "correct", "source", "meta")
_TRUE = {"true", "yes", "1", "correct"}
_FALSE = {"false", "no", "0", "incorrect"}
_NULL = {"", "null", "none", "nan"}  # how CSV writers spell a missing label
_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
          "system": "system"}
_SHOWN_ISSUES = 5
_SKYTHOUGHT_LISTS = frozenset({"code", "score", "pred", "report"})  # one element per response
_CSV_FIELD_LIMIT = 2**31 - 1  # reasoning traces exceed csv's 128 KiB default field limit
# Deepest nesting a row may have (the row itself is level 1). Python's json reads and writes
# about 990 levels before its recursion limit; this leaves room for the caller's own stack.
MAX_DEPTH = 512
_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep"


@dataclass(frozen=True)
class Record:
    """One response to one question (docs/method.md §1)."""
    record_id: str
    question_id: str
    prompt: str
    response: str
    correct: bool | None = None
    source: str | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class RecordIssue:
    """One bad line or field. ``line`` 0 = the whole file (e.g. JSON that fails to parse).
    ``unit`` names what ``line`` counts: "line" (JSONL/CSV), "item" (JSON list), "row" (Parquet).
    """
    file: str
    line: int
    field: str | None
    message: str
    unit: str = "line"

    def __str__(self) -> str:
        where = [self.file]
        if self.line > 0:
            where.append(f"{self.unit} {self.line}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.message}"


class RecordsError(ValueError):
    """Raised in strict mode; ``issues`` holds every problem found, not just the first."""
    def __init__(self, issues: list[RecordIssue]) -> None:
        self.issues = list(issues)
        shown = "\n".join(f"  {issue}" for issue in self.issues[:_SHOWN_ISSUES])
        more = len(self.issues) - _SHOWN_ISSUES
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{len(self.issues)} problem(s) in the input:\n{shown}{tail}")


@dataclass(frozen=True)
class Origin:
    """Where a record came from: its input row as read (JSON-able) and, for a SkyThought row,
    which of the row's responses (``item``) it is. Lets exports keep the input's own schema."""
    line: int
    row: dict[str, Any]
    item: int | None = None

    def original_row(self) -> dict[str, Any]:
        """The input row of this one record. A SkyThought row holds several responses; its
        per-response lists (``code``, ``score``, ``pred``, ``report`` and any other list as long
        as ``code``) are cut down to this record's element, so the row still reads as the same
        layout. A short list (a missing score) becomes empty: unknown, as when it was read."""
        row = dict(self.row)
        if self.item is not None:
            n = len(row["code"])
            for key, value in row.items():
                if isinstance(value, list) and (key in _SKYTHOUGHT_LISTS or len(value) == n):
                    row[key] = value[self.item:self.item + 1]
        return row


@dataclass
class LoadResult:
    records: list[Record]
    issues: list[RecordIssue]
    origins: dict[str, Origin] = dataclasses.field(default_factory=dict)  # record_id -> Origin


@dataclass(frozen=True)
class ColumnMapping:
    """Which input column feeds which record field (flat layout; ids/labels also for chat).

    A ``None`` or absent ``record_id`` column gives the line number as id; a ``None`` or absent
    ``question_id`` column makes every record its own question (question_id = record_id).
    """
    prompt: str = "prompt"
    response: str = "response"
    record_id: str | None = "record_id"
    question_id: str | None = "question_id"
    correct: str | None = "correct"
    source: str | None = "source"


def guess_mapping(columns: Iterable[str]) -> dict[str, str | None]:
    """For each record field, the first of its :data:`FIELD_ALIASES` among ``columns`` (None:
    no column looks like it; the user must choose, or for optional fields leave it out)."""
    present = list(columns)
    return {name: next((c for c in aliases if c in present), None) for name, aliases in FIELD_ALIASES.items()}


def mapping_problems(chosen: dict[str, str | None], columns: Iterable[str]) -> list[str]:
    """Why a column mapping cannot be used (empty list: it can). ``chosen`` maps record fields
    to column names or None."""
    present = set(columns)
    problems = [f"choose the column that holds the {name}" for name in REQUIRED_FIELDS if not chosen.get(name)]
    problems += [f"{name}: no column {col!r} in the file" for name, col in chosen.items()
                 if col and col not in present]
    used: dict[str, list[str]] = {}
    for name, col in chosen.items():
        if col:
            used.setdefault(col, []).append(name)
    problems += [f"column {col!r} is mapped to {' and '.join(names)}; each column can feed one field"
                 for col, names in used.items() if len(names) > 1]
    return problems


class _Bad(ValueError):
    """Internal: a field (or the whole row, field None) is unusable."""
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class _Binary(str):
    """Binary data that is not UTF-8 text, kept JSON-able as ``"base64:<data>"``; a field that
    needs text refuses it (:func:`_text`)."""

    @classmethod
    def of(cls, data: bytes) -> _Binary:
        return cls("base64:" + base64.b64encode(data).decode("ascii"))

    def size(self) -> int:
        return len(base64.b64decode(self[len("base64:"):]))


@dataclass(frozen=True)
class _Unreadable:
    """Stands in for a JSON value that cannot be kept (a duplicated key, an over-long integer);
    cleaning the row reports it. ``key``: the duplicated key, if that is the problem."""
    message: str
    key: str | None = None


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any] | _Unreadable:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return _Unreadable(f"duplicate key {key!r} in one object", key)
        seen.add(key)
    raise AssertionError("unreachable: dict() dropped a pair, so a key repeats")


def _json_int(digits: str) -> int | _Unreadable:
    try:
        return int(digits)
    except ValueError:  # over sys.get_int_max_str_digits(): Python refuses to read it
        return _Unreadable(f"an integer of {len(digits.lstrip('-'))} digits is too long to read "
                           f"(at most {sys.get_int_max_str_digits()})")


_DECODER = json.JSONDecoder(object_pairs_hook=_json_object, parse_int=_json_int)


def _loads(text: str) -> Any:
    """json.loads that keeps duplicated keys and over-long integers visible (as _Unreadable)."""
    return _DECODER.decode(text)


def _show(value: Any) -> str:
    """Short description of a bad value for messages; long texts are cut."""
    if value is None:
        return "null"
    if isinstance(value, _Binary):
        return f"binary data ({value.size()} bytes, not UTF-8 text)"
    if not isinstance(value, (str, bool, int, float)):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _surrogate_problem(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # how a byte that is not UTF-8 reads (errors="surrogateescape")
        return (f"byte 0x{code - 0xDC00:02x} is not UTF-8 text (or {char!r} is half of a surrogate "
                "pair); save the file as UTF-8")
    return f"{char!r} is half of a surrogate pair (an escape without its other half), not text"


def _text_problem(text: str) -> str | None:
    """Why ``text`` is not valid Unicode (a lone surrogate), or None."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            return _surrogate_problem(text[err.start])
    return None


def _check_text(text: str) -> str:
    """``text`` if it is valid Unicode. A lone surrogate is refused here, at its line and field,
    rather than failing later (on writing, in a tokenizer) with no location."""
    problem = _text_problem(text)
    if problem is not None:
        raise _Bad(None, problem)
    return text


def _from_bytes(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _Binary.of(data)


def _from_decimal(value: Decimal) -> int | float | None:
    if value.is_nan():
        return None
    exponent = value.as_tuple().exponent
    return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)


def _leaf(value: Any) -> Any:
    """A plain JSON-able value for anything but dicts and lists (they are walked by _plain)."""
    if isinstance(value, str):
        return _check_text(value)
    if value is None or isinstance(value, (bool, int, dict, list)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else float(value)
    if isinstance(value, _Unreadable):
        raise _Bad(None, value.message)
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(value))
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.datetime64):
        return _leaf(pd.Timestamp(value))
    if isinstance(value, np.timedelta64):
        return _leaf(pd.Timedelta(value))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return _from_decimal(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars: plain Python at once
        return _leaf(value.tolist())
    return str(value)


def _key(key: Any) -> str:
    if not isinstance(key, str):
        return str(_leaf(key))
    problem = _text_problem(key)
    if problem is not None:
        raise _Bad(None, f"key {key!r}: {problem}")
    return key


def _plain(value: Any, depth: int = 1) -> Any:
    """Make pandas/pyarrow/numpy/JSON values plain JSON-able Python (arrays -> lists, NaN ->
    None, see the module docstring). Raises _Bad for a value that cannot be kept. Iterative, so
    legal deep nesting never meets Python's recursion limit."""
    if value is None or isinstance(value, (str, int, float)):  # most values: no walk needed
        return _leaf(value)
    holder: list[Any] = [None]
    todo: list[tuple[Any, Any, Any, int]] = [(value, holder, 0, depth)]
    while todo:
        item, parent, slot, level = todo.pop()
        item = _leaf(item)
        if isinstance(item, (dict, list)):
            if level > MAX_DEPTH:
                raise _Bad(None, _TOO_DEEP)
            if isinstance(item, dict):
                out: Any = {_key(k): None for k in item}
                if len(out) != len(item):
                    raise _Bad(None, "two keys that read as the same text")
                todo.extend((v, out, k, level + 1) for k, v in zip(out, item.values()))
            else:
                out = [None] * len(item)
                todo.extend((v, out, i, level + 1) for i, v in enumerate(item))
            item = out
        parent[slot] = item
    return holder[0]


def _clean_row(raw: Any) -> Any:
    """The row as plain values (:func:`_plain`); a bad value is reported under its column."""
    if isinstance(raw, _Unreadable):
        raise _Bad(raw.key, raw.message)
    if not isinstance(raw, dict):
        return _plain(raw)
    row: dict[str, Any] = {}
    for key, value in raw.items():
        name = key if type(key) is str and key.isascii() else _key(key)
        if name in row:
            raise _Bad(name, f"duplicate key {name!r}")
        try:
            row[name] = _plain(value, depth=2)
        except _Bad as err:
            raise _Bad(name, err.message) from None
    return row


def _text(value: Any, name: str) -> str:
    if isinstance(value, str) and not isinstance(value, _Binary):
        return value
    raise _Bad(name, f"expected a string, got {_show(value)}")


def _as_id(value: Any, name: str) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # pandas turns int columns with gaps into floats
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip() and not isinstance(value, _Binary):
        return value
    raise _Bad(name, f"expected a non-empty string or integer id, got {_show(value)}")


def _parse_correct(value: Any, name: str = "correct") -> bool | None:
    """bool, 0/1, true/false/yes/no/1/0/correct/incorrect (any case); null/""/NaN -> None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _NULL:
            return None
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
    raise _Bad(name, f"expected true/false/null, got {_show(value)}")


def detect_layout(row: dict[str, Any]) -> str:
    if "question" in row and isinstance(row.get("code"), list):
        return "skythought"
    if isinstance(row.get("messages"), list) or isinstance(row.get("conversations"), list):
        return "chat"
    return "flat"


def _skythought(row: dict[str, Any], line: int, source: str | None
                ) -> tuple[list[tuple[Record, int | None]], list[_Bad]]:
    """The row's good responses, each with its index in ``code``, and the bad ones."""
    idx = str(line) if row.get("idx") is None else _as_id(row["idx"], "idx")
    prompt = _text(row.get("question"), "question")
    code, scores, pred = row.get("code"), row.get("score"), row.get("pred")
    if not isinstance(code, list):
        raise _Bad("code", f"expected a list of responses, got {_show(code)}")
    if not code:
        raise _Bad("code", "no responses (an empty list)")
    if scores is not None and not isinstance(scores, list):
        raise _Bad("score", f"expected a list of true/false, got {_show(scores)}")
    scores = scores or []
    base: dict[str, Any] = {key: row[key] for key in ("gt", "level") if key in row}
    records: list[tuple[Record, int | None]] = []
    bad: list[_Bad] = []
    for k, response in enumerate(code):
        correct = scores[k] if k < len(scores) else None  # a short score list means "unknown"
        try:
            text = _text(response, f"code[{k}]")
            if correct is not None and not isinstance(correct, bool):
                raise _Bad(f"score[{k}]", f"expected true/false/null, got {_show(correct)}")
        except _Bad as err:
            bad.append(err)
            continue
        meta = dict(base)
        if "pred" in row:
            meta["pred"] = (pred[k] if k < len(pred) else None) if isinstance(pred, list) else pred
        records.append((Record(f"{idx}:{k}", idx, prompt, text, correct, source, meta), k))
    return records, bad


def _content(value: Any, name: str) -> str:
    # OpenAI also allows a list of parts: [{"type": "text", "text": ...}]
    if isinstance(value, list) and all(isinstance(p, dict) and "text" in p for p in value):
        return "".join(_text(p["text"], name) for p in value)
    return _text(value, name)


def _chat(row: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
    """Return (key used, prompt, response, meta additions) from a messages/conversations list."""
    key = "messages" if isinstance(row.get("messages"), list) else "conversations"
    if not isinstance(row.get(key), list):
        raise _Bad("messages", "expected a 'messages' or 'conversations' list")
    turns: list[tuple[str, str]] = []
    for i, msg in enumerate(row[key]):
        if not isinstance(msg, dict):
            raise _Bad(f"{key}[{i}]", f"expected an object, got {_show(msg)}")
        role = str(msg.get("role", msg.get("from", ""))).lower()
        text = _content(msg["content"] if "content" in msg else msg.get("value"), f"{key}[{i}]")
        turns.append((_ROLES.get(role, role), text))
    roles = [role for role, _ in turns]
    if "assistant" not in roles:
        raise _Bad(key, "no assistant turn")
    last = len(roles) - 1 - roles[::-1].index("assistant")
    if "user" not in roles[:last]:
        raise _Bad(key, "no user turn before the final assistant turn")
    user = last - 1 - roles[last - 1::-1].index("user")
    system = "\n\n".join(text for role, text in turns[:last] if role == "system")
    history = [{"role": r, "content": t} for r, t in turns[:user] if r != "system"]
    # turns between the prompt and the final answer (e.g. a draft) are kept, not dropped
    between = [{"role": r, "content": t} for r, t in turns[user + 1:last] if r != "system"]
    extra = {k: v for k, v in (("system", system), ("history", history), ("between", between)) if v}
    return key, turns[user][1], turns[last][1], extra


def _column(row: dict[str, Any], column: str, aliases: tuple[str, ...], used: set[str]) -> str:
    for name in (column, *aliases):
        if name in row:
            used.add(name)
            return _text(row[name], name)
    tried = f" (also tried {', '.join(aliases)})" if aliases else ""
    raise _Bad(column, f"missing column {column!r}{tried}")


def _optional(row: dict[str, Any], column: str | None, used: set[str],
              parse: Callable[[Any, str], Any]) -> Any:
    if column is None or column not in row:
        return None
    used.add(column)
    return parse(row[column], column)


def _meta(row: dict[str, Any], used: set[str]) -> dict[str, Any]:
    # a "meta" object (or its JSON text, from CSV/Parquet) is unpacked so written records round-trip
    packed = row.get("meta")
    if isinstance(packed, str) and packed.strip().startswith("{"):
        try:
            packed = _plain(_loads(packed))
        except (ValueError, RecursionError):  # not JSON after all (_Bad is a ValueError): keep the text
            pass
    meta: dict[str, Any] = dict(packed) if isinstance(packed, dict) else {}
    skip = used | ({"meta"} if isinstance(packed, dict) else set())
    meta.update({k: v for k, v in row.items() if k not in skip})
    return meta


@dataclass(frozen=True)
class _Found:
    """A record read from ``line``; ``made_up``: which of its ids came from the line number
    (record id, question id), so they can give way to explicit ids (see _settle_ids)."""
    line: int
    row: dict[str, Any]
    record: Record
    item: int | None
    made_up: tuple[bool, bool] = (False, False)


def _single(row: dict[str, Any], line: int, kind: str, mapping: ColumnMapping,
            aliases: bool, source: str | None) -> _Found:
    used: set[str] = set()
    extra: dict[str, Any] = {}
    if kind == "chat":
        key, prompt, response, extra = _chat(row)
        used.add(key)
    else:
        prompt = _column(row, mapping.prompt, PROMPT_ALIASES if aliases else (), used)
        response = _column(row, mapping.response, RESPONSE_ALIASES if aliases else (), used)
    explicit_id = _optional(row, mapping.record_id, used, _as_id)
    record_id = explicit_id or str(line)
    explicit_question = _optional(row, mapping.question_id, used, _as_id)
    question_id = explicit_question or record_id
    correct = _optional(row, mapping.correct, used, _parse_correct)
    row_source = _optional(row, mapping.source, used,
                           lambda v, n: None if v in (None, "") else _text(v, n))
    meta = _meta(row, used)
    meta.update(extra)
    record = Record(record_id, question_id, prompt, response, correct, row_source or source, meta)
    return _Found(line, row, record, None, (explicit_id is None, explicit_question is None and explicit_id is None))


def _read_row(raw: Any, line: int, layout: str, mapping: ColumnMapping, aliases: bool,
              source: str | None) -> tuple[list[_Found], list[_Bad]]:
    """The records of one input row and the problems that dropped (parts of) it."""
    try:
        row = _clean_row(raw)
        if not isinstance(row, dict):
            raise _Bad(None, f"expected an object, got {_show(row)}")
        kind = detect_layout(row) if layout == "auto" else layout
        if kind != "skythought":
            return [_single(row, line, kind, mapping, aliases, source)], []
        made, bad = _skythought(row, line, source)
    except _Bad as err:
        return [], [err]
    made_up = (row.get("idx") is None,) * 2
    return [_Found(line, row, record, item, made_up) for record, item in made], bad


def _made_up_ids(found: _Found, base: str) -> tuple[str, str]:
    """The record's (record id, question id) with its made-up ids built on ``base``, not the line."""
    record, line = found.record, str(found.line)
    record_id = base + record.record_id[len(line):] if found.made_up[0] else record.record_id
    return record_id, base if found.made_up[1] else record.question_id


def _id_bases(line: int, unit: str) -> Iterator[str]:
    """Bases for the made-up ids of the row on ``line``, first choice first (endless)."""
    yield str(line)
    yield f"{unit}-{line}"
    n = 2
    while True:
        yield f"{unit}-{line}-{n}"
        n += 1


def _settle_ids(found: list[_Found], unit: str, in_use: Collection[str] = ()) -> list[_Found]:
    """Made-up ids (line numbers) that an explicit record or question id of the input, or one of
    ``in_use`` (the dataset the rows are added to), already uses move to ``<unit>-<line>`` (then
    ``-2``, ``-3``, ...): a row without an id must never be merged with, or dropped as a
    duplicate of, a row that names that id."""
    taken = set(in_use) | {f.record.record_id for f in found if not f.made_up[0]}
    taken |= {f.record.question_id for f in found if not f.made_up[1]}
    by_line: dict[int, list[_Found]] = {}
    for f in found:
        if any(f.made_up):
            by_line.setdefault(f.line, []).append(f)
    bases: dict[int, str] = {}
    for line, row_found in by_line.items():
        for base in _id_bases(line, unit):
            ids = {i for f in row_found for i, made_up in zip(_made_up_ids(f, base), f.made_up) if made_up}
            if not ids & taken:
                break
        taken |= ids
        bases[line] = base
    settled = []
    for f in found:
        if any(f.made_up) and bases[f.line] != str(f.line):
            record_id, question_id = _made_up_ids(f, bases[f.line])
            f = dataclasses.replace(f, record=dataclasses.replace(f.record, record_id=record_id,
                                                                  question_id=question_id))
        settled.append(f)
    return settled


def records_from_rows(rows: Iterable[tuple[int, Any]], *, file: str, layout: str = "auto",
                      mapping: ColumnMapping | None = None, source: str | None = None,
                      lenient: bool = False, unit: str = "line", in_use: Collection[str] = ()) -> LoadResult:
    """Turn ``(line, row)`` pairs into records; every problem becomes a :class:`RecordIssue`.

    ``source`` fills records whose row has no source value; ids made up for rows without one
    avoid ``in_use`` (record and question ids of a dataset the records will join). Strict mode raises
    :class:`RecordsError` after collecting every issue; lenient mode returns the good records.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    mapping = mapping or ColumnMapping()
    aliases = mapping == ColumnMapping()  # aliases only when the user did not map columns
    found: list[_Found] = []
    issues: list[RecordIssue] = []
    for line, raw in rows:
        made, bad = _read_row(raw, line, layout, mapping, aliases, source)
        found.extend(made)
        issues.extend(RecordIssue(file, line, b.field, b.message, unit) for b in bad)
    records: list[Record] = []
    origins: dict[str, Origin] = {}
    first_seen: dict[str, int] = {}
    for f in _settle_ids(found, unit, in_use):
        record_id = f.record.record_id
        if record_id in first_seen:  # keep the first, report the later one
            issues.append(RecordIssue(file, f.line, "record_id", f"duplicate record_id {record_id!r} "
                                      f"(first on {unit} {first_seen[record_id]})", unit))
            continue
        first_seen[record_id] = f.line
        records.append(f.record)
        origins[record_id] = Origin(f.line, f.row, f.item)
    issues.sort(key=lambda issue: issue.line)
    if issues and not lenient:
        raise RecordsError(issues)
    return LoadResult(records, issues, origins)


_Rows = tuple[list[tuple[int, Any]], list[RecordIssue]]


def _read_jsonl(path: Path, file: str) -> _Rows:
    rows: list[tuple[int, Any]] = []
    issues: list[RecordIssue] = []
    with open(path, "rb") as fh:  # binary: split on "\n" only, decode each line on its own
        for line, raw in enumerate(fh, 1):
            # a byte that is not UTF-8 becomes a lone surrogate, reported with its field
            text = raw.decode("utf-8-sig" if line == 1 else "utf-8", errors="surrogateescape")
            if not text.strip():
                continue
            try:
                rows.append((line, _loads(text)))
            except json.JSONDecodeError as err:
                message = f"invalid JSON: {err.msg} (column {err.colno})"
                issues.append(RecordIssue(file, line, None, message))
            except RecursionError:
                issues.append(RecordIssue(file, line, None, _TOO_DEEP))
    return rows, issues


_JSON_NESTING = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}\n]')  # strings (skipped), brackets, newlines


def _too_deep_line(text: str) -> int:
    """The line where the JSON ``text`` first nests deeper than MAX_DEPTH."""
    depth, line = 0, 1
    for token in _JSON_NESTING.finditer(text):
        char = token.group()
        if char == "\n":
            line += 1
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                break
        elif char in "]}":
            depth -= 1
    return line


def _read_json(path: Path, file: str) -> _Rows:
    def whole_file(message: str) -> _Rows:
        return [], [RecordIssue(file, 0, None, message, "item")]

    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    try:
        data = _loads(text)
    except json.JSONDecodeError as err:
        return whole_file(f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}")
    except RecursionError:
        return whole_file(f"{_TOO_DEEP} at line {_too_deep_line(text)}")
    if isinstance(data, _Unreadable):
        return whole_file(data.message)
    if isinstance(data, dict):
        data = next((data[k] for k in ("data", "records") if isinstance(data.get(k), list)), data)
    if not isinstance(data, list):
        return whole_file("expected a list of objects or an object with a 'data' or 'records' list")
    return list(enumerate(data, 1)), []


def _repeated_names(names: list[str], file: str, line: int, unit: str) -> list[RecordIssue]:
    """A column name that appears twice: which of the two values is meant is unknowable."""
    first: dict[str, int] = {}
    issues = []
    for position, name in enumerate(names, 1):
        if name in first:
            issues.append(RecordIssue(file, line, name, f"duplicate column name {name!r} "
                                      f"(columns {first[name]} and {position})", unit))
        first.setdefault(name, position)
    return issues


class _LineFeed:
    """Physical lines handed to csv.reader one at a time; ``taken`` counts them, so reading can
    restart on the line after a bad record."""

    def __init__(self, lines: list[str]) -> None:
        self.lines, self.taken = lines, 0

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        if self.taken >= len(self.lines):
            raise StopIteration
        self.taken += 1
        return self.lines[self.taken - 1]


def _csv_records(lines: list[str]) -> Iterator[tuple[int, int, list[str] | csv.Error]]:
    """(first line, last line, values or the error) of each CSV record. A record that breaks the
    quoting rules is reported and skipped, and reading restarts where the next record most likely
    begins. An error found past the record's first line means a quote opened there runs on (never
    closed, or closed by the next row's quote): the record is that line only, so it cannot swallow
    the good rows after it. An error on its first line (text after a closing quote) costs the
    record as a lenient reader sees it: restarting inside a quoted field would read its text as rows."""
    feed = _LineFeed(lines)
    while feed.taken < len(lines):
        start = feed.taken
        try:
            for values in csv.reader(feed, strict=True):
                yield start + 1, feed.taken, values
                start = feed.taken
        except csv.Error as err:
            end = start + 1
            if feed.taken == end:
                feed.taken = start
                try:
                    next(csv.reader(feed), None)  # not strict: where this record ends
                except csv.Error:
                    pass
                end = max(end, feed.taken)
            yield start + 1, end, err
            feed.taken = end


def _read_csv(path: Path, file: str) -> _Rows:
    rows: list[tuple[int, Any]] = []
    issues: list[RecordIssue] = []
    # a byte that is not UTF-8 becomes a lone surrogate, reported with its line and column
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        lines = list(fh)
    header: list[str] | None = None
    old_limit = csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        for line, last, values in _csv_records(lines):
            if isinstance(values, csv.Error):
                span = f"line {line}" if last == line else f"lines {line}-{last}"
                issues.append(RecordIssue(file, line, None, f"unreadable CSV ({values}): a quoted field is "
                                          f"never closed or has text after its closing quote; {span} skipped"))
            elif not values:
                continue
            elif header is None:
                header = values
                problems = _repeated_names(header, file, line, "line")
                problems += [RecordIssue(file, line, None, f"column name {name!r}: {_text_problem(name)}")
                             for name in header if _text_problem(name) is not None]
                if problems:
                    return [], problems
            elif len(values) != len(header):
                issues.append(RecordIssue(file, line, None, f"expected {len(header)} fields, got {len(values)}"))
            else:
                rows.append((line, dict(zip(header, values))))
    finally:
        csv.field_size_limit(old_limit)
    return rows, issues


def _read_parquet(path: Path, file: str) -> _Rows:
    try:
        table = pq.ParquetFile(path).read()
        problems = _repeated_names(table.column_names, file, 0, "row")
        if problems:
            return [], problems
        # pandas stores a non-range index as a column; it is not data
        table = table.drop_columns([c for c in table.column_names if c.startswith("__index_level_")])
        return list(enumerate(table.to_pylist(), 1)), []
    except (pa.ArrowException, OSError, ValueError) as err:  # ValueError: e.g. bad UTF-8 in a string column
        message = f"not a readable Parquet file: {str(err).replace(str(path), file)}"
        return [], [RecordIssue(file, 0, None, message, "row")]


_READERS: dict[str, tuple[Callable[[Path, str], _Rows], str]] = {
    "jsonl": (_read_jsonl, "line"), "json": (_read_json, "item"),
    "csv": (_read_csv, "line"), "parquet": (_read_parquet, "row"),
}


def _reader(fmt: str, file: str) -> tuple[Callable[[Path, str], _Rows], str]:
    if fmt not in _READERS:
        raise ValueError(f"{file}: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return _READERS[fmt]


def infer_format(path: str | Path) -> str:
    fmt = EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: cannot tell the format from the extension; pass fmt= one of "
                         f"{', '.join(FORMATS)}")
    return fmt


def load_records(path: str | Path, *, fmt: str | None = None, layout: str = "auto",
                 mapping: ColumnMapping | None = None, source: str | None = None,
                 lenient: bool = False, name: str | None = None, in_use: Collection[str] = ()) -> LoadResult:
    """Read a JSONL/JSON/CSV/Parquet file into records (see module docstring). ``name`` is how
    errors call the file (e.g. an upload's own name rather than its temporary path); ``in_use``:
    ids the made-up ones must avoid (:func:`records_from_rows`)."""
    file = name or str(path)
    reader, unit = _reader(fmt or infer_format(name or path), file)
    rows, issues = reader(Path(path), file)
    result = records_from_rows(rows, file=file, layout=layout, mapping=mapping, source=source,
                               lenient=True, unit=unit, in_use=in_use)
    issues = sorted(issues + result.issues, key=lambda issue: issue.line)
    if issues and not lenient:
        raise RecordsError(issues)
    return LoadResult(result.records, issues, result.origins)


def export_row(record: Record, origin: Origin | None, extra: dict[str, Any]) -> dict[str, Any]:
    """``record`` in its input's own schema plus ``extra`` columns. Without an origin (pasted or
    generated records) the schema is the flat record layout, which :func:`load_records` reads.
    An extra column must not overwrite an input field."""
    row = origin.original_row() if origin is not None else dataclasses.asdict(record)
    clash = sorted(set(row) & set(extra))
    if clash:
        raise ValueError(f"record {record.record_id!r}: added column(s) {', '.join(clash)} "
                         "already exist in the input row")
    return {**row, **extra}


def jsonl_lines(rows: Iterable[dict[str, Any]]) -> Iterable[str]:
    """Plain dict rows as JSONL lines (NaN becomes null: JSON has no NaN)."""
    for row in rows:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        yield json.dumps(clean, ensure_ascii=False, default=str) + "\n"


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write plain dict rows as JSONL; returns how many. Atomic: a temporary file in the same
    folder replaces ``path`` only when complete, so a failure never leaves half a file."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "x", encoding="utf-8") as fh:
        for line in jsonl_lines(rows):
            fh.write(line)
            n += 1
    return n


def records_to_frame(records: Iterable[Record]) -> pd.DataFrame:
    """One row per record; ``correct`` is pandas' nullable boolean, ``meta`` holds dicts."""
    frame = pd.DataFrame([dataclasses.asdict(r) for r in records], columns=list(FRAME_COLUMNS))
    frame["correct"] = frame["correct"].astype("boolean")
    return frame


def write_records_jsonl(records: Iterable[Record], path: str | Path) -> None:
    """Write records as flat JSONL; ``load_records`` reads them back unchanged."""
    write_jsonl((dataclasses.asdict(record) for record in records), path)


def peek_columns(path: str | Path, *, fmt: str | None = None, n_rows: int = 20,
                 name: str | None = None) -> list[str]:
    """Column names seen in the first ``n_rows`` rows (for a column-mapping step). Raises
    :class:`RecordsError` when no row can be read at all (say why, rather than offer no columns)."""
    file = name or str(path)
    reader, _ = _reader(fmt or infer_format(name or path), file)
    rows, issues = reader(Path(path), file)
    if not rows:
        raise RecordsError(issues or [RecordIssue(file, 0, None, "no rows to read: the file is empty")])
    columns: list[str] = []
    for _, row in rows[:n_rows]:
        for key in row if isinstance(row, dict) else ():
            if key not in columns and _is_text(key):
                columns.append(key)
    return columns


def _is_text(key: Any) -> bool:
    return isinstance(key, str) and _text_problem(key) is None
