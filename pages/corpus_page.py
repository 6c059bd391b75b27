"""Corpus: the paper's per-position curves (correct solid, incorrect dashed), live with α and β."""

import streamlit as st

from rdpt_app.state import current_behaviour_tags, settings
from rdpt_app.widgets import chart, download, scored_actions
from rdpt_core import stats
from rdpt_core.behaviours import behaviour_mix
from rdpt_core.charts import behaviour_chart, counts_chart, mean_probability_chart, position_chart
from rdpt_core.provenance import class_column
from rdpt_core.report import build_report
from rdpt_core.selection import has_candidates, response_features

st.title("Corpus")
table = scored_actions()
column = class_column(table)
c1, c2 = st.columns(2)
min_n = int(c1.number_input("Flag positions with fewer responses than", 1, 10_000, 10, key="corpus_min_n",
                            help="Every position is drawn; those with fewer responses are listed under the chart."))
step = int(c2.number_input("Token marks every", 500, 64_000, 4000, step=500, key="corpus_step"))

ss = st.session_state
now = settings()
report_settings = {**{f"model ({role})": label for role, label in ss.corpus.models.items()},
                   "segmenter": now.segmenter, "dataset": ss.dataset_name}
report_title = f"RDPT report · {ss.dataset_name}"


def report() -> str:
    # like the CLI: a selection section when there are several T+S-scored answers per question
    selection = response_features(table, now.beta) if has_candidates(table) else None
    return build_report(table, now.alpha, now.beta, report_settings, min_n=min_n, token_step=step,
                        title=report_title, selection=selection)


download(st, "Report (self-contained HTML)", report, "rdpt-report.html", "text/html", "corpus_dl_report",
         primary=True)

curves = stats.position_curves(table, column, min_n)
marks = stats.token_marks(table, step)
x_domain = (0.0, float(table["action_index"].max()))  # every position chart shares it
st.caption(f"{table.record_id.nunique()} responses, {len(table)} actions · α = {now.alpha:.2f}, "
           f"β = {now.beta:.2f}")
if curves.empty:
    st.warning("No response has a scored action: nothing to draw by position.")
else:
    st.subheader("Class share by position")
    chart(position_chart(curves, marks, x_domain=x_domain), "curves")
    chart(counts_chart(curves, x_domain=x_domain), "n_j")
    thin = stats.thin_positions_note(curves, min_n)
    if thin:
        st.caption(thin)

st.subheader("Mean probability by position")
means = stats.mean_probability_curves(table, min_n)
if not means.empty:
    chart(mean_probability_chart(means, x_domain=x_domain), "mean-probability")
    thin = stats.thin_positions_note(means, min_n)
    if thin:
        st.caption(thin)

st.subheader("Correct vs incorrect responses")
st.dataframe(stats.correct_vs_incorrect(table, column), hide_index=True)
st.caption(stats.CORRECT_VS_INCORRECT_CAPTION)

st.subheader("Behaviours per class (SEAL-style keywords)")
mix = behaviour_mix(table, column, current_behaviour_tags())
chart(behaviour_chart(mix), "behaviours")
st.dataframe(mix)
