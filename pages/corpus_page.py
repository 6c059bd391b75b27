"""Corpus: the paper's per-position curves (correct solid, incorrect dashed), live with α and β."""

import pandas as pd
import streamlit as st

from rdpt_app.loaders import actions_of, behaviour_tags, corpus_key
from rdpt_app.state import settings
from rdpt_app.widgets import chart, download, frozen, scored_actions, seeded
from rdpt_core import origin, stats
from rdpt_core.behaviours import behaviour_mix
from rdpt_core.charts import behaviour_chart, counts_chart, mean_probability_chart, position_chart
from rdpt_core.provenance import (
    DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA, class_column, classify_table, teacher_colors, teacher_names,
)
from rdpt_core.render import escape_markdown
from rdpt_core.report import build_report
from rdpt_core.scoring import ScoredCorpus
from rdpt_core.selection import has_candidates, response_features


def classified(key: str, corpus: ScoredCorpus, segmenter: str, alpha: float, beta: float,
               gamma: float = DEFAULT_GAMMA) -> pd.DataFrame:
    """The corpus's action table with its classes at α and β, and each action's teacher at γ
    when several teachers scored it (the cached table, classified anew)."""
    return classify_table(actions_of(key, corpus, segmenter), alpha, beta, gamma)


@st.cache_data(show_spinner=False, max_entries=16)
def fixed_views(key: str, _corpus: ScoredCorpus, segmenter: str, min_n: int, token_step: int) -> dict:
    """What α and β do not change, built once per corpus, segmenter, min-n and token step: n_j
    and the mean probabilities (an action is unscored for a missing probability, never for a
    threshold, so any α and β give the same counts), the token marks and the shared x range."""
    table = classified(key, _corpus, segmenter, DEFAULT_ALPHA, DEFAULT_BETA)
    curves, means = stats.position_curves(table, class_column(table), min_n), stats.mean_probability_curves(table, min_n)
    x_domain = (0.0, float(table["action_index"].max()))  # every position chart shares it
    return {
        "n_responses": table["record_id"].nunique(), "n_actions": len(table), "means": means, "x_domain": x_domain,
        "marks": stats.token_marks(table, token_step),
        "counts_chart": None if curves.empty else frozen(counts_chart(curves, x_domain=x_domain, min_n=min_n)),
        "means_chart": None if means.empty else frozen(mean_probability_chart(means, x_domain=x_domain, min_n=min_n)),
    }


@st.cache_data(show_spinner=False, max_entries=64)
def corpus_views(key: str, _corpus: ScoredCorpus, segmenter: str, alpha: float, beta: float, gamma: float,
                 min_n: int, token_step: int) -> dict:
    """Every table and chart the page draws, for one corpus (``key``), segmenter, α, β, γ, min-n
    and token step. Small objects only: cached, a step back to an (α, β) already shown costs a lookup."""
    fixed = fixed_views(key, _corpus, segmenter, min_n, token_step)
    table = classified(key, _corpus, segmenter, alpha, beta, gamma)
    column = class_column(table)
    curves = stats.position_curves(table, column, min_n)
    mix = behaviour_mix(table, column, behaviour_tags(key, _corpus, segmenter))
    return {
        **fixed, "curves": curves, "correct_vs_incorrect": stats.correct_vs_incorrect(table, column), "mix": mix,
        "curves_chart": None if curves.empty else frozen(position_chart(curves, fixed["marks"],
                                                                        x_domain=fixed["x_domain"], min_n=min_n)),
        "mix_chart": frozen(behaviour_chart(mix)), **teacher_views(table, fixed, min_n),
    }


def teacher_views(table: pd.DataFrame, fixed: dict, min_n: int) -> dict:
    """Several teachers: per-position shares of the actions attributed to each teacher, and how
    the Teacher actions split among them (nothing for a single-teacher corpus)."""
    if "teacher_of" not in table.columns:
        return {}
    curves = stats.teacher_position_curves(table, min_n)
    colors = teacher_colors(teacher_names(table))
    shown = curves[curves["cls"].isin(list(colors))]
    return {"teacher_shares": stats.teacher_shares(table),
            "teacher_chart": None if shown.empty else frozen(position_chart(
                shown, fixed["marks"], x_domain=fixed["x_domain"], min_n=min_n, colors=colors))}


