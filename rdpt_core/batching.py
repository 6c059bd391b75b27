"""Planning the forward passes of a scoring run: which token windows to run, in which batches,
in which groups (docs/method.md §16). Pure functions of lengths: no model, no tokenizer.

* :func:`plan_windows` – the sliding-window rule for one sequence, keeping only the windows that
  score a token somebody needs (a window holding nothing but context is never run).
* :func:`plan_batches` – length-sorted batches of windows of one padded width each, under a
  budget of padded tokens.
* :func:`plan_groups` – records in length-sorted groups: the unit of progress, cancellation and
  caching, and the unit of work a distributed engine hands to a worker. Both engines score the
  same groups, so they run the same batches and produce the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """One forward pass over ``ids[start:stop]`` that yields the log-probs of the tokens at
    positions ``score_from … stop - 1`` (each from the hidden state one position before it)."""

    start: int
    stop: int
    score_from: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.score_from < self.stop:
            raise ValueError(f"bad window {self}: need 0 <= start < score_from < stop")

    @property
    def length(self) -> int:
        return self.stop - self.start

    @property
    def truncated(self) -> bool:
        """The tokens it scores see a cut left context (every window after the first)."""
        return self.start > 0


def plan_windows(n_ids: int, window: int, left: int, first_needed: int = 1) -> list[Window]:
    """The windows that score every token at positions ``>= first_needed`` of an ``n_ids``-token
    sequence, by the rule of docs/method.md §16: the first window is ``[0, W)``; each later one
    starts ``L = left`` tokens before the first token it scores. Windows that would score only
    positions before ``first_needed`` (the context) are dropped and, inside the first window
    kept, positions before it are not scored, so the windows and the numbers of the tokens that
    are scored do not depend on ``first_needed``. Position 0 has nothing before it: never scored.
    """
    if not 1 <= left < window:
        raise ValueError(f"the minimum left context must be in [1, {window}), got {left}")
    first_needed = max(1, first_needed)
    plan: list[Window] = []
    pos = 1
    while pos < n_ids:
        start = 0 if pos < window else pos - left
        stop = min(start + window, n_ids)
        if stop > first_needed:
            plan.append(Window(start, stop, max(pos, first_needed)))
        pos = stop
    return plan


def padded_length(length: int, multiple: int) -> int:
    """``length`` rounded up to a multiple of ``multiple``: the width a sequence runs at."""
    return -(-length // multiple) * multiple


def plan_batches(lengths: Sequence[int], batch_tokens: int, multiple: int = 1) -> list[list[int]]:
    """Indices of ``lengths`` in batches, longest first. A sequence runs padded to
    :func:`padded_length` (``multiple``); a batch holds sequences of one padded width only and
    at most ``batch_tokens`` tokens (width × count); a sequence wider than the budget runs
    alone. Deterministic: ties keep the input order.

    Why one width per batch: a row's numbers then come from tensors of the same shape whether
    it runs alone or with others, so batching cannot change them (measured: docs/method.md
    §16); ``multiple`` > 1 lets rows of different lengths share a width."""
    if batch_tokens < 1 or multiple < 1:
        raise ValueError(f"batch_tokens and multiple must be at least 1, got {batch_tokens} and {multiple}")
    widths = [padded_length(n, multiple) for n in lengths]
    order = sorted(range(len(lengths)), key=lambda i: (-widths[i], i))
    batches: list[list[int]] = []
    for i in order:
        last = batches[-1] if batches else None
        if last is not None and widths[last[0]] == widths[i] and widths[i] * (len(last) + 1) <= batch_tokens:
            last.append(i)
        else:
            batches.append([i])
    return batches


def plan_groups(sizes: Sequence[int], group_size: int) -> list[list[int]]:
    """Indices of ``sizes`` (e.g. characters of context + response) in groups of consecutive
    items once sorted longest first, each group's sizes summing to at most ``group_size`` (an
    item larger than that is a group alone). Sorting first makes each group's batches pad
    little; every record lands in exactly one group."""
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    groups: list[list[int]] = []
    total = 0
    for i in order:
        if groups and total + sizes[i] <= group_size:
            groups[-1].append(i)
            total += sizes[i]
        else:
            groups.append([i])
            total = sizes[i]
    return groups
