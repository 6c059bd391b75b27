"""Check the CUDA scoring paths against the CPU fp32 numbers, on a machine with a GPU.

    python scripts/gpu_check.py [--model smollm2-135m-instruct] [--records 8] [--out gpu_check.json]

For each setting (fp32, bf16, 8-bit, nf4 on CUDA; batched and one record at a time) it scores a
few of the lab's real answers, compares every token's log-prob with the CPU fp32 reference and
prints the deltas (max and mean |Δ| per token, in nats), the throughput in tokens/s and the
peak GPU memory. Nothing here can run without
a CUDA GPU; the CPU reference runs anywhere. docs/scale.md says what to expect.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rdpt_core.backends import create_backend  # noqa: E402
from rdpt_core.models import resolve_spec, with_overrides  # noqa: E402

SETTINGS = [  # (name, overrides, batched?)
    ("cuda fp32 batched", {"device": "cuda", "dtype": "float32"}, True),
    ("cuda fp32 one at a time", {"device": "cuda", "dtype": "float32"}, False),
    ("cuda bf16 batched", {"device": "cuda", "dtype": "bfloat16"}, True),
    ("cuda 8-bit batched", {"device": "cuda", "dtype": "float16", "quantization": "8bit"}, True),
    ("cuda nf4 batched", {"device": "cuda", "dtype": "bfloat16", "quantization": "nf4"}, True),
]


def lab_pairs(backend, n: int) -> list[tuple[str, str]]:
    lines = (REPO / "demo/steps/test_trajectories.jsonl").read_text().splitlines()[:n]
    rows = [json.loads(line) for line in lines]
    return [(backend.render_context(r["prompt"]), r["response"]) for r in rows]


def run(backend, pairs, batched: bool) -> tuple[list[np.ndarray], float, int]:
    """Log-probs per pair, seconds (after a warm-up pass), tokens scored."""
    score = (lambda: [s for done in backend.score_batches(pairs) for s in done]) if batched else \
        (lambda: [(i, backend.score(c, r)) for i, (c, r) in enumerate(pairs)])
    score()  # load and warm up
    if backend.device == "cuda":
        import torch

        torch.cuda.synchronize()
    started = time.perf_counter()
    results = dict(score())
    if backend.device == "cuda":
        import torch

        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    logps = [results[i].logprobs for i in range(len(pairs))]
    return logps, seconds, sum(len(backend.encode(c, r)[0]) for c, r in pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--records", type=int, default=8)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    import torch

    spec = resolve_spec(args.model)
    cpu = create_backend(with_overrides(spec, device="cpu", dtype="float32"))
    pairs = lab_pairs(cpu, args.records)
    reference, seconds, n_tokens = run(cpu, pairs, batched=True)
    cpu.unload()
    report = {"model": spec.label, "records": len(pairs), "tokens": n_tokens,
              "cpu fp32 tokens/s": round(n_tokens / seconds, 1), "settings": []}
    print(f"{spec.label}: {len(pairs)} records, {n_tokens} tokens; CPU fp32 {n_tokens / seconds:.0f} tokens/s")
    if not torch.cuda.is_available():
        print("no CUDA GPU here: only the CPU reference ran")
        return 1
    report["gpu"] = torch.cuda.get_device_name(0)
    for name, overrides, batched in SETTINGS:
        backend = create_backend(with_overrides(spec, **overrides))
        torch.cuda.reset_peak_memory_stats()
        try:
            logps, seconds, _ = run(backend, pairs, batched)
            windowed = backend._windowed  # the load-time probe's choice (docs/engine.md)
        except Exception as err:  # e.g. bitsandbytes without a kernel for this GPU: report, go on
            print(f"{name:26s} failed: {type(err).__name__}: {err}")
            report["settings"].append({"setting": name, "error": f"{type(err).__name__}: {err}"})
            continue
        finally:
            peak = torch.cuda.max_memory_allocated() / 2**20
            backend.unload()
        delta = np.concatenate([np.abs(a - b) for a, b in zip(logps, reference)])
        delta = delta[np.isfinite(delta)]
        row = {"setting": name, "tokens/s": round(n_tokens / seconds, 1), "max |dlogp|": float(delta.max()),
               "mean |dlogp|": float(delta.mean()), "peak MiB": round(peak, 1),
               "windowed attention": windowed}
        report["settings"].append(row)
        print(f"{name:26s} {row['tokens/s']:>9.0f} tok/s   max |Δ| {row['max |dlogp|']:.2e}   "
              f"mean |Δ| {row['mean |dlogp|']:.2e}   peak {peak:.0f} MiB")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
