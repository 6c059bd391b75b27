"""The steps lineage's bookkeeping (rdpt_lab/lineage.py): question sets, the distillation data it
keeps, and the accuracies it records. The stages that train and sample run in `make steps`."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from rdpt_core.records import Record, load_records
from rdpt_lab import lineage


def _record(question_id: str, sample: str, correct: bool, truncated: bool = False) -> Record:
    return Record(f"teacher:{question_id}:{sample}", question_id, f"prompt {question_id}",
                  f"answer {question_id} {sample}", correct, "teacher", {"truncated": truncated})


def test_distillation_pairs_keep_the_first_verified_answers_of_distillation_questions_only():
    records = [
        _record("tr0000", "s0", False), _record("tr0000", "s1", True), _record("tr0000", "s2", True),
        _record("tr0000", "s3", True),  # a third verified answer: over the cap of 2
        _record("tr0001", "s0", True),
        _record("tr0002", "s0", False),  # nothing verified: the question gives nothing
        _record("ho0000", "s0", True),  # held out: never trained on
    ]
    pairs = lineage.distillation_pairs(records, per_question=2)
    assert pairs == [("prompt tr0000", "answer tr0000 s1"), ("prompt tr0000", "answer tr0000 s2"),
                     ("prompt tr0001", "answer tr0001 s0")]
    assert lineage.distillation_pairs(records, per_question=1) == [pairs[0], pairs[2]]


def test_accuracy_counts_correct_and_truncated_records_with_a_wilson_interval():
    records = [_record("te0000", "greedy", True), _record("te0001", "greedy", False, truncated=True),
               _record("te0002", "greedy", False), _record("te0003", "greedy", True)]
    summary = lineage.accuracy(records)
    assert (summary["n"], summary["correct"], summary["accuracy"], summary["truncated"]) == (4, 2, 0.5, 1)
    # Wilson 95% for 2/4, z = 1.959964: centre (2 + z²/2)/(4 + z²), half-width z·√(pq/n + z²/4n²)/(1 + z²/n)
    z = 1.959964
    centre = (0.5 + z * z / 8) / (1 + z * z / 4)
    half = z * (0.25 / 4 + z * z / 64) ** 0.5 / (1 + z * z / 4)
    assert summary["wilson95"] == pytest.approx([centre - half, centre + half], abs=1e-6)
    assert lineage.accuracy([])["accuracy"] is None


def test_question_sets_are_disjoint_and_the_test_set_uses_test_phrasings():
    config = lineage.StepsConfig(teacher_sft_questions=60, train_questions=20, heldout_questions=5, test_questions=15)
    sets = lineage.make_questions(config)
    assert {k: len(v) for k, v in sets.items()} == {"sft": 60, "train": 20, "heldout": 5, "test": 15}
    texts = {name: {p.question for p in problems} for name, problems in sets.items()}
    names = list(texts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not texts[a] & texts[b], (a, b)
    assert {p.split for p in sets["test"]} == {"test"}
    assert {p.split for name in ("sft", "train", "heldout") for p in sets[name]} == {"train"}
    ids = [p.question_id for problems in sets.values() for p in problems]
    assert len(ids) == len(set(ids))


def test_generation_resumes_from_its_finished_chunks_with_the_same_answers(tmp_path, tiny, monkeypatch):
    from rdpt_core.backends.base import SamplingSettings
    from rdpt_core.backends.hf import HFBackend
    from rdpt_core.models import resolve_spec

    spec = resolve_spec(str(tiny))
    prompts = [f"Tom has {i} apples. How many?" for i in range(7)]
    # n 2, batches of 4: chunks of 4 prompts (2 batches each), so 2 chunks here
    settings = SamplingSettings(n=2, temperature=0.7, top_p=1.0, max_new_tokens=6, seed=5, batch_size=4)
    whole = lineage.generate(spec, prompts, settings, "tiny", log=lambda m: None)
    assert [len(row) for row in whole] == [2] * 7

    real, calls = HFBackend.generate_detailed, []

    def dies_on_second_chunk(self, contexts, settings, **kw):
        calls.append(len(contexts))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the run is killed mid-way
        return real(self, contexts, settings, **kw)

    monkeypatch.setattr(HFBackend, "generate_detailed", dies_on_second_chunk)
    resume = tmp_path / "answers.partial"
    with pytest.raises(KeyboardInterrupt):
        lineage.generate(spec, prompts, settings, "tiny", log=lambda m: None, resume=resume)
    assert sorted(p.name for p in resume.iterdir()) == ["chunk-00000.json"]
    calls.clear()
    again = lineage.generate(spec, prompts, settings, "tiny", log=lambda m: None, resume=resume)
    assert calls == [3]  # only the unfinished chunk is generated again
    assert again == whole and not resume.exists()


# ---- the committed trajectories ------------------------------------------------------------------
# The strict rule, written again here from its statement: the response ends with "The answer is N"
# (optional full stop) and the token limit did not cut it.
_STATED = re.compile(r"the answer is\s+(-?\d+)\s*\.?\s*$", re.IGNORECASE)


SELECTION_EVALS = sorted(p.relative_to(lineage.STEPS_DIR).as_posix()
                         for p in (lineage.STEPS_DIR / "selection" / "eval").glob("*.jsonl"))


@pytest.mark.parametrize("name", [lineage.TEACHER_TEST, lineage.TEACHER_SAMPLES, lineage.TRAJECTORIES,
                                  *SELECTION_EVALS])
def test_every_committed_answer_is_labelled_by_the_strict_rule(name):
    path = lineage.STEPS_DIR / name
    if not path.exists():
        pytest.skip(f"{path.name} is not committed yet (its lineage stage has not run)")
    records = load_records(path).records
    assert records
    for r in records:
        match = _STATED.search(r.response.strip().replace(",", ""))
        stated = int(match.group(1)) if match else None
        strict = stated == r.meta["answer"] and not r.meta["truncated"]
        assert r.correct is strict, (r.record_id, r.response[-80:], r.meta)
        assert r.meta.get("stated", stated) == stated, r.record_id  # the selection's answers do not keep it
    correct = [r for r in records if r.correct]
    # every correct answer states its answer last and is complete
    assert all(_STATED.search(r.response.strip()) and not r.meta["truncated"] for r in correct)


# ---- the committed lineage (demo/steps/) --------------------------------------------------------
OUT = lineage.STEPS_DIR


def manifest() -> dict:
    return json.loads((OUT / "manifest.json").read_text())


def test_manifest_records_seeds_versions_times_and_accuracies():
    m = manifest()
    config = m["config"]
    assert config["seed"] == config["teacher_lora"]["seed"] == config["student_lora"]["seed"] == 2026
    assert set(m["stage_seconds"]) == set(m["stage_versions"]) == set(lineage.STAGES)
    assert all({"torch", "transformers", "peft", "python"} <= set(v) for v in m["stage_versions"].values())
    trajectories = m["stages"]["trajectories"]
    for role in ("teacher", "student", "distilled"):
        greedy = trajectories[role]["greedy"]
        assert greedy["n"] == config["test_questions"] and "truncated" in greedy and greedy["wilson95"]
    assert trajectories["teacher"]["greedy"] == m["stages"]["teacher_test"]


def test_teacher_samples_are_k_per_question_with_correct_and_incorrect_ones():
    records = load_records(OUT / lineage.TEACHER_SAMPLES).records
    per_question = pd.Series([r.question_id for r in records]).value_counts()
    config = manifest()["config"]
    assert (per_question == config["teacher_samples"]).all()
    assert len(per_question) == config["train_questions"] + config["heldout_questions"]
    assert 0 < sum(bool(r.correct) for r in records) < len(records)


def test_test_answers_come_from_all_three_models_on_unseen_questions():
    records = load_records(OUT / lineage.TRAJECTORIES).records
    assert {r.source for r in records} == {"teacher", "student", "distilled"}
    assert {True, False} <= {r.correct for r in records if r.source == "distilled"}
    seen = {p.prompt for name in ("sft", "train", "heldout") for p in lineage.load_questions(OUT)[name]}
    assert seen.isdisjoint(r.prompt for r in records)


def test_demo_corpus_has_multi_step_answers_right_and_wrong():
    table = pd.read_parquet(OUT / lineage.DEMO_SCORES)
    per_response = table.groupby("record_id").size()
    assert per_response.median() >= 6
    assert set(table.drop_duplicates("record_id")["correct"]) == {True, False}


@pytest.mark.parametrize("adapter", [lineage.TEACHER_ADAPTER, lineage.DISTILLED_ADAPTER])
def test_adapters_are_small_safetensors(adapter):
    weights = OUT / adapter / "adapter_model.safetensors"
    assert weights.exists() and weights.stat().st_size < 20 * 2**20


def test_ground_truth_is_what_the_committed_corpus_says():
    committed = json.loads((OUT / lineage.GROUND_TRUTH).read_text())
    trajectories = load_records(OUT / lineage.TRAJECTORIES).records
    fresh = lineage.known_origin_summary(pd.read_parquet(OUT / lineage.DEMO_SCORES), trajectories)
    assert json.loads(json.dumps(fresh)) == committed


@pytest.mark.slow
def test_distillation_moved_the_student_toward_the_teacher_on_held_out_answers(tmp_path):
    from rdpt_core.cache import TokenCache
    from rdpt_core.scoring import score_corpus

    heldout = [r for r in load_records(OUT / lineage.TEACHER_SAMPLES).records
               if r.question_id.startswith("ho") and r.correct][:24]
    assert len(heldout) >= 12
    specs = lineage.lineage_specs(OUT)
    corpus, _ = score_corpus(heldout, {"student": specs["student"], "distilled": specs["distilled"]},
                             cache=TokenCache(tmp_path))
    mean = {role: np.mean(np.concatenate([s.logprobs for s in corpus.tokens[role].values()]))
            for role in ("student", "distilled")}
    assert mean["distilled"] > mean["student"], mean


@pytest.mark.slow
def test_committed_demo_scores_match_a_fresh_rescore(tmp_path):
    """Four demo answers re-scored by T, S and D through the engine equal the committed table."""
    from rdpt_core.cache import TokenCache
    from rdpt_core.scoring import score_corpus

    committed = pd.read_parquet(OUT / lineage.DEMO_SCORES)
    distilled = [r for r in load_records(OUT / lineage.TRAJECTORIES).records if r.source == "distilled"]
    subset = distilled[:: len(distilled) // 4][:4]
    fresh = score_corpus(subset, lineage.lineage_specs(OUT), cache=TokenCache(tmp_path))[0].actions("paper")
    old = committed[committed.record_id.isin([r.record_id for r in subset])].reset_index(drop=True)
    assert len(fresh) == len(old) > 0
    keys = ["record_id", "start", "end", "kind"]
    assert (fresh[keys].values == old[keys].values).all()
    for role in ("teacher", "student", "distilled"):
        assert (fresh[f"n_tokens_{role}"].values == old[f"n_tokens_{role}"].values).all()
        assert np.allclose(fresh[f"p_{role}"], old[f"p_{role}"], atol=1e-5, equal_nan=True), role


@pytest.mark.parametrize("corpus", [lineage.DEMO_CORPUS, lineage.TEACHER_CORPUS])
def test_committed_scores_belong_to_the_committed_models(corpus):
    """The fingerprints recorded with the committed scores are those of the adapters as a clean
    clone has them (a file beside an adapter, such as peft's README.md, would change them and the
    app would score everything again)."""
    import json

    from rdpt_core.models import fingerprint

    path = lineage.STEPS_DIR / corpus / "corpus.json"
    if not path.exists():
        pytest.skip(f"{corpus} is not committed yet (its lineage stage has not run)")
    recorded = json.loads(path.read_text())["fingerprints"]
    specs = lineage.lineage_specs()
    assert {role: fingerprint(specs[role], "float32") for role in recorded} == recorded
