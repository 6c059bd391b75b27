"""``make lab``: build a real teacher → student → distilled lineage, end to end, on this CPU.

Stages (each timed in ``manifest.json``):

1. questions   – seeded word problems; train and test from disjoint templates;
2. teacher     – SmolLM2-135M-Instruct samples several responses per training question;
                 all are saved with their correctness, the verified ones of the *training*
                 questions are the SFT set (the held-out questions' responses are never trained on);
3. sft         – Gemma-3-270M (base) + LoRA, loss on response tokens only → the distilled model;
4. trajectories – the distilled model (and the student, for comparison) answer the test questions;
5. score       – the distilled model's test trajectories are scored by T, S and D through the
                 engine → the demo corpus (action table);
   teacher_score – every teacher sample is scored by T and S → the data-selection demo;
6. accuracy    – greedy accuracy of T, S and D on the test questions.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from rdpt_core.backends import create_backend
from rdpt_core.backends.base import SamplingSettings
from rdpt_core.cache import TokenCache
from rdpt_core.models import ModelSpec, resolve_spec
from rdpt_core.records import Record, write_records_jsonl
from rdpt_core.scoring import ScoredCorpus, score_corpus
from rdpt_core.store import save_corpus
from . import problems as P
from .models import LAB_DIR
from .train import LoraSettings, hf_backend, train_lora

TEACHER, STUDENT, DISTILLED = "smollm2-135m-instruct", "gemma3-270m", "gemma3-270m-distilled"
# Stop a sample once it has stated its answer ("The answer is 12."): what follows is noise.
DEMO_SCORES = "demo_scores.parquet"
DEMO_CORPUS = "corpus"
TEACHER_DATA = "teacher_data.jsonl"
TEACHER_CORPUS = "teacher_corpus"  # the teacher samples scored by T and S: the selection demo
STOP_REGEX = r"answer is[^0-9\-\n]{0,20}-?\d(?:[\d,]*\d)?(?=[^\d,])\.?"


@dataclass(frozen=True)
class LabConfig:
    seed: int = 1234
    train_questions: int = 150
    heldout_questions: int = 12  # training-template questions whose responses are not trained on
    test_questions: int = 60
    teacher_samples: int = 4
    distilled_samples: int = 4
    student_samples: int = 2
    temperature: float = 0.7
    top_p: float = 1.0  # top-p sorts the whole vocabulary every step: too slow for Gemma here
    max_new_tokens: int = 144
    batch_size: int = 32
    sft_verified_only: bool = True  # the paper's setting; --quick trains on all (few are right)
    lora: LoraSettings = field(default_factory=lambda: LoraSettings(epochs=3))

    def sampling(self, n: int, offset: int, temperature: float | None = None) -> SamplingSettings:
        return SamplingSettings(
            n=n, temperature=self.temperature if temperature is None else temperature,
            top_p=self.top_p, max_new_tokens=self.max_new_tokens, seed=self.seed + offset,
            batch_size=self.batch_size, stop_regex=STOP_REGEX,
        )


def distilled_spec(lab_dir: Path = LAB_DIR) -> ModelSpec:
    return resolve_spec(STUDENT, adapter=str(lab_dir / "adapter"), name=DISTILLED)


def _versions() -> dict[str, str]:
    names = ["torch", "transformers", "peft", "tokenizers", "numpy", "pandas"]
    return {n: metadata.version(n) for n in names} | {"python": platform.python_version()}


class Stages:
    """Runs the stages in order, timing each into the manifest."""

    def __init__(self, out: Path, config: LabConfig) -> None:
        self.out = out
        self.config = config
        self.manifest: dict = {
            "seed": config.seed, "config": {**asdict(config), "lora": config.lora.to_dict()},
            "teacher": TEACHER, "student": STUDENT, "distilled": "gemma3-270m + demo/lab/adapter",
            "stop_regex": STOP_REGEX, "answer_rule": (P.extract_answer.__doc__ or "").strip(),
            "instruction": P.INSTRUCTION, "versions": _versions(), "stage_seconds": {},
        }

    def timed(self, name: str, fn, *args):
        started = time.perf_counter()
        print(f"[lab] {name} ...", flush=True)
        result = fn(*args)
        self.manifest["stage_seconds"][name] = round(time.perf_counter() - started, 1)
        print(f"[lab] {name} done in {self.manifest['stage_seconds'][name]} s", flush=True)
        return result

    def save_manifest(self) -> None:
        (self.out / "manifest.json").write_text(json.dumps(self.manifest, indent=2) + "\n")


def make_questions(config: LabConfig) -> tuple[list[P.Problem], list[P.Problem], list[P.Problem]]:
    pool = P.make_problems(P.TRAIN_TEMPLATES, config.train_questions + config.heldout_questions, config.seed, "tr")
    rng = random.Random(config.seed)
    rng.shuffle(pool)
    train, heldout = pool[: config.train_questions], pool[config.train_questions :]
    test = P.make_problems(P.TEST_TEMPLATES, config.test_questions, config.seed + 1, "te")
    return train, heldout, test


def sample_records(spec: ModelSpec, problems: list[P.Problem], settings: SamplingSettings,
                   source: str, split: str) -> list[Record]:
    backend = create_backend(spec)
    contexts = [backend.render_context(P.prompt_for(p)) for p in problems]
    done = [0]

    def progress(n: int, total: int) -> None:
        if n - done[0] >= 32 or n == total:
            print(f"  {source}: {n}/{total} samples", flush=True)
            done[0] = n

    responses = backend.generate(contexts, settings, on_batch=progress)
    backend.unload()
    return [
        Record(f"{source}:{p.question_id}:{k}", p.question_id, P.prompt_for(p), text,
               P.is_correct(text, p.answer), source,
               {"answer": p.answer, "extracted": P.extract_answer(text), "template": p.template,
                "steps": p.steps, "split": split, "sample": k})
        for p, texts in zip(problems, responses) for k, text in enumerate(texts)
    ]


def accuracy(spec: ModelSpec, problems: list[P.Problem], config: LabConfig) -> float:
    """Greedy accuracy (one answer per question)."""
    records = sample_records(spec, problems, config.sampling(1, 99, temperature=0.0), "greedy", "test")
    return round(sum(bool(r.correct) for r in records) / len(records), 4)


def lineage_specs(lab_dir: Path = LAB_DIR) -> dict[str, ModelSpec]:
    return {"teacher": resolve_spec(TEACHER), "student": resolve_spec(STUDENT), "distilled": distilled_spec(lab_dir)}


def score_demo(records: list[Record], lab_dir: Path = LAB_DIR, cache: TokenCache | None = None) -> ScoredCorpus:
    """The demo corpus: the distilled model's test trajectories scored by T, S and D."""
    corpus, _ = score_corpus(records, lineage_specs(lab_dir), cache=cache)
    return corpus


