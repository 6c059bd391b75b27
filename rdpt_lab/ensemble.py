"""The two-teacher lineage (issue 15, docs/lab.md): a second teacher trained like the steps
teacher, on the same SFT questions, but on the *narrative* retelling of each solution
(rdpt_lab.multistep.narrative); later stages distil the student on a mix of both teachers'
verified answers, so every distilled sentence has a known origin (steps marker: teacher A,
narrative marker: teacher B, neither).

Outputs under ``demo/ensemble/``; the steps lineage (``demo/steps/``) supplies the questions
and teacher A. Each stage is skipped when its outputs exist, so an interrupted run resumes
(training checkpoints every few steps). The stages:

1. narrative_teacher – SmolLM2-135M-Instruct + LoRA on the narrative solutions, with the steps
   teacher's LoRA settings and seed;
2. narrative_samples – it samples k answers per distillation and held-out question, as the steps
   teacher did (same sampling settings and seeds), each checked by the strict rule;
3. mixed_distill – Gemma-3-270M + LoRA (the steps lineage's student settings) on, per
   distillation question, the first verified answer of each teacher;
4. trajectories – the mixed model answers every test question (sampled and greedy);
5. score – its answers scored by both teachers (roles teacher_steps, teacher_narrative), the
   student and itself: the two-teacher corpus;
6. attribution – the attribution confusion table against the known origin at α = β = γ = 0.1,
   and attribution by γ (docs/method.md §18).

Results and what they show: docs/lab.md, "Two teachers".
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from rdpt_core import origin, stats
from rdpt_core.cache import TokenCache
from rdpt_core.models import ModelSpec, resolve_spec
from rdpt_core.provenance import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA, classify_table
from rdpt_core.records import Record, load_records, write_records_jsonl
from rdpt_core.scoring import score_corpus, teacher_role
from rdpt_core.store import save_corpus

from . import multistep as M
from .lineage import (
    BASE_TEACHER, STUDENT, TEACHER_SAMPLES, StepsConfig, accuracy, distillation_pairs, load_questions, sample,
    sample_teacher, teacher_spec,
)
from .stages import write_json
from .models import ENSEMBLE_DIR, STEPS_DIR
from .stages import StageRunner
from .train import hf_backend, train_lora

NARRATIVE_ADAPTER = "narrative_teacher_adapter"
NARRATIVE_TEACHER = "smollm2-135m-narrative-teacher"
NARRATIVE_SAMPLES = "narrative_samples.jsonl"
MIXED_ADAPTER = "mixed_distilled_adapter"
MIXED_DISTILLED = "gemma3-270m-mixed-distilled"
TRAJECTORIES, CORPUS, SCORES, ATTRIBUTION = "test_trajectories.jsonl", "corpus", "scores.parquet", "attribution.json"
STYLES = M.TEACHER_STYLES


def narrative_pairs(problems: list[M.Problem]) -> list[tuple[str, str]]:
    """(prompt, narrative solution) per SFT problem: the narrative teacher's training set."""
    return [(p.prompt, M.narrative(p.solution)) for p in problems]


def mixed_pairs(steps_records: list[Record], narrative_records: list[Record]) -> list[tuple[str, str]]:
    """The mixed distillation set: per distillation question, the first verified answer of the
    steps teacher, then the first of the narrative teacher (each teacher's file order)."""
    return distillation_pairs(steps_records, 1) + distillation_pairs(narrative_records, 1)


def narrative_teacher_spec(out: Path = ENSEMBLE_DIR) -> ModelSpec:
    return resolve_spec(BASE_TEACHER, adapter=str(out / NARRATIVE_ADAPTER), name=NARRATIVE_TEACHER)


def mixed_spec(out: Path = ENSEMBLE_DIR) -> ModelSpec:
    return resolve_spec(STUDENT, adapter=str(out / MIXED_ADAPTER), name=MIXED_DISTILLED)


def ensemble_specs(out: Path = ENSEMBLE_DIR, steps: Path = STEPS_DIR) -> dict[str, ModelSpec]:
    """The two-teacher job: both teachers by name, the student, the mixed distilled model."""
    return {teacher_role("steps"): teacher_spec(steps), teacher_role("narrative"): narrative_teacher_spec(out),
            "student": resolve_spec(STUDENT), "distilled": mixed_spec(out)}


