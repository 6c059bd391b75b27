"""Altair charts (pure: no Streamlit) and their PNG/SVG export through vl-convert."""

from __future__ import annotations

import altair as alt
import pandas as pd

from .provenance import CLASS_COLORS, CLASSES_3, CLASSES_4, UNSCORED

# Charts embed their data (the report must open offline); Altair's default 5,000-row guard
# would refuse a β histogram of a few thousand responses.
alt.data_transformers.disable_max_rows()

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


def position_chart(curves: pd.DataFrame, marks: pd.DataFrame | None = None, column_classes=CLASSES_4,
                   height: int = 340) -> alt.LayerChart:
    """The paper's Figure 3/4: per-position class shares, correct responses solid and incorrect
    dashed, 95% Wilson bands, and rules where the mean cumulative token count crosses each mark."""
    data = curves[curves["answer"].isin(["correct", "incorrect"])]
    classes = [c for c in (*column_classes, *CLASSES_3) if c in set(data["cls"])]
    color = alt.Color("cls:N", title="class", scale=alt.Scale(domain=classes, range=[CLASS_COLORS[c] for c in classes]))
    dash = alt.StrokeDash("answer:N", title="response", scale=alt.Scale(
        domain=["correct", "incorrect"], range=[[1, 0], [6, 4]]))
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    base = alt.Chart(data).encode(x=alt.X("action_index:Q", title="action index"), color=color)
    band = base.mark_area(opacity=0.12).encode(y="lo:Q", y2="hi:Q", detail="answer:N")
    line = base.mark_line().encode(
        y=alt.Y("share:Q", title="share of responses", scale=alt.Scale(domain=[0, 1])), strokeDash=dash,
        tooltip=["action_index:Q", "cls:N", "answer:N", alt.Tooltip("share:Q", format=".3f"), "k:Q", "n:Q",
                 alt.Tooltip("lo:Q", format=".3f"), alt.Tooltip("hi:Q", format=".3f")],
    )
    layers = [band, line]
    if marks is not None and len(marks):
        rules = alt.Chart(marks).mark_rule(color="#555", strokeDash=[2, 2]).encode(x="action_index:Q")
        text = alt.Chart(marks.assign(label=lambda d: (d["tokens"] // 1000).astype(str) + "k")).mark_text(
            dy=-6, color="#555", baseline="bottom").encode(x="action_index:Q", y=alt.value(0), text="label:N")
        layers += [rules, text]
    return alt.layer(*layers).properties(height=height).add_params(zoom)


def counts_chart(curves: pd.DataFrame, height: int = 120) -> alt.Chart:
    """n_j: how many responses have a scored j-th action (correct vs incorrect)."""
    n = curves.drop_duplicates(["answer", "action_index"])
    return alt.Chart(n).mark_line(interpolate="step-after").encode(
        x=alt.X("action_index:Q", title="action index"), y=alt.Y("n:Q", title="n_j"),
        strokeDash=alt.StrokeDash("answer:N", scale=alt.Scale(domain=["correct", "incorrect"], range=[[1, 0], [6, 4]])),
        tooltip=["action_index:Q", "answer:N", "n:Q"],
    ).properties(height=height)


def mean_probability_chart(means: pd.DataFrame, height: int = 240) -> alt.Chart:
    roles = [r for r in ROLE_COLORS if r in set(means["role"])]
    return alt.Chart(means.assign(model=lambda d: d["role"].map(ROLE_LABELS))).mark_line().encode(
        x=alt.X("action_index:Q", title="action index"),
        y=alt.Y("p:Q", title="mean action probability", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", scale=alt.Scale(domain=[ROLE_LABELS[r] for r in roles],
                                                   range=[ROLE_COLORS[r] for r in roles])),
        tooltip=["action_index:Q", "model:N", alt.Tooltip("p:Q", format=".3f"), "n:Q"],
    ).properties(height=height)


def beta_histograms(props_by_beta: pd.DataFrame, suggested: float | None = None, bins: int = 10) -> alt.FacetChart:
    """Appendix A.2: per β, histograms of per-response class proportions, side by side."""
    classes = [c for c in CLASSES_4 + CLASSES_3 if c in set(props_by_beta["cls"])]
    data = props_by_beta.assign(title=lambda d: d["beta"].map(
        lambda b: f"β = {b:.2f}" + (" (suggested)" if suggested is not None and abs(b - suggested) < 1e-9 else "")))
    return alt.Chart(data).mark_bar(opacity=0.55, binSpacing=0).encode(
        x=alt.X("proportion:Q", bin=alt.Bin(extent=[0, 1], step=1 / bins), title="share of a response's actions"),
        y=alt.Y("count():Q", stack=None, title="responses"),
        color=alt.Color("cls:N", scale=alt.Scale(domain=classes, range=[CLASS_COLORS[c] for c in classes])),
        tooltip=["cls:N", "count():Q"],
    ).properties(width=220, height=180).facet(column=alt.Column("title:N", title=None))


BEHAVIOUR_COLORS = {"execution": "#999999", "reflection": "#CC79A7", "transition": "#0072B2"}


def behaviour_chart(mix: pd.DataFrame, height: int = 160) -> alt.Chart:
    """The paper's Figure 9: the behaviour mix (execution / reflection / transition) per class."""
    long = (mix.drop(columns="n").reset_index().rename(columns={mix.index.name or "index": "cls"})
            .melt(id_vars="cls", var_name="behaviour", value_name="share"))
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("cls:N", title="class"),
        x=alt.X("share:Q", stack="normalize", title="share of the class's actions", axis=alt.Axis(format="%")),
        color=alt.Color("behaviour:N", scale=alt.Scale(domain=list(BEHAVIOUR_COLORS), range=list(BEHAVIOUR_COLORS.values()))),
        tooltip=["cls:N", "behaviour:N", alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=height)


SOURCE_PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999"]


def _source_color(sources) -> alt.Color:
    domain = list(dict.fromkeys(sources))
    palette = [SOURCE_PALETTE[i % len(SOURCE_PALETTE)] for i in range(len(domain))]
    return alt.Color("source:N", title="source", scale=alt.Scale(domain=domain, range=palette),
                     legend=alt.Legend(labelLimit=320, orient="bottom", columns=1))


_LONG_LABELS = alt.Axis(labelAngle=-35, labelLimit=220)  # strategy names, whole


def selection_chart(picks: pd.DataFrame, height: int = 220) -> alt.HConcatChart:
    """Per strategy, the distribution of the picked responses' lengths and Teacher shares."""
    base = alt.Chart(picks).mark_boxplot(extent="min-max", size=22).encode(
        x=alt.X("strategy:N", title=None, sort=list(dict.fromkeys(picks["strategy"])), axis=_LONG_LABELS))
    length = base.encode(y=alt.Y("n_tokens:Q", title="picked length (student tokens)"))
    share = base.encode(y=alt.Y("teacher_share:Q", title="picked Teacher share", scale=alt.Scale(domain=[0, 1])))
    return alt.hconcat(length.properties(height=height, width=300), share.properties(height=height, width=300))


def agreement_chart(matrix: pd.DataFrame, size: int = 260) -> alt.LayerChart:
    """Share of questions on which two strategies pick the same response."""
    order = list(matrix.index)
    long = matrix.rename_axis("a").reset_index().melt(id_vars="a", var_name="b", value_name="agree")
    base = alt.Chart(long).encode(x=alt.X("b:N", sort=order, title=None, axis=_LONG_LABELS),
                                  y=alt.Y("a:N", sort=order, title=None, axis=alt.Axis(labelLimit=220)))
    cells = base.mark_rect().encode(color=alt.Color("agree:Q", scale=alt.Scale(domain=[0, 1], scheme="blues"),
                                                    title="agreement"),
                                    tooltip=["a:N", "b:N", alt.Tooltip("agree:Q", format=".2f")])
    text = base.mark_text(fontSize=11).encode(
        text=alt.Text("agree:Q", format=".2f"),
        color=alt.condition(alt.datum.agree > 0.6, alt.value("white"), alt.value("black")))
    return (cells + text).properties(width=size, height=size)


def length_histogram_chart(hist: pd.DataFrame, height: int = 220) -> alt.Chart:
    """Token-length histograms per source on shared bins ("length diversity")."""
    return alt.Chart(hist).mark_bar(opacity=0.55, binSpacing=0).encode(
        x=alt.X("bin_start:Q", title="response length (reference tokens)", bin="binned"), x2="bin_end:Q",
        y=alt.Y("count:Q", stack=None, title="responses"), color=_source_color(hist["source"]),
        tooltip=["source:N", "bin_start:Q", "bin_end:Q", "count:Q"],
    ).properties(height=height)


def length_difficulty_chart(points: pd.DataFrame, height: int = 260) -> alt.LayerChart:
    """Mean response length per question against its solve rate, per source; lines join the
    means at each solve rate (adaptive length: longer on harder questions = falling lines)."""
    color = _source_color(points["source"])
    x = alt.X("solve_rate:Q", title="question solve rate (share of sources correct)", scale=alt.Scale(domain=[0, 1]))
    dots = alt.Chart(points).mark_circle(size=36, opacity=0.5).encode(
        x=x, y=alt.Y("mean_length:Q", title="response length (reference tokens)"), color=color,
        tooltip=["source:N", "question_id:N", alt.Tooltip("solve_rate:Q", format=".2f"), "mean_length:Q"])
    means = alt.Chart(points).mark_line(point=True).encode(x=x, y="mean(mean_length):Q", color=color)
    return (dots + means).properties(height=height)
