"""The Ray Data engine (rdpt_core/distributed.py) against the local engine, on a local Ray
cluster started by the test, with the real packaged models."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from rdpt_core.backends.base import TokenScores
from rdpt_core.cache import TokenCache
from rdpt_core.distributed import RaySettings, pack_scores, score_corpus_ray, unpack_scores
from rdpt_core.records import Record
from rdpt_core.scoring import score_corpus

TRAJECTORIES = REPO / "demo" / "steps" / "test_trajectories.jsonl"


def lab_records(n: int) -> list[Record]:
    rows = [json.loads(line) for line in TRAJECTORIES.read_text().splitlines()[:n]]
    return [Record(r["record_id"], r["question_id"], r["prompt"], r["response"], correct=r.get("correct"))
            for r in rows]


def test_scores_travel_through_bytes_exactly():
    scores = TokenScores(np.array([5, 7]), np.array([[0, 2], [2, 5]]), np.array([np.nan, -0.25]),
                         np.array([False, True]), np.array([True, False]))
    back = unpack_scores(pack_scores(scores))
    for name, array in scores.to_arrays().items():
        assert np.array_equal(back.to_arrays()[name], array, equal_nan=True) and back.to_arrays()[name].dtype == array.dtype


def test_settings_are_checked():
    with pytest.raises(ValueError, match="actors"):
        RaySettings(actors=0)


class CountingCache(TokenCache):
    """A token cache that counts its lookups."""

    gets = 0

    def get(self, key):
        self.gets += 1
        return super().get(key)


@pytest.mark.slow
def test_ray_engine_table_equals_the_local_engines_exactly(tmp_path, smollm2_spec, gemma_spec):
    records = lab_records(24)
    specs = {"teacher": smollm2_spec, "student": gemma_spec}
    # small groups, so both actors get work and results arrive group by group
    counting = CountingCache(tmp_path / "r")
    ray_corpus, ray_report = score_corpus_ray(records, specs, RaySettings(actors=2), cache=counting,
                                              group_chars=6000)
    assert counting.gets == 24 * 2  # one lookup per record and role: results are kept, not read back
    local_corpus, local_report = score_corpus(records, specs, cache=TokenCache(tmp_path / "l"), group_chars=6000)
    assert ray_report.fresh == local_report.fresh == {"teacher": 24, "student": 24}
    assert ray_report.model_loads == {"teacher": 2, "student": 2}
    ray_table, local_table = ray_corpus.actions(), local_corpus.actions()
    assert list(ray_table.columns) == list(local_table.columns) and len(ray_table) > 100
    pd.testing.assert_frame_equal(ray_table, local_table, check_exact=True)
    # and a second Ray run is served by the cache: nothing dispatched, no actor started
    counting = CountingCache(tmp_path / "r")
    cached_corpus, again = score_corpus_ray(records, specs, RaySettings(actors=2), cache=counting)
    assert again.fresh == {"teacher": 0, "student": 0} and again.model_loads == {"teacher": 0, "student": 0}
    assert counting.gets == 24 * 2
    pd.testing.assert_frame_equal(cached_corpus.actions(), local_table, check_exact=True)


def _entries(cache_dir):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache_dir.rglob("*.npz")}


@pytest.mark.slow
def test_a_killed_ray_run_resumes_from_the_cache_scoring_nothing_twice(tmp_path):
    records = lab_records(40)
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"record_id": r.record_id, "question_id": r.question_id, "prompt": r.prompt,
                                        "response": r.response}) + "\n" for r in records))
    cache_dir = tmp_path / "cache"
    command = [sys.executable, "-m", "rdpt_core", "score", "--input", data, "--teacher", "smollm2-135m-instruct",
               "--student", "smollm2-135m-instruct", "--out", tmp_path / "t.parquet", "--engine", "ray",
               "--actors", "2", "--batch-tokens", "512", "--cache-dir", cache_dir,
               "--group-chars", "3000"]  # groups of ~3 records: results arrive a few at a time
    first = subprocess.Popen(list(map(str, command)), cwd=REPO, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while len(_entries(cache_dir)) < 3 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the local cluster it started
    first.wait()
    kept = _entries(cache_dir)
    assert 3 <= len(kept) < len(records), "the kill should land mid-run"

    done = subprocess.run(list(map(str, command)), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"teacher: {len(records) - len(kept)} scored, {len(kept)} from cache" in done.stderr
    assert f"student: 0 scored, {len(records)} from cache" in done.stderr  # the same model: its scores
    after = _entries(cache_dir)
    assert len(after) == len(records)
    assert {name: after[name] for name in kept} == kept, "an entry of the killed run was written again"
    table = pd.read_parquet(tmp_path / "t.parquet")
    assert table["record_id"].nunique() == len(records)
