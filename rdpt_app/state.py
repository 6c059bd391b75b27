"""Session state, caches and shared widgets of the Streamlit app (the only Streamlit-aware
code besides the pages). Method logic stays in ``rdpt_core``.

State kept in ``st.session_state``:

* ``alpha``, ``beta``, ``segmenter`` – shared by every page;
* ``choices`` – per role, what the Models page picked (a plain dict, see :func:`spec_for`);
* ``dataset_name``, ``records`` – the trajectories being worked on;
* ``origins`` – record_id → input row, for exports in the input's own schema;
* ``corpus`` – the scored part of them (:class:`~rdpt_core.scoring.ScoredCorpus`);
* ``record_id`` – the record shown in the explorer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from rdpt_core.backends import ScoringBackend, create_backend
from rdpt_core.models import PROJECT_ROOT, ModelSpec, resolve_spec
from rdpt_core.provenance import DEFAULT_ALPHA, DEFAULT_BETA, classify_table
from rdpt_core.scoring import ROLES, ScoredCorpus
from rdpt_core.store import load_corpus

DEMO_DIR = Path(os.environ.get("RDPT_DEMO_DIR", PROJECT_ROOT / "demo" / "lab"))
DEMO_NAME = "Demo: lab lineage (distilled model's test answers)"
DEFAULT_MODELS = {"teacher": "smollm2-135m-instruct", "student": "gemma3-270m", "distilled": "gemma3-270m-distilled"}


def default_choice(role: str) -> dict[str, Any]:
    return {"source": "zoo", "name": DEFAULT_MODELS[role], "dtype": "auto", "quantization": "none",
            "device": "auto", "template": "auto", "raw_template": "{prompt}\n\n", "trust_remote_code": False,
            "enabled": True}


@st.cache_data(show_spinner="Loading the demo corpus…")
def demo_corpus() -> ScoredCorpus:
    return load_corpus(DEMO_DIR / "corpus")


@st.cache_data(show_spinner="Loading the lab's scored teacher samples…")
def teacher_corpus() -> ScoredCorpus:
    """The lab's teacher samples (several per question) scored by T and S: the selection demo."""
    return load_corpus(DEMO_DIR / "teacher_corpus")


@st.cache_data(show_spinner=False)
def teacher_origins() -> dict:
    """Input rows of the lab's teacher samples (for exports in their own schema)."""
    from rdpt_core.records import load_records

    return load_records(DEMO_DIR / "teacher_data.jsonl").origins


SOURCES_DEMO = PROJECT_ROOT / "data" / "aime24_sources" / "responses.parquet"


@st.cache_data(show_spinner=False)
def sources_demo() -> tuple[pd.DataFrame, str]:
    """AIME24 responses of three SkyThought models under one reference model, and its label."""
    table = pd.read_parquet(SOURCES_DEMO)
    return table, str(table.attrs.get("reference", "reference model"))


def init_state() -> None:
    """Defaults on first run: the demo corpus and the lab's lineage, α = β = 0.1."""
    ss = st.session_state
    ss.setdefault("alpha", DEFAULT_ALPHA)
    ss.setdefault("beta", DEFAULT_BETA)
    ss.setdefault("segmenter", "paper")
    ss.setdefault("choices", {role: default_choice(role) for role in ROLES})
    if "records" not in ss:
        wanted = ss.get("record_id")  # a record asked for before the first run stays selected
        use_demo()
        if any(r.record_id == wanted for r in ss.records):
            ss.record_id = wanted


def use_demo() -> None:
    corpus = demo_corpus()
    set_dataset(DEMO_NAME, corpus.records, corpus)
    # open on a telling example: the correct response with the most actions
    table = actions_of(corpus_key(corpus), corpus, "paper")
    sizes = table[table["correct"].fillna(False).astype(bool)].groupby("record_id", sort=False).size()
    if len(sizes):
        st.session_state.record_id = str(sizes.idxmax())


def set_dataset(name: str, records: list, corpus: ScoredCorpus | None = None,
                origins: dict | None = None) -> None:
    ss = st.session_state
    ss.dataset_name = name
    ss.records = list(records)
    ss.corpus = corpus
    ss.origins = dict(origins or {})
    ss.record_id = records[0].record_id if records else None


def spec_for(role: str) -> ModelSpec | None:
    """The ModelSpec the Models page describes for ``role`` (None when the role is off)."""
    choice = st.session_state.choices[role]
    if not choice.get("enabled", True):
        return None
    options = {k: choice[k] for k in ("dtype", "quantization", "device", "template", "raw_template", "trust_remote_code")}
    return resolve_spec(choice["name"], **options)


@st.cache_resource(show_spinner="Loading the tokenizer…", max_entries=6)
def backend_for(spec_key: str, _spec: ModelSpec) -> ScoringBackend:
    """One backend per spec, shared across sessions (its weights load lazily, on a cache miss).
    Cached resources are shared: callers only score with it, never mutate its settings."""
    return create_backend(_spec)


def spec_key(spec: ModelSpec) -> str:
    import json

    return json.dumps(spec.to_dict(), sort_keys=True, default=str)


@st.cache_data(show_spinner=False, max_entries=16)
def actions_of(corpus_key: str, _corpus: ScoredCorpus, segmenter: str) -> pd.DataFrame:
    """The action table of a corpus for one segmenter (re-segmentation needs no model)."""
    return _corpus.actions(segmenter)


@st.cache_data(show_spinner=False, max_entries=16)
def behaviour_tags(corpus_key: str, _corpus: ScoredCorpus, segmenter: str) -> pd.Series:
    """Behaviour tags of the corpus's actions (independent of α and β, so cached)."""
    from rdpt_core.behaviours import tag_actions

    return tag_actions(actions_of(corpus_key, _corpus, segmenter))


