"""The two-teacher lineage (rdpt_lab/ensemble.py): what it trains on, and its committed
corpus checked against a plain-transformers recomputation."""

import numpy as np
import pytest

from rdpt_core.segment import segment
from rdpt_lab import multistep as M
from rdpt_lab.ensemble import narrative_pairs


def test_the_narrative_teacher_trains_on_the_same_questions_told_as_stories():
    problems = M.make_problems("train", 12, seed=7, prefix="e")
    pairs = narrative_pairs(problems)
    assert [prompt for prompt, _ in pairs] == [p.prompt for p in problems]  # same tasks, same prompts
    for (_, told), problem in zip(pairs, problems):
        sentences = [a.text.strip() for a in segment(told) if a.text.strip()]
        assert M.stated_answer(told) == problem.answer
        assert any(M.narrative_style(s) for s in sentences) and not any(M.teacher_style(s) for s in sentences)


def test_the_mixed_set_takes_one_verified_answer_of_each_teacher_per_distillation_question():
    from rdpt_core.records import Record
    from rdpt_lab.ensemble import mixed_pairs

    def rec(source, q, k, correct):
        return Record(f"{source}:{q}:s{k}", q, f"prompt {q}", f"{source} answer {k}", correct, source)

    steps = [rec("teacher", "tr1", 0, False), rec("teacher", "tr1", 1, True), rec("teacher", "tr1", 2, True),
             rec("teacher", "ho1", 0, True), rec("teacher", "tr2", 0, True)]
    narrative = [rec("narrative", "tr1", 0, True), rec("narrative", "tr2", 0, False), rec("narrative", "tr2", 1, False)]
    # steps: first verified of tr1 (s1) and tr2 (s0), never the held-out ho1; narrative: tr1 only
    assert mixed_pairs(steps, narrative) == [("prompt tr1", "teacher answer 1"), ("prompt tr2", "teacher answer 0"),
                                             ("prompt tr1", "narrative answer 0")]


def test_the_attribution_summary_reads_the_two_styles():
    import pandas as pd

    from rdpt_core.origin import GAMMA_GRID
    from rdpt_lab.ensemble import attribution_summary

    table = pd.DataFrame({  # one action of each known origin, each clearly from its teacher
        "record_id": "r", "action_index": [0, 1, 2],
        "text": [" Step 1 → 2 + 2 = 4.", " After that, 4 × 2 = 8.", " The answer is 8."],
        "p_teacher_steps": [0.9, 0.2, 0.5], "p_teacher_narrative": [0.1, 0.9, 0.5],
        "p_student": [0.05, 0.05, 0.5], "p_distilled": [0.9, 0.9, 0.5]})
    got = attribution_summary(table)
    confusion = {row["attribution"]: row for row in got["confusion"]}
    assert confusion["steps"]["steps"] == 1 and confusion["narrative"]["narrative"] == 1
    assert confusion["Shared"]["neither"] == 1
    assert len(got["by_gamma"]) == 2 * len(GAMMA_GRID)


