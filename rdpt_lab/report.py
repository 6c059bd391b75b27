"""The lab lineages' tables in docs/lab.md, generated from the committed artifacts.

Each table sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` in the
doc; :func:`fill` rewrites what is between the markers, so the doc cannot drift from
``demo/steps/`` (a test checks it does not): ``python -m rdpt_lab.report`` rewrites docs/lab.md.

Inputs: ``demo/steps/``: ``manifest.json`` (accuracies, stage results, stage times),
``ground_truth.json`` (classes against the known teacher style) and ``selection/results.json``
(the selection experiment); ``demo/ensemble/``: its ``manifest.json`` and ``attribution.json``
(attributions against the known teacher).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rdpt_core.atomic import atomic_path
from rdpt_core.provenance import CLASSES_4, DEFAULT_ALPHA, DEFAULT_BETA, UNSCORED, classify_table
from rdpt_core.models import PROJECT_ROOT

from . import multistep as M
from .experiment import conclusion, results_markdown
from .lineage import DEMO_SCORES, GROUND_TRUTH, STAGES, STEPS_DIR
from .models import ENSEMBLE_DIR

DOC = PROJECT_ROOT / "docs" / "lab.md"
NOT_RUN = "_(not run yet)_\n"
ROLES = ("teacher", "student", "distilled")


def table_md(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[bool] | None = None) -> str:
    """A markdown table; ``right[i]`` right-aligns column i (numbers)."""
    right = right or [False] * len(headers)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "–" if x is None or x != x else f"{100 * x:.1f}%"  # x != x: NaN


def _acc(summary: Mapping[str, Any] | None) -> str:
    """``41.0% (41/100) [31.9%, 50.8%]`` from :func:`rdpt_lab.lineage.accuracy`'s summary."""
    if not summary or not summary.get("n"):
        return "–"
    lo, hi = summary["wilson95"]
    return f"{_pct(summary['accuracy'])} ({summary['correct']}/{summary['n']}) [{_pct(lo)}, {_pct(hi)}]"


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s" if seconds >= 60 else f"{seconds:.1f} s"


def accuracy_table(manifest: Mapping[str, Any]) -> str:
    """Greedy and sampled test accuracy per model, 95% Wilson intervals, truncated answers."""
    stages = manifest.get("stages", {})
    runs = {role: dict(stages.get("trajectories", {}).get(role, {})) for role in ROLES}
    if "teacher_test" in stages:
        runs["teacher"].setdefault("greedy", stages["teacher_test"])
    if not any(runs.values()):
        return NOT_RUN
    rows = [[role, _acc(runs[role].get("greedy")), runs[role].get("greedy", {}).get("truncated", "–"),
             _acc(runs[role].get("sampled")), runs[role].get("sampled", {}).get("truncated", "–")] for role in ROLES]
    out = table_md(["model", "greedy: accuracy (k/n) [95% Wilson]", "greedy: truncated",
                 "sampled: accuracy (k/n) [95% Wilson]", "sampled: truncated"], rows, [False, True, True, True, True])
    teacher, student = runs["teacher"].get("greedy"), runs["student"].get("greedy")
    if teacher and student and teacher.get("n") and student.get("n"):
        ratio = "∞ (the student solves none)" if not student["correct"] else \
            f"{teacher['accuracy'] / student['accuracy']:.1f}×"
        out += f"\nTeacher ÷ student greedy accuracy: {ratio}.\n"
    return out


STEPS_RUNS = (("teacher", "teacher: SmolLM2-135M-Instruct + LoRA on solver solutions"),
              ("distill", "distilled: Gemma-3-270M + LoRA on verified teacher samples"))
ENSEMBLE_RUNS = (("narrative_teacher", "narrative teacher: SmolLM2-135M-Instruct + LoRA on narrative solutions"),
                 ("mixed_distill", "mixed distilled: Gemma-3-270M + LoRA on one verified answer of each teacher"))


def training_table(manifest: Mapping[str, Any], runs: Sequence[tuple[str, str]] = STEPS_RUNS,
                   samples_stage: str = "samples", samples_label: str = "teacher samples (T = 0.7)") -> str:
    """The LoRA runs and the teacher's samples they rest on."""
    stages = manifest.get("stages", {})
    rows = []
    for name, what in runs:
        run = stages.get(name)
        if run:
            rows.append([what, run["examples"], run["steps"], f"{run['loss_first']:.3f} → {run['loss_last']:.3f}",
                         _minutes(run["seconds"])])
    samples = stages.get(samples_stage, {})
    out = table_md(["run", "examples", "steps", "loss first → last", "time"], rows, [False, True, True, False, True]) \
        if rows else NOT_RUN
    if samples:
        out += "\n" + table_md([samples_label, "verified (k/n) [95% Wilson]", "truncated"],
                            [[name, _acc(samples.get(name)), samples.get(name, {}).get("truncated", "–")]
                             for name in ("distillation", "heldout")], [False, True, True])
    return out


