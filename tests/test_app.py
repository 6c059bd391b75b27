"""Streamlit AppTest for every page (no browser): widgets, live α/β, uploads, saved datasets,
links, escaping. Every test starts the app as a user does (``app.py``) and switches page."""

import json
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import DEMO, REPO
from rdpt_core.backends.base import TokenScores
from rdpt_core.provenance import classify_table
from rdpt_core.records import Record
from rdpt_core.render import class_counts
from rdpt_core.scoring import ScoredCorpus
from rdpt_core.store import load_corpus

TIMEOUT = 120


def app(**query: str) -> AppTest:
    """The app, not yet run, opened with an address-bar query (``?dataset=…&record=…``)."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update(query)
    return at


def page(name: str, at: AppTest | None = None, **query: str) -> AppTest:
    """Open the app (running its first page) and switch to ``pages/<name>_page.py``, not yet run."""
    at = (at if at is not None else app(**query)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at.switch_page(f"pages/{name}_page.py")


def with_dataset(records, corpus=None, name="test data") -> AppTest:
    """The app on a given working dataset (as if the user had loaded it)."""
    at = app()
    at.session_state["dataset_id"], at.session_state["dataset_name"] = "test-data-00000000", name
    at.session_state["records"], at.session_state["corpus"] = records, corpus
    at.session_state["origins"] = {}
    at.session_state["record_id"] = records[0].record_id if records else None
    return at


def button(at: AppTest, key: str):
    return next(b for b in at.button if b.key == key)


def paste(at: AppTest, prompt: str, response: str) -> AppTest:
    """Add one trajectory on the Trajectories page's Paste tab, as a user does."""
    at.text_area(key="paste_prompt").input(prompt)
    at.text_area(key="paste_response").input(response)
    return button(at, "paste_add").click().run()


def legend_counts(at: AppTest) -> dict[str, int]:
    html = "".join(h.proto.body for h in at.html)
    return {c: int(n) for c, n in re.findall(r'data-cls="(\w+)" data-count="(\d+)"', html)}


def test_home_shows_the_demo_with_a_highlighted_response():
    at = app().run()
    assert not at.exception
    body = "".join(h.proto.body for h in at.html)
    demo = load_corpus(DEMO)
    rid = at.session_state["record_id"]
    n_actions = sum(1 for a in demo.actions("paper").record_id if a == rid)
    assert n_actions >= 1 and body.count('class="rdpt-act') == n_actions
    assert any(b.label == "Open the demo in the explorer" for b in at.button)
    assert "Demo" in at.session_state["dataset_name"]
    # the scored MATH500 subset (real text) is one click away and opens in the explorer
    button(at, "home_open_math500-subset").click().run()
    assert not at.exception and at.session_state["dataset_id"] == "math500-subset"
    assert len(at.session_state["records"]) == 20 and len(at.get("vega_lite_chart")) == 1
    # and so are the AIME24 sources: the Sources page on its bundled responses
    at = app().run()
    button(at, "home_open_sources").click().run()
    assert not at.exception and at.radio(key="src_data").value.startswith("Bundled: AIME24")
    assert any("responses from 3 source(s)" in c.value for c in at.caption)


def record_where_beta_matters(table, low=0.01, high=0.1):
    """A demo record whose class counts differ between two β (found with rdpt_core)."""
    for rid, rows in table.groupby("record_id", sort=False):
        if class_counts(classify_table(rows, 0.1, high)) != class_counts(classify_table(rows, 0.1, low)):
            return rid, rows
    pytest.fail("no demo record changes class counts between the two β")


def test_explorer_recolours_when_beta_moves_and_matches_rdpt_core():
    rid, rows = record_where_beta_matters(load_corpus(DEMO).actions("paper"))
    at = page("explorer", record=rid).run()
    assert not at.exception
    before = legend_counts(at)
    assert before == class_counts(classify_table(rows, 0.1, 0.1))
    at.slider(key="w_beta").set_value(0.01).run()
    after = legend_counts(at)
    assert after == class_counts(classify_table(rows, 0.1, 0.01))
    assert after != before
    assert at.session_state["beta"] == 0.01
    # the chart, the action table, the token table, and five downloads
    assert len(at.get("vega_lite_chart")) == 1 and len(at.dataframe) == 2
    assert len(at.get("download_button")) == 5


def test_explorer_segmenter_choice_resegments_without_scoring():
    demo = load_corpus(DEMO)
    at = page("explorer").run()
    rid = at.session_state["record_id"]
    for segmenter in ("paragraph", "spacy", "paper"):
        at.selectbox(key="w_segmenter").set_value(segmenter).run()
        assert not at.exception
        table = demo.actions(segmenter)
        expected = table.loc[table.record_id == rid, "text"].tolist()
        assert at.dataframe[0].value["text"].tolist() == expected


def evil_corpus() -> ScoredCorpus:
    text = "Hello. <script>alert(1)</script> Then <img src=x onerror=alert(2)>."
    n = len(text)
    tokens = TokenScores(np.arange(n), np.stack([np.arange(n), np.arange(n) + 1], 1), np.full(n, -0.5),
                         np.zeros(n, bool), np.zeros(n, bool))
    rec = Record("evil", "q", "<b>prompt</b>", text, None, "pasted")
    return ScoredCorpus([rec], {r: {"evil": tokens} for r in ("teacher", "student", "distilled")}, (),
                        {"teacher": "t", "student": "s", "distilled": "d"})