@pytest.mark.slow
def test_the_committed_two_teacher_corpus_equals_a_plain_transformers_recomputation(smollm2_spec, gemma_spec):
    """Three committed answers of the mixed distilled model, scored by both teachers, the student
    and itself through the engine (``make ensemble-lab``), against one plain forward pass per
    model and answer (conftest.Reference: peft's merge, full log-softmax, naive segmentation and
    token rule); the best teacher and margin recomputed by hand from those numbers."""
    from conftest import Reference, reference_spans
    from rdpt_core.store import load_corpus
    from rdpt_lab.ensemble import CORPUS, MIXED_ADAPTER, NARRATIVE_ADAPTER
    from rdpt_lab.models import ENSEMBLE_DIR, STEPS_DIR

    corpus = load_corpus(ENSEMBLE_DIR / CORPUS)
    table = corpus.actions("paper")
    assert list(corpus.tokens) == ["teacher_steps", "teacher_narrative", "student", "distilled"]
    by_length = sorted(corpus.records, key=lambda r: len(r.response))
    records = [by_length[len(by_length) // 4], by_length[len(by_length) // 2], by_length[-1]]
    models = {"teacher_steps": (smollm2_spec.path, STEPS_DIR / "teacher_adapter"),
              "teacher_narrative": (smollm2_spec.path, ENSEMBLE_DIR / NARRATIVE_ADAPTER),
              "student": (gemma_spec.path, None), "distilled": (gemma_spec.path, ENSEMBLE_DIR / MIXED_ADAPTER)}
    want: dict[str, list[float]] = {}
    for role, (path, adapter) in models.items():
        ref = Reference(path, None if adapter is None else str(adapter))
        want[role] = []
        for rec in records:
            spans = reference_spans(rec.response, list(corpus.markers))
            rows = table[table.record_id == rec.record_id].sort_values("action_index")
            assert list(zip(rows.start, rows.end)) == spans, rec.record_id
            p, counts = ref.action_probs(ref.context(rec.prompt), rec.response, spans)
            assert rows[f"n_tokens_{role}"].tolist() == counts, (role, rec.record_id)
            want[role] += p
        del ref
    got = table[table.record_id.isin([r.record_id for r in records])]
    got = got.set_index("record_id").loc[[r.record_id for r in records]]  # the records' order
    assert len(got) == len(want["student"]) >= 10
    for role, p in want.items():
        diff = np.nanmax(np.abs(got[f"p_{role}"].to_numpy() - np.array(p)))
        print(f"{role}: {len(p)} actions, max |Δp| = {diff:.1e}")  # shown with pytest -rP
        assert np.allclose(got[f"p_{role}"], p, atol=1e-4, rtol=0, equal_nan=True), (role, float(diff))
    steps, narrative = np.array(want["teacher_steps"]), np.array(want["teacher_narrative"])
    assert np.allclose(got["p_teacher"], np.maximum(steps, narrative), atol=1e-4)
    assert np.allclose(got["teacher_margin"], np.abs(steps - narrative), atol=1e-4)
    clear = np.abs(steps - narrative) > 1e-3  # the best teacher, where the two are not within the tolerance
    assert (got["best_teacher"].to_numpy()[clear] == np.where(steps > narrative, "steps", "narrative")[clear]).all()


def test_the_committed_attribution_is_recomputed_from_the_committed_action_table():
    """attribution.json (the ground-truth tables of docs/lab.md and the app) equals what
    rdpt_core computes again from scores.parquet, and scores.parquet equals the committed
    corpus's action table (docs: tests/test_lab_report.py checks the doc against the json)."""
    import json

    import pandas as pd

    from rdpt_core.store import load_corpus
    from rdpt_lab.ensemble import ATTRIBUTION, CORPUS, SCORES, attribution_summary
    from rdpt_lab.models import ENSEMBLE_DIR

    scores = pd.read_parquet(ENSEMBLE_DIR / SCORES)
    recomputed = json.loads(json.dumps(attribution_summary(scores), ensure_ascii=False))
    assert recomputed == json.loads((ENSEMBLE_DIR / ATTRIBUTION).read_text(encoding="utf-8"))
    from_corpus = load_corpus(ENSEMBLE_DIR / CORPUS).actions("paper")
    pd.testing.assert_frame_equal(from_corpus.reset_index(drop=True), scores, check_dtype=False)


def test_the_committed_two_teacher_scores_belong_to_the_committed_models():
    """The fingerprints stored with the corpus are those of the four models as a clean clone
    has them, so the app and the CLI read these scores instead of scoring again."""
    import json

    from rdpt_core.models import fingerprint
    from rdpt_lab.ensemble import CORPUS, ensemble_specs
    from rdpt_lab.models import ENSEMBLE_DIR

    recorded = json.loads((ENSEMBLE_DIR / CORPUS / "corpus.json").read_text())["fingerprints"]
    specs = ensemble_specs()
    assert list(recorded) == ["teacher_steps", "teacher_narrative", "student", "distilled"]
    assert {role: fingerprint(specs[role], "float32") for role in recorded} == recorded
