"""Selection strategies against hand computations on a small constructed table."""

import math
import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from rdpt_core.selection import agreement, picks_by_strategy, response_features, select, strategies_for


def table():
    # question q1: a (2 Teacher of 3), b (1 Teacher of 1), c (2 Teacher of 4); q2: d, e
    rows = [
        ("a", "q1", 0.9, 0.1, 10, -5.0), ("a", "q1", 0.8, 0.2, 10, -5.0), ("a", "q1", 0.5, 0.5, 10, -5.0),
        ("b", "q1", 0.9, 0.1, 5, -1.0),
        ("c", "q1", 0.9, 0.1, 10, -10.0), ("c", "q1", 0.9, 0.2, 10, -10.0), ("c", "q1", 0.1, 0.9, 10, -10.0),
        ("c", "q1", 0.5, 0.5, 10, -10.0),
        ("d", "q2", 0.2, 0.9, 8, -2.0), ("e", "q2", 0.2, 0.9, 8, -2.0),
    ]
    return pd.DataFrame(rows, columns=["record_id", "question_id", "p_teacher", "p_student",
                                       "n_tokens_student", "sum_logp_student"])


def test_features_by_hand():
    f = response_features(table(), beta=0.1).set_index("record_id")
    assert f["n_teacher"].to_dict() == {"a": 2, "b": 1, "c": 2, "d": 0, "e": 0}
    assert f.loc["a", "teacher_share"] == pytest.approx(2 / 3) and f.loc["c", "teacher_share"] == 0.5
    assert f["n_actions"].to_dict() == {"a": 3, "b": 1, "c": 4, "d": 1, "e": 1}
    assert f["n_tokens"].to_dict() == {"a": 30, "b": 5, "c": 40, "d": 8, "e": 8}
    assert f.loc["a", "student_mean_logp"] == pytest.approx(-15 / 30) and f.loc["b", "student_mean_logp"] == -0.2


@pytest.mark.parametrize("strategy, q1, q2", [
    ("max_teacher_count", "a", "d"),       # a and c tie at 2: a comes first; d/e tie at 0: d first
    ("longest", "c", "d"),
    ("max_teacher_proportion", "b", "d"),  # b 1/1
    ("min_teacher_count", "b", "d"),
    ("grape", "b", "d"),                   # mean logp: a -0.5, b -0.2, c -1.0
])
def test_each_strategy_picks_by_hand(strategy, q1, q2):
    picked = select(response_features(table(), 0.1), strategy)
    assert picked["record_id"].tolist() == [q1, q2] and picked["question_id"].tolist() == ["q1", "q2"]


def test_random_is_seeded_and_keeps_one_per_question():
    f = response_features(table(), 0.1)
    first = select(f, "random", seed=3)["record_id"].tolist()
    assert first == select(f, "random", seed=3)["record_id"].tolist()
    assert first[0] in {"a", "b", "c"} and first[1] in {"d", "e"}
    with pytest.raises(ValueError, match="unknown strategy"):
        select(f, "best")


def test_agreement_matrix():
    m = agreement(picks_by_strategy(response_features(table(), 0.1),
                                    ["max_teacher_count", "longest", "grape", "min_teacher_count"]))
    assert m.loc["max_teacher_count", "longest"] == 0.5  # agree on q2 only
    assert m.loc["grape", "min_teacher_count"] == 1.0 and m.loc["longest", "grape"] == 0.5
    assert math.isclose(m.loc["longest", "longest"], 1.0)


# ---- the lab's real teacher data --------------------------------------------------------------
import json  # noqa: E402

import numpy as np  # noqa: E402

from conftest import LAB, Reference, reference_spans  # noqa: E402
from rdpt_core.records import load_records  # noqa: E402
from rdpt_core.selection import STRATEGIES, export_rows  # noqa: E402

TEACHER_DATA = LAB / "teacher_samples.jsonl"


def lab_features(beta: float = 0.1):
    from rdpt_core.store import load_corpus

    corpus = load_corpus(LAB / "teacher_corpus")
    return corpus, response_features(corpus.actions("paper"), beta)


