"""Split a response into actions whose character spans tile it exactly (docs/method.md §2).

Special markers (``<think>``, the tokenizers' special tokens, …) are actions of their own.
The text between them is cut by one of three segmenters:

* ``paper``     – the paper's rule ``([.?!}\\]])([\\s\\n]+)([A-Z])``: a sentence ends after
  group 1 and the whitespace of group 2 starts the *next* action, so BPE tokens such as
  ``" The"`` (which carry their leading space) stay inside one action;
* ``spacy``     – ``spacy.blank("en")`` + ``sentencizer`` (no model download);
* ``paragraph`` – blank-line paragraphs.

Every segmenter hands whitespace to the following action in the same way. A piece that is
only whitespace joins the following action (whatever its kind); at the very end of the
response it joins the preceding one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

PAPER_SENTENCE_RE = re.compile(r"([.?!}\]])([\s\n]+)([A-Z])")
_BLANK_LINE_RE = re.compile(r"\n[^\S\n]*\n")

REASONING_MARKERS: tuple[str, ...] = (
    "<think>",
    "</think>",
    "<|begin_of_thought|>",
    "<|end_of_thought|>",
    "<|begin_of_solution|>",
    "<|end_of_solution|>",
)

SEGMENTERS = ("paper", "spacy", "paragraph")
Segmenter = Literal["paper", "spacy", "paragraph"]
ActionKind = Literal["sentence", "special"]


@dataclass(frozen=True)
class Action:
    """One action of a response: ``response[start:end] == text``."""

    index: int
    start: int
    end: int
    text: str
    kind: ActionKind


def marker_set(extra: Iterable[str] = (), *, include_reasoning: bool = True) -> tuple[str, ...]:
    """Union of reasoning markers and ``extra`` (e.g. tokenizers' special tokens), longest first.

    Longest first so that a marker containing another (``<|im_start|>`` vs ``<|im``) wins.
    """
    pool = set(REASONING_MARKERS if include_reasoning else ()) | {m for m in extra if m}
    return tuple(sorted(pool, key=lambda m: (-len(m), m)))


@functools.lru_cache(maxsize=32)
def _marker_regex(markers: tuple[str, ...]) -> re.Pattern[str] | None:
    if not markers:
        return None
    return re.compile("|".join(re.escape(m) for m in markers))


def _paper_cuts(text: str) -> list[int]:
    return [m.end(1) for m in PAPER_SENTENCE_RE.finditer(text)]


def _before_whitespace(text: str, starts: Iterable[int]) -> list[int]:
    """For each start (ascending), the start of the whitespace run just before it, so that the
    whitespace begins the next action. Linear: a walk back never crosses the previous start;
    when it reaches it, the two share one run and so one cut (a long run of blank lines holds
    many paragraph starts, and walking each back over the whole run was quadratic)."""
    cuts: list[int] = []
    floor, floor_cut = 0, 0
    for start in starts:
        cut = start
        while cut > floor and text[cut - 1].isspace():
            cut -= 1
        if cut == floor and cuts:
            cut = floor_cut
        cuts.append(cut)
        floor, floor_cut = start, cut
    return cuts


def _paragraph_cuts(text: str) -> list[int]:
    # Cut before the whitespace run that holds the blank line, so it starts the next paragraph.
    return _before_whitespace(text, (m.start() for m in _BLANK_LINE_RE.finditer(text)))


@functools.lru_cache(maxsize=1)
def _spacy_nlp():  # pragma: no cover - trivial
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.max_length = 10_000_000
    return nlp


_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _spacy_cuts(text: str) -> list[int]:
    # spaCy cannot encode a lone surrogate; U+FFFD stands in, one character for one, so the
    # offsets still fit ``text``. Whitespace before a sentence goes to it, as elsewhere.
    doc = _spacy_nlp()(_LONE_SURROGATE_RE.sub("\ufffd", text))
    return _before_whitespace(text, (sent.start_char for sent in list(doc.sents)[1:]))


_CUTTERS = {"paper": _paper_cuts, "spacy": _spacy_cuts, "paragraph": _paragraph_cuts}


def _text_pieces(text: str, segmenter: str) -> list[tuple[int, int]]:
    cuts = sorted({c for c in _CUTTERS[segmenter](text) if 0 < c < len(text)})
    bounds = [0, *cuts, len(text)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _raw_pieces(
    response: str, markers: tuple[str, ...], segmenter: str
) -> list[tuple[int, int, ActionKind]]:
    """Pieces before whitespace merging: specials and segmenter-cut text, in order."""
    pieces: list[tuple[int, int, ActionKind]] = []
    pattern = _marker_regex(markers)
    pos = 0

    def add_text(lo: int, hi: int) -> None:
        for a, b in _text_pieces(response[lo:hi], segmenter):
            pieces.append((lo + a, lo + b, "sentence"))

    for m in pattern.finditer(response) if pattern else ():
        add_text(pos, m.start())
        pieces.append((m.start(), m.end(), "special"))
        pos = m.end()
    add_text(pos, len(response))
    return pieces


def _merge_whitespace(
    response: str, pieces: list[tuple[int, int, ActionKind]]
) -> list[tuple[int, int, ActionKind]]:
    merged: list[tuple[int, int, ActionKind]] = []
    pending_start: int | None = None  # start of whitespace waiting for the next piece
    for start, end, kind in pieces:
        if kind != "special" and response[start:end].isspace():
            pending_start = start if pending_start is None else pending_start
            continue
        merged.append((start if pending_start is None else pending_start, end, kind))
        pending_start = None
    if pending_start is not None:  # trailing whitespace joins the preceding action
        if merged:
            start, _, kind = merged[-1]
            merged[-1] = (start, len(response), kind)
        else:
            merged.append((pending_start, len(response), "sentence"))
    return merged


def segment(
    response: str,
    markers: Sequence[str] | None = None,
    segmenter: Segmenter | str = "paper",
) -> list[Action]:
    """Actions of ``response``; their spans tile it (no gaps, no overlaps).

    ``markers``: special strings cut out as their own actions; ``None`` means the reasoning
    markers only (pass :func:`marker_set` of the loaded tokenizers for the full set).
    """
    if segmenter not in _CUTTERS:
        raise ValueError(f"unknown segmenter {segmenter!r}; choose one of {', '.join(SEGMENTERS)}")
    ordered = marker_set() if markers is None else marker_set(markers, include_reasoning=False)
    pieces = _merge_whitespace(response, _raw_pieces(response, ordered, segmenter))
    return [Action(i, s, e, response[s:e], k) for i, (s, e, k) in enumerate(pieces)]
