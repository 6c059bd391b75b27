"""Altair charts (pure: no Streamlit) and their PNG/SVG export through vl-convert.

Sizing contract (how the app draws them): a single-view or layered chart is drawn stretched to
the column (``st.altair_chart(chart, width="stretch")``), a facet / concat chart at its own size
(``width="content"``).  So single and layered charts here use ``autosize: fit-x``: their
``height`` is the *plot* height (axes, legends and titles come on top of it, never out of it) and
only the width follows the container; facet and concat charts size their cells themselves
(``autosize: pad``) and are kept under ~950 px wide.  Every chart asks vega-embed for the SVG
renderer (``usermeta.embedOptions.renderer``), which Streamlit passes through: crisp text, and a
DOM the browser tests can measure (``tests/chart_geometry.py``).

Data are embedded as inline values (sanitised exactly like Altair's default transformer), so a
chart of more than 5,000 rows serialises without touching Altair's global data-transformer
settings.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import altair as alt
import numpy as np
import pandas as pd
from altair.utils.schemapi import debug_mode

from .provenance import CLASS_COLORS, CLASSES_3, CLASSES_4, UNSCORED, teacher_names

ROLE_COLORS = {"teacher": "#009E73", "student": "#0072B2", "distilled": "#D55E00"}
ROLE_LABELS = {"teacher": "p_T (teacher)", "student": "p_S (student)", "distilled": "p_D (distilled)"}
ROLE_SHORT = {"teacher": "p_T", "student": "p_S", "distilled": "p_D"}

# vega-embed options carried in the spec; Streamlit forwards ``renderer`` (svg | canvas | hybrid).
EMBED_USERMETA = {"embedOptions": {"renderer": "svg"}}
# Total width of a single/layered chart when exported (the app stretches it to its column).
EXPORT_WIDTH = 640
FACET_MAX_WIDTH = 950  # a facet/concat chart's whole width stays under this (a ~1000 px column)

_INT_AXIS: dict[str, Any] = {"tickMinStep": 1, "format": "d"}  # the action index is discrete
_LISTED_TICKS = 15  # up to this many steps, every action index gets its own tick
# The corpus charts (position, n_j, mean probability) stack on one page over a shared x domain:
# legends on top and a fixed y-axis extent give them the same plot width, so positions line up.
_STACKED_Y_AXIS: dict[str, Any] = {"minExtent": 40, "maxExtent": 40}
_TOP_LEGEND: dict[str, Any] = {"orient": "top", "direction": "horizontal", "labelLimit": 200}


_Builder = TypeVar("_Builder", bound=Callable[..., Any])


def _unvalidated(build: _Builder) -> _Builder:
    """Build without Altair's debug-mode validation of every object as it is made (inline data
    row by row: 0.6 s for a 10k-response position chart, 0.26 s without). The finished spec is
    still validated once, when Streamlit or the exporters call ``to_dict``."""

    @functools.wraps(build)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        with debug_mode(False):
            return build(*args, **kwargs)

    return quiet  # type: ignore[return-value]


class _SharedData(alt.InlineData):
    """Inline values that copies of a chart share instead of duplicating. Altair deep-copies a
    chart at every ``properties`` / ``encode`` / ``layer`` step; copying the rows of every layer
    again and again was most of a corpus chart's build time (0.4 s a 10k-response slider step).
    The values are never changed once built, so sharing them is safe."""

    def __deepcopy__(self, memo: dict | None = None) -> _SharedData:
        return self


def _data(frame: pd.DataFrame) -> alt.InlineData:
    """The frame as inline values, sanitised like Altair's default transformer but without its
    5,000-row guard (which is global state: changing it would change Altair for every importer)."""
    return _SharedData(values=alt.to_values(frame)["values"])


def _view(chart, width: int | None = None):
    """Finish a single or layered chart: plot height as given, width fits the container."""
    return chart.properties(width=width or EXPORT_WIDTH, usermeta=EMBED_USERMETA,
                            autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))


def _composite(chart):
    """Finish a facet / concat chart: cells at their own size."""
    return chart.properties(usermeta=EMBED_USERMETA, autosize=alt.AutoSizeParams(type="pad"))


def _index_axis(lo: float, hi: float) -> alt.Axis:
    """Integer ticks on an action-index axis; a short range lists every index as a tick, since
    vl-convert's Vega ignores ``tickMinStep`` and would label 0, 0.5, 1 … as "0, 1, 1 …"."""
    if math.isfinite(lo) and math.isfinite(hi) and hi - lo <= _LISTED_TICKS:
        return alt.Axis(**_INT_AXIS, values=list(range(math.ceil(lo), math.floor(hi) + 1)))
    return alt.Axis(**_INT_AXIS)