def test_explorer_renders_html_in_responses_as_inert_text():
    corpus = evil_corpus()
    at = page("explorer", with_dataset(corpus.records, corpus, "evil")).run()
    assert not at.exception
    body = "".join(h.proto.body for h in at.html)
    assert "<script>" not in body and "<img" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_models_page_has_every_setting_and_estimates_memory():
    at = page("models").run()
    assert not at.exception
    for role in ("teacher", "student", "distilled"):
        for field in ("quantization", "dtype", "device", "template"):
            assert at.selectbox(key=f"m_{role}_{field}") is not None
        assert at.checkbox(key=f"m_{role}_trust_remote_code").value is False
    assert at.selectbox(key="m_teacher_quantization").options == ["none", "8bit", "nf4"]
    at.checkbox(key="m_student_trust_remote_code").check().run()
    assert any("trust_remote_code executes" in w.value for w in at.warning)
    next(b for b in at.button if b.label == "Estimate memory").click().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["role"].tolist() == ["teacher", "student", "distilled"]
    assert (table["parameters (M)"] > 100).all() and table["fits"].all()


@pytest.mark.slow
def test_models_page_keeps_tokenizer_facts_and_the_estimate_side_by_side():
    at = page("models").run()
    at.number_input(key="m_tokens").set_value(131072).run()
    next(b for b in at.button if b.label == "Estimate memory").click().run()
    next(b for b in at.button if b.label == "Load tokenizers").click().run()
    assert not at.exception
    estimate = frame_with(at, "one pass (tokens)").set_index("role")
    facts = frame_with(at, "vocabulary").set_index("role")  # the other button did not wipe it
    assert facts.loc["teacher", "vocabulary"] == 49152 and facts.loc["student", "vocabulary"] == 262144
    assert bool(facts.loc["student", "adds BOS"]) and bool(facts.loc["teacher", "chat template"])
    # SmolLM2's window is 8,192 tokens: a 131,072-token response is scored in windows of that size
    assert estimate.loc["teacher", "window (tokens)"] == 8192 and estimate.loc["teacher", "one pass (tokens)"] == 8192
    assert any("exceed its 8,192-token window" in i.value for i in at.info)


def test_models_page_says_a_missing_local_directory_is_not_found():
    at = page("models").run()
    at.radio(key="m_teacher_source").set_value("hub id or local dir").run()
    at.text_input(key="m_teacher_name").input("/no/such/checkpoint").run()
    assert not at.exception
    assert any("local model directory not found: /no/such/checkpoint" in e.value for e in at.error)
    assert not any("repo id" in e.value.lower() for e in at.error)


def test_bad_upload_reports_line_and_field_and_keeps_good_rows():
    at = page("trajectories").run()
    data = (b'{"prompt": "p1", "response": "r1", "correct": true}\n'
            b'{"prompt": "p2", "response": "r2", "correct": "maybe"}\n'
            b'not json at all\n'
            b'{"prompt": "p4", "response": "r4"}\n')
    at.file_uploader[0].set_value(("mine.jsonl", data, "application/jsonl")).run()
    next(b for b in at.button if b.label == "Load this file").click().run()
    assert not at.exception
    assert any("could not be read" in e.value for e in at.error)
    report = next(d.value for d in at.dataframe if "problem" in d.value.columns)
    assert report["line"].tolist() == [2, 3]
    assert report["field"].tolist()[0] == "correct"
    assert [r.response for r in at.session_state["records"]] == ["r1", "r4"]
    assert at.session_state["dataset_name"] == "Upload: mine.jsonl"


def test_pasted_trajectory_joins_the_dataset():
    at = page("trajectories").run()
    at.text_area(key="paste_prompt").input("What is 2+2?")
    at.text_area(key="paste_response").input("2 + 2 = 4. The answer is 4.")
    at.radio(key="paste_correct").set_value("correct")
    next(b for b in at.button if b.key == "paste_add").click().run()
    last = at.session_state["records"][-1]
    assert (last.record_id, last.correct, last.response) == ("pasted-1", True, "2 + 2 = 4. The answer is 4.")


def test_bundled_example_datasets_load():
    at = page("trajectories").run()
    at.selectbox(key="ex_name").set_value("aime24-sky-t1").run()
    next(b for b in at.button if b.key == "ex_use").click().run()
    assert len(at.session_state["records"]) == 30
    assert at.session_state["corpus"] is None


def test_corpus_page_curves_follow_beta():
    at = page("corpus").run()
    assert not at.exception
    at.number_input(key="corpus_min_n").set_value(1).run()
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 2

    def curve_data(app):  # the Arrow bytes of the curves chart's datasets
        proto = app.get("vega_lite_chart")[0].proto
        return [d.data.data for d in proto.datasets] or [proto.data.data]

    before = curve_data(at)
    at.slider(key="w_beta").set_value(0.0).run()
    assert not at.exception and curve_data(at) != before
    summary = next(d.value for d in at.dataframe if "p_value" in d.value.columns)
    assert set(summary["cls"]) <= {"Shared", "Teacher", "Student", "Boosted"}


def test_corpus_page_charts_name_the_min_n_below_which_positions_fade():
    at = page("corpus").run()
    at.number_input(key="corpus_min_n").set_value(37).run()
    assert not at.exception
    specs = " ".join(c.proto.spec for c in at.get("vega_lite_chart"))
    assert "fewer than 37 responses: faded" in specs  # the legend of the faded, thin positions


def test_beta_tuning_page_suggests_and_applies_a_beta():
    from rdpt_core import stats

    at = page("beta_tuning").run()
    assert not at.exception
    table = load_corpus(DEMO).actions("paper")
    want = stats.suggest_beta(stats.beta_overlaps(table, 0.1, stats.beta_grid()))
    assert any(f"Suggested β = {want:.2f}" in s.value for s in at.success)
    next(b for b in at.button if b.label.startswith("Apply β")).click().run()
    assert at.session_state["beta"] == want
    at.text_input(key="beta_grid").input("0.1, nonsense").run()
    assert any("between 0 and 1" in e.value for e in at.error)


