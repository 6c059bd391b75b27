"""One self-contained HTML report (opens offline): settings, corpus curves, β tuning, class
summary, behaviours and a few highlighted responses. Charts are embedded as SVG rendered by
vl-convert, so the file needs no JavaScript and no network."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import pandas as pd

from . import stats
from .behaviours import behaviour_mix
from . import selection as sel
from . import sources as src
from .charts import (
    agreement_chart, behaviour_chart, beta_histograms, chart_svg, counts_chart, length_difficulty_chart, number_clip_paths,
    length_histogram_chart, mean_probability_chart, position_chart, selection_chart,
)
from .provenance import DEFAULT_GAMMA, UNSCORED, class_column, classify_table, teacher_colors, teacher_names
from .render import highlighted_block

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
h1 {{ margin-bottom: 0.2rem; }} h2 {{ margin-top: 2.2rem; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; font-size: 0.85rem; }} td, th {{ border: 1px solid #ddd; padding: 3px 8px; }}
.chart {{ margin: 0.8rem 0; overflow-x: auto; }} .muted {{ color: #666; font-size: 0.9rem; }}
</style></head><body>
<h1>{title}</h1>
<p class="muted">RDPT Explorer report · Reasoning Distillation Provenance Tracing</p>
{body}
</body></html>
"""


def _p(value: float) -> str:
    return "NaN" if pd.isna(value) else f"{value:.2g}"  # small p-values must not print as 0.000


def _table(frame: pd.DataFrame, index: bool = False) -> str:
    formatters = {"p_value": _p} if "p_value" in frame.columns else None
    return frame.to_html(index=index, escape=True, float_format=lambda x: f"{x:.3f}", border=0,
                         formatters=formatters)


def _note(text: str | None) -> list[str]:
    return [f'<p class="muted">{html.escape(text)}</p>'] if text else []


def _chart(chart, name: str) -> str:
    return f'<div class="chart" data-chart="{html.escape(name)}">{chart_svg(chart)}</div>'


def build_report(
    actions: pd.DataFrame | None, alpha: float, beta: float, settings: Mapping[str, str] | None = None,
    betas: Sequence[float] | None = None, min_n: int = 10, token_step: int = 4000, n_examples: int = 3,
    title: str = "RDPT report", selection: pd.DataFrame | None = None, sources: pd.DataFrame | None = None,
    seed: int = 0, gamma: float = DEFAULT_GAMMA,
) -> str:
    """The report as an HTML string. ``actions``: the scored action table (not yet classified);
    ``selection``: per-response features (:func:`rdpt_core.selection.response_features` at β);
    ``sources``: reference-model response table (:func:`rdpt_core.sources.response_table`).
    Each part appears when its data is given. ``gamma`` matters for several named teachers only
    (docs/method.md §18): then the settings list it and a section shows which teacher."""
    known = {f"model ({role})": label for role, label in (actions.attrs.get("models", {}) if actions is not None
                                                            else {}).items()}
    if actions is not None and "segmenter" in actions.attrs:
        known["segmenter"] = actions.attrs["segmenter"]
    several = actions is not None and len(teacher_names(actions)) >= 2
    settings = {"alpha": f"{alpha:.3f}", "beta": f"{beta:.3f}", **({"gamma": f"{gamma:.3f}"} if several else {}),
                **known, **(settings or {})}
    parts = ["<h2>Settings</h2>", _table(pd.DataFrame(list(settings.items()), columns=["setting", "value"]))]
    if actions is not None:
        parts += _provenance_sections(actions, alpha, beta, gamma, betas, min_n, token_step, n_examples)
    if selection is not None:
        parts += _selection_section(selection, beta, seed)
    if sources is not None:
        parts += _sources_section(sources)
    return number_clip_paths(_PAGE.format(title=html.escape(title), body="\n".join(parts)))


def _missing(section: str, reason: str) -> list[str]:
    """Why a section has nothing to show (``data-missing`` names the section for tests and readers)."""
    return [f'<p class="muted missing" data-missing="{html.escape(section)}">{html.escape(reason)}</p>']


