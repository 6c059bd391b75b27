"""The "steps" lineage (docs/lab.md): a teacher trained here on multi-step problems in a known
style, the untouched student, and the student distilled on the teacher's verified samples.

Each stage writes its outputs under ``demo/steps/`` and is skipped when they exist, so an
interrupted run resumes (training itself checkpoints every few steps). Stage times go into
``manifest.json``.

1. questions  – seeded problems (rdpt_lab/multistep.py): the teacher's SFT set, the distillation
                questions, a held-out set (training phrasings) and the test set (test phrasings);
2. teacher    – SmolLM2-135M-Instruct + LoRA on the solver's teacher-style solutions;
   teacher_test – the teacher answers every test question greedily (its accuracy, known before
                anything is sampled from it);
3. samples    – the teacher samples k answers per distillation and held-out question (T > 0),
                each checked by the strict rule;
4. distill    – Gemma-3-270M + LoRA on the verified samples of the distillation questions (at
                most ``distill_per_question`` per question, the first verified ones);
5. trajectories – the distilled model and the student answer every test question (sampled and
                greedy); with the teacher's greedy answers: accuracies, truncations;
6. score      – the distilled model's test answers scored by T, S and D: the demo corpus;
7. teacher_score – the teacher's verified samples scored by T and S (β choice, data selection);
8. ground_truth – provenance classes against the known teacher style (docs/lab.md): the
                confusion table at α = β = 0.1, agreement by β, and how often each model's own
                sentences carry the teacher's markers (the student's should be ~0).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from rdpt_core.backends.base import Generated, SamplingSettings
from rdpt_core.cache import TokenCache
from rdpt_core.models import ModelSpec, resolve_spec
from rdpt_core import origin
from rdpt_core.provenance import DEFAULT_ALPHA, DEFAULT_BETA, classify_table
from rdpt_core.records import Record, load_records, write_jsonl, write_records_jsonl
from rdpt_core.segment import segment
from rdpt_core.scoring import score_corpus
from rdpt_core.stats import wilson
from rdpt_core.store import save_corpus

from . import multistep as M
from .models import STEPS_DIR
from .stages import StageRunner, write_json
from .train import LoraSettings, hf_backend, train_lora

BASE_TEACHER, STUDENT = "smollm2-135m-instruct", "gemma3-270m"
TEACHER, DISTILLED = "smollm2-135m-steps-teacher", "gemma3-270m-steps-distilled"
TEACHER_ADAPTER, DISTILLED_ADAPTER = "teacher_adapter", "distilled_adapter"
TEACHER_SAMPLES, TRAJECTORIES = "teacher_samples.jsonl", "test_trajectories.jsonl"
TEACHER_TEST = "teacher_test.jsonl"
TEST_QUESTIONS = "test_questions.jsonl"
DEMO_CORPUS, DEMO_SCORES, TEACHER_CORPUS = "corpus", "demo_scores.parquet", "teacher_corpus"
# Stop once the answer is stated ("The answer is 12."): the strict rule wants it last.
STOP_REGEX = r"[Tt]he answer is\s+-?\d(?:[\d,]*\d)?(?=[^\d,])\.?"


def _teacher_lora(seed: int) -> LoraSettings:
    return LoraSettings(rank=24, alpha=48, dropout=0.0, learning_rate=1e-3, epochs=1, batch_size=8,
                        warmup_steps=15, max_length=384, seed=seed, save_dtype="bfloat16", checkpoint_every=10)


def _student_lora(seed: int) -> LoraSettings:
    return LoraSettings(rank=16, alpha=32, dropout=0.05, learning_rate=5e-4, epochs=2, batch_size=8,
                        warmup_steps=10, max_length=384, seed=seed, save_dtype="bfloat16", checkpoint_every=10)


@dataclass(frozen=True)
class StepsConfig:
    seed: int = 2026
    teacher_sft_questions: int = 1200  # solver-written solutions the teacher is trained on (150 steps of 8)
    train_questions: int = 240  # the teacher samples these; its verified answers train D
    heldout_questions: int = 16  # training phrasings, never trained on by D
    test_questions: int = 100  # test phrasings
    teacher_samples: int = 4  # per distillation / held-out question
    distill_per_question: int = 2  # verified teacher answers per question D is trained on
    test_samples: int = 1  # sampled answers of D and S per test question (plus one greedy)
    temperature: float = 0.7
    top_p: float = 1.0  # top-p sorts Gemma's 262k-entry vocabulary at every step: too slow here
    max_new_tokens: int = 256
    batch_size: int = 32
    teacher_lora: LoraSettings = field(default_factory=lambda: _teacher_lora(2026))
    student_lora: LoraSettings = field(default_factory=lambda: _student_lora(2026))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "teacher_lora": self.teacher_lora.to_dict(),
                "student_lora": self.student_lora.to_dict()}

    def sampling(self, n: int, seed_offset: int, greedy: bool = False) -> SamplingSettings:
        return SamplingSettings(n=n, temperature=0.0 if greedy else self.temperature, top_p=self.top_p,
                                max_new_tokens=self.max_new_tokens, seed=self.seed + seed_offset,
                                batch_size=self.batch_size, stop_regex=STOP_REGEX)


def teacher_spec(out: Path = STEPS_DIR) -> ModelSpec:
    return resolve_spec(BASE_TEACHER, adapter=str(out / TEACHER_ADAPTER), name=TEACHER)


def distilled_spec(out: Path = STEPS_DIR) -> ModelSpec:
    return resolve_spec(STUDENT, adapter=str(out / DISTILLED_ADAPTER), name=DISTILLED)


def lineage_specs(out: Path = STEPS_DIR) -> dict[str, ModelSpec]:
    return {"teacher": teacher_spec(out), "student": resolve_spec(STUDENT), "distilled": distilled_spec(out)}


def generate(spec: ModelSpec, prompts: list[str], settings: SamplingSettings, what: str,
             log: Callable[[str], None] = print, resume: Path | None = None) -> list[list[Generated]]:
    """``settings.n`` answers per prompt from ``spec``, each prompt rendered as the scoring
    engine renders it; progress is logged per batch as ``what``. The model is unloaded after.

    The prompts go in chunks of two batches, chunk ``c`` seeded with ``settings.seed + 1000·c``
    (the same answers however often the run is interrupted). With ``resume``, each finished
    chunk is saved there and a rerun skips it; the folder is removed once every chunk is done."""
    per_chunk = max(1, settings.batch_size // settings.n) * 2
    chunks = [prompts[lo: lo + per_chunk] for lo in range(0, len(prompts), per_chunk)]
    backend = hf_backend(spec, what)
    started = time.perf_counter()
    out: list[list[Generated]] = []
    try:
        for c, chunk in enumerate(chunks):
            saved = resume / f"chunk-{c:05d}.json" if resume is not None else None
            if saved is not None and saved.exists():
                out += [[Generated(**g) for g in row] for row in json.loads(saved.read_text())]
                continue
            answers = backend.generate_detailed([backend.render_context(p) for p in chunk],
                                                replace(settings, seed=settings.seed + 1000 * c))
            if saved is not None:
                write_json(saved, [[asdict(g) for g in row] for row in answers])
            out += answers
            log(f"  {what}: {len(out)}/{len(prompts)} prompts ({time.perf_counter() - started:.0f} s)")
    finally:
        backend.unload()
    if resume is not None:
        shutil.rmtree(resume, ignore_errors=True)
    return out


def sample(spec: ModelSpec, problems: list[M.Problem], settings: SamplingSettings, source: str,
           label: str, log: Callable[[str], None] = print, resume: Path | None = None) -> list[Record]:
    """``settings.n`` answers per problem from ``spec``, each checked by the strict rule; the
    record id says source, question and sample (``label``: "s0", "s1"… or "greedy"). ``resume``:
    see :func:`generate`."""
    answers = generate(spec, [p.prompt for p in problems], settings, f"{source} {label}", log, resume)
    records = []
    for problem, generated in zip(problems, answers):
        for k, answer in enumerate(generated):
            stated = M.stated_answer(answer.text)
            tag = label if label == "greedy" else f"{label}{k}"
            records.append(Record(
                f"{source}:{problem.question_id}:{tag}", problem.question_id, problem.prompt, answer.text,
                stated == problem.answer and not answer.truncated, source,
                {"answer": problem.answer, "stated": stated, "sample": tag, "split": problem.split,
                 "steps": problem.steps, "kinds": list(problem.kinds), "truncated": answer.truncated}))
    return records


def sample_teacher(spec: ModelSpec, source: str, sets: dict[str, list[M.Problem]], config: StepsConfig,
                   out_file: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """A teacher's ``config.teacher_samples`` answers to every distillation and held-out question
    (resumable, see :func:`generate`), written to ``out_file``; its accuracy on each set."""
    records = sample(spec, sets["train"] + sets["heldout"], config.sampling(config.teacher_samples, 10), source, "s",
                     log, out_file.parent / f"{out_file.name}.partial")
    write_records_jsonl(records, out_file)
    return {name: accuracy([r for r in records if r.question_id.startswith(prefix)])
            for name, prefix in (("distillation", "tr"), ("heldout", "ho"))}


def distillation_pairs(records: list[Record], per_question: int) -> list[tuple[str, str]]:
    """(prompt, response) of the first ``per_question`` verified teacher answers to each
    distillation question (ids "tr…"), in file order."""
    kept: dict[str, int] = {}
    pairs = []
    for r in records:
        if r.correct and r.question_id.startswith("tr") and kept.get(r.question_id, 0) < per_question:
            kept[r.question_id] = kept.get(r.question_id, 0) + 1
            pairs.append((r.prompt, r.response))
    return pairs


def accuracy(records: list[Record]) -> dict[str, Any]:
    """Share of correct records with its 95% Wilson interval, and the truncated count."""
    n, k = len(records), sum(bool(r.correct) for r in records)
    lo, hi = wilson([k], [n])
    # six decimals: shown as percentages with one decimal, four would round twice (0.55016% -> 0.0055 -> "0.5%")
    return {"n": n, "correct": k, "accuracy": round(k / n, 6) if n else None,
            "wilson95": [round(float(lo[0]), 6), round(float(hi[0]), 6)] if n else None,
            "truncated": sum(bool(r.meta.get("truncated")) for r in records)}


def make_questions(config: StepsConfig) -> dict[str, list[M.Problem]]:
    """Disjoint question sets: three of training phrasings (teacher SFT, distillation, held out),
    one of test phrasings."""
    sft = M.make_problems("train", config.teacher_sft_questions, config.seed, "sft")
    pool = M.make_problems("train", config.train_questions + config.heldout_questions, config.seed + 1, "tr",
                           exclude={p.question for p in sft})
    heldout = [replace(p, question_id=f"ho{i:04d}") for i, p in enumerate(pool[config.train_questions:])]
    test = M.make_problems("test", config.test_questions, config.seed + 2, "te")
    return {"sft": sft, "train": pool[: config.train_questions], "heldout": heldout, "test": test}


def _problem(row: dict) -> M.Problem:
    return M.Problem(**{**row, "kinds": tuple(row["kinds"])})  # JSON gives the kinds as a list


def load_questions(out: Path = STEPS_DIR) -> dict[str, list[M.Problem]]:
    data = json.loads((out / "questions.json").read_text())
    return {name: [_problem(row) for row in rows] for name, rows in data.items()}


class Lineage(StageRunner):
    """Runs the stages in order; a stage whose outputs exist is skipped (its time kept)."""

    def __init__(self, config: StepsConfig, out: Path = STEPS_DIR, log: Callable[[str], None] = print) -> None:
        out.mkdir(parents=True, exist_ok=True)
        super().__init__(out / "manifest.json", "steps", log)
        self.config, self.out = config, out
        self.manifest["config"] = config.to_dict()
        self.manifest["models"] = {"teacher": f"{TEACHER} = {BASE_TEACHER} + {TEACHER_ADAPTER}/",
                                   "student": STUDENT, "distilled": f"{DISTILLED} = {STUDENT} + {DISTILLED_ADAPTER}/"}
        self.manifest["rules"] = {"instruction": M.INSTRUCTION, "stop_regex": STOP_REGEX,
                                  "answer": (M.stated_answer.__doc__ or "").strip(), "teacher_style": M.STYLE_RULE}

    def _partial(self, name: str) -> Path:
        """Where a generation stage keeps its finished chunks until it is done (git-ignored)."""
        return self.out / f"{name}.partial"

    def questions(self) -> None:
        def work() -> dict:
            sets = make_questions(self.config)
            write_json(self.out / "questions.json", {k: [asdict(p) for p in v] for k, v in sets.items()})
            # the test set in the selection experiment's generic format (question_id, prompt, answer)
            write_jsonl(({"question_id": p.question_id, "prompt": p.prompt, "answer": p.answer}
                         for p in sets["test"]), self.out / TEST_QUESTIONS)
            return {k: len(v) for k, v in sets.items()}

        self.stage("questions", self.out / TEST_QUESTIONS, work)

    def teacher(self) -> None:
        def work() -> dict:
            pairs = [(p.prompt, p.solution) for p in load_questions(self.out)["sft"]]
            return train_lora(hf_backend(resolve_spec(BASE_TEACHER), "LoRA training"), pairs, self.config.teacher_lora, self.out / TEACHER_ADAPTER, log=self.log)

        self.stage("teacher", self.out / TEACHER_ADAPTER / "adapter_config.json", work)

    def teacher_test(self) -> None:
        def work() -> dict:
            c = self.config
            records = sample(teacher_spec(self.out), load_questions(self.out)["test"],
                             c.sampling(1, 300, greedy=True), "teacher", "greedy", self.log,
                             self._partial(TEACHER_TEST))
            write_records_jsonl(records, self.out / TEACHER_TEST)
            return accuracy(records)

        self.stage("teacher_test", self.out / TEACHER_TEST, work)

    def samples(self) -> None:
        self.stage("samples", self.out / TEACHER_SAMPLES,
                   lambda: sample_teacher(teacher_spec(self.out), "teacher", load_questions(self.out), self.config,
                                          self.out / TEACHER_SAMPLES, self.log))

    def distill(self) -> None:
        def work() -> dict:
            records = load_records(self.out / TEACHER_SAMPLES).records
            pairs = distillation_pairs(records, self.config.distill_per_question)
            if not pairs:
                raise RuntimeError("no verified teacher answer to distil from")
            return train_lora(hf_backend(resolve_spec(STUDENT), "LoRA training"), pairs, self.config.student_lora, self.out / DISTILLED_ADAPTER, log=self.log)

        self.stage("distill", self.out / DISTILLED_ADAPTER / "adapter_config.json", work)

    def trajectories(self) -> None:
        def work() -> dict:
            test, c, specs = load_questions(self.out)["test"], self.config, lineage_specs(self.out)
            records: list[Record] = []
            for offset, role in enumerate(("distilled", "student")):
                records += sample(specs[role], test, c.sampling(c.test_samples, 100 + offset), role, "s", self.log,
                                  self._partial(f"{role}-sampled"))
                records += sample(specs[role], test, c.sampling(1, 200 + offset, greedy=True), role, "greedy",
                                  self.log, self._partial(f"{role}-greedy"))
            records += load_records(self.out / TEACHER_TEST).records
            write_records_jsonl(records, self.out / TRAJECTORIES)
            return {role: {kind: accuracy([r for r in records if r.source == role
                                           and (r.meta["sample"] == "greedy") == (kind == "greedy")])
                           for kind in ("greedy", "sampled")} for role in ("teacher", "student", "distilled")}

        self.stage("trajectories", self.out / TRAJECTORIES, work)

    def score(self) -> None:
        def work() -> dict:
            records = [r for r in load_records(self.out / TRAJECTORIES).records if r.source == "distilled"]
            corpus, _ = score_corpus(records, lineage_specs(self.out), cache=TokenCache(self.out / ".cache"))
            save_corpus(corpus, self.out / DEMO_CORPUS)
            table = corpus.actions("paper")
            table.to_parquet(self.out / DEMO_SCORES, index=False)
            per_response = table.groupby("record_id").size()
            return {"responses": len(records), "actions": len(table),
                    "median_actions_per_response": float(per_response.median())}

        self.stage("score", self.out / DEMO_SCORES, work)

    def teacher_score(self) -> None:
        def work() -> dict:
            records = [r for r in load_records(self.out / TEACHER_SAMPLES).records if r.correct]
            specs = lineage_specs(self.out)
            corpus, _ = score_corpus(records, {role: specs[role] for role in ("teacher", "student")},
                                     cache=TokenCache(self.out / ".cache"))
            save_corpus(corpus, self.out / TEACHER_CORPUS)
            return {"responses": len(records)}

        self.stage("teacher_score", self.out / TEACHER_CORPUS / "corpus.json", work)


    def ground_truth(self) -> None:
        def work() -> dict:
            trajectories = load_records(self.out / TRAJECTORIES).records
            return known_origin_summary(pd.read_parquet(self.out / DEMO_SCORES), trajectories)

        self.stage("ground_truth", self.out / GROUND_TRUTH, lambda: write_json(self.out / GROUND_TRUTH, work()))


GROUND_TRUTH = "ground_truth.json"
GROUND_TRUTH_BETAS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)


def style_share(records: list[Record]) -> dict[str, Any]:
    """How many of the records' sentences (paper segmenter, non-blank) carry a teacher marker."""
    sentences = [a.text for r in records for a in segment(r.response) if a.text.strip()]
    styled = sum(M.teacher_style(t) for t in sentences)
    return {"sentences": len(sentences), "teacher_style": styled,
            "share": round(styled / len(sentences), 4) if sentences else None}


