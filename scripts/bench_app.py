"""Benchmark: the Corpus and Data selection pages on a 10,000-response scored corpus (issue 12).

Builds a synthetic but realistic scored corpus (20–60 actions per response, several responses
per question, four sources, a correct / incorrect / unknown mix, per-action p_T, p_S, p_D drawn
around each other), saves it as a working dataset in a temporary workspace
(``RDPT_WORKSPACE_DIR``), opens it with ``?dataset=<id>`` in Streamlit's AppTest (the Home page
loads and segments it: a one-time cost per corpus and segmenter) and times, per page:

* its first render;
* α steps then β steps to values not shown before (nothing cached): median and max;
* one step back to a value already shown (what the page's caches serve).

AppTest runs the app script in this process, so a time is the *server-side* rerun time (what the
server spends before it can send the new page); the browser's own drawing is not included. Each
time is given on the clock and as this process's CPU time, which other load on the machine does
not inflate as much. Run with ``.venv/bin/python scripts/bench_app.py`` (``make bench-app``);
about 6 minutes on 2 cores. Results go into docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 1.0  # issue 12: a slider step must take less than this
SOURCES = ("sky-t1-32b", "qwq-32b", "deepseek-r1-distill-7b", "gemma-2-27b-it")
MODELS = {"teacher": "teacher-32b (synthetic)", "student": "student-7b (synthetic)",
          "distilled": "distilled-7b (synthetic)"}
SENTENCES = (  # (sentence, weight): mostly execution, some reflection and transition
    ("We compute the sum of the first {n} terms.", 6), ("So x = {n} and y = {m}.", 6),
    ("Substituting gives {n}x + {m} = 0.", 5), ("Then the area is {n} square units.", 4),
    ("Wait, let me check that step again.", 2), ("Hmm, is that right?", 1),
    ("Let me verify with x = {n}.", 2), ("Alternatively, we can factor the quadratic.", 1),
    ("Instead, let's try modular arithmetic mod {n}.", 1), ("Therefore the answer is {n}.", 2),
)
TOKEN_RE = re.compile(r"\s*\S+(?:\s+\S+)?")  # "tokens" of one or two words, leading space kept


def _response(rng: np.random.Generator, n_actions: int) -> str:
    texts, weights = zip(*SENTENCES)
    probs = np.asarray(weights, dtype=float) / sum(weights)
    picks = rng.choice(len(texts), size=n_actions, p=probs)
    numbers = rng.integers(2, 99, size=(n_actions, 2))
    return " ".join(texts[k].format(n=a, m=b) for k, (a, b) in zip(picks, numbers))


def _action_probs(rng: np.random.Generator, n_actions: int, correct: bool | None) -> dict[str, np.ndarray]:
    """p_S around a response-level mean (lower for wrong answers); p_T and p_D scattered around
    it so that every class occurs at the default thresholds."""
    level = rng.beta(6, 2) - (0.08 if correct is False else 0.0)
    p_s = np.clip(level + rng.normal(0, 0.15, n_actions), 0.02, 0.995)
    p_t = np.clip(p_s + rng.normal(0.04, 0.14, n_actions), 0.02, 0.995)
    p_d = np.clip(p_s + 0.6 * (p_t - p_s) + rng.normal(0, 0.06, n_actions), 0.02, 0.995)
    return {"teacher": p_t, "student": p_s, "distilled": p_d}


def synthetic_corpus(n_responses: int, per_question: int, seed: int = 0):
    """A :class:`ScoredCorpus` of ``n_responses`` responses (``per_question`` per question)."""
    from rdpt_core.backends.base import TokenScores
    from rdpt_core.records import Record
    from rdpt_core.scoring import ScoredCorpus
    from rdpt_core.segment import marker_set, segment

    rng = np.random.default_rng(seed)
    records, tokens = [], {role: {} for role in MODELS}
    for i in range(n_responses):
        q = i // per_question
        correct = None if rng.random() < 0.05 else bool(rng.random() < 0.55)
        response = _response(rng, int(rng.integers(20, 61)))
        record = Record(f"q{q:05d}-r{i % per_question}", f"q{q:05d}", f"Problem {q}: find x.", response,
                        correct, SOURCES[i % len(SOURCES)])
        records.append(record)
        spans = np.array([m.span() for m in TOKEN_RE.finditer(response)], dtype=np.int64)
        actions = segment(response, marker_set(), "paper")
        bounds = np.array([a.end for a in actions])
        owner = np.searchsorted(bounds, spans[:, 0], side="right")  # the action holding each token
        probs = _action_probs(rng, len(actions), correct)
        flags = np.zeros(len(spans), dtype=bool)
        for role, p in probs.items():
            logp = np.log(p)[owner] + rng.normal(0, 0.05, len(spans))  # token noise around the action's p
            tokens[role][record.record_id] = TokenScores(np.arange(len(spans), dtype=np.int64), spans, logp,
                                                         flags, flags)
    return ScoredCorpus(records, tokens, marker_set(), dict(MODELS))


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds on the clock: what a user waits on this machine, with its other load
    cpu: float  # CPU seconds of this process, all threads: about the wall time on an idle core


def timed(step: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def _checked(at) -> None:
    if at.exception:
        raise SystemExit(f"the page raised: {[e.value for e in at.exception]}")


@dataclass
class PageTimes:
    first: Timing  # the page's first render
    steps: list[Timing]  # one per slider step to a value not shown before (nothing cached)
    back: Timing  # a step back to a value already shown (served by the page's caches)


def page_times(at, page: str, steps: list[tuple[str, float]], before: Callable[[], None] | None = None
               ) -> PageTimes:
    """First render of ``page`` (or of ``before``, run after it), one rerun per (slider key,
    value) step, then a step back to the first step's value."""
    at.switch_page(page)
    if before is None:
        first = timed(at.run)
    else:
        at.run()
        first = timed(before)
    _checked(at)

    def move(key: str, value: float) -> Timing:
        timing = timed(lambda: at.slider(key=key).set_value(value).run())
        _checked(at)
        return timing

    step_times = [move(key, value) for key, value in steps]
    return PageTimes(first, step_times, move(*steps[len(steps) // 2]))


def print_table(results: dict[str, PageTimes]) -> None:
    print(f"| page | first render, s (CPU s) | new-value steps | median step, s (CPU s) | max step, s (CPU s) "
          f"| step back, s (CPU s) | max / {TARGET_S:g} s target (CPU) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        wall, cpu = [t.wall for t in r.steps], [t.cpu for t in r.steps]
        print(f"| {name} | {r.first.wall:.2f} ({r.first.cpu:.2f}) | {len(r.steps)} "
              f"| {statistics.median(wall):.2f} ({statistics.median(cpu):.2f}) | {max(wall):.2f} ({max(cpu):.2f}) "
              f"| {r.back.wall:.2f} ({r.back.cpu:.2f}) | {max(wall) / TARGET_S:.2f} ({max(cpu) / TARGET_S:.2f}) |")
    for label, of in (("wall clock", lambda t: t.wall), ("CPU time", lambda t: t.cpu)):
        slow = [name for name, r in results.items() if max(map(of, [*r.steps, r.back])) >= TARGET_S]
        verdict = f"slow: {', '.join(slow)};" if slow else "every slider step under"
        print(f"{label}: {verdict} the {TARGET_S:g} s target")


def profile_step(at, key: str, value: float, top: int) -> None:
    """cProfile of one slider step. AppTest runs the script in threads of its own, so each
    thread started meanwhile runs under a profiler of its own; their stats are added up."""
    profilers: list[cProfile.Profile] = []
    original = threading.Thread.run

    def profiled(thread: threading.Thread) -> None:
        profiler = cProfile.Profile()
        profilers.append(profiler)
        profiler.runcall(original, thread)

    threading.Thread.run = profiled  # type: ignore[method-assign]
    try:
        at.slider(key=key).set_value(value).run()
    finally:
        threading.Thread.run = original  # type: ignore[method-assign]
    if profilers:
        pstats.Stats(*profilers).sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--responses", type=int, default=10_000)
    parser.add_argument("--per-question", type=int, default=4, help="responses per question (for selection)")
    parser.add_argument("--steps", type=int, default=4, choices=range(1, 7), help="α steps and β steps per page")
    parser.add_argument("--profile", action="store_true", help="cProfile one β step per page and print it")
    args = parser.parse_args()

    workspace_dir = tempfile.mkdtemp(prefix="rdpt-bench-app-")
    try:
        run(args, workspace_dir)
    finally:
        shutil.rmtree(workspace_dir, ignore_errors=True)


def run(args: argparse.Namespace, workspace_dir: str) -> None:
    os.environ["RDPT_WORKSPACE_DIR"] = workspace_dir  # read by rdpt_app.loaders.workspace() at call time
    sys.path.insert(0, str(REPO))
    from streamlit.testing.v1 import AppTest

    from rdpt_core.workspace import Workspace

    started = time.perf_counter()
    corpus = synthetic_corpus(args.responses, args.per_question)
    n_tokens = sum(s.n_tokens for s in corpus.tokens["distilled"].values())
    build_s = time.perf_counter() - started
    dataset_id = Workspace(workspace_dir).save(f"bench {args.responses}", corpus.records, corpus)
    del corpus
    print(f"corpus: {args.responses:,} responses, {args.responses // args.per_question:,} questions, "
          f"{n_tokens:,} tokens per role · built in {build_s:.1f} s, saved in "
          f"{time.perf_counter() - started - build_s:.1f} s · {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=900)
    at.query_params["dataset"] = dataset_id
    load = timed(at.run)  # home page: opens the dataset and segments it (actions_of is cached)
    _checked(at)
    values = [0.12, 0.15, 0.08, 0.11, 0.14, 0.09][: args.steps]  # none is the default 0.10
    steps = [("w_alpha", a) for a in values] + [("w_beta", b) for b in values]  # every (α, β) new
    results = {"Corpus": page_times(at, "pages/corpus_page.py", steps)}
    if args.profile:
        profile_step(at, "w_beta", 0.2, 40)
    shown = (re.search(r"\d+ responses, (\d+) actions", c.value) for c in at.caption)
    n_actions = next((int(m.group(1)) for m in shown if m), 0)  # the Corpus page's own count

    def working_dataset() -> None:
        at.radio(key="sel_data").set_value("Working dataset (Trajectories page)").run()

    results["Data selection"] = page_times(at, "pages/data_selection_page.py", steps, working_dataset)
    if args.profile:
        profile_step(at, "w_beta", 0.2, 40)
    questions = next((m.value for m in at.metric if m.label == "Questions"), "?")

    print(f"opened ?dataset={dataset_id} on the Home page (load + segmentation, once per corpus): "
          f"{load.wall:.1f} s ({load.cpu:.1f} CPU s)")
    print(f"{n_actions:,} actions on the Corpus page; {questions} questions on the Data selection page; "
          f"load average now {os.getloadavg()[0]:.1f}")
    print("AppTest server-side rerun times (the script's run, not the browser's drawing):\n")
    print_table(results)


if __name__ == "__main__":
    main()
