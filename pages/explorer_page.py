"""Response explorer: find a response, see every action highlighted by its provenance class,
how far each is from flipping, and the tokens behind any action under each model."""

import streamlit as st

from rdpt_app.scoring import score_into_corpus, spec_for
from rdpt_app.state import current_actions, record_ids_scored, settings
from rdpt_app.widgets import seeded, chart, download
from rdpt_core.charts import response_chart
from rdpt_core.explore import (
    TOKENIZER_WARNING, action_tokens, filter_records, neighbours, record_summary, tokenizers_differ, with_margins,
)
from rdpt_core.provenance import CLASSES_3, CLASSES_4, TEACHER_PREFIX, UNSCORED, class_column
from rdpt_core.render import escape_markdown, highlighted_block, token_strip_html

st.title("Response explorer")
ss = st.session_state
records = {r.record_id: r for r in ss.records}
if not records:
    st.info("No trajectories yet: add some on the Trajectories page.")
    st.stop()
now = settings()
table = current_actions()
if table is not None:  # margins for the whole corpus: the picker sorts by "closest to flipping"
    table = with_margins(table, now.alpha, now.beta)
scored_ids = record_ids_scored()
column = class_column(table) if table is not None else "cls"
summary = record_summary(table, column) if table is not None else None
ANY = "any"
MARK = {True: "✓", False: "✗", None: "?"}


SHORT = {"Shared": "Sh", "Teacher": "T", "Student": "St", "Boosted": "B", "Common": "C"}
# each scored record's class shares as picker text, built once per run (not once per option)
SHARES = {} if summary is None else {
    row["record_id"]: " · " + " ".join(f"{SHORT[c]} {row[f'share_{c}']:.0%}"
                                       for c in (CLASSES_4 if column == "cls" else CLASSES_3)) + " ·"
    for row in summary.to_dict("records")
}


def label(rid: str) -> str:
    """Record picker label: id, verdict, class shares, the prompt's start."""
    r = records[rid]
    return (f"{rid} {MARK[r.correct]}{SHARES.get(rid, '')} {r.prompt[:60]}"
            + ("" if rid in scored_ids else " · not scored"))


def go_to(rid: str | None) -> None:
    if rid is not None:
        ss.record_id = rid


def record_picker() -> str:
    """Filters, sort, the record list and previous/next; returns the chosen record id."""
    with st.expander("Find a response", expanded=False):
        f = st.columns([1, 2, 1, 2])
        verdict = f[0].selectbox("Answer", [ANY, "correct", "incorrect", "unknown"], key="nav_correct")
        sources = sorted({str(r.source) for r in records.values()})
        picked_sources = f[1].multiselect("Sources", sources, key="nav_sources", placeholder="all sources")
        classes = [*(CLASSES_4 if column == "cls" else CLASSES_3), UNSCORED] if summary is not None else []
        has_class = f[2].selectbox("Has a … action", [ANY, *classes], key="nav_class")
        search = f[3].text_input("Search prompt and response", key="nav_search")
        s = st.columns([2, 1, 3])
        sort_options = {"input order": None, "most actions": "n_actions",
                        **{f"share of {c}": f"share_{c}" for c in classes if c != UNSCORED}}
        if summary is not None and "min_to_flip" in summary.columns:
            sort_options["closest to flipping"] = "min_to_flip"
        sort_label = s[0].selectbox("Sort by", list(sort_options), key="nav_sort")
        ascending = s[1].toggle("Ascending", key="nav_ascending", value=sort_label == "closest to flipping")
    wanted = {ANY: ANY, "correct": True, "incorrect": False, "unknown": None}[verdict]
    ids = filter_records(summary if summary is not None else record_summary_empty(), list(records.values()),
                         correct=wanted, sources=[s if s != "None" else None for s in picked_sources] or None,
                         has_class=None if has_class == ANY else has_class, search=search,
                         sort_by=sort_options[sort_label] if summary is not None else None, descending=not ascending)
    if ss.get("record_id") not in records:
        ss.record_id = ids[0] if ids else next(iter(records))
    options = ids if ss.record_id in ids else [ss.record_id, *ids]
    previous, following = neighbours(ids, ss.record_id)
    c = st.columns([6, 1, 1], vertical_alignment="bottom")
    seeded(c[0].selectbox, "record_id", f"Record ({len(ids)} of {len(records)} match)", options, format_func=label)
    c[1].button("◀ Prev", key="nav_prev", disabled=previous is None, on_click=go_to, args=(previous,),
                width="stretch")
    c[2].button("Next ▶", key="nav_next", disabled=following is None, on_click=go_to, args=(following,),
                width="stretch")
    return str(ss.record_id)


def record_summary_empty():
    """The record fields ``filter_records`` needs, for a dataset nothing of which is scored."""
    import pandas as pd

    return pd.DataFrame({"record_id": pd.Series(dtype=object), "question_id": pd.Series(dtype=object),
                         "correct": pd.Series(dtype="boolean"), "source": pd.Series(dtype=object),
                         "n_actions": pd.Series(dtype="int64"), "n_scored": pd.Series(dtype="int64")})


