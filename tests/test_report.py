import re

import numpy as np
import pandas as pd
import pytest

from rdpt_core.report import build_report


def synthetic(n_resp=30, n_act=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_resp):
        for j in range(n_act):
            rows.append({"record_id": f"r{r}", "question_id": f"q{r % 5}", "action_index": j, "kind": "sentence",
                         "text": f" Step {j} <b>of</b> r{r}." if j else "<script>alert(1)</script>",
                         "correct": r % 3 != 0, "p_teacher": rng.random(), "p_student": rng.random(),
                         "p_distilled": rng.random(), "cum_tokens": 500 * (j + 1)})
    return pd.DataFrame(rows)


def as_scored(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every column of ``score``'s action table (the CLI refuses anything less):
    offsets from the texts, one token per action, sum_logp = log p."""
    from rdpt_core.scoring import BASE_COLUMNS, role_columns

    lengths = table["text"].str.len()
    end = lengths.groupby(table["record_id"]).cumsum()
    filled = table.assign(start=end - lengths, end=end, source="s", n_chars=lengths)
    for role in ("teacher", "student", "distilled"):
        filled = filled.assign(**{f"n_tokens_{role}": 1, f"sum_logp_{role}": np.log(filled[f"p_{role}"]),
                                  f"truncated_{role}": False, f"straddle_{role}": False})
    columns = BASE_COLUMNS + [c for role in ("teacher", "student", "distilled") for c in role_columns(role)]
    return filled[[*columns, "cum_tokens"]]


def test_report_is_self_contained_with_every_section_and_escaped_text():
    page = build_report(synthetic(), 0.1, 0.1, {"teacher": "T <x>"}, n_examples=2)
    assert page.startswith("<!doctype html>")
    assert "<script" not in page.lower()  # no JS at all, and the response's script tag is text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "T &lt;x&gt;" in page
    charts = re.findall(r'data-chart="(\w+)"><svg', page)
    assert charts == ["curves", "counts", "means", "beta", "behaviours"]
    assert "http://" not in page.replace("http://www.w3.org", "")  # nothing fetched from a network
    for heading in ("Settings", "Class share by position", "Correct vs incorrect responses", "Choosing β",
                    "Behaviours per class", "Example responses"):
        assert f"<h2>{heading}</h2>" in page
    assert page.count('class="rdpt-response"') == 2


def test_report_on_the_scored_math500_subset():
    from conftest import REPO

    scores = pd.read_parquet(REPO / "data" / "math500_subset" / "scores.parquet")
    assert set(scores["correct"]) == {True, False}
    page = build_report(scores, 0.1, 0.15, {"data": "MATH500 subset"}, min_n=5, n_examples=2)
    assert re.findall(r'data-chart="(\w+)"><svg', page) == ["curves", "counts", "means", "beta", "behaviours"]
    assert "(correct)</h3>" in page and "(incorrect)</h3>" in page


def test_report_settings_name_the_models_and_segmenter_stored_with_the_scores(tmp_path):
    table = synthetic(n_resp=12, n_act=4)
    table.attrs.update(models={"teacher": "smollm2", "student": "gemma"}, segmenter="spacy")
    table.to_parquet(tmp_path / "s.parquet")  # attrs survive Parquet
    page = build_report(pd.read_parquet(tmp_path / "s.parquet"), 0.1, 0.1, min_n=2, n_examples=1)
    for cell in ("model (teacher)</td>", "smollm2</td>", "model (student)</td>", "segmenter</td>", "spacy</td>"):
        assert cell in page


def test_selection_and_sources_sections_appear_when_their_data_is_given(tmp_path):
    from conftest import LAB, REPO
    from test_sources import table as source_table

    from rdpt_core.cli import main
    from rdpt_core.selection import response_features
    from rdpt_core.store import load_corpus

    actions = load_corpus(LAB / "teacher_corpus").actions("paper")
    features = response_features(actions, 0.1)
    page = build_report(None, 0.1, 0.1, selection=features, sources=source_table())
    assert re.findall(r'data-chart="(\w+)"><svg', page) == ["selection", "agreement", "lengths", "difficulty"]
    assert "<h2>Teacher-guided data selection</h2>" in page and "<h2>Distillation sources</h2>" in page
    assert "Class share by position" not in page and "<script" not in page.lower()
    assert f"{features.question_id.nunique()} questions, {len(features)} candidate responses" in page
    # the CLI adds the selection section by itself: the teacher samples have several answers per question
    actions.to_parquet(tmp_path / "t.parquet")
    source_table().to_csv(tmp_path / "src.csv", index=False)
    assert main(["report", "--scores", str(tmp_path / "t.parquet"), "--sources", str(tmp_path / "src.csv"),
                 "--out", str(tmp_path / "r.html")]) == 0
    charts = re.findall(r'data-chart="(\w+)"><svg', (tmp_path / "r.html").read_text())
    assert charts[-4:] == ["selection", "agreement", "lengths", "difficulty"] and "curves" in charts
    # the MATH500 subset has one answer per question: the CLI adds no selection section there
    from rdpt_core.selection import has_candidates

    scores = pd.read_parquet(REPO / "data" / "math500_subset" / "scores.parquet")
    assert has_candidates(actions) and not has_candidates(scores)


def test_a_four_response_corpus_still_gets_its_curves_with_the_thin_positions_named(tmp_path):
    small = synthetic(n_resp=4, n_act=3)  # r0, r3 incorrect; r1, r2 correct: no position has 10 responses
    page = build_report(small, 0.1, 0.1, n_examples=1)
    assert re.findall(r'data-chart="(\w+)"><svg', page)[:3] == ["curves", "counts", "means"]
    assert "No position has" not in page
    assert ("Fewer than 10 responses (drawn all the same; read them with care) at positions "
            "0–2 (correct responses); 0–2 (incorrect responses).") in page
    # the correct-vs-incorrect table counts responses and says so; 2 vs 2 responses: no test
    assert "responses_correct" in page and "mean_share_correct_responses" in page and "k_correct" not in page
    assert "Unit: responses." in page
    assert "no test: 2 correct responses and 2 incorrect responses (fewer than 5)" in page
    # the CLI passes --min-n through: with 1, no position is thin
    from rdpt_core.cli import main

    as_scored(small).to_parquet(tmp_path / "s.parquet")
    for min_n, thin in (("1", False), ("4", True)):
        out = tmp_path / f"r{min_n}.html"
        assert main(["report", "--scores", str(tmp_path / "s.parquet"), "--min-n", min_n, "--out", str(out)]) == 0
        text = out.read_text()
        assert 'data-chart="curves"><svg' in text and ("Fewer than" in text) is thin


# ---- degenerate action tables: the report always builds and says what it cannot show ---------

SECTIONS = ("positions", "means", "correct", "beta", "behaviours", "examples")


def missing_sections(page: str) -> dict[str, str]:
    """``data-missing`` section name → the reason the report gives, for every section it could not draw."""
    return dict(re.findall(r'<p class="muted missing" data-missing="(\w+)">([^<]+)</p>', page))


def degenerate(shape: str) -> pd.DataFrame:
    table = synthetic(n_resp=6, n_act=4)
    if shape == "one class":  # every action Shared at every β
        return table.assign(p_teacher=0.5, p_student=0.5, p_distilled=0.5)
    if shape == "zero rows":
        return table.iloc[:0]
    if shape == "all-NaN probabilities":
        return table.assign(p_teacher=float("nan"), p_student=float("nan"), p_distilled=float("nan"))
    assert shape == "one action"
    return table.iloc[:1]


@pytest.mark.parametrize("shape, missing", [
    ("one class", {"beta"}),
    ("zero rows", set(SECTIONS)),
    ("all-NaN probabilities", {"positions", "means", "correct", "beta", "behaviours"}),
    ("one action", {"beta"}),
])
def test_degenerate_tables_still_give_a_report_that_says_why_a_section_is_missing(shape, missing):
    page = build_report(degenerate(shape), 0.1, 0.1, n_examples=2)
    for heading in ("Settings", "Class share by position", "Mean probability by position",
                    "Correct vs incorrect responses", "Choosing β", "Behaviours per class", "Example responses"):
        assert f"<h2>{heading}</h2>" in page
    reasons = missing_sections(page)
    assert set(reasons) == missing
    assert all(len(reason.strip()) > 20 for reason in reasons.values())  # a sentence, not a blank
    drawn = re.findall(r'data-chart="(\w+)"><svg', page)
    assert ("curves" in drawn) is ("positions" not in missing) and ("means" in drawn) is ("means" not in missing)
    assert ("behaviours" in drawn) is ("behaviours" not in missing)


def test_the_cli_writes_a_report_for_an_empty_action_table(tmp_path):
    from rdpt_core.cli import main

    as_scored(degenerate("zero rows")).to_parquet(tmp_path / "empty.parquet")
    out = tmp_path / "r.html"
    assert main(["report", "--scores", str(tmp_path / "empty.parquet"), "--out", str(out)]) == 0
    assert "0 responses, 0 actions" in out.read_text() and missing_sections(out.read_text())


def chart_svg_of(page: str, name: str) -> str:
    return re.search(rf'data-chart="{name}">(<svg.*?</svg>)', page, re.S).group(1)


def test_a_four_response_report_draws_every_thin_position_as_a_faded_point():
    from rdpt_core import stats
    from rdpt_core.provenance import classify_table

    small = synthetic(n_resp=4, n_act=3)
    page = build_report(small, 0.1, 0.1, n_examples=1)
    curves = stats.position_curves(classify_table(small, 0.1, 0.1), "cls", 10)
    assert not curves["enough"].any()
    drawn = chart_svg_of(page, "curves")
    points = re.search(r'<g class="mark-symbol role-mark[^"]*"[^>]*>(.*?)</g>', drawn, re.S).group(1)
    assert points.count("<path") == len(curves[curves.answer.isin(["correct", "incorrect"])])
    assert sorted(set(curves.action_index)) == [0, 1, 2]
    assert "fewer than 10 responses: faded" in drawn and "min-n = 10" in chart_svg_of(page, "counts")
    assert "fewer than 10 responses: faded" in chart_svg_of(page, "means")


def test_examples_include_responses_of_unknown_correctness():
    table = synthetic(n_resp=3, n_act=2).assign(correct=None)
    page = build_report(table, 0.1, 0.1, n_examples=2)
    assert re.findall(r"<h3>(r\d) \((\w+)\)</h3>", page) == [("r0", "unknown"), ("r1", "unknown")]
    assert "examples" not in missing_sections(page)


def test_the_beta_tuning_page_explains_a_one_class_corpus_instead_of_failing():
    """The app's β page on the report's "one class" shape (every action Shared at every β)."""
    from test_app import page, with_dataset

    from rdpt_core.backends.base import TokenScores
    from rdpt_core.records import Record
    from rdpt_core.scoring import ScoredCorpus

    records = [Record(f"r{i}", "q", "p", "One step. Two steps.", True, "s") for i in range(3)]
    n = len(records[0].response)
    same = TokenScores(np.arange(n), np.stack([np.arange(n), np.arange(n) + 1], 1), np.full(n, -0.5),
                       np.zeros(n, bool), np.zeros(n, bool))  # every model agrees: all Shared
    corpus = ScoredCorpus(records, {role: {r.record_id: same for r in records} for role in ("teacher", "student",
                                                                                           "distilled")},
                          (), {"teacher": "t", "student": "s", "distilled": "d"})
    at = page("beta_tuning", with_dataset(records, corpus, "one class")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Only one class (Shared)" in i.value for i in at.info)
    assert not at.success and len(at.get("vega_lite_chart")) == 1  # the histograms, no suggestion


def _teacher_counts(page: str) -> dict[str, str]:
    """Label → Teacher actions of the report's teacher-split table (its first two cells a row)."""
    section = page[page.index("Which teacher"):page.index("Mean probability by position")]
    return dict(re.findall(r"<tr>\s*<td>([^<]+)</td>\s*<td>(\d+)</td>", section))


def test_a_several_teacher_report_says_which_teacher_at_gamma():
    # two responses; per action p of teachers a and <b>, student, distilled. Teacher actions (β 0.1):
    # r1 #0 (a by 0.6), r1 #1 (<b> by 0.15), r2 #0 (a by 0.5). At γ = 0.1: a 2, <b> 1; at γ = 0.2:
    # a 2, several 1. r2 #1 is Shared.
    table = pd.DataFrame({
        "record_id": ["r1", "r1", "r2", "r2"], "question_id": ["q1", "q1", "q2", "q2"], "action_index": [0, 1, 0, 1],
        "text": ["A.", " B.", " C.", " D."], "kind": "sentence", "correct": [True, True, False, False],
        "n_tokens_student": 2, "cum_tokens": [2, 4, 2, 4],
        "p_teacher_a": [0.9, 0.6, 0.8, 0.3], "p_teacher_<b>": [0.3, 0.75, 0.3, 0.3],
        "p_student": [0.1, 0.2, 0.1, 0.3], "p_distilled": [0.6, 0.5, 0.6, 0.3],
    })
    page = build_report(table, 0.1, 0.1, title="two teachers")
    assert "<h2>Which teacher (γ = 0.10)</h2>" in page and 'data-chart="teacher-curves"' in page
    assert re.search(r"<td>gamma</td>\s*<td>0.100</td>", page)
    assert _teacher_counts(page) == {"a": "2", "&lt;b&gt;": "1"} and "p_teacher_<b>" not in page
    assert _teacher_counts(build_report(table, 0.1, 0.1, gamma=0.2)) == {"Several teachers": "1", "a": "2"}


def test_the_same_report_is_the_same_bytes_later_in_the_process_with_unique_clip_ids():
    """vl-convert numbers clip paths on from every chart a process rendered; reports and SVG
    downloads renumber them, so rebuilding gives identical bytes, and the ids of a report's
    several inline SVGs never collide (a clip-path would then point into another chart)."""
    from rdpt_core.charts import chart_svg, response_chart

    table = pd.DataFrame({"record_id": ["r1"] * 3 + ["r2"] * 3, "question_id": "q", "action_index": [0, 1, 2] * 2,
                          "text": ["A.", " B.", " C."] * 2, "kind": "sentence", "correct": [True] * 3 + [False] * 3,
                          "n_tokens_student": 2, "cum_tokens": [2, 4, 6] * 2, "p_teacher": [0.9, 0.5, 0.2] * 2,
                          "p_student": [0.1, 0.5, 0.6] * 2, "p_distilled": [0.5, 0.5, 0.5] * 2})
    first = build_report(table, 0.1, 0.1)
    one = table[table.record_id == "r1"].assign(cls="Teacher")
    svg = chart_svg(response_chart(one))
    assert chart_svg(response_chart(one)) == svg and 'id="clip1"' in svg  # a download: numbered from 1
    assert build_report(table, 0.1, 0.1) == first
    ids = re.findall(r'<clipPath id="clip(\d+)"', first)
    used = set(re.findall(r'clip-path="url\(#clip(\d+)\)"', first))
    assert len(ids) == len(set(ids)) > 3 and used <= set(ids)
    assert sorted(map(int, ids)) == list(range(1, len(ids) + 1))
