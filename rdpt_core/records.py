"""Load evaluation outputs into normalised :class:`Record` objects (docs/method.md §1 and §14).

Every format (JSONL, JSON, CSV, Parquet) is first turned into ``(line, row)`` pairs and then fed
to :func:`records_from_rows`, so layout detection, validation and error messages are shared by
all formats and by data pasted or uploaded in the app. Each record remembers its input row
(:class:`Origin`), so selected data can be written back in the input's own schema.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd
import pyarrow.parquet as pq

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


def _show(value: Any) -> str:
    """Short description of a bad value for messages; long texts are cut."""
    if value is None:
        return "null"
    if not isinstance(value, (str, bool, int, float)):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: Any) -> Any:
    """Make pandas/pyarrow/numpy values plain JSON-able Python (arrays -> lists, NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (str, bool, int)):
        return value
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _plain(value.tolist())
    return str(value)  # datetimes, decimals, bytes: keep meta JSON-able


def _text(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    raise _Bad(name, f"expected a string, got {_show(value)}")


def _as_id(value: Any, name: str) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # pandas turns int columns with gaps into floats
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
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
            packed = json.loads(packed)
        except ValueError:
            pass
    meta: dict[str, Any] = dict(packed) if isinstance(packed, dict) else {}
    skip = used | ({"meta"} if isinstance(packed, dict) else set())
    meta.update({k: v for k, v in row.items() if k not in skip})
    return meta


def _single(row: dict[str, Any], line: int, kind: str, mapping: ColumnMapping,
            aliases: bool, source: str | None) -> Record:
    used: set[str] = set()
    extra: dict[str, Any] = {}
    if kind == "chat":
        key, prompt, response, extra = _chat(row)
        used.add(key)
    else:
        prompt = _column(row, mapping.prompt, PROMPT_ALIASES if aliases else (), used)
        response = _column(row, mapping.response, RESPONSE_ALIASES if aliases else (), used)
    record_id = _optional(row, mapping.record_id, used, _as_id) or str(line)
    question_id = _optional(row, mapping.question_id, used, _as_id) or record_id
    correct = _optional(row, mapping.correct, used, _parse_correct)
    row_source = _optional(row, mapping.source, used,
                           lambda v, n: None if v in (None, "") else _text(v, n))
    meta = _meta(row, used)
    meta.update(extra)
    return Record(record_id, question_id, prompt, response, correct, row_source or source, meta)


def records_from_rows(rows: Iterable[tuple[int, Any]], *, file: str, layout: str = "auto",
                      mapping: ColumnMapping | None = None, source: str | None = None,
                      lenient: bool = False, unit: str = "line") -> LoadResult:
    """Turn ``(line, row)`` pairs into records; every problem becomes a :class:`RecordIssue`.

    ``source`` fills records whose row has no source value. Strict mode raises
    :class:`RecordsError` after collecting every issue; lenient mode returns the good records.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    mapping = mapping or ColumnMapping()
    aliases = mapping == ColumnMapping()  # aliases only when the user did not map columns
    records: list[Record] = []
    issues: list[RecordIssue] = []
    origins: dict[str, Origin] = {}
    first_seen: dict[str, int] = {}
    for line, raw in rows:
        row = _plain(raw)
        if not isinstance(row, dict):
            message = f"expected an object, got {_show(row)}"
            issues.append(RecordIssue(file, line, None, message, unit))
            continue
        kind = detect_layout(row) if layout == "auto" else layout
        try:
            found, bad = (_skythought(row, line, source) if kind == "skythought"
                          else ([(_single(row, line, kind, mapping, aliases, source), None)], []))
        except _Bad as err:
            found, bad = [], [err]
        issues.extend(RecordIssue(file, line, b.field, b.message, unit) for b in bad)
        for record, item in found:
            if record.record_id in first_seen:  # keep the first, report the later one
                issues.append(RecordIssue(file, line, "record_id", f"duplicate record_id "
                                          f"{record.record_id!r} (first on {unit} "
                                          f"{first_seen[record.record_id]})", unit))
                continue
            first_seen[record.record_id] = line
            records.append(record)
            origins[record.record_id] = Origin(line, row, item)
    if issues and not lenient:
        raise RecordsError(issues)
    return LoadResult(records, issues, origins)


_Rows = tuple[list[tuple[int, Any]], list[RecordIssue]]


def _not_utf8(file: str, err: UnicodeDecodeError) -> ValueError:
    byte = err.object[err.start:err.start + 1].hex()
    return ValueError(f"{file}: not UTF-8 text (byte 0x{byte} at offset {err.start}); "
                      "save it as UTF-8 and load it again")


def _read_jsonl(path: Path, file: str) -> _Rows:
    rows: list[tuple[int, Any]] = []
    issues: list[RecordIssue] = []
    with open(path, "rb") as fh:  # binary: split on "\n" only, decode each line on its own
        for line, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8-sig" if line == 1 else "utf-8")
                if text.strip():
                    rows.append((line, json.loads(text)))
            except json.JSONDecodeError as err:
                message = f"invalid JSON: {err.msg} (column {err.colno})"
                issues.append(RecordIssue(file, line, None, message))
            except UnicodeDecodeError:
                issues.append(RecordIssue(file, line, None, "not valid UTF-8 text"))
    return rows, issues


def _read_json(path: Path, file: str) -> _Rows:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        message = f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
        return [], [RecordIssue(file, 0, None, message)]
    except UnicodeDecodeError as err:
        raise _not_utf8(file, err) from err
    if isinstance(data, dict):
        data = next((data[k] for k in ("data", "records") if isinstance(data.get(k), list)), data)
    if not isinstance(data, list):
        message = "expected a list of objects or an object with a 'data' or 'records' list"
        return [], [RecordIssue(file, 0, None, message)]
    return list(enumerate(data, 1)), []


def _read_csv(path: Path, file: str) -> _Rows:
    rows: list[tuple[int, Any]] = []
    issues: list[RecordIssue] = []
    old_limit = csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header: list[str] | None = None
            start = 1  # physical line where the next row begins (quoted fields span lines)
            try:
                for values in reader:
                    line, start = start, reader.line_num + 1
                    if not values:
                        continue
                    if header is None:
                        header = values
                    elif len(values) != len(header):
                        issues.append(RecordIssue(file, line, None, f"expected {len(header)} "
                                                  f"fields, got {len(values)}"))
                    else:
                        rows.append((line, dict(zip(header, values))))
            except csv.Error as err:
                issues.append(RecordIssue(file, start, None, f"unreadable CSV: {err}"))
    except UnicodeDecodeError as err:
        raise _not_utf8(file, err) from err
    finally:
        csv.field_size_limit(old_limit)
    return rows, issues


def _read_parquet(path: Path, file: str) -> _Rows:
    table = pq.read_table(path)
    # pandas stores a non-range index as a column; it is not data
    table = table.drop_columns([c for c in table.column_names if c.startswith("__index_level_")])
    return list(enumerate(table.to_pylist(), 1)), []


_READERS: dict[str, tuple[Callable[[Path, str], _Rows], str]] = {
    "jsonl": (_read_jsonl, "line"), "json": (_read_json, "item"),
    "csv": (_read_csv, "line"), "parquet": (_read_parquet, "row"),
}


def infer_format(path: str | Path) -> str:
    fmt = EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: cannot tell the format from the extension; pass fmt= one of "
                         f"{', '.join(FORMATS)}")
    return fmt


def load_records(path: str | Path, *, fmt: str | None = None, layout: str = "auto",
                 mapping: ColumnMapping | None = None, source: str | None = None,
                 lenient: bool = False, name: str | None = None) -> LoadResult:
    """Read a JSONL/JSON/CSV/Parquet file into records (see module docstring). ``name`` is how
    errors call the file (e.g. an upload's own name rather than its temporary path)."""
    file = name or str(path)
    fmt = fmt or infer_format(name or path)
    if fmt not in _READERS:
        raise ValueError(f"{file}: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    reader, unit = _READERS[fmt]
    rows, issues = reader(Path(path), file)
    result = records_from_rows(rows, file=file, layout=layout, mapping=mapping, source=source,
                               lenient=True, unit=unit)
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
    """Write plain dict rows as JSONL; returns how many."""
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
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
    """Column names seen in the first ``n_rows`` rows (for a column-mapping step)."""
    reader, _ = _READERS[fmt or infer_format(name or path)]
    rows, _ = reader(Path(path), name or str(path))
    columns: list[str] = []
    for _, row in rows[:n_rows]:
        for key in row if isinstance(row, dict) else ():
            if key not in columns:
                columns.append(key)
    return columns
