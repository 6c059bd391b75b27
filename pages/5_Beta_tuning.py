"""β tuning (paper appendix A.2): per-response class-proportion histograms for a grid of β."""

import streamlit as st

from rdpt_app.state import chart_downloads, current_actions, page_setup
from rdpt_core import stats
from rdpt_core.charts import beta_histograms

page_setup("β tuning")
st.title("β tuning")
ss = st.session_state
table = current_actions()
if table is None:
    st.info("Nothing scored yet: score a dataset on the Trajectories page.")
    st.stop()
column = "cls" if "cls" in table.columns else "cls3"
c1, c2 = st.columns([3, 1])
grid_text = c1.text_input("β grid", ", ".join(f"{b:.2f}" for b in stats.beta_grid()), key="beta_grid")
bins = c2.number_input("Histogram bins", 2, 50, 10, key="beta_bins")
try:
    betas = sorted({float(x) for x in grid_text.replace(";", ",").split(",") if x.strip()})
    if not betas or not all(0 <= b <= 1 for b in betas):
        raise ValueError
except ValueError:
    st.error("The grid must be numbers between 0 and 1, separated by commas.")
    st.stop()

overlaps = stats.beta_overlaps(table, ss.alpha, betas, int(bins), column)
suggested = stats.suggest_beta(overlaps)
if suggested is not None:
    st.success(f"Suggested β = {suggested:.2f}: the two most frequent classes overlap least there.")
    if st.button(f"Apply β = {suggested:.2f}", type="primary"):
        ss.beta = suggested
        st.rerun()
props = stats.proportions_by_beta(table, ss.alpha, betas, column)
chart = beta_histograms(props, suggested, int(bins))
st.altair_chart(chart)
chart_downloads(chart, "beta-histograms")
st.subheader("Overlap of every pair of classes")
st.dataframe(overlaps.pivot_table(index=["class_a", "class_b"], columns="beta", values="overlap").round(3))
st.caption("Overlap = Σ over bins of min(h_a, h_b) of the two normalised histograms (1: identical).")
