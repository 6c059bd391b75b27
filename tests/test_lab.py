"""The mini-distillation lab: problems, the SFT loss, and the committed lineage artifacts."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO
from rdpt_lab import problems as P
from rdpt_lab.train import _batch_loss
from rdpt_core.records import load_records

LAB = REPO / "demo" / "lab"


def test_problems_are_seeded_and_train_and_test_templates_are_disjoint():
    a = P.make_problems(P.TRAIN_TEMPLATES, 40, seed=7, prefix="tr")
    assert a == P.make_problems(P.TRAIN_TEMPLATES, 40, seed=7, prefix="tr")
    assert a != P.make_problems(P.TRAIN_TEMPLATES, 40, seed=8, prefix="tr")
    assert len({p.question for p in a}) == 40
    train_names = {t.name for t in P.TRAIN_TEMPLATES}
    assert train_names.isdisjoint(t.name for t in P.TEST_TEMPLATES)
    assert {1, 2} == {t.steps for t in P.TRAIN_TEMPLATES} == {t.steps for t in P.TEST_TEMPLATES}


def test_answers_are_right_by_hand():
    import re

    for p in P.make_problems(P.TRAIN_TEMPLATES + P.TEST_TEMPLATES, 60, seed=3, prefix="x"):
        n = [int(x) for x in re.findall(r"\d+", p.question)]
        by_hand = {
            "apples_add": lambda: n[0] + n[1], "stickers_sub": lambda: n[0] - n[1],
            "pencil_boxes": lambda: n[0] * n[1], "share_cookies": lambda: n[1] // n[0],
            "bus_riders": lambda: n[0] - n[1] + n[2], "baker": lambda: n[0] * n[1] - n[2],
            "savings": lambda: n[0] * n[1] - n[2], "garden_rows": lambda: n[0] * n[1] + n[2],
            "marbles_add": lambda: n[0] + n[1], "books_shelves": lambda: n[0] * n[1],
            "train_cars": lambda: n[0] * n[1] - n[2], "fruit_basket": lambda: n[0] + n[1] - n[2],
        }[p.template]()
        assert p.answer == by_hand and p.answer >= 0
        if p.template == "share_cookies":
            assert n[1] % n[0] == 0


@pytest.mark.parametrize("text, expected", [
    ("3 + 4 = 7. The answer is 7.", 7),
    ("The answer is 12, then 5 more", 12),
    ("First 2, then the answer is: 1,234.", 1234),
    ("We get 10 and then 11", 11),
    ("The answer is 5. Wait, the answer is 6.", 6),
    ("no digits here", None),
])
def test_exact_integer_answer_rule(text, expected):
    assert P.extract_answer(text) == expected


def test_response_only_loss_equals_transformers_masked_loss():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, pad_token_id=0,
    )).eval()
    batch = [([5, 6, 7, 8, 9, 10], 3), ([11, 12, 13, 14], 2), ([20, 21, 22, 23, 24, 25, 26, 27], 5)]
    width = 8
    ids = torch.tensor([x + [0] * (width - len(x)) for x, _ in batch])
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch])
    labels = torch.tensor([[t if n_ctx <= i < len(x) else -100 for i, t in enumerate(x + [0] * (width - len(x)))]
                           for x, n_ctx in batch])
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        got, n_labels = _batch_loss(model, batch, pad_id=0)
    assert n_labels == (6 - 3) + (4 - 2) + (8 - 5)
    assert torch.allclose(got, want, atol=1e-6)


# ---- the committed lineage ---------------------------------------------------------------------
def manifest():
    return json.loads((LAB / "manifest.json").read_text())


def test_manifest_records_seeds_versions_times_and_accuracies():
    m = manifest()
    assert isinstance(m["seed"], int) and m["config"]["lora"]["seed"] is not None
    assert {"torch", "transformers", "peft"} <= set(m["versions"])
    assert {"questions", "teacher", "sft", "trajectories", "score", "accuracy"} <= set(m["stage_seconds"])
    assert set(m["test_accuracy_greedy"]) == {"teacher", "student", "distilled"}
    assert m["teacher_data"]["sft_examples"] > 0


def test_teacher_data_keeps_every_response_with_its_correctness():
    recs = load_records(LAB / "teacher_data.jsonl").records
    m = manifest()
    assert len(recs) == m["teacher_data"]["responses"]
    per_question = pd.Series([r.question_id for r in recs]).value_counts()
    assert (per_question == m["config"]["teacher_samples"]).all()
    for r in recs:  # labels follow the documented rule
        assert r.correct == (P.extract_answer(r.response) == r.meta["answer"])
    assert {r.meta["split"] for r in recs} == {"train", "heldout"}
    assert 0 < sum(bool(r.correct) for r in recs) < len(recs)


def test_test_trajectories_include_correct_and_incorrect_responses():
    recs = load_records(LAB / "test_trajectories.jsonl").records
    distilled = [r for r in recs if r.source == "distilled"]
    assert {True, False} <= {r.correct for r in distilled}
    assert {r.source for r in recs} == {"distilled", "student"}
    train_questions = {r.prompt for r in load_records(LAB / "teacher_data.jsonl").records}
    assert train_questions.isdisjoint(r.prompt for r in recs)


def test_adapter_is_small_safetensors():
    weights = LAB / "adapter" / "adapter_model.safetensors"
    assert weights.exists() and weights.stat().st_size < 20 * 2**20


@pytest.mark.slow
def test_adapter_loads_through_the_zoo_and_changes_the_model(gemma):
    from rdpt_core.backends import create_backend
    from rdpt_core.models import resolve_spec

    spec = resolve_spec("gemma3-270m-distilled")
    assert spec.adapter and spec.path == gemma.spec.path
    distilled = create_backend(spec)
    assert distilled.fingerprint != gemma.fingerprint
    text = "Tom has 3 apples. He buys 4 more apples. How many apples does Tom have now?"
    d = distilled.score(distilled.render_context(text), "3 + 4 = 7. The answer is 7.")
    s = gemma.score(gemma.render_context(text), "3 + 4 = 7. The answer is 7.")
    assert distilled.load_count == 1 and np.array_equal(d.token_ids, s.token_ids)
    assert not np.allclose(d.logprobs, s.logprobs, atol=1e-3)
    distilled.unload()


@pytest.mark.slow
def test_distillation_moved_the_student_toward_the_teacher_on_held_out_responses(tmp_path):
    from rdpt_core.cache import TokenCache
    from rdpt_lab.run import lineage_specs
    from rdpt_core.scoring import score_corpus

    heldout = [r for r in load_records(LAB / "teacher_data.jsonl").records if r.meta["split"] == "heldout"]
    assert len(heldout) >= 20
    specs = lineage_specs()
    corpus, _ = score_corpus(heldout, {"student": specs["student"], "distilled": specs["distilled"]},
                             cache=TokenCache(tmp_path))
    mean = {role: np.mean(np.concatenate([s.logprobs for s in corpus.tokens[role].values()]))
            for role in ("student", "distilled")}
    assert mean["distilled"] > mean["student"], mean


@pytest.mark.slow
def test_committed_demo_scores_match_a_fresh_rescore(tmp_path):
    from rdpt_core.cache import TokenCache
    from rdpt_lab.run import DEMO_SCORES, distilled_trajectories, score_demo

    committed = pd.read_parquet(LAB / DEMO_SCORES)
    subset = distilled_trajectories()[:: max(1, len(distilled_trajectories()) // 4)][:4]
    fresh = score_demo(subset, cache=TokenCache(tmp_path)).actions("paper")
    old = committed[committed.record_id.isin([r.record_id for r in subset])].reset_index(drop=True)
    assert len(fresh) == len(old) > 0
    assert (fresh[["record_id", "start", "end", "kind"]].values == old[["record_id", "start", "end", "kind"]].values).all()
    for role in ("teacher", "student", "distilled"):
        assert (fresh[f"n_tokens_{role}"].values == old[f"n_tokens_{role}"].values).all()
        assert np.allclose(fresh[f"p_{role}"], old[f"p_{role}"], atol=1e-5, equal_nan=True), role