def write_demo_scores(records: list[Record], out: Path) -> int:
    """Save the demo corpus (token level, ``corpus/``) and its paper-rule action table."""
    corpus = score_demo(records, out, TokenCache(out / ".cache"))
    shutil.rmtree(out / ".cache", ignore_errors=True)
    save_corpus(corpus, out / DEMO_CORPUS)
    table = corpus.actions("paper")
    table.to_parquet(out / DEMO_SCORES, index=False)
    return len(table)


def write_teacher_scores(out: Path = LAB_DIR) -> int:
    """Score every teacher sample by T and S only (the input of docs/method.md §11) into ``teacher_corpus/``."""
    from rdpt_core.records import load_records

    records = load_records(out / TEACHER_DATA).records
    specs = lineage_specs(out)
    corpus, _ = score_corpus(records, {role: specs[role] for role in ("teacher", "student")},
                             cache=TokenCache(out / ".cache"))
    shutil.rmtree(out / ".cache", ignore_errors=True)
    save_corpus(corpus, out / TEACHER_CORPUS)
    return len(records)


def distilled_trajectories(lab_dir: Path = LAB_DIR) -> list[Record]:
    from rdpt_core.records import load_records

    records = load_records(lab_dir / "test_trajectories.jsonl").records
    return [r for r in records if r.source == "distilled"]


