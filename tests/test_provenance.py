import numpy as np
import pandas as pd
import pytest

from rdpt_core.provenance import classify3, classify4, classify_table


def one4(p_t, p_s, p_d, alpha=0.125, beta=0.25):
    return classify4([p_t], [p_s], [p_d], alpha, beta)[0]


# Values below are exact in binary (multiples of 1/64), so "equal to α/β" is truly equal.
@pytest.mark.parametrize(
    "p_t, p_s, p_d, expected",
    [
        (0.5, 0.5, 0.5, "Shared"),
        # every |Δ| exactly α → still Shared (≤)
        (0.5, 0.375, 0.4375, "Shared"),  # Δ_TS = .125, Δ_SD = -.0625, Δ_TD = .0625
        (0.5, 0.5, 0.625, "Shared"),  # Δ_TD = Δ_SD = -α, Δ_TS = 0
        # one |Δ| just over α → no longer Shared; Δ_TS = 0 → Boosted
        (0.5, 0.5, 0.640625, "Boosted"),
        # Δ_TS exactly β → not Teacher (>), not Student → Boosted
        (0.75, 0.5, 0.5, "Boosted"),
        (0.5, 0.75, 0.5, "Boosted"),
        # Δ_TS just over β → Teacher / Student
        (0.765625, 0.5, 0.5, "Teacher"),
        (0.5, 0.765625, 0.5, "Student"),
        # cascade order: Shared is tested first, so a small Δ_TS with α ≥ β is Shared, not Teacher
    ],
)
def test_cascade_at_exact_boundaries(p_t, p_s, p_d, expected):
    assert one4(p_t, p_s, p_d) == expected


def test_shared_wins_over_teacher_when_alpha_exceeds_beta():
    # Δ_TS = 0.125 > β = 0.0625, but all |Δ| ≤ α = 0.25 → Shared comes first in the cascade.
    assert classify4([0.625], [0.5], [0.5625], alpha=0.25, beta=0.0625)[0] == "Shared"


def test_decimal_boundaries_follow_the_formula_not_float_rounding():
    # 0.3 - 0.2 = 0.09999999999999998 and 0.7 - 0.6 = 0.09999999999999998 in floats;
    # 0.4 - 0.3 = 0.10000000000000003. All mean "equal to 0.1".
    assert classify3([0.3, 0.4, 0.2], [0.2, 0.3, 0.3], beta=0.1).tolist() == ["Common"] * 3
    assert one4(0.4, 0.3, 0.35, alpha=0.1, beta=0.1) == "Shared"


def test_three_classes_before_training():
    got = classify3([0.9, 0.1, 0.5, 0.5, np.nan], [0.1, 0.9, 0.55, 0.25, 0.5], beta=0.25)
    assert got.tolist() == ["Teacher", "Student", "Common", "Common", "Unscored"]


def test_missing_probability_is_unscored():
    assert classify4([np.nan, 0.5], [0.5, 0.5], [0.5, np.nan]).tolist() == ["Unscored", "Unscored"]


def test_thresholds_are_validated():
    with pytest.raises(ValueError, match="beta"):
        classify3([0.5], [0.5], beta=-0.1)
    with pytest.raises(ValueError, match="alpha"):
        classify4([0.5], [0.5], [0.5], alpha=2)


def test_classify_table_adds_both_columns_and_keeps_the_input():
    table = pd.DataFrame({"p_teacher": [0.9, 0.5], "p_student": [0.1, 0.5], "p_distilled": [0.5, 0.5]})
    out = classify_table(table, alpha=0.1, beta=0.1)
    assert out["cls"].tolist() == ["Teacher", "Shared"]
    assert out["cls3"].tolist() == ["Teacher", "Common"]
    assert "cls" not in table.columns
    no_d = classify_table(table.drop(columns="p_distilled"), beta=0.1)
    assert "cls" not in no_d.columns and no_d["cls3"].tolist() == ["Teacher", "Common"]
    with pytest.raises(ValueError, match="p_student"):
        classify_table(table.drop(columns="p_student"))


# ---- several teachers (docs/method.md §18), by hand -------------------------------------------
from rdpt_core.provenance import SEVERAL, attribute_teachers, best_teacher  # noqa: E402

NAN = float("nan")


def test_best_teacher_its_index_and_margin_by_hand():
    p = np.array([[0.9, 0.5, 0.4, NAN, NAN, 0.2],   # teacher A
                  [0.6, 0.5, 0.7, 0.8, NAN, 0.2],   # teacher B
                  [0.1, 0.2, 0.3, 0.1, NAN, 0.2]])  # teacher C
    top, index, margin = best_teacher(p)
    assert np.allclose(top, [0.9, 0.5, 0.7, 0.8, NAN, 0.2], equal_nan=True)
    # a tie (actions 1, 5) goes to the first tied teacher with margin 0; nobody scored action 4
    assert index.tolist() == [0, 0, 1, 1, -1, 0]
    # action 3: A could not score it, so B's margin over "every other teacher" is unknown
    assert np.allclose(margin, [0.3, 0.0, 0.3, NAN, NAN, 0.0], equal_nan=True)