def test_export_keeps_every_input_field_of_the_lab_teacher_data():
    corpus, features = lab_features()
    loaded = load_records(TEACHER_DATA)
    by_id = {json.loads(line)["record_id"]: json.loads(line) for line in TEACHER_DATA.read_text().splitlines()}
    for strategy in STRATEGIES:
        picked = select(features, strategy, seed=1)
        rows = export_rows(picked, loaded.records, loaded.origins, strategy, 0.1)
        assert len(rows) == features.question_id.nunique() == len({r["question_id"] for r in rows})
        for row, pick in zip(rows, picked.itertuples()):
            added = {k: row.pop(k) for k in list(row) if k.startswith("rdpt_")}
            assert row == by_id[pick.record_id]  # every input field, unchanged
            assert added["rdpt_strategy"] == strategy and added["rdpt_n_teacher"] == pick.n_teacher
            assert added["rdpt_n_tokens"] == pick.n_tokens


def hand_features(records, t_ref: Reference, s_ref: Reference, beta: float) -> dict[str, dict]:
    """docs/method.md §11 by hand from two plain forward passes: spans by the naive paper split, action
    p by the character-count token rule, Teacher = p_T − p_S > β."""
    markers = sorted({*t_ref.tok.all_special_tokens, *s_ref.tok.all_special_tokens, "<think>", "</think>",
                      "<|begin_of_thought|>", "<|end_of_thought|>", "<|begin_of_solution|>", "<|end_of_solution|>"})
    out = {}
    for rec in records:
        spans = reference_spans(rec.response, markers)
        p_t, _ = t_ref.action_probs(t_ref.context(rec.prompt), rec.response, spans)
        p_s, n_s = s_ref.action_probs(s_ref.context(rec.prompt), rec.response, spans)
        scored = [(t, s) for t, s in zip(p_t, p_s) if not (np.isnan(t) or np.isnan(s))]
        n_teacher = sum(t - s > beta for t, s in scored)
        logp = sum(n * np.log(s) for n, s in zip(n_s, p_s) if n)
        out[rec.record_id] = {"question_id": rec.question_id, "n_teacher": n_teacher,
                              "teacher_share": n_teacher / len(scored), "n_tokens": sum(n_s),
                              "student_mean_logp": logp / sum(n_s)}
    return out


def hand_pick(features: dict[str, dict], key: str, largest: bool) -> list[str]:
    """One response per question in input order; a later response wins only if strictly better."""
    best: dict[str, str] = {}
    for rid, f in features.items():
        q = f["question_id"]
        if q not in best:
            best[q] = rid
        elif (f[key] > features[best[q]][key]) if largest else (f[key] < features[best[q]][key]):
            best[q] = rid
    return list(best.values())


# three lab questions, four teacher answers each: tr0100 and tr0123 have two distinct answers,
# each sampled twice, so the best Teacher count is always tied (the tie rule decides); tr0006 has
# four different answers, one right
LAB_QUESTIONS = ("tr0100", "tr0123", "tr0006")


@pytest.mark.slow
def test_strategies_on_real_lab_teacher_data_match_plain_forward_passes(smollm2_ref, gemma_ref, smollm2_spec,
                                                                         gemma_spec):
    from rdpt_core.scoring import score_records

    records = [r for r in load_records(TEACHER_DATA).records if r.question_id in LAB_QUESTIONS]
    assert len(records) == 12
    table, _ = score_records(records, {"teacher": smollm2_spec, "student": gemma_spec})
    features = response_features(table, 0.1)
    want = hand_features(records, smollm2_ref, gemma_ref, 0.1)
    got = features.set_index("record_id")
    for rid, f in want.items():
        assert got.loc[rid, "n_teacher"] == f["n_teacher"] and got.loc[rid, "n_tokens"] == f["n_tokens"], rid
        assert got.loc[rid, "teacher_share"] == pytest.approx(f["teacher_share"])
        assert got.loc[rid, "student_mean_logp"] == pytest.approx(f["student_mean_logp"], abs=1e-5)
    rules = {"max_teacher_count": ("n_teacher", True), "longest": ("n_tokens", True),
             "max_teacher_proportion": ("teacher_share", True), "min_teacher_count": ("n_teacher", False),
             "grape": ("student_mean_logp", True)}
    for strategy, (key, largest) in rules.items():
        assert select(features, strategy)["record_id"].tolist() == hand_pick(want, key, largest), strategy
    # the tie rule is exercised: some question has several answers with its best Teacher count
    counts = [[f["n_teacher"] for f in want.values() if f["question_id"] == q] for q in LAB_QUESTIONS]
    assert any(c.count(max(c)) > 1 for c in counts)


