"""Altair charts (pure: no Streamlit) and their PNG/SVG export through vl-convert."""

from __future__ import annotations

import altair as alt
import pandas as pd

from .provenance import CLASS_COLORS, CLASSES_3, CLASSES_4, UNSCORED

ROLE_COLORS = {"teacher": "#009E73", "student": "#0072B2", "distilled": "#D55E00"}
ROLE_LABELS = {"teacher": "p_T (teacher)", "student": "p_S (student)", "distilled": "p_D (distilled)"}


def _class_scale(column: str) -> alt.Scale:
    classes = [*(CLASSES_4 if column == "cls" else CLASSES_3), UNSCORED]
    return alt.Scale(domain=classes, range=[CLASS_COLORS[c] for c in classes])


def response_chart(actions: pd.DataFrame, column: str = "cls", height: int = 320) -> alt.Chart:
    """The paper's Figure 2 for one response: p_T, p_S, p_D against the action index, over
    background bands coloured by class; tooltips on every point; drag to pan, wheel to zoom."""
    roles = [r for r in ROLE_COLORS if f"p_{r}" in actions.columns]
    data = actions.sort_values("action_index").assign(
        x0=lambda d: d["action_index"] - 0.5, x1=lambda d: d["action_index"] + 0.5,
        snippet=lambda d: d["text"].str.strip().str.slice(0, 80),
    )
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    x_scale = alt.Scale(domain=[-0.5, float(data["action_index"].max()) + 0.5], nice=False, zero=False)
    bands = alt.Chart(data).mark_rect(opacity=0.25).encode(
        x=alt.X("x0:Q", title="action index", scale=x_scale, axis=alt.Axis(tickMinStep=1)), x2="x1:Q",
        color=alt.Color(f"{column}:N", scale=_class_scale(column), title="class"),
        tooltip=["action_index:Q", alt.Tooltip(f"{column}:N", title="class"), "snippet:N"],
    )
    long = data.melt(
        id_vars=["action_index", column, "snippet"], value_vars=[f"p_{r}" for r in roles],
        var_name="role", value_name="p",
    ).assign(model=lambda d: d["role"].str.removeprefix("p_").map(ROLE_LABELS))
    lines = alt.Chart(long).mark_line(point=alt.OverlayMarkDef(size=18, filled=True)).encode(
        x="action_index:Q",
        y=alt.Y("p:Q", title="action probability", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", scale=alt.Scale(
            domain=[ROLE_LABELS[r] for r in roles], range=[ROLE_COLORS[r] for r in roles]), title="model"),
        tooltip=["action_index:Q", "model:N", alt.Tooltip("p:Q", format=".3f"),
                 alt.Tooltip(f"{column}:N", title="class"), "snippet:N"],
    )
    return (bands + lines).resolve_scale(color="independent").properties(height=height).add_params(zoom)


def chart_png(chart: alt.TopLevelMixin, scale: float = 2.0) -> bytes:
    import vl_convert as vlc

    return vlc.vegalite_to_png(chart.to_json(), scale=scale)


def chart_svg(chart: alt.TopLevelMixin) -> str:
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart.to_json())
