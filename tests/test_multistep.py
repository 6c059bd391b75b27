"""The steps lineage's problems, teacher-style solutions and strict answer rule (rdpt_lab/multistep.py)."""

from __future__ import annotations

import re

import pytest

from rdpt_core.segment import segment
from rdpt_lab import multistep as M


def _evaluate(problem: M.Problem) -> int:
    """The answer recomputed from the question's own numbers and the kinds of its operations,
    independently of the solver's running value: a chain of the question's sentences."""
    sentences = re.split(r"(?<=[.?])\s+", problem.question)
    value = int(re.search(r"has (\d+)", sentences[0]).group(1))
    ops = [k for k in problem.kinds if k not in ("worth", "more")]
    for kind, sentence in zip(ops, sentences[1:], strict=False):
        numbers = [int(n) for n in re.findall(r"\b\d+\b", sentence)]
        if kind == "gain":
            value += numbers[0]
        elif kind == "lose":
            value -= numbers[0]
        elif kind == "packs":
            value += numbers[0] * numbers[1]
        elif kind == "times":
            value *= 3 if re.search(r"three times|triples", sentence) else 2
        elif kind == "share":
            value //= numbers[0]
    final = problem.kinds[-1]
    if final in ("worth", "more"):
        number = int(re.findall(r"\b\d+\b", " ".join(sentences[len(ops) + 1:]))[0])
        value = value * number if final == "worth" else value + number
    return value


@pytest.mark.parametrize("split", ["train", "test"])
def test_problems_have_three_to_six_steps_small_numbers_and_their_stated_answer(split):
    problems = M.make_problems(split, 400, seed=7, prefix="p")
    assert len({p.question for p in problems}) == 400
    assert {p.steps for p in problems} == {3, 4, 5, 6}
    for p in problems:
        assert _evaluate(p) == p.answer, p.question
        assert M.stated_answer(p.solution) == p.answer
        assert max(int(n) for n in re.findall(r"\d+", p.solution)) <= M.MAX_VALUE
        n_sentences = len([a for a in segment(p.solution) if a.text.strip()])
        assert 6 <= n_sentences <= 12, p.solution
        assert len(re.findall(r"Step \d+ →", p.solution)) == p.steps


def test_train_and_test_share_no_phrasing_and_no_story():
    train = M.make_problems("train", 300, seed=1, prefix="a")
    test = M.make_problems("test", 300, seed=1, prefix="b")

    def shapes(problems):  # each question sentence with its numbers and names blanked
        out = set()
        for p in problems:
            for sentence in re.split(r"(?<=[.?])\s+", p.question):
                out.add(re.sub(r"\d+|[A-Z][a-z]+", "_", sentence))
        return out

    assert not shapes(train) & shapes(test)
    words = {w for p in train for w in re.findall(r"[A-Za-z]+", p.question)}
    assert not {"shells", "cards", "beads", "stamps", "Zoe", "Leo", "Ivy", "Max"} & words


def test_same_seed_same_problems():
    assert M.make_problems("test", 20, 3, "t") == M.make_problems("test", 20, 3, "t")
    assert M.make_problems("test", 20, 3, "t") != M.make_problems("test", 20, 4, "t")


@pytest.mark.parametrize("response, expected", [
    ("Step 1 of 3: 2 + 3 = 5 apples. The answer is 5.", 5),
    ("so the answer is 1,234", 1234),
    ("The answer is 12.  ", 12),
    ("The answer is -4.", -4),
    # no statement: never a fallback to the last number
    ("34 + 48 = 72 + 68 = 17. Now, we need to find out how", None),
    ("The answer is 12. Then we add 5 more to get 17", None),  # not the end: cut or rambling on
    ("The answer is twelve.", None),
    ("", None),
])
def test_strict_answer_rule(response, expected):
    assert M.stated_answer(response) == expected
    assert M.is_correct(response, 17) is False or expected == 17


def test_teacher_style_markers_tell_the_solver_sentences_from_plain_ones():
    problem = M.make_problems("train", 1, seed=2, prefix="s")[0]
    sentences = [a.text.strip() for a in segment(problem.solution) if a.text.strip()]
    styled = [M.teacher_style(s) for s in sentences]
    assert styled[:-1] == [True] * (len(sentences) - 1) and styled[-1] is False  # "The answer is N."
    for plain in ("First, Tom has 12 apples.", "Step 1: 12 + 5 = 17.", "So 17 − 5 = 12.",
                  "The plan is simple.", "Let me check: 17 - 5 = 12."):
        assert not M.teacher_style(plain)


def test_equations_are_checked_one_by_one_in_every_notation():
    text = ("Step 1 → 20 ÷ 4 = 5 beads. Step 2 → 5 × 2 = 11 beads. Then 26 + 4 = 30, 30 − 7 = 23, "
            "3 x 4 = 12, 7 / 2 = 3, 9 - 10 = -1 and 5 ÷ 0 = 0.")
    # 9 - 10 = -1 is not an integer equation the solutions write ("-1" is not read): skipped
    assert M.equations(text) == [True, False, True, True, True, False, False]
    assert M.equations("The answer is 12.") == []


def test_every_solver_solution_has_only_true_equations():
    problems = M.make_problems("test", 40, seed=3, prefix="te")
    assert all(M.equations(p.solution) and all(M.equations(p.solution)) for p in problems)


# ---- the narrative teacher's style (issue 15) -----------------------------------------------------
def test_a_narrative_solution_keeps_the_facts_and_carries_only_narrative_markers():
    for problem in M.make_problems("train", 30, seed=5, prefix="n"):
        told = M.narrative(problem.solution)
        sentences = [a.text.strip() for a in segment(told) if a.text.strip()]
        # same equations, same answer; steps numbering gone
        assert M.equations(told) == M.equations(problem.solution) and all(M.equations(told))
        assert M.stated_answer(told) == problem.answer and "step" not in told.lower().replace("steps", "")
        assert [M.narrative_style(s) for s in sentences] == [True] * (len(sentences) - 1) + [False]
        assert not any(M.teacher_style(s) for s in sentences)
    steps_sentences = [a.text.strip() for a in segment(problem.solution) if a.text.strip()]
    assert not any(M.narrative_style(s) for s in steps_sentences)  # the two styles are disjoint
    for plain in ("First, Tom has 12 apples.", "Then she gains 5.", "So 17 − 5 = 12.", "Next, 3 × 4 = 12."):
        assert not M.narrative_style(plain)
