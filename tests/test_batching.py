"""Planning windows, batches and groups (rdpt_core/batching.py): pure, no model."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdpt_core.batching import Window, padded_length, plan_batches, plan_groups, plan_windows


def window_of(p: int, w: int, left: int) -> int:
    """docs/method.md §16 written as a formula: the start of the window that scores position p
    (window 1 scores 1 … W-1; window i ≥ 2 scores W + (i-2)(W-L) … W + (i-1)(W-L) - 1)."""
    if p < w:
        return 0
    i = 2 + (p - w) // (w - left)
    return w + (i - 2) * (w - left) - left


def test_the_method_docs_example():
    # W = 8, L = 3: [0, 8) scores 1..7, [5, 13) scores 8..12, [10, 18) scores 13..17, [15, 20) 18..19
    assert plan_windows(20, 8, 3) == [Window(0, 8, 1), Window(5, 13, 8), Window(10, 18, 13), Window(15, 20, 18)]
    # a response starting at token 14: the windows that score only the context are not run
    assert plan_windows(20, 8, 3, first_needed=14) == [Window(10, 18, 14), Window(15, 20, 18)]
    assert plan_windows(5, 8, 3, first_needed=2) == [Window(0, 5, 2)]


@given(n=st.integers(0, 200), w=st.integers(2, 40), data=st.data())
def test_every_needed_position_is_scored_once_in_its_methods_window(n, w, data):
    left = data.draw(st.integers(1, w - 1))
    first = data.draw(st.integers(0, n + 2))
    plan = plan_windows(n, w, left, first)
    scored = [(p, win) for win in plan for p in range(win.score_from, win.stop)]
    assert [p for p, _ in scored] == list(range(max(1, first), n))  # each once, in order, none before first
    for p, win in scored:
        assert win.start == window_of(p, w, left) and win.length <= w
        assert win.truncated == (p >= w)
        assert p - win.start >= min(p, left)  # at least L tokens of left context


def test_bad_window_settings_are_refused():
    with pytest.raises(ValueError, match=r"left context must be in \[1, 8\)"):
        plan_windows(20, 8, 8)
    with pytest.raises(ValueError, match="bad window"):
        Window(3, 5, 3)


@given(lengths=st.lists(st.integers(1, 300), max_size=60), budget=st.integers(1, 2000),
       multiple=st.sampled_from([1, 8, 64]))
def test_batches_partition_sort_and_respect_the_budget(lengths, budget, multiple):
    batches = plan_batches(lengths, budget, multiple)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    width = [-(-n // multiple) * multiple for n in lengths]
    assert [width[i] for i in flat] == sorted(width, reverse=True)  # widest first
    for b in batches:
        assert len({width[i] for i in b}) == 1  # one padded width per batch
        assert width[b[0]] * len(b) <= budget or len(b) == 1
    # greedy: a batch ends only when the next sequence is wider... or would not fit
    for before, after in zip(batches, batches[1:]):
        assert width[after[0]] != width[before[0]] or width[before[0]] * (len(before) + 1) > budget
    assert plan_batches(lengths, budget, multiple) == batches  # deterministic


def test_padded_widths_let_near_lengths_share_a_batch():
    assert padded_length(65, 64) == 128 and padded_length(64, 64) == 64 and padded_length(1, 64) == 64
    assert plan_batches([70, 100, 20, 128], 1000, 64) == [[0, 1, 3], [2]]
    assert plan_batches([70, 100, 20, 128], 1000) == [[3], [1], [0], [2]]


@given(sizes=st.lists(st.integers(1, 500), max_size=60), budget=st.integers(1, 3000))
def test_groups_partition_longest_first_within_the_budget(sizes, budget):
    groups = plan_groups(sizes, budget)
    flat = [i for g in groups for i in g]
    assert sorted(flat) == list(range(len(sizes)))
    assert [sizes[i] for i in flat] == sorted(sizes, reverse=True)
    for g in groups:
        assert sum(sizes[i] for i in g) <= budget or len(g) == 1
    for before, after in zip(groups, groups[1:]):
        assert sum(sizes[i] for i in before) + sizes[after[0]] > budget
