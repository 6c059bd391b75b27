"""RDPT Explorer — home page. Run with `make app` (or `streamlit run app.py`)."""

import streamlit as st

from rdpt_app.state import DEMO_NAME, current_actions, page_setup, use_demo
from rdpt_core.render import highlighted_block

page_setup("Home")
st.title("RDPT Explorer")
st.markdown(
    "**Where does each sentence of a distilled model's answer come from?** "
    "RDPT scores every sentence of a response under the **teacher**, the original **student** and "
    "the **distilled** model, and labels it *Teacher*, *Student*, *Shared* (all agree) or "
    "*Boosted* (teacher and student agree, distillation changed it) — then uses the teacher/student "
    "split to pick better distillation data."
)

ss = st.session_state
left, right = st.columns([2, 1])
with right:
    st.subheader("Current set-up")
    for role, choice in ss.choices.items():
        state = choice["name"] if choice.get("enabled", True) else "off"
        st.markdown(f"- **{role}**: `{state}` · {choice['quantization']} · {choice['template']} template")
    st.markdown(f"- **dataset**: {ss.dataset_name} ({len(ss.records)} records)")
    st.markdown(f"- **α** = {ss.alpha:.2f}, **β** = {ss.beta:.2f}, segmenter `{ss.segmenter}`")
    if st.button("Open the demo in the explorer", type="primary"):
        if ss.dataset_name != DEMO_NAME:
            use_demo()
        st.switch_page("pages/3_Explorer.py")
    st.page_link("pages/1_Models.py", label="Choose models", icon=":material/tune:")
    st.page_link("pages/2_Trajectories.py", label="Bring trajectories", icon=":material/upload_file:")
    st.page_link("pages/6_Data_selection.py", label="Select distillation data", icon=":material/filter_alt:")
    st.page_link("pages/7_Distillation_sources.py", label="Compare distillation sources",
                 icon=":material/compare_arrows:")

with left:
    st.subheader("Demo preview")
    st.caption("The lab's own lineage: SmolLM2-135M-Instruct (teacher) → Gemma-3-270M (student) → "
               "Gemma-3-270M + LoRA trained on the teacher's answers (distilled). Hover a sentence for its numbers.")
    table = current_actions()
    if table is not None and len(table):
        first = table[table.record_id == ss.record_id] if ss.record_id in set(table.record_id) else table
        first = first[first.record_id == first.record_id.iloc[0]]
        st.html(highlighted_block(first, "cls" if "cls" in first.columns else "cls3"))
