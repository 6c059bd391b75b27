"""The app's session state, typed, and the working dataset's life cycle.

Keys of ``st.session_state`` (set by :func:`init_state`, read through the helpers here):

* ``alpha``, ``beta``, ``gamma``, ``segmenter`` – the sidebar's widgets (shared by every page;
  γ is drawn only for a corpus scored with several named teachers);
* ``teachers`` – the teachers' names when there are several (empty: one teacher, role ``teacher``);
* ``choices`` – per role, what the Models page picked (see :func:`rdpt_app.scoring.spec_for`);
* ``dataset_id``, ``dataset_name``, ``records``, ``origins``, ``corpus`` – the working dataset;
* ``record_id`` – the record shown in the explorer.

A working dataset is either built in (read-only, shared) or the user's own: every change to
the user's own (paste, upload, generate, score) is saved to the workspace at once, and its id
sits in the address bar (``?dataset=``), so a reload, a second tab or a shared ``?record=``
link opens the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from rdpt_core.provenance import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA, NAMED_TEACHER, classify_table
from rdpt_core.records import Origin, Record
from rdpt_core.scoring import ROLES, ScoredCorpus

from .loaders import BUILTINS, DEMO_ID, actions_of, builtin_dataset, corpus_key, workspace

# the lab lineage's models (the demo was scored with them): rdpt_lab/models.py
DEFAULT_MODELS = {"teacher": "smollm2-135m-steps-teacher", "student": "gemma3-270m",
                  "distilled": "gemma3-270m-steps-distilled"}
SEGMENTERS = ("paper", "spacy", "paragraph")


@dataclass(frozen=True)
class Settings:
    """The shared thresholds and segmenter, captured as plain values (for work that runs
    outside the script, such as a download built when clicked)."""

    alpha: float
    beta: float
    segmenter: str
    gamma: float = DEFAULT_GAMMA


def default_choice(role: str) -> dict[str, Any]:
    """The Models page's starting settings for ``role`` (a named teacher starts as the teacher)."""
    return {"source": "zoo", "name": DEFAULT_MODELS.get(role, DEFAULT_MODELS["teacher"]), "dtype": "auto", "quantization": "none",
            "device": "auto", "template": "auto", "raw_template": "{prompt}\n\n", "trust_remote_code": False,
            "enabled": True}


def settings() -> Settings:
    ss = st.session_state
    return Settings(float(ss.alpha), float(ss.beta), str(ss.segmenter), float(ss.gamma))


def init_state() -> None:
    """Defaults on a session's first run; the dataset (and record) named in the address bar,
    else the demo opened on its longest correct response."""
    ss = st.session_state
    ss.setdefault("alpha", DEFAULT_ALPHA)
    ss.setdefault("beta", DEFAULT_BETA)
    ss.setdefault("gamma", DEFAULT_GAMMA)
    ss.setdefault("segmenter", "paper")
    ss.setdefault("teachers", [])
    ss.setdefault("choices", {role: default_choice(role) for role in ROLES})
    ss.setdefault("notices", [])
    if "records" in ss:
        return
    wanted = st.query_params.get("dataset")
    if wanted and not open_dataset(wanted):
        ss.notices.append(f"The linked dataset {wanted!r} is not in this workspace (deleted, or saved on "
                          "another machine); showing the demo instead.")
    if "records" not in ss:
        open_dataset(DEMO_ID)
    linked = st.query_params.get("record")
    if linked:
        if any(r.record_id == linked for r in ss.records):
            ss.record_id = linked
        else:
            ss.notices.append(f"The linked record {linked!r} is not in {ss.dataset_name!r}.")


def open_dataset(dataset_id: str) -> bool:
    """Make a built-in or saved dataset the working one; False when there is none by that id."""
    if dataset_id in BUILTINS:
        loaded = builtin_dataset(dataset_id)
    elif dataset_id in workspace():
        loaded = workspace().load(dataset_id)
    else:
        return False
    _set(dataset_id, loaded.name, loaded.records, loaded.corpus, loaded.origins)
    # the β page's known-origin panel starts from the pattern known for this data (or none)
    st.session_state.known_origin_default = BUILTINS[dataset_id].known_origin if dataset_id in BUILTINS else ""
    st.session_state.pop("known_origin_pattern", None)  # a pattern belongs to the data it was typed for
    known = BUILTINS[dataset_id].known_teachers if dataset_id in BUILTINS else {}
    st.session_state.known_teachers_default = "\n".join(f"{name} = {pattern}" for name, pattern in known.items())
    st.session_state.pop("known_teachers_text", None)
    if dataset_id == DEMO_ID:
        st.session_state.record_id = _longest_correct(loaded.corpus) or st.session_state.record_id
    return True