@pytest.mark.slow
def test_scoring_a_pasted_record_in_the_app_fills_the_token_cache():
    import os
    from pathlib import Path

    cache = Path(os.environ["RDPT_CACHE_DIR"])
    before = len(list(cache.rglob("*.npz")))
    at = page("trajectories").run()
    paste(at, "What is 3 + 4?", "3 + 4 = 7. <b>Done</b>. The answer is 7.")
    next(b for b in at.button if b.key == "score_all").click().run(timeout=300)
    assert not at.exception
    corpus = at.session_state["corpus"]
    assert "pasted-1" in {r.record_id for r in corpus.records}
    assert set(corpus.tokens) == {"teacher", "student", "distilled"}
    assert len(list(cache.rglob("*.npz"))) == before + 3  # one token-cache entry per model
    texts = [p.proto.text for p in at.get("progress")]
    assert any(t.startswith("teacher") for t in texts) and any(t.startswith("distilled") for t in texts)


@pytest.mark.slow
def test_background_scoring_job_merges_into_the_corpus():
    at = page("trajectories").run()
    paste(at, "What is 5 + 6?", "5 + 6 = 11. The answer is 11.")
    next(b for b in at.button if b.key == "score_bg").click().run()
    job = at.session_state["job"]
    assert job.wait(300) and job.progress.state == "done", job.progress.error
    assert job.progress.records_done == job.progress.records_total == 3  # one record x three models
    at.run()
    assert not at.exception
    assert "pasted-1" in {r.record_id for r in at.session_state["corpus"].records}
    assert any(p.proto.text.startswith("done") for p in at.get("progress"))


MATH500 = REPO / "data" / "math500_subset"


def test_corpus_and_beta_pages_on_the_scored_math500_subset():
    corpus = load_corpus(MATH500 / "corpus")
    assert {r.correct for r in corpus.records} == {True, False}
    for path in ("corpus", "beta_tuning"):
        at = page(path, with_dataset(corpus.records, corpus, "MATH500 subset")).run()
        assert not at.exception
        if path == "corpus":
            at.number_input(key="corpus_min_n").set_value(5).run()
            summary = next(d.value for d in at.dataframe if "p_value" in d.value.columns)
            assert (summary["responses_correct"] > 0).all() and (summary["responses_incorrect"] > 0).all()
            assert any(c.value.startswith("Unit: responses.") for c in at.caption)
        assert len(at.get("vega_lite_chart")) >= 1


# ---- data selection and distillation sources --------------------------------------------------
from conftest import LAB  # noqa: E402


