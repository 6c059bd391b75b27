import re

import numpy as np
import pandas as pd

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

    small.to_parquet(tmp_path / "s.parquet")
    for min_n, thin in (("1", False), ("4", True)):
        out = tmp_path / f"r{min_n}.html"
        assert main(["report", "--scores", str(tmp_path / "s.parquet"), "--min-n", min_n, "--out", str(out)]) == 0
        text = out.read_text()
        assert 'data-chart="curves"><svg' in text and ("Fewer than" in text) is thin
