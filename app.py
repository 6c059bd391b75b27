"""RDPT Explorer: the one entrypoint (`make app`, or `streamlit run app.py`).

It sets up the session (state, the dataset named in the address bar, the sidebar) once for
every page, then runs the page the user chose. Pages only draw.

Page files are named ``pages/<name>_page.py`` while their addresses are ``/<name>``: Streamlit
also treats a ``pages/`` folder as a legacy multipage app, and on a fresh server a first visit
to an address that equals a file's name would run that file without this entrypoint.
"""

import streamlit as st

from rdpt_app.state import init_state, take_notices
from rdpt_app.widgets import dataset_caption, sidebar
from rdpt_core.render import escape_markdown

PAGES = {
    "Explore": [
        st.Page("pages/home_page.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/explorer_page.py", title="Response explorer", icon=":material/format_color_text:",
                url_path="explorer"),
        st.Page("pages/corpus_page.py", title="Corpus", icon=":material/stacked_line_chart:", url_path="corpus"),
        st.Page("pages/beta_tuning_page.py", title="β tuning", icon=":material/tune:", url_path="beta-tuning"),
    ],
    "Data": [
        st.Page("pages/models_page.py", title="Models", icon=":material/memory:", url_path="models"),
        st.Page("pages/trajectories_page.py", title="Trajectories", icon=":material/upload_file:",
                url_path="trajectories"),
        st.Page("pages/data_selection_page.py", title="Data selection", icon=":material/filter_alt:",
                url_path="data-selection"),
        st.Page("pages/sources_page.py", title="Distillation sources", icon=":material/compare_arrows:",
                url_path="sources"),
    ],
}

page = st.navigation(PAGES)
st.set_page_config(page_title=f"RDPT Explorer · {page.title}", page_icon=":material/account_tree:",
                   layout="wide")
init_state()
if st.query_params.get("dataset") != st.session_state.dataset_id:  # page switches drop the query
    st.query_params["dataset"] = st.session_state.dataset_id
caption_slot = sidebar()
dataset_caption(caption_slot)  # what a page that stops early (st.stop) leaves in place
for notice in take_notices():
    st.warning(escape_markdown(notice))  # notices quote the address bar: a crafted link must stay text
page.run()
dataset_caption(caption_slot)  # again after the page, so a load on it shows at once
