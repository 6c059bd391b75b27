"""β tuning (paper appendix A.2): per-response class-proportion histograms for a grid of β."""

import numpy as np
import pandas as pd
import streamlit as st

from rdpt_app.loaders import actions_of, corpus_key
from rdpt_app.state import settings
from rdpt_app.widgets import chart, scored_actions, seeded
from rdpt_core import origin, stats
from rdpt_core.charts import beta_histograms
from rdpt_core.provenance import class_column, classify_table
from rdpt_core.render import escape_markdown
from rdpt_core.scoring import ScoredCorpus

ORIGIN_EXPLAINED = (
    "Some teachers open their sentences with markers of their own (`Plan:`, `Step 2 of 5:`, `Check:` …). "
    "Give a regular expression for such openings: an action of the distilled model that starts with one is "
    "**teacher-style**, known to come from the teacher by a rule that involves no model. The panel then shows, "
    "for each β of the grid, how many teacher-style actions are classified Teacher (recall), how many Teacher "
    "actions are teacher-style (precision), and which classes the other actions get.")
AGREEMENT_HELP = {
    "n_teacher_style": "Scored teacher-style actions", "n_other": "Scored actions that are not teacher-style",
    "teacher_recall": "Share of teacher-style actions classified Teacher",
    "teacher_or_boosted_recall": "Share of teacher-style actions classified Teacher or Boosted",
    "teacher_precision": "Share of Teacher actions that are teacher-style",
    "other_as_teacher": "Share of the other actions classified Teacher",
}
SHARE_FORMAT = st.column_config.NumberColumn(format="%.3f")


@st.cache_data(show_spinner=False, max_entries=16)
def teacher_style(key: str, _corpus: ScoredCorpus, segmenter: str, pattern: str) -> np.ndarray:
    """Which actions open with the pattern: independent of α and β, so cached on its own."""
    return origin.known_origin(actions_of(key, _corpus, segmenter)["text"], pattern)


@st.cache_data(show_spinner=False, max_entries=32)
def agreement_by_beta(key: str, _corpus: ScoredCorpus, segmenter: str, pattern: str, alpha: float,
                      betas: tuple[float, ...]) -> pd.DataFrame:
    return origin.origin_agreement(actions_of(key, _corpus, segmenter), pattern, alpha, betas)


@st.cache_data(show_spinner=False, max_entries=64)
def origin_at(key: str, _corpus: ScoredCorpus, segmenter: str, pattern: str, alpha: float,
              beta: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The confusion table and the per-response summary at one (α, β)."""
    table = classify_table(actions_of(key, _corpus, segmenter), alpha, beta)
    column, styled = class_column(table), teacher_style(key, _corpus, segmenter, pattern)
    return origin.origin_confusion(table, column, styled), origin.origin_by_response(table, column, styled)


def pattern_input() -> str:
    """The teacher-style regex; a demo pre-fills it through ``known_origin_default``."""
    ss = st.session_state
    ss.setdefault("known_origin_pattern", ss.get("known_origin_default", ""))
    return str(seeded(st.text_input, "known_origin_pattern", "Teacher-style pattern (regular expression)",
                      placeholder=r"Plan:|Step \d+ →|Check:",
                      help="Matched with Python's re.match at the start of each action, leading whitespace "
                           "stripped; case-sensitive unless the pattern starts with (?i)."))


def per_response_line(by_response: pd.DataFrame) -> str:
    """The per-response summary: each response with teacher-style actions counts once."""
    with_style = by_response[by_response["n_teacher_style"] > 0]
    if with_style.empty:
        return "Per response: no response has a scored teacher-style action."
    n = len(with_style)
    return (f"Per response (each counts once, whatever its length): {n} response{'s' if n != 1 else ''} "
            f"with teacher-style actions; mean share of them classified Teacher "
            f"{with_style['teacher_recall'].mean():.2f}, median {with_style['teacher_recall'].median():.2f}.")


def origin_panel(alpha: float, beta: float, betas: list[float]) -> None:
    """Agreement of the classes with a known origin (rdpt_core.origin), under the overlap rule."""
    st.subheader("Agreement with known origin")
    pattern = pattern_input()
    if not pattern:
        st.caption(ORIGIN_EXPLAINED)
        return
    try:
        regex = origin.compile_pattern(pattern)
    except ValueError as err:
        st.error(escape_markdown(err))
        return
    if regex.match(""):
        st.warning("This pattern matches an empty opening, so every action counts as teacher-style.")
    corpus = st.session_state.corpus
    key, segmenter = corpus_key(corpus), settings().segmenter
    agreement = agreement_by_beta(key, corpus, segmenter, pattern, alpha, tuple(betas))
    st.dataframe(agreement, hide_index=True, column_config={
        "beta": st.column_config.NumberColumn(format="%.2f"),
        **{c: st.column_config.NumberColumn(help=text, format=None if c.startswith("n_") else "%.3f")
           for c, text in AGREEMENT_HELP.items()}})
    confusion, by_response = origin_at(key, corpus, segmenter, pattern, alpha, beta)
    st.markdown(f"Classes against known origin at α = {alpha:.2f}, β = {beta:.2f}:")
    st.dataframe(confusion, column_config={c: SHARE_FORMAT for c in ("share_of_teacher_style", "share_of_other")})
    st.caption("Unit: actions (sentences), Unscored ones left out. Rule: an action is teacher-style when its text, "
               "leading whitespace stripped, starts with a match of the pattern.")
    st.caption(per_response_line(by_response))


st.title("β tuning")
table = scored_actions()
column = class_column(table)
c1, c2 = st.columns([3, 1])
grid_text = c1.text_input("β grid", ", ".join(f"{b:.2f}" for b in stats.beta_grid()), key="beta_grid")
bins = int(c2.number_input("Histogram bins", 2, 50, 10, key="beta_bins"))
try:
    betas = sorted({float(x) for x in grid_text.replace(";", ",").split(",") if x.strip()})
    if not betas or not all(0 <= b <= 1 for b in betas):
        raise ValueError
except ValueError:
    st.error("The grid must be numbers between 0 and 1, separated by commas.")
    st.stop()

alpha = settings().alpha
overlaps = stats.beta_overlaps(table, alpha, betas, bins, column)
props = stats.proportions_by_beta(table, alpha, betas, column)
# one class at every β: no pair of classes, so no overlap to minimise and nothing to suggest
suggested = stats.suggest_beta(overlaps) if len(overlaps) else None
if props.empty:
    st.info("No action has all its probabilities (every one is Unscored): nothing to tune β on.")
elif overlaps.empty:
    st.info(f"Only one class ({', '.join(sorted(set(props['cls'])))}) at every β of the grid: no two classes "
            "whose overlap could choose β.")
elif suggested is not None:
    st.success(f"Suggested β = {suggested:.2f}: the two most frequent classes overlap least there.")
    # a callback: the β slider is drawn before this page, so its value is set before the rerun
    st.button(f"Apply β = {suggested:.2f}", type="primary", key="beta_apply",
              on_click=lambda: st.session_state.update(beta=suggested))
chart(beta_histograms(props, suggested, bins), "beta-histograms")
st.subheader("Overlap of every pair of classes")
st.dataframe(overlaps.pivot_table(index=["class_a", "class_b"], columns="beta", values="overlap").round(3))
st.caption("Overlap = Σ over bins of min(h_a, h_b) of the two normalised histograms (1: identical). "
           "Each histogram counts responses (one proportion per response), not actions.")
origin_panel(alpha, settings().beta, betas)