@st.cache_data(show_spinner=False, max_entries=32)
def attribution_views(key: str, _corpus: ScoredCorpus, segmenter: str, patterns: tuple[tuple[str, str], ...],
                      alpha: float, beta: float, gamma: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Attributions against the teachers known from their style markers: the confusion table at
    (α, β, γ) and attribution by γ over the grid (rdpt_core.origin)."""
    table, known = actions_of(key, _corpus, segmenter), dict(patterns)
    confusion = origin.attribution_confusion(classify_table(table, alpha, beta, gamma),
                                             origin.known_teachers(table["text"], known))
    return confusion, origin.attribution_by_gamma(table, known, alpha, beta, origin.GAMMA_GRID)


def known_teachers_panel(key: str, corpus: ScoredCorpus, alpha: float, beta: float, gamma: float,
                         segmenter: str) -> None:
    """Which-teacher attribution against a known truth: each teacher's style marker."""
    ss = st.session_state
    ss.setdefault("known_teachers_text", ss.get("known_teachers_default", ""))
    text = seeded(st.text_area, "known_teachers_text", "Known teachers: one per line, name = regular expression",
                  placeholder="steps = Step \\d+ →\nnarrative = (?:First of all|After that),",
                  help="An action whose text (leading whitespace stripped) starts with a match of a teacher's "
                       "pattern is known to come from that teacher; the patterns must not overlap.")
    try:
        patterns = origin.parse_teacher_patterns(text)
        if not patterns:
            st.caption("Give each teacher's style marker to check the attribution against a known truth "
                       "(the built-in two-teacher dataset fills them in).")
            return
        confusion, by_gamma = attribution_views(key, corpus, segmenter, tuple(patterns.items()), alpha, beta, gamma)
    except ValueError as err:  # a bad line, or overlapping styles
        st.error(escape_markdown(err))
        return
    st.markdown(f"Attribution against the known teacher at α = {alpha:.2f}, β = {beta:.2f}, γ = {gamma:.2f} "
                "(unit: actions, Unscored left out; columns: the known origin):")
    st.dataframe(confusion, column_config={c: st.column_config.NumberColumn(format="%.3f")
                                           for c in confusion.columns if c.startswith("share_of_")})
    st.markdown("Attribution by γ: of each teacher's marked actions, the shares attributed to it, to several "
                "teachers, to another teacher, or not of class Teacher / Boosted; precision = the share of the "
                "actions attributed to it that carry its marker.")
    st.dataframe(by_gamma, hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.3f")
                                                           for c in by_gamma.columns if c not in ("teacher", "n_marked")})


st.title("Corpus")
ss = st.session_state
corpus = ss.get("corpus")
if corpus is None or not corpus.records:
    scored_actions()  # nothing scored: it says so and stops the page
key = corpus_key(corpus)  # reads every token score: once per run
c1, c2 = st.columns(2)
min_n = int(c1.number_input("Flag positions with fewer responses than", 1, 10_000, 10, key="corpus_min_n",
                            help="Every position is drawn; those with fewer responses are listed under the chart."))
step = int(c2.number_input("Token marks every", 500, 64_000, 4000, step=500, key="corpus_step"))

now = settings()
views = corpus_views(key, corpus, now.segmenter, now.alpha, now.beta, now.gamma, min_n, step)
report_settings = {**{f"model ({role})": label for role, label in ss.corpus.models.items()},
                   "segmenter": now.segmenter, "dataset": ss.dataset_name}
report_title = f"RDPT report · {ss.dataset_name}"


def report() -> str:
    # like the CLI: a selection section when there are several T+S-scored answers per question
    table = classified(key, corpus, now.segmenter, now.alpha, now.beta, now.gamma)
    selection = response_features(table, now.beta) if has_candidates(table) else None
    return build_report(table, now.alpha, now.beta, report_settings, min_n=min_n, token_step=step,
                        title=report_title, selection=selection, gamma=now.gamma)


download(st, "Report (self-contained HTML)", report, "rdpt-report.html", "text/html", "corpus_dl_report",
         primary=True)

curves, means = views["curves"], views["means"]
st.caption(f"{views['n_responses']} responses, {views['n_actions']} actions · α = {now.alpha:.2f}, "
           f"β = {now.beta:.2f}")
if curves.empty:
    st.warning("No response has a scored action: nothing to draw by position.")
else:
    st.subheader("Class share by position")
    chart(views["curves_chart"], "curves")
    chart(views["counts_chart"], "n_j")
    thin = stats.thin_positions_note(curves, min_n)
    if thin:
        st.caption(thin)

if "teacher_shares" in views:
    st.subheader(f"Which teacher, by position (γ = {now.gamma:.2f})")
    st.caption("Share of responses whose j-th action is a Teacher or Boosted action attributed to each "
               "teacher, or to several teachers (no teacher beats the others by more than γ); correct "
               "solid, incorrect dashed. docs/method.md §18.")
    if views["teacher_chart"] is not None:
        chart(views["teacher_chart"], "teacher-curves")
    st.dataframe(views["teacher_shares"], hide_index=True,
                 column_config={"share": st.column_config.NumberColumn(format="percent"),
                                "mean_response_share": st.column_config.NumberColumn(format="percent")})
    st.caption("How the Teacher actions split: share = of all Teacher actions (pooled); mean_response_share "
               "= the mean over responses of the teacher's share of that response's Teacher actions.")
    st.subheader("Against known teachers")
    known_teachers_panel(key, corpus, now.alpha, now.beta, now.gamma, now.segmenter)

st.subheader("Mean probability by position")
if not means.empty:
    chart(views["means_chart"], "mean-probability")
    thin = stats.thin_positions_note(means, min_n)
    if thin:
        st.caption(thin)

st.subheader("Correct vs incorrect responses")
st.dataframe(views["correct_vs_incorrect"], hide_index=True)
st.caption(stats.CORRECT_VS_INCORRECT_CAPTION)

st.subheader("Behaviours per class (SEAL-style keywords)")
chart(views["mix_chart"], "behaviours")
st.dataframe(views["mix"])
