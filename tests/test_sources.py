"""Source comparison against hand computations: length statistics, perplexity, difficulty."""

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from rdpt_core.backends.base import TokenScores
from rdpt_core.records import Record
from rdpt_core.sources import adaptivity, difficulty, histogram, length_stats, length_vs_difficulty, response_table


def scores(logps: list[float]) -> TokenScores:
    n = len(logps)
    return TokenScores(token_ids=np.arange(n), offsets=np.array([[i, i + 1] for i in range(n)]).reshape(n, 2),
                       logprobs=np.array(logps, dtype=float), truncated=np.zeros(n, bool),
                       straddle=np.zeros(n, bool))


# source A answers q1 (right, 2 tokens), q2 (wrong, 4 tokens) and q3 twice (6 right, 4 wrong);
# source B answers q1 (right, 3), q2 (right, 5) and q3 (wrong, 9); C answers q1 only (unknown)
ROWS = [
    ("a1", "q1", "A", True, [-1.0, -1.0]),
    ("a2", "q2", "A", False, [-0.5, -0.5, -0.5, -0.5]),
    ("a3", "q3", "A", True, [-0.2] * 6),
    ("a4", "q3", "A", False, [-0.3] * 4),
    ("b1", "q1", "B", True, [-2.0, -1.0, -3.0]),
    ("b2", "q2", "B", True, [-1.0] * 5),
    ("b3", "q3", "B", False, [float("nan"), -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5]),
]


def table(with_c: bool = False) -> pd.DataFrame:
    rows = ROWS + ([("c1", "q1", "C", None, [-1.0])] if with_c else [])
    records = [Record(rid, q, "p", "x" * len(lp), ok, src) for rid, q, src, ok, lp in rows]
    return response_table(records, {rid: scores(lp) for rid, _, _, _, lp in rows})


def test_length_statistics_by_hand():
    stats = length_stats(table()).set_index("source")
    a, b = [2, 4, 6, 4], [3, 5, 9]
    assert stats.loc["A", "responses"] == 4 and stats.loc["A", "mean"] == 4.0
    assert stats.loc["A", "std"] == pytest.approx(statistics.stdev(a))  # sample std
    assert stats.loc["B", "std"] == pytest.approx(statistics.stdev(b))
    assert stats.loc["A", "cv"] == pytest.approx(statistics.stdev(a) / 4.0)
    assert (stats.loc["B", "min"], stats.loc["B", "q50"], stats.loc["B", "max"]) == (3, 5, 9)
    # linear-interpolation quantiles: B sorted 3, 5, 9 -> q25 = 3 + 0.5 * 2 = 4, q90 = 5 + 0.8 * 4 = 8.2
    assert stats.loc["B", "q25"] == pytest.approx(4.0) and stats.loc["B", "q90"] == pytest.approx(8.2)
    assert stats.loc["A", "accuracy"] == 0.5 and stats.loc["B", "accuracy"] == pytest.approx(2 / 3)


def test_perplexity_is_token_weighted_and_skips_tokens_without_a_logprob():
    stats = length_stats(table()).set_index("source")
    a_sum = -2.0 - 2.0 - 1.2 - 1.2
    assert stats.loc["A", "perplexity"] == pytest.approx(math.exp(-a_sum / 16))
    b_sum = -6.0 - 5.0 - 12.0  # b3's first token has no log-prob: 8 of its 9 tokens count
    assert stats.loc["B", "perplexity"] == pytest.approx(math.exp(-b_sum / 16))
    per_b = [math.exp(2.0), math.exp(1.0), math.exp(1.5)]
    assert stats.loc["B", "median_response_perplexity"] == pytest.approx(statistics.median(per_b))