def known_origin_summary(actions: pd.DataFrame, trajectories: list[Record], alpha: float = DEFAULT_ALPHA,
                         beta: float = DEFAULT_BETA) -> dict[str, Any]:
    """The demo corpus's classes against the known teacher style (docs/method.md §17): the
    confusion table at (α, β), agreement over :data:`GROUND_TRUTH_BETAS`, and each model's share
    of teacher-style sentences in its own test answers."""
    table = classify_table(actions, alpha, beta)
    styled = origin.known_origin(table["text"], M.TEACHER_STYLE_RE.pattern)
    confusion = origin.origin_confusion(table, "cls", styled)
    agreement = origin.origin_agreement(actions, M.TEACHER_STYLE_RE.pattern, alpha, GROUND_TRUTH_BETAS)
    return {
        "rule": M.STYLE_RULE, "pattern": M.TEACHER_STYLE_RE.pattern, "alpha": alpha, "beta": beta,
        "confusion": confusion.reset_index(names="cls").round(4).to_dict(orient="records"),
        "agreement": agreement.round(4).to_dict(orient="records"),
        "style_share": {role: style_share([r for r in trajectories if r.source == role])
                        for role in ("teacher", "student", "distilled")},
    }


STAGES = ("questions", "teacher", "teacher_test", "samples", "distill", "trajectories", "score", "teacher_score", "ground_truth")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rdpt_lab.lineage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stages", nargs="*", metavar="STAGE", help=f"some of {', '.join(STAGES)} (default: all)")
    parser.add_argument("--out", type=Path, default=STEPS_DIR)
    parser.add_argument("--redo", action="store_true",
                        help="run the named stages even when their outputs exist (e.g. `score --redo` re-scores "
                             "the committed test answers after a change to the scoring engine)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    if args.redo and not args.stages:
        parser.error("--redo needs the stages to redo, e.g. `score --redo`")
    lineage = Lineage(StepsConfig(), args.out, log=lambda m: print(m, flush=True))
    lineage.redo = set(args.stages) if args.redo else set()
    for name in [s for s in STAGES if s in args.stages] or STAGES:
        getattr(lineage, name)()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
