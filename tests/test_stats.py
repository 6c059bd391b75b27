"""rdpt_core.stats against hand computations on small constructed tables."""

import math

import numpy as np
import pandas as pd
import pytest

from rdpt_core import stats


def test_wilson_interval_by_hand():
    lo, hi = stats.wilson([5, 0, 10], [10, 10, 10])
    # 5/10: centre 0.5, half = 1.96 * sqrt(0.025 + 0.009604) / 1.38416 = 0.26341
    assert lo[0] == pytest.approx(0.23659, abs=1e-4) and hi[0] == pytest.approx(0.76341, abs=1e-4)
    assert lo[1] == pytest.approx(0.0, abs=1e-12) and hi[1] == pytest.approx(0.27754, abs=1e-4)
    assert hi[2] == pytest.approx(1.0) and lo[2] == pytest.approx(0.72246, abs=1e-4)
    nan_lo, _ = stats.wilson([0], [0])
    assert math.isnan(nan_lo[0])


def tiny():
    rows = [  # record, correct, classes by position, cum_tokens
        ("r1", True, ["Teacher", "Boosted"], [1000, 3000]),
        ("r2", True, ["Teacher", "Unscored", "Student"], [2000, 6000, 6500]),
        ("r3", False, ["Student"], [500]),
    ]
    return pd.DataFrame([
        {"record_id": r, "correct": c, "action_index": j, "cls": cls, "cum_tokens": t}
        for r, c, classes, cums in rows for j, (cls, t) in enumerate(zip(classes, cums))
    ])


def test_position_curves_by_hand():
    out = stats.position_curves(tiny(), min_n=1).set_index(["answer", "action_index", "cls"])
    assert out.loc[("correct", 0, "Teacher"), ["k", "n", "share"]].tolist() == [2, 2, 1.0]
    assert out.loc[("correct", 0, "Student"), ["k", "n", "share"]].tolist() == [0, 2, 0.0]
    # r2's second action is Unscored: n at position 1 counts r1 only
    assert out.loc[("correct", 1, "Boosted"), ["k", "n"]].tolist() == [1, 1]
    assert out.loc[("incorrect", 0, "Student"), ["k", "n"]].tolist() == [1, 1]
    lo, hi = stats.wilson([2], [2])
    assert out.loc[("correct", 0, "Teacher"), "lo"] == pytest.approx(lo[0])
    # minimum n: only the correct responses' position 0 has n >= 2
    kept = stats.position_curves(tiny(), min_n=2)
    assert set(zip(kept["answer"], kept["action_index"])) == {("correct", 0)}


def test_token_marks_by_hand():
    # mean cumulative tokens by position: 1166.7, 4500, 6500 -> 4k reached at position 1
    marks = stats.token_marks(tiny(), step=4000)
    assert marks.values.tolist() == [[4000, 1]]
    assert stats.token_marks(tiny(), step=2000).values.tolist() == [[2000, 1], [4000, 1], [6000, 2]]


def test_histogram_and_overlap_by_hand():
    h = stats.histogram([0.0, 0.5, 1.0], bins=2)  # [0, .5) and [.5, 1]
    assert h.tolist() == pytest.approx([1 / 3, 2 / 3])
    assert stats.overlap(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == 0.5
    assert stats.overlap(h, h) == pytest.approx(1.0)


def test_response_proportions_skip_unscored():
    props = stats.response_proportions(tiny())
    assert props.loc["r2", "Teacher"] == 0.5 and props.loc["r2", "Student"] == 0.5
    assert props.loc["r1", "Boosted"] == 0.5 and props.loc["r3", "Student"] == 1.0


def test_beta_overlaps_and_suggestion_by_hand():
    # two responses, two actions each; p_D = p_S so |Δ_SD| = 0; Δ_TS decides.
    table = pd.DataFrame({
        "record_id": ["a", "a", "b", "b"], "action_index": [0, 1, 0, 1], "correct": [True] * 4,
        "p_teacher": [0.50, 0.90, 0.62, 0.30], "p_student": [0.40, 0.40, 0.40, 0.40],
        "p_distilled": [0.40, 0.40, 0.40, 0.40],
    })
    # Δ_TS = .10, .50, .22, -.10 ; alpha = 0.05 so nothing is Shared
    # beta .05: T, T, T, S -> a: T 1.0; b: T .5, S .5
    # beta .15: B, T, T, B -> a: T .5 B .5; b: T .5 B .5
    out = stats.beta_overlaps(table, alpha=0.05, betas=[0.05, 0.15], bins=2)
    row = lambda b, x, y: out[(out.beta == b) & (out.class_a == x) & (out.class_b == y)].iloc[0]  # noqa: E731
    # beta .05: Teacher props [1.0, .5] -> bins [0, 1]; Student props [0, .5] -> [.5, .5]
    assert row(0.05, "Student", "Teacher").overlap == pytest.approx(0.5) and row(0.05, "Student", "Teacher").top_pair
    # beta .15: Boosted [.5, .5] and Teacher [.5, .5] -> identical histograms
    assert row(0.15, "Boosted", "Teacher").overlap == pytest.approx(1.0)
    assert stats.suggest_beta(out) == 0.05


def test_suggest_beta_breaks_ties_towards_the_smaller_beta():
    frame = pd.DataFrame({"beta": [0.1, 0.05, 0.2], "class_a": "A", "class_b": "B",
                          "overlap": [0.3, 0.3, 0.1], "top_pair": [True, True, False]})
    assert stats.suggest_beta(frame) == 0.05
    assert stats.beta_grid() == [0.05, 0.1, 0.15, 0.2]


def test_two_proportion_test_by_hand():
    z, p = stats.two_proportion_test(30, 100, 20, 100)
    assert z == pytest.approx(1.63299, abs=1e-4) and p == pytest.approx(0.10247, abs=1e-4)


def test_correct_vs_incorrect_counts():
    out = stats.correct_vs_incorrect(tiny()).set_index("cls")
    assert out.loc["Teacher", ["k_correct", "n_correct", "k_incorrect", "n_incorrect"]].tolist() == [2, 4, 0, 1]
    assert out.loc["Student", "share_incorrect"] == 1.0


def test_mean_probability_curves():
    table = pd.DataFrame({"action_index": [0, 0, 1], "p_teacher": [0.2, 0.4, 0.9], "p_student": [0.1, np.nan, 0.5]})
    out = stats.mean_probability_curves(table, min_n=1).set_index(["action_index", "role"])
    assert out.loc[(0, "teacher"), "p"] == pytest.approx(0.3) and out.loc[(0, "teacher"), "n"] == 2
    assert out.loc[(0, "student"), "p"] == pytest.approx(0.1) and out.loc[(0, "student"), "n"] == 1
