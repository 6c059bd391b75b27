"""Record the scoring models' fingerprints in corpora saved before fingerprints were kept.

For each corpus directory: resolve each role's model from its label (packaged or registered
names), re-score a few of its records with that model in a private cache, and write the
fingerprint into ``corpus.json`` only if the stored token log-probs equal the fresh ones
(|Δ| ≤ 1e-4). A corpus whose numbers do not match is left alone and reported.

    .venv/bin/python scripts/stamp_fingerprints.py demo/steps/corpus demo/steps/teacher_corpus data/math500_subset/corpus
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import numpy as np

from rdpt_core.backends import create_backend
from rdpt_core.cache import TokenCache
from rdpt_core.models import resolve_spec
from rdpt_core.scoring import ScoredCorpus, score_corpus
from rdpt_core.store import load_corpus, save_corpus

TOLERANCE = 1e-4


def largest_difference(saved: ScoredCorpus, fresh: ScoredCorpus, role: str) -> float:
    worst = 0.0
    for rid, scores in fresh.tokens[role].items():
        kept = saved.tokens[role][rid]
        if not np.array_equal(kept.token_ids, scores.token_ids):
            return float("inf")
        worst = max(worst, float(np.nanmax(np.abs(kept.logprobs - scores.logprobs), initial=0.0)))
    return worst


def stamp(directory: str, n_check: int) -> bool:
    corpus = load_corpus(directory)
    specs = {role: resolve_spec(label) for role, label in corpus.models.items()}
    scored = [r for r in corpus.records if all(r.record_id in corpus.tokens[role] for role in specs)]
    sample = scored[:: max(1, len(scored) // n_check)][:n_check]
    with tempfile.TemporaryDirectory() as cache_dir:
        fresh, _ = score_corpus(sample, specs, cache=TokenCache(cache_dir))
    differences = {role: largest_difference(corpus, fresh, role) for role in specs}
    print(f"{directory}: {len(sample)} records re-scored; largest |Δ log-prob| per role: {differences}")
    if max(differences.values()) > TOLERANCE:
        print(f"{directory}: numbers differ from today's models; fingerprints NOT written", file=sys.stderr)
        return False
    fingerprints = {role: create_backend(spec).fingerprint for role, spec in specs.items()}
    save_corpus(ScoredCorpus(corpus.records, corpus.tokens, corpus.markers, corpus.models, fingerprints), directory)
    print(f"{directory}: fingerprints written {fingerprints}")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpora", nargs="+")
    parser.add_argument("--check", type=int, default=4, help="records re-scored per corpus (default 4)")
    args = parser.parse_args()
    return 0 if all([stamp(d, args.check) for d in args.corpora]) else 1


if __name__ == "__main__":
    sys.exit(main())