def _x_index(title: str = "action index", x_domain: Sequence[float] | None = None,
             span: tuple[float, float] | None = None, **scale) -> alt.X:
    """The action index on x: integer ticks, optionally a fixed domain shared between charts.
    ``span``: the data's own index range (for the ticks when no ``x_domain`` is given)."""
    if x_domain is not None:
        scale = {"nice": False, "zero": False, **scale, "domain": [float(x_domain[0]), float(x_domain[1])]}
    lo, hi = x_domain if x_domain is not None else span if span is not None else (math.nan, math.nan)
    return alt.X("action_index:Q", title=title, axis=_index_axis(float(lo), float(hi)),
                 scale=alt.Scale(**scale) if scale else alt.Undefined)


def _span(frame: pd.DataFrame) -> tuple[float, float]:
    index = frame["action_index"]
    return (float(index.min()), float(index.max())) if len(index) else (math.nan, math.nan)


def _class_scale(column: str) -> alt.Scale:
    classes = [*(CLASSES_4 if column == "cls" else CLASSES_3), UNSCORED]
    return alt.Scale(domain=classes, range=[CLASS_COLORS[c] for c in classes])


@_unvalidated
def response_chart(actions: pd.DataFrame, column: str = "cls", height: int = 320) -> alt.LayerChart:
    """The paper's Figure 2 for one response: p_T, p_S, p_D against the action index, over
    background bands coloured by class; tooltips on every point (the bands: all three
    probabilities and their differences); drag to pan, wheel to zoom."""
    roles = [r for r in ROLE_COLORS if f"p_{r}" in actions.columns]
    # several teachers (docs/method.md §18): p_T is the best teacher's
    labels = {**ROLE_LABELS, "teacher": "p_T (best teacher)"} if len(teacher_names(actions)) >= 2 else ROLE_LABELS
    data = actions.sort_values("action_index").assign(
        x0=lambda d: d["action_index"] - 0.5, x1=lambda d: d["action_index"] + 0.5,
        snippet=lambda d: d["text"].str.strip().str.slice(0, 80),
    )
    deltas = [(f"Δ_{ROLE_SHORT[a][2]}{ROLE_SHORT[b][2]}", a, b)
              for a, b in [("teacher", "student"), ("teacher", "distilled"), ("student", "distilled")]
              if a in roles and b in roles]
    data = data.assign(**{name: data[f"p_{a}"] - data[f"p_{b}"] for name, a, b in deltas})
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    x_scale = alt.Scale(domain=[-0.5, float(data["action_index"].max()) + 0.5], nice=False, zero=False)
    band_cols = ["action_index", "x0", "x1", column, "snippet", *(f"p_{r}" for r in roles), *(d[0] for d in deltas)]
    bands = alt.Chart(_data(data[band_cols])).mark_rect(opacity=0.25).encode(
        x=alt.X("x0:Q", title="action index", scale=x_scale, axis=_index_axis(*_span(data))), x2="x1:Q",
        color=alt.Color(f"{column}:N", scale=_class_scale(column), title="class"),
        tooltip=[alt.Tooltip("action_index:Q", title="action", format="d"),
                 *(alt.Tooltip(f"p_{r}:Q", title=ROLE_SHORT[r], format=".3f") for r in roles),
                 *(alt.Tooltip(f"{name}:Q", title=name, format=".3f") for name, _, _ in deltas),
                 alt.Tooltip(f"{column}:N", title="class"), alt.Tooltip("snippet:N", title="snippet")],
    )
    long = data.melt(
        id_vars=["action_index", column, "snippet"], value_vars=[f"p_{r}" for r in roles],
        var_name="role", value_name="p",
    ).assign(model=lambda d: d["role"].str.removeprefix("p_").map(labels))
    lines = alt.Chart(_data(long)).mark_line(point=alt.OverlayMarkDef(size=18, filled=True)).encode(
        x="action_index:Q",
        y=alt.Y("p:Q", title="action probability", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", scale=alt.Scale(
            domain=[labels[r] for r in roles], range=[ROLE_COLORS[r] for r in roles]), title="model"),
        tooltip=[alt.Tooltip("action_index:Q", title="action", format="d"), "model:N",
                 alt.Tooltip("p:Q", format=".3f"), alt.Tooltip(f"{column}:N", title="class"), "snippet:N"],
    )
    chart = (bands + lines).resolve_scale(color="independent").properties(height=height).add_params(zoom)
    return _view(chart)


