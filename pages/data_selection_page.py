"""Data selection (paper section 4; docs/method.md): keep, per question, the teacher response a
strategy prefers (the paper's: most Teacher actions), compare strategies, export the picks."""

import streamlit as st

from rdpt_app.loaders import SELECTION_RESULTS, actions_of, corpus_key, selection_results, teacher_corpus, teacher_origins
from rdpt_app.state import has_named_teachers, settings
from rdpt_app.widgets import chart, download, frozen
from rdpt_core.charts import agreement_chart, selection_chart
from rdpt_core.records import jsonl_lines
from rdpt_core.render import escape_markdown
from rdpt_core.report import build_report
from rdpt_core.scoring import ScoredCorpus
from rdpt_lab.experiment import conclusion, read_results, results_frame
from rdpt_core.selection import (
    agreement, box_plot_points, export_rows, has_candidates, kept_per_question, picks_by_strategy,
    response_features, strategies_for, strategy_summary,
)


@st.cache_data(show_spinner=False, max_entries=64)
def candidate_features(key: str, _corpus: ScoredCorpus, segmenter: str, beta: float) -> dict:
    """Per response features at β, and whether any question has several responses, for one
    corpus (``key``) and segmenter. Cached: a step back to a β already shown costs a lookup."""
    table = actions_of(key, _corpus, segmenter)
    return {"candidates": has_candidates(table), "features": response_features(table, beta)}


@st.cache_data(show_spinner=False, max_entries=64)
def strategy_views(key: str, _corpus: ScoredCorpus, segmenter: str, beta: float, seed: int) -> dict:
    """Every strategy's picks (each view below reads them) and the small tables and charts drawn
    from them. The box plots are drawn from five rows per strategy, not one per pick (the same
    plots: :func:`box_plot_points`)."""
    features = candidate_features(key, _corpus, segmenter, beta)["features"]
    stacked = picks_by_strategy(features, strategies_for(features), seed=seed)
    return {"stacked": stacked, "selection_chart": frozen(selection_chart(box_plot_points(stacked))),
            "summary": strategy_summary(stacked), "kept": kept_per_question(stacked),
            "agreement_chart": frozen(agreement_chart(agreement(stacked)))}


st.title("Teacher-guided data selection")
ss = st.session_state
LAB = "Lab: the teacher's verified samples (up to 4 per question, scored by T and S)"
WORKING = "Working dataset (Trajectories page)"
STRATEGY_HELP = {
    "max_teacher_count": "most Teacher actions (the paper's method)",
    "longest": "most student tokens",
    "max_teacher_proportion": "highest share of Teacher actions",
    "min_teacher_count": "fewest Teacher actions (control)",
    "random": "one at random (seeded)",
    "grape": "highest length-normalised student log-likelihood (GRAPE)",
    "teacher_quota": "most Teacher actions, each writer (source) at most an equal share of the questions",
}

data = st.radio("Candidate responses", [LAB, WORKING], horizontal=True, key="sel_data")
if data == LAB:
    corpus, origins = teacher_corpus(), teacher_origins()
else:
    corpus, origins = ss.get("corpus"), ss.get("origins", {})
    roles = set(corpus.tokens) if corpus is not None else set()
    if not ("teacher" in roles or has_named_teachers()) or "student" not in roles:
        st.info("The working dataset needs responses scored by the teacher and the student: load several "
                "teacher responses per question (grouped by question_id) and score them on the "
                "Trajectories page.")
        st.stop()

now = settings()
key = corpus_key(corpus)  # reads every token score: once per run
candidates = candidate_features(key, corpus, now.segmenter, now.beta)
features = candidates["features"]
if not candidates["candidates"]:
    st.warning("Every question has a single response, so every strategy keeps all of them. Selection "
               "needs several responses per question (the same question_id).")

c1, c2 = st.columns([3, 1])
strategy = c1.selectbox("Strategy", strategies_for(features), key="sel_strategy",
                        format_func=lambda s: f"{s} — {STRATEGY_HELP[s]}")