def frame_with(at: AppTest, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_data_selection_page_picks_like_rdpt_core_and_follows_beta_and_strategy():
    from rdpt_core.selection import response_features, select

    actions = load_corpus(LAB / "teacher_corpus").actions("paper")
    at = page("data_selection").run()
    assert not at.exception
    picks = frame_with(at, "n_teacher")  # the Picks tab comes first
    want = select(response_features(actions, 0.1), "max_teacher_count")
    assert picks["record_id"].tolist() == want["record_id"].tolist()
    assert picks["question_id"].is_unique and len(picks) == actions.question_id.nunique()
    assert any(b.label == f"Chosen responses ({len(want)}, JSONL)" for b in at.get("download_button"))
    for key, value, strategy, beta in (("sel_strategy", "longest", "longest", 0.1),
                                       ("w_beta", 0.0, "longest", 0.0),
                                       ("sel_strategy", "max_teacher_count", "max_teacher_count", 0.0)):
        (at.selectbox if key == "sel_strategy" else at.slider)(key=key).set_value(value).run()
        assert not at.exception
        want = select(response_features(actions, beta), strategy)
        assert frame_with(at, "n_teacher")["record_id"].tolist() == want["record_id"].tolist(), (strategy, beta)
    assert len(at.get("vega_lite_chart")) >= 2  # strategies compared, agreement
    kept = frame_with(at, "grape")  # question × strategy → the response each strategy kept
    features = response_features(actions, 0.0)
    for strategy in ("max_teacher_count", "longest", "max_teacher_proportion", "min_teacher_count", "grape"):
        assert kept[strategy].tolist() == select(features, strategy)["record_id"].tolist(), strategy


def test_data_selection_page_explains_what_the_working_dataset_lacks():
    at = page("data_selection", with_dataset([], None, "empty")).run()
    at.radio(key="sel_data").set_value("Working dataset (Trajectories page)").run()
    assert not at.exception
    assert any("scored by the teacher and the student" in m.value for m in at.info)
    single = load_corpus(MATH500 / "corpus")  # one response per MATH500 question
    at.session_state["records"], at.session_state["corpus"] = single.records, single
    at.run()
    assert not at.exception
    assert any("several responses per question" in m.value for m in at.warning)
    assert len(frame_with(at, "n_teacher")) == len(single.records)  # every response kept


def _experiment_row(strategy: str, correct: int, n: int = 100) -> dict:
    from rdpt_core.stats import wilson

    lo, hi = wilson([correct], [n])
    return {"strategy": strategy, "seed": 0, "n_train": 240, "mean_teacher_actions": 3.0, "mean_tokens": 90.0,
            "n_test": n, "correct": correct, "accuracy": correct / n, "wilson95": [float(lo[0]), float(hi[0])],
            "truncated": 0}


def test_data_selection_page_shows_the_selection_experiment_and_a_users_own_results(tmp_path, monkeypatch):
    from rdpt_app import loaders

    monkeypatch.setattr(loaders, "SELECTION_RESULTS", tmp_path / "absent.json")
    at = page("data_selection").run()
    assert any("has not been run here yet" in m.value for m in at.info)

    lab = tmp_path / "results.json"
    lab.write_text(json.dumps({"beta": 0.15, "rows": [_experiment_row("random", 40), _experiment_row("grape", 44)]}))
    monkeypatch.setattr(loaders, "SELECTION_RESULTS", lab)
    at.run()
    assert not at.exception
    table = frame_with(at, "ci_low")
    assert table["strategy"].tolist() == ["random", "grape"] and table["correct"].tolist() == [40, 44]
    said = " ".join(m.value for m in at.markdown)
    assert "β = 0.15" in said and "overlap" in said and "cannot tell the strategies apart" in said

    at.file_uploader(key="sel_results_upload").set_value(("bad.json", b'{"rows": [{"strategy": "x"}]}',
                                                           "application/json")).run()
    assert any("bad.json: row 1 lacks seed" in e.value and "lab's results are shown instead" in e.value
               for e in at.error)
    assert frame_with(at, "ci_low")["strategy"].tolist() == ["random", "grape"]  # the lab's, still there

    mine = {"beta": 0.2, "rows": [_experiment_row("max_teacher_count", 90), _experiment_row("longest", 50)]}
    at.file_uploader(key="sel_results_upload").set_value(("mine.json", json.dumps(mine).encode(),
                                                           "application/json")).run()
    assert not at.error
    assert frame_with(at, "ci_low")["strategy"].tolist() == ["max_teacher_count", "longest"]
    said = " ".join(m.value for m in at.markdown)
    assert "mine" in said and "β = 0.2" in said and "do not overlap" in said


def test_data_selection_page_shows_the_committed_experiment():
    from rdpt_app import loaders

    committed = json.loads(loaders.SELECTION_RESULTS.read_text())
    at = page("data_selection").run()
    assert not at.exception
    table = frame_with(at, "ci_low")
    assert table["strategy"].tolist() == [r["strategy"] for r in committed["rows"]]
    assert table["correct"].tolist() == [r["correct"] for r in committed["rows"]]
    assert f"β = {committed['beta']}" in " ".join(m.value for m in at.markdown)


def test_sources_page_shows_the_bundled_aime24_comparison():
    import pandas as pd

    from rdpt_core.sources import adaptivity, length_stats

    responses = pd.read_parquet(REPO / "data" / "aime24_sources" / "responses.parquet")
    at = page("sources").run()
    assert not at.exception
    shown = frame_with(at, "perplexity")
    want = length_stats(responses)
    assert shown["source"].tolist() == want["source"].tolist() and len(shown) == 3
    assert np.allclose(shown["perplexity"], want["perplexity"]) and np.allclose(shown["mean"], want["mean"])
    rho = frame_with(at, "spearman_length_vs_solve_rate")
    assert np.allclose(rho["spearman_length_vs_solve_rate"], adaptivity(responses)["spearman_length_vs_solve_rate"],
                       equal_nan=True)
    at.radio(key="src_unit").set_value("characters").run()
    assert np.allclose(frame_with(at, "perplexity")["mean"], length_stats(responses, "n_chars")["mean"])
    assert len(at.get("vega_lite_chart")) == 2


@pytest.mark.slow
def test_sources_page_scores_the_working_dataset_with_the_reference_model():
    records = [Record(f"{src}:{q}", q, f"What is {q} + 1?", text, ok, src)
               for src, texts in (("A", ["It is 2. Done.", "It is 3."]), ("B", ["The sum is 2.", "Four."]))
               for q, text, ok in zip(("1", "2"), texts, (True, src == "A"))]
    at = page("sources", with_dataset(records, None, "two sources")).run()
    at.radio(key="src_data").set_value("Working dataset (Trajectories page), grouped by source").run()
    assert any("score them with the reference model" in m.value for m in at.info)
    next(b for b in at.button if b.key == "src_score").click().run(timeout=300)
    assert not at.exception
    stats = frame_with(at, "perplexity")
    assert stats["source"].tolist() == ["A", "B"] and stats["responses"].tolist() == [2, 2]
    assert (stats["perplexity"] > 1).all()
    points = frame_with(at, "spearman_length_vs_solve_rate")
    assert points["questions"].tolist() == [2, 2]  # both questions shared by both sources


def test_sources_page_reuses_the_session_scores_of_the_chosen_role():
    at = page("sources").run()  # the session opens on the demo corpus
    at.radio(key="src_data").set_value("Working dataset (Trajectories page), grouped by source").run()
    assert not at.exception
    assert not any(b.key == "src_score" for b in at.button)  # T already scored all of them
    demo = load_corpus(DEMO)
    lengths = [s.n_tokens for s in demo.tokens["teacher"].values()]
    stats = frame_with(at, "perplexity")
    assert stats["responses"].tolist() == [len(demo.records)]
    assert stats["mean"].iloc[0] == pytest.approx(np.mean(lengths))
    assert any("Only one source" in w.value for w in at.warning)


# ---- uploads: mapping, encoding, no silent replacement ------------------------------------------
def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, data, "text/plain")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_upload_with_unrecognised_columns_must_be_mapped_and_a_nonsense_mapping_is_refused():
    at = upload(page("trajectories").run(), "ab.csv", b"a,b\nwhat is 2+2?,4\n")
    before = [r.record_id for r in at.session_state["records"]]
    assert any("ab.csv: choose the column that holds the prompt" in e.value for e in at.error)
    assert button(at, "up_load").disabled
    digest = next(s.key for s in at.selectbox if s.key.startswith("up_map_prompt_")).rsplit("_", 1)[1]
    at.selectbox(key=f"up_map_prompt_{digest}").set_value("a")
    at.selectbox(key=f"up_map_response_{digest}").set_value("a").run()
    assert any("column 'a' is mapped to prompt and response" in e.value for e in at.error)
    assert button(at, "up_load").disabled
    assert [r.record_id for r in at.session_state["records"]] == before  # nothing replaced
    at.selectbox(key=f"up_map_response_{digest}").set_value("b").run()
    assert not at.error and not button(at, "up_load").disabled
    button(at, "up_load").click().run()
    [record] = at.session_state["records"]
    assert (record.prompt, record.response) == ("what is 2+2?", "4")