def _json(chart: alt.TopLevelMixin | dict[str, Any]) -> str:
    return json.dumps(chart) if isinstance(chart, dict) else chart.to_json()


def chart_png(chart: alt.TopLevelMixin | dict[str, Any], scale: float = 2.0) -> bytes:
    """The chart (or its Vega-Lite spec) as a PNG, ``scale`` × its size."""
    import vl_convert as vlc

    return vlc.vegalite_to_png(_json(chart), scale=scale)


def chart_svg(chart: alt.TopLevelMixin | dict[str, Any]) -> str:
    """The chart (or its Vega-Lite spec) as an SVG document, the same bytes for the same chart
    (:func:`number_clip_paths`)."""
    import vl_convert as vlc

    return number_clip_paths(vlc.vegalite_to_svg(_json(chart)))


# vl-convert numbers clip paths on from every chart the process has rendered (clip1…, later
# clip79…), so the same chart gave other bytes later in a process. Only the attributes Vega
# writes are matched: data text inside an attribute has its quotes escaped, so it cannot match.
_CLIP_ID = re.compile(r'(?<=clip-path="url\(#clip)\d+(?=\)")|(?<=<clipPath id="clip)\d+(?=")')
_SVG_START = re.compile(r"(?=<svg[\s>])")


def number_clip_paths(document: str) -> str:
    """Clip-path ids numbered 1, 2, … in order of appearance, each ``<svg>`` of ``document``
    on from the last one's (ids stay unique in a page holding several charts)."""
    numbers = itertools.count(1)
    parts = []
    for part in _SVG_START.split(document):
        mapping: dict[str, str] = {}
        parts.append(_CLIP_ID.sub(lambda m: mapping.setdefault(m[0], str(next(numbers))), part))
    return "".join(parts)


_DASH = alt.Scale(domain=["correct", "incorrect"], range=[[1, 0], [6, 4]])
# Positions resting on fewer than min-n responses (``enough`` false in rdpt_core.stats' curves)
# are drawn, but faded and as hollow points: a small corpus keeps its figure, read with care.
THIN_OPACITY = 0.3


def _thin_label(min_n: int | None) -> str:
    return f"fewer than {min_n} responses: faded" if min_n else "few responses: faded"


def _support_opacity(min_n: int | None) -> alt.Opacity:
    """Opacity by ``enough``: full, or :data:`THIN_OPACITY` below min-n. Its legend has one
    entry, the faded kind ("fewer than N responses: faded")."""
    return alt.Opacity("enough:N", scale=alt.Scale(domain=[True, False], range=[1.0, THIN_OPACITY]),
                       legend=alt.Legend(title=None, values=[False], labelExpr=repr(_thin_label(min_n)),
                                         symbolFillColor="transparent", **_TOP_LEGEND))


_SOLID = "solid_value"  # the curve's value where its position has enough responses, else null


