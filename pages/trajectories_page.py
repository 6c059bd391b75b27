"""Trajectories: paste, upload (column mapping, error report), bundled examples, saved datasets,
or generate responses; then score them. Every change to the user's data is saved at once."""

import hashlib
import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from rdpt_app.loaders import BUILTINS, backend, workspace
from rdpt_app.scoring import score_into_corpus, spec_for, start_background_scoring
from rdpt_app.state import add_records, is_builtin, merge_into_corpus, new_dataset, open_dataset, record_ids_scored
from rdpt_app.widgets import issue_report
from rdpt_core.answers import check_answer
from rdpt_core.atomic import atomic_path
from rdpt_core.backends.base import SamplingSettings
from rdpt_core.models import PROJECT_ROOT
from rdpt_core.render import escape_markdown as md
from rdpt_core.records import (
    EXTENSIONS, REQUIRED_FIELDS, ColumnMapping, Record, RecordsError, guess_mapping, load_records,
    mapping_problems, peek_columns,
)

st.title("Trajectories")
ss = st.session_state
CORRECT = {"unknown": None, "correct": True, "incorrect": False}
NONE = "(none)"
STRUCTURED = ({"question", "code"}, {"messages"}, {"conversations"})  # SkyThought and chat rows


def describe(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def mapping_section(columns: list[str], digest: str) -> tuple[ColumnMapping | None, list[str]]:
    """Which column feeds which record field, pre-selected from the shared aliases. Keys carry
    the file's digest, so a new file starts from its own guesses."""
    st.markdown("**Column mapping** (flat rows)")
    guess = guess_mapping(columns)
    cells = st.columns(3)
    chosen: dict[str, str | None] = {}
    for i, field in enumerate(guess):
        required = field in REQUIRED_FIELDS
        options = columns if required else [NONE, *columns]
        default = guess[field] if guess[field] in options else (None if required else NONE)
        value = cells[i % 3].selectbox(field + (" *" if required else ""), options,
                                       index=options.index(default) if default is not None else None,
                                       placeholder="choose a column", key=f"up_map_{field}_{digest}")
        chosen[field] = None if value in (None, NONE) else value
    problems = mapping_problems(chosen, columns)
    if problems:
        return None, problems
    return ColumnMapping(**chosen), []


def failure(name: str, path: Path, err: Exception) -> str:
    """What went wrong reading an upload, naming it by its own name (not the temporary path)."""
    one_issue = isinstance(err, RecordsError) and len(err.issues) == 1
    text = (str(err.issues[0]) if one_issue else str(err)).replace(str(path), name) or "no details"
    if not isinstance(err, ValueError):  # an OSError, MemoryError...: say which
        text = f"{type(err).__name__}: {text}"
    return text if text.startswith(name) else f"{name}: {text}"


def save_upload(data: bytes, path: Path) -> None:
    """Write the upload atomically: a rerun never reads a half-written file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def load_upload(path: Path, name: str, layout: str, mapping: ColumnMapping | None, as_new: bool) -> None:
    try:
        # rows without ids get made-up ones; added to this dataset, they must not take its ids
        in_use = () if as_new else {i for r in ss.records for i in (r.record_id, r.question_id)}
        result = load_records(path, layout=layout, mapping=mapping, lenient=True, name=name, in_use=in_use)
    except Exception as err:  # any failure of the loader (lenient: bad rows are issues): nothing changes
        st.error(f"{md(failure(name, path, err))}. The working dataset is unchanged.")
        return
    if result.issues:
        issue_report(result.issues)
    if not result.records:
        st.error(f"No record could be read from {md(name)}; the working dataset is unchanged.")
        return
    previous, where = ss.dataset_name, "Examples" if is_builtin() else "Saved datasets"
    if as_new:
        new_dataset(f"Upload: {name}", result.records, origins=result.origins)
        st.success(f"Loaded {len(result.records)} records from {md(name)} into a new dataset, saved in your "
                   f"workspace. The previous one, {previous!r}, is still under {where}.")
    else:
        added = add_records(result.records, result.origins)
        skipped = len(result.records) - added
        st.success(f"Added {added} records from {md(name)} to {md(repr(ss.dataset_name))}"
                   + (f"; {skipped} whose record_id was already there were skipped." if skipped else "."))


st.caption(f"Working dataset: **{md(ss.dataset_name)}** — {len(ss.records)} records, "
           f"{len(record_ids_scored())} scored"
           + (" (built in: your changes make a copy of your own)." if is_builtin() else " (saved in your workspace)."))
paste, upload, examples, saved, generate = st.tabs(["Paste", "Upload", "Examples", "Saved datasets", "Generate"])

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
            st.success(f"Added {rid} to {md(repr(ss.dataset_name))}. Score and explore it on the Response explorer page.")

with upload:
    file = st.file_uploader("JSONL, JSON, CSV or Parquet", type=[ext.lstrip(".") for ext in EXTENSIONS])
    if file is not None:
        data = file.getvalue()
        digest = hashlib.sha256(data).hexdigest()[:16]
        # one file per distinct upload (reruns reuse it): the readers work on paths
        tmp = Path(tempfile.gettempdir()) / "rdpt-uploads" / digest / f"upload{Path(file.name).suffix.lower()}"
        layout = st.selectbox("Layout", ["auto", "flat", "chat", "skythought"], key=f"up_layout_{digest}",
                              help="auto: SkyThought rows (question + code list), chat rows (messages / "
                                   "conversations), otherwise flat columns")
        try:
            save_upload(data, tmp)
            columns = peek_columns(tmp, name=file.name)
        except Exception as err:  # unreadable file, full disk...: say so, load nothing
            columns = None
            st.error(f"{md(failure(file.name, tmp, err))}. Nothing was loaded.")
        if columns is not None:
            mapping, problems = None, []
            structured = any(keys <= set(columns) for keys in STRUCTURED)
            if layout == "flat" or (layout == "auto" and not structured):
                mapping, problems = mapping_section(columns, digest)
                for problem in problems:
                    st.error(f"{md(file.name)}: {md(problem)}.")
            as_new = st.radio("Load as", ["a new dataset", "records added to the working dataset"],
                              horizontal=True, key=f"up_mode_{digest}") == "a new dataset"
            if st.button("Load this file", key="up_load", type="primary", disabled=bool(problems)):
                load_upload(tmp, file.name, layout, mapping, as_new)

with examples:
    chosen_id = st.selectbox("Bundled dataset", list(BUILTINS), key="ex_name",
                             format_func=lambda k: BUILTINS[k].title)
    entry = BUILTINS[chosen_id]
    st.caption(f"{describe(entry.path)} · {'scored: explore it at once' if entry.scored else 'not scored'}")
    if st.button("Use this dataset", key="ex_use"):
        open_dataset(chosen_id)
        st.success(f"Now working on: {md(ss.dataset_name)} ({len(ss.records)} records)")

with saved:
    entries = workspace().saved()
    if not entries:
        st.info("Nothing saved yet: pasted, uploaded, generated or scored data is saved here as you work.")
    else:
        st.dataframe(pd.DataFrame([{"dataset": e.name, "records": e.n_records, "scored": e.n_scored,
                                    "changed": datetime.fromtimestamp(e.updated).strftime("%Y-%m-%d %H:%M"),
                                    "id": e.dataset_id} for e in entries]), hide_index=True)
        names = {e.dataset_id: f"{e.name} ({e.n_records} records) · {e.dataset_id}" for e in entries}
        pick = st.selectbox("Saved dataset", list(names), format_func=names.get, key="ws_pick")
        c1, c2 = st.columns(2)
        if c1.button("Open", key="ws_open"):
            open_dataset(pick)
            st.success(f"Now working on: {md(ss.dataset_name)} ({len(ss.records)} records)")
        confirm = c2.checkbox("Yes, delete it for good", key="ws_confirm")
        if c2.button("Delete", key="ws_delete", disabled=not confirm):
            workspace().delete(pick)
            if ss.dataset_id == pick:
                open_dataset("demo")
            st.success(f"Deleted {md(names[pick])}.")
            st.rerun()

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
        model = backend(spec)
        context = model.render_context(g_prompt)
        st.button("Cancel", key="gen_cancel")  # clicking it reruns the page, which stops the loop
        bar = st.progress(0.0, text="generating…")
        qid = "gen-" + hashlib.sha256(g_prompt.encode()).hexdigest()[:8]
        start = sum(r.question_id == qid for r in ss.records)
        # the generation owns the model (scoring jobs on it wait); a cancel (a rerun stops this
        # loop) or an error still frees the weights, and keeps every finished sample
        with model.lock:
            try:
                for k in range(int(n)):  # one sample per call
                    settings = SamplingSettings(n=1, temperature=float(temperature), top_p=float(top_p),
                                                max_new_tokens=int(max_new), seed=start + k, batch_size=1)
                    text = model.generate([context], settings)[0][0]
                    rid = f"{qid}:{start + k}"
                    add_records([Record(rid, qid, g_prompt, text, check_answer(text, reference), spec.label,
                                        {"temperature": float(temperature), "top_p": float(top_p),
                                         "reference": reference})])
                    bar.progress((k + 1) / n, text=f"generated {k + 1}/{n}")
            finally:
                model.unload()
        st.success(f"Added {n} responses. Score them below or explore them on the explorer page.")

st.divider()
scored_ids = record_ids_scored()
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
        st.error(f"Scoring failed: {md(p.error)}")


job_panel()
st.dataframe(pd.DataFrame([{"record_id": r.record_id, "question_id": r.question_id, "correct": r.correct,
                            "source": r.source, "prompt": r.prompt[:80], "response": r.response[:120]}
                           for r in ss.records[:500]]), hide_index=True)