# ---- load (issue 12): the Data selection page on 10,000 responses -------------------------------
def random_features(n_questions: int, per_question: int, seed: int = 0) -> pd.DataFrame:
    """:func:`response_features`-shaped rows, some with no scored action (NaN share)."""
    rng = np.random.default_rng(seed)
    n = n_questions * per_question
    return pd.DataFrame({
        "record_id": [f"r{i}" for i in range(n)], "question_id": [f"q{i // per_question}" for i in range(n)],
        "n_teacher": rng.integers(0, 30, n), "n_scored": 30, "n_actions": 30, "n_tokens": rng.integers(50, 4000, n),
        "teacher_share": np.where(rng.random(n) < 0.05, np.nan, rng.random(n)),
        "student_mean_logp": rng.normal(-1.0, 0.3, n),
    })


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def test_box_plot_points_draw_the_same_box_plots_as_every_pick():
    """Five rows per strategy, and the selection chart drawn from them is the chart drawn from
    every pick (vl-convert renders both): the same SVG, every coordinate equal to ~1e-12 (Vega's
    quartile and pandas' round the same interpolation differently in the last bit)."""
    from rdpt_core.charts import chart_svg, selection_chart
    from rdpt_core.selection import box_plot_points

    picks = picks_by_strategy(random_features(200, 4))
    points = box_plot_points(picks)
    assert points["strategy"].tolist() == [s for s in STRATEGIES for _ in range(5)]
    few, every = chart_svg(selection_chart(points)), chart_svg(selection_chart(picks))
    assert NUMBER.sub("#", few) == NUMBER.sub("#", every)
    numbers = [np.array(NUMBER.findall(svg), dtype=float) for svg in (few, every)]
    np.testing.assert_allclose(numbers[0], numbers[1], rtol=1e-12, atol=1e-9)


def test_data_selection_page_embeds_box_plot_points_and_caches_by_beta(monkeypatch):
    """The page's box-plot chart carries 5 rows per strategy, not one per question and strategy,
    and a step back to a β already shown recomputes no features."""
    import pyarrow as pa
    from streamlit.testing.v1 import AppTest

    import rdpt_core.selection as selection
    from conftest import REPO

    calls = []
    original = selection.response_features
    monkeypatch.setattr(selection, "response_features", lambda *a, **k: calls.append(a[1:]) or original(*a, **k))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("pages/data_selection_page.py").run()
    assert not at.exception, [e.value for e in at.exception]
    box = next(c for c in at.get("vega_lite_chart") if '"boxplot"' in c.proto.spec)
    assert [pa.ipc.open_stream(d.data.data).read_all().num_rows for d in box.proto.datasets] == [5 * len(STRATEGIES)]
    at.slider(key="w_beta").set_value(0.13).run()
    calls.clear()
    at.slider(key="w_beta").set_value(0.1).run()
    assert not at.exception and calls == []


@settings(derandomize=True, max_examples=60, deadline=None)
@given(hst.lists(hst.tuples(hst.sampled_from(["a", "b", "c"]), hst.integers(0, 5000),
                            hst.one_of(hst.none(), hst.floats(0, 1))), min_size=1, max_size=40))