def current_behaviour_tags() -> pd.Series:
    corpus = st.session_state.corpus
    return behaviour_tags(corpus_key(corpus), corpus, st.session_state.segmenter)


def corpus_key(corpus: ScoredCorpus) -> str:
    """Identity of a corpus's content for the derived-table cache (cheap: ids and sizes)."""
    import hashlib

    h = hashlib.sha256(repr(sorted(corpus.models.items())).encode())
    for r in corpus.records:
        h.update(r.record_id.encode())
        h.update(str(len(r.response)).encode())
    for role in sorted(corpus.tokens):
        h.update(str(sum(s.n_tokens for s in corpus.tokens[role].values())).encode())
    return h.hexdigest()


def current_actions() -> pd.DataFrame | None:
    """Classified action table of the session's corpus, at the shared α, β and segmenter."""
    corpus = st.session_state.get("corpus")
    if corpus is None or not corpus.records:
        return None
    table = actions_of(corpus_key(corpus), corpus, st.session_state.segmenter)
    return classify_table(table, st.session_state.alpha, st.session_state.beta)


def _copy(widget_key: str, key: str) -> None:
    st.session_state[key] = st.session_state[widget_key]


def shared_sidebar() -> None:
    """α, β and the segmenter in the sidebar, kept across pages (widget state is per page, so
    each widget is seeded from, and copies back to, a plain session key)."""
    ss = st.session_state
    st.sidebar.header("Provenance thresholds")
    for key, label, help_text in (
        ("alpha", "α (Shared)", "Shared when all three |Δ| ≤ α"),
        ("beta", "β (Teacher / Student)", "Teacher when p_T − p_S > β, Student when p_S − p_T > β"),
    ):
        ss[f"w_{key}"] = ss[key]
        st.sidebar.slider(label, 0.0, 0.5, step=0.01, key=f"w_{key}", help=help_text,
                          on_change=_copy, args=(f"w_{key}", key))
    ss["w_segmenter"] = ss.segmenter
    st.sidebar.selectbox("Segmenter", ["paper", "spacy", "paragraph"], key="w_segmenter",
                         on_change=_copy, args=("w_segmenter", "segmenter"),
                         help="paper: the paper's regex; spacy: blank English sentencizer; paragraph: blank lines")
    st.sidebar.caption(f"Dataset: {ss.dataset_name} ({len(ss.records)} records, "
                       f"{len(ss.corpus.records) if ss.corpus else 0} scored)")


def page_setup(title: str) -> None:
    st.set_page_config(page_title=f"RDPT Explorer · {title}", layout="wide")
    init_state()
    shared_sidebar()


class StreamlitProgress:
    """A ``rdpt_core.scoring.ProgressBar`` drawn with ``st.progress``: done/total, rate, time left."""

    def __init__(self, desc: str, total: int) -> None:
        import time

        self.desc, self.total, self.done = desc, max(total, 1), 0
        self.started = time.perf_counter()
        self.bar = st.progress(0.0, text=f"{desc}: 0/{total}")

    def update(self, n: int = 1) -> None:
        import time

        self.done += n
        elapsed = time.perf_counter() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        self.bar.progress(min(self.done / self.total, 1.0),
                          text=f"{self.desc}: {self.done}/{self.total} · {rate:.2f} records/s · ~{left:.0f} s left")

    def close(self) -> None:
        self.bar.progress(1.0, text=f"{self.desc}: done")


def roles_available() -> list[str]:
    return [role for role in ROLES if st.session_state.choices[role].get("enabled", True)]


def demo_ready() -> bool:
    return (DEMO_DIR / "corpus" / "tokens.parquet").exists()


def path_label(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def score_into_corpus(records: list) -> None:
    """Score ``records`` with the Models page's specs (progress per model; token cache on disk)
    and merge them into the session corpus."""
    from rdpt_core.scoring import score_corpus

    specs, backends = _specs_and_backends()
    corpus, _ = score_corpus(records, specs, backends=backends, progress=StreamlitProgress)
    merge_into_corpus(corpus)


def _specs_and_backends() -> tuple[dict[str, ModelSpec], dict[str, ScoringBackend]]:
    specs = {role: spec for role in ROLES if (spec := spec_for(role)) is not None}
    return specs, {role: backend_for(spec_key(spec), spec) for role, spec in specs.items()}


def merge_into_corpus(corpus: ScoredCorpus) -> None:
    """Add freshly scored records to the session corpus (a new corpus if the models changed)."""
    old = st.session_state.get("corpus")
    same_models = old is not None and old.models == corpus.models
    st.session_state.corpus = old.merged(corpus) if same_models else corpus


def start_background_scoring(records: list):
    """Start a :class:`~rdpt_core.jobs.ScoringJob` for ``records`` with the chosen models."""
    from rdpt_core.jobs import ScoringJob

    specs, backends = _specs_and_backends()
    return ScoringJob(records, specs, backends=backends).start()


def chart_downloads(chart, stem: str, columns=None) -> None:
    """PNG and SVG download buttons for an Altair chart, rendered only when clicked."""
    from rdpt_core.charts import chart_png, chart_svg

    left, right = columns if columns is not None else st.columns(2)
    left.download_button(f"{stem} (PNG)", lambda: chart_png(chart), f"rdpt-{stem}.png", "image/png",
                         on_click="ignore", key=f"dl_png_{stem}")
    right.download_button(f"{stem} (SVG)", lambda: chart_svg(chart), f"rdpt-{stem}.svg", "image/svg+xml",
                          on_click="ignore", key=f"dl_svg_{stem}")
