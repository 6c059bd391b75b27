"""Save and load a :class:`~rdpt_core.scoring.ScoredCorpus` as plain files.

A corpus directory holds ``records.jsonl`` (the records), ``tokens.parquet`` (one row per
response token per role: ``role, record_id, token_index, token_id, start, end, logprob,
truncated, straddle``) and ``corpus.json`` (markers and model labels). From these the action
table of any segmenter is rebuilt without a model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .backends.base import TokenScores
from .records import load_records, write_records_jsonl
from .scoring import ScoredCorpus

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
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_records_jsonl(corpus.records, directory / "records.jsonl")
    tokens_to_frame(corpus.tokens).to_parquet(directory / "tokens.parquet", index=False)
    meta = {"markers": list(corpus.markers), "models": corpus.models}
    (directory / "corpus.json").write_text(json.dumps(meta, indent=2) + "\n")


def load_corpus(directory: str | Path) -> ScoredCorpus:
    directory = Path(directory)
    meta = json.loads((directory / "corpus.json").read_text())
    records = load_records(directory / "records.jsonl").records
    tokens = tokens_from_frame(pd.read_parquet(directory / "tokens.parquet"))
    return ScoredCorpus(records, tokens, tuple(meta["markers"]), meta["models"])
