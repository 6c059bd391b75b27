import pandas as pd
import pytest

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


# ---- sizing, legends and ticks for the app (see rdpt_core.charts' docstring; measured in a
# browser with tests/chart_geometry.py) --------------------------------------------------------

STRATEGY_NAMES = ["max_teacher_count", "longest", "max_teacher_proportion", "min_teacher_count", "random", "grape"]


def corpus(n_responses=40, n_actions=8, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = [{"record_id": f"r{r}", "question_id": f"q{r % 5}", "action_index": j, "text": f" step {j}.",
             "kind": "sentence", "correct": r % 3 != 0, "cum_tokens": 600 * (j + 1),
             "p_teacher": rng.uniform(), "p_student": rng.uniform(), "p_distilled": rng.uniform()}
            for r in range(n_responses) for j in range(rng.integers(3, n_actions + 1))]
    return classify_table(pd.DataFrame(rows), 0.1, 0.1)


def encodings(spec):
    """Every (mark, encoding) of a spec, through layers, concats and facets."""
    if "encoding" in spec or "mark" in spec:
        yield spec.get("mark"), spec.get("encoding", {})
    for key in ("layer", "hconcat", "vconcat", "concat"):
        for child in spec.get(key, []):
            yield from encodings(child)
    if isinstance(spec.get("spec"), dict):
        yield from encodings(spec["spec"])


def mark_type(mark):
    return mark["type"] if isinstance(mark, dict) else mark


def action_axes(spec):
    return [enc["x"] for _, enc in encodings(spec) if enc.get("x", {}).get("field") in ("action_index", "x0")
            and "axis" in enc["x"]]


def test_every_chart_asks_for_svg_and_sizes_for_the_apps_width_rule():
    import altair as alt

    from rdpt_core import charts as c
    from rdpt_core import stats
    from rdpt_core.behaviours import behaviour_mix

    table = corpus()
    curves = stats.position_curves(table, "cls", 1)
    picks = pd.DataFrame({"strategy": STRATEGY_NAMES * 3, "question_id": "q", "n_tokens": range(18),
                          "teacher_share": 0.5})
    matrix = pd.DataFrame(0.5, index=STRATEGY_NAMES, columns=STRATEGY_NAMES)
    hist = pd.DataFrame({"source": ["a", "b"], "bin_start": [0.0, 0.0], "bin_end": [10.0, 10.0], "count": [1, 2]})
    points = pd.DataFrame({"source": ["a", "b"], "question_id": ["1", "1"], "mean_length": [5.0, 6.0],
                           "solve_rate": [0.5, 0.5]})
    single = [c.response_chart(table[table.record_id == "r1"]), c.position_chart(curves), c.counts_chart(curves),
              c.mean_probability_chart(stats.mean_probability_curves(table, 1)),
              c.behaviour_chart(behaviour_mix(table)),
              c.agreement_chart(matrix), c.length_histogram_chart(hist), c.length_difficulty_chart(points)]
    composite = [c.beta_histograms(stats.proportions_by_beta(table, 0.1, [0.05, 0.1])), c.selection_chart(picks)]
    for chart in single + composite:
        spec = chart.to_dict()
        assert spec["usermeta"] == {"embedOptions": {"renderer": "svg"}}
        is_composite = isinstance(chart, (alt.FacetChart, alt.HConcatChart, alt.VConcatChart, alt.ConcatChart))
        assert spec["autosize"]["type"] == ("pad" if is_composite else "fit-x")
        if not is_composite:  # fit-x: "height" is the plot's own height
            height = spec["height"]["step"] * len(STRATEGY_NAMES) if isinstance(spec["height"], dict) else spec["height"]
            assert height >= 160
        for _, enc in encodings(spec):
            legend = enc.get("color", {}).get("legend") or {}
            assert legend.get("orient") != "bottom"


def test_corpus_charts_use_integer_ticks_and_a_shared_x_domain():
    from rdpt_core import stats
    from rdpt_core.charts import counts_chart, mean_probability_chart, position_chart, response_chart

    table = corpus()
    curves, means = stats.position_curves(table, "cls", 1), stats.mean_probability_curves(table, 1)
    domain = (0, 9)
    specs = [position_chart(curves, stats.token_marks(table, 1000), x_domain=domain).to_dict(),
             counts_chart(curves, x_domain=domain).to_dict(), mean_probability_chart(means, x_domain=domain).to_dict()]
    for spec in specs:
        xs = action_axes(spec)
        assert xs and all(x["axis"]["format"] == "d" and x["axis"]["tickMinStep"] == 1 for x in xs)
        assert all(x["scale"]["domain"] == [0.0, 9.0] for _, enc in encodings(spec)
                   for x in [enc.get("x")] if x and x.get("field") == "action_index")
    default = counts_chart(curves).to_dict()  # default: the data's own range, as before
    assert "scale" not in default["encoding"]["x"] and default["height"] >= 160
    (x,) = action_axes(response_chart(table[table.record_id == "r1"]).to_dict())
    assert x["axis"]["format"] == "d" and x["axis"]["tickMinStep"] == 1


def test_position_chart_legend_comes_from_the_lines_not_the_pale_bands():
    from rdpt_core import stats
    from rdpt_core.charts import position_chart

    spec = position_chart(stats.position_curves(corpus(), "cls", 1)).to_dict()
    band, line = spec["layer"][:2]
    assert mark_type(band["mark"]) == "area" and band["encoding"]["color"]["legend"] is None
    assert mark_type(line["mark"]) == "line" and line["encoding"]["color"]["legend"]["orient"] == "top"
    assert line["encoding"]["color"]["scale"]["domain"] == ["Shared", "Teacher", "Student", "Boosted"]
    assert spec["resolve"]["legend"]["color"] == "independent"  # else the band's None hides the merged legend


def test_response_band_tooltip_shows_probabilities_deltas_class_and_snippet():
    spec = response_chart(sample()).to_dict()
    tips = {t.get("title", t["field"]): t for t in spec["layer"][0]["encoding"]["tooltip"]}
    for name in ("p_T", "p_S", "p_D", "Δ_TS", "Δ_TD", "Δ_SD"):
        assert tips[name]["format"] == ".3f"
    assert {"class", "snippet"} <= set(tips)
    bands = next(d for d in spec["datasets"].values() if "x0" in d[0])
    assert bands[0]["Δ_TS"] == 0.9 - 0.1 and bands[2]["Δ_SD"] == 0.9 - 0.5
    # without a distilled model: only Δ_TS
    two = response_chart(sample().drop(columns=["p_distilled", "cls"]), column="cls3").to_dict()
    titles = {t.get("title") for t in two["layer"][0]["encoding"]["tooltip"]}
    assert "Δ_TS" in titles and "Δ_TD" not in titles and "p_D" not in titles


def test_selection_chart_names_every_strategy_on_the_box_plot_axis():
    from rdpt_core.charts import selection_chart

    picks = pd.DataFrame({"strategy": STRATEGY_NAMES * 4, "question_id": "q", "n_tokens": range(24),
                          "teacher_share": 0.25})
    spec = selection_chart(picks).to_dict()
    left, right = spec["hconcat"]
    for panel in (left, right):
        assert mark_type(panel["mark"]) == "boxplot"
        y = panel["encoding"]["y"]
        assert y["field"] == "strategy" and y["type"] == "nominal" and y["sort"] == STRATEGY_NAMES
        assert panel["encoding"]["x"]["type"] == "quantitative"  # horizontal boxes
    assert left["encoding"]["y"]["axis"]["labelOverlap"] is False and left["encoding"]["y"]["axis"]["labelLimit"] >= 200
    assert sum(panel["width"] for panel in spec["hconcat"]) + 260 <= 950


def test_agreement_chart_sizes_cells_by_step_and_keeps_every_label():
    from rdpt_core.charts import agreement_chart

    matrix = pd.DataFrame(0.5, index=STRATEGY_NAMES, columns=STRATEGY_NAMES)
    spec = agreement_chart(matrix).to_dict()
    assert spec["height"] == {"step": 40}
    cells, text = spec["layer"]
    assert text["encoding"]["text"]["format"] == ".2f"
    for channel in ("x", "y"):
        enc = cells["encoding"][channel]
        assert enc["sort"] == STRATEGY_NAMES and enc["axis"]["labelOverlap"] is False
    assert agreement_chart(matrix, size=300).to_dict()["height"] == {"step": 50}  # old "size": overall side


def test_beta_histograms_facet_class_rows_by_beta_columns_within_the_page():
    from rdpt_core.charts import beta_cell_width, beta_histograms
    from rdpt_core.stats import histogram

    props = pd.DataFrame({"record_id": [f"r{i}" for i in range(30)] * 2, "cls": ["Teacher", "Student"] * 30,
                          "proportion": [i / 29 for i in range(30)] * 2, "beta": 0.1})
    props = pd.concat([props, props.assign(beta=0.2)], ignore_index=True)
    spec = beta_histograms(props, suggested=0.2, bins=5).to_dict()
    assert spec["facet"]["row"]["field"] == "cls" and spec["facet"]["row"]["sort"] == ["Teacher", "Student"]
    assert spec["facet"]["column"]["sort"] == ["β = 0.10", "β = 0.20 (suggested)"]
    inner = spec["spec"]
    assert inner["encoding"]["color"]["legend"] is None and "opacity" not in inner["mark"]
    rows = next(iter(spec["datasets"].values()))
    assert len(rows) == 2 * 2 * 5  # pre-counted: (β, class, bin)
    teacher = [r["count"] for r in rows if r["cls"] == "Teacher" and r["beta"] == 0.1]
    values = props[(props.cls == "Teacher") & (props.beta == 0.1)]["proportion"]
    assert teacher == list((histogram(values, 5) * len(values)).round().astype(int))
    # the whole grid fits a ~950 px column: 4 β at the full cell width, narrower cells for more
    for n in (1, 4, 6, 10):
        assert 150 + n * (beta_cell_width(n) + 20) <= 950 or beta_cell_width(n) == 60
    assert beta_cell_width(4) >= 150 and beta_cell_width(8) < beta_cell_width(4)
    # the rows together stay >= 150 px high however few classes there are
    for n_classes in (1, 2, 3, 4):
        one = props.assign(cls=["Teacher", "Student", "Boosted", "Shared"][:n_classes] * (len(props) // n_classes)
                           + ["Teacher"] * (len(props) % n_classes))
        facet = beta_histograms(one).to_dict()
        assert len(facet["facet"]["row"]["sort"]) * facet["spec"]["height"] >= 150 + 50 * (n_classes == 1)


def test_source_legends_sit_at_the_side_and_leave_the_plot_its_height():
    from rdpt_core.charts import length_difficulty_chart, length_histogram_chart

    hist = pd.DataFrame({"source": ["a" * 40, "b"], "bin_start": [0.0, 0.0], "bin_end": [10.0, 10.0], "count": [1, 2]})
    points = pd.DataFrame({"source": ["a", "b"], "question_id": ["1", "1"], "mean_length": [5.0, 6.0],
                           "solve_rate": [0.5, 0.5]})
    for chart in (length_histogram_chart(hist), length_difficulty_chart(points)):
        spec = chart.to_dict()
        assert spec["height"] >= 220 and spec["autosize"]["type"] == "fit-x"
        for _, enc in encodings(spec):
            assert enc["color"]["legend"]["orient"] == "right" and enc["color"]["legend"]["labelLimit"] <= 300


def test_importing_charts_leaves_altairs_data_transformers_alone():
    import subprocess
    import sys

    code = ("import altair as alt; before = (alt.data_transformers.active, dict(alt.data_transformers.options)); "
            "import rdpt_core.charts; "
            "assert (alt.data_transformers.active, dict(alt.data_transformers.options)) == before, before")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_large_charts_serialise_without_touching_the_global_row_guard():
    import altair as alt
    import numpy as np

    from rdpt_core.charts import beta_histograms, counts_chart

    before = (alt.data_transformers.active, dict(alt.data_transformers.options))
    rng = np.random.default_rng(1)
    props = pd.DataFrame({"record_id": [f"r{i}" for i in range(1500)] * 4,
                          "cls": np.repeat(["Shared", "Teacher", "Student", "Boosted"], 1500),
                          "proportion": rng.uniform(size=6000), "beta": 0.1})
    assert len(props) == 6000
    chart = beta_histograms(props, 0.1)
    assert sum(r["count"] for r in next(iter(chart.to_dict()["datasets"].values()))) == 6000
    assert chart_svg(chart).lstrip().startswith("<svg")
    # a chart that embeds > 5,000 rows as they are
    curves = pd.DataFrame({"answer": ["correct", "incorrect"] * 3000, "action_index": np.repeat(range(3000), 2),
                           "n": 10})
    big = counts_chart(curves)
    assert len(next(iter(big.to_dict()["datasets"].values()))) == 6000
    assert chart_svg(big).lstrip().startswith("<svg")
    assert (alt.data_transformers.active, dict(alt.data_transformers.options)) == before
    with pytest.raises(alt.MaxRowsError):  # the guard itself still stands for everyone else
        alt.Chart(pd.DataFrame({"x": range(6000)})).mark_point().encode(x="x:Q").to_dict()


# ---- thin positions (fewer than min-n responses): drawn faded, never dropped -------------------

def small_corpus(n_responses=4, n_actions=3):
    """Every response has n_actions actions: with min-n 10, every position is thin."""
    import numpy as np

    rng = np.random.default_rng(3)
    rows = [{"record_id": f"r{r}", "question_id": "q", "action_index": j, "text": " x.", "kind": "sentence",
             "correct": r % 2 == 0, "p_teacher": rng.uniform(), "p_student": rng.uniform(),
             "p_distilled": rng.uniform()} for r in range(n_responses) for j in range(n_actions)]
    return classify_table(pd.DataFrame(rows), 0.1, 0.1)


def layers_with(spec, predicate):
    return [(mark, enc) for mark, enc in encodings(spec) if predicate(mark, enc)]


def svg_texts(chart):
    import re

    return re.findall(r"<text[^>]*>([^<]*)</text>", chart_svg(chart))


def test_thin_positions_are_faded_hollow_points_keyed_by_enough_and_named_in_the_legend():
    from rdpt_core import stats
    from rdpt_core.charts import THIN_OPACITY, mean_probability_chart, position_chart

    table = corpus(n_responses=40, n_actions=8)  # long positions rest on few responses
    curves, means = stats.position_curves(table, "cls", 10), stats.mean_probability_curves(table, 10)
    assert curves["enough"].any() and not curves["enough"].all()
    for chart, value in ((position_chart(curves, min_n=10), "share"), (mean_probability_chart(means, min_n=10), "p")):
        spec = chart.to_dict()
        faded = layers_with(spec, lambda m, e: mark_type(m) == "point"
                            and e.get("opacity", {}).get("field") == "enough")
        assert len(faded) == 1
        mark, enc = faded[0]
        assert mark["filled"] is False
        assert enc["opacity"]["scale"] == {"domain": [True, False], "range": [1.0, THIN_OPACITY]}
        assert THIN_OPACITY <= 0.5
        lines = layers_with(spec, lambda m, e: mark_type(m) == "line")
        assert sorted(m.get("opacity", 1) for m, _ in lines) == [THIN_OPACITY, 1]  # the whole curve faded + solid
        # as drawn: per series, the faded line passes every position, the solid one only those
        # with enough responses (one unbroken run here), and each thin row is one hollow point
        data = curves if value == "share" else means
        per_series = data.groupby(["cls", "answer"] if value == "share" else ["role"])["enough"]
        faded_lines, solid_lines, points = drawn_curves(chart_svg(chart))
        assert sorted(faded_lines) == sorted((len(g), 1) for _, g in per_series)
        assert sorted(solid_lines) == sorted((int(g.sum()), 1) for _, g in per_series)
        assert points == int((~data["enough"]).sum())
        assert "fewer than 10 responses: faded" in svg_texts(chart)  # the legend says so


def drawn_curves(svg: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
    """From a rendered SVG: (vertices, runs) of each faded and each solid line mark, and the
    number of point marks (legend symbols excluded)."""
    import re

    faded, solid = [], []
    for attrs in re.findall(r'<path ([^>]*aria-roledescription="line mark"[^>]*)/>', svg):
        path = re.search(r' d="([^"]*)"', attrs).group(1)
        shape = (len(re.findall("[ML]", path)), path.count("M"))
        (faded if 'opacity="0.3"' in attrs else solid).append(shape)
    points = len(re.findall(r'<path [^>]*aria-roledescription="point"', svg))
    return faded, solid, points


def test_a_chart_without_thin_positions_has_no_faded_layer():
    from rdpt_core import stats
    from rdpt_core.charts import position_chart

    spec = position_chart(stats.position_curves(corpus(), "cls", 1), min_n=1).to_dict()
    assert not layers_with(spec, lambda m, e: "opacity" in e)
    assert [mark_type(m) for m, _ in encodings(spec)] == ["area", "line"]


def test_counts_chart_draws_the_min_n_level():
    from rdpt_core import stats
    from rdpt_core.charts import counts_chart

    chart = counts_chart(stats.position_curves(small_corpus(), "cls", 10), min_n=10)
    rules = [d for d in chart.to_dict()["datasets"].values() if d and "label" in d[0]]
    assert rules and rules[0][0]["n"] == 10
    assert "min-n = 10: fewer responses are faded" in svg_texts(chart)


def test_small_corpus_charts_label_each_action_index_once():
    from rdpt_core import stats
    from rdpt_core.charts import counts_chart, mean_probability_chart, position_chart

    table = small_corpus()
    curves = stats.position_curves(table, "cls", 10)
    for chart in (position_chart(curves, min_n=10), counts_chart(curves, min_n=10),
                  mean_probability_chart(stats.mean_probability_curves(table, 10), min_n=10),
                  response_chart(table[table.record_id == "r0"])):
        texts = svg_texts(chart)
        ticks = texts[:texts.index("action index")]
        assert ticks == ["0", "1", "2"], ticks


def test_chart_builders_leave_altairs_debug_mode_as_they_found_it_and_specs_still_validate():
    """Builders skip Altair's per-object validation (slow on big inline data) only while they
    run; the finished spec is still validated by ``to_dict``."""
    import altair.utils.schemapi as schemapi

    from rdpt_core import charts

    before = schemapi.DEBUG_MODE
    table = pd.DataFrame({"record_id": ["r"] * 3, "action_index": [0, 1, 2], "text": ["a", "b", "c"],
                          "cls": ["Teacher", "Student", "Shared"], "p_teacher": [0.9, 0.1, 0.5],
                          "p_student": [0.1, 0.9, 0.5], "p_distilled": [0.8, 0.7, 0.6]})
    chart = charts.response_chart(table)
    assert schemapi.DEBUG_MODE == before
    chart.to_dict(validate=True)  # raises on an invalid spec
    broken = chart.copy()
    broken.layer[0].mark = "no-such-mark"
    with pytest.raises(Exception):
        broken.to_dict(validate=True)


def test_position_chart_draws_the_series_it_is_given_colours_for():
    from rdpt_core import stats
    from rdpt_core.charts import position_chart

    curves = stats.position_curves(corpus(), "cls", 1).replace({"cls": {"Teacher": "steps", "Boosted": "narrative"}})
    spec = position_chart(curves, colors={"narrative": "#D55E00", "steps": "#0072B2", "Missing": "#000000"}).to_dict()
    scales = [enc["color"]["scale"] for _, enc in encodings(spec) if "scale" in enc.get("color", {})]
    assert scales and all(s == {"domain": ["narrative", "steps"], "range": ["#D55E00", "#0072B2"]} for s in scales)
    rows = [r for d in spec["datasets"].values() for r in d if "cls" in r]
    assert {r["cls"] for r in rows} == {"narrative", "steps"}  # Shared and Student are not drawn


def test_response_chart_names_the_best_teacher_when_there_are_several():
    two = sample().assign(p_teacher_a=0.5, p_teacher_b=0.4)
    models = {r["model"] for d in response_chart(two).to_dict()["datasets"].values() for r in d if "model" in r}
    assert models == {"p_T (best teacher)", "p_S (student)", "p_D (distilled)"}
