"""The two-teacher lineage (rdpt_lab/ensemble.py): what it trains on."""

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