def _provenance_sections(actions: pd.DataFrame, alpha: float, beta: float, gamma: float,
                         betas: Sequence[float] | None, min_n: int, token_step: int, n_examples: int) -> list[str]:
    table = classify_table(actions, alpha, beta, gamma)
    column = class_column(table)
    n_scored = int((table[column] != UNSCORED).sum())
    return [f"<p>{table.record_id.nunique()} responses, {len(table)} actions, {n_scored} of them scored.</p>",
            *_position_section(table, column, min_n, token_step),
            *(_teacher_section(table, gamma, min_n, token_step) if "teacher_of" in table.columns else []),
            *_means_section(table, min_n),
            *_correct_section(table, column),
            *_beta_section(actions, alpha, betas, column),
            *_behaviour_section(table, column),
            *_examples_section(table, column, n_examples)]


def _no_scored_action(table: pd.DataFrame, what: str) -> str:
    """The reason shared by the sections that need at least one scored action."""
    if table.empty:
        return f"The action table has no rows: no {what}."
    return f"No action has all its probabilities (every one is Unscored): no {what}."


def _position_section(table: pd.DataFrame, column: str, min_n: int, token_step: int) -> list[str]:
    parts = ["<h2>Class share by position</h2>"]
    curves = stats.position_curves(table, column, min_n)
    if curves.empty:
        return parts + _missing("positions", _no_scored_action(table, "class share to draw by position"))
    return parts + [_chart(position_chart(curves, stats.token_marks(table, token_step), min_n=min_n), "curves"),
                    _chart(counts_chart(curves, min_n=min_n), "counts"),
                    *_note(stats.thin_positions_note(curves, min_n))]


def _teacher_section(table: pd.DataFrame, gamma: float, min_n: int, token_step: int) -> list[str]:
    """Several teachers: per-teacher curves and how the Teacher actions split among teachers."""
    parts = [f"<h2>Which teacher (γ = {gamma:.2f})</h2>"]
    colors = teacher_colors(teacher_names(table))
    curves = stats.teacher_position_curves(table, min_n)
    curves = curves[curves["cls"].isin(list(colors))]
    if not curves.empty:
        parts.append(_chart(position_chart(curves, stats.token_marks(table, token_step), min_n=min_n, colors=colors),
                            "teacher-curves"))
    shares = stats.teacher_shares(table)
    if shares.empty:
        return parts + _missing("teachers", "No action is of class Teacher: no split among the teachers.")
    return parts + [_table(shares), *_note("share: of all Teacher actions (pooled); mean_response_share: the mean "
                                           "over responses of the teacher's share of that response's Teacher actions.")]


def _means_section(table: pd.DataFrame, min_n: int) -> list[str]:
    parts = ["<h2>Mean probability by position</h2>"]
    means = stats.mean_probability_curves(table, min_n)
    if means.empty:
        return parts + _missing("means", "No action has a probability under any model: no mean to draw."
                                if len(table) else "The action table has no rows: no mean to draw.")
    return parts + [_chart(mean_probability_chart(means, min_n=min_n), "means"),
                    *_note(stats.thin_positions_note(means, min_n))]


def _correct_section(table: pd.DataFrame, column: str) -> list[str]:
    parts = ["<h2>Correct vs incorrect responses</h2>"]
    comparison = stats.correct_vs_incorrect(table, column)
    if comparison.empty:
        return parts + _missing("correct", _no_scored_action(table, "class shares to compare"))
    return parts + [_table(comparison), *_note(stats.CORRECT_VS_INCORRECT_CAPTION)]


