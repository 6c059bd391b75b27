"""Response explorer: one response, every action highlighted by its provenance class."""

import streamlit as st

from rdpt_app.state import chart_downloads, current_actions, page_setup, score_into_corpus
from rdpt_core.charts import response_chart
from rdpt_core.render import highlighted_block

page_setup("Response explorer")
st.title("Response explorer")

ss = st.session_state
records = {r.record_id: r for r in ss.records}
if not records:
    st.info("No trajectories yet: add some on the Trajectories page.")
    st.stop()

scored_ids = {r.record_id for r in ss.corpus.records} if ss.corpus else set()


def label(rid: str) -> str:
    r = records[rid]
    mark = {True: "✓", False: "✗", None: "?"}[r.correct]
    scored = "" if rid in scored_ids else " · not scored"
    return f"{rid} {mark} · {r.prompt[:70]}{scored}"


ids = list(records)
linked = st.query_params.get("record")  # ?record=<id> links straight to one response
if linked in records and not ss.get("followed_link"):
    ss.record_id, ss.followed_link = linked, True
if ss.get("record_id") not in records:
    ss.record_id = ids[0]
ss.w_record = ss.record_id
st.selectbox("Record", ids, format_func=label, key="w_record",
             on_change=lambda: ss.update(record_id=ss.w_record))
record = records[ss.record_id]
st.query_params["record"] = record.record_id  # the address bar is a shareable link

with st.expander("Prompt", expanded=False):
    st.text(record.prompt)

if record.record_id not in scored_ids:
    st.warning("This record has not been scored yet.")
    if st.button("Score it with the chosen models", type="primary"):
        score_into_corpus([record])
        st.rerun()
    st.stop()

table = current_actions()
actions = table[table.record_id == record.record_id].sort_values("action_index")
column = "cls" if "cls" in actions.columns else "cls3"
if column == "cls3":
    st.caption("No distilled model in this corpus: showing the 3 pre-training classes (Common / Teacher / Student).")

st.html(highlighted_block(actions, column))

chart = response_chart(actions, column)
st.altair_chart(chart, width="stretch")

show = ["action_index", "kind", column, "p_teacher", "p_student", "p_distilled", "n_tokens_distilled", "text"]
st.dataframe(actions[[c for c in show if c in actions.columns]], hide_index=True, width="stretch")

stem = f"rdpt-{record.record_id}".replace(":", "_").replace("/", "_")
cols = st.columns(4)
# Files are built only when clicked (callables), so slider moves stay instant.
cols[0].download_button("Actions (CSV)", lambda: actions.to_csv(index=False), f"{stem}.csv", "text/csv",
                        on_click="ignore")
cols[1].download_button("Actions (Parquet)", lambda: actions.to_parquet(index=False), f"{stem}.parquet",
                        on_click="ignore")
chart_downloads(chart, "response-chart", cols[2:])
