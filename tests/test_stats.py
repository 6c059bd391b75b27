"""rdpt_core.stats against hand computations on small constructed tables."""

import math
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

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
    # every position is kept; ``enough`` flags n >= min_n (only the correct responses' position 0)
    flagged = stats.position_curves(tiny(), min_n=2)
    assert len(flagged) == len(out)
    enough = flagged.drop_duplicates(["answer", "action_index"]).set_index(["answer", "action_index"])["enough"]
    assert enough.to_dict() == {("correct", 0): True, ("correct", 1): False, ("correct", 2): False,
                                ("incorrect", 0): False}
    note = stats.thin_positions_note(flagged, 2)
    assert note is not None and note.endswith("positions 1–2 (correct responses); 0 (incorrect responses).")
    assert stats.thin_positions_note(stats.position_curves(tiny(), min_n=1), 1) is None


def test_position_ranges_in_the_note():
    assert stats._ranges([7, 0, 1, 2, 5, 8, 2]) == "0–2, 5, 7–8"
    assert stats._ranges([]) == "" and stats._ranges([3]) == "3"


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


def corpus_from(responses):
    """An action table from ``(record_id, correct, classes)``; action j of each response."""
    return pd.DataFrame([{"record_id": rid, "correct": ok, "action_index": j, "cls": cls}
                         for rid, ok, classes in responses for j, cls in enumerate(classes)])


def expected_shares(responses, cls):
    """Per-response share of ``cls`` among scored actions, by a plain loop: (correct, incorrect)."""
    out = {True: [], False: []}
    for _, ok, classes in responses:
        scored = [c for c in classes if c != "Unscored"]
        if ok in out and scored:
            out[ok].append(sum(c == cls for c in scored) / len(scored))
    return out[True], out[False]


def test_correct_vs_incorrect_counts_responses_and_skips_unscored_and_unknown():
    out = stats.correct_vs_incorrect(tiny(), min_responses=1).set_index("cls")
    # correct: r1 (Teacher .5, Boosted .5), r2 (Teacher .5, Student .5); incorrect: r3 (Student 1)
    assert out.loc["Teacher", ["responses_correct", "responses_incorrect"]].tolist() == [2, 1]
    assert out.loc["Teacher", "mean_share_correct_responses"] == pytest.approx(0.5)
    assert out.loc["Student", "mean_share_correct_responses"] == pytest.approx(0.25)
    assert out.loc["Student", "mean_share_incorrect_responses"] == 1.0
    assert out.loc["Student", "difference_correct_minus_incorrect"] == pytest.approx(-0.75)
    assert "k_correct" not in out.columns and "n_correct" not in out.columns
    # with the default minimum (5 per group) there is no test, and the note says why
    small = stats.correct_vs_incorrect(tiny()).set_index("cls")
    assert small["p_value"].isna().all() and small["mann_whitney_u"].isna().all()
    assert small.loc["Teacher", "note"] == "no test: 2 correct responses and 1 incorrect response (fewer than 5)"
    # a response of unknown correctness and an all-Unscored one are left out
    extra = pd.concat([tiny(), corpus_from([("u", None, ["Teacher"]), ("z", True, ["Unscored", "Unscored"])])])
    again = stats.correct_vs_incorrect(extra, min_responses=1).set_index("cls")
    assert again.loc["Teacher", ["responses_correct", "responses_incorrect"]].tolist() == [2, 1]