def test_column_mappings_start_from_each_files_own_guesses():
    header = b"question,answer_text,id,is_correct,model\n"
    at = upload(page("trajectories").run(), "one.csv", header + b"q1,r1,a,true,m1\n")
    digest = next(s.key for s in at.selectbox if s.key.startswith("up_map_correct_")).rsplit("_", 1)[1]
    at.selectbox(key=f"up_map_correct_{digest}").set_value("(none)").run()  # the user drops it here
    upload(at, "two.csv", header + b"q2,r2,b,false,m2\nq3,r3,c,true,m2\n")
    shown = {s.key.split("_")[2]: s.value for s in at.selectbox if s.key.startswith("up_map_")}
    assert shown == {"prompt": "question", "response": "answer_text", "record": "id", "question": "(none)",
                     "correct": "is_correct", "source": "model"}
    button(at, "up_load").click().run()
    got = [(r.record_id, r.correct, r.source) for r in at.session_state["records"]]
    assert got == [("b", False, "m2"), ("c", True, "m2")]


def test_loading_a_file_says_what_happened_to_the_previous_dataset_and_can_add_instead():
    at = page("trajectories").run()
    paste(at, "What is 2+2?", "It is 4.")
    mine = at.session_state["dataset_id"]
    assert mine not in ("demo",) and at.session_state["dataset_name"].endswith("+ my changes")
    upload(at, "new.jsonl", b'{"prompt": "p", "response": "r", "record_id": "n1"}\n')
    button(at, "up_load").click().run()
    assert any("is still under Saved datasets" in s.value and "+ my changes" in s.value for s in at.success)
    assert at.session_state["dataset_name"] == "Upload: new.jsonl"
    # the sidebar says so in the same run, not one click later
    assert "Upload: new.jsonl" in " ".join(c.value for c in at.sidebar.caption)
    from rdpt_app.loaders import workspace

    assert mine in workspace() and len(workspace().load(mine).records) == len(load_corpus(DEMO).records) + 1
    # adding instead of replacing
    upload(at, "more.jsonl", b'{"prompt": "p", "response": "r2", "record_id": "n2"}\n'
                             b'{"prompt": "p", "response": "dup", "record_id": "n1"}\n')
    digest = next(r.key for r in at.radio if r.key.startswith("up_mode_"))
    at.radio(key=digest).set_value("records added to the working dataset").run()
    button(at, "up_load").click().run()
    assert [r.record_id for r in at.session_state["records"]] == ["n1", "n2"]
    assert any("Added 1 records" in s.value and "1 whose record_id was already there" in s.value for s in at.success)


def test_adding_two_files_without_ids_keeps_every_answer():
    """Rows without ids are numbered by line; a second such file added to the same dataset must
    not have its answers dropped as duplicates of the first file's."""
    at = page("trajectories").run()
    upload(at, "first.jsonl", b'{"prompt": "p", "response": "a1"}\n{"prompt": "p", "response": "a2"}\n')
    button(at, "up_load").click().run()
    upload(at, "second.jsonl", b'{"prompt": "q", "response": "b1"}\n{"prompt": "q", "response": "b2"}\n')
    digest = next(r.key for r in at.radio if r.key.startswith("up_mode_"))
    at.radio(key=digest).set_value("records added to the working dataset").run()
    button(at, "up_load").click().run()
    records = at.session_state["records"]
    assert [r.response for r in records] == ["a1", "a2", "b1", "b2"]
    assert len({r.record_id for r in records}) == 4 and len({r.question_id for r in records}) == 4
    assert any("Added 2 records" in s.value for s in at.success)


# ---- persistence: reload, links ----------------------------------------------------------------
def test_a_pasted_dataset_survives_a_reload_and_its_record_link_opens_it():
    at = page("trajectories").run()
    paste(at, "What is 6 x 7?", "6 x 7 = 42. The answer is 42.")
    dataset_id = at.session_state["dataset_id"]
    assert at.query_params["dataset"] == dataset_id
    # a new session (reload, second tab, a collaborator on this machine) with the link
    again = page("explorer", dataset=dataset_id, record="pasted-1").run()
    assert not again.exception
    assert again.session_state["dataset_id"] == dataset_id and again.session_state["record_id"] == "pasted-1"
    assert any("not been scored yet" in w.value for w in again.warning)
    assert again.query_params == {"dataset": dataset_id, "record": "pasted-1"}
    # a broken link says so instead of silently showing something else
    broken = app(dataset="gone-12345678", record="nope").run()
    assert any("'gone-12345678' is not in this workspace" in w.value for w in broken.warning)
    assert any("linked record 'nope'" in w.value for w in broken.warning)


def test_saved_datasets_are_listed_and_can_be_opened_and_deleted():
    from rdpt_app.loaders import workspace
    from rdpt_core.records import Record as R

    saved = workspace().save("listed one", [R("x", "x", "p", "resp")])
    at = page("trajectories").run()
    at.selectbox(key="ws_pick").set_value(saved).run()
    button(at, "ws_open").click().run()
    assert at.session_state["dataset_id"] == saved and at.session_state["dataset_name"] == "listed one"
    assert button(at, "ws_delete").disabled
    at.checkbox(key="ws_confirm").check().run()
    button(at, "ws_delete").click().run()
    assert saved not in workspace() and at.session_state["dataset_id"] == "demo"