def test_box_plot_points_are_each_strategys_quantiles(rows):
    """Any picks (strategies in any order, NaN shares, a strategy of one pick or of NaN only):
    five rows per strategy in order of appearance, each column's linear quantiles (NaN left out)."""
    from rdpt_core.selection import BOX_QUANTILES, box_plot_points

    picks = pd.DataFrame(rows, columns=["strategy", "n_tokens", "teacher_share"]).astype({"teacher_share": float})
    points = box_plot_points(picks)
    order = list(dict.fromkeys(picks["strategy"]))
    assert points["strategy"].tolist() == [s for s in order for _ in BOX_QUANTILES]
    for strategy in order:
        mine = points[points["strategy"] == strategy]
        for column in ("n_tokens", "teacher_share"):
            values = picks.loc[picks["strategy"] == strategy, column].dropna().to_numpy(float)
            want = np.quantile(values, BOX_QUANTILES) if len(values) else np.full(len(BOX_QUANTILES), np.nan)
            np.testing.assert_allclose(mine[column].to_numpy(float), want, rtol=1e-12, atol=1e-12)


# ---- several teachers: per-writer quotas, by hand -------------------------------------------------
def test_teacher_quota_by_hand():
    # 4 questions, 2 writers: quota ⌈4 / 2⌉ = 2 each. A's answers have the most Teacher actions
    # everywhere; questions are served strongest first: q3 (9) → A, q1 (8) → A, then A is full:
    # q2 takes B's answer (5), q4 takes B's (0) although A's has 6.
    features = pd.DataFrame({
        "record_id": ["1a", "1b", "2a", "2b", "3a", "3b", "4a", "4b"],
        "question_id": ["q1", "q1", "q2", "q2", "q3", "q3", "q4", "q4"],
        "source": ["A", "B"] * 4,
        "n_teacher": [8, 1, 7, 5, 9, 2, 6, 0],
    })
    got = select(features, "teacher_quota")
    assert got["record_id"].tolist() == ["1a", "2b", "3a", "4b"]  # question order
    assert got["source"].value_counts().to_dict() == {"A": 2, "B": 2}
    assert select(features, "max_teacher_count")["record_id"].tolist() == ["1a", "2a", "3a", "4a"]


def test_teacher_quota_takes_the_best_answer_when_no_writer_has_quota_left():
    # 3 questions, writers A and B (quota 2 each), but q3 has only A's answers and A is full
    features = pd.DataFrame({
        "record_id": ["1a", "2a", "3a", "3a2", "1b"],
        "question_id": ["q1", "q2", "q3", "q3", "q1"],
        "source": ["A", "A", "A", "A", "B"],
        "n_teacher": [5, 9, 1, 3, 4],
    })
    # strongest first: q2 (9) → 2a, q1 (5) → 1a (A full now), q3 (3): no open writer → best, 3a2
    assert select(features, "teacher_quota")["record_id"].tolist() == ["1a", "2a", "3a2"]


def test_teacher_quota_needs_every_source():
    features = pd.DataFrame({"record_id": ["x", "y"], "question_id": ["q", "q"], "source": ["A", None],
                             "n_teacher": [1, 2]})
    with pytest.raises(ValueError, match="every answer's source"):
        select(features, "teacher_quota")


def _two_writer_actions(sources: list[str]) -> pd.DataFrame:
    """One action per answer, two answers per question; Teacher iff p_T − p_S > 0.1."""
    n = len(sources)
    return pd.DataFrame({"record_id": [f"r{i}" for i in range(n)], "question_id": [f"q{i // 2}" for i in range(n)],
                         "source": sources, "p_teacher": [0.9, 0.2] * (n // 2), "p_student": [0.1] * n,
                         "n_tokens_student": [3] * n, "sum_logp_student": [-3.0] * n})


def test_features_name_the_writer_only_when_there_are_several():
    two = response_features(_two_writer_actions(["A", "B", "A", "B"]), 0.1)
    assert two["source"].tolist() == ["A", "B", "A", "B"] and two["n_teacher"].tolist() == [1, 0, 1, 0]
    assert strategies_for(two) == STRATEGIES + ("teacher_quota",)
    # one writer: the single-teacher features, column for column as before several teachers
    one = response_features(_two_writer_actions(["A"] * 4), 0.1)
    assert "source" not in one.columns and strategies_for(one) == STRATEGIES
    with pytest.raises(ValueError, match="two or more writers"):
        select(one, "teacher_quota")