def _beta_section(actions: pd.DataFrame, alpha: float, betas: Sequence[float] | None, column: str) -> list[str]:
    parts = ["<h2>Choosing β</h2>"]
    grid = list(betas) if betas else stats.beta_grid()
    proportions = stats.proportions_by_beta(actions, alpha, grid, column)
    if proportions.empty:
        return parts + _missing("beta", _no_scored_action(actions, "class proportions to tune β on"))
    overlaps = stats.beta_overlaps(actions, alpha, grid, column=column)
    if overlaps.empty:  # one class at every β: no pair of classes, so no overlap to minimise
        classes = ", ".join(sorted(set(proportions["cls"])))
        return parts + [_chart(beta_histograms(proportions), "beta"), *_missing(
            "beta", f"Only one class ({classes}) at every β of the grid: no two classes whose overlap "
                    "could choose β, so no suggestion.")]
    suggested = stats.suggest_beta(overlaps)
    text = (f"Suggested β = {suggested:.2f} (least overlap between the two most frequent classes)."
            if suggested is not None else "No suggestion: no β has two most frequent classes.")
    return parts + [f"<p>{text}</p>", _chart(beta_histograms(proportions, suggested), "beta"),
                    _table(overlaps.pivot_table(index=["class_a", "class_b"], columns="beta", values="overlap"),
                           index=True)]


def _behaviour_section(table: pd.DataFrame, column: str) -> list[str]:
    parts = ["<h2>Behaviours per class</h2>"]
    scored = table[table[column] != UNSCORED]
    if scored.empty:
        return parts + _missing("behaviours", _no_scored_action(table, "class to break into behaviours"))
    mix = behaviour_mix(table, column)
    return parts + [_chart(behaviour_chart(mix), "behaviours"), _table(mix, index=True)]


def _examples_section(table: pd.DataFrame, column: str, n_examples: int) -> list[str]:
    parts = ["<h2>Example responses</h2>"]
    picks = _examples(table, n_examples)
    if not picks:
        return parts + _missing("examples", "The action table has no rows: no response to show."
                                if table.empty else f"No example asked for (n_examples = {n_examples}).")
    for rid in picks:
        rows = table[table.record_id == rid]
        parts += [f"<h3>{html.escape(str(rid))} ({_verdict(rows['correct'].iloc[0])})</h3>",
                  highlighted_block(rows, column)]
    return parts


def _selection_section(features: pd.DataFrame, beta: float, seed: int) -> list[str]:
    picks = sel.picks_by_strategy(features, seed=seed)
    return ["<h2>Teacher-guided data selection</h2>",
            f"<p>{features.question_id.nunique()} questions, {len(features)} candidate responses; "
            f"Teacher actions under the 3-class rule at β = {beta:.2f}; random seed {seed}.</p>",
            _chart(selection_chart(picks), "selection"), _table(sel.strategy_summary(picks), index=True),
            "<h3>How often strategies agree</h3>", _chart(agreement_chart(sel.agreement(picks)), "agreement")]


def _sources_section(responses: pd.DataFrame) -> list[str]:
    parts = ["<h2>Distillation sources</h2>", _table(src.length_stats(responses)),
             _chart(length_histogram_chart(src.histogram(responses)), "lengths")]
    points = src.length_vs_difficulty(responses)
    if not points.empty:
        parts += ["<h3>Length against difficulty</h3>", _chart(length_difficulty_chart(points), "difficulty"),
                  _table(src.adaptivity(responses)), *_note(src.ADAPTIVITY_CAPTION)]
    return parts


_VERDICTS: dict[object, str] = {True: "correct", False: "incorrect"}


def _verdict(correct: object) -> str:
    """A response's ``correct`` value as a word; None or NA: unknown."""
    return _VERDICTS.get(correct, "unknown")


def _examples(table: pd.DataFrame, n: int) -> list[str]:
    """Up to n responses, correct, incorrect and unknown in turn, shortest first (readable)."""
    sizes = table.groupby("record_id").agg(n=("action_index", "size"), correct=("correct", "first"))
    verdicts = sizes["correct"].map(_verdict)
    groups = [sizes[verdicts == v].sort_values("n").index.tolist() for v in ("correct", "incorrect", "unknown")]
    picks: list[str] = []
    while len(picks) < n and any(groups):
        for g in groups:
            if g and len(picks) < n:
                picks.append(g.pop(0))
    return picks
