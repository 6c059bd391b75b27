"""RDPT Explorer home page (placeholder until the app issue lands)."""

import streamlit as st

st.set_page_config(page_title="RDPT Explorer", layout="wide")
st.title("RDPT Explorer")
st.markdown(
    "Trace where each sentence of a distilled reasoning model's answer comes from: the "
    "**teacher**, the original **student**, **both**, or patterns distillation **boosted**.\n\n"
    "The scoring engine is available as a library and CLI: `python -m rdpt_core score --help`."
)
