"""Cached loaders: the built-in datasets, derived tables and model backends.

``st.cache_resource`` objects are shared by every session, so they are treated as read-only:
nothing mutates a corpus or record list in place (``ScoredCorpus.merged`` returns a new one).
``st.cache_data`` derived tables are keyed on :func:`corpus_key`, the content of a corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from rdpt_core.backends import ScoringBackend, create_backend
from rdpt_core.models import PROJECT_ROOT, ModelSpec, fingerprint
from rdpt_core.records import load_records
from rdpt_core.scoring import ScoredCorpus
from rdpt_core.store import load_corpus
from rdpt_core.workspace import LoadedDataset, Workspace
from rdpt_lab.models import ENSEMBLE_DIR
from rdpt_lab.multistep import TEACHER_STYLE_RE, TEACHER_STYLES

DEMO_DIR = Path(os.environ.get("RDPT_DEMO_DIR", PROJECT_ROOT / "demo" / "steps"))
DATA_DIR = PROJECT_ROOT / "data"
SOURCES_DEMO = DATA_DIR / "aime24_sources" / "responses.parquet"
# the steps lineage's selection experiment (docs/lab.md): results of `make selection-experiment`
SELECTION_RESULTS = DEMO_DIR / "selection" / "results.json"


@dataclass(frozen=True)
class Builtin:
    """A dataset shipped with the repo: a scored corpus folder or a file of records."""

    title: str
    path: Path
    scored: bool
    known_origin: str = ""  # a teacher-style pattern known for this data (the β page's known-origin panel)
    # several teachers: each one's style pattern (the Corpus page's known-teacher panel)
    known_teachers: dict[str, str] = field(default_factory=dict)


BUILTINS: dict[str, Builtin] = {
    "demo": Builtin("Demo: lab lineage (distilled model's answers to unseen test questions)", DEMO_DIR / "corpus",
                    True, TEACHER_STYLE_RE.pattern),
    "ensemble": Builtin("Lab: two teachers (answers of a model distilled from both, scored by each)",
                        ENSEMBLE_DIR / "corpus", True,
                        known_teachers=TEACHER_STYLES),
    "math500-subset": Builtin("MATH500 subset: 20 real Sky-T1 responses, scored", DATA_DIR / "math500_subset" / "corpus",
                              True),
    "lab-teacher-samples": Builtin("Lab: teacher samples (4 per training question, verified or not)",
                                   DEMO_DIR / "teacher_samples.jsonl", False, TEACHER_STYLE_RE.pattern),
    "lab-test-trajectories": Builtin("Lab: test answers of the distilled model, the student and the teacher",
                                     DEMO_DIR / "test_trajectories.jsonl", False, TEACHER_STYLE_RE.pattern),
    "aime24-sky-t1": Builtin("SkyThought AIME24 · distilled (Sky-T1)",
                             DATA_DIR / "skythought" / "aime24.sky-t1-correct-5k-27b.jsonl", False),
    "aime24-gemma": Builtin("SkyThought AIME24 · student (gemma-2-27b-it)",
                            DATA_DIR / "skythought" / "aime24.gemma-2-27b-it.jsonl", False),
    "math500-sky-t1": Builtin("SkyThought MATH500 · distilled (Sky-T1)",
                              DATA_DIR / "skythought" / "math500.sky-t1-correct-5k-27b.jsonl", False),
    "math500-gemma": Builtin("SkyThought MATH500 · student (gemma-2-27b-it)",
                             DATA_DIR / "skythought" / "math500.gemma-2-27b-it.jsonl", False),
}
DEMO_ID = "demo"


def workspace() -> Workspace:
    """Where working datasets persist (``RDPT_WORKSPACE_DIR``; default ``workspace/``, git-ignored)."""
    return Workspace(os.environ.get("RDPT_WORKSPACE_DIR", PROJECT_ROOT / "workspace"))


@st.cache_resource(show_spinner="Loading a bundled dataset…", max_entries=8)
def builtin_dataset(dataset_id: str) -> LoadedDataset:
    """A built-in dataset (shared by all sessions: read it, never change it)."""
    entry = BUILTINS[dataset_id]
    if entry.scored:
        corpus = load_corpus(entry.path)
        return LoadedDataset(dataset_id, entry.title, list(corpus.records), corpus, {})
    loaded = load_records(entry.path)
    return LoadedDataset(dataset_id, entry.title, loaded.records, None, loaded.origins)


@st.cache_resource(show_spinner="Loading the lab's scored teacher samples…")
def teacher_corpus() -> ScoredCorpus:
    """The lab teacher's verified samples (several per question) scored by T and S: the selection demo."""
    return load_corpus(DEMO_DIR / "teacher_corpus")


@st.cache_resource(show_spinner=False)
def teacher_origins() -> dict:
    """Input rows of the lab's teacher samples (for exports in their own schema)."""
    return load_records(DEMO_DIR / "teacher_samples.jsonl").origins


