"""Benchmark: the corpus page's recomputation after a slider move, on synthetic data.

10,000 responses x 100 actions = 1,000,000 actions (default). Prints the time of each step and
of the whole recomputation (median of several runs), and the ratio to the 1 s target.
Run with `make bench`; results go into docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import pandas as pd

from rdpt_core import stats
from rdpt_core.behaviours import behaviour_mix
from rdpt_core.provenance import classify_table


def synthetic_table(n_responses: int, n_actions: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_responses * n_actions
    record = np.repeat(np.arange(n_responses), n_actions)
    p_s = rng.beta(2, 2, n)
    return pd.DataFrame({
        "record_id": pd.Series(record).map(lambda r: f"r{r}"),
        "action_index": np.tile(np.arange(n_actions), n_responses),
        "correct": pd.array(np.repeat(rng.random(n_responses) < 0.5, n_actions), dtype="boolean"),
        "kind": "sentence",
        "text": np.where(rng.random(n) < 0.1, " Wait, let me check.", " So x = 2."),
        "p_teacher": np.clip(p_s + rng.normal(0, 0.15, n), 0, 1),
        "p_student": p_s,
        "p_distilled": np.clip(p_s + rng.normal(0.05, 0.1, n), 0, 1),
        "cum_tokens": np.tile(np.cumsum(rng.integers(10, 60, n_actions)), n_responses),
    })


def recompute(table: pd.DataFrame, alpha: float, beta: float) -> dict[str, float]:
    """What the corpus page does after α or β moves, timed step by step."""
    times = {}
    t = time.perf_counter()
    classified = classify_table(table, alpha, beta)
    times["classify"] = time.perf_counter() - t
    t = time.perf_counter()
    stats.position_curves(classified, "cls", 10)
    times["position_curves"] = time.perf_counter() - t
    t = time.perf_counter()
    stats.token_marks(classified, 4000)
    stats.mean_probability_curves(classified, 10)
    times["marks_and_means"] = time.perf_counter() - t
    t = time.perf_counter()
    stats.correct_vs_incorrect(classified, "cls")
    times["correct_vs_incorrect"] = time.perf_counter() - t
    times["total"] = sum(times.values())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--responses", type=int, default=10_000)
    parser.add_argument("--actions", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    table = synthetic_table(args.responses, args.actions)
    print(f"{len(table):,} actions in {args.responses:,} responses · {platform.processor() or platform.machine()}")
    runs = [recompute(table, 0.1, beta) for beta in np.linspace(0.05, 0.2, args.repeats)]
    for step in runs[0]:
        median = statistics.median(r[step] for r in runs)
        print(f"{step:>22}: {median * 1000:8.1f} ms")
    total = statistics.median(r["total"] for r in runs)
    print(f"slider move -> corpus page data: {total:.3f} s = {total / 1.0:.2f} x the 1 s target")
    t = time.perf_counter()
    behaviour_mix(classify_table(table, 0.1, 0.1))
    print(f"behaviour mix (keyword tags, not re-run on slider moves): {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
