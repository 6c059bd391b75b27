"""Models: teacher / student / distilled checkpoints, quantization, device, context template."""

import pandas as pd
import streamlit as st

from rdpt_app.state import backend_for, page_setup, spec_for, spec_key
from rdpt_core.models import DEVICES, DTYPES, QUANTIZATIONS, TEMPLATE_MODES, ZOO, estimate_memory
from rdpt_core.scoring import ROLES

page_setup("Models")
st.title("Models")
st.caption("Pick a packaged model or give any Hugging Face hub id or local directory. Scoring loads "
           "one model at a time and frees it before the next, so each must fit on its own.")

ss = st.session_state
FIELDS = ("enabled", "source", "name", "dtype", "quantization", "device", "template", "raw_template", "trust_remote_code")


def _save(role: str, field: str) -> None:
    ss.choices[role][field] = ss[f"m_{role}_{field}"]


def widget(role: str, field: str, fn, label: str, **kwargs):
    key = f"m_{role}_{field}"
    ss[key] = ss.choices[role][field]
    return fn(label, key=key, on_change=_save, args=(role, field), **kwargs)


for role, tab in zip(ROLES, st.tabs([r.capitalize() for r in ROLES])):
    with tab:
        if role == "distilled":
            widget(role, "enabled", st.checkbox, "Use a distilled model (off: 3 pre-training classes only)")
        source = widget(role, "source", st.radio, "Source", options=["zoo", "hub id or local dir"], horizontal=True)
        if source == "zoo":
            if ss.choices[role]["name"] not in ZOO:
                ss.choices[role]["name"] = next(iter(ZOO))
            widget(role, "name", st.selectbox, "Packaged model", options=list(ZOO))
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


def specs() -> dict:
    out = {}
    for role in ROLES:
        try:
            spec = spec_for(role)
        except (ValueError, FileNotFoundError) as err:
            st.error(f"{role}: {err}")
            continue
        if spec is not None:
            out[role] = spec
    return out


def available_memory() -> tuple[str, int]:
    import torch

    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        return f"free GPU memory ({torch.cuda.get_device_name()})", int(free)
    import psutil

    return "available RAM (no CUDA GPU)", int(psutil.virtual_memory().available)


st.divider()
left, right = st.columns(2)
with left:
    st.subheader("Memory before loading")
    n_tokens = st.number_input("Longest sequence to score (tokens)", 256, 131072, 8192, step=256)
    if st.button("Estimate memory"):
        from rdpt_core.backends.hf import resolve_device, resolve_dtype

        where, free = available_memory()
        rows = []
        for role, spec in specs().items():
            try:
                est = estimate_memory(spec, int(n_tokens), resolve_dtype(spec.dtype, resolve_device(spec.device)))
            except Exception as err:  # unreachable hub, bad config: say which role
                st.error(f"{role}: cannot estimate ({err})")
                continue
            rows.append({"role": role, "model": spec.label, "parameters (M)": round(est.n_params / 1e6, 1),
                         "weights (GiB)": round(est.weight_bytes / 2**30, 2),
                         "forward pass (GiB)": round(est.activation_bytes / 2**30, 2),
                         "total (GiB)": round(est.total_bytes / 2**30, 2),
                         "fits": est.total_bytes <= free})
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True)
            st.caption(f"Compared with {where}: {free / 2**30:.1f} GiB.")
            for row in rows:
                if not row["fits"]:
                    st.error(f"{row['role']} ({row['model']}) won't fit: needs ~{row['total (GiB)']} GiB. "
                             "Try nf4 or 8-bit quantization, or a shorter window.")
with right:
    st.subheader("Tokenizers")
    if st.button("Load tokenizers"):
        facts = []
        for role, spec in specs().items():
            try:
                f = backend_for(spec_key(spec), spec).facts()
            except Exception as err:
                st.error(f"{role}: cannot load the tokenizer of {spec.label}: {err}")
                continue
            facts.append({"role": role, "model": spec.label, "vocabulary": f.vocab_size,
                          "BOS": f.bos_token, "adds BOS": f.adds_bos, "chat template": f.has_chat_template,
                          "window": f.context_window, "special tokens": len(f.special_tokens)})
        if facts:
            st.dataframe(pd.DataFrame(facts), hide_index=True)
