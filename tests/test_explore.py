"""rdpt_core.explore: margins and to_flip, record navigation, the tokens behind an action.

Expected numbers are written out by hand (small tables) or recomputed here the plain way."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import DEMO

from rdpt_core.backends.base import TokenScores
from rdpt_core.explore import (
    TOKENIZER_WARNING,
    action_tokens,
    filter_records,
    neighbours,
    record_summary,
    tokenizers_differ,
    with_margins,
)
from rdpt_core.provenance import classify3, classify4, classify_table
from rdpt_core.records import Record
from rdpt_core.scoring import ScoredCorpus
from rdpt_core.store import load_corpus

NAN = float("nan")


def probs(pt, ps, pd_=None) -> pd.DataFrame:
    data = {"action_index": range(len(pt)), "p_teacher": pt, "p_student": ps}
    if pd_ is not None:
        data["p_distilled"] = pd_
    return pd.DataFrame(data)


# ---- with_margins / to_flip -------------------------------------------------------------------
def test_margins_and_to_flip_by_hand_four_classes():
    # α = 0.2, β = 0.1.
    #   0 Shared:  T .50 S .42 D .46 → Δ_TS .08, Δ_DS .04, Δ_TD .04; max|Δ| .08; mα −.12, mβ −.02.
    #              β is never consulted for Shared: to_flip = |mα| = .12 (not .02).
    #   1 Teacher: T .90 S .60 D .70 → Δ_TS .30, Δ_DS .10, Δ_TD .20; max .30; mα .10, mβ .20 → .10
    #   2 Boosted: T .60 S .55 D .90 → Δ_TS .05, Δ_DS .35, Δ_TD −.30; max .35; mα .15, mβ −.05 → .05
    #   3 Student: T .20 S .90 D .85 → Δ_TS −.70, Δ_DS −.05, Δ_TD −.65; max .70; mα .50, mβ .60 → .50
    #   4 Unscored (no p_D): Δ_TS .10 still known, margins that need D and to_flip are NaN.
    t = classify_table(probs([.5, .9, .6, .2, .5], [.42, .6, .55, .9, .4], [.46, .7, .9, .85, NAN]), .2, .1)
    assert list(t["cls"]) == ["Shared", "Teacher", "Boosted", "Student", "Unscored"]
    m = with_margins(t, alpha=.2, beta=.1)
    np.testing.assert_allclose(m["d_TS"], [.08, .3, .05, -.7, .1], atol=1e-12)
    np.testing.assert_allclose(m["d_DS"], [.04, .1, .35, -.05, NAN], atol=1e-12)
    np.testing.assert_allclose(m["d_TD"], [.04, .2, -.3, -.65, NAN], atol=1e-12)
    np.testing.assert_allclose(m["margin_alpha"], [-.12, .1, .15, .5, NAN], atol=1e-12)
    np.testing.assert_allclose(m["margin_beta"], [-.02, .2, -.05, .6, 0.0], atol=1e-12)
    np.testing.assert_allclose(m["to_flip"], [.12, .1, .05, .5, NAN], atol=1e-12)
    assert list(m["cls"]) == list(t["cls"])  # a copy with columns added
    assert "to_flip" not in t.columns


def test_to_flip_three_classes_and_sorting():
    # No D: 3-class rule, to_flip = |mβ| with β = 0.1.
    t = classify_table(probs([.9, .5, .3, NAN], [.5, .45, .5, .5]), .1, .1)
    assert list(t["cls3"]) == ["Teacher", "Common", "Student", "Unscored"]
    m = with_margins(t, .1, .1)
    assert "margin_alpha" not in m.columns and "d_DS" not in m.columns
    np.testing.assert_allclose(m["margin_beta"], [.3, -.05, .1, NAN], atol=1e-12)
    np.testing.assert_allclose(m["to_flip"], [.3, .05, .1, NAN], atol=1e-12)
    closest = m.sort_values("to_flip", kind="stable")["action_index"].tolist()
    assert closest == [1, 2, 0, 3]  # closest to flipping first, unscored last


def test_to_flip_on_an_exact_threshold_is_zero():
    # 0.3 − 0.2 is 0.09999999999999998 in floats; in decimal it equals β = 0.1, and provenance
    # counts it as inside (Boosted / Common). It sits on the threshold: to_flip is exactly 0.
    t = classify_table(probs([.3], [.2], [.9]), .1, .1)
    assert t["cls"][0] == "Boosted" and t["cls3"][0] == "Common"
    m4 = with_margins(t, .1, .1)
    assert m4["to_flip"][0] == 0.0
    m3 = with_margins(t.drop(columns=["p_distilled", "cls"]), .1, .1)
    assert m3["to_flip"][0] == 0.0
    # Same for α: max|Δ| = |0.3 − 0.2| = 0.1 = α → Shared, on the edge of the box.
    t = classify_table(probs([.3], [.2], [.25]), .1, .5)
    assert t["cls"][0] == "Shared"
    assert with_margins(t, .1, .5)["to_flip"][0] == 0.0


def test_to_flip_is_inf_when_only_a_negative_threshold_would_flip():
    # p_T = p_S = p_D: Shared at every α ≥ 0, and Common at every β ≥ 0: nothing flips it.
    t = classify_table(probs([.4, .4], [.4, .4], [.4, .9]), .1, .1)
    assert list(t["cls"]) == ["Shared", "Boosted"] and list(t["cls3"]) == ["Common", "Common"]
    m = with_margins(t, .1, .1)
    # Row 1 is Boosted with Δ_TS = 0: lowering β cannot help, raising α to 0.5 can.
    assert m["to_flip"][0] == math.inf and m["to_flip"][1] == pytest.approx(.4)
    assert with_margins(t.drop(columns=["p_distilled"]), .1, .1)["to_flip"].tolist() == [math.inf, math.inf]


@pytest.mark.parametrize("with_d", [True, False])
def test_to_flip_is_the_smallest_single_threshold_move(with_d):
    """Brute force against provenance: moving α or β by less than to_flip changes nothing;
    moving the right one by a hair more than to_flip changes the class."""
    rng = np.random.default_rng(7)
    n = 400
    p = rng.random((3, n)).round(2)  # 2 decimals: many exact ties with thresholds too
    alpha, beta = .15, .1

    def classes(a, b):
        return classify4(*p, a, b) if with_d else classify3(p[0], p[1], b)

    t = probs(*p) if with_d else probs(p[0], p[1])
    flip = with_margins(t, alpha, beta)["to_flip"].to_numpy()
    base = classes(alpha, beta)
    for i in range(n):
        f = flip[i]
        if f == 0.0:  # on a threshold: some move of 1e-9 flips it
            moves = [(alpha + s * 1e-9, beta) for s in (-1, 1)] + [(alpha, beta + s * 1e-9) for s in (-1, 1)]
            moves = [(a, b) for a, b in moves if 0 <= a <= 1 and 0 <= b <= 1]
            assert any(classes(a, b)[i] != base[i] for a, b in moves), i
            continue
        for a, b in [(alpha + s * (f - 1e-9), beta) for s in (-1, 1)] + [(alpha, beta + s * (f - 1e-9)) for s in (-1, 1)]:
            if 0 <= a <= 1 and 0 <= b <= 1:
                assert classes(a, b)[i] == base[i], (i, f, a, b)
        if math.isinf(f):
            continue
        moves = [(alpha + s * (f + 1e-9), beta) for s in (-1, 1)] + [(alpha, beta + s * (f + 1e-9)) for s in (-1, 1)]
        moves = [(a, b) for a, b in moves if 0 <= a <= 1 and 0 <= b <= 1]
        assert any(classes(a, b)[i] != base[i] for a, b in moves), (i, f)


def test_with_margins_checks_its_input():
    with pytest.raises(ValueError, match="p_student"):
        with_margins(pd.DataFrame({"p_teacher": [.5]}), .1, .1)
    with pytest.raises(ValueError, match="alpha"):
        with_margins(probs([.5], [.5]), 1.5, .1)


# ---- record summary, filters, navigation ------------------------------------------------------
def action_rows() -> pd.DataFrame:
    """r1: Teacher, Teacher, Common; r2: Student, Unscored; r3: Common. (r4 has no actions.)"""
    rows = [
        ("r1", "q1", True, "a", .9, .5), ("r1", "q1", True, "a", .8, .3), ("r1", "q1", True, "a", .5, .5),
        ("r2", "q1", False, "b", .1, .6), ("r2", "q1", False, "b", NAN, .6),
        ("r3", "q2", None, "a", .5, .45),
    ]
    t = pd.DataFrame(rows, columns=["record_id", "question_id", "correct", "source", "p_teacher", "p_student"])
    t["action_index"] = t.groupby("record_id").cumcount()
    t["correct"] = t["correct"].astype("boolean")
    return classify_table(t, .1, .1)


RECORDS = [
    Record("r1", "q1", "What is 2+2?", "It is 4.", True, "a"),
    Record("r2", "q1", "What is 2+2?", "Five, I think.", False, "b"),
    Record("r3", "q2", "Name a colour", "Blue.", None, "a"),
    Record("r4", "q3", "Find the NEEDLE", "A haystack with a Needle in it.", True, None),
]


def test_record_summary_counts_and_shares():
    s = record_summary(action_rows(), "cls3")
    assert s["record_id"].tolist() == ["r1", "r2", "r3"]
    assert s["question_id"].tolist() == ["q1", "q1", "q2"]
    assert s["correct"].tolist() == [True, False, pd.NA]
    assert s["source"].tolist() == ["a", "b", "a"]
    assert s["n_actions"].tolist() == [3, 2, 1] and s["n_scored"].tolist() == [3, 1, 1]
    np.testing.assert_allclose(s["share_Teacher"], [2 / 3, 0, 0])
    np.testing.assert_allclose(s["share_Common"], [1 / 3, 0, 1])
    np.testing.assert_allclose(s["share_Student"], [0, 1, 0])  # over the scored action only
    assert [c for c in s.columns if c.startswith("share_")] == ["share_Common", "share_Teacher", "share_Student"]
    with pytest.raises(ValueError):
        record_summary(action_rows(), "kind")


def test_record_summary_four_classes_and_min_to_flip():
    t = classify_table(probs([.5, .9, .3], [.5, .5, .5], [.5, .5, .5]), .1, .1)
    t["record_id"], t["question_id"], t["correct"], t["source"] = ["x", "x", "y"], "q", True, "s"
    s = record_summary(with_margins(t, .1, .1), "cls")
    assert [c for c in s.columns if c.startswith("share_")] == [
        "share_Shared", "share_Teacher", "share_Student", "share_Boosted"]
    np.testing.assert_allclose(s["share_Shared"], [.5, 0])
    np.testing.assert_allclose(s["share_Student"], [0, 1])
    # x: Shared at max|Δ| 0 → inf; Teacher: mα .3, mβ .3 → .3.  y: Student, mα .1, mβ .1 → .1
    np.testing.assert_allclose(s["min_to_flip"], [.3, .1], atol=1e-12)


def test_filter_by_correctness_source_and_class():
    s = record_summary(action_rows(), "cls3")
    assert filter_records(s, RECORDS) == ["r1", "r2", "r3", "r4"]  # r4 unscored, still there
    assert filter_records(s, RECORDS, correct=True) == ["r1", "r4"]
    assert filter_records(s, RECORDS, correct=False) == ["r2"]
    assert filter_records(s, RECORDS, correct=None) == ["r3"]
    assert filter_records(s, RECORDS, sources=["a"]) == ["r1", "r3"]
    assert filter_records(s, RECORDS, sources=[None, "b"]) == ["r2", "r4"]
    assert filter_records(s, RECORDS, has_class="Teacher") == ["r1"]
    assert filter_records(s, RECORDS, has_class="Common") == ["r1", "r3"]
    assert filter_records(s, RECORDS, has_class="Unscored") == ["r2"]
    assert filter_records(s, RECORDS, correct=True, sources=["a"], has_class="Common") == ["r1"]
    with pytest.raises(ValueError):
        filter_records(s, RECORDS, has_class="Boosted")  # not a 3-class class
    with pytest.raises(ValueError):
        filter_records(s, RECORDS, correct="yes")


def test_filter_by_search_in_response_or_prompt():
    s = record_summary(action_rows(), "cls3")
    assert filter_records(s, RECORDS, search="needle") == ["r4"]  # response and prompt, any case
    assert filter_records(s, RECORDS, search="2+2") == ["r1", "r2"]  # prompt; literal, not a regex
    assert filter_records(s, RECORDS, search="BLUE") == ["r3"]
    assert filter_records(s, RECORDS, search="is 4.") == ["r1"]
    assert filter_records(s, RECORDS, search="4.F") == []  # no match across response and prompt
    assert filter_records(s, RECORDS, search="nothing like this") == []


def test_sort_is_stable_and_puts_unscored_last():
    s = record_summary(action_rows(), "cls3")
    # share_Common: r1 1/3, r2 0, r3 1, r4 missing
    assert filter_records(s, RECORDS, sort_by="share_Common") == ["r3", "r1", "r2", "r4"]
    assert filter_records(s, RECORDS, sort_by="share_Common", descending=False) == ["r2", "r1", "r3", "r4"]
    # ties keep the input order in both directions
    assert filter_records(s, RECORDS, sort_by="share_Teacher") == ["r1", "r2", "r3", "r4"]
    assert filter_records(s, RECORDS, sort_by="share_Teacher", descending=False) == ["r2", "r3", "r1", "r4"]
    assert filter_records(s, RECORDS, sort_by="n_actions", has_class="Common") == ["r1", "r3"]
    with pytest.raises(ValueError):
        filter_records(s, RECORDS, sort_by="nope")


def test_summary_rows_without_a_record_are_candidates_too():
    s = record_summary(action_rows(), "cls3")
    assert filter_records(s, RECORDS[:1]) == ["r1", "r2", "r3"]
    assert filter_records(s, RECORDS[:1], correct=False) == ["r2"]
    assert filter_records(s, RECORDS[:1], search="x") == []


def test_neighbours():
    ids = ["a", "b", "c"]
    assert neighbours(ids, "a") == (None, "b")
    assert neighbours(ids, "b") == ("a", "c")
    assert neighbours(ids, "c") == ("b", None)
    assert neighbours(ids, "zz") == (None, "a")  # filtered out: "next" enters the list
    assert neighbours([], "a") == (None, None)
    assert neighbours(["a"], "a") == (None, None)


# ---- tokens of one action ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo():
    corpus = load_corpus(DEMO)
    return corpus, corpus.actions("paper")


def test_action_tokens_add_up_to_the_action_table(demo):
    corpus, table = demo
    longest = table.groupby("record_id").size().sort_values(ascending=False).index[:4]
    rows = table[table["record_id"].isin(longest)]
    assert len(rows) >= 15
    responses = {r.record_id: r.response for r in corpus.records}
    covered = 0
    for row in rows.to_dict("records"):
        tokens = action_tokens(corpus, row["record_id"], row["action_index"])
        response = responses[row["record_id"]]
        assert set(tokens["role"]) == {"teacher", "student", "distilled"}
        for role, part in tokens.groupby("role"):
            scored = part[part["scored"]]
            assert len(scored) == row[f"n_tokens_{role}"]
            assert math.isclose(scored["logprob"].sum(), row[f"sum_logp_{role}"], rel_tol=0, abs_tol=1e-9)
            assert np.allclose(part["p"], np.exp(part["logprob"]))
            assert (part["scored"] == np.isfinite(part["logprob"])).all()
            assert [response[s:e] for s, e in zip(part["start"], part["end"])] == part["text"].tolist()
            assert part["token_index"].is_monotonic_increasing
            if not part["straddle"].any():
                starts, ends = part["start"].tolist(), part["end"].tolist()
                # the tokens are contiguous (no gap), and cover the action when they start and end
                # with it; a character split over two byte-level tokens ("÷") belongs to both, so
                # consecutive spans may overlap by that character
                assert all(start <= end for start, end in zip(starts[1:], ends[:-1]))
                assert all(start >= end - 1 for start, end in zip(starts[1:], ends[:-1]))
                if starts[0] == row["start"] and ends[-1] == row["end"]:
                    covered += 1
    assert covered >= 30


def synthetic_corpus() -> ScoredCorpus:
    # "Ab. Cd." → actions "Ab." [0, 3) and " Cd." [3, 7)
    offsets = np.array([[0, 1], [1, 2], [2, 4], [4, 4], [4, 7]])
    logp = np.array([-0.5, NAN, -1.0, -0.25, -2.0])
    straddle = np.array([True, False, False, False, False])
    teacher = TokenScores(np.arange(5), offsets, logp, np.zeros(5, bool), straddle)
    student = TokenScores(np.arange(2), np.array([[0, 3], [3, 7]]), np.array([-0.1, -0.2]),
                          np.array([False, True]), np.zeros(2, bool))
    rec = Record("r", "q", "p", "Ab. Cd.")
    return ScoredCorpus([rec], {"teacher": {"r": teacher}, "student": {"r": student}}, (),
                        {"teacher": "t", "student": "s"})


def test_action_tokens_follow_the_token_rule():
    corpus = synthetic_corpus()
    # token 0 straddles → action 0; ". " is a 1–1 tie → the earlier action; the zero-width token
    # goes with the next token (action 1)
    a0 = action_tokens(corpus, "r", 0)
    a1 = action_tokens(corpus, "r", 1)
    assert a0[a0.role == "teacher"]["token_index"].tolist() == [0, 1, 2]
    assert a1[a1.role == "teacher"]["token_index"].tolist() == [3, 4]
    assert a0[a0.role == "teacher"]["text"].tolist() == ["A", "b", ". "]
    assert a1[a1.role == "teacher"]["text"].tolist() == ["", "Cd."]
    assert a0[a0.role == "teacher"]["scored"].tolist() == [True, False, True]
    assert a0[a0.role == "teacher"]["straddle"].tolist() == [True, False, False]
    assert a1[a1.role == "student"]["truncated"].tolist() == [True]
    assert a0["role"].tolist() == ["teacher"] * 3 + ["student"]  # roles in ROLES order
    table = corpus.actions("paper")
    for role in ("teacher", "student"):
        for k, part in ((0, a0), (1, a1)):
            mine = part[(part.role == role) & part.scored]
            assert len(mine) == table.loc[k, f"n_tokens_{role}"]
            assert math.isclose(mine["logprob"].sum(), table.loc[k, f"sum_logp_{role}"])
    assert a0[a0.role == "teacher"]["logprob"].sum() == -1.5  # by hand: −0.5 − 1.0
    with pytest.raises(IndexError):
        action_tokens(corpus, "r", 2)
    with pytest.raises(KeyError):
        action_tokens(corpus, "nope", 0)


def test_tokenizers_differ():
    corpus = synthetic_corpus()
    assert tokenizers_differ(corpus, "r") == {("teacher", "student"): True}
    same = ScoredCorpus(corpus.records, {"teacher": corpus.tokens["teacher"], "student": corpus.tokens["teacher"]},
                        (), corpus.models)
    assert tokenizers_differ(same, "r") == {("teacher", "student"): False}
    assert "sum_logp / n_chars" in TOKENIZER_WARNING


def test_tokenizers_differ_on_the_demo_corpus(demo):
    corpus, _ = demo
    # teacher SmolLM2 vs student Gemma 3 (and its distilled copy, same tokenizer)
    rid = corpus.records[0].record_id
    assert tokenizers_differ(corpus, rid) == {
        ("teacher", "student"): True, ("teacher", "distilled"): True, ("student", "distilled"): False}


def test_filter_with_an_empty_summary_still_finds_records():
    empty = record_summary(action_rows().iloc[:0], "cls3")
    assert empty.empty and "share_Teacher" in empty.columns
    assert filter_records(empty, RECORDS, correct=True, search="needle") == ["r4"]
    assert filter_records(empty, RECORDS, sort_by="n_actions") == ["r1", "r2", "r3", "r4"]
    assert filter_records(empty, RECORDS, has_class="Teacher") == []