def _curves(data: pd.DataFrame, value: str, x: alt.X, y_of: Callable[[str], alt.Y], series: dict[str, Any],
            tooltip: list, min_n: int | None) -> list:
    """Layers (no data of their own: layer them over ``data``) drawing a line per series
    (``series``: its color and, maybe, strokeDash channels) over every position, ``y_of(field)``
    its y channel. Where some positions are thin: the whole line faded, solid only between
    positions with enough responses (its value is null at thin ones, so the solid line breaks
    there instead of bridging them), and thin positions as hollow, faded points (a lone thin
    position has no line segment to show it)."""
    if data["enough"].astype(bool).all():
        return [alt.Chart().mark_line().encode(x=x, y=y_of(value), tooltip=tooltip, **series)]
    quiet = {name: channel.copy() for name, channel in series.items()}
    for channel in quiet.values():  # the solid line owns the legends
        channel.legend = None
    faded = alt.Chart().mark_line(opacity=THIN_OPACITY).encode(x=x, y=y_of(value), tooltip=tooltip, **quiet)
    solid = (alt.Chart().transform_calculate(**{_SOLID: f"datum.enough ? datum[{value!r}] : null"})
             .mark_line().encode(x=x, y=y_of(_SOLID), tooltip=tooltip, **series))
    points = alt.Chart().transform_filter("!datum.enough").mark_point(filled=False, size=40, strokeWidth=1.5).encode(
        x=x, y=y_of(value), tooltip=tooltip, opacity=_support_opacity(min_n), color=quiet["color"])
    return [faded, solid, points]