# ---- the explorer's numbers ----------------------------------------------------------------------
def test_explorer_margins_and_token_drill_down_match_independent_computations():
    from collections import Counter

    demo = load_corpus(DEMO)
    at = page("explorer").run()
    rid = at.session_state["record_id"]
    at.slider(key="w_alpha").set_value(0.05).run()
    shown = at.dataframe[0].value.set_index("action_index")
    for i, row in shown.iterrows():
        pt, ps, pd_ = row["p_teacher"], row["p_student"], row["p_distilled"]
        assert row["d_TS"] == pytest.approx(pt - ps) and row["d_DS"] == pytest.approx(pd_ - ps)
        assert row["d_TD"] == pytest.approx(pt - pd_)
        m_alpha = max(abs(ps - pd_), abs(pt - pd_), abs(pt - ps)) - 0.05
        m_beta = abs(pt - ps) - 0.1
        assert row["margin_alpha"] == pytest.approx(m_alpha) and row["margin_beta"] == pytest.approx(m_beta)
        flip = abs(m_alpha) if row["cls"] == "Shared" else min(abs(m_alpha), abs(m_beta))
        assert row["to_flip"] == pytest.approx(flip), i
    # the tokens behind the longest action, per model, against the cached token scores
    actions = demo.actions("paper")
    actions = actions[actions.record_id == rid].reset_index(drop=True)
    target = int(actions.loc[actions["n_chars"].idxmax(), "action_index"])
    at.selectbox(key="tok_action").set_value(target).run()
    tokens = at.dataframe[1].value
    owner = [k for k, (a, b) in enumerate(zip(actions.start, actions.end)) for _ in range(a, b)]
    for role, by_record in demo.tokens.items():
        cached = by_record[rid]
        mine = tokens[tokens.role == role]
        expected = []  # majority of a token's characters, ties to the earlier action, by counting
        for t, (s, e) in enumerate(cached.offsets.tolist()):
            if e > s and not cached.straddle[t]:
                counts = Counter(owner[s:e])
                best = max(counts.values())
                if min(k for k, v in counts.items() if v == best) == target:
                    expected.append(t)
        widths = cached.offsets[mine.token_index.to_numpy()]
        assert [t for t, (s, e) in zip(mine.token_index, widths) if e > s] == expected, role
        np.testing.assert_array_equal(mine.logprob.to_numpy(), cached.logprobs[mine.token_index.to_numpy()])
        assert mine.logprob.sum() == pytest.approx(actions[f"sum_logp_{role}"].iloc[target], abs=1e-9)
        assert len(mine) == actions[f"n_tokens_{role}"].iloc[target]
    html = "".join(h.proto.body for h in at.html)
    assert html.count('class="rdpt-tok"') == len(tokens)


def test_explorer_finds_responses_by_answer_search_and_class_and_steps_through_them():
    demo = load_corpus(DEMO)
    at = page("explorer").run()
    at.selectbox(key="nav_correct").set_value("incorrect").run()
    wrong = [r for r in demo.records if r.correct is False]
    # a word some but not all wrong answers mention (an item of the test stories)
    word = next(w for w in ("shells", "cards", "beads", "stamps")
                if 2 < sum(w in r.response.lower() or w in r.prompt.lower() for r in wrong) < len(wrong))
    at.text_input(key="nav_search").input(word).run()
    want = [r.record_id for r in wrong if word in r.response.lower() or word in r.prompt.lower()]
    options = at.selectbox(key="w_record_id").options
    shown = [o.split(" ")[0] for o in options]
    current = at.session_state["record_id"]
    assert [s for s in shown if s != current] == [w for w in want if w != current] and len(want) > 2
    # Next ▶ walks the filtered list in order
    at.session_state["record_id"] = want[0]
    at.run()
    button(at, "nav_next").click().run()
    assert at.session_state["record_id"] == want[1]
    button(at, "nav_prev").click().run()
    assert at.session_state["record_id"] == want[0] and button(at, "nav_prev").disabled
    # only responses with a Teacher action at the current α, β
    at.selectbox(key="nav_class").set_value("Teacher").run()
    classified = classify_table(demo.actions("paper"), 0.1, 0.1)
    with_teacher = set(classified.loc[classified["cls"] == "Teacher", "record_id"])
    listed = [o.split(" ")[0] for o in at.selectbox(key="w_record_id").options]
    assert set(listed) - {at.session_state["record_id"]} == set(want) & with_teacher - {at.session_state["record_id"]}


@pytest.mark.slow
def test_explorer_shows_what_each_model_scored():
    """The rendered context per model: SmolLM2's chat template, Gemma base's raw template."""
    at = page("explorer").run()
    record = next(r for r in at.session_state["records"] if r.record_id == at.session_state["record_id"])
    button(at, "ctx_render").click().run()
    assert not at.exception
    shown = [c.value for c in at.code]
    assert len(shown) == 3
    teacher, student, distilled = shown
    assert teacher.startswith("<|im_start|>") and f"<|im_start|>user\n{record.prompt}<|im_end|>" in teacher
    assert student == distilled == f"{record.prompt}\n\n⟨response⟩"
    labels = " ".join(m.value for m in at.markdown)
    assert "teacher** · smollm2-135m-steps-teacher · chat template" in labels
    assert "student** · gemma3-270m · raw template" in labels


# ---- several teachers (docs/method.md §18) ------------------------------------------------------
# Three sentences with hand-set probabilities (every token of an action gets log p, so the
# action's geometric mean is p). At β = 0.1: #0 and #1 are Teacher (p_T − p_S = 0.8, 0.55), #2
# is Shared. #0: teacher a beats b by 0.4; #1: b beats a by 0.15 → b at γ ≤ 0.14, several above.
TWO_TEACHER_P = {"teacher_a": (0.9, 0.6, 0.3), "teacher_b": (0.5, 0.75, 0.3), "student": (0.1, 0.2, 0.3),
                 "distilled": (0.6, 0.5, 0.3)}
TWO_TEACHER_TEXT = "Add the two numbers first. Then check the sum twice. So the answer is 7."


