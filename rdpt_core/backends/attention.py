"""Causal attention that computes only what a causal, sliding-window mask lets through.

transformers' ``sdpa`` path builds a ``[tokens x tokens]`` mask for a sliding-window layer and
runs the full product under it, so Gemma 3's 512-token local layers (15 of its 18) cost as
much as global ones: on a 2,730-token answer, attention was 47% of Gemma-270M's body time
(docs/benchmarks.md). Here a sliding layer runs in query blocks, each against only the keys
its window can see, and a global layer is one fused causal call. The numbers are the same
attention (exact, up to summation order).

This holds only without a padding mask: scoring (:mod:`rdpt_core.backends.hf`) right-pads, so
a real token never sees a pad to its left, and passes no mask. Registered under
:data:`WINDOWED` with no mask function, so transformers builds no mask at all while it is on;
:func:`windowed` turns it on for one forward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

WINDOWED = "rdpt_windowed"


def windowed_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                       dropout: float = 0.0, scaling: float | None = None,
                       sliding_window: int | None = None, **kwargs: Any) -> tuple[Any, None]:
    """transformers' attention-function signature: ``query [B, H, T, D]``, ``key``/``value``
    ``[B, H_kv, T, D]``; returns ``[B, T, H, D]``. Token ``q`` attends to keys ``k`` with
    ``q - window < k <= q``."""
    import torch
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    if attention_mask is not None or kwargs.get("softcap") is not None or kwargs.get("position_bias") is not None:
        raise NotImplementedError("windowed attention takes no mask, softcap or position bias")
    if not getattr(module, "is_causal", True) or query.shape[2] != key.shape[2]:
        raise NotImplementedError("windowed attention is for causal self-attention over the whole sequence")
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    n = query.shape[2]
    if not sliding_window or n <= sliding_window:
        out = sdpa(query, key, value, is_causal=True, scale=scaling)
    else:
        out = torch.empty_like(query)
        block = max(128, sliding_window // 2)
        for q_lo in range(0, n, block):
            q_hi = min(q_lo + block, n)
            k_lo = max(0, q_lo - sliding_window + 1)
            q_pos = torch.arange(q_lo, q_hi, device=query.device)[:, None]
            k_pos = torch.arange(k_lo, q_hi, device=query.device)[None, :]
            visible = (k_pos <= q_pos) & (k_pos > q_pos - sliding_window)
            out[:, :, q_lo:q_hi] = sdpa(query[:, :, q_lo:q_hi], key[:, :, k_lo:q_hi], value[:, :, k_lo:q_hi],
                                        attn_mask=visible, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make :data:`WINDOWED` a name transformers' models can switch to (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(WINDOWED, windowed_attention)


@contextlib.contextmanager
def windowed(model: Any, on: bool = True) -> Iterator[None]:
    """Run ``model`` with windowed attention inside the block (when ``on``), and with its own
    implementation again after it, even on an error."""
    if not on:
        yield
        return
    register()
    own = model.config._attn_implementation
    model.set_attn_implementation(WINDOWED)
    try:
        yield
    finally:
        model.set_attn_implementation(own)
