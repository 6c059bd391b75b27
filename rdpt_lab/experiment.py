"""The paper's section-4 experiment from a TOML config: does teacher-guided selection train a
better student than other ways of keeping one teacher answer per question?

    python -m rdpt_lab selection-experiment --config rdpt_lab/configs/steps_selection.toml

Input: a scored teacher corpus (several teacher answers per question, scored by the teacher and
the student: :func:`rdpt_core.store.save_corpus`), a student model, a test set (JSONL lines
``{"question_id": ..., "prompt": ..., "answer": ...}``) and the recipe (strategies, training
seeds, β, LoRA and sampling settings). Stages, each skipped when its output exists (so a killed
run resumes; LoRA training itself checkpoints), times in ``<out>/experiment.json``:

1. beta       – ``beta.json``: a fixed β, or "auto": the β-tuning page's rule (the β of the grid
                whose two most frequent 3-class shares overlap least), on the candidates, before
                any training;
2. select     – ``selected/<strategy>.jsonl``: one candidate per question per strategy
                (:mod:`rdpt_core.selection`), so every strategy trains on as many examples;
3. train      – ``adapters/<strategy>-s<seed>/``: LoRA on the selected (prompt, response) pairs,
                the same hyper-parameters for all, the seed as the training seed;
4. eval       – ``eval/<strategy>-s<seed>.jsonl``: greedy answers to the test set, checked by
                ``strict_final`` (:func:`rdpt_lab.multistep.stated_answer` equals the answer) or
                ``math_verify`` (:func:`rdpt_core.answers.check_answer`);
5. table      – ``results.json`` and ``results.md``: per (strategy, seed) the training-set size,
                its mean Teacher actions and tokens, accuracy with its 95% Wilson interval, the
                truncated answers, and one sentence on what the intervals allow one to conclude.

A rerun into an ``out`` made with another recipe (β, LoRA, sampling, inputs…) is refused: its
finished stages would be skipped and mixed with the new ones. Adding strategies or seeds is fine.
Relative paths in the config are read from the directory the command runs in.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import re
import shutil
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from rdpt_core import stats
from rdpt_core.answers import check_answer
from rdpt_core.atomic import atomic_path
from rdpt_core.backends.base import SamplingSettings
from rdpt_core.backends.hf import HFBackend
from rdpt_core.models import TEMPLATE_MODES, ModelSpec, resolve_spec
from rdpt_core.provenance import DEFAULT_ALPHA
from rdpt_core.records import Record, load_records, write_jsonl, write_records_jsonl
from rdpt_core.scoring import ScoredCorpus
from rdpt_core.segment import SEGMENTERS
from rdpt_core.selection import STRATEGIES, export_rows, response_features, select
from rdpt_core.store import load_corpus

from . import multistep as M
from .lineage import accuracy, generate
from .stages import StageRunner, write_json
from .train import LoraSettings, hf_backend, train_lora

DEFAULT_STRATEGIES = ("random", "grape", "max_teacher_count", "min_teacher_count", "longest")
CHECKERS = ("strict_final", "math_verify")
SAVE_DTYPES = ("float32", "bfloat16", "float16")
TOP_KEYS = ("student", "student_template", "teacher_corpus", "only_correct", "test_questions", "checker",
            "strategies", "seeds", "selection_seed", "beta", "beta_grid", "beta_bins", "segmenter", "lora",
            "sampling", "out")
SAMPLING_KEYS = ("max_new_tokens", "batch_size", "stop_regex")
# the recipe of an out dir: everything that shapes a stage's output (strategies and seeds only add rows)
NOT_RECIPE = ("strategies", "seeds", "out")


class ConfigError(ValueError):
    """A bad config value, test-set line or input; the message names the file and the key."""


# ---- the config ------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalSampling:
    """Greedy decoding of the test answers."""

    max_new_tokens: int = 256
    batch_size: int = 32
    stop_regex: str | None = None

    def settings(self) -> SamplingSettings:
        # temperature 0 is greedy: the seed then changes nothing
        return SamplingSettings(n=1, temperature=0.0, top_p=1.0, max_new_tokens=self.max_new_tokens, seed=0,
                                batch_size=self.batch_size, stop_regex=self.stop_regex)


@dataclass(frozen=True)
class ExperimentConfig:
    student: str  # zoo name, hub id or local directory (a plain base: the adapters go on it)
    teacher_corpus: Path
    test_questions: Path
    out: Path
    student_template: str = "auto"
    only_correct: bool = True  # keep the teacher's correct answers only, as the paper does
    checker: str = "strict_final"
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    seeds: tuple[int, ...] = (0,)  # training seeds
    selection_seed: int = 0  # the random strategy's draw (the same set for every training seed)
    beta: float | None = None  # None: "auto"
    beta_grid: tuple[float, ...] = field(default_factory=lambda: tuple(stats.beta_grid()))
    beta_bins: int = 10
    segmenter: str = "paper"
    lora: LoraSettings = field(default_factory=LoraSettings)
    sampling: EvalSampling = field(default_factory=EvalSampling)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(teacher_corpus=str(self.teacher_corpus), test_questions=str(self.test_questions),
                    out=str(self.out), strategies=list(self.strategies), seeds=list(self.seeds),
                    beta="auto" if self.beta is None else self.beta, beta_grid=list(self.beta_grid),
                    lora={k: v for k, v in self.lora.to_dict().items() if k != "seed"},
                    sampling=asdict(self.sampling))
        return data

    def recipe(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k not in NOT_RECIPE}


def _fail(source: str, key: str, message: str) -> NoReturn:
    raise ConfigError(f"{source}: key '{key}' {message}")


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str], source: str, prefix: str = "") -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f"; known keys: {', '.join(allowed)}"
            _fail(source, prefix + key, f"is not a known key{hint}")


def _string(table: Mapping[str, Any], key: str, source: str, default: str | None = None, name: str = "") -> str:
    name = name or key
    if key not in table:
        if default is None:
            _fail(source, name, "is required")
        return default
    value = table[key]
    if not isinstance(value, str) or not value.strip():
        _fail(source, name, f"must be a non-empty string, got {value!r}")
    return value


def _choice(table: Mapping[str, Any], key: str, source: str, choices: Sequence[str], default: str,
            name: str = "") -> str:
    value = _string(table, key, source, default, name)
    if value not in choices:
        _fail(source, name or key, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _int(value: Any, source: str, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(source, name, f"must be an integer >= {minimum}, got {value!r}")
    return value


def _number(value: Any, source: str, name: str, lo: float, hi: float, hi_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            lo <= value < hi if hi_open else lo <= value <= hi):
        _fail(source, name, f"must be a number in [{lo}, {hi}{')' if hi_open else ']'}, got {value!r}")
    return float(value)


def _bool(table: Mapping[str, Any], key: str, source: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        _fail(source, key, f"must be true or false, got {value!r}")
    return value


def _list(table: Mapping[str, Any], key: str, source: str) -> list:
    value = table[key]
    if not isinstance(value, list) or not value:
        _fail(source, key, f"must be a non-empty list, got {value!r}")
    if len(set(map(repr, value))) != len(value):
        _fail(source, key, f"lists an item twice: {value!r}")
    return value


def _table(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        _fail(source, key, f"must be a table ([{key}]), got {value!r}")
    return value


def _lora(table: Mapping[str, Any], source: str) -> LoraSettings:
    """[lora] onto :class:`LoraSettings`: each key typed like its default; the seed comes from
    the top-level ``seeds``."""
    known = [f.name for f in fields(LoraSettings) if f.name != "seed"]
    if "seed" in table:
        _fail(source, "lora.seed", "is not set here: list the training seeds in the top-level 'seeds'")
    _check_keys(table, known, source, "lora.")
    defaults = LoraSettings()
    values: dict[str, Any] = {}
    for key, value in table.items():
        name, default = f"lora.{key}", getattr(defaults, key)
        if isinstance(default, tuple):
            if not (isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)):
                _fail(source, name, f"must be a non-empty list of module names, got {value!r}")
            values[key] = tuple(value)
        elif isinstance(default, int):  # warmup_steps too: the schedule divides by it
            values[key] = _int(value, source, name, 0 if key == "checkpoint_every" else 1)
        elif isinstance(default, float):
            values[key] = (_number(value, source, name, 0.0, 1.0, hi_open=True) if key == "dropout"
                           else _number(value, source, name, 0.0, math.inf))
            if key == "learning_rate" and values[key] <= 0:
                _fail(source, name, f"must be positive, got {value!r}")
        elif key == "save_dtype":
            values[key] = _choice(table, key, source, SAVE_DTYPES, "float32", name)
        else:  # pragma: no cover - every LoraSettings field is one of the above
            raise TypeError(f"LoraSettings.{key}: no parser for {type(default).__name__}")
    return replace(defaults, **values)


def _sampling(table: Mapping[str, Any], source: str) -> EvalSampling:
    _check_keys(table, SAMPLING_KEYS, source, "sampling.")
    defaults = EvalSampling()
    stop = table.get("stop_regex")
    if stop is not None:
        stop = _string(table, "stop_regex", source, name="sampling.stop_regex")
        try:
            re.compile(stop)
        except re.error as err:
            _fail(source, "sampling.stop_regex", f"is not a regular expression: {err}")
    return EvalSampling(
        max_new_tokens=_int(table.get("max_new_tokens", defaults.max_new_tokens), source, "sampling.max_new_tokens", 1),
        batch_size=_int(table.get("batch_size", defaults.batch_size), source, "sampling.batch_size", 1),
        stop_regex=stop)


def parse_config(data: Mapping[str, Any], source: str = "config", out: Path | None = None) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from parsed TOML; ``out`` (the CLI's ``--out``) replaces the
    file's. Errors name ``source`` and the key."""
    _check_keys(data, TOP_KEYS, source)
    strategies = tuple(_list(data, "strategies", source)) if "strategies" in data else DEFAULT_STRATEGIES
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        _fail(source, "strategies", f"names unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    seeds = tuple(_int(s, source, "seeds") for s in _list(data, "seeds", source)) if "seeds" in data else (0,)
    beta_value = data.get("beta", "auto")
    if isinstance(beta_value, str) and beta_value != "auto":
        _fail(source, "beta", f"must be \"auto\" or a number in [0, 1], got {beta_value!r}")
    beta = None if beta_value == "auto" else _number(beta_value, source, "beta", 0.0, 1.0)
    grid = (tuple(_number(b, source, "beta_grid", 0.0, 1.0) for b in _list(data, "beta_grid", source))
            if "beta_grid" in data else tuple(stats.beta_grid()))
    if "out" not in data and out is None:
        _fail(source, "out", "is required (or pass --out)")
    return ExperimentConfig(
        student=_string(data, "student", source),
        student_template=_choice(data, "student_template", source, TEMPLATE_MODES, "auto"),
        teacher_corpus=Path(_string(data, "teacher_corpus", source)),
        test_questions=Path(_string(data, "test_questions", source)),
        out=out if out is not None else Path(_string(data, "out", source)),
        only_correct=_bool(data, "only_correct", source, True),
        checker=_choice(data, "checker", source, CHECKERS, "strict_final"),
        strategies=strategies, seeds=seeds,
        selection_seed=_int(data.get("selection_seed", 0), source, "selection_seed"),
        beta=beta, beta_grid=tuple(sorted(set(grid))),
        beta_bins=_int(data.get("beta_bins", 10), source, "beta_bins", 2),
        segmenter=_choice(data, "segmenter", source, SEGMENTERS, "paper"),
        lora=_lora(_table(data, "lora", source), source),
        sampling=_sampling(_table(data, "sampling", source), source),
    )


def load_config(path: str | Path, out: Path | None = None) -> ExperimentConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config: {err.strerror or err}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    return parse_config(data, str(path), out)


# ---- the test set and the checkers -------------------------------------------------------------
@dataclass(frozen=True)
class EvalQuestion:
    """A test question: what the evaluator needs of one (a multistep Problem has the same)."""

    question_id: str
    prompt: str
    answer: int | str  # an int for strict_final


def _answer(value: Any, checker: str) -> int | str | None:
    if isinstance(value, bool):
        return None
    if checker == "strict_final":
        if isinstance(value, int):
            return value
        text = str(value).strip().replace(",", "") if isinstance(value, (str, float)) else ""
        return int(text) if re.fullmatch(r"-?\d+", text) else None
    return str(value).strip() if isinstance(value, (str, int, float)) and str(value).strip() else None


def load_test_questions(path: Path, checker: str) -> list[EvalQuestion]:
    """The test set: JSONL, one ``{"question_id", "prompt", "answer"}`` object a line (an integer
    answer for ``strict_final``); errors name the file, line and field."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ConfigError(f"key 'test_questions': cannot read {path}: {err.strerror or err}") from err
    out: list[EvalQuestion] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{where}: not JSON ({err.msg})") from err
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: must be a JSON object with question_id, prompt and answer")
        for key in ("question_id", "prompt", "answer"):
            if key not in row:
                raise ConfigError(f"{where}: field '{key}' is missing")
        for key in ("question_id", "prompt"):
            if not isinstance(row[key], str) or not row[key].strip():
                raise ConfigError(f"{where}: field '{key}' must be a non-empty string, got {row[key]!r}")
        answer = _answer(row["answer"], checker)
        if answer is None:
            want = "an integer (checker strict_final)" if checker == "strict_final" else "a non-empty answer"
            raise ConfigError(f"{where}: field 'answer' must be {want}, got {row['answer']!r}")
        if row["question_id"] in seen:
            raise ConfigError(f"{where}: duplicate question_id {row['question_id']!r}")
        seen.add(row["question_id"])
        out.append(EvalQuestion(row["question_id"], row["prompt"], answer))
    if not out:
        raise ConfigError(f"key 'test_questions': {path} holds no question")
    return out


def check_response(response: str, answer: int | str, checker: str) -> bool:
    """``strict_final``: the response ends stating the integer answer; ``math_verify``: the
    answers agree symbolically (no parse: the last number)."""
    if checker == "strict_final":
        return M.stated_answer(response) == int(answer)
    return check_answer(response, str(answer)) is True


def greedy_answers(spec: ModelSpec, questions: Sequence[EvalQuestion], sampling: EvalSampling, checker: str,
                   source: str, log: Callable[[str], None] = print) -> list[Record]:
    """One greedy answer per question from ``spec``, checked by ``checker`` (``strict_final``
    also wants the answer not cut by the token limit)."""
    answers = generate(spec, [q.prompt for q in questions], sampling.settings(), f"{source} answers", log)
    records = []
    for question, (answer, *_) in zip(questions, answers):
        correct = check_response(answer.text, question.answer, checker)
        records.append(Record(
            f"{source}:{question.question_id}:greedy", question.question_id, question.prompt, answer.text,
            correct and not (checker == "strict_final" and answer.truncated), source,
            {"answer": question.answer, "sample": "greedy", "checker": checker, "truncated": answer.truncated}))
    return records


# ---- candidates, β, selection ----------------------------------------------------------------
def candidates(corpus: ScoredCorpus, only_correct: bool) -> ScoredCorpus:
    """The corpus restricted to the answers one may select (the correct ones with ``only_correct``)."""
    kept = [r for r in corpus.records if r.correct is True or not only_correct]
    ids = {r.record_id for r in kept}
    tokens = {role: {rid: s for rid, s in by_record.items() if rid in ids} for role, by_record in corpus.tokens.items()}
    return replace(corpus, records=kept, tokens=tokens)


def choose_beta(actions: pd.DataFrame, grid: Sequence[float], bins: int) -> tuple[float | None, pd.DataFrame]:
    """The β-tuning page's rule (pages/beta_tuning_page.py) on a T/S action table: the β of
    ``grid`` whose two most frequent classes' per-response share histograms overlap least."""
    # before training there is no distilled model: the 3 classes (cls3); α plays no part in them
    overlaps = stats.beta_overlaps(actions, DEFAULT_ALPHA, grid, bins, "cls3")
    return (stats.suggest_beta(overlaps) if len(overlaps) else None), overlaps


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- the results table -------------------------------------------------------------------------
def result_row(strategy: str, seed: int, selected: Sequence[Mapping[str, Any]], records: list[Record]) -> dict:
    acc = accuracy(records)
    return {"strategy": strategy, "seed": seed, "n_train": len(selected),
            "mean_teacher_actions": float(np.mean([r["rdpt_n_teacher"] for r in selected])),
            "mean_tokens": float(np.mean([r["rdpt_n_tokens"] for r in selected])),
            "n_test": acc["n"], "correct": acc["correct"], "accuracy": acc["accuracy"],
            "wilson95": acc["wilson95"], "truncated": acc["truncated"]}


RESULT_FIELDS = ("strategy", "seed", "n_train", "mean_teacher_actions", "mean_tokens", "n_test", "correct",
                 "accuracy", "wilson95", "truncated")


def read_results(text: str, source: str = "results.json") -> dict[str, Any]:
    """A ``results.json`` written by :meth:`Experiment.table`, checked: errors name the file,
    the row and the field (the app reads users' own runs)."""
    try:
        results = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: not JSON ({err.msg}, line {err.lineno})") from err
    if not isinstance(results, dict) or not isinstance(results.get("rows"), list):
        raise ValueError(f"{source}: not a selection-experiment result (no 'rows' list); "
                         "it is the results.json that `python -m rdpt_lab selection-experiment` writes")
    for number, row in enumerate(results["rows"], 1):
        missing = [k for k in RESULT_FIELDS if not isinstance(row, dict) or k not in row]
        if missing:
            raise ValueError(f"{source}: row {number} lacks {', '.join(missing)}")
        bad = [k for k, ok in _result_checks(row).items() if not ok]
        if bad:
            raise ValueError(f"{source}: row {number}: " + "; ".join(f"{k} = {row[k]!r} is not {_RESULT_TYPES[k]}"
                                                                      for k in bad))
    return results


_RESULT_TYPES = {"strategy": "a string", "seed": "an integer", "n_train": "an integer ≥ 0",
                 "mean_teacher_actions": "a number", "mean_tokens": "a number", "n_test": "an integer ≥ 0",
                 "correct": "an integer from 0 to n_test", "accuracy": "a number from 0 to 1 or null",
                 "wilson95": "a [low, high] pair of numbers or null", "truncated": "an integer ≥ 0"}


def _result_checks(row: Mapping[str, Any]) -> dict[str, bool]:
    def integer(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= 0

    def number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    return {"strategy": isinstance(row["strategy"], str), "seed": integer(row["seed"]),
            "n_train": integer(row["n_train"]), "mean_teacher_actions": number(row["mean_teacher_actions"]),
            "mean_tokens": number(row["mean_tokens"]), "n_test": integer(row["n_test"]),
            "correct": integer(row["correct"]) and integer(row["n_test"]) and row["correct"] <= row["n_test"],
            "accuracy": row["accuracy"] is None or (number(row["accuracy"]) and 0 <= row["accuracy"] <= 1),
            "wilson95": row["wilson95"] is None or (isinstance(row["wilson95"], list) and len(row["wilson95"]) == 2
                                                   and all(number(x) for x in row["wilson95"])),
            "truncated": integer(row["truncated"])}


def results_frame(results: Mapping[str, Any]) -> pd.DataFrame:
    """One line per (strategy, seed): the training set, and test accuracy with its 95% Wilson
    interval (``ci_low``, ``ci_high``; NaN without test answers)."""
    rows = [{**{k: r[k] for k in RESULT_FIELDS if k != "wilson95"},
             "ci_low": r["wilson95"][0] if r["wilson95"] else math.nan,
             "ci_high": r["wilson95"][1] if r["wilson95"] else math.nan} for r in results["rows"]]
    columns = [k for k in RESULT_FIELDS if k != "wilson95"] + ["ci_low", "ci_high"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({"accuracy": "float64", "ci_low": "float64", "ci_high": "float64"})


def _percent(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def results_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The results as a markdown table, one line per (strategy, seed)."""
    lines = ["| strategy | seed | n_train | mean Teacher actions | mean tokens | accuracy | 95% CI (Wilson) | truncated |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ci = "–" if r["wilson95"] is None else f"[{_percent(r['wilson95'][0])}, {_percent(r['wilson95'][1])}]"
        lines.append(f"| {r['strategy']} | {r['seed']} | {r['n_train']} | {r['mean_teacher_actions']:.2f} | "
                     f"{r['mean_tokens']:.1f} | {_percent(r['accuracy'])} ({r['correct']}/{r['n_test']}) | {ci} | "
                     f"{r['truncated']} |")
    return "\n".join(lines) + "\n"


def conclusion(rows: Sequence[Mapping[str, Any]]) -> str:
    """One sentence: do the 95% Wilson intervals of the best and the worst strategy overlap? A
    strategy's answers are pooled over its seeds. Disjoint intervals mean a difference beyond the
    test set's sampling noise; overlapping ones mean this test set cannot rank them (a paired test
    on the same questions could be more sensitive; training-seed noise is not covered either way)."""
    pooled: dict[str, list[int]] = {}
    for r in rows:
        k_n_seeds = pooled.setdefault(r["strategy"], [0, 0, 0])
        k_n_seeds[0] += int(r["correct"])
        k_n_seeds[1] += int(r["n_test"])
        k_n_seeds[2] += 1
    pooled = {s: v for s, v in pooled.items() if v[1] > 0}
    if len(pooled) < 2:
        return "Only one strategy was evaluated: there is nothing to compare."
    acc = {s: k / n for s, (k, n, _) in pooled.items()}
    best, worst = max(acc, key=acc.__getitem__), min(acc, key=acc.__getitem__)
    seeds = max(v[2] for v in pooled.values())
    note = f", answers pooled over {seeds} seeds" if seeds > 1 else ""
    n_test = pooled[best][1]
    if acc[best] == acc[worst]:
        every = "Both" if len(pooled) == 2 else f"All {len(pooled)}"
        return (f"{every} strategies have the same accuracy ({_percent(acc[best])} of {n_test} test "
                f"answers{note}): these data cannot rank them.")
    lo, hi = stats.wilson([pooled[best][0], pooled[worst][0]], [pooled[best][1], pooled[worst][1]])

    def shown(s: str, i: int) -> str:
        return f"{s} ({_percent(acc[s])}, 95% CI [{_percent(float(lo[i]))}, {_percent(float(hi[i]))}])"

    head = f"The 95% Wilson intervals of the best strategy, {shown(best, 0)}, and the worst, {shown(worst, 1)}"
    if lo[0] > hi[1]:
        return (f"{head}, do not overlap{note and f' ({note[2:]})'}: on this test set {best} beat {worst} by more than the test "
                "set's sampling noise (training-seed variation is not covered).")
    return f"{head}, overlap{note and f' ({note[2:]})'}: these {n_test} test answers cannot tell the strategies apart."


# ---- the stages --------------------------------------------------------------------------------
def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in sorted(set(old) | set(new))
                for d in _differences(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".")]


class Experiment(StageRunner):
    """Runs the stages in order; a stage whose output exists is skipped. ``ran`` and
    ``skipped`` list the stages of this object's calls, by name."""

    def __init__(self, config: ExperimentConfig, log: Callable[[str], None] = print) -> None:
        super().__init__(config.out / "experiment.json", "selection", log)
        self.config, self.out = config, config.out
        self._pool: tuple[ScoredCorpus, pd.DataFrame] | None = None
        self._beta: float | None = None

    # -- machinery
    def save(self) -> None:
        # JSON round trip: the recipe compares equal to one read back (tuples become lists)
        self.manifest["recipe"] = json.loads(json.dumps(self.config.recipe()))
        self.manifest["config"] = self.config.to_dict()
        super().save()

    def check_recipe(self) -> None:
        """Refuse an out dir whose finished stages were made with another recipe."""
        old = self.manifest.get("recipe")
        new = json.loads(json.dumps(self.config.recipe()))
        if old is not None and old != new:
            raise ConfigError(f"{self.out} holds the outputs of another recipe (differs in: "
                              f"{', '.join(_differences(old, new))}); use another 'out' or delete it")

    def _spec(self, adapter: Path | None = None, name: str | None = None) -> ModelSpec:
        extra: dict[str, Any] = {"template": self.config.student_template}
        if adapter is not None:
            extra.update(adapter=str(adapter.resolve()), name=name)
        try:
            spec = resolve_spec(self.config.student, **extra)
        except (ValueError, FileNotFoundError) as err:
            raise ConfigError(f"key 'student': {err}") from err
        if adapter is None and spec.adapter:
            raise ConfigError(f"key 'student': {self.config.student!r} already carries an adapter "
                              f"({spec.adapter}); name a plain base model, which the experiment's adapters go on")
        return spec

    def _student(self) -> HFBackend:
        return hf_backend(self._spec(), "LoRA training")

    def pool(self) -> tuple[ScoredCorpus, pd.DataFrame]:
        """The candidate answers and their T/S action table (loaded once)."""
        if self._pool is None:
            path = self.config.teacher_corpus
            if not (path / "corpus.json").exists():
                raise ConfigError(f"key 'teacher_corpus': no scored corpus at {path} (no corpus.json; write one "
                                  "with rdpt_core.store.save_corpus)")
            corpus = load_corpus(path)
            roles = sorted(corpus.tokens)
            if not {"teacher", "student"} <= set(roles):
                raise ConfigError(f"key 'teacher_corpus': {path} has scores of {', '.join(roles) or 'no model'}; "
                                  "selection needs the teacher's and the student's")
            pool = candidates(corpus, self.config.only_correct)
            if not pool.records:
                raise ConfigError(f"key 'teacher_corpus': {path} has no candidate answer"
                                  + (" marked correct (only_correct = true)" if self.config.only_correct else ""))
            self._pool = pool, pool.actions(self.config.segmenter)
        return self._pool

    # -- 1. β
    def choose_beta(self) -> float:
        """Stage 1: β, fixed or "auto", into ``beta.json``; returns it."""
        path = self.out / "beta.json"

        def work() -> dict:
            corpus, actions = self.pool()
            info: dict[str, Any] = {"candidates": len(corpus.records),
                                    "questions": len({r.question_id for r in corpus.records})}
            if self.config.beta is not None:
                info.update(beta=self.config.beta, mode="fixed")
            else:
                beta, overlaps = choose_beta(actions, self.config.beta_grid, self.config.beta_bins)
                if beta is None:
                    raise ConfigError("key 'beta': \"auto\" finds a single class at every β of the grid, so no "
                                      "overlap to minimise; set a number")
                top = overlaps[overlaps["top_pair"].astype(bool)]
                info.update(beta=beta, mode="auto", grid=list(self.config.beta_grid), bins=self.config.beta_bins,
                            top_pair_overlaps=top.drop(columns="top_pair").to_dict("records"))
            write_json(path, info)
            return {k: info[k] for k in ("beta", "mode", "candidates", "questions")}

        self.stage("beta", path, work)
        self._beta = float(json.loads(path.read_text())["beta"])
        return self._beta

    def beta(self) -> float:
        return self._beta if self._beta is not None else self.choose_beta()

    # -- 2. selection
    def select_all(self) -> None:
        """Stage 2: per strategy, one candidate per question into ``selected/<strategy>.jsonl``."""
        beta = self.beta()
        features: list[pd.DataFrame] = []  # computed once, only when a selection is missing

        for strategy in self.config.strategies:
            path = self.out / "selected" / f"{strategy}.jsonl"

            def work(strategy: str = strategy, path: Path = path) -> dict:
                corpus, actions = self.pool()
                if not features:
                    features.append(response_features(actions, beta))
                picked = select(features[0], strategy, self.config.selection_seed)
                rows = export_rows(picked, corpus.records, {}, strategy, beta)
                write_jsonl(rows, path)
                return {"n": len(rows), "mean_teacher_actions": float(picked["n_teacher"].mean()),
                        "mean_tokens": float(picked["n_tokens"].mean())}

            self.stage(f"select:{strategy}", path, work)
        sizes = {s: len(self.selected(s)) for s in self.config.strategies}
        if len(set(sizes.values())) > 1:  # one answer per question each: equal unless the files were edited
            raise RuntimeError(f"the selected sets differ in size: {sizes}")

    def selected(self, strategy: str) -> list[dict[str, Any]]:
        return _read_jsonl(self.out / "selected" / f"{strategy}.jsonl")

    # -- 3. training
    def adapter_dir(self, strategy: str, seed: int) -> Path:
        return self.out / "adapters" / f"{strategy}-s{seed}"

    def train(self, strategy: str, seed: int) -> None:
        """Stage 3: LoRA on the strategy's selection with training seed ``seed``."""
        final = self.adapter_dir(strategy, seed)
        # A fixed name, not atomic_path's per-process one: train_lora keeps its resumable
        # checkpoint beside this directory, under its name. Renamed onto ``final`` when complete.
        partial = final.with_name(final.name + ".partial")

        def work() -> dict:
            pairs = [(row["prompt"], row["response"]) for row in self.selected(strategy)]
            settings = replace(self.config.lora, seed=seed)
            shutil.rmtree(partial, ignore_errors=True)  # a half-saved adapter; the checkpoint is beside it
            summary = train_lora(self._student(), pairs, settings, partial, log=self.log)
            info = {"strategy": strategy, "seed": seed, "n_train": len(pairs), "settings": settings.to_dict(),
                    **summary}
            (partial / "training.json").write_text(json.dumps(info, indent=1) + "\n")
            shutil.rmtree(final, ignore_errors=True)  # only ever an incomplete one: a complete one is skipped
            os.replace(partial, final)
            return {k: summary[k] for k in ("steps", "examples", "loss_first", "loss_last", "seconds")}

        self.stage(f"train:{final.name}", final / "adapter_config.json", work)

    # -- 4. evaluation
    def evaluate(self, strategy: str, seed: int) -> None:
        """Stage 4: greedy answers of the adapter to the test set."""
        name = f"{strategy}-s{seed}"
        path = self.out / "eval" / f"{name}.jsonl"

        def work() -> dict:
            questions = load_test_questions(self.config.test_questions, self.config.checker)
            spec = self._spec(self.adapter_dir(strategy, seed), f"{self.config.student}+{name}")
            records = greedy_answers(spec, questions, self.config.sampling, self.config.checker, name, self.log)
            write_records_jsonl(records, path)
            return accuracy(records)

        self.stage(f"eval:{name}", path, work)

    # -- 5. the table
    def table(self, rebuild: bool = False) -> dict[str, Any]:
        """Stage 5: ``results.json`` and ``results.md`` from the outputs (no model). Skipped when
        ``results.json`` already has every configured row, unless ``rebuild``; a rebuild keeps
        the rows whose evaluation exists."""
        path = self.out / "results.json"
        pairs = [(s, seed) for s in self.config.strategies for seed in self.config.seeds]
        if path.exists() and not rebuild:
            results = json.loads(path.read_text())
            if [(r["strategy"], r["seed"]) for r in results["rows"]] == pairs:
                self.skipped.append("table")
                self.log("[selection] table: done (results.json exists)")
                return results
        started = time.perf_counter()
        rows = []
        for strategy, seed in pairs:
            evals = self.out / "eval" / f"{strategy}-s{seed}.jsonl"
            if evals.exists():
                rows.append(result_row(strategy, seed, self.selected(strategy), load_records(evals).records))
        beta_file = self.out / "beta.json"
        results = {"beta": json.loads(beta_file.read_text())["beta"] if beta_file.exists() else None,
                   "checker": self.config.checker, "test_questions": str(self.config.test_questions),
                   "rows": rows, "conclusion": conclusion(rows)}
        write_json(path, results)
        with atomic_path(self.out / "results.md") as tmp:
            tmp.write_text(f"# Selection experiment (β = {results['beta']})\n\n{results_markdown(rows)}\n"
                           f"{results['conclusion']}\n", encoding="utf-8")
        self.ran.append("table")
        if not rebuild:  # --only-table reads the outputs and leaves the run's record alone
            self.manifest["stage_seconds"]["table"] = round(time.perf_counter() - started, 1)
            self.save()
        return results

    def run(self, only_table: bool = False) -> dict[str, Any]:
        """Every stage in order (or only the table, from what exists); returns the results."""
        if only_table:
            return self.table(rebuild=True)
        self.check_recipe()
        pairs = [(s, seed) for s in self.config.strategies for seed in self.config.seeds]
        if any(not (self.out / "eval" / f"{s}-s{seed}.jsonl").exists() for s, seed in pairs):
            # read now, so a bad test set stops the run before hours of training, not after
            load_test_questions(self.config.test_questions, self.config.checker)
        self.beta()
        self.select_all()
        for strategy, seed in pairs:
            self.train(strategy, seed)
            self.evaluate(strategy, seed)
        return self.table()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rdpt_lab selection-experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="the experiment's TOML file")
    parser.add_argument("--out", type=Path, help="output directory (replaces the config's 'out')")
    parser.add_argument("--only-table", action="store_true",
                        help="only rebuild results.json / results.md from the finished evaluations (no model)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.out)
        results = Experiment(config, log=lambda m: print(m, flush=True)).run(only_table=args.only_table)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(results_markdown(results["rows"]))
    print(results["conclusion"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