def mixed_accuracy_table(manifest: Mapping[str, Any]) -> str:
    """The mixed distilled model on the unseen test questions (greedy and sampled)."""
    run = manifest.get("stages", {}).get("trajectories")
    if not run:
        return NOT_RUN
    return table_md(["mixed distilled model, test questions", "correct (k/n) [95% Wilson]", "truncated"],
                    [[kind, _acc(run.get(kind)), run.get(kind, {}).get("truncated", "–")]
                     for kind in ("greedy", "sampled")], [False, True, True])


def _attribution_confusion(confusion: Sequence[Mapping[str, Any]], alpha: object, beta: object, gamma: object) -> str:
    known = [k for k in confusion[0] if k != "attribution" and not k.startswith("share_of_")]
    rows = [[r["attribution"], *(r[k] for k in known), *(_pct(r[f"share_of_{k}"]) for k in known)] for r in confusion]
    return (f"α = {alpha}, β = {beta}, γ = {gamma}; unit: sentences (actions) of the two-teacher corpus, "
            "Unscored left out; columns: the known origin.\n\n"
            + table_md(["attribution", *known, *(f"share of {k}" for k in known)], rows,
                       [False, *[True] * (2 * len(known))]))


def attribution_tables(attribution: Mapping[str, Any]) -> tuple[str, str]:
    """The confusion tables of attributions against the known teacher (at β, and at the β that
    §10 suggests when it differs), and attribution by γ."""
    a, g = attribution["alpha"], attribution["gamma"]
    first = _attribution_confusion(attribution["confusion"], a, attribution["beta"], g)
    suggested = attribution.get("suggested_beta")
    if suggested is not None and suggested != attribution["beta"]:
        first += (f"\nAt the β that method §10 suggests for this corpus ({suggested}):\n\n"
                  + _attribution_confusion(attribution["confusion_at_suggested_beta"], a, suggested, g))
    elif suggested is not None:
        first += "\nMethod §10 suggests this same β for this corpus.\n"
    by_gamma = [[r["gamma"], r["teacher"], r["n_marked"], _pct(r["attributed_to_it"]), _pct(r["attributed_to_several"]),
                 _pct(r["attributed_to_another"]), _pct(r["not_teacher_class"]), _pct(r["precision"])]
                for r in attribution["by_gamma"]]
    second = table_md(["γ", "teacher", "marked sentences", "to it", "to several", "to the other", "not Teacher/Boosted",
                       "precision"], by_gamma, [True, False, *[True] * 6])
    return first, second


def ensemble_tables(out: Path) -> dict[str, str]:
    """The two-teacher lineage's generated tables of docs/lab.md from its folder ``out``."""
    from .ensemble import ATTRIBUTION, STAGES as ENSEMBLE_STAGES

    manifest = _read(out / "manifest.json") or {}
    attribution = _read(out / ATTRIBUTION)
    confusion, by_gamma = attribution_tables(attribution) if attribution else (NOT_RUN, NOT_RUN)
    return {
        "ensemble-training": training_table(manifest, ENSEMBLE_RUNS, "narrative_samples",
                                            "narrative teacher samples (T = 0.7)"),
        "ensemble-accuracy": mixed_accuracy_table(manifest),
        "ensemble-stages": stage_table(manifest, ENSEMBLE_STAGES),
        "ensemble-confusion": confusion,
        "ensemble-by-gamma": by_gamma,
    }


def doc_tables() -> dict[str, str]:
    """Every generated table of docs/lab.md, from the committed lineages."""
    return {**lineage_tables(STEPS_DIR), **ensemble_tables(ENSEMBLE_DIR)}


def attempts_table(manifest: Mapping[str, Any]) -> str:
    """Earlier teachers (kept in the manifest's ``attempts`` when a teacher was retrained)."""
    attempts = manifest.get("attempts", [])
    if not attempts:
        return "_(none: the teacher above is the first)_\n"
    rows = [[i, a["what"], _acc(a.get("teacher_test")), a.get("failure_analysis", "–")]
            for i, a in enumerate(attempts, 1)]
    return table_md(["#", "teacher", "greedy test accuracy [95% Wilson]", "what went wrong"], rows,
                 [True, False, True, False])


