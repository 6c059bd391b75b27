"""Trajectories: paste, upload (with column mapping and an error report), bundled examples,
or generate responses from the distilled model."""

import hashlib
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from rdpt_app.state import (
    DEMO_DIR, DEMO_NAME, backend_for, merge_into_corpus, page_setup, path_label, score_into_corpus, set_dataset,
    spec_for, spec_key, start_background_scoring, use_demo,
)
from rdpt_core.answers import check_answer
from rdpt_core.backends.base import SamplingSettings
from rdpt_core.models import PROJECT_ROOT
from rdpt_core.records import ColumnMapping, Record, RecordsError, load_records, peek_columns

page_setup("Trajectories")
st.title("Trajectories")
ss = st.session_state

EXAMPLES = {
    DEMO_NAME: None,
    "Lab: teacher data (several teacher answers per question)": DEMO_DIR / "teacher_data.jsonl",
    "Lab: test trajectories (distilled and student)": DEMO_DIR / "test_trajectories.jsonl",
    "SkyThought AIME24 · distilled (Sky-T1)": PROJECT_ROOT / "data/skythought/aime24.sky-t1-correct-5k-27b.jsonl",
    "SkyThought AIME24 · student (gemma-2-27b-it)": PROJECT_ROOT / "data/skythought/aime24.gemma-2-27b-it.jsonl",
    "SkyThought MATH500 · distilled (Sky-T1)": PROJECT_ROOT / "data/skythought/math500.sky-t1-correct-5k-27b.jsonl",
    "SkyThought MATH500 · student (gemma-2-27b-it)": PROJECT_ROOT / "data/skythought/math500.gemma-2-27b-it.jsonl",
}
CORRECT = {"unknown": None, "correct": True, "incorrect": False}


def add_records(new: list[Record]) -> None:
    existing = {r.record_id for r in ss.records}
    ss.records = [*ss.records, *[r for r in new if r.record_id not in existing]]
    if ss.dataset_name == DEMO_NAME:
        ss.dataset_name = "Demo + my trajectories"


def issue_report(issues) -> None:
    st.error(f"{len(issues)} line(s) could not be read; the other rows were kept.")
    st.dataframe(pd.DataFrame([{"file": i.file, i.unit: i.line, "field": i.field, "problem": i.message}
                               for i in issues]), hide_index=True)


st.caption(f"Working dataset: **{ss.dataset_name}** — {len(ss.records)} records, "
           f"{len(ss.corpus.records) if ss.corpus else 0} scored.")
paste, upload, examples, generate = st.tabs(["Paste", "Upload", "Examples", "Generate"])

with paste:
    prompt = st.text_area("Prompt", key="paste_prompt", height=100)
    response = st.text_area("Response", key="paste_response", height=220)
    verdict = st.radio("Answer", list(CORRECT), horizontal=True, key="paste_correct")
    if st.button("Add to the dataset", key="paste_add"):
        if not response.strip():
            st.error("The response is empty.")
        else:
            n = sum(r.record_id.startswith("pasted-") for r in ss.records) + 1
            rid = f"pasted-{n}"
            add_records([Record(rid, rid, prompt, response, CORRECT[verdict], "pasted")])
            ss.record_id = rid
            st.success(f"Added {rid}. Score and explore it on the Response explorer page.")

with upload:
    file = st.file_uploader("JSONL, JSON, CSV or Parquet", type=["jsonl", "ndjson", "json", "csv", "parquet"])
    if file is not None:
        data = file.getvalue()
        # one file per distinct upload (reruns reuse it): the readers work on paths
        tmp = Path(tempfile.gettempdir()) / "rdpt-uploads" / hashlib.sha256(data).hexdigest()[:16] / f"upload{Path(file.name).suffix}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        layout = st.selectbox("Layout", ["auto", "flat", "chat", "skythought"], key="up_layout",
                              help="auto: SkyThought rows (question + code list), chat rows (messages / "
                                   "conversations), otherwise flat columns")
        mapping = None
        try:
            columns = peek_columns(tmp)
        except ValueError as err:
            columns = []
            st.error(f"{file.name}: {err}")
        if layout in ("auto", "flat") and columns:
            st.markdown("**Column mapping** (flat rows)")
            none = "(none)"
            c = st.columns(3)

            def pick(i, label, default, optional=True):
                options = ([none] if optional else []) + columns
                index = options.index(default) if default in options else 0
                return c[i % 3].selectbox(label, options, index=index, key=f"up_map_{label}")

            guess = lambda *names: next((n for n in names if n in columns), None)  # noqa: E731
            chosen = {
                "prompt": pick(0, "prompt", guess("prompt", "question", "instruction", "input", "problem"), False),
                "response": pick(1, "response", guess("response", "output", "completion", "generation"), False),
                "record_id": pick(2, "record_id", guess("record_id", "id")),
                "question_id": pick(3, "question_id", guess("question_id")),
                "correct": pick(4, "correct", guess("correct", "is_correct", "label")),
                "source": pick(5, "source", guess("source", "model")),
            }
            mapping = ColumnMapping(**{k: (None if v == none else v) for k, v in chosen.items()})
        if st.button("Load this file", key="up_load", type="primary"):
            result = load_records(tmp, layout=layout, mapping=mapping, lenient=True)
            issues = [type(i)(file.name, i.line, i.field, i.message, i.unit) for i in result.issues]
            if issues:
                issue_report(issues)
            if result.records:
                set_dataset(f"Upload: {file.name}", result.records, origins=result.origins)
                st.success(f"Loaded {len(result.records)} records from {file.name}.")