def hand_scored(records: list[Record], p: dict[str, dict[str, tuple[float, ...]]]) -> ScoredCorpus:
    """A corpus whose every action has the probability set by hand: ``p[role][record_id]`` holds
    one p per action of the record (paper segmenter), given to each of its one-character tokens."""
    from rdpt_core.segment import segment

    tokens: dict[str, dict[str, TokenScores]] = {role: {} for role in p}
    for rec in records:
        actions, n = segment(rec.response), len(rec.response)
        owner = np.zeros(n, np.int64)
        for k, action in enumerate(actions):
            owner[action.start:action.end] = k
        for role, by_record in p.items():
            assert len(by_record[rec.record_id]) == len(actions), [a.text for a in actions]
            logp = np.log(np.asarray(by_record[rec.record_id]))[owner]
            tokens[role][rec.record_id] = TokenScores(np.arange(n), np.stack([np.arange(n), np.arange(n) + 1], 1),
                                                      logp, np.zeros(n, bool), np.zeros(n, bool))
    return ScoredCorpus(records, tokens, (), {role: role for role in p})


def two_teacher_corpus() -> ScoredCorpus:
    rec = Record("two", "q", "What is 3 + 4?", TWO_TEACHER_TEXT, True, "pasted")
    return hand_scored([rec], {role: {"two": ps} for role, ps in TWO_TEACHER_P.items()})


def teacher_legend(at: AppTest) -> dict[str, int]:
    html = "".join(h.proto.body for h in at.html)
    return {t: int(n) for t, n in re.findall(r'data-teacher="([^"]+)" data-count="(\d+)"', html)}


def test_explorer_colours_actions_by_teacher_and_gamma_moves_them():
    corpus = two_teacher_corpus()
    at = page("explorer", with_dataset(corpus.records, corpus, "two teachers")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="w_gamma").value == 0.1  # γ shows only for a several-teacher corpus
    at.radio(key="exp_colour_by").set_value("teacher").run()
    assert teacher_legend(at) == {"a": 1, "b": 1, "Several teachers": 0}
    body = "".join(h.proto.body for h in at.html)
    assert re.findall(r'data-teacher="(\w+)" data-index="(\d)"', body) == [("a", "0"), ("b", "1")]
    assert "best teacher b  margin 0.150" in body and "attributed to b" in body
    at.slider(key="w_gamma").set_value(0.2).run()
    assert teacher_legend(at) == {"a": 1, "b": 0, "Several teachers": 1}
    assert at.session_state["gamma"] == 0.2
    table = at.dataframe[0].value.set_index("action_index")
    assert table.loc[1, "teacher_of"] == "Several teachers" and table.loc[0, "teacher_of"] == "a"
    assert table.loc[1, "p_teacher"] == pytest.approx(0.75) and table.loc[1, "teacher_margin"] == pytest.approx(0.15)
    # a single-teacher corpus has no γ
    at = page("explorer").run()
    assert not any(s.key == "w_gamma" for s in at.slider) and not any(r.key == "exp_colour_by" for r in at.radio)


def test_corpus_page_splits_teacher_actions_among_teachers():
    corpus = two_teacher_corpus()
    at = page("corpus", with_dataset(corpus.records, corpus, "two teachers")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value.startswith("Which teacher, by position") for s in at.subheader)
    shares = next(d.value for d in at.dataframe if "teacher_of" in d.value.columns)
    assert dict(zip(shares["teacher_of"], shares["actions"])) == {"a": 1, "b": 1}
    at.slider(key="w_gamma").set_value(0.2).run()
    shares = next(d.value for d in at.dataframe if "teacher_of" in d.value.columns)
    assert dict(zip(shares["teacher_of"], shares["actions"])) == {"Several teachers": 1, "a": 1}
    chart = next(c for c in at.get("vega_lite_chart") if "teacher" in json.dumps(c.proto.spec))
    spec = json.loads(chart.proto.spec)
    scales = [layer["encoding"]["color"]["scale"] for layer in spec["layer"] if "color" in layer.get("encoding", {})]
    assert {"domain": ["a", "Several teachers"], "range": ["#0072B2", "#000000"]} in scales


def test_models_page_names_several_teachers_and_refuses_bad_names():
    at = page("models").run()
    at.text_input(key="m_teacher_names").input("steps").run()
    assert any("two or more" in e.value for e in at.error) and at.session_state["teachers"] == []
    at.text_input(key="m_teacher_names").input("steps, bad name").run()
    assert any("'bad name'" in e.value for e in at.error) and at.session_state["teachers"] == []
    at.text_input(key="m_teacher_names").input("steps, narrative").run()
    assert not at.exception and not at.error
    assert at.session_state["teachers"] == ["steps", "narrative"]
    assert [t.label for t in at.tabs] == ["Teacher steps", "Teacher narrative", "Student", "Distilled"]
    choices = at.session_state["choices"]
    assert choices["teacher_steps"]["name"] == choices["teacher"]["name"]  # the one teacher's settings carry over
    at.selectbox(key="m_teacher_narrative_name").set_value("gemma3-270m").run()
    assert at.session_state["choices"]["teacher_narrative"]["name"] == "gemma3-270m"
    assert at.session_state["choices"]["teacher_steps"]["name"] != "gemma3-270m"


@pytest.mark.slow
def test_scoring_with_two_named_teachers_from_the_app():
    at = page("models").run()
    at.text_input(key="m_teacher_names").input("steps, narrative").run()
    at.selectbox(key="m_teacher_narrative_name").set_value("smollm2-135m-narrative-teacher").run()
    at.switch_page("pages/trajectories_page.py").run()
    paste(at, "What is 3 + 4?", "We add 3 and 4. So the answer is 7.")
    button(at, "score_all").click().run(timeout=300)
    assert not at.exception, [e.value for e in at.exception]
    corpus = at.session_state["corpus"]
    assert list(corpus.tokens) == ["teacher_steps", "teacher_narrative", "student", "distilled"]
    assert corpus.models["teacher_narrative"] == "smollm2-135m-narrative-teacher"
    table = corpus.actions("paper")
    assert not np.allclose(table["p_teacher_steps"], table["p_teacher_narrative"])  # two different teachers
    at.switch_page("pages/explorer_page.py").run()
    assert not at.exception and at.slider(key="w_gamma").value == 0.1
    assert "teacher_of" in at.dataframe[0].value.columns