def teacher_breakdown(out: Path) -> str:
    """The teacher's greedy test accuracy by the question's arithmetic steps and by the kinds of
    event it contains: where the teacher stands, and what falls short."""
    from rdpt_core.records import load_records

    from .lineage import TEACHER_TEST, load_questions

    if not (out / TEACHER_TEST).exists():
        return NOT_RUN
    problems = {p.question_id: p for p in load_questions(out)["test"]}
    answers = load_records(out / TEACHER_TEST).records
    solved = {r.question_id: bool(r.correct) for r in answers}

    def rows(groups: Mapping[object, list[str]]) -> list[list[object]]:
        counts = {key: (len(ids), sum(solved[i] for i in ids)) for key, ids in groups.items()}
        return [[key, n, k, _pct(k / n)] for key, (n, k) in counts.items()]

    checked = [M.equations(r.response) for r in answers]
    right, written = sum(sum(c) for c in checked), sum(len(c) for c in checked)
    arithmetic = (f"Arithmetic: {right} of the {written} equations (a op b = c) its answers write hold "
                  f"({_pct(right / written if written else None)}); {sum(not all(c) for c in checked)} of its "
                  f"{len(answers)} answers have at least one that does not. Of its "
                  f"{sum(not r.correct for r in answers)} wrong answers, "
                  f"{sum(all(c) and not r.correct for r, c in zip(answers, checked))} have every equation right: "
                  f"those misread an event.\n\n")
    by_steps: dict[object, list[str]] = {}
    by_kind: dict[object, list[str]] = {}
    for qid in solved:
        by_steps.setdefault(problems[qid].steps, []).append(qid)
        for kind in sorted(set(problems[qid].kinds)):
            by_kind.setdefault(kind, []).append(qid)
    return arithmetic + (table_md(["arithmetic steps", "test questions", "solved", "accuracy"],
                  rows(dict(sorted(by_steps.items()))), [True] * 4) + "\n"
            + table_md(["question has a … event", "test questions", "solved", "accuracy"],
                    rows(dict(sorted(by_kind.items()))), [False, True, True, True]))


def stage_table(manifest: Mapping[str, Any], stages: Sequence[str]) -> str:
    seconds = manifest.get("stage_seconds", {})
    rows = [[name, _minutes(seconds[name])] for name in stages if name in seconds]
    if not rows:
        return NOT_RUN
    total = sum(seconds[name] for name in stages if name in seconds)
    return table_md(["stage", "time"], [*rows, ["**total**", f"**{_minutes(total)}**"]], [False, True])


def confusion_table(truth: Mapping[str, Any]) -> str:
    rows = [[r["cls"], r["teacher_style"], r["other"], _pct(r["share_of_teacher_style"]), _pct(r["share_of_other"])]
            for r in truth["confusion"]]
    return (f"α = {truth['alpha']}, β = {truth['beta']}; unit: sentences (actions) of the demo corpus.\n\n"
            + table_md(["class", "teacher-style", "other", "share of teacher-style", "share of other"], rows,
                    [False, True, True, True, True]))


def agreement_table(truth: Mapping[str, Any]) -> str:
    rows = [[r["beta"], r["n_teacher_style"], r["n_other"], _pct(r["teacher_recall"]),
             _pct(r["teacher_or_boosted_recall"]), _pct(r["teacher_precision"]), _pct(r["other_as_teacher"])]
            for r in truth["agreement"]]
    return table_md(["β", "teacher-style", "other", "Teacher recall", "Teacher-or-Boosted recall",
                  "Teacher precision", "other classified Teacher"], rows, [True] * 7)


def style_table(truth: Mapping[str, Any]) -> str:
    rows = [[role, s["sentences"], s["teacher_style"], _pct(s["share"])]
            for role, s in truth["style_share"].items()]
    return table_md(["model (its own test answers)", "sentences", "teacher-style", "share"], rows,
                 [False, True, True, True])


def selection_table(results: Mapping[str, Any]) -> str:
    return f"β = {results['beta']} (chosen before training).\n\n{results_markdown(results['rows'])}\n" \
           f"{conclusion(results['rows'])}\n"