def test_best_teacher_needs_two_teachers():
    with pytest.raises(ValueError, match="at least 2 teachers"):
        best_teacher(np.array([[0.5, 0.2]]))


def test_attribution_by_hand():
    names = ["narrative", "steps"]
    cls = np.array(["Teacher", "Boosted", "Teacher", "Teacher", "Student", "Shared", "Teacher"], dtype=object)
    best = np.array([1, 0, 0, 1, 1, 0, 0])
    margin = np.array([0.25, 0.5, 0.1, NAN, 0.9, 0.9, 0.0])
    got = attribute_teachers(cls, best, margin, names, gamma=0.1)
    # margin exactly γ (0.1) is not "more than γ"; an unknown margin and a tie are several;
    # Student and Shared actions are attributed to no teacher
    assert got.tolist() == ["steps", "narrative", SEVERAL, SEVERAL, None, None, SEVERAL]
    assert attribute_teachers(cls, best, margin, names, gamma=0.0).tolist()[:3] == ["steps", "narrative", "narrative"]
    assert attribute_teachers(cls, best, margin, names, gamma=1.0).tolist()[:2] == [SEVERAL, SEVERAL]
    with pytest.raises(ValueError, match="gamma must be within"):
        attribute_teachers(cls, best, margin, names, gamma=-0.1)


def test_the_best_teacher_classes_are_the_single_teacher_cascade_on_its_p():
    p = np.array([[0.9, 0.1, 0.30], [0.2, 0.15, 0.35]])
    p_s, p_d = np.array([0.1, 0.6, 0.3]), np.array([0.8, 0.6, 0.3])
    top, _, _ = best_teacher(p)
    # by hand: action 0 T*=A (0.9 - 0.1 > β) Teacher; action 1 T*=B (p_S - 0.15 > β) Student;
    # action 2 T*=B 0.35, all within α: Shared
    assert classify4(top, p_s, p_d, 0.1, 0.1).tolist() == ["Teacher", "Student", "Shared"]


def test_a_several_teacher_table_is_classified_on_its_best_teacher_and_attributed():
    from rdpt_core.provenance import add_best_teacher

    table = pd.DataFrame({
        "p_teacher_narrative": [0.9, 0.5, 0.6, NAN, 0.2],
        "p_teacher_steps":     [0.3, 0.9, 0.6, 0.9, 0.1],
        "p_student":           [0.1, 0.1, 0.1, 0.1, 0.8],
        "p_distilled":         [0.9, 0.8, 0.7, 0.9, 0.8],
    })
    scored = add_best_teacher(table)
    assert scored["p_teacher"].tolist() == [0.9, 0.9, 0.6, 0.9, 0.2]
    assert scored["best_teacher"].tolist() == ["narrative", "steps", "narrative", "steps", "narrative"]
    got = classify_table(scored, alpha=0.1, beta=0.1, gamma=0.2)
    # by hand: 0 Teacher, margin 0.6 > γ → narrative; 1 Teacher, margin 0.4 → steps; 2 Teacher,
    # tie → several; 3 Teacher, narrative could not score it → several; 4 Student → none
    assert got["cls"].tolist() == ["Teacher", "Teacher", "Teacher", "Teacher", "Student"]
    assert got["teacher_of"].tolist()[:4] == ["narrative", "steps", SEVERAL, SEVERAL]
    assert pd.isna(got["teacher_of"].iloc[4])
    # the per-teacher columns alone are enough: classify_table adds the best teacher itself
    assert classify_table(table, 0.1, 0.1, 0.2)["teacher_of"].tolist()[:4] == got["teacher_of"].tolist()[:4]
    # γ = 0.5: only action 0 (margin 0.6) keeps a single teacher
    assert classify_table(scored, 0.1, 0.1, 0.5)["teacher_of"].tolist()[:2] == ["narrative", SEVERAL]


def test_a_single_teacher_table_gets_no_several_teacher_columns():
    from rdpt_core.provenance import add_best_teacher

    table = pd.DataFrame({"p_teacher": [0.9, 0.2], "p_student": [0.1, 0.2], "p_distilled": [0.8, 0.2]})
    assert add_best_teacher(table) is table
    assert list(classify_table(table).columns) == ["p_teacher", "p_student", "p_distilled", "cls", "cls3"]


def test_single_teacher_outputs_are_byte_identical_to_before_several_teachers(tmp_path):
    """Action table, classify CLI, explorer HTML, curves, correct vs incorrect, report and
    selection of the lab's single-teacher corpora, hashed against what the commit before
    several teachers (d508120) wrote from the same inputs, run as a script in a fresh process
    as the hashes were made (d508120's reports were the same bytes only there: vl-convert
    numbered SVG clip paths on per process; rdpt_core.charts.number_clip_paths now fixes it)."""
    import hashlib
    import json
    import subprocess
    import sys

    from conftest import REPO

    run = subprocess.run([sys.executable, str(REPO / "scripts" / "single_teacher_outputs.py"), str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    before = json.loads((REPO / "tests" / "data" / "single_teacher_sha256.json").read_text())["sha256"]
    now = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(tmp_path.iterdir())}
    assert now == before
    assert json.loads(run.stdout) == now
