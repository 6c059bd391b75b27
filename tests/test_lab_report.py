"""docs/lab.md's generated tables (rdpt_lab/report.py): filled from the committed artifacts."""

from __future__ import annotations

import pytest

from rdpt_lab import lineage, report


def test_docs_lab_tables_are_what_the_committed_artifacts_say():
    doc = report.DOC.read_text(encoding="utf-8")
    assert report.fill(doc, report.doc_tables()) == doc, \
        "docs/lab.md is stale: run `python -m rdpt_lab.report`"


def test_fill_replaces_each_block_and_refuses_blocks_and_tables_that_do_not_pair():
    text = "a\n<!-- generated:x -->\nold\n<!-- /generated:x -->\nb\n<!-- generated:y -->\n<!-- /generated:y -->\n"
    filled = report.fill(text, {"x": "X1\n", "y": "Y\n"})
    assert filled == "a\n<!-- generated:x -->\nX1\n<!-- /generated:x -->\nb\n<!-- generated:y -->\nY\n<!-- /generated:y -->\n"
    assert report.fill(filled, {"x": "X1\n", "y": "Y\n"}) == filled  # idempotent
    with pytest.raises(ValueError, match=r"without a table: \['y'\]"):
        report.fill(text, {"x": "X\n"})
    with pytest.raises(ValueError, match=r"without a block: \['z'\]"):
        report.fill(text, {"x": "X\n", "y": "Y\n", "z": "Z\n"})


def _summary(correct: int, n: int, truncated: int = 0) -> dict:
    return lineage.accuracy([lineage.Record(f"r{i}", f"q{i}", "p", "r", i < correct, "s",
                                            {"truncated": i >= n - truncated}) for i in range(n)])


def test_accuracy_table_rows_and_the_teacher_student_ratio():
    manifest = {"stages": {
        "teacher_test": _summary(41, 100, 2),
        "trajectories": {"student": {"greedy": _summary(5, 100, 60), "sampled": _summary(8, 200, 130)},
                         "distilled": {"greedy": _summary(30, 100), "sampled": _summary(50, 200, 1)}},
    }}
    out = report.accuracy_table(manifest)
    lines = out.splitlines()

    def shown(k: int, n: int) -> str:
        lo, hi = _summary(k, n)["wilson95"]
        return f"{100 * k / n:.1f}% ({k}/{n}) [{100 * lo:.1f}%, {100 * hi:.1f}%]"

    assert lines[2] == f"| teacher | {shown(41, 100)} | 2 | – | – |"
    assert lines[3] == f"| student | {shown(5, 100)} | 60 | {shown(8, 200)} | 130 |"
    assert lines[4] == f"| distilled | {shown(30, 100)} | 0 | {shown(50, 200)} | 1 |"
    assert "Teacher ÷ student greedy accuracy: 8.2×." in out  # 0.41 / 0.05
    manifest["stages"]["trajectories"]["student"]["greedy"] = _summary(0, 100)
    assert "∞ (the student solves none)" in report.accuracy_table(manifest)
    assert report.accuracy_table({}) == report.NOT_RUN


def test_stage_table_formats_minutes_and_sums_the_listed_stages_only():
    manifest = {"stage_seconds": {"questions": 0.3, "teacher": 3725.0, "other": 99.0}}
    assert report.stage_table(manifest, ["questions", "teacher", "samples"]).splitlines()[2:] == [
        "| questions | 0.3 s |", "| teacher | 62 min 05.0 s |", "| **total** | **62 min 05.3 s** |"]


def test_attempts_table_lists_earlier_teachers_with_their_accuracy():
    assert report.attempts_table({}).startswith("_(none")
    manifest = {"attempts": [{"what": "first", "teacher_test": _summary(13, 100), "failure_analysis": "misread"}]}
    lo, hi = _summary(13, 100)["wilson95"]
    assert report.attempts_table(manifest).splitlines()[2] == \
        f"| 1 | first | 13.0% (13/100) [{100 * lo:.1f}%, {100 * hi:.1f}%] | misread |"


def test_attribution_tables_show_both_betas_and_the_gamma_rows():
    row = {"attribution": "steps", "steps": 3, "neither": 1, "share_of_steps": 0.75, "share_of_neither": 0.5}
    gamma_row = {"gamma": 0.1, "teacher": "steps", "n_marked": 4, "attributed_to_it": 0.75,
                 "attributed_to_several": 0.25, "attributed_to_another": 0.0, "not_teacher_class": 0.0,
                 "precision": float("nan")}
    data = {"alpha": 0.1, "beta": 0.1, "gamma": 0.1, "confusion": [row], "suggested_beta": 0.15,
            "confusion_at_suggested_beta": [{**row, "steps": 2}], "by_gamma": [gamma_row]}
    confusion, by_gamma = report.attribution_tables(data)
    assert "| steps | 3 | 1 | 75.0% | 50.0% |" in confusion and "suggests for this corpus (0.15)" in confusion
    assert "| steps | 2 | 1 | 75.0% | 50.0% |" in confusion
    assert by_gamma.splitlines()[2] == "| 0.1 | steps | 4 | 75.0% | 25.0% | 0.0% | 0.0% | – |"
    same, _ = report.attribution_tables({**data, "suggested_beta": 0.1})
    assert "suggests this same β" in same and same.count("\n| steps | ") == 1
