"""Models: teacher / student / distilled checkpoints, quantization, device, context template."""

import pandas as pd
import streamlit as st

from rdpt_app.loaders import backend
from rdpt_app.scoring import choice_of, model_roles, spec_for
from rdpt_core.models import DEVICES, DTYPES, QUANTIZATIONS, TEMPLATE_MODES, estimate_memory, zoo
from rdpt_core.render import escape_markdown
from rdpt_core.provenance import NAMED_TEACHER
from rdpt_core.scoring import teacher_role

st.title("Models")
st.caption("Pick a packaged model or give any Hugging Face hub id or local directory. Scoring loads "
           "one model at a time and frees it before the next, so each must fit on its own.")

ss = st.session_state
FIELDS = ("enabled", "source", "name", "dtype", "quantization", "device", "template", "raw_template", "trust_remote_code")


def _save(role: str, field: str) -> None:
    choice_of(role)[field] = ss[f"m_{role}_{field}"]


def widget(role: str, field: str, fn, label: str, **kwargs):
    key = f"m_{role}_{field}"
    ss[key] = choice_of(role)[field]
    return fn(label, key=key, on_change=_save, args=(role, field), **kwargs)


def parse_teacher_names(text: str) -> list[str]:
    """Comma-separated teacher names: none (one teacher) or two or more distinct valid names."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        teacher_role(name)  # raises ValueError naming the bad name
    if len(names) == 1:
        raise ValueError("name two or more teachers (or none, for one teacher)")
    if len(set(names)) < len(names):
        raise ValueError(f"teacher names must differ, got {', '.join(names)}")
    return names


def _set_teachers() -> None:
    try:
        names = parse_teacher_names(ss.m_teacher_names)
    except ValueError as err:
        ss.teacher_names_error = str(err)
        return
    ss.pop("teacher_names_error", None)
    if names and not ss.teachers:  # the one teacher's settings carry over to the first named teacher
        ss.choices.setdefault(teacher_role(names[0]), dict(choice_of("teacher")))
    ss.teachers = names


ss.m_teacher_names = ", ".join(ss.teachers)
st.text_input("Teachers", key="m_teacher_names", on_change=_set_teachers,
              placeholder="one teacher; or name two or more, e.g. steps, narrative",
              help="To trace which of several teachers each action comes from (docs/method.md §18), name "
                   "them here, comma-separated: each gets a tab below and is scored as teacher_<name>.")
if "teacher_names_error" in ss:
    st.error(f"Teachers not changed: {escape_markdown(ss.teacher_names_error)}")


def tab_title(role: str) -> str:
    return f"Teacher {role[len(NAMED_TEACHER):]}" if role.startswith(NAMED_TEACHER) else role.capitalize()


for role, tab in zip(model_roles(), st.tabs([tab_title(r) for r in model_roles()])):
    with tab:
        if role == "distilled":
            widget(role, "enabled", st.checkbox, "Use a distilled model (off: 3 pre-training classes only)")
        source = widget(role, "source", st.radio, "Source", options=["zoo", "hub id or local dir"], horizontal=True)
        if source == "zoo":
            if choice_of(role)["name"] not in zoo():
                choice_of(role)["name"] = next(iter(zoo()))
            widget(role, "name", st.selectbox, "Packaged model", options=list(zoo()))
        else:
            widget(role, "name", st.text_input, "Hub id or local directory", placeholder="Qwen/Qwen3-8B or /path/to/checkpoint")
        c1, c2, c3 = st.columns(3)
        with c1:
            widget(role, "quantization", st.selectbox, "Quantization (bitsandbytes)", options=list(QUANTIZATIONS),
                   help="8bit: LLM.int8; nf4: 4-bit NormalFloat")
        with c2:
            widget(role, "dtype", st.selectbox, "dtype", options=list(DTYPES), help="auto: float32 on CPU, bfloat16 on CUDA")
        with c3:
            widget(role, "device", st.selectbox, "Device", options=list(DEVICES))
        c4, c5 = st.columns([1, 2])
        with c4:
            widget(role, "template", st.selectbox, "Context template", options=list(TEMPLATE_MODES),
                   help="auto: the chat template when the tokenizer has one, else the raw template")
        with c5:
            widget(role, "raw_template", st.text_input, "Raw template", help="{prompt} is replaced by the prompt")
        trust = widget(role, "trust_remote_code", st.checkbox, "trust_remote_code (runs code shipped with the model)")
        if trust:
            st.warning("trust_remote_code executes Python from the model repository on this machine. "
                       "Only tick it for repositories you trust.")


def specs() -> tuple[dict, list[str]]:
    """The usable spec of every role that is on, and what is wrong with the others."""
    out, errors = {}, []
    for role in model_roles():
        try:
            spec = spec_for(role)
        except (ValueError, OSError) as err:
            errors.append(f"{role}: {err}")
            continue
        if spec is not None:
            out[role] = spec
    return out, errors


chosen, spec_errors = specs()
for message in spec_errors:  # e.g. a local directory that does not exist (the user's own text: escaped)
    st.error(escape_markdown(message))


def available_memory() -> tuple[str, int]:
    import torch

    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        return f"free GPU memory ({torch.cuda.get_device_name()})", int(free)
    import psutil

    return "available RAM (no CUDA GPU)", int(psutil.virtual_memory().available)


st.divider()


def memory_rows(n_tokens: int) -> tuple[list[dict], list[str]]:
    """Per role, the estimate for one forward pass: a window of a longer sequence, or one batch."""
    from rdpt_core.backends.hf import DEFAULT_BATCH_TOKENS, resolve_device, resolve_dtype

    rows, errors = [], []
    for role, spec in chosen.items():
        try:
            device = resolve_device(spec.device)
            est = estimate_memory(spec, n_tokens, resolve_dtype(spec.dtype, device), DEFAULT_BATCH_TOKENS[device])
        except Exception as err:  # unreachable hub, bad config: say which role
            errors.append(f"{role}: cannot estimate ({err})")
            continue
        rows.append({"role": role, "model": spec.label, "parameters (M)": round(est.n_params / 1e6, 1),
                     "window (tokens)": est.window, "one pass (tokens)": est.pass_tokens,
                     "weights (GiB)": round(est.weight_bytes / 2**30, 2),
                     "forward pass (GiB)": round(est.activation_bytes / 2**30, 2),
                     "total (GiB)": round(est.total_bytes / 2**30, 2), "windowed": est.windowed})
    return rows, errors


def tokenizer_rows() -> tuple[list[dict], list[str]]:
    rows, errors = [], []
    for role, spec in chosen.items():
        try:
            f = backend(spec).facts()
        except Exception as err:
            errors.append(f"{role}: cannot load the tokenizer of {spec.label}: {err}")
            continue
        rows.append({"role": role, "model": spec.label, "vocabulary": f.vocab_size, "BOS": f.bos_token,
                     "adds BOS": f.adds_bos, "chat template": f.has_chat_template, "window": f.context_window,
                     "special tokens": len(f.special_tokens)})
    return rows, errors


# Results live in the session, so one panel's button does not wipe the other's table.
left, right = st.columns(2)
with left:
    st.subheader("Memory before loading")
    n_tokens = int(st.number_input("Longest sequence to score (tokens)", 256, 131072, 8192, step=256, key="m_tokens"))
    if st.button("Estimate memory"):
        where, free = available_memory()
        ss.memory_estimate = (n_tokens, where, free, *memory_rows(n_tokens))
    if "memory_estimate" in ss:
        asked, where, free, rows, errors = ss.memory_estimate
        for error in errors:
            st.error(escape_markdown(error))
        if rows:
            table = pd.DataFrame(rows).assign(fits=lambda d: d["total (GiB)"] * 2**30 <= free)
            st.dataframe(table, hide_index=True)
            st.caption(f"For a {asked:,}-token sequence, compared with {where}: {free / 2**30:.1f} GiB. "
                       "One model is in memory at a time.")
            for row in table.to_dict("records"):
                who = f"{row['role']} ({escape_markdown(row['model'])})"  # the label may be the user's own text
                if row["windowed"]:
                    st.info(f"{who}: {asked:,} tokens exceed its {row['window (tokens)']:,}-token "
                            "window, so such a response is scored in overlapping windows of that size; the "
                            "actions scored with a cut left context are flagged (truncated_*).")
                if not row["fits"]:
                    st.error(f"{who} won't fit: needs ~{row['total (GiB)']} GiB. "
                             "Try nf4 or 8-bit quantization, or a shorter window.")
with right:
    st.subheader("Tokenizers")
    if st.button("Load tokenizers"):
        ss.tokenizer_facts = tokenizer_rows()
    if "tokenizer_facts" in ss:
        rows, errors = ss.tokenizer_facts
        for error in errors:
            st.error(escape_markdown(error))
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True)
