"""Working datasets kept on disk, so that a page reload, a second tab or a shared link finds
the trajectories a user pasted, uploaded, generated or scored.

One folder per dataset under the workspace root::

    <root>/<id>/dataset.json    name, counts, last change
    <root>/<id>/records.jsonl   the records (flat layout, ``load_records`` reads them back)
    <root>/<id>/origins.jsonl   record_id → input row, so exports keep the input's own schema
    <root>/<id>/corpus/         the scored part (``rdpt_core.store``), when there is one

A save writes a new folder under a temporary name and then renames it into place, so a reader
sees the old dataset or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .records import Origin, Record, load_records, write_jsonl, write_records_jsonl
from .scoring import ScoredCorpus
from .atomic import atomic_path
from .store import load_corpus, save_corpus

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}$")


@dataclass(frozen=True)
class SavedDataset:
    """What the workspace lists about one dataset (without reading its records)."""

    dataset_id: str
    name: str
    n_records: int
    n_scored: int
    updated: float  # seconds since the epoch


@dataclass
class LoadedDataset:
    dataset_id: str
    name: str
    records: list[Record]
    corpus: ScoredCorpus | None
    origins: dict[str, Origin]


def new_dataset_id(name: str) -> str:
    """A readable, unique id: the name's slug plus 8 random hex digits."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "dataset"
    return f"{slug}-{uuid.uuid4().hex[:8]}"


class Workspace:
    """Datasets saved under ``root`` (created on first save)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _dir(self, dataset_id: str) -> Path:
        if not _ID.match(dataset_id):  # ids come from URLs: never a path outside the root
            raise KeyError(f"not a dataset id: {dataset_id!r}")
        return self.root / dataset_id

    def __contains__(self, dataset_id: str) -> bool:
        try:
            return (self._dir(dataset_id) / "dataset.json").is_file()
        except KeyError:
            return False

    def save(self, name: str, records: Sequence[Record], corpus: ScoredCorpus | None = None,
             origins: Mapping[str, Origin] | None = None, dataset_id: str | None = None) -> str:
        """Write (or overwrite) a dataset atomically (the folder is replaced whole, so a
        concurrent reader sees the old dataset or the new one); returns its id."""
        dataset_id = dataset_id or new_dataset_id(name)
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_path(self._dir(dataset_id)) as tmp:
            tmp.mkdir()
            write_records_jsonl(records, tmp / "records.jsonl")
            write_jsonl(({"record_id": rid, "line": o.line, "row": o.row, "item": o.item}
                         for rid, o in (origins or {}).items()), tmp / "origins.jsonl")
            if corpus is not None:
                save_corpus(corpus, tmp / "corpus")
            meta = {"name": name, "n_records": len(records),
                    "n_scored": len(corpus.records) if corpus is not None else 0, "updated": time.time()}
            (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return dataset_id

    def load(self, dataset_id: str) -> LoadedDataset:
        folder = self._dir(dataset_id)
        if not (folder / "dataset.json").is_file():
            raise KeyError(f"no saved dataset {dataset_id!r} in {self.root}")
        meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
        records = load_records(folder / "records.jsonl").records
        origins: dict[str, Origin] = {}
        with open(folder / "origins.jsonl", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                origins[row["record_id"]] = Origin(row["line"], row["row"], row["item"])
        corpus = load_corpus(folder / "corpus") if (folder / "corpus").is_dir() else None
        return LoadedDataset(dataset_id, meta["name"], records, corpus, origins)

    def saved(self) -> list[SavedDataset]:
        """Saved datasets, most recently changed first."""
        out = []
        for meta_file in self.root.glob("*/dataset.json") if self.root.is_dir() else ():
            if not _ID.match(meta_file.parent.name):
                continue
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            out.append(SavedDataset(meta_file.parent.name, meta["name"], meta["n_records"],
                                    meta["n_scored"], meta["updated"]))
        return sorted(out, key=lambda d: d.updated, reverse=True)

    def delete(self, dataset_id: str) -> None:
        folder = self._dir(dataset_id)
        if not folder.is_dir():
            raise KeyError(f"no saved dataset {dataset_id!r} in {self.root}")
        trash = self.root / f".{dataset_id}.del-{uuid.uuid4().hex[:8]}"
        os.rename(folder, trash)  # gone from listings at once, then removed
        shutil.rmtree(trash, ignore_errors=True)