def test_correct_vs_incorrect_is_mann_whitney_on_response_shares_not_pooled_actions():
    from scipy.stats import mannwhitneyu

    def classes(teacher, total):
        return ["Teacher"] * teacher + ["Student"] * (total - teacher)

    responses = [(f"c{i}", True, classes(t, 4)) for i, t in enumerate([1, 2, 2, 3, 1])]
    responses += [(f"i{i}", False, classes(t, 4) + ["Unscored"]) for i, t in enumerate([2, 1, 3, 2, 2, 1])]
    responses.append(("long", True, classes(300, 300)))  # one long, all-Teacher correct response
    out = stats.correct_vs_incorrect(corpus_from(responses)).set_index("cls")
    for cls in ("Teacher", "Student"):
        x, y = expected_shares(responses, cls)
        want = mannwhitneyu(x, y, alternative="two-sided")
        row = out.loc[cls]
        assert (row["responses_correct"], row["responses_incorrect"]) == (6, 6)
        assert row["mean_share_correct_responses"] == pytest.approx(sum(x) / len(x))
        assert row["mean_share_incorrect_responses"] == pytest.approx(sum(y) / len(y))
        assert row["mann_whitney_u"] == pytest.approx(want.statistic)
        assert row["p_value"] == pytest.approx(want.pvalue) and row["note"] == ""
    # pooling actions as independent trials (two-proportion z-test) would call this decisive ...
    k1, n1 = 9 + 300, 20 + 300  # Teacher actions / scored actions in correct responses
    k2, n2 = 11, 24
    pooled = (k1 + k2) / (n1 + n2)
    z = (k1 / n1 - k2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert math.erfc(abs(z) / math.sqrt(2)) < 0.001
    # ... but per response, one long response is one response: nothing to see
    assert out.loc["Teacher", "p_value"] > 0.2


def test_correct_vs_incorrect_on_an_empty_table():
    out = stats.correct_vs_incorrect(corpus_from([("a", True, ["Unscored"])]))
    assert out.empty and "p_value" in out.columns


def test_mean_probability_curves():
    table = pd.DataFrame({"action_index": [0, 0, 1], "p_teacher": [0.2, 0.4, 0.9], "p_student": [0.1, np.nan, 0.5]})
    out = stats.mean_probability_curves(table, min_n=2).set_index(["action_index", "role"])
    assert out.loc[(0, "teacher"), "p"] == pytest.approx(0.3) and out.loc[(0, "teacher"), "n"] == 2
    assert out.loc[(0, "student"), "p"] == pytest.approx(0.1) and out.loc[(0, "student"), "n"] == 1
    # every position is kept; enough = n >= 2
    assert out["enough"].to_dict() == {(0, "teacher"): True, (0, "student"): False, (1, "teacher"): False,
                                       (1, "student"): False}
    assert stats.thin_positions_note(out.reset_index(), 2).endswith("at positions 0–1.")


# ---- load (issue 12): the corpus page on 10,000 responses ---------------------------------------
def random_classified(n_responses: int, max_actions: int, seed: int = 0) -> pd.DataFrame:
    """A classified action table: 1..max_actions actions per response, every class and Unscored,
    correct / incorrect / unknown responses."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_actions + 1, n_responses)
    record = np.repeat(np.arange(n_responses), sizes)
    verdict = rng.choice(np.array([True, False, None], dtype=object), n_responses, p=[0.5, 0.4, 0.1])
    return pd.DataFrame({
        "record_id": pd.Series(record).map("r{:05d}".format),
        "action_index": np.concatenate([np.arange(s) for s in sizes]),
        "correct": pd.array(verdict[record], dtype="boolean"),
        "cls": rng.choice(["Shared", "Teacher", "Student", "Boosted", "Unscored"], len(record),
                          p=[0.3, 0.25, 0.2, 0.2, 0.05]),
    })


def test_response_proportions_equal_a_crosstab_of_the_scored_actions():
    table = random_classified(400, 12, seed=3)
    table.loc[table["record_id"] == "r00007", "cls"] = "Unscored"  # a response with no scored action
    scored = table[table["cls"] != "Unscored"]
    want = pd.crosstab(scored["record_id"], scored["cls"], normalize="index")  # pandas' own, independent
    pd.testing.assert_frame_equal(stats.response_proportions(table), want, check_exact=True)
    assert "r00007" not in stats.response_proportions(table).index


def _best_time(run, repeats: int = 3) -> float:
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def test_response_proportions_cost_about_one_groupby_on_10k_responses():
    """The corpus page recomputes per-response shares on every α/β step: they must be one
    vectorised pass, not a Python loop over responses. Timed against one groupby over the same
    table (a ratio, so a busy machine slows both)."""
    table = random_classified(10_000, 40)
    reference = _best_time(lambda: table.groupby(["record_id", "cls"]).size())
    shares = _best_time(lambda: stats.response_proportions(table))
    assert shares < 4 * reference, f"response_proportions {shares:.3f} s vs one groupby {reference:.3f} s"


def test_corpus_page_keys_the_corpus_once_per_run_and_caches_by_alpha_beta(monkeypatch):
    """The corpus key reads every token score (~0.5 s on 10,000 responses): one per rerun. A step
    back to an (α, β) already shown recomputes no statistic."""
    from streamlit.testing.v1 import AppTest

    import rdpt_app.loaders as loaders
    import rdpt_app.state as state
    from conftest import REPO

    keys, tests = [], []
    original_key, original_test = loaders.corpus_key, stats.correct_vs_incorrect

    def counted_key(corpus):
        keys.append(1)
        return original_key(corpus)

    for module in (loaders, state):  # state imported the name: patch its binding too
        monkeypatch.setattr(module, "corpus_key", counted_key)
    monkeypatch.setattr(stats, "correct_vs_incorrect", lambda *a, **k: tests.append(1) or original_test(*a, **k))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("pages/corpus_page.py").run()
    keys.clear()
    at.slider(key="w_beta").set_value(0.13).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(keys) == 1
    tests.clear()
    at.slider(key="w_beta").set_value(0.1).run()
    assert not at.exception and tests == []


CLASS_NAMES = ["Shared", "Teacher", "Student", "Boosted", "Unscored"]
responses_strategy = hst.lists(  # (record_id, verdict, classes of its actions)
    hst.tuples(hst.sampled_from([True, False, None]), hst.lists(hst.sampled_from(CLASS_NAMES), min_size=1,
                                                                max_size=8)),
    min_size=1, max_size=25,
).map(lambda rows: [(f"r{i:02d}", ok, classes) for i, (ok, classes) in enumerate(rows)])


@settings(derandomize=True, max_examples=50, deadline=None)
@given(responses_strategy)
def test_response_level_statistics_match_plain_loops(responses):
    """Any corpus (unknown verdicts, all-Unscored responses, missing classes): the vectorised
    shares equal pandas' crosstab, and correct_vs_incorrect's groups, means and U equal a plain
    loop over responses with scipy's test."""
    from scipy.stats import mannwhitneyu

    table = corpus_from(responses)
    scored = table[table["cls"] != "Unscored"]
    want = pd.crosstab(scored["record_id"], scored["cls"], normalize="index")
    pd.testing.assert_frame_equal(stats.response_proportions(table), want, check_exact=True)
    out = stats.correct_vs_incorrect(table, min_responses=1).set_index("cls")
    assert list(out.index) == sorted(set(scored["cls"]))
    for cls in out.index:
        x, y = expected_shares(responses, cls)
        row = out.loc[cls]
        assert (row["responses_correct"], row["responses_incorrect"]) == (len(x), len(y))
        if x:
            assert row["mean_share_correct_responses"] == pytest.approx(sum(x) / len(x))
        if x and y:
            assert row["mann_whitney_u"] == pytest.approx(mannwhitneyu(x, y, alternative="two-sided").statistic)
        else:  # a group without responses: no test, and the note says so
            assert math.isnan(row["p_value"]) and row["note"].startswith("no test: 0 ")


def test_suggest_beta_on_a_table_with_no_class_pair_is_none():
    """One class (or no scored action) at every β gives no pair to compare: no suggestion,
    not a KeyError."""
    from rdpt_core.stats import suggest_beta

    empty = pd.DataFrame({"beta": [], "class_a": [], "class_b": [], "overlap": [], "top_pair": []}, dtype=object)
    assert suggest_beta(empty) is None


def test_a_share_on_a_bin_edge_falls_in_the_bin_it_opens():
    # 3/10, 6/10, 7/10 are bin edges; in binary 0.3 * 10 is 2.9999999999999996, and numpy's
    # histogram put such shares in the bin below
    shares = [3 / 10, 6 / 10, 7 / 10, 0.0, 1.0, 0.35]
    counts = stats.histogram(shares, bins=10) * len(shares)
    expected = [0] * 10
    for bin_index in (3, 6, 7, 0, 9, 3):  # by hand: [0.3, 0.4) holds 0.3 and 0.35; 1.0 in the last
        expected[bin_index] += 1
    assert counts.round().astype(int).tolist() == expected


# ---- several teachers, by hand ------------------------------------------------------------------
def _several_teacher_table():
    # r1: A, A, B (Teacher), one Student; r2: B, Several (Teacher); r3: Boosted by A, one Shared
    return pd.DataFrame({
        "record_id": ["r1"] * 4 + ["r2"] * 2 + ["r3"] * 2,
        "action_index": [0, 1, 2, 3, 0, 1, 0, 1],
        "correct": pd.array([True] * 4 + [False] * 2 + [True] * 2, dtype="boolean"),
        "cls": ["Teacher", "Teacher", "Teacher", "Student", "Teacher", "Teacher", "Boosted", "Shared"],
        "teacher_of": ["A", "A", "B", None, "B", "Several teachers", "A", None],
    })


def test_teacher_shares_by_hand():
    from rdpt_core.stats import teacher_shares

    got = teacher_shares(_several_teacher_table()).set_index("teacher_of")
    # Teacher actions only (the Boosted one in r3 is not a Teacher action): A 2, B 2, Several 1
    assert got["actions"].to_dict() == {"A": 2, "B": 2, "Several teachers": 1}
    assert np.allclose(got["share"], [0.4, 0.4, 0.2])
    assert got["responses"].to_dict() == {"A": 1, "B": 2, "Several teachers": 1}
    # per response: r1 A 2/3, B 1/3; r2 B 1/2, Several 1/2 -> means over the two responses
    assert np.allclose(got["mean_response_share"], [(2 / 3 + 0) / 2, (1 / 3 + 1 / 2) / 2, (0 + 1 / 2) / 2])


def test_teacher_position_curves_by_hand():
    from rdpt_core.stats import teacher_position_curves

    curves = teacher_position_curves(_several_teacher_table(), min_n=1)
    at = curves.set_index(["answer", "action_index", "cls"])["share"]
    # position 0, correct responses r1 (A) and r3 (Boosted, attributed to A): A in 2 of 2
    assert at[("correct", 0, "A")] == 1.0
    # position 1: correct r1 (A) and r3 (Shared) -> A 1/2, Shared 1/2; incorrect r2 -> Several
    assert at[("correct", 1, "A")] == 0.5 and at[("correct", 1, "Shared")] == 0.5
    assert at[("incorrect", 1, "Several teachers")] == 1.0


def test_teacher_statistics_need_a_several_teacher_table():
    from rdpt_core.stats import teacher_position_curves

    with pytest.raises(ValueError, match="several named teachers"):
        teacher_position_curves(_several_teacher_table().drop(columns="teacher_of"))
