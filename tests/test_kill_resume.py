"""Kill and resume the real CLI: ``score`` and ``select`` on three short records with the two
packaged models, stopped by SIGTERM, SIGINT and SIGKILL at seeded random points and run again.

Each command runs once uninterrupted (the reference), then as a chain on a fresh token cache:
three runs each stopped by one signal, then a run to the end. Throughout, a watcher polls the
``--out`` path: it must hold nothing or a complete output equal to the reference, never part of
one, and an older output there must be gone as soon as a run starts. SIGTERM and SIGINT must end
in a one-line message (no traceback); the last run must equal the reference, every record once.
"""

from __future__ import annotations

import io
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from conftest import REPO

TEACHER_DATA = REPO / "demo" / "steps" / "teacher_samples.jsonl"
MODELS = ["--teacher", "smollm2-135m-instruct", "--student", "gemma3-270m"]
SEED = 20240611
READY = "scoring "  # the CLI's line once inputs are read and old outputs removed
EXIT = {signal.SIGTERM: 128 + signal.SIGTERM, signal.SIGINT: 128 + signal.SIGINT, signal.SIGKILL: -signal.SIGKILL}


def short_records(path):
    """Two answers to one question and one to another, cut short: cheap for a CPU."""
    rows = [json.loads(line) for line in TEACHER_DATA.read_text().splitlines()[:8]]
    first, second = rows[0]["question_id"], next(r["question_id"] for r in rows if r["question_id"] != rows[0]["question_id"])
    chosen = [r for r in rows if r["question_id"] == first][:2] + [r for r in rows if r["question_id"] == second][:1]
    path.write_text("".join(json.dumps({**r, "response": r["response"][:240]}) + "\n" for r in chosen))
    return [r["record_id"] for r in chosen]


class Run:
    """The CLI in a subprocess; stderr collected by a thread, the output path polled by another."""

    def __init__(self, args, out, on_seen):
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "rdpt_core", *map(str, args)], cwd=REPO,
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.err = bytearray()
        self.ready_at: float | None = None
        self._threads = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._watch, args=(out, on_seen), daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self):
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            self.err += chunk
            if self.ready_at is None and READY.encode() in self.err:
                self.ready_at = time.monotonic()

    def _watch(self, out, on_seen):
        while self.proc.poll() is None:
            started = self.ready_at is not None  # before the read: the run had removed old outputs
            try:
                on_seen(out.read_bytes(), started)
            except FileNotFoundError:
                pass
            time.sleep(0.005)

    def wait_ready(self, timeout=300.0):
        deadline = time.monotonic() + timeout
        while self.ready_at is None:
            assert self.proc.poll() is None, f"exited before it started scoring:\n{self.stderr}"
            assert time.monotonic() < deadline, "no READY line"
            time.sleep(0.01)
        return self.ready_at

    def finish(self, timeout=900.0):
        code = self.proc.wait(timeout)
        for t in self._threads:
            t.join(10)
        return code

    @property
    def stderr(self):
        return self.err.decode("utf-8", "replace")


class Watch:
    """What the watcher saw at the output path: each sighting must parse as a complete output."""

    def __init__(self, parse, stale):
        self.parse, self.stale = parse, stale
        self.sightings: list[object] = []
        self.problems: list[str] = []

    def __call__(self, data: bytes, started: bool) -> None:
        if data == self.stale:
            if started:
                self.problems.append("the older output was still there after the run started")
            return
        try:
            self.sightings.append(self.parse(data))
        except Exception as err:  # a partial file: exactly what must never be seen
            self.problems.append(f"unreadable output at the --out path ({len(data)} bytes): {err!r}")


def parse_table(data):
    return pd.read_parquet(io.BytesIO(data))


def parse_jsonl(data):
    text = data.decode("utf-8")
    assert text.endswith("\n"), "cut off mid-line"
    return [json.loads(line) for line in text.splitlines()]


SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGKILL]
N_SCORES = 6  # 3 records x 2 models: the token cache entries of a complete run


def kill_points(rng):
    """Where the three runs of a chain are stopped: one early (0: a seeded time after READY),
    two after a seeded number of cached token scores, increasing, at least 2 left to score."""
    first = rng.randint(1, N_SCORES - 3)
    return [0, first, rng.randint(first + 1, N_SCORES - 2)]


def cached(cache):
    return sum(1 for p in cache.rglob("*.npz") if not p.name.startswith(".")) if cache.is_dir() else 0


