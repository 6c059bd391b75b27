"""Corpus: the paper's per-position curves (correct solid, incorrect dashed), live with α and β."""

import streamlit as st

from rdpt_app.state import chart_downloads, current_actions, current_behaviour_tags, page_setup
from rdpt_core import stats
from rdpt_core.behaviours import behaviour_mix
from rdpt_core.charts import behaviour_chart, counts_chart, mean_probability_chart, position_chart
from rdpt_core.report import build_report
from rdpt_core.selection import has_candidates, response_features

page_setup("Corpus")
st.title("Corpus")
table = current_actions()
if table is None:
    st.info("Nothing scored yet: score a dataset on the Trajectories page.")
    st.stop()
column = "cls" if "cls" in table.columns else "cls3"
c1, c2 = st.columns(2)
min_n = c1.number_input("Hide positions with fewer responses than", 1, 10_000, 10, key="corpus_min_n")
step = c2.number_input("Token marks every", 500, 64_000, 4000, step=500, key="corpus_step")

ss = st.session_state
settings = {**{f"model ({role})": label for role, label in ss.corpus.models.items()},
            "segmenter": ss.segmenter, "dataset": ss.dataset_name}


def report() -> str:
    # like the CLI: a selection section when there are several T+S-scored answers per question
    selection = response_features(table, ss.beta) if has_candidates(table) else None
    return build_report(table, ss.alpha, ss.beta, settings, min_n=int(min_n), token_step=int(step),
                        title=f"RDPT report · {ss.dataset_name}", selection=selection)


st.download_button("Report (self-contained HTML)", report, "rdpt-report.html", "text/html", on_click="ignore",
                   type="primary")

curves = stats.position_curves(table, column, int(min_n))
marks = stats.token_marks(table, int(step))
st.caption(f"{table.record_id.nunique()} responses, {len(table)} actions · α = {st.session_state.alpha:.2f}, "
           f"β = {st.session_state.beta:.2f}")
if curves.empty:
    st.warning(f"No position has {min_n} responses with a scored action; lower the minimum.")
else:
    chart = position_chart(curves, marks)
    st.subheader("Class share by position")
    st.altair_chart(chart, width="stretch")
    chart_downloads(chart, "curves")
    n_chart = counts_chart(curves)
    st.altair_chart(n_chart, width="stretch")
    chart_downloads(n_chart, "n_j")

st.subheader("Mean probability by position")
means = stats.mean_probability_curves(table, int(min_n))
if not means.empty:
    means_chart = mean_probability_chart(means)
    st.altair_chart(means_chart, width="stretch")
    chart_downloads(means_chart, "mean-probability")

st.subheader("Correct vs incorrect responses")
st.dataframe(stats.correct_vs_incorrect(table, column), hide_index=True)
st.caption("Shares of actions per class; z and p from a two-sided two-proportion z-test.")

st.subheader("Behaviours per class (SEAL-style keywords)")
mix = behaviour_mix(table, column, current_behaviour_tags())
mix_chart = behaviour_chart(mix)
st.altair_chart(mix_chart, width="stretch")
chart_downloads(mix_chart, "behaviours")
st.dataframe(mix)
