"""HTML for a response with every action highlighted by its provenance class.

Everything that comes from data (response text, class names, numbers) is escaped with
``html.escape`` before it becomes HTML: model outputs and uploads are untrusted. Each action is
one ``<span>`` carrying ``data-cls`` (for tests and the browser) and a tooltip with
p_T, p_S, p_D and the three Δs. Tooltips are CSS, shown at once on hover: the text sits in a
``data-tip`` attribute and ``::after { content: attr(data-tip) }`` draws it (no native
``title`` delay). :func:`token_strip_html` draws the tokens of one action as a heat strip.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .provenance import (
    BOOSTED, CLASS_COLORS, CLASSES_3, CLASSES_4, SEVERAL, TEACHER_PREFIX, UNSCORED, teacher_colors, teacher_names,
)
from .scoring import role_order

_CSS = """
<style>
.rdpt-response { white-space: pre-wrap; font-family: ui-monospace, SFMono-Regular, Menlo, monospace;
  font-size: 0.86rem; line-height: 1.7; border: 1px solid #ddd; border-radius: 6px; padding: 0.8rem; }
.rdpt-act { border-radius: 3px; padding: 1px 0; position: relative; }
.rdpt-act:hover { outline: 2px solid #333; }
.rdpt-act:hover::after, .rdpt-tok:hover::after { content: attr(data-tip); position: absolute; left: 0;
  top: calc(100% + 4px); z-index: 1000; white-space: pre; background: #222; color: #fff;
  font: 0.75rem/1.35 ui-monospace, SFMono-Regular, Menlo, monospace; font-weight: 400;
  padding: 0.35rem 0.5rem; border-radius: 4px; box-shadow: 0 2px 6px rgba(0, 0, 0, 0.35);
  pointer-events: none; }
.rdpt-special { font-weight: 600; }
.rdpt-legend { display: flex; flex-wrap: wrap; gap: 0.8rem; margin: 0.3rem 0 0.6rem 0; font-size: 0.9rem; }
.rdpt-swatch { display: inline-block; width: 0.9rem; height: 0.9rem; border-radius: 3px;
  vertical-align: middle; margin-right: 0.3rem; border: 1px solid #888; }
.rdpt-tokens { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.86rem;
  line-height: 2; border: 1px solid #ddd; border-radius: 6px; padding: 0.5rem 0.8rem; }
.rdpt-tokline { margin: 0.2rem 0; }
.rdpt-toklabel { display: inline-block; min-width: 7rem; margin-right: 0.4rem; font-weight: 600; color: #444; }
.rdpt-tok { position: relative; display: inline-block; white-space: pre; padding: 0 2px; margin: 1px;
  border-radius: 3px; }
.rdpt-tok:hover { outline: 2px solid #333; }
.rdpt-tok[data-scored="false"] { outline: 1px dashed #888; }
.rdpt-scale { display: flex; align-items: center; gap: 0.4rem; font-size: 0.8rem; color: #444;
  margin-top: 0.4rem; }
.rdpt-scale-bar { display: inline-block; width: 10rem; height: 0.8rem; border-radius: 3px; }
</style>
"""
# only in the teacher view: a single-teacher page stays byte for byte what it was before §18
_TEACHER_CSS = '<style>.rdpt-by-teacher .rdpt-act[data-cls="Boosted"] { text-decoration: underline dotted 2px; }</style>'


# What makes Markdown (CommonMark, GFM, Streamlit's extensions) out of plain text, escaped with a
# backslash (CommonMark shows a backslash-escaped punctuation character as itself): characters
# that start syntax anywhere; a colon glued to what follows (``javascript:``, ``https://``,
# ``:red[…]``); the dot of ``www.`` (autolinked); and, at the start, a list, heading or quote
# marker. Other punctuation (``/ . , : ( ) ! - '``) is inert once these are escaped, so names and
# paths stay readable in the Markdown source too.
_MARKDOWN_ANYWHERE = re.compile(r"[\\`*_~\[\]<>&$|#@{}]|:(?=\S)|(?<=[wW][wW][wW])\.")
_MARKDOWN_AT_START = re.compile(r"^(?:[-+=]|\d{1,9}[.)])")
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029\x0b\x0c\x85]")


def escape_markdown(text: object) -> str:
    """``text`` (from data: a name, an id, a label, an error) made literal inside Markdown, as
    Streamlit's ``st.markdown``/``st.caption``/alerts/widget labels render it: no link, image,
    emphasis, code, math, HTML or directive can come out of it. Line breaks become spaces (it
    is meant for inline use), and the text is stripped (a trailing space would end ``**bold**``
    early); show multi-line text with ``st.text`` or ``st.code`` instead."""
    escaped = _MARKDOWN_ANYWHERE.sub(r"\\\g<0>", _LINE_BREAKS.sub(" ", str(text)).strip())
    return _MARKDOWN_AT_START.sub(lambda marker: f"{marker[0][:-1]}\\{marker[0][-1]}", escaped)


def tint(hex_color: str, alpha: float = 0.35) -> str:
    """Light background from a class colour, so black text stays readable."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def tooltip(row: Mapping, column: str = "cls") -> str:
    """Plain-text tooltip of one action (escaped later, with the rest of the attribute):
    ``#index class``, p_T p_S p_D, the Δs (Δ_TS = p_T − p_S, Δ_TD = p_T − p_D,
    Δ_SD = p_S − p_D, as in ``provenance``) and ``to_flip`` when the row has it."""
    nan = float("nan")
    p = {role: row.get(f"p_{role}", nan) for role in ("teacher", "student", "distilled")}
    cls = row.get(column) or row.get("cls") or ""
    lines = [f"#{row['action_index']} {cls}".strip(),
             f"p_T {_fmt(p['teacher'])}  p_S {_fmt(p['student'])}  p_D {_fmt(p['distilled'])}"]
    deltas = f"Δ_TS {_fmt(p['teacher'] - p['student'])}"
    if "p_distilled" in row:
        deltas += f"  Δ_TD {_fmt(p['teacher'] - p['distilled'])}  Δ_SD {_fmt(p['student'] - p['distilled'])}"
    lines.append(deltas)
    if "to_flip" in row:
        lines.append(f"to flip {_fmt(row['to_flip'])}")
    if "teacher_margin" in row:  # several teachers (docs/method.md §18)
        lines += _teacher_lines(row)
    return "\n".join(lines)


def _present(value: object) -> bool:
    return value is not None and value is not pd.NA and not (isinstance(value, float) and math.isnan(value))


def _teacher_lines(row: Mapping) -> list[str]:
    """Each teacher's p, the best teacher with its margin over the runner-up, and whom the
    action is attributed to (Teacher and Boosted actions only)."""
    each = "  ".join(f"p_{str(k)[len(TEACHER_PREFIX):]} {_fmt(row[k])}" for k in row
                     if str(k).startswith(TEACHER_PREFIX))
    best = row.get("best_teacher")
    lines = [each, f"best teacher {best if _present(best) else 'n/a'}  margin {_fmt(row['teacher_margin'])}"]
    if _present(row.get("teacher_of")):
        lines.append(f"attributed to {row['teacher_of']}")
    return lines


def _attr(text: str) -> str:
    """Escaped attribute value; newlines as ``&#10;`` so the HTML stays on one line (Markdown
    renderers end an HTML block at a blank line) while ``attr()`` still shows them."""
    return html.escape(text).replace("\r", "&#13;").replace("\n", "&#10;")


def class_counts(actions: pd.DataFrame, column: str = "cls") -> dict[str, int]:
    """Actions per class, in the legend's order (classes that occur, plus Unscored if any)."""
    order = CLASSES_4 if column == "cls" else CLASSES_3
    counts = actions[column].value_counts()
    out = {c: int(counts.get(c, 0)) for c in order}
    if counts.get(UNSCORED, 0):
        out[UNSCORED] = int(counts[UNSCORED])
    return out


def legend_html(counts: Mapping[str, int]) -> str:
    items = "".join(
        f'<span class="rdpt-legend-item" data-cls="{html.escape(c)}" data-count="{n}">'
        f'<span class="rdpt-swatch" style="background:{CLASS_COLORS[c]}"></span>'
        f"{html.escape(c)} <b>{n}</b></span>"
        for c, n in counts.items()
    )
    return f'<div class="rdpt-legend">{items}</div>'


def teacher_counts(actions: pd.DataFrame) -> dict[str, int]:
    """Teacher and Boosted actions per teacher they are attributed to, then "Several teachers"
    (every teacher of the table, in column order, even at 0)."""
    counts = actions["teacher_of"].value_counts()
    return {label: int(counts.get(label, 0)) for label in (*teacher_names(actions), SEVERAL)}


def teacher_legend_html(counts: Mapping[str, int], colors: Mapping[str, str]) -> str:
    items = "".join(
        f'<span class="rdpt-legend-item" data-teacher="{html.escape(t)}" data-count="{n}">'
        f'<span class="rdpt-swatch" style="background:{colors[t]}"></span>{html.escape(t)} <b>{n}</b></span>'
        for t, n in counts.items()
    )
    note = f'<span class="rdpt-legend-item">dotted underline: {BOOSTED}; uncoloured: the other classes</span>'
    return f'<div class="rdpt-legend">{items}{note}</div>'


def response_html(actions: pd.DataFrame, column: str = "cls", with_css: bool = True, by: str = "class") -> str:
    """One response (its rows of the classified action table, in order) as highlighted HTML.
    ``by="teacher"`` (a several-teacher table): Teacher and Boosted actions take the colour of
    the teacher they are attributed to (``data-teacher``), the others stay uncoloured."""
    if by not in ("class", "teacher"):
        raise ValueError(f"by must be 'class' or 'teacher', got {by!r}")
    if by == "teacher" and "teacher_of" not in actions.columns:
        raise ValueError("the teacher view needs teacher_of: classify a table scored with several named teachers")
    colors = teacher_colors(teacher_names(actions)) if by == "teacher" else {}
    spans = []
    for row in actions.sort_values("action_index").to_dict("records"):
        cls = row.get(column) or UNSCORED
        teacher = row.get("teacher_of") if by == "teacher" else None
        if by == "class":
            color, extra = tint(CLASS_COLORS.get(cls, CLASS_COLORS[UNSCORED])), ""
        elif _present(teacher):
            color, extra = tint(colors[str(teacher)]), f' data-teacher="{html.escape(str(teacher))}"'
        else:
            color, extra = "transparent", ""
        kind = "rdpt-special" if row.get("kind") == "special" else ""
        spans.append(
            f'<span class="rdpt-act {kind}" data-cls="{html.escape(str(cls))}"{extra} '
            f'data-index="{int(row["action_index"])}" style="background:{color}" '
            f'data-tip="{_attr(tooltip(row, column))}">{html.escape(row["text"])}</span>'
        )
    view = " rdpt-by-teacher" if by == "teacher" else ""
    body = f'<div class="rdpt-response{view}">{"".join(spans)}</div>'
    return (_css(by) + body) if with_css else body


def _css(by: str) -> str:
    return _CSS + _TEACHER_CSS if by == "teacher" else _CSS


def highlighted_block(actions: pd.DataFrame, column: str = "cls", by: str = "class") -> str:
    """Legend with counts, then the highlighted response (``by``: see :func:`response_html`)."""
    body = response_html(actions, column, with_css=False, by=by)  # checks ``by`` first
    if by == "teacher":
        legend = teacher_legend_html(teacher_counts(actions), teacher_colors(teacher_names(actions)))
    else:
        legend = legend_html(class_counts(actions, column))
    return _css(by) + legend + body


# ---- token heat strip -------------------------------------------------------------------------
# Viridis (matplotlib's, perceptually uniform and ordered, readable in grey and with the common
# colour-vision deficiencies) sampled at p = 0, 0.1, …, 1 and interpolated linearly.
VIRIDIS = ("#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884", "#44bf70",
           "#7ad151", "#bddf26", "#fde725")
_VIRIDIS_RGB = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in VIRIDIS], dtype=np.float64)
_VIRIDIS_AT = np.linspace(0.0, 1.0, len(VIRIDIS))
UNSCORED_TOKEN_COLOR = "#e0e0e0"
_VISIBLE = str.maketrans({" ": "·", "\n": "⏎", "\t": "→", "\r": "␍"})


def heat_colors(p: np.ndarray) -> tuple[list[str], list[str]]:
    """Background (viridis of ``p`` in [0, 1], clipped) and text colour (white on dark cells,
    black on light ones, by WCAG relative luminance) for an array of probabilities; NaN gets a
    light grey with black text."""
    p = np.asarray(p, dtype=np.float64)
    q = np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0)
    rgb = np.stack([np.interp(q, _VIRIDIS_AT, _VIRIDIS_RGB[:, k]) for k in range(3)], axis=-1).round()
    lin = rgb / 255.0
    lin = np.where(lin <= 0.04045, lin / 12.92, ((lin + 0.055) / 1.055) ** 2.4)
    dark = lin @ np.array([0.2126, 0.7152, 0.0722]) < 0.18  # contrast vs white beats vs black
    scored = ~np.isnan(p)
    backgrounds = [f"#{int(r):02x}{int(g):02x}{int(b):02x}" if ok else UNSCORED_TOKEN_COLOR
                   for (r, g, b), ok in zip(rgb, scored)]
    texts = ["#fff" if d and ok else "#000" for d, ok in zip(dark, scored)]
    return backgrounds, texts


def visible_whitespace(text: str) -> str:
    """``text`` with spaces, newlines, tabs and carriage returns shown as ``·``, ``⏎``, ``→``, ``␍``."""
    return text.translate(_VISIBLE)


def token_tooltip(text: str, logprob: float) -> str:
    """Plain-text tooltip of one token: its text (repr, so whitespace shows), logprob (nats,
    3 decimals) and p = exp(logprob)."""
    if math.isnan(logprob):
        return f"{text!r}\nnot scored (first token of the sequence)"
    return f"{text!r}\nlogprob {logprob:.3f}  p {math.exp(logprob):.3f}"


def scale_legend_html() -> str:
    stops = ", ".join(f"{c} {100 * t:.0f}%" for c, t in zip(VIRIDIS, _VIRIDIS_AT))
    return ('<div class="rdpt-scale"><span>p = 0</span>'
            f'<span class="rdpt-scale-bar" style="background:linear-gradient(to right, {stops})"></span>'
            '<span>1</span><span>· space ⏎ newline → tab</span></div>')


def token_strip_html(tokens: pd.DataFrame, role_labels: Mapping[str, str] | None = None,
                     with_css: bool = True) -> str:
    """The rows of ``explore.action_tokens`` as heat strips: one line per role (in
    job order (``scoring.role_order``), labelled by ``role_labels`` or the role), one span per token.

    Each token span has class ``rdpt-tok``, ``data-role``, ``data-index`` (token_index),
    ``data-logprob`` (``repr`` of the float, round-trips exactly; ``nan`` when unscored),
    ``data-scored``, ``data-text`` (the real text) and a ``data-tip`` tooltip; its background is
    the viridis colour of p = exp(logprob). Whitespace is drawn visible (``·``, ``⏎``, ``→``).
    Ends with a legend of the colour scale. Everything from data is escaped.
    """
    labels = dict(role_labels or {})
    present: list[str] = list(dict.fromkeys(tokens["role"])) if len(tokens) else []
    order = role_order(present)
    lines = []
    for role in order:
        part = tokens[tokens["role"] == role].sort_values("token_index")
        logp = part["logprob"].to_numpy(np.float64)
        backgrounds, colors = heat_colors(np.exp(logp))
        spans = "".join(
            f'<span class="rdpt-tok" data-role="{html.escape(role)}" data-index="{int(i)}" '
            f'data-logprob="{lp!r}" data-scored="{str(not math.isnan(lp)).lower()}" '
            f'data-text="{_attr(text)}" data-tip="{_attr(token_tooltip(text, lp))}" '
            f'style="background:{bg};color:{fg}">{html.escape(visible_whitespace(text))}</span>'
            for i, text, lp, bg, fg in zip(part["token_index"], part["text"], map(float, logp), backgrounds, colors)
        )
        label = html.escape(labels.get(role, role))
        lines.append(f'<div class="rdpt-tokline" data-role="{html.escape(role)}">'
                     f'<span class="rdpt-toklabel">{label}</span>{spans}</div>')
    body = f'<div class="rdpt-tokens">{"".join(lines)}{scale_legend_html()}</div>'
    return (_CSS + body) if with_css else body