def test_difficulty_is_the_share_of_sources_correct_on_shared_questions():
    diff = difficulty(table()).set_index("question_id")["solve_rate"]
    # q1: A 1, B 1 -> 1; q2: A 0, B 1 -> 0.5; q3: A 1/2, B 0 -> 0.25
    assert diff.to_dict() == {"q1": 1.0, "q2": 0.5, "q3": 0.25}
    # C answers only q1 and without a label: no question is shared by all three sources
    assert difficulty(table(with_c=True)).empty


def test_length_against_difficulty_and_adaptivity():
    points = length_vs_difficulty(table()).set_index(["source", "question_id"])
    assert points.loc[("A", "q3"), "mean_length"] == 5.0 and points.loc[("A", "q3"), "solve_rate"] == 0.25
    # three shared questions: too few for a correlation (ρ and p are NaN, the note says why)
    few = adaptivity(table()).set_index("source")
    assert few["questions"].tolist() == [3, 3]
    assert few["spearman_length_vs_solve_rate"].isna().all() and few["p_value"].isna().all()
    assert few.loc["A", "note"] == "too few questions (3 < 5)"
    # the rank correlation itself: lowering the minimum gives ρ = -1 for both (longer on harder)
    rho = adaptivity(table(), min_questions=3).set_index("source")["spearman_length_vs_solve_rate"]
    assert rho["A"] == pytest.approx(-1.0) and rho["B"] == pytest.approx(-1.0)


def many_questions() -> pd.DataFrame:
    """Two sources over seven questions; q-k is solved by A when k is even and by B when k < 4."""
    lengths = {"A": [3, 8, 4, 9, 5, 5, 7], "B": [2, 4, 6, 3, 9, 9, 12]}
    rows = []
    for source, per_question in lengths.items():
        for k, n in enumerate(per_question):
            ok = k % 2 == 0 if source == "A" else k < 4
            rows.append((f"{source}{k}", f"q{k}", source, ok, [-1.0] * n))
    records = [Record(rid, q, "p", "x" * len(lp), ok, src) for rid, q, src, ok, lp in rows]
    return response_table(records, {rid: scores(lp) for rid, _, _, _, lp in rows})


def test_adaptivity_is_scipy_spearman_with_its_p_value():
    from scipy.stats import spearmanr

    out = adaptivity(many_questions()).set_index("source")
    lengths = {"A": [3, 8, 4, 9, 5, 5, 7], "B": [2, 4, 6, 3, 9, 9, 12]}
    # solve rate of q-k: mean over A and B of their 0/1 correctness
    rates = [((k % 2 == 0) + (k < 4)) / 2 for k in range(7)]
    for source in ("A", "B"):
        want = spearmanr(lengths[source], rates)
        assert out.loc[source, "spearman_length_vs_solve_rate"] == pytest.approx(want.statistic)
        assert out.loc[source, "p_value"] == pytest.approx(want.pvalue)
        assert out.loc[source, "questions"] == 7 and out.loc[source, "note"] == ""
    assert out.loc["B", "spearman_length_vs_solve_rate"] < -0.5  # B is longer on the harder questions


def test_adaptivity_says_when_a_side_is_constant():
    frame = many_questions()
    frame["n_tokens"] = 5
    out = adaptivity(frame).set_index("source")
    assert out["spearman_length_vs_solve_rate"].isna().all()
    assert out.loc["A", "note"] == "constant length: no correlation"


def test_histogram_uses_shared_bins():
    hist = histogram(table(), bins=7)
    assert hist.groupby("source")["count"].sum().to_dict() == {"A": 4, "B": 3}
    edges = hist[hist.source == "A"][["bin_start", "bin_end"]].to_numpy()
    assert edges[0, 0] == 2 and edges[-1, 1] == 9
    assert np.array_equal(edges, hist[hist.source == "B"][["bin_start", "bin_end"]].to_numpy())
    # 2..9 in 7 bins of width 1: the 9 falls in the last (closed) bin
    assert hist[hist.source == "B"]["count"].tolist() == [0, 1, 0, 1, 0, 0, 1]
