import pandas as pd

from rdpt_core.charts import chart_png, chart_svg, response_chart
from rdpt_core.provenance import classify_table


def sample():
    return classify_table(pd.DataFrame({
        "action_index": range(4), "text": ["A.", " B.", " C.", " D."], "kind": "sentence",
        "p_teacher": [0.9, 0.5, 0.1, 0.4], "p_student": [0.1, 0.5, 0.9, 0.45], "p_distilled": [0.5, 0.5, 0.5, 0.9],
    }))


def test_figure_two_chart_holds_three_curves_and_class_bands():
    spec = response_chart(sample()).to_dict()
    layers = spec["layer"]
    assert layers[0]["mark"]["type"] == "rect" and layers[1]["mark"]["type"] == "line"
    datasets = list(spec["datasets"].values())
    bands = next(d for d in datasets if "x0" in d[0])
    assert [b["cls"] for b in bands] == ["Teacher", "Shared", "Student", "Boosted"]
    lines = next(d for d in datasets if "model" in d[0])
    assert len(lines) == 12 and {r["model"] for r in lines} == {"p_T (teacher)", "p_S (student)", "p_D (distilled)"}


def test_png_and_svg_export():
    chart = response_chart(sample())
    assert chart_png(chart)[:8] == b"\x89PNG\r\n\x1a\n"
    assert chart_svg(chart).lstrip().startswith("<svg")


def test_behaviour_chart_stacks_the_mix_per_class():
    from rdpt_core.behaviours import behaviour_mix
    from rdpt_core.charts import behaviour_chart

    table = sample().assign(text=["A.", " Wait, check.", " Alternatively, B.", " D."])
    spec = behaviour_chart(behaviour_mix(table)).to_dict()
    rows = next(iter(spec["datasets"].values()))
    assert {(r["cls"], r["behaviour"]) for r in rows if r["share"] > 0} == {
        ("Teacher", "execution"), ("Shared", "reflection"), ("Student", "transition"), ("Boosted", "execution")}
