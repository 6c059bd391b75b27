"""Save and load a :class:`~rdpt_core.scoring.ScoredCorpus` as plain files.

A corpus directory holds ``records.jsonl`` (the records), ``tokens.parquet`` (one row per
response token per role: ``role, record_id, token_index, token_id, start, end, logprob,
truncated, straddle``) and ``corpus.json`` (markers, model labels and each role's backend
fingerprint, the identity of the scores: docs/method.md §16). From these the action
table of any segmenter is rebuilt without a model.

Every output goes through :func:`rdpt_core.atomic.atomic_path`: written under a temporary name beside its target
and renamed onto it only when complete, so a reader (or a killed run) finds the old complete
output, the new complete output or nothing, never half of one. Tables (the action table and
the CLI's other tables) are Parquet or CSV, chosen by the file's extension
(:func:`write_table`, :func:`read_table`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .backends.base import TokenScores
from .records import load_records, write_records_jsonl
from .scoring import ScoredCorpus

TABLE_SUFFIXES = (".parquet", ".csv")
# Text columns of the action table: CSV keeps them as text ("NA", "1" or "" are answers, not missing)
TEXT_COLUMNS = ("record_id", "question_id", "text", "kind", "source")
TOKEN_COLUMNS = ["role", "record_id", "token_index", "token_id", "start", "end", "logprob", "truncated", "straddle"]


def tokens_to_frame(tokens: dict[str, dict[str, TokenScores]]) -> pd.DataFrame:
    frames = [
        pd.DataFrame({
            "role": role, "record_id": rid, "token_index": np.arange(s.n_tokens),
            "token_id": s.token_ids, "start": s.offsets[:, 0], "end": s.offsets[:, 1],
            "logprob": s.logprobs, "truncated": s.truncated, "straddle": s.straddle,
        })
        for role, by_record in tokens.items() for rid, s in by_record.items()
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TOKEN_COLUMNS)


def tokens_from_frame(frame: pd.DataFrame) -> dict[str, dict[str, TokenScores]]:
    out: dict[str, dict[str, TokenScores]] = {}
    for (role, rid), part in frame.sort_values(["role", "record_id", "token_index"]).groupby(
        ["role", "record_id"], sort=False
    ):
        out.setdefault(role, {})[rid] = TokenScores(
            token_ids=part["token_id"].to_numpy(np.int64),
            offsets=part[["start", "end"]].to_numpy(np.int64),
            logprobs=part["logprob"].to_numpy(np.float64),
            truncated=part["truncated"].to_numpy(bool),
            straddle=part["straddle"].to_numpy(bool),
        )
    return out


def save_corpus(corpus: ScoredCorpus, directory: str | Path) -> None:
    """Write the corpus as a new directory that replaces ``directory`` whole (atomically)."""
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        write_records_jsonl(corpus.records, tmp / "records.jsonl")
        tokens_to_frame(corpus.tokens).to_parquet(tmp / "tokens.parquet", index=False)
        meta = {"markers": list(corpus.markers), "models": corpus.models, "fingerprints": corpus.fingerprints}
        (tmp / "corpus.json").write_text(json.dumps(meta, indent=2) + "\n")


def load_corpus(directory: str | Path) -> ScoredCorpus:
    """A corpus saved by :func:`save_corpus`; one saved before fingerprints were kept loads with
    none (it then merges only with another such corpus)."""
    directory = Path(directory)
    meta = json.loads((directory / "corpus.json").read_text())
    records = load_records(directory / "records.jsonl").records
    tokens = tokens_from_frame(pd.read_parquet(directory / "tokens.parquet"))
    # roles in the job's order, as ``models`` lists them (the token file is sorted by role): the
    # order of several named teachers decides columns, ties of the best teacher and colours
    tokens = {**{role: tokens[role] for role in meta["models"] if role in tokens}, **tokens}
    return ScoredCorpus(records, tokens, tuple(meta["markers"]), meta["models"],
                        _fingerprints(meta, directory / "corpus.json"))


def _fingerprints(meta: dict, path: Path) -> dict[str, str]:
    fingerprints = meta.get("fingerprints", {})
    if not (isinstance(fingerprints, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in fingerprints.items())):
        raise ValueError(f"{path}: field 'fingerprints' must map each role to a fingerprint string")
    unknown = sorted(set(fingerprints) - set(meta["models"]))
    if unknown:
        raise ValueError(f"{path}: field 'fingerprints' names roles without a model: {', '.join(unknown)}")
    return dict(fingerprints)


# ---- tables by extension ----------------------------------------------------------------------
def table_suffix(path: str | Path) -> str:
    """``.parquet`` or ``.csv`` (any case); anything else is a clear error naming the path."""
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{path}: cannot tell the table format from the extension {suffix or '(none)'!r}; "
                         f"use {' or '.join(TABLE_SUFFIXES)}")
    return suffix


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """``frame`` as Parquet (keeps dtypes and ``attrs``) or CSV, by extension, atomically."""
    suffix = table_suffix(path)
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def _read_csv_table(path: Path) -> pd.DataFrame:
    columns = pd.read_csv(path, nrows=0).columns
    text = [c for c in columns if c in TEXT_COLUMNS]
    # an empty cell is missing in a number column, but an empty string in a text column
    return pd.read_csv(path, dtype={c: str for c in text}, keep_default_na=False,
                       na_values={c: [""] for c in columns if c not in text})


def read_table(path: str | Path) -> pd.DataFrame:
    """A table written by :func:`write_table` (or any Parquet/CSV table); errors name the file."""
    import pyarrow as pa

    path = Path(path)
    suffix = table_suffix(path)
    try:
        table = pd.read_parquet(path) if suffix == ".parquet" else _read_csv_table(path)
    except (OSError, ValueError, pa.ArrowException) as err:  # ValueError holds pandas' parser errors
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(f"{path}: cannot read it as a {suffix[1:]} table: {reason}") from err
    if "correct" in table.columns:
        table["correct"] = _nullable_bool(table["correct"], path)
    return table


_BOOL_TEXT = {"true": True, "false": False}


def _nullable_bool(column: pd.Series, path: Path) -> pd.Series:
    try:
        return column.astype("boolean")
    except (TypeError, ValueError):  # text, as a CSV with some empty cells leaves it
        pass
    values = []
    for row, value in enumerate(column, 1):
        if isinstance(value, str) and value.strip().lower() in _BOOL_TEXT:
            value = _BOOL_TEXT[value.strip().lower()]
        elif not (pd.isna(value) or isinstance(value, (bool, np.bool_))):
            raise ValueError(f"{path}, row {row}, field 'correct': {value!r} is not true, false or empty")
        values.append(value)
    return pd.Series(values, index=column.index, dtype="boolean")


# ---- the action table's columns ---------------------------------------------------------------
def _is_probability(column: str) -> bool:
    return column.startswith("p_")


def _is_number(column: str) -> bool:
    return _is_probability(column) or column.startswith(("n_tokens_", "sum_logp_")) or column in (
        "action_index", "start", "end", "n_chars", "cum_tokens")


def check_action_table(table: pd.DataFrame, path: str | Path, required: Sequence[str]) -> pd.DataFrame:
    """``table`` with its number columns as numbers, or an error naming the file, the first bad
    row (1-based) and the field: a ``required`` column missing, a number column holding text or
    True/False, or a probability outside [0, 1] (a missing one is fine: Unscored)."""
    _require(table, path, required, "an action table of `score`")
    return _as_numbers(table, path, [c for c in table.columns if isinstance(c, str) and _is_number(c)])


RESPONSE_COLUMNS = ("record_id", "question_id", "source", "correct", "n_tokens", "n_chars", "sum_logp", "n_logp")


def check_response_table(table: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """The per-response table of ``sources --responses``, checked like :func:`check_action_table`."""
    _require(table, path, RESPONSE_COLUMNS, "a per-response table of `sources --responses`")
    return _as_numbers(table, path, ["n_tokens", "n_chars", "sum_logp", "n_logp"])


def _require(table: pd.DataFrame, path: str | Path, required: Sequence[str], what: str) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not {what}: no column {', '.join(map(repr, missing))} "
                         f"(it has {', '.join(map(str, table.columns[:12])) or 'no columns'})")


def _as_numbers(table: pd.DataFrame, path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    out = table.copy()
    for column in columns:
        raw = out[column]
        # True/False are not numbers here (to_numeric would take them for 1 and 0)
        flags = (raw.map(lambda v: isinstance(v, (bool, np.bool_))) if raw.dtype.kind not in "iuf"
                 else pd.Series(False, index=raw.index))
        values = pd.to_numeric(raw.where(~flags), errors="coerce")
        bad = flags | (values.isna() & raw.notna())
        if _is_probability(column):
            bad |= ~values.between(0.0, 1.0) & values.notna()
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            want = "a probability in [0, 1]" if _is_probability(column) else "a number"
            value = raw.iloc[row]
            shown = value.item() if isinstance(value, np.generic) else value  # True, not np.True_
            raise ValueError(f"{path}, row {row + 1}, field {column!r}: {shown!r} is not {want}")
        out[column] = values  # an all-empty column read as objects (None) becomes NaN
    return out
