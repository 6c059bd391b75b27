"""The batch CLI, run as a user would: ``python -m rdpt_core ...`` in a subprocess."""

import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO, skythought_rows

AIME = REPO / "data" / "skythought" / "aime24.sky-t1-correct-5k-27b.jsonl"


def run_cli(*args, env=None):
    proc = subprocess.run(
        [sys.executable, "-m", "rdpt_core", *map(str, args)], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, cwd=REPO,
    )
    return proc.returncode, proc.stderr


def test_classify_adds_both_class_columns(tmp_path):
    scores = pd.DataFrame({
        "record_id": ["a", "a", "a"], "p_teacher": [0.9, 0.5, 0.2], "p_student": [0.2, 0.5, 0.9],
        "p_distilled": [0.8, 0.55, 0.6],
    })
    scores.to_parquet(tmp_path / "s.parquet")
    code, err = run_cli("classify", "--scores", tmp_path / "s.parquet", "--alpha", "0.1", "--beta", "0.1",
                        "--out", tmp_path / "c.parquet")
    assert code == 0, err
    out = pd.read_parquet(tmp_path / "c.parquet")
    assert out["cls"].tolist() == ["Teacher", "Shared", "Student"]
    assert out["cls3"].tolist() == ["Teacher", "Common", "Student"]


def test_bad_input_is_a_clear_error_naming_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "response": "r", "correct": "maybe"}\n')
    code, err = run_cli("score", "--input", bad, "--teacher", "smollm2-135m-instruct", "--student",
                        "gemma3-270m", "--out", tmp_path / "o.parquet")
    assert code == 2 and "bad.jsonl" in err and "line 1" in err and "'correct'" in err


@pytest.mark.slow
def test_score_three_real_aime_records_then_rerun_from_cache(tmp_path):
    env = {"RDPT_CACHE_DIR": str(tmp_path / "cache")}
    args = ["score", "--input", AIME, "--limit", "3", "--teacher", "smollm2-135m-instruct",
            "--student", "gemma3-270m", "--distilled", "smollm2-135m-instruct"]
    code, err = run_cli(*args, "--out", tmp_path / "first.parquet", env=env)
    assert code == 0, err
    assert "teacher: 3 scored, 0 from cache, model loaded 1x" in err
    assert "distilled: 0 scored, 3 from cache, model loaded 0x" in err  # same model as teacher
    code, err = run_cli(*args, "--out", tmp_path / "again.parquet", env=env)
    assert code == 0, err
    for role in ("teacher", "student", "distilled"):
        assert f"{role}: 0 scored, 3 from cache, model loaded 0x" in err
    first = pd.read_parquet(tmp_path / "first.parquet")
    pd.testing.assert_frame_equal(first, pd.read_parquet(tmp_path / "again.parquet"))
    # the table of SPEC §2, one segmentation for all three models
    rows = skythought_rows("aime24.sky-t1-correct-5k-27b")[:3]
    assert first["record_id"].unique().tolist() == ["0:0", "1:0", "2:0"]
    for rid, row in zip(["0:0", "1:0", "2:0"], rows):
        part = first[first.record_id == rid].sort_values("action_index")
        assert "".join(part["text"]) == row["code"][0]
        assert part["correct"].iloc[0] == row["score"][0]
    assert (first["p_teacher"] == first["p_distilled"]).all()
    assert first["p_student"].between(0, 1).all() and first["p_teacher"].between(0, 1).all()
    assert (first.groupby("record_id")["cum_tokens"].diff().dropna() >= 0).all()
    # classify what was scored
    code, err = run_cli("classify", "--scores", tmp_path / "first.parquet", "--alpha", "0.1",
                        "--beta", "0.1", "--out", tmp_path / "cls.parquet")
    assert code == 0, err
    got = pd.read_parquet(tmp_path / "cls.parquet")
    # teacher == distilled here, so by hand: Shared iff |p_T - p_S| <= 0.1, else by its sign
    # (no Boosted is possible when alpha == beta)
    want = ["Shared" if abs(t - s) <= 0.1 else "Teacher" if t > s else "Student"
            for t, s in zip(got["p_teacher"], got["p_student"])]
    assert got["cls"].tolist() == want and {"Teacher", "Student"} <= set(want)