def selection_overlap(selection_dir: Path) -> str:
    """How alike the strategies' training sets are: for each pair, the questions on which both
    picked the same answer (out of the questions and candidates ``beta.json`` counts)."""
    picked = {path.stem: {row["question_id"]: row["record_id"] for row in map(json.loads, path.read_text().splitlines())}
              for path in sorted((selection_dir / "selected").glob("*.jsonl"))}
    if not picked:
        return NOT_RUN
    names = list(picked)
    order = [n for n in ("random", "grape", "max_teacher_count", "min_teacher_count", "longest") if n in names]
    names = order + [n for n in names if n not in order]
    rows = [[a, *(sum(picked[a].get(q) == r for q, r in picked[b].items()) for b in names)] for a in names]
    out = table_md(["same answer on … questions", *names], rows, [False, *([True] * len(names))])
    beta = _read(selection_dir / "beta.json") or {}
    if "questions" in beta:
        out += f"\n{beta['questions']} questions, {beta['candidates']} verified answers to choose from.\n"
    return out


def class_tables(actions: pd.DataFrame, alpha: float, beta: float, min_n: int = 10) -> str:
    """Class shares of the demo corpus's actions, overall and in correct vs incorrect answers
    (unit: actions; the β page's per-response statistics are in the app), and the Teacher and
    Boosted shares by position where at least ``min_n`` answers reach it."""
    table = classify_table(actions, alpha, beta)
    scored = table[table["cls"] != UNSCORED]
    verdict = scored["correct"].map({True: "correct", False: "incorrect"}).fillna("unknown")
    rows = []
    for name, part in [("all", scored), *((v, scored[verdict == v]) for v in ("correct", "incorrect"))]:
        shares = part["cls"].value_counts(normalize=True)
        rows.append([name, part["record_id"].nunique(), len(part), *(_pct(float(shares.get(c, 0.0))) for c in CLASSES_4)])
    out = (f"α = {alpha}, β = {beta}, paper segmenter; unit: actions.\n\n"
           + table_md(["answers", "responses", "actions", *CLASSES_4], rows, [False, True, True, True, True, True, True]))
    positions = scored.groupby("action_index").agg(
        n=("record_id", "nunique"), teacher=("cls", lambda c: (c == "Teacher").mean()),
        boosted=("cls", lambda c: (c == "Boosted").mean()))
    positions = positions[positions["n"] >= min_n]
    out += "\n" + table_md(["position", "responses", "Teacher", "Boosted"],
                            [[int(i), int(r.n), _pct(r.teacher), _pct(r.boosted)] for i, r in positions.iterrows()],
                            [True, True, True, True])
    return out


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _or_not_run(data: dict[str, Any] | None, render: Callable[[dict[str, Any]], str]) -> str:
    return NOT_RUN if data is None else render(data)


def lineage_tables(out: Path) -> dict[str, str]:
    """Every generated table of docs/lab.md from the lineage folder ``out``."""
    manifest = _read(out / "manifest.json") or {}
    truth, selection = _read(out / GROUND_TRUTH), _read(out / "selection" / "results.json")
    experiment = _read(out / "selection" / "experiment.json") or {}
    return {
        "steps-accuracy": accuracy_table(manifest),
        "steps-training": training_table(manifest),
        "steps-attempts": attempts_table(manifest),
        "steps-teacher-breakdown": teacher_breakdown(out),
        "steps-stages": stage_table(manifest, STAGES),
        "steps-confusion": _or_not_run(truth, confusion_table),
        "steps-agreement": _or_not_run(truth, agreement_table),
        "steps-style": _or_not_run(truth, style_table),
        "steps-classes": class_tables(pd.read_parquet(out / DEMO_SCORES), DEFAULT_ALPHA, DEFAULT_BETA)
        if (out / DEMO_SCORES).exists() else NOT_RUN,
        "steps-selection": _or_not_run(selection, selection_table),
        "steps-selection-stages": stage_table(experiment, list(experiment.get("stage_seconds", {}))),
        "steps-selection-overlap": selection_overlap(out / "selection"),
    }


_BLOCK = re.compile(r"(<!-- generated:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)", re.S)


def fill(text: str, tables: Mapping[str, str]) -> str:
    """``text`` with every generated block's body replaced by its table; a block without a
    table, or a table without a block, is an error (a renamed table must not go stale silently)."""
    names = [m["name"] for m in _BLOCK.finditer(text)]
    unknown, unused = sorted(set(names) - set(tables)), sorted(set(tables) - set(names))
    if unknown or unused:
        raise ValueError(f"generated blocks without a table: {unknown}; tables without a block: {unused}")
    return _BLOCK.sub(lambda m: m.group(1) + tables[m["name"]] + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rdpt_lab.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    text = args.doc.read_text(encoding="utf-8")
    with atomic_path(args.doc) as tmp:
        tmp.write_text(fill(text, doc_tables()), encoding="utf-8")
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