with examples:
    name = st.selectbox("Bundled dataset", list(EXAMPLES), key="ex_name")
    path = EXAMPLES[name]
    if path is not None:
        st.caption(path_label(path))
    if st.button("Use this dataset", key="ex_use"):
        if path is None:
            use_demo()
        else:
            try:
                loaded = load_records(path)
                set_dataset(name, loaded.records, origins=loaded.origins)
            except (RecordsError, FileNotFoundError) as err:
                st.error(str(err))
        st.success(f"Now working on: {ss.dataset_name} ({len(ss.records)} records)")

with generate:
    st.caption("Sample answers from the distilled model chosen on the Models page; they join the dataset.")
    g_prompt = st.text_area("Prompt", key="gen_prompt", height=100)
    reference = st.text_input("Reference answer (optional, checked with math-verify)", key="gen_ref")
    c = st.columns(4)
    n = c[0].number_input("Responses", 1, 64, 4, key="gen_n")
    temperature = c[1].slider("Temperature", 0.0, 1.5, 0.7, 0.05, key="gen_temp")
    top_p = c[2].slider("Top-p", 0.05, 1.0, 1.0, 0.05, key="gen_top_p")
    max_new = c[3].number_input("Max new tokens", 16, 32768, 256, step=16, key="gen_max")
    if st.button("Generate", key="gen_go", type="primary", disabled=not g_prompt.strip()):
        spec = spec_for("distilled") or spec_for("student")
        backend = backend_for(spec_key(spec), spec)
        context = backend.render_context(g_prompt)
        st.button("Cancel", key="gen_cancel")  # clicking it reruns the page, which stops the loop
        bar = st.progress(0.0, text="generating…")
        qid = "gen-" + hashlib.sha256(g_prompt.encode()).hexdigest()[:8]
        start = sum(r.question_id == qid for r in ss.records)
        for k in range(int(n)):  # one sample per call: a cancel keeps every finished one
            settings = SamplingSettings(n=1, temperature=float(temperature), top_p=float(top_p),
                                        max_new_tokens=int(max_new), seed=start + k, batch_size=1)
            text = backend.generate([context], settings)[0][0]
            rid = f"{qid}:{start + k}"
            add_records([Record(rid, qid, g_prompt, text, check_answer(text, reference), spec.label,
                                {"temperature": float(temperature), "top_p": float(top_p), "reference": reference})])
            bar.progress((k + 1) / n, text=f"generated {k + 1}/{n}")
        backend.unload()
        st.success(f"Added {n} responses. Score them below or explore them on the explorer page.")

st.divider()
scored_ids = {c.record_id for c in ss.corpus.records} if ss.corpus else set()
unscored = [r for r in ss.records if r.record_id not in scored_ids]
st.markdown(f"**{len(unscored)}** records of the dataset are not scored yet. Scores land in the token "
            "cache record by record: an interrupted or cancelled job resumes where it stopped.")
job = ss.get("job")
idle = job is None or not job.running
c1, c2 = st.columns(2)
if unscored and idle and c1.button(f"Score {len(unscored)} record(s) now", key="score_all"):
    score_into_corpus(unscored)
    st.success("Scored. Open the Response explorer.")
if unscored and idle and c2.button(f"Score {len(unscored)} record(s) in the background", key="score_bg"):
    ss.job, ss.job_merged = start_background_scoring(unscored), False
    st.rerun()


@st.fragment(run_every=1.0)
def job_panel() -> None:
    job = ss.get("job")
    if job is None:
        return
    p = job.progress
    left = "" if p.seconds_left != p.seconds_left else f" · ~{p.seconds_left:.0f} s left"  # NaN-safe
    st.progress(min(p.records_done / max(p.records_total, 1), 1.0),
                text=f"{p.state} · {p.role or '…'} · {p.records_done}/{p.records_total} record-model pairs · "
                     f"{p.records_per_second:.2f} records/s · {p.tokens_per_second:.0f} tokens/s{left}")
    if job.running:
        st.button("Cancel", key="job_cancel", on_click=job.cancel)
    elif p.state == "done" and not ss.get("job_merged"):
        merge_into_corpus(job.result[0])
        ss.job_merged = True
        st.rerun()
    elif p.state == "cancelled":
        st.info(f"Cancelled after {p.records_done} record-model pairs; they are in the token cache. "
                "Start the job again to resume.")
    elif p.state == "failed":
        st.error(f"Scoring failed: {p.error}")


job_panel()
st.dataframe(pd.DataFrame([{"record_id": r.record_id, "question_id": r.question_id, "correct": r.correct,
                            "source": r.source, "prompt": r.prompt[:80], "response": r.response[:120]}
                           for r in ss.records[:500]]), hide_index=True)
