"""Distillation sources (docs/method.md): per source, the response-length distribution, perplexity
under one reference model, and length against question difficulty (adaptive length)."""

import streamlit as st

from rdpt_app.loaders import backend, sources_demo, spec_key
from rdpt_app.scoring import roles_available, spec_for
from rdpt_app.state import settings
from rdpt_app.widgets import StreamlitProgress, chart, download
from rdpt_core.charts import length_difficulty_chart, length_histogram_chart
from rdpt_core.render import escape_markdown
from rdpt_core.report import build_report
from rdpt_core.sources import (
    ADAPTIVITY_CAPTION, adaptivity, histogram, length_stats, length_vs_difficulty, response_table, score_reference,
)

st.title("Distillation sources")
ss = st.session_state
BUNDLED = "Bundled: AIME24, three SkyThought models (reference: SmolLM2-135M)"
WORKING = "Working dataset (Trajectories page), grouped by source"

data = st.radio("Responses", [BUNDLED, WORKING], horizontal=True, key="src_data")
if data == BUNDLED:
    responses, reference = sources_demo()
else:
    records = ss.records
    role = st.selectbox("Reference model", roles_available(), key="src_role",
                        help="the model chosen for this role on the Models page scores every response")
    spec = spec_for(role)
    reference = spec.label
    scored_here = ss.setdefault("reference_tokens", {}).setdefault(spec_key(spec), {})
    corpus = ss.get("corpus")
    # responses the Trajectories page already scored by this very model and settings (same
    # fingerprint, not just the same label) need no second pass
    same_scores = corpus is not None and corpus.fingerprints.get(role) == backend(spec).fingerprint
    from_corpus = corpus.tokens.get(role, {}) if same_scores else {}
    done = {**from_corpus, **scored_here}
    todo = [r for r in records if r.record_id not in done]
    if todo and st.button(f"Score {len(todo)} response(s) with {escape_markdown(spec.label)}", key="src_score",
                          type="primary"):
        scored_here.update(score_reference(todo, backend(spec), progress=StreamlitProgress))
        st.rerun()
    responses = response_table(records, done)
    if responses.empty:
        st.info(f"{len(records)} responses in the working dataset; score them with the reference model "
                "to compare their sources.")
        st.stop()
    if todo:
        st.caption(f"{len(todo)} of {len(records)} responses are not scored yet and are left out.")

n_sources = responses["source"].nunique()
if n_sources < 2:
    st.warning("Only one source: tag records with a `source` (e.g. load one file per model) to compare.")
st.caption(f"{len(responses)} responses from {n_sources} source(s); lengths and perplexity under "
           f"{escape_markdown(reference)}.")

unit = st.radio("Length in", ["reference tokens", "characters"], horizontal=True, key="src_unit")
column = "n_tokens" if unit == "reference tokens" else "n_chars"
stats = length_stats(responses, column)
st.subheader("Length distribution and perplexity")
st.dataframe(stats, hide_index=True)
st.caption("std is the sample standard deviation; cv = std / mean (length diversity). Perplexity = "
           "exp(−mean token log-prob) over all of a source's response tokens.")
bins = st.slider("Histogram bins", 5, 60, 20, key="src_bins")
chart(length_histogram_chart(histogram(responses, bins, column)), "source-lengths")

st.subheader("Length against difficulty")
points = length_vs_difficulty(responses, column)
if points.empty:
    st.info("No question has a response with a known correctness from every source.")
else:
    chart(length_difficulty_chart(points), "length-vs-difficulty")
    st.dataframe(adaptivity(responses, column), hide_index=True)
    st.caption(f"{points.question_id.nunique()} shared questions. {ADAPTIVITY_CAPTION}")

d = st.columns(3)
now = settings()


def report() -> str:
    return build_report(None, now.alpha, now.beta, {"reference model": reference}, title="RDPT distillation sources",
                        sources=responses)


download(d[0], "Per-source statistics (CSV)", lambda: stats.to_csv(index=False), "sources.csv", "text/csv",
         "src_dl_stats")
download(d[1], "Per-response table (CSV)", lambda: responses.to_csv(index=False), "source-responses.csv", "text/csv",
         "src_dl_responses")
download(d[2], "Report (HTML)", report, "rdpt-sources-report.html", "text/html", "src_dl_report")
