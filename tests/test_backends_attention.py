"""Windowed attention against attention written out in full in the test (no model)."""

import types

import pytest
import torch

from rdpt_core.backends.attention import windowed_attention


def full_attention(query, key, value, scaling, window):
    """softmax(q·kᵀ·scale + mask)·v with the mask built element by element: token q sees
    keys k with k <= q and, with a window, q - k < window."""
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    n = query.shape[2]
    visible = torch.tensor([[k <= q and (window is None or q - k < window) for k in range(n)] for q in range(n)])
    scores = (query.double() @ key.double().transpose(-1, -2)) * scaling
    weights = torch.softmax(scores.masked_fill(~visible, -torch.inf), -1)
    return (weights @ value.double()).transpose(1, 2)


@pytest.mark.parametrize(("n", "window", "heads", "kv_heads"), [
    (300, 64, 4, 1),    # many query blocks, grouped keys/values
    (300, 128, 2, 2),   # the first block's window reaches the sequence start
    (97, 128, 4, 2),    # shorter than the window: one causal call
    (200, None, 3, 3),  # a global layer
    (257, 1, 2, 1),     # a window of one: each token sees itself only
])
def test_windowed_attention_equals_masked_attention(n, window, heads, kv_heads):
    generator = torch.Generator().manual_seed(n)
    query = torch.randn(2, heads, n, 16, generator=generator)
    key, value = (torch.randn(2, kv_heads, n, 16, generator=generator) for _ in range(2))
    out, weights = windowed_attention(types.SimpleNamespace(is_causal=True), query, key, value, None,
                                      scaling=0.25, sliding_window=window)
    assert weights is None and out.shape == (2, n, heads, 16)
    assert (out.double() - full_attention(query, key, value, 0.25, window)).abs().max() < 1e-5


@pytest.mark.parametrize("why", ["mask", "softcap", "bidirectional", "cached keys"])
def test_windowed_attention_refuses_what_it_does_not_compute(why):
    query = key = value = torch.zeros(1, 1, 4, 8)
    module = types.SimpleNamespace(is_causal=why != "bidirectional")
    kwargs = {"softcap": 50.0} if why == "softcap" else {}
    mask = torch.ones(1, 1, 4, 4, dtype=torch.bool) if why == "mask" else None
    if why == "cached keys":
        key = value = torch.zeros(1, 1, 9, 8)
    with pytest.raises(NotImplementedError):
        windowed_attention(module, query, key, value, mask, **kwargs)