def test_data_selection_offers_per_writer_quotas_for_answers_of_two_teachers():
    # q1: r1 (writer A, 2 Teacher actions), r2 (B, none); q2: r3 (A) and r4 (B), 2 Teacher each.
    # max_teacher_count: r1, r3 (the tie goes to the first). teacher_quota, ⌈2 questions / 2
    # writers⌉ = 1 each: q1 first (its best has 2, the tie on question order) → r1 (A); q2 → r4 (B).
    text = "We add the numbers. The answer is 7."
    records = [Record(rid, q, "What is 3 + 4?", text, True, src)
               for rid, q, src in (("r1", "q1", "A"), ("r2", "q1", "B"), ("r3", "q2", "A"), ("r4", "q2", "B"))]
    high, low = (0.9, 0.9), (0.3, 0.3)
    corpus = hand_scored(records, {"teacher_a": {"r1": high, "r2": low, "r3": high, "r4": low},
                                   "teacher_b": {"r1": low, "r2": low, "r3": low, "r4": high},
                                   "student": {r.record_id: low for r in records}})
    at = page("data_selection", with_dataset(records, corpus, "two writers")).run()
    at.radio(key="sel_data").set_value("Working dataset (Trajectories page)").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(o.startswith("teacher_quota —") for o in at.selectbox(key="sel_strategy").options)
    assert frame_with(at, "n_teacher")["record_id"].tolist() == ["r1", "r3"]
    at.selectbox(key="sel_strategy").set_value("teacher_quota").run()
    picks = frame_with(at, "n_teacher")
    assert picks["record_id"].tolist() == ["r1", "r4"] and picks["source"].tolist() == ["A", "B"]
    assert picks["n_teacher"].tolist() == [2, 2]


def test_corpus_page_checks_attribution_against_known_teachers():
    corpus = two_teacher_corpus()  # "Add …" is a's, "Then …" is b's, "So …" neither's
    at = page("corpus", with_dataset(corpus.records, corpus, "two teachers")).run()
    at.text_area(key="w_known_teachers_text").input("a = Add\nb = (").run()
    assert any("line 2: invalid teacher-style pattern" in e.value for e in at.error)
    at.text_area(key="w_known_teachers_text").input("a = Add\nb = Then").run()
    assert not at.exception and not at.error
    confusion = next(d.value for d in at.dataframe if "share_of_neither" in d.value.columns)
    assert confusion[["a", "b", "neither"]].to_dict("index") == {
        "Shared": {"a": 0, "b": 0, "neither": 1}, "a": {"a": 1, "b": 0, "neither": 0}, "b": {"a": 0, "b": 1, "neither": 0}}
    by_gamma = next(d.value for d in at.dataframe if "attributed_to_it" in d.value.columns)
    b = by_gamma[by_gamma.teacher == "b"].set_index("gamma")
    # b's action beats a by 0.15: named at γ < 0.15, several teachers from γ = 0.15 on
    assert b.loc[0.1, "attributed_to_it"] == 1.0 and b.loc[0.15, "attributed_to_several"] == 1.0
    at.slider(key="w_gamma").set_value(0.2).run()
    confusion = next(d.value for d in at.dataframe if "share_of_neither" in d.value.columns)
    assert confusion.loc["Several teachers", "b"] == 1 and "b" not in confusion.index


def test_the_two_teacher_lab_opens_with_its_ground_truth_attribution():
    """Home → the built-in two-teacher corpus: γ in the sidebar, the explorer's teacher view,
    and on the Corpus page the known-teacher table equal to the committed attribution.json
    (which tests/test_ensemble.py recomputes from the committed action table)."""
    from rdpt_lab.ensemble import ATTRIBUTION
    from rdpt_lab.models import ENSEMBLE_DIR

    at = app().run()
    button(at, "home_open_ensemble").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["dataset_id"] == "ensemble"
    # after an in-script st.switch_page AppTest runs the page without app.py (no sidebar), which
    # a browser never does (tests/test_browser.py): go on from the link the button leads to
    at = page("explorer", dataset="ensemble").run()
    assert at.slider(key="w_gamma").value == 0.1
    at.radio(key="exp_colour_by").set_value("teacher").run()
    assert set(teacher_legend(at)) == {"steps", "narrative", "Several teachers"}
    at.switch_page("pages/corpus_page.py").run()
    assert not at.exception
    committed = json.loads((ENSEMBLE_DIR / ATTRIBUTION).read_text(encoding="utf-8"))
    shown = next(d.value for d in at.dataframe if "share_of_neither" in d.value.columns)
    want = {r["attribution"]: {k: v for k, v in r.items() if k != "attribution" and not k.startswith("share_of_")}
            for r in committed["confusion"]}
    assert shown[list(next(iter(want.values())))].to_dict("index") == want


@pytest.mark.parametrize("name", ["home", "explorer", "corpus", "beta_tuning", "models", "trajectories",
                                  "data_selection", "sources"])
def test_every_page_opens_on_a_two_teacher_corpus_with_gamma_beside_alpha_and_beta(name):
    corpus = two_teacher_corpus()
    at = with_dataset(corpus.records, corpus, "two teachers")
    at = (at if name == "home" else page(name, at)).run()  # home is where the app opens
    assert not at.exception, [e.value for e in at.exception]
    sliders = [s.key for s in at.sidebar.slider]
    assert sliders == ["w_alpha", "w_beta", "w_gamma"]