def _longest_correct(corpus: ScoredCorpus | None) -> str | None:
    """The correct response with the most actions: a telling first example."""
    if corpus is None:
        return None
    table = actions_of(corpus_key(corpus), corpus, st.session_state.segmenter)
    sizes = table[table["correct"].fillna(False).astype(bool)].groupby("record_id", sort=False).size()
    return str(sizes.idxmax()) if len(sizes) else None


def _set(dataset_id: str, name: str, records: list[Record], corpus: ScoredCorpus | None,
         origins: dict[str, Origin]) -> None:
    ss = st.session_state
    ss.dataset_id, ss.dataset_name = dataset_id, name
    ss.records, ss.corpus, ss.origins = list(records), corpus, dict(origins)
    ss.record_id = records[0].record_id if records else None
    st.query_params["dataset"] = dataset_id


def is_builtin() -> bool:
    return st.session_state.dataset_id in BUILTINS


def new_dataset(name: str, records: list[Record], corpus: ScoredCorpus | None = None,
                origins: dict[str, Origin] | None = None) -> str:
    """Save a new dataset to the workspace and make it the working one; returns its id."""
    dataset_id = workspace().save(name, records, corpus, origins)
    _set(dataset_id, name, records, corpus, dict(origins or {}))
    return dataset_id


def _save() -> None:
    """Persist the working dataset; a built-in one becomes the user's own copy first."""
    ss = st.session_state
    if is_builtin():
        ss.dataset_name = f"{ss.dataset_name} + my changes"
        ss.dataset_id = workspace().save(ss.dataset_name, ss.records, ss.corpus, ss.origins)
        st.query_params["dataset"] = ss.dataset_id
    else:
        workspace().save(ss.dataset_name, ss.records, ss.corpus, ss.origins, dataset_id=ss.dataset_id)


def add_records(new: list[Record], origins: dict[str, Origin] | None = None) -> int:
    """Append records whose ids are new to the working dataset (and save it); returns how many."""
    ss = st.session_state
    existing = {r.record_id for r in ss.records}
    fresh = [r for r in new if r.record_id not in existing]
    if fresh:
        ss.records = [*ss.records, *fresh]
        ss.origins = {**ss.origins, **{k: v for k, v in (origins or {}).items() if k not in existing}}
        _save()
    return len(fresh)


def merge_into_corpus(corpus: ScoredCorpus) -> None:
    """Add freshly scored records to the working corpus, and save. Scores of other models or
    other settings (template, dtype…: :meth:`ScoredCorpus.scored_alike`) are never mixed in: the
    new corpus replaces the old one."""
    ss = st.session_state
    old = ss.get("corpus")
    ss.corpus = old.merged(corpus) if old is not None and old.scored_alike(corpus) else corpus
    _save()


def record_ids_scored() -> set[str]:
    corpus = st.session_state.get("corpus")
    return {r.record_id for r in corpus.records} if corpus is not None else set()


def take_notices() -> list[str]:
    """Messages for the user that arose outside a page (a broken link), shown once."""
    notices, st.session_state.notices = list(st.session_state.notices), []
    return notices


def current_actions() -> pd.DataFrame | None:
    """The working corpus's action table, classified at the shared α, β and segmenter."""
    corpus = st.session_state.get("corpus")
    if corpus is None or not corpus.records:
        return None
    s = settings()
    return classify_table(actions_of(corpus_key(corpus), corpus, s.segmenter), s.alpha, s.beta, s.gamma)


def has_named_teachers() -> bool:
    """Whether the working corpus was scored with several named teachers (then γ matters)."""
    corpus = st.session_state.get("corpus")
    return corpus is not None and any(role.startswith(NAMED_TEACHER) for role in corpus.models)