@_unvalidated
def position_chart(curves: pd.DataFrame, marks: pd.DataFrame | None = None, column_classes=CLASSES_4,
                   height: int = 340, x_domain: tuple[float, float] | None = None,
                   min_n: int | None = None, colors: Mapping[str, str] | None = None) -> alt.LayerChart:
    """The paper's Figure 3/4: per-position class shares, correct responses solid and incorrect
    dashed, 95% Wilson bands, and rules where the mean cumulative token count crosses each mark.
    Positions with fewer than ``min_n`` responses (``enough`` false) are faded, hollow points.
    ``x_domain``: a fixed action-index range (to line it up with the other corpus charts).
    ``colors``: the series to draw and their colours, in legend order (default: the classes);
    e.g. ``provenance.teacher_colors`` for ``stats.teacher_position_curves``."""
    palette = dict(colors) if colors is not None else {
        c: CLASS_COLORS[c] for c in dict.fromkeys((*column_classes, *CLASSES_3))}
    data = curves[curves["answer"].isin(["correct", "incorrect"]) & curves["cls"].isin(list(palette))]
    classes = [c for c in palette if c in set(data["cls"])]
    scale = alt.Scale(domain=classes, range=[palette[c] for c in classes])
    dash = alt.StrokeDash("answer:N", title="response", scale=_DASH, legend=alt.Legend(**_TOP_LEGEND))
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    x = _x_index(x_domain=x_domain, span=_span(data))
    # Wilson bands only where a position has enough responses (nulls break the area): at a thin
    # one the band spans most of [0, 1] and would drown the faded curves. The pale band must not
    # drive the legend: the line layer owns it (solid swatches)
    band = (alt.Chart().transform_calculate(band_lo="datum.enough ? datum.lo : null",
                                            band_hi="datum.enough ? datum.hi : null")
            .mark_area(opacity=0.12).encode(x=x, y="band_lo:Q", y2="band_hi:Q", detail="answer:N",
                                            color=alt.Color("cls:N", scale=scale, legend=None)))

    def y_of(field: str) -> alt.Y:
        return alt.Y(f"{field}:Q", title="share of responses", scale=alt.Scale(domain=[0, 1]),
                     axis=alt.Axis(**_STACKED_Y_AXIS))

    series = {"strokeDash": dash,
              "color": alt.Color("cls:N", title="class", scale=scale, legend=alt.Legend(**_TOP_LEGEND))}
    tooltip = [alt.Tooltip("action_index:Q", format="d"), "cls:N", "answer:N", alt.Tooltip("share:Q", format=".3f"),
               "k:Q", "n:Q", alt.Tooltip("lo:Q", format=".3f"), alt.Tooltip("hi:Q", format=".3f")]
    layers = [band, *_curves(data, "share", x, y_of, series, tooltip, min_n)]
    if marks is not None and len(marks):
        rules = alt.Chart(_data(marks)).mark_rule(color="#555", strokeDash=[2, 2]).encode(x=x)
        labels = marks.assign(label=lambda d: (d["tokens"] // 1000).astype(str) + "k")
        text = alt.Chart(_data(labels)).mark_text(dy=-6, color="#555", baseline="bottom").encode(
            x=x, y=alt.value(0), text="label:N")
        layers += [rules, text]
    # independent legends over the shared colour scale: the band's (None) cannot erase the line's
    chart = (alt.layer(*layers, data=_data(data)).resolve_legend(color="independent", strokeDash="independent")
             .properties(height=height).add_params(zoom))
    return _view(chart)


@_unvalidated
def counts_chart(curves: pd.DataFrame, height: int = 160, x_domain: tuple[float, float] | None = None,
                 min_n: int | None = None) -> alt.Chart | alt.LayerChart:
    """n_j: how many responses have a scored j-th action (correct vs incorrect); with ``min_n``,
    a dashed rule at n = min_n (below it, the other charts fade a position)."""
    n = curves.drop_duplicates(["answer", "action_index"])[["answer", "action_index", "n"]]
    x = _x_index(x_domain=x_domain, span=_span(n))
    steps = alt.Chart(_data(n)).mark_line(interpolate="step-after").encode(
        x=x, y=alt.Y("n:Q", title="n_j", axis=alt.Axis(**_STACKED_Y_AXIS)),
        strokeDash=alt.StrokeDash("answer:N", title="response", scale=_DASH, legend=alt.Legend(**_TOP_LEGEND)),
        tooltip=[alt.Tooltip("action_index:Q", format="d"), "answer:N", "n:Q"],
    )
    if not min_n:
        return _view(steps.properties(height=height))
    level = pd.DataFrame({"n": [min_n], "label": [f"min-n = {min_n}: fewer responses are faded"]})
    rule = alt.Chart(_data(level)).mark_rule(color="#888", strokeDash=[2, 2]).encode(y="n:Q")
    text = alt.Chart(_data(level)).mark_text(align="right", baseline="bottom", dy=-2, color="#666").encode(
        y="n:Q", x=alt.value("width"), text="label:N")
    return _view(alt.layer(steps, rule, text).properties(height=height))


@_unvalidated
def mean_probability_chart(means: pd.DataFrame, height: int = 240, x_domain: tuple[float, float] | None = None,
                           min_n: int | None = None) -> alt.LayerChart:
    """Mean p_T / p_S / p_D per position; positions with fewer than ``min_n`` responses
    (``enough`` false) are faded, hollow points."""
    roles = [r for r in ROLE_COLORS if r in set(means["role"])]
    data = means.assign(model=lambda d: d["role"].map(ROLE_LABELS))
    x = _x_index(x_domain=x_domain, span=_span(data))

    def y_of(field: str) -> alt.Y:
        return alt.Y(f"{field}:Q", title="mean action probability", scale=alt.Scale(domain=[0, 1]),
                     axis=alt.Axis(**_STACKED_Y_AXIS))

    color = alt.Color("model:N", title="model", legend=alt.Legend(**_TOP_LEGEND), scale=alt.Scale(
        domain=[ROLE_LABELS[r] for r in roles], range=[ROLE_COLORS[r] for r in roles]))
    tooltip = [alt.Tooltip("action_index:Q", format="d"), "model:N", alt.Tooltip("p:Q", format=".3f"), "n:Q"]
    layers = _curves(data, "p", x, y_of, {"color": color}, tooltip, min_n)
    chart = alt.layer(*layers, data=_data(data)).resolve_legend(color="independent")
    return _view(chart.properties(height=height))


def beta_cell_width(n_betas: int, max_width: int = FACET_MAX_WIDTH) -> int:
    """Per-cell width of :func:`beta_histograms` so the whole grid stays within ``max_width``
    (about 180 px for up to four β, narrower for more)."""
    return int(max(60, min(180, (max_width - 150) // max(n_betas, 1) - 20)))


@_unvalidated
def beta_histograms(props_by_beta: pd.DataFrame, suggested: float | None = None, bins: int = 10,
                    width: int | None = None, height: int | None = None) -> alt.FacetChart:
    """Appendix A.2: histograms of per-response class proportions, one cell per class (rows) and
    β (columns), so no bars overlap.  ``width``/``height``: one cell's plot (defaults:
    :func:`beta_cell_width`; 70 px, taller when there are fewer than three classes).  Counted here on ``bins`` equal bins of [0, 1] (1.0 in the last, as
    :func:`rdpt_core.stats.histogram`), so the chart holds a few rows however many responses."""
    classes = [c for c in dict.fromkeys(CLASSES_4 + CLASSES_3) if c in set(props_by_beta["cls"])]
    betas = sorted(set(props_by_beta["beta"]))

    def title(b: float) -> str:
        return f"β = {b:.2f}" + (" (suggested)" if suggested is not None and abs(b - suggested) < 1e-9 else "")

    edges = np.linspace(0.0, 1.0, bins + 1)
    groups = props_by_beta.groupby(["beta", "cls"])["proportion"]
    rows = []
    for beta in betas:
        for cls in classes:
            values = groups.get_group((beta, cls)).to_numpy(float) if (beta, cls) in groups.groups else []
            counts, _ = np.histogram(values, bins=bins, range=(0.0, 1.0))
            rows += [{"beta": float(beta), "title": title(beta), "cls": cls, "bin_start": float(a),
                      "bin_end": float(b), "range": f"{a:.0%}–{b:.0%}", "count": int(c)}
                     for a, b, c in zip(edges[:-1], edges[1:], counts)]
    data = pd.DataFrame(rows, columns=["beta", "title", "cls", "bin_start", "bin_end", "range", "count"])
    cell = width or beta_cell_width(len(betas))
    height = height or max(70, -(-200 // max(len(classes), 1)))
    # pre-counted, so Vega-Lite runs no aggregate: its facet sort-index fields survive (an
    # aggregate drops them, and the cells then land under the wrong row/column headers)
    chart = alt.Chart(_data(data)).mark_bar().encode(
        x=alt.X("bin_start:Q", bin="binned", title="share of a response's actions" if cell >= 180 else "share of actions",
                scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", labelOverlap=True, titleLimit=cell)),
        x2="bin_end:Q",
        y=alt.Y("count:Q", title="responses", axis=alt.Axis(tickMinStep=1, format="d")),
        color=alt.Color("cls:N", scale=alt.Scale(domain=classes, range=[CLASS_COLORS[c] for c in classes]),
                        legend=None),  # the row headers name the classes
        tooltip=[alt.Tooltip("cls:N", title="class"), alt.Tooltip("title:N", title="β"),
                 alt.Tooltip("range:N", title="share of actions"), alt.Tooltip("count:Q", title="responses")],
    ).properties(width=cell, height=height).facet(
        row=alt.Row("cls:N", sort=classes, title=None,
                    header=alt.Header(labelAngle=0, labelAlign="left", labelFontWeight="bold")),
        column=alt.Column("title:N", sort=[title(b) for b in betas], title=None, header=alt.Header(
            labelLimit=cell + 10,
            # narrow cells: "(suggested)" on a second line rather than cut off
            labelExpr=alt.Undefined if cell >= 150 else
            "indexof(datum.value, ' (') > 0 ? [slice(datum.value, 0, indexof(datum.value, ' (')),"
            " slice(datum.value, indexof(datum.value, ' (') + 1)] : datum.value")),
        spacing={"row": 8, "column": 12},
    )
    return _composite(chart)


BEHAVIOUR_COLORS = {"execution": "#999999", "reflection": "#CC79A7", "transition": "#0072B2"}


@_unvalidated
def behaviour_chart(mix: pd.DataFrame, height: int = 180) -> alt.Chart:
    """The paper's Figure 9: the behaviour mix (execution / reflection / transition) per class."""
    long = (mix.drop(columns="n").reset_index().rename(columns={mix.index.name or "index": "cls"})
            .melt(id_vars="cls", var_name="behaviour", value_name="share"))
    return _view(alt.Chart(_data(long)).mark_bar().encode(
        y=alt.Y("cls:N", title="class"),
        x=alt.X("share:Q", stack="normalize", title="share of the class's actions", axis=alt.Axis(format="%")),
        color=alt.Color("behaviour:N", scale=alt.Scale(domain=list(BEHAVIOUR_COLORS), range=list(BEHAVIOUR_COLORS.values()))),
        tooltip=["cls:N", "behaviour:N", alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=height))


SOURCE_PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999"]


def _source_color(sources) -> alt.Color:
    domain = list(dict.fromkeys(sources))
    palette = [SOURCE_PALETTE[i % len(SOURCE_PALETTE)] for i in range(len(domain))]
    # on the right: under the app's fit-to-width sizing a legend there takes width, never plot height
    return alt.Color("source:N", title="source", scale=alt.Scale(domain=domain, range=palette),
                     legend=alt.Legend(orient="right", labelLimit=260))


@_unvalidated
def selection_chart(picks: pd.DataFrame, height: int = 220, width: int = 330) -> alt.HConcatChart:
    """Per strategy (rows, every name readable), the distribution of the picked responses'
    lengths and Teacher shares, as horizontal box plots side by side."""
    order = list(dict.fromkeys(picks["strategy"]))
    base = alt.Chart(_data(picks[["strategy", "n_tokens", "teacher_share"]])).mark_boxplot(
        extent="min-max", size=max(8, min(22, int(height / max(len(order), 1) * 0.6))))
    y = alt.Y("strategy:N", title=None, sort=order, axis=alt.Axis(labelLimit=240, labelOverlap=False))
    length = base.encode(y=y, x=alt.X("n_tokens:Q", title="picked length (student tokens)"))
    share = base.encode(
        y=alt.Y("strategy:N", title=None, sort=order, axis=alt.Axis(labels=False, ticks=False, domain=False)),
        x=alt.X("teacher_share:Q", title="picked Teacher share", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")))
    return _composite(alt.hconcat(length.properties(height=height, width=width),
                                  share.properties(height=height, width=width), spacing=16))


@_unvalidated
def agreement_chart(matrix: pd.DataFrame, size: int | None = None, step: int = 40) -> alt.LayerChart:
    """Share of questions on which two strategies pick the same response.  Cells are sized by
    step (``step`` px a row; columns share the container's width in the app); ``size``, if
    given, is the old overall side length and sets the step to ``size / len(matrix)``."""
    order = list(matrix.index)
    if size is not None:
        step = max(28, size // max(len(order), 1))
    long = matrix.rename_axis("a").reset_index().melt(id_vars="a", var_name="b", value_name="agree")
    base = alt.Chart(_data(long)).encode(
        x=alt.X("b:N", sort=order, title=None, axis=alt.Axis(labelAngle=-40, labelLimit=240, labelOverlap=False)),
        y=alt.Y("a:N", sort=order, title=None, axis=alt.Axis(labelLimit=240, labelOverlap=False)))
    cells = base.mark_rect().encode(color=alt.Color("agree:Q", scale=alt.Scale(domain=[0, 1], scheme="blues"),
                                                    title="agreement"),
                                    tooltip=["a:N", "b:N", alt.Tooltip("agree:Q", format=".2f")])
    text = base.mark_text(fontSize=12).encode(
        text=alt.Text("agree:Q", format=".2f"),
        color=alt.condition(alt.datum.agree > 0.6, alt.value("white"), alt.value("black")))
    chart = (cells + text).properties(height=alt.Step(step))
    return _view(chart, width=max(EXPORT_WIDTH // 2, 240 + int(step * 1.6) * len(order)))


@_unvalidated
def length_histogram_chart(hist: pd.DataFrame, height: int = 240) -> alt.Chart:
    """Token-length histograms per source on shared bins ("length diversity")."""
    return _view(alt.Chart(_data(hist)).mark_bar(opacity=0.55, binSpacing=0).encode(
        x=alt.X("bin_start:Q", title="response length (reference tokens)", bin="binned"), x2="bin_end:Q",
        y=alt.Y("count:Q", stack=None, title="responses"), color=_source_color(hist["source"]),
        tooltip=["source:N", "bin_start:Q", "bin_end:Q", "count:Q"],
    ).properties(height=height))


@_unvalidated
def length_difficulty_chart(points: pd.DataFrame, height: int = 260) -> alt.LayerChart:
    """Mean response length per question against its solve rate, per source; lines join the
    means at each solve rate (adaptive length: longer on harder questions = falling lines)."""
    color = _source_color(points["source"])
    x = alt.X("solve_rate:Q", title="question solve rate (share of sources correct)", scale=alt.Scale(domain=[0, 1]))
    data = _data(points)
    dots = alt.Chart(data).mark_circle(size=36, opacity=0.5).encode(
        x=x, y=alt.Y("mean_length:Q", title="response length (reference tokens)"), color=color,
        tooltip=["source:N", "question_id:N", alt.Tooltip("solve_rate:Q", format=".2f"), "mean_length:Q"])
    means = alt.Chart(data).mark_line(point=True).encode(x=x, y="mean(mean_length):Q", color=color)
    return _view((dots + means).properties(height=height))
