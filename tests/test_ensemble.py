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

    from rdpt_lab.ensemble import GAMMAS, attribution_summary

    table = pd.DataFrame({  # one action of each known origin, each clearly from its teacher
        "record_id": "r", "action_index": [0, 1, 2],
        "text": [" Step 1 → 2 + 2 = 4.", " After that, 4 × 2 = 8.", " The answer is 8."],
        "p_teacher_steps": [0.9, 0.2, 0.5], "p_teacher_narrative": [0.1, 0.9, 0.5],
        "p_student": [0.05, 0.05, 0.5], "p_distilled": [0.9, 0.9, 0.5]})
    got = attribution_summary(table)
    confusion = {row["attribution"]: row for row in got["confusion"]}
    assert confusion["steps"]["steps"] == 1 and confusion["narrative"]["narrative"] == 1
    assert confusion["Shared"]["neither"] == 1
    assert len(got["by_gamma"]) == 2 * len(GAMMAS)
