"""rdpt_core.origin against counts made by hand on a small constructed action table.

The table: nine actions in four responses, each with its probabilities and, worked out by hand
below, its class at α = 0.1 for β = 0.05, 0.2 and 0.6 (docs/method.md §7: Shared when every
|Δ| ≤ α, then Teacher if Δ_TS > β, Student if −Δ_TS > β, else Boosted; 3 classes: Common when
|Δ_TS| ≤ β). No threshold sits on a Δ, so float rounding cannot move a class.
"""

import math
import re

import numpy as np
import pandas as pd
import pytest

from rdpt_core import origin
from rdpt_core.provenance import classify_table

NAN = float("nan")
PATTERN = r"Plan:|Step \d+ of \d+:|Check:"
ALPHA = 0.1
BETAS = (0.05, 0.2, 0.6)

# record, text, p_T, p_S, p_D, teacher-style?, classes at β = 0.05 / 0.2 / 0.6 (4 classes)
ACTIONS = [
    ("r1", "Plan: add the apples.", 0.95, 0.3, 0.8, True, "TTT"),  # Δ_TS 0.65
    ("r1", " Step 2 of 5: 3 + 4 = 7.", 0.6, 0.5, 0.9, True, "TBB"),  # Δ_TS 0.1, Δ_SD −0.4
    ("r1", " So the answer is 7.", 0.5, 0.5, 0.5, False, "HHH"),  # every Δ 0: sHared
    ("r2", "\n\nCheck: 7 is right.", 0.2, 0.7, 0.6, True, "SSB"),  # Δ_TS −0.5, Δ_TD −0.4
    ("r2", " We add them.", 0.8, 0.4, 0.7, False, "TTB"),  # Δ_TS 0.4, Δ_SD −0.3
    ("r2", " plan: lower case.", 0.3, 0.33, 0.3, False, "HHH"),  # case matters; |Δ| ≤ 0.03
    ("r3", "I think Plan: is not at the start.", 0.4, 0.9, 0.5, False, "SSB"),  # Δ_TS −0.5
    ("r3", " Check: unscored.", NAN, 0.5, 0.5, True, "UUU"),  # no p_T
    ("r4", "Plan: nothing scored.", 0.5, NAN, 0.5, True, "UUU"),  # no p_S: r4 has no scored action
]
STYLED = [a[5] for a in ACTIONS]


def table(distilled: bool = True) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    for record, text, p_t, p_s, p_d, _, _ in ACTIONS:
        j = sum(1 for r in rows if r["record_id"] == record)
        row = {"record_id": record, "question_id": "q", "action_index": j, "text": text, "kind": "sentence",
               "correct": True, "p_teacher": p_t, "p_student": p_s}
        if distilled:
            row["p_distilled"] = p_d
        rows.append(row)
    return pd.DataFrame(rows).astype({"text": "str"})


def classes(beta_index: int) -> pd.DataFrame:
    """The hand classes at BETAS[beta_index] as a ``cls`` column."""
    names = {"T": "Teacher", "B": "Boosted", "S": "Student", "H": "Shared", "U": "Unscored"}
    return table().assign(cls=[names[a[6][beta_index]] for a in ACTIONS])


# ---- known_origin --------------------------------------------------------------------------------
def test_known_origin_matches_at_the_start_after_leading_whitespace():
    got = origin.known_origin(table()["text"], PATTERN)
    assert got.dtype == bool and got.tolist() == STYLED


def test_known_origin_is_positional_whatever_the_index():
    texts = pd.Series(["  Check: x", "no Check: y", "Check:"], index=[10, 3, 7], dtype="str")
    assert origin.known_origin(texts, "Check:").tolist() == [True, False, True]
    assert origin.known_origin(texts.iloc[:0], "Check:").tolist() == []


def test_known_origin_refuses_a_bad_regex_naming_pattern_and_error():
    with pytest.raises(ValueError, match=r"'Plan:\('.*missing \)"):
        origin.known_origin(table()["text"], "Plan:(")


# ---- origin_confusion ----------------------------------------------------------------------------
def test_confusion_by_hand_at_beta_0_2():
    out = origin.origin_confusion(classes(1), "cls", np.array(STYLED))
    # scored actions at β = 0.2: teacher-style r1a0 T, r1a1 B, r2a0 S (3);
    # other r1a2 H, r2a1 T, r2a2 H, r3a0 S (4); the two Unscored ones are left out
    assert out.index.tolist() == ["Boosted", "Shared", "Student", "Teacher"]
    assert out["teacher_style"].tolist() == [1, 0, 1, 1]
    assert out["other"].tolist() == [0, 2, 1, 1]
    assert out["share_of_teacher_style"].tolist() == pytest.approx([1 / 3, 0, 1 / 3, 1 / 3])
    assert out["share_of_other"].tolist() == pytest.approx([0, 2 / 4, 1 / 4, 1 / 4])