def wait_for(condition, run, timeout=600.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert run.proc.poll() is None, f"ended while waiting:\n{run.stderr}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def uncached(tmp_path_factory):
    """One uninterrupted ``score`` on a fresh cache: the records, its duration from READY to the
    end (the kill points are fractions of it) and the cache, which the references reuse."""
    directory = tmp_path_factory.mktemp("uncached")
    records = directory / "in.jsonl"
    ids = short_records(records)
    out = directory / "actions.parquet"
    run = Run(["score", "--input", records, *MODELS, "--cache-dir", directory / "cache", "--out", out], out,
              lambda *_: None)
    assert run.finish() == 0, run.stderr
    return records, ids, directory / "cache", time.monotonic() - run.wait_ready(), out


def reference_run(tmp_path, uncached, args, out_name, parse):
    """The command run to the end without a signal (on a copy of the uncached run's cache);
    for ``score``, the uncached run itself."""
    if args(tmp_path)[0] == "score":
        return parse(uncached[4].read_bytes())
    cache = tmp_path / "reference-cache"
    shutil.copytree(uncached[2], cache)
    out = tmp_path / "reference" / out_name
    run = Run([*args(tmp_path / "reference"), "--cache-dir", cache, "--out", out], out, lambda *_: None)
    assert run.finish() == 0, run.stderr
    return parse(out.read_bytes())


def kill_and_resume(tmp_path, uncached, args, out_name, parse, equal):
    reference = reference_run(tmp_path, uncached, args, out_name, parse)
    duration = uncached[3]
    out_dir = tmp_path / "chain"
    out_dir.mkdir()
    out = out_dir / out_name
    out.write_bytes(b"an older run's output, complete-looking")
    watch = Watch(parse, out.read_bytes())
    rng = random.Random(f"{SEED}-{args(out_dir)[0]}")
    cache = tmp_path / "chain-cache"
    chain_args = [*args(out_dir), "--cache-dir", cache, "--out", out]
    for sig, target in zip(rng.sample(SIGNALS, 3), kill_points(rng)):
        run = Run(chain_args, out, watch)
        start = run.wait_ready()
        if target == 0:  # while it imports, loads, scores the first record
            time.sleep(rng.uniform(0.0, 0.2) * duration)
        else:  # once `target` token scores are in the cache (fresh ones: they grow run by run)
            wait_for(lambda: cached(cache) >= target, run)
            time.sleep(rng.uniform(0.0, 0.2))
        assert run.proc.poll() is None, f"{sig.name}: the run ended before the signal:\n{run.stderr}"
        run.proc.send_signal(sig)
        code = run.finish()
        where = f"{sig.name} at {cached(cache)} cached, {time.monotonic() - start:.1f} s after READY"
        assert code == EXIT[sig], f"{where}: exit {code}\n{run.stderr}"
        if sig != signal.SIGKILL:
            last = run.stderr.rstrip().splitlines()[-1]
            assert last.startswith(f"interrupted by {sig.name}: no output written"), f"{where}\n{run.stderr}"
            assert "Traceback" not in run.stderr, run.stderr
            assert not leftovers(out_dir), leftovers(out_dir)
        assert not out.exists(), f"{where}: an output after an interrupted run"
    cached_before_last = cached(cache)

    final = Run(chain_args, out, watch)
    assert final.finish() == 0, final.stderr
    assert not watch.problems, watch.problems
    got = parse(out.read_bytes())
    equal(got, reference)
    for seen in watch.sightings:  # anything seen at the path was the finished output
        equal(seen, reference)
    assert not leftovers(out_dir), leftovers(out_dir)  # a SIGKILLed run's temporary is cleaned up
    return got, final.stderr, cached_before_last


@pytest.mark.slow
def test_score_killed_three_ways_resumes_to_the_uninterrupted_table(tmp_path, uncached):
    records, ids = uncached[:2]

    def equal(got, want):
        pd.testing.assert_frame_equal(got, want)  # numbers equal: cached and fresh scores alike

    table, err, resumed = kill_and_resume(tmp_path, uncached, lambda d: ["score", "--input", records, *MODELS],
                                          "actions.parquet", parse_table, equal)
    assert table["record_id"].unique().tolist() == ids  # every record, in input order
    for _, part in table.groupby("record_id"):  # each once: its actions numbered 0..n-1, no repeats
        assert part["action_index"].tolist() == list(range(len(part)))
    # the last run took what the stopped ones had scored from the cache and scored only the rest
    counts = [tuple(map(int, m)) for m in re.findall(r"(?m)^(?:teacher|student): (\d+) scored, (\d+) from cache", err)]
    assert len(counts) == 2 and sum(c for _, c in counts) == resumed >= 2, err
    assert sum(f for f, _ in counts) == N_SCORES - resumed, err


@pytest.mark.slow
def test_select_killed_three_ways_resumes_to_the_uninterrupted_choice(tmp_path, uncached):
    records, ids = uncached[:2]

    def args(directory):
        return ["select", "--input", records, *MODELS, "--beta", "0.1", "--features", directory / "features.csv"]

    def equal(got, want):
        assert got == want

    chosen, _, _ = kill_and_resume(tmp_path, uncached, args, "chosen.jsonl", parse_jsonl, equal)
    features = pd.read_csv(tmp_path / "chain" / "features.csv", dtype={"record_id": str})
    reference = pd.read_csv(tmp_path / "reference" / "features.csv", dtype={"record_id": str})
    pd.testing.assert_frame_equal(features, reference)
    assert features["record_id"].tolist() == ids  # every response once
    questions = [row["question_id"] for row in chosen]
    assert len(questions) == len(set(questions)) == 2  # one kept per question
    assert all(row["record_id"] in ids for row in chosen)
