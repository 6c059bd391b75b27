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
    # the action table of docs/method.md §14, one segmentation for all three models
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


TEACHER_DATA = REPO / "demo" / "lab" / "teacher_data.jsonl"


@pytest.mark.slow
def test_select_on_the_lab_teacher_data_keeps_the_input_schema(tmp_path):
    import json

    out, feats = tmp_path / "chosen.jsonl", tmp_path / "features.csv"
    code, err = run_cli("select", "--input", TEACHER_DATA, "--limit", "8", "--teacher", "smollm2-135m-instruct",
                        "--student", "gemma3-270m", "--beta", "0.1", "--strategy", "max_teacher_count",
                        "--out", out, "--features", feats, env={"RDPT_CACHE_DIR": str(tmp_path / "cache")})
    assert code == 0, err
    inputs = [json.loads(line) for line in TEACHER_DATA.read_text().splitlines()[:8]]
    chosen = [json.loads(line) for line in out.read_text().splitlines()]
    features = pd.read_csv(feats, dtype={"record_id": str, "question_id": str})
    assert len(features) == 8 and len(chosen) == 2 == len({r["question_id"] for r in inputs})
    by_id = {r["record_id"]: r for r in inputs}
    for row in chosen:
        rid = row["record_id"]
        assert {k: v for k, v in row.items() if not k.startswith("rdpt_")} == by_id[rid]
        mine = features[features.question_id == row["question_id"]]
        # the first response with the question's highest Teacher count
        assert rid == mine.loc[mine.n_teacher.idxmax(), "record_id"]
        f = mine.set_index("record_id").loc[rid]
        assert (row["rdpt_n_teacher"], row["rdpt_n_tokens"], row["rdpt_strategy"], row["rdpt_beta"]) == (
            f.n_teacher, f.n_tokens, "max_teacher_count", 0.1)
    assert "kept 2" in err


@pytest.mark.slow
def test_sources_on_three_aime_files_matches_a_plain_forward_pass(tmp_path, smollm2_ref):
    import json
    import math

    files = []
    for name in ("aime24.sky-t1-correct-5k-27b", "aime24.gemma-2-27b-it", "aime24.qwen2.5-math-7b"):
        rows = skythought_rows(name)[:2]
        for row in rows:
            row["code"] = [row["code"][0][:700]]  # short: the plain reference pass keeps every logit
        files.append(tmp_path / f"{name}.jsonl")
        files[-1].write_text("".join(json.dumps(r) + "\n" for r in rows))
    inputs = [a for f in files for a in ("--input", f)]
    code, err = run_cli("sources", *inputs, "--reference", "smollm2-135m-instruct", "--out", tmp_path / "s.csv",
                        "--responses", tmp_path / "r.csv", "--report", tmp_path / "r.html",
                        env={"RDPT_CACHE_DIR": str(tmp_path / "cache")})
    assert code == 0, err
    stats = pd.read_csv(tmp_path / "s.csv").set_index("source")
    assert list(stats.index) == [f.stem for f in files]
    for f in files:  # by hand: all response tokens of the source from one plain forward pass each
        n_total, logp_total, lengths = 0, 0.0, []
        for row in (json.loads(line) for line in f.read_text().splitlines()):
            response = row["code"][0]
            p, counts = smollm2_ref.action_probs(smollm2_ref.context(row["question"]), response,
                                                 [(0, len(response))])
            n_total += counts[0]
            logp_total += counts[0] * math.log(p[0])
            lengths.append(counts[0])
        assert stats.loc[f.stem, "mean"] == pytest.approx(sum(lengths) / 2)
        assert stats.loc[f.stem, "perplexity"] == pytest.approx(math.exp(-logp_total / n_total), rel=1e-5)
    page = (tmp_path / "r.html").read_text()
    assert 'data-chart="lengths"' in page and 'data-chart="difficulty"' in page and "<script" not in page
