"""HTML for a response with every action highlighted by its provenance class.

Everything that comes from data (response text, class names, numbers) is escaped with
``html.escape`` before it becomes HTML: model outputs and uploads are untrusted. Each action is
one ``<span>`` carrying ``data-cls`` (for tests and the browser) and a tooltip with
p_T, p_S, p_D and the three Δs.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping

import pandas as pd

from .provenance import CLASS_COLORS, CLASSES_3, CLASSES_4, UNSCORED

_CSS = """
<style>
.rdpt-response { white-space: pre-wrap; font-family: ui-monospace, SFMono-Regular, Menlo, monospace;
  font-size: 0.86rem; line-height: 1.7; border: 1px solid #ddd; border-radius: 6px; padding: 0.8rem; }
.rdpt-act { border-radius: 3px; padding: 1px 0; }
.rdpt-act:hover { outline: 2px solid #333; }
.rdpt-special { font-weight: 600; }
.rdpt-legend { display: flex; flex-wrap: wrap; gap: 0.8rem; margin: 0.3rem 0 0.6rem 0; font-size: 0.9rem; }
.rdpt-swatch { display: inline-block; width: 0.9rem; height: 0.9rem; border-radius: 3px;
  vertical-align: middle; margin-right: 0.3rem; border: 1px solid #888; }
</style>
"""


def tint(hex_color: str, alpha: float = 0.35) -> str:
    """Light background from a class colour, so black text stays readable."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def tooltip(row: Mapping) -> str:
    """Plain-text tooltip of one action (escaped later, with the rest of the attribute)."""
    p = {role: row.get(f"p_{role}", float("nan")) for role in ("teacher", "student", "distilled")}
    lines = [f"#{row['action_index']} {row.get('cls', '')}".strip(),
             f"p_T {_fmt(p['teacher'])}  p_S {_fmt(p['student'])}  p_D {_fmt(p['distilled'])}"]
    if "p_distilled" in row:
        lines.append(f"Δ_SD {_fmt(p['student'] - p['distilled'])}  Δ_TD {_fmt(p['teacher'] - p['distilled'])}  "
                     f"Δ_TS {_fmt(p['teacher'] - p['student'])}")
    else:
        lines.append(f"Δ_TS {_fmt(p['teacher'] - p['student'])}")
    return "\n".join(lines)


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
        f'<span class="rdpt-swatch" style="background:{tint(CLASS_COLORS[c], 0.6)}"></span>'
        f"{html.escape(c)} <b>{n}</b></span>"
        for c, n in counts.items()
    )
    return f'<div class="rdpt-legend">{items}</div>'


def response_html(actions: pd.DataFrame, column: str = "cls", with_css: bool = True) -> str:
    """One response (its rows of the classified action table, in order) as highlighted HTML."""
    spans = []
    for row in actions.sort_values("action_index").to_dict("records"):
        cls = row.get(column) or UNSCORED
        color = tint(CLASS_COLORS.get(cls, CLASS_COLORS[UNSCORED]))
        kind = "rdpt-special" if row.get("kind") == "special" else ""
        spans.append(
            f'<span class="rdpt-act {kind}" data-cls="{html.escape(str(cls))}" '
            f'data-index="{int(row["action_index"])}" style="background:{color}" '
            f'title="{html.escape(tooltip(row))}">{html.escape(row["text"])}</span>'
        )
    body = f'<div class="rdpt-response">{"".join(spans)}</div>'
    return (_CSS + body) if with_css else body


def highlighted_block(actions: pd.DataFrame, column: str = "cls") -> str:
    """Legend with counts, then the highlighted response."""
    return _CSS + legend_html(class_counts(actions, column)) + response_html(actions, column, with_css=False)