seed = int(c2.number_input("Seed (random)", 0, 2**31 - 1, 0, key="sel_seed"))
views = strategy_views(key, corpus, now.segmenter, now.beta, seed)
stacked = views["stacked"]
picked = stacked[stacked.strategy == strategy].drop(columns="strategy").reset_index(drop=True)
m = st.columns(4)
m[0].metric("Questions", features.question_id.nunique())
m[1].metric("Candidate responses", len(features))
m[2].metric("Mean Teacher actions, picked", f"{picked.n_teacher.mean():.2f}",
            f"{picked.n_teacher.mean() - features.n_teacher.mean():+.2f} vs all")
m[3].metric("Mean length, picked (tokens)", f"{picked.n_tokens.mean():.0f}",
            f"{picked.n_tokens.mean() - features.n_tokens.mean():+.0f} vs all")
st.caption(f"Teacher = an action with p_T − p_S > β (3-class rule) at β = {now.beta:.2f}, {now.segmenter} "
           "segmenter; with several teachers p_T is the best teacher's. Ties go to the response that comes "
           "first in the input."
           + (" teacher_quota: the answers have several writers (their source)." if "teacher_quota" in
              strategies_for(features) else ""))

picks_tab, compare_tab, agree_tab, all_tab = st.tabs(["Picks", "Strategies compared", "Agreement", "All responses"])
with picks_tab:
    st.dataframe(picked, hide_index=True)
with compare_tab:
    chart(views["selection_chart"], "selection")
    st.dataframe(views["summary"])
    st.markdown("**What each strategy kept, per question**")
    st.dataframe(views["kept"])
with agree_tab:
    chart(views["agreement_chart"], "agreement")
    st.caption("Share of questions on which two strategies keep the same response.")
with all_tab:
    st.dataframe(features, hide_index=True)

st.subheader("Export")
d = st.columns(3)
records = corpus.records
report_settings = {"data": data, "segmenter": now.segmenter}


def chosen_jsonl() -> str:
    return "".join(jsonl_lines(export_rows(picked, records, origins, strategy, now.beta)))


def report() -> str:
    return build_report(None, now.alpha, now.beta, report_settings, title="RDPT data selection",
                        selection=features, seed=seed)


download(d[0], f"Chosen responses ({len(picked)}, JSONL)", chosen_jsonl, f"chosen-{strategy}.jsonl",
         "application/jsonl", "sel_dl_jsonl", primary=True)
download(d[1], "Features of every response (CSV)", lambda: features.to_csv(index=False), "selection-features.csv",
         "text/csv", "sel_dl_csv")
download(d[2], "Report (HTML)", report, "rdpt-selection-report.html", "text/html", "sel_dl_report")
st.caption("The JSONL keeps every field of the input rows (SkyThought rows are cut to the chosen "
           "response) and adds rdpt_strategy, rdpt_beta and rdpt_<feature> columns.")

st.subheader("Does the selection train a better student? (paper section 4)")
st.caption("One LoRA of the student per strategy on one teacher answer per question (the same number "
           "for every strategy, the same recipe and seed), then greedy accuracy on unseen test questions "
           "with 95% Wilson intervals. The lab's run: `make selection-experiment` (docs/lab.md); yours: "
           "`python -m rdpt_lab selection-experiment --config my.toml`.")
uploaded = st.file_uploader("Open the results.json of your own run", type=["json"], key="sel_results_upload")
results, shown = None, "the lab's lineage"
if uploaded is not None:
    try:
        results, shown = read_results(uploaded.getvalue().decode("utf-8", "replace"), uploaded.name), uploaded.name
    except ValueError as err:
        st.error(f"{err} (the lab's results are shown instead)")
if results is None:
    path = SELECTION_RESULTS
    results = selection_results(str(path), path.stat().st_mtime if path.exists() else 0.0)
if results is None:
    st.info("The lab's selection experiment has not been run here yet (`make selection-experiment`).")
else:
    frame = results_frame(results)
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(frame, hide_index=True, column_config={"accuracy": percent, "ci_low": percent, "ci_high": percent})
    # recomputed from the rows, not read from the file: its text is not ours to render
    beta = results.get("beta")
    beta_shown = f"{beta:g}" if isinstance(beta, (int, float)) else escape_markdown(beta)
    st.markdown(f"**{escape_markdown(shown)}**, β = {beta_shown}: "
                f"{escape_markdown(conclusion(results['rows']))}")