def test_confusion_without_styled_actions_has_nan_shares_and_checks_length():
    out = origin.origin_confusion(classes(1), "cls", np.zeros(len(ACTIONS), bool))
    assert out["teacher_style"].sum() == 0 and out["share_of_teacher_style"].isna().all()
    assert out["share_of_other"].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="9 actions"):
        origin.origin_confusion(classes(1), "cls", np.zeros(3, bool))
    unscored = classes(1).assign(cls="Unscored")
    assert origin.origin_confusion(unscored, "cls", np.array(STYLED)).empty


# ---- origin_agreement ----------------------------------------------------------------------------
def test_agreement_by_hand_four_classes():
    out = origin.origin_agreement(table(), PATTERN, ALPHA, BETAS)
    assert out["beta"].tolist() == list(BETAS)
    assert out["n_teacher_style"].tolist() == [3, 3, 3] and out["n_other"].tolist() == [4, 4, 4]
    # β = 0.05: Teacher = r1a0, r1a1 (style) and r2a1 (other)
    # β = 0.2:  r1a1 turns Boosted; Teacher = r1a0 (style), r2a1 (other)
    # β = 0.6:  only r1a0 stays Teacher; r1a1 and r2a0 (style) are Boosted
    assert out["teacher_recall"].tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 3])
    assert out["teacher_or_boosted_recall"].tolist() == pytest.approx([2 / 3, 2 / 3, 3 / 3])
    assert out["teacher_precision"].tolist() == pytest.approx([2 / 3, 1 / 2, 1 / 1])
    assert out["other_as_teacher"].tolist() == pytest.approx([1 / 4, 1 / 4, 0 / 4])


def test_agreement_by_hand_three_classes():
    out = origin.origin_agreement(table(distilled=False), PATTERN, ALPHA, (0.05, 0.6))
    # Common when |Δ_TS| ≤ β. β = 0.05: Teacher r1a0, r1a1, r2a1 as above (r2a2's |Δ_TS| = 0.03: Common).
    # β = 0.6: only r1a0 (Δ_TS 0.65) is Teacher; Boosted does not exist, so both recalls agree
    assert out["n_teacher_style"].tolist() == [3, 3] and out["n_other"].tolist() == [4, 4]
    assert out["teacher_recall"].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert out["teacher_or_boosted_recall"].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert out["teacher_precision"].tolist() == pytest.approx([2 / 3, 1.0])
    assert out["other_as_teacher"].tolist() == pytest.approx([1 / 4, 0.0])


def test_agreement_is_nan_where_a_denominator_is_zero():
    none = origin.origin_agreement(table(), "Zebra:", ALPHA, (0.05,)).iloc[0]
    assert none["n_teacher_style"] == 0 and none["n_other"] == 7
    assert math.isnan(none["teacher_recall"]) and math.isnan(none["teacher_or_boosted_recall"])
    assert none["teacher_precision"] == 0.0 and none["other_as_teacher"] == pytest.approx(3 / 7)
    every = origin.origin_agreement(table(), ".*", ALPHA, (0.05,)).iloc[0]
    assert every["n_other"] == 0 and math.isnan(every["other_as_teacher"])
    # no Δ_TS exceeds β = 1: nothing is Teacher, so precision has no denominator
    assert math.isnan(origin.origin_agreement(table(), PATTERN, ALPHA, (1.0,)).iloc[0]["teacher_precision"])


# ---- origin_by_response --------------------------------------------------------------------------
def test_by_response_by_hand_at_beta_0_2():
    out = origin.origin_by_response(classes(1), "cls", np.array(STYLED)).set_index("record_id")
    # r1: style r1a0 T, r1a1 B; r2: style r2a0 S; r3: its styled action is Unscored; r4: nothing scored
    assert out.index.tolist() == ["r1", "r2", "r3"]
    assert out["n_teacher_style"].tolist() == [2, 1, 0]
    assert out["n_teacher_style_as_teacher"].tolist() == [1, 0, 0]
    assert out.loc["r1", "teacher_recall"] == 0.5 and out.loc["r2", "teacher_recall"] == 0.0
    assert math.isnan(out.loc["r3", "teacher_recall"])