@st.cache_data(show_spinner=False)
def sources_demo() -> tuple[pd.DataFrame, str]:
    """AIME24 responses of three SkyThought models under one reference model, and its label."""
    table = pd.read_parquet(SOURCES_DEMO)
    return table, str(table.attrs.get("reference", "reference model"))


@st.cache_data(show_spinner=False, max_entries=4)
def selection_results(path: str, mtime: float) -> dict | None:
    """A selection experiment's checked ``results.json`` (``mtime`` renews the cache when a run
    rewrites it); None when there is none."""
    from rdpt_lab.experiment import read_results

    file = Path(path)
    return read_results(file.read_text(encoding="utf-8"), file.name) if file.exists() else None


# corpus object -> its content key, computed once per object: hashing every token of a 10k-response
# corpus costs ~0.5 s, too much for every slider step. Corpora are never changed in place (merging
# and re-scoring build new objects), so an object's key cannot go stale.
# (keyed by id: a dataclass with value equality is not hashable; the weak reference tells a live
# object from a dead one whose id was reused)
_CONTENT_KEYS: dict[int, tuple[weakref.ref[ScoredCorpus], str]] = {}
_CONTENT_KEYS_LOCK = threading.Lock()


def corpus_key(corpus: ScoredCorpus) -> str:
    """:func:`content_key` of the corpus, remembered for as long as the object lives."""
    with _CONTENT_KEYS_LOCK:
        known = _CONTENT_KEYS.get(id(corpus))
    if known is not None and known[0]() is corpus:
        return known[1]
    key = content_key(corpus)
    with _CONTENT_KEYS_LOCK:
        _CONTENT_KEYS[id(corpus)] = (weakref.ref(corpus, _forget(id(corpus))), key)
    return key


def _forget(object_id: int):
    def drop(_: object) -> None:
        with _CONTENT_KEYS_LOCK:
            _CONTENT_KEYS.pop(object_id, None)
    return drop


def content_key(corpus: ScoredCorpus) -> str:
    """Identity of a corpus's content for the derived-table caches, which every session shares:
    each role's label and fingerprint (the scoring settings), the markers, every record field a
    table shows, and every token score in full. A sum per record would miss a change that
    keeps the sum (a NaN first token, swapped or re-split tokens) and serve another session's
    table. Hashing the arrays costs about 30 ms per million tokens."""
    h = hashlib.sha256()

    def add(*parts: object) -> None:
        for part in parts:
            data = part if isinstance(part, bytes) else repr(part).encode()
            h.update(len(data).to_bytes(8, "little") + data)  # length-prefixed: no ambiguous seams

    add(sorted(corpus.models.items()), sorted(corpus.fingerprints.items()), corpus.markers)
    for r in corpus.records:
        add(r.record_id, r.question_id, r.prompt, r.response, r.correct, r.source)
    for role in sorted(corpus.tokens):
        for record_id, scores in sorted(corpus.tokens[role].items()):
            add(role, record_id, *(np.ascontiguousarray(a).tobytes() for a in scores.to_arrays().values()))
    return h.hexdigest()


@st.cache_data(show_spinner=False, max_entries=16)
def actions_of(key: str, _corpus: ScoredCorpus, segmenter: str) -> pd.DataFrame:
    """The action table of a corpus for one segmenter (re-segmentation needs no model), its
    ``record_id`` as a categorical: every statistic groups by response, and factorising 400k
    id strings again on each slider step cost ~0.1 s a grouping (same numbers either way)."""
    table = _corpus.actions(segmenter)
    return table.assign(record_id=table["record_id"].astype("category"))


@st.cache_data(show_spinner=False, max_entries=16)
def behaviour_tags(key: str, _corpus: ScoredCorpus, segmenter: str) -> pd.Series:
    """Behaviour tags of the corpus's actions (independent of α and β, so cached), as a
    categorical: the behaviour mix then counts codes instead of hashing 400k strings a step."""
    from rdpt_core.behaviours import BEHAVIOURS, tag_actions

    return tag_actions(actions_of(key, _corpus, segmenter)).astype(pd.CategoricalDtype(BEHAVIOURS))


def spec_key(spec: ModelSpec) -> str:
    """The spec's settings plus its local files' identity: a checkpoint directory whose files
    change gets a new backend rather than the shared one filed under the old files."""
    settings = json.dumps(spec.to_dict(), sort_keys=True, default=str)
    return f"{settings}\0{fingerprint(spec, spec.dtype)}"


@st.cache_resource(show_spinner="Loading the tokenizer…", max_entries=6)
def backend_for(key: str, _spec: ModelSpec) -> ScoringBackend:
    """One backend per spec, shared across sessions (its weights load lazily, on a cache miss).
    Callers only score with it, never change its settings."""
    return create_backend(_spec)


def backend(spec: ModelSpec) -> ScoringBackend:
    return backend_for(spec_key(spec), spec)