def run(config: LabConfig, out: Path = LAB_DIR) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(out, config)
    total = time.perf_counter()
    train, heldout, test = stages.timed("questions", make_questions, config)
    specs = lineage_specs(out)  # the distilled spec points at out/adapter, written by the sft stage

    def sample_and_save(jobs: list[tuple], name: str) -> list[Record]:
        """jobs: (spec, problems, sampling settings, source, split); all written to ``name``."""
        recs = [rec for job in jobs for rec in sample_records(*job)]
        write_records_jsonl(recs, out / name)
        return recs

    teacher_records = stages.timed("teacher", sample_and_save, [
        (specs["teacher"], train, config.sampling(config.teacher_samples, 0), "teacher", "train"),
        (specs["teacher"], heldout, config.sampling(config.teacher_samples, 50), "teacher", "heldout"),
    ], TEACHER_DATA)
    sft_pairs = [(r.prompt, r.response) for r in teacher_records
                 if r.meta["split"] == "train" and (r.correct or not config.sft_verified_only)]
    if not sft_pairs:
        raise RuntimeError("no verified teacher response to train on: raise --train-questions")
    stages.manifest["teacher_data"] = {
        "responses": len(teacher_records), "verified": sum(bool(r.correct) for r in teacher_records),
        "sft_examples": len(sft_pairs),
    }

    def sft_stage() -> dict:
        adapter = out / "adapter"
        shutil.rmtree(adapter, ignore_errors=True)
        return train_lora(hf_backend(specs["student"], "LoRA training"), sft_pairs, config.lora, adapter)

    stages.manifest["sft"] = stages.timed("sft", sft_stage)
    trajectories = stages.timed("trajectories", sample_and_save, [
        (specs["distilled"], test, config.sampling(config.distilled_samples, 100), "distilled", "test"),
        (specs["student"], test, config.sampling(config.student_samples, 200), "student", "test"),
    ], "test_trajectories.jsonl")
    distilled_records = [r for r in trajectories if r.source == "distilled"]
    stages.manifest["trajectories"] = {
        src: {"responses": sum(r.source == src for r in trajectories),
              "correct": sum(bool(r.correct) for r in trajectories if r.source == src)}
        for src in ("distilled", "student")
    }

    stages.manifest["demo_actions"] = stages.timed("score", write_demo_scores, distilled_records, out)
    stages.manifest["teacher_scored"] = stages.timed("teacher_score", write_teacher_scores, out)

    def accuracy_stage() -> dict:
        return {role: accuracy(spec, test, config) for role, spec in specs.items()}

    stages.manifest["test_accuracy_greedy"] = stages.timed("accuracy", accuracy_stage)
    stages.manifest["total_seconds"] = round(time.perf_counter() - total, 1)
    stages.save_manifest()
    return stages.manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rdpt_lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=LAB_DIR)
    parser.add_argument("--seed", type=int, default=LabConfig.seed)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the pipeline runs")
    parser.add_argument("--summary", action="store_true", help="print class statistics of the demo corpus")
    parser.add_argument("--only-score", action="store_true",
                        help="only re-score the committed test trajectories into the demo corpus")
    parser.add_argument("--only-teacher-score", action="store_true",
                        help="only score the committed teacher samples by T and S (selection demo)")
    args = parser.parse_args(argv)
    if args.only_teacher_score:
        n = write_teacher_scores(args.out)
        print(f"{n} teacher samples -> {args.out / TEACHER_CORPUS}")
        return 0
    if args.summary:
        import pandas as pd

        from .summary import class_summary, markdown

        print(markdown(class_summary(pd.read_parquet(args.out / DEMO_SCORES))))
        return 0
    if args.only_score:
        n = write_demo_scores(distilled_trajectories(args.out), args.out)
        print(f"{n} actions -> {args.out / DEMO_SCORES}")
        return 0
    config = LabConfig(seed=args.seed)
    if args.quick:
        config = LabConfig(seed=args.seed, train_questions=8, heldout_questions=2, test_questions=4,
                           teacher_samples=2, distilled_samples=2, student_samples=1, max_new_tokens=48,
                           sft_verified_only=False,
                           lora=LoraSettings(epochs=1, batch_size=4))
    manifest = run(config, args.out)
    print(json.dumps({k: manifest[k] for k in ("stage_seconds", "total_seconds", "test_accuracy_greedy")}, indent=2))
    return 0