def attribution_summary(actions: pd.DataFrame, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA,
                        gamma: float = DEFAULT_GAMMA) -> dict:
    """Against the styles: the attribution confusion table at (α, β, γ), the same at the β that
    docs/method.md §10 suggests for this corpus (its grid, α fixed; None when it suggests none),
    and attribution by γ at β."""
    known = origin.known_teachers(actions["text"], STYLES)

    def confusion_at(b: float) -> list[dict]:
        table = origin.attribution_confusion(classify_table(actions, alpha, b, gamma), known)
        return table.reset_index(names="attribution").round(4).to_dict(orient="records")

    suggested = stats.suggest_beta(stats.beta_overlaps(actions, alpha, stats.beta_grid()))
    by_gamma = origin.attribution_by_gamma(actions, STYLES, alpha, beta, origin.GAMMA_GRID)
    return {"alpha": alpha, "beta": beta, "gamma": gamma, "styles": STYLES, "confusion": confusion_at(beta),
            "suggested_beta": suggested,
            "confusion_at_suggested_beta": None if suggested is None else confusion_at(suggested),
            "by_gamma": by_gamma.round(4).to_dict(orient="records")}


class EnsembleLineage(StageRunner):
    def __init__(self, config: StepsConfig, out: Path = ENSEMBLE_DIR, steps: Path = STEPS_DIR,
                 log: Callable[[str], None] = print) -> None:
        out.mkdir(parents=True, exist_ok=True)
        super().__init__(out / "manifest.json", "ensemble", log)
        self.config, self.out, self.steps = config, out, steps
        self.manifest["config"] = config.to_dict()
        self.manifest["rules"] = {"teacher_a_style": M.STYLE_RULE, "teacher_b_style": M.NARRATIVE_RULE}

    def narrative_teacher(self) -> None:
        def work() -> dict:
            pairs = narrative_pairs(load_questions(self.steps)["sft"])
            return train_lora(hf_backend(resolve_spec(BASE_TEACHER), "LoRA training"), pairs,
                              self.config.teacher_lora, self.out / NARRATIVE_ADAPTER, log=self.log)

        self.stage("narrative_teacher", self.out / NARRATIVE_ADAPTER / "adapter_config.json", work)

    def narrative_samples(self) -> None:
        self.stage("narrative_samples", self.out / NARRATIVE_SAMPLES,
                   lambda: sample_teacher(narrative_teacher_spec(self.out), "narrative", load_questions(self.steps),
                                          self.config, self.out / NARRATIVE_SAMPLES, self.log))

    def mixed_distill(self) -> None:
        def work() -> dict:
            pairs = mixed_pairs(load_records(self.steps / TEACHER_SAMPLES).records,
                                load_records(self.out / NARRATIVE_SAMPLES).records)
            return train_lora(hf_backend(resolve_spec(STUDENT), "LoRA training"), pairs, self.config.student_lora,
                              self.out / MIXED_ADAPTER, log=self.log)

        self.stage("mixed_distill", self.out / MIXED_ADAPTER / "adapter_config.json", work)

    def trajectories(self) -> None:
        def work() -> dict:
            test, c = load_questions(self.steps)["test"], self.config
            records = sample(mixed_spec(self.out), test, c.sampling(c.test_samples, 100), "distilled", "s", self.log,
                             self.out / "distilled-sampled.partial")
            records += sample(mixed_spec(self.out), test, c.sampling(1, 200, greedy=True), "distilled", "greedy",
                              self.log, self.out / "distilled-greedy.partial")
            write_records_jsonl(records, self.out / TRAJECTORIES)
            return {kind: accuracy([r for r in records if (r.meta["sample"] == "greedy") == (kind == "greedy")])
                    for kind in ("greedy", "sampled")}

        self.stage("trajectories", self.out / TRAJECTORIES, work)

    def score(self) -> None:
        def work() -> dict:
            records = load_records(self.out / TRAJECTORIES).records
            corpus, _ = score_corpus(records, ensemble_specs(self.out, self.steps), cache=TokenCache(self.out / ".cache"))
            save_corpus(corpus, self.out / CORPUS)
            table = corpus.actions("paper")
            table.to_parquet(self.out / SCORES, index=False)
            return {"responses": len(records), "actions": len(table)}

        self.stage("score", self.out / SCORES, work)

    def attribution(self) -> None:
        self.stage("attribution", self.out / ATTRIBUTION,
                   lambda: write_json(self.out / ATTRIBUTION, attribution_summary(pd.read_parquet(self.out / SCORES))))


STAGES = ("narrative_teacher", "narrative_samples", "mixed_distill", "trajectories", "score", "attribution")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rdpt_lab ensemble", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stages", nargs="*", metavar="STAGE", help=f"some of {', '.join(STAGES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    lineage = EnsembleLineage(StepsConfig())
    for name in [s for s in STAGES if s in args.stages] or STAGES:
        getattr(lineage, name)()
        lineage.save()
    return 0