def contexts_section(record) -> None:
    """What each model is given before the response: its chat template or the raw template."""
    with st.expander("What each model scored (rendered context)"):
        st.caption("Rendered with the Models page's current settings. The corpus was scored by: "
                   + ", ".join(f"{role} = {escape_markdown(label)}" for role, label in ss.corpus.models.items()) + ".")
        if st.button("Render the contexts", key="ctx_render"):
            from rdpt_app.loaders import backend

            for role in ss.corpus.models:
                try:
                    spec = spec_for(role)
                    if spec is None:
                        continue
                    model = backend(spec)
                    mode = "chat template" if spec.template == "chat" or (
                        spec.template == "auto" and model.facts().has_chat_template) else "raw template"
                    st.markdown(f"**{role}** · {escape_markdown(spec.label)} · {mode}")
                    st.code(model.render_context(record.prompt) + "⟨response⟩", language=None, wrap_lines=True)
                except (ValueError, OSError) as err:
                    st.error(f"{role}: {escape_markdown(err)}")


rid = record_picker()
record = records[rid]
st.query_params["record"] = rid  # the address bar is a shareable link (with ?dataset=)
with st.expander("Prompt", expanded=False):
    st.text(record.prompt)

if rid not in scored_ids:
    st.warning("This record has not been scored yet.")
    if st.button("Score it with the chosen models", type="primary", key="score_one"):
        score_into_corpus([record])
        st.rerun()
    st.stop()

contexts_section(record)
differ = [f"{a}/{b}" for (a, b), yes in tokenizers_differ(ss.corpus, rid).items() if yes]
if differ:
    st.warning(f"Tokenizers differ ({', '.join(differ)}). {TOKENIZER_WARNING}", icon=":material/warning:")

actions = table[table.record_id == rid].sort_values("action_index")
if column == "cls3":
    st.caption("No distilled model in this corpus: showing the 3 pre-training classes (Common / Teacher / Student).")
several = "teacher_of" in actions.columns
colour_by = st.radio("Colour by", ["class", "teacher"], horizontal=True, key="exp_colour_by",
                     help="teacher: each Teacher or Boosted action in the colour of the teacher it is "
                          f"attributed to at γ = {now.gamma:.2f} (docs/method.md §18)") if several else "class"
st.html(highlighted_block(actions, column, by=colour_by))
chart(response_chart(actions, column), "response-chart")

st.subheader("Actions")
order = st.radio("Order", ["position", "closest to flipping"], horizontal=True, key="act_order")
shown = actions.sort_values("to_flip", kind="stable") if order != "position" else actions
per_teacher = [c for c in shown.columns if c.startswith(TEACHER_PREFIX)]
columns = ["action_index", "kind", column, "teacher_of", "best_teacher", "teacher_margin", *per_teacher, "p_teacher",
           "p_student", "p_distilled", "d_TS", "d_DS", "d_TD", "margin_alpha", "margin_beta", "to_flip",
           "n_tokens_teacher", "n_tokens_student", "n_tokens_distilled", "text"]
st.dataframe(shown[[c for c in columns if c in shown.columns]], hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format="%.3f") for c in
                            ("p_teacher", "p_student", "p_distilled", "d_TS", "d_DS", "d_TD", "margin_alpha",
                             "margin_beta", "to_flip", "teacher_margin", *per_teacher)})
st.caption(f"Δ columns: d_TS = p_T − p_S, d_DS = p_D − p_S, d_TD = p_T − p_D. margin_alpha = max|Δ| − α "
           f"(≤ 0: inside the Shared box), margin_beta = |d_TS| − β (> 0: beyond β); to_flip = the smallest "
           f"change of α or β that changes the class (α = {now.alpha:.2f}, β = {now.beta:.2f}).")

st.subheader("Tokens of one action")
snippets = dict(zip(actions["action_index"], actions["text"].str.strip().str.slice(0, 60)))
classes_of = dict(zip(actions["action_index"], actions[column]))
chosen = st.selectbox("Action", list(snippets), key="tok_action",
                      format_func=lambda i: f"#{i} {classes_of[i]} · {snippets[i]}")
tokens = action_tokens(ss.corpus, rid, int(chosen), now.segmenter)
st.html(token_strip_html(tokens, {role: f"{role} ({label})" for role, label in ss.corpus.models.items()}))
with st.expander("Token table"):
    st.dataframe(tokens, hide_index=True, width="stretch")

stem = f"rdpt-{rid}".replace(":", "_").replace("/", "_")
cols = st.columns(4)
download(cols[0], "Actions (CSV)", lambda: actions.to_csv(index=False), f"{stem}.csv", "text/csv", "exp_dl_csv")
download(cols[1], "Actions (Parquet)", lambda: actions.to_parquet(index=False), f"{stem}.parquet",
         "application/vnd.apache.parquet", "exp_dl_parquet")
download(cols[2], "Tokens of the action (CSV)", lambda: tokens.to_csv(index=False), f"{stem}-action{chosen}-tokens.csv",
         "text/csv", "exp_dl_tokens")
