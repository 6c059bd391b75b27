"""Selection strategies against hand computations on a small constructed table."""

import math

import pandas as pd
import pytest

from rdpt_core.selection import agreement, response_features, select


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
    m = agreement(response_features(table(), 0.1), ["max_teacher_count", "longest", "grape", "min_teacher_count"])
    assert m.loc["max_teacher_count", "longest"] == 0.5  # agree on q2 only
    assert m.loc["grape", "min_teacher_count"] == 1.0 and m.loc["longest", "grape"] == 0.5
    assert math.isclose(m.loc["longest", "longest"], 1.0)
