"""The single-teacher outputs that several-teacher support (docs/method.md §18) must leave
byte-identical: run with one version of the code, it writes them and prints their SHA-256.

    python scripts/single_teacher_outputs.py OUT_DIR [--repo DIR]

``--repo``: import ``rdpt_core`` from another checkout (e.g. a worktree of the commit before
several teachers existed) while reading the same committed inputs from this one. The hashes of
the commit before (d508120) are in ``tests/data/single_teacher_sha256.json``;
``tests/test_render.py`` recomputes them with the current code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = ROOT / "demo" / "steps"
ALPHA, BETA = 0.1, 0.1


def write_outputs(out: Path) -> dict[str, str]:
    """Every output into ``out``; returns file name -> SHA-256."""
    from rdpt_core import stats
    from rdpt_core.cli import main
    from rdpt_core.provenance import class_column, classify_table
    from rdpt_core.render import highlighted_block
    from rdpt_core.report import build_report
    from rdpt_core.selection import picks_by_strategy, response_features
    from rdpt_core.store import load_corpus

    out.mkdir(parents=True, exist_ok=True)
    actions = load_corpus(STEPS / "corpus").actions("paper")
    actions.to_csv(out / "actions.csv", index=False)  # the score step's table (T, S, D)
    scores = out / "actions.parquet"
    actions.to_parquet(scores, index=False)
    if main(["classify", "--scores", str(scores), "--out", str(out / "classified.csv")]) != 0:
        raise SystemExit("classify failed")
    scores.unlink()
    table = classify_table(actions, ALPHA, BETA)
    column = class_column(table)
    first = table[table["record_id"].isin(table["record_id"].unique()[:5])]
    (out / "explorer.html").write_text("".join(highlighted_block(rows, column) for _, rows in
                                               first.groupby("record_id", sort=False)), encoding="utf-8")
    stats.position_curves(table, column, 10).to_csv(out / "curves.csv", index=False)
    stats.correct_vs_incorrect(table, column).to_csv(out / "correct_vs_incorrect.csv", index=False)
    (out / "report.html").write_text(build_report(actions, ALPHA, BETA, {"dataset": "steps demo"}), encoding="utf-8")
    candidates = load_corpus(STEPS / "teacher_corpus").actions("paper")
    picks_by_strategy(response_features(candidates, BETA)).to_csv(out / "selection.csv", index=False)
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(out.iterdir())}


def main_() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--repo", type=Path, help="import rdpt_core from this checkout")
    args = parser.parse_args()
    if args.repo is not None:
        sys.path.insert(0, str(args.repo.resolve()))
    hashes = write_outputs(args.out)
    import rdpt_core

    print(f"rdpt_core from {Path(rdpt_core.__file__).parent}", file=sys.stderr)
    print(json.dumps(hashes, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main_())
