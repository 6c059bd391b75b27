"""Benchmark: scoring throughput, one record at a time vs batched vs the fp32 GEMM bound; the
engine end to end against a plain transformers scorer; peak memory; Ray vs the local engine;
a fully cached rerun. Every ratio is measured in this one run, repeats interleaved.

    make bench-scoring            # about 40 min on a 2-core CPU
    python scripts/bench_scoring.py --quick   # a smoke run, minutes

Prints a Markdown report (docs/benchmarks.md, "Scoring at scale", is copied from it) and, with
``--out``, the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rdpt_core.backends import create_backend  # noqa: E402
from rdpt_core.cache import TokenCache  # noqa: E402
from rdpt_core.models import resolve_spec  # noqa: E402
from rdpt_core.records import Record, load_records  # noqa: E402

TRAJECTORIES = REPO / "demo/steps/test_trajectories.jsonl"
AIME = REPO / "data/skythought/aime24.sky-t1-correct-5k-27b.jsonl"
MODELS = {"SmolLM2-135M": "smollm2-135m-instruct", "Gemma-3-270M": "gemma3-270m"}
DISTILLED = "gemma3-270m-steps-distilled"  # the lab's: Gemma + LoRA (docs/lab.md)


def lab_records(n: int) -> list[Record]:
    rows = [json.loads(line) for line in TRAJECTORIES.read_text().splitlines()[:n]]
    return [Record(r["record_id"], r["question_id"], r["prompt"], r["response"]) for r in rows]


def long_records(n: int, max_chars: int) -> list[Record]:
    records = load_records(AIME).records[:n]
    return [Record(r.record_id, r.question_id, r.prompt, r.response[:max_chars]) for r in records]


def gemm_gflops(repeats: int = 5) -> float:
    """fp32 matrix-product rate at model-like shapes (the bound's denominator)."""
    import torch

    a, b = torch.randn(1024, 640), torch.randn(640, 2048)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(10):
            torch.mm(a, b)
        best = max(best, 10 * 2 * 1024 * 640 * 2048 / (time.perf_counter() - started) / 1e9)
    return best


def n_params(backend) -> int:
    backend.load()
    return sum(p.numel() for p in backend._model.parameters())


def timed_scores(backend, pairs, batched: bool) -> tuple[float, dict]:
    started = time.perf_counter()
    if batched:
        got = dict(item for done in backend.score_batches(pairs) for item in done)
    else:
        got = {i: backend.score(c, r) for i, (c, r) in enumerate(pairs)}
    return time.perf_counter() - started, got


def throughput(name: str, model: str, records: list[Record], repeats: int, gflops: float) -> dict:
    """Per record vs batched on one model: tokens/s over all tokens run (context + response),
    interleaved repeats, best of each; and the fraction of the GEMM bound (2 x params FLOP/token)."""
    backend = create_backend(resolve_spec(model))
    pairs = [(backend.render_context(r.prompt), r.response) for r in records]
    tokens = sum(len(backend.encode(c, r)[0]) for c, r in pairs)
    params = n_params(backend)
    bound = gflops * 1e9 / (2 * params)
    times: dict[str, list[float]] = {"per record": [], "batched": []}
    timed_scores(backend, pairs[:2], True)  # warm-up
    for _ in range(repeats):
        for mode in times:
            times[mode].append(timed_scores(backend, pairs, mode == "batched")[0])
    backend.unload()
    row = {"model": name, "records": len(records), "tokens": tokens, "params": params,
           "bound tok/s": round(bound, 1)}
    for mode, seconds in times.items():
        row[f"{mode} tok/s"] = round(tokens / min(seconds), 1)
        row[f"{mode} / bound"] = round(tokens / min(seconds) / bound, 3)
    row["batched / per record"] = round(min(times["per record"]) / min(times["batched"]), 3)
    return row


PLAIN_SCORER = r'''
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
job = json.loads(sys.stdin.read())
out = {}
for path in job["models"]:
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    for i, (context, response) in enumerate(job["pairs"][path]):
        add = not (tok.bos_token and context.startswith(tok.bos_token))
        enc = tok(context + response, add_special_tokens=add, return_offsets_mapping=True)
        ids = torch.tensor([enc.input_ids])
        with torch.inference_mode():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
        lp = logp.gather(-1, ids[0, 1:, None])[:, 0].double().tolist()
        first = next(k for k, (s, e) in enumerate(enc.offset_mapping) if e > len(context))
        out[f"{path}:{i}"] = lp[first - 1:]
    del model
print(json.dumps({"logp": out}))
'''


def timed_run(code: str, job: dict) -> tuple[float, dict]:
    """Wall time of ``python -c code`` fed ``job``, start-up and imports included (what a user
    waits for), and the JSON on its last line."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(job, default=str),
                          capture_output=True, text=True, cwd=REPO, check=True)
    return time.perf_counter() - started, json.loads(done.stdout.splitlines()[-1])


def end_to_end(records: list[Record], repeats: int) -> dict:
    """The engine (fresh cache, T = SmolLM2, S = Gemma) vs a plain per-record transformers
    scorer, each a whole process (imports and model loading included), interleaved; and the
    largest |Δ| between their numbers."""
    specs = {"teacher": resolve_spec(MODELS["SmolLM2-135M"]), "student": resolve_spec(MODELS["Gemma-3-270M"])}
    pairs = {}
    for spec in specs.values():
        backend = create_backend(spec)
        pairs[spec.path] = [(backend.render_context(r.prompt), r.response) for r in records]
    ours, plain, delta = [], [], 0.0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache_dir:
            job = {"records": [r.__dict__ for r in records], "cache": cache_dir,
                   "specs": {role: s.path for role, s in specs.items()}}
            seconds, engine = timed_run(ENGINE_RUN, job)
        ours.append(seconds)
        seconds, reference = timed_run(PLAIN_SCORER, {"models": list(pairs), "pairs": pairs})
        plain.append(seconds)
        for key, values in reference["logp"].items():
            delta = max(delta, float(np.nanmax(np.abs(np.array(engine["logp"][key]) - np.array(values)))))
    return {"records": len(records), "engine s": round(min(ours), 1), "plain s": round(min(plain), 1),
            "plain / engine": round(min(plain) / min(ours), 2), "max |dlogp|": delta}


ENGINE_RUN = r'''
import json, sys
from rdpt_core.cache import TokenCache
from rdpt_core.models import resolve_spec
from rdpt_core.records import Record
from rdpt_core.scoring import score_corpus
job = json.loads(sys.stdin.read())
records = [Record(**{k: v for k, v in r.items() if k in ("record_id", "question_id", "prompt", "response")})
           for r in job["records"]]
specs = {role: resolve_spec(path) for role, path in job["specs"].items()}
corpus, _ = score_corpus(records, specs, cache=TokenCache(job["cache"]))
out = {f"{specs[role].path}:{i}": corpus.tokens[role][r.record_id].logprobs.tolist()
       for role in specs for i, r in enumerate(records)}
print(json.dumps({"logp": out}))
'''

PEAK_RUN = r'''
import json, sys
from rdpt_core.cache import TokenCache
from rdpt_core.models import resolve_spec
from rdpt_core.records import Record
from rdpt_core.scoring import score_corpus
job = json.loads(sys.stdin.read())
records = [Record(r["record_id"], r["question_id"], r["prompt"], r["response"]) for r in job["records"]]
score_corpus(records, {role: resolve_spec(**spec) for role, spec in job["specs"].items()}, cache=TokenCache(job["cache"]))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork + exec, so a child would report
# the benchmark's own peak; the high-water mark of this process's fresh address space is its own.
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(int(status["VmHWM"].split()[0]) * 1024)
'''


def peak_memory(records: list[Record]) -> dict:
    """Peak resident memory of a three-model score vs the largest single model's run."""
    def peak(specs: dict) -> int:
        with tempfile.TemporaryDirectory() as cache_dir:
            job = {"records": [r.__dict__ for r in records], "specs": specs, "cache": cache_dir}
            done = subprocess.run([sys.executable, "-c", PEAK_RUN], input=json.dumps(job, default=str),
                                  capture_output=True, text=True, cwd=REPO, check=True)
        return int(done.stdout.splitlines()[-1])

    three = {"teacher": {"name_or_path": MODELS["SmolLM2-135M"]}, "student": {"name_or_path": MODELS["Gemma-3-270M"]},
             "distilled": {"name_or_path": DISTILLED}}
    single = {"student": {"name_or_path": MODELS["Gemma-3-270M"]}}
    both, alone = peak(three), peak(single)
    return {"three models MiB": round(both / 2**20), "largest alone MiB": round(alone / 2**20),
            "ratio": round(both / alone, 3)}


def ray_vs_local(records: list[Record]) -> dict:
    """SmolLM2 on the records: Ray, 2 actors x 1 thread vs the local engine with 2 threads,
    fresh caches. The Ray time counts from a running cluster (actor start and model loads
    included); starting the local cluster is timed on its own."""
    import ray
    import torch

    from rdpt_core.distributed import RaySettings, _connect, score_corpus_ray
    from rdpt_core.scoring import score_corpus

    specs = {"teacher": resolve_spec(MODELS["SmolLM2-135M"])}
    settings = RaySettings(actors=2, cpus_per_actor=1)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        torch.set_num_threads(2)
        started = time.perf_counter()
        score_corpus(records, specs, cache=TokenCache(a), group_chars=8000)
        local = time.perf_counter() - started
        started = time.perf_counter()
        _connect(settings)
        cluster = time.perf_counter() - started
        try:
            started = time.perf_counter()
            score_corpus_ray(records, specs, settings, cache=TokenCache(b), group_chars=8000)
            ray_seconds = time.perf_counter() - started
        finally:
            ray.shutdown()
    return {"records": len(records), "local s": round(local, 1), "ray s": round(ray_seconds, 1),
            "ray throughput / local": round(local / ray_seconds, 3), "cluster start s": round(cluster, 1),
            "with start / local": round(local / (ray_seconds + cluster), 3)}


def attention_and_head(record: Record, repeats: int) -> list[dict]:
    """Where the time goes on one long answer, per model: a plain forward + full log_softmax,
    the lean head with the model's own attention, and with windowed attention (the default
    path when the load-time probe agrees); best of ``repeats``, interleaved."""
    import torch

    rows = []
    for name, model in MODELS.items():
        backend = create_backend(resolve_spec(model))
        backend.load()
        ids, _, _ = backend.encode(backend.render_context(record.prompt), record.response)
        tensor = torch.tensor([ids])

        def plain() -> None:
            with torch.inference_mode():
                torch.log_softmax(backend._model(tensor).logits[0].float(), -1)

        runs = {"plain s": plain,
                "lean, own attention s": lambda: backend._batch_log_probs([(ids, 1)], (backend._lean_rows, False)),
                "lean, windowed s": lambda: backend._batch_log_probs([(ids, 1)], (backend._lean_rows, True))}
        best = {key: float("inf") for key in runs}
        for _ in range(repeats):
            for key, run in runs.items():
                started = time.perf_counter()
                run()
                best[key] = min(best[key], time.perf_counter() - started)
        rows.append({"model": name, "tokens": len(ids), "windowed at load": backend._windowed,
                     **{key: round(value, 2) for key, value in best.items()},
                     "plain / default path": round(best["plain s"] / best["lean, windowed s"], 2)})
        backend.unload()
    return rows


def cached_rerun(records: list[Record]) -> dict:
    """`python -m rdpt_core score` with three roles, run twice on one cache: the second run's
    wall time and whether it imported torch or loaded a model."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "in.jsonl"
        data.write_text("".join(json.dumps({"record_id": r.record_id, "question_id": r.question_id,
                                            "prompt": r.prompt, "response": r.response}) + "\n" for r in records))
        probe = ("import runpy, sys, atexit; atexit.register(lambda: print('TORCH', 'torch' in sys.modules, "
                 "file=sys.stderr)); sys.argv = ['rdpt_core'] + sys.argv[1:]; runpy.run_module('rdpt_core', "
                 "run_name='__main__')")
        args = ["score", "--input", str(data), "--teacher", MODELS["SmolLM2-135M"], "--student", MODELS["Gemma-3-270M"],
                "--distilled", DISTILLED, "--out", str(Path(tmp) / "t.parquet"), "--cache-dir", tmp]
        subprocess.run([sys.executable, "-c", probe, *args], cwd=REPO, capture_output=True, check=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", probe, *args], cwd=REPO, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    return {"records": len(records), "seconds": round(seconds, 2), "torch imported": "TORCH True" in done.stderr,
            "model loaded": "loaded 1x" in done.stderr}


SECTIONS = ("throughput", "head-attention", "end-to-end", "memory", "ray", "cached", "cache-writes")


def cache_writes(n: int, tokens: int = 2000) -> dict:
    """Token-cache writes (temporary name, fsync, rename) and reads on this disk, ``n`` records
    of ``tokens`` response tokens: what a 1M-record corpus would pay for per-record files."""
    from rdpt_core.backends.base import TokenScores
    from rdpt_core.cache import cache_key

    rng = np.random.default_rng(0)
    ends = np.cumsum(rng.integers(1, 6, tokens))
    scores = TokenScores(rng.integers(0, 262144, tokens), np.stack([np.r_[0, ends[:-1]], ends], 1),
                         -rng.exponential(1.0, tokens), np.zeros(tokens, bool), np.zeros(tokens, bool))
    with tempfile.TemporaryDirectory(dir=REPO) as tmp:  # the disk the repo (and its cache) is on
        cache = TokenCache(tmp)
        keys = [cache_key("bench", str(i), "") for i in range(n)]
        started = time.perf_counter()
        for key in keys:
            cache.put(key, scores)
        put_rate = n / (time.perf_counter() - started)
        started = time.perf_counter()
        for key in keys:
            cache.get(key)
        get_rate = n / (time.perf_counter() - started)
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*.npz")) / n
    return {"records": n, "tokens each": tokens, "puts/s": round(put_rate), "gets/s": round(get_rate),
            "KiB per record": round(size / 1024, 1),
            "1M records x 3 roles, writing": f"{3e6 / put_rate / 3600:.1f} h"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few records, one repeat: a smoke run")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run these sections")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    repeats = 1 if args.quick else 2
    short = lab_records(8 if args.quick else 48)
    long = long_records(2 if args.quick else 6, 2000 if args.quick else 6000)
    report: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                               f"torch threads {__import__('torch').get_num_threads()}"}
    report["gemm GFLOP/s"] = round(gemm_gflops(), 1)
    print(f"fp32 GEMM: {report['gemm GFLOP/s']} GFLOP/s", flush=True)
    if "throughput" in args.only:
        report["throughput"] = []
        for corpus, records in (("lab answers", short), ("long AIME answers", long)):
            for name, model in MODELS.items():
                row = {"corpus": corpus, **throughput(name, model, records, repeats, report["gemm GFLOP/s"])}
                report["throughput"].append(row)
                print(row, flush=True)
    sections = {"head-attention": ("head and attention", lambda: attention_and_head(long[0], repeats)),
                "end-to-end": ("end to end", lambda: end_to_end(long, repeats)),
                "memory": ("peak memory", lambda: peak_memory(short)),
                "ray": ("ray", lambda: [ray_vs_local(lab_records(n)) for n in ((16,) if args.quick else (100, 200))]),
                "cached": ("cached rerun", lambda: cached_rerun(lab_records(16 if args.quick else 200))),
                "cache-writes": ("cache writes", lambda: cache_writes(200 if args.quick else 2000))}
    for section, (key, run) in sections.items():
        if section in args.only:
            report[key] = run()
            print(key, report[key], flush=True)
    report["maxrss MiB (this process)"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
