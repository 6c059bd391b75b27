"""β tuning (paper appendix A.2): per-response class-proportion histograms for a grid of β."""

import streamlit as st

from rdpt_app.state import settings
from rdpt_app.widgets import chart, scored_actions
from rdpt_core import stats
from rdpt_core.charts import beta_histograms
from rdpt_core.provenance import class_column

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
