"""Seeded grade-school word problems with integer answers, and the answer-checking rule.

Training and test questions come from *different templates*, so no test question (nor its
phrasing) was ever seen in training. Each template is one- or two-step.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    name: str
    text: str
    answer: Callable[[dict[str, int]], int]
    ranges: dict[str, tuple[int, int]]
    steps: int


@dataclass(frozen=True)
class Problem:
    question_id: str
    template: str
    steps: int
    question: str
    answer: int


def _t(name, text, answer, steps, **ranges) -> Template:
    return Template(name, text, answer, ranges, steps)


TRAIN_TEMPLATES: tuple[Template, ...] = (
    _t("apples_add", "Tom has {a} apples. He buys {b} more apples. How many apples does Tom have now?",
       lambda v: v["a"] + v["b"], 1, a=(2, 20), b=(2, 12)),
    _t("stickers_sub", "Sara had {a} stickers. She gave {b} stickers to her friend. How many stickers does Sara have left?",
       lambda v: v["a"] - v["b"], 1, a=(10, 30), b=(2, 9)),
    _t("pencil_boxes", "A box holds {a} pencils. How many pencils are in {b} boxes?",
       lambda v: v["a"] * v["b"], 1, a=(2, 6), b=(2, 5)),
    _t("share_cookies", "{c} children share {p} cookies equally. How many cookies does each child get?",
       lambda v: v["p"] // v["c"], 1, c=(2, 5), p=(2, 6)),
    _t("bus_riders", "A bus has {a} passengers. At a stop, {b} people get off and {c} people get on. How many passengers are on the bus now?",
       lambda v: v["a"] - v["b"] + v["c"], 2, a=(10, 30), b=(2, 9), c=(2, 9)),
    _t("baker", "A baker makes {a} cakes each day for {b} days. He sells {c} cakes. How many cakes are left?",
       lambda v: v["a"] * v["b"] - v["c"], 2, a=(2, 6), b=(2, 4), c=(1, 4)),
    _t("savings", "Mia saves {a} dollars every week. After {b} weeks she spends {c} dollars on a book. How many dollars does she have left?",
       lambda v: v["a"] * v["b"] - v["c"], 2, a=(2, 6), b=(2, 4), c=(1, 4)),
    _t("garden_rows", "A garden has {a} rows with {b} flowers in each row. Then {c} more flowers are planted. How many flowers are in the garden?",
       lambda v: v["a"] * v["b"] + v["c"], 2, a=(2, 5), b=(2, 5), c=(2, 9)),
)

TEST_TEMPLATES: tuple[Template, ...] = (
    _t("marbles_add", "Leo has {a} marbles. His sister gives him {b} marbles. How many marbles does Leo have?",
       lambda v: v["a"] + v["b"], 1, a=(2, 20), b=(2, 12)),
    _t("books_shelves", "Each shelf holds {a} books. How many books fit on {b} shelves?",
       lambda v: v["a"] * v["b"], 1, a=(2, 6), b=(2, 5)),
    _t("train_cars", "A train has {a} cars with {b} seats each. {c} seats are empty. How many seats are taken?",
       lambda v: v["a"] * v["b"] - v["c"], 2, a=(2, 5), b=(2, 6), c=(1, 4)),
    _t("fruit_basket", "A basket has {a} oranges and {b} pears. Anna eats {c} oranges. How many fruits are left in the basket?",
       lambda v: v["a"] + v["b"] - v["c"], 2, a=(5, 20), b=(2, 9), c=(1, 4)),
)


def _values(template: Template, rng: random.Random) -> dict[str, int]:
    values = {k: rng.randint(lo, hi) for k, (lo, hi) in template.ranges.items()}
    if template.name == "share_cookies":  # exact division: p is cookies per child here
        values["p"] = values["p"] * values["c"]
    return values


def make_problems(templates: tuple[Template, ...], n: int, seed: int, prefix: str) -> list[Problem]:
    """``n`` distinct problems, templates used in turn, numbers drawn from ``seed``."""
    rng = random.Random(seed)
    seen: set[str] = set()
    problems: list[Problem] = []
    while len(problems) < n:
        template = templates[len(problems) % len(templates)]
        values = _values(template, rng)
        question = template.text.format(**values)
        if question in seen:
            continue
        seen.add(question)
        problems.append(Problem(f"{prefix}{len(problems):04d}", template.name, template.steps,
                                question, template.answer(values)))
    return problems


# Of three phrasings tried on 48 training questions, this one got SmolLM2 the most right answers.
INSTRUCTION = "Write the calculation, then finish with 'The answer is <number>.'"
_ANSWER_RE = re.compile(r"answer is[^0-9\-]{0,20}(-?[\d,]+)", re.IGNORECASE)
_INT_RE = re.compile(r"-?\d[\d,]*")


def prompt_for(problem: Problem) -> str:
    return f"{problem.question}\n{INSTRUCTION}"


def extract_answer(response: str) -> int | None:
    """The exact-integer rule: the number after the last "answer is", else the last integer
    in the response; thousands separators are ignored. ``None`` when there is no integer."""
    hits = _ANSWER_RE.findall(response)
    candidates = hits or _INT_RE.findall(response)
    if not candidates:
        return None
    try:
        return int(candidates[-1].replace(",", ""))
    except ValueError:
        return None


def is_correct(response: str, answer: int) -> bool:
    return extract_answer(response) == answer