def test_by_response_with_categorical_ids_keeps_only_responses_with_scored_actions():
    t = classes(1)
    t["record_id"] = t["record_id"].astype(pd.CategoricalDtype(["r0", "r1", "r2", "r3", "r4"]))
    out = origin.origin_by_response(t, "cls", np.array(STYLED))
    assert out["record_id"].astype(str).tolist() == ["r1", "r2", "r3"]


# ---- several teachers, by hand ------------------------------------------------------------------
PATTERNS = {"steps": r"Step \d+ →", "narrative": r"After that,"}


def _two_teacher_table():
    # p per action: steps teacher, narrative teacher, student, distilled
    rows = [
        (" Step 1 → 2 + 2 = 4.", 0.9, 0.2, 0.1, 0.9),    # marked steps; Teacher, margin 0.7 → steps
        (" Step 2 → 4 × 2 = 8.", 0.6, 0.5, 0.1, 0.6),    # marked steps; Teacher, margin 0.1 → γ decides
        (" After that, 8 − 1 = 7.", 0.3, 0.8, 0.1, 0.8),  # marked narrative; Teacher → narrative
        (" After that, 7 + 1 = 8.", 0.2, 0.2, 0.9, 0.9),  # marked narrative; Student
        (" So it is 8.", 0.7, 0.7, 0.1, 0.7),            # neither; Teacher, tie → several
        (" The answer is 8.", 0.5, 0.5, 0.5, 0.5),       # neither; Shared
    ]
    texts, p_a, p_b, p_s, p_d = zip(*rows)
    return pd.DataFrame({"record_id": "r", "action_index": range(len(rows)), "text": texts,
                         "p_teacher_steps": p_a, "p_teacher_narrative": p_b, "p_student": p_s, "p_distilled": p_d})


def test_known_teachers_by_marker_and_overlapping_styles_are_refused():
    from rdpt_core.origin import NEITHER, known_teachers

    table = _two_teacher_table()
    assert known_teachers(table["text"], PATTERNS).tolist() == ["steps", "steps", "narrative", "narrative",
                                                                NEITHER, NEITHER]
    with pytest.raises(ValueError, match="action 0 .* more than one teacher"):
        known_teachers(table["text"], {"a": r"Step", "b": r"Step 1"})


def test_attribution_confusion_by_hand():
    from rdpt_core.origin import attribution_confusion, known_teachers

    table = _two_teacher_table()
    classified = classify_table(table, 0.1, 0.1, gamma=0.05)
    got = attribution_confusion(classified, known_teachers(table["text"], PATTERNS))
    # γ = 0.05: action 1's margin 0.1 names steps
    assert got.loc["steps", "steps"] == 2 and got.loc["narrative", "narrative"] == 1
    assert got.loc["Student", "narrative"] == 1 and got.loc["Several teachers", "neither"] == 1
    assert got.loc["Shared", "neither"] == 1
    assert got["share_of_narrative"].to_dict()["narrative"] == 0.5


def test_attribution_by_gamma_by_hand():
    from rdpt_core.origin import attribution_by_gamma

    got = attribution_by_gamma(_two_teacher_table(), PATTERNS, 0.1, 0.1, [0.05, 0.2]).set_index(["gamma", "teacher"])
    # steps: 2 marked; γ 0.05 both attributed to steps; γ 0.2 action 1 (margin 0.1) becomes several
    assert got.loc[(0.05, "steps"), "attributed_to_it"] == 1.0
    assert got.loc[(0.2, "steps"), "attributed_to_it"] == 0.5 and got.loc[(0.2, "steps"), "attributed_to_several"] == 0.5
    # narrative: 2 marked, one attributed to it, one Student (not a teacher class) at either γ
    assert got.loc[(0.2, "narrative"), "attributed_to_it"] == 0.5 and got.loc[(0.2, "narrative"), "not_teacher_class"] == 0.5
    # precision: everything attributed to steps / narrative carries its marker
    assert got["precision"].tolist() == [1.0, 1.0, 1.0, 1.0]


def test_teacher_patterns_are_read_one_per_line_with_errors_naming_the_line():
    from rdpt_core.origin import parse_teacher_patterns

    text = "# styles\nsteps = Step \\d+ →\n\n  narrative=(?:After that|First of all),  \n"
    assert parse_teacher_patterns(text) == {"steps": "Step \\d+ →", "narrative": "(?:After that|First of all),"}
    assert parse_teacher_patterns("") == {}
    for bad, where in (("steps Step", "line 1"), ("a = x\n= y", "line 2"), ("a = x\na = y", "line 2: teacher 'a' is given twice"),
                       ("a = x\n\nb = (", "line 3: invalid teacher-style pattern '('")):
        with pytest.raises(ValueError, match=re.escape(where)):
            parse_teacher_patterns(bad)
