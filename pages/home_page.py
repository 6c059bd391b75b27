"""Home: what RDPT does, the current set-up, and the demo's featured response."""

import streamlit as st

from rdpt_app.scoring import choice_of, model_roles
from rdpt_app.state import current_actions, open_dataset
from rdpt_core.provenance import class_column
from rdpt_core.render import escape_markdown, highlighted_block

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
    for role in model_roles():
        choice = choice_of(role)
        # the model name is typed by the user: escaped, and not in a code span (a backtick would end it)
        state = escape_markdown(choice["name"]) if choice.get("enabled", True) else "off"
        st.markdown(f"- **{escape_markdown(role)}**: {state} · {choice['quantization']} · {choice['template']} template")
    st.markdown(f"- **dataset**: {escape_markdown(ss.dataset_name)} ({len(ss.records)} records)")
    gamma = f", **γ** = {ss.gamma:.2f}" if ss.teachers else ""
    st.markdown(f"- **α** = {ss.alpha:.2f}, **β** = {ss.beta:.2f}{gamma}, segmenter `{ss.segmenter}`")
    for dataset_id, label, primary in (("demo", "Open the demo in the explorer", True),
                                       ("math500-subset", "Open real MATH500 responses in the explorer", False),
                                       ("ensemble", "Open the two-teacher lab: which teacher?", False)):
        if st.button(label, type="primary" if primary else "secondary", key=f"home_open_{dataset_id}"):
            open_dataset(dataset_id)
            st.switch_page("pages/explorer_page.py")
    if st.button("Compare real AIME24 sources (three SkyThought models)", key="home_open_sources"):
        st.session_state.pop("src_data", None)  # the page's first choice: the bundled responses
        st.switch_page("pages/sources_page.py")
    st.page_link("pages/models_page.py", label="Choose models", icon=":material/memory:")
    st.page_link("pages/trajectories_page.py", label="Bring trajectories", icon=":material/upload_file:")
    st.page_link("pages/data_selection_page.py", label="Select distillation data", icon=":material/filter_alt:")
    st.page_link("pages/sources_page.py", label="Compare distillation sources", icon=":material/compare_arrows:")

with left:
    st.subheader("Preview")
    st.caption(f"{escape_markdown(ss.dataset_name)}. The lab's lineage (docs/lab.md): a teacher trained here "
               "(SmolLM2-135M-Instruct + LoRA) to solve multi-step word problems in a style of its own "
               "('Plan:', 'Step 2 →', 'Check:'), the student (Gemma-3-270M) and the student distilled on the "
               "teacher's verified answers. Hover a sentence for its numbers.")
    table = current_actions()
    if table is not None and len(table):
        rid = ss.record_id if ss.record_id in set(table.record_id) else table.record_id.iloc[0]
        rows = table[table.record_id == rid]
        st.html(highlighted_block(rows, class_column(rows)))
    else:
        st.info("The working dataset is not scored yet: score it on the Trajectories page.")
