"""Multi-step integer word problems, solver-written teacher-style reasoning, the strict answer rule.

The "steps" lineage (docs/lab.md). A problem follows one quantity (a person's apples, shells…)
through 3–6 arithmetic operations: gain, lose, buy packs (two operations: a product, then a
sum), double / triple, keep one of k equal shares, and optionally a last conversion (worth in
dollars) or comparison (someone has d more).

Training and test problems use *disjoint phrasings* of every operation and disjoint stories
(names, items): a test question's wording was never seen in training, only its kinds of steps.
Numbers stay small (every intermediate value ≤ 120): a 135M model must be able to do each step.

The teacher style, written by the solver, is one a base model does not produce on its own::

    Plan: track Mia's apples one event at a time, then check.
    Start: Mia has 12 apples.
    Step 1 → she gains 5, so 12 + 5 = 17 apples.
    Step 2 → 3 packs × 4 = 12 apples.
    Step 3 → 17 + 12 = 29 apples.
    Now the question asks for dollars, not apples.
    Step 4 → each is worth 2 dollars, so 29 × 2 = 58 dollars.
    Check: 58 ÷ 2 = 29, which matches step 3.
    The answer is 58.

:func:`teacher_style` tells such a sentence from others by its markers alone (ground truth that
needs no model); :func:`stated_answer` is the strict answer rule.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

# Operation phrasings: {N} name, {P} pronoun ("she"), {b}, {k} numbers, {I} item (plural).
# Each kind has training phrasings and *different* test phrasings. The training phrasings use the
# words a test phrasing rests on ("three times as many", "trades", "sells for") in other sentences:
# a first teacher trained without them solved 13 of 100 test questions, mostly misreading them.
PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "gain": {
        "train": ("{N} buys {b} more {I}.", "{N} finds {b} more {I}.", "A friend gives {N} {b} {I}.",
                  "{N} gets {b} more {I}.", "{N} picks up {b} more {I}.", "{N} wins {b} {I} in a raffle.",
                  "{N} is handed {b} extra {I}.", "{N} earns {b} more {I} by helping out."),
        "test": ("{N} wins {b} extra {I} at the fair.", "A neighbour hands {N} another {b} {I}."),
    },
    "lose": {
        "train": ("{N} gives {b} {I} to a friend.", "{N} sells {b} of the {I}.", "{N} loses {b} {I}.",
                  "{N} uses {b} of the {I}.", "{N} drops {b} {I}.", "{N} trades {b} {I} for a snack.",
                  "{b} {I} break, so {N} throws them away.", "{N} hands {b} {I} to a classmate."),
        "test": ("{N} trades away {b} {I}.", "{b} of the {I} break, and {N} throws them out."),
    },
    "packs": {
        "train": ("{N} buys {k} packs with {b} {I} in each pack.", "{N} gets {k} boxes of {b} {I} each.",
                  "{N} receives {k} bags, and each bag has {b} {I}.", "{N} orders {k} crates of {b} {I}.",
                  "{N} picks {k} jars with {b} {I} apiece."),
        "test": ("{N} collects {k} bags holding {b} {I} apiece.", "{N} is given {k} crates, each with {b} {I}."),
    },
    "times": {
        "train": ("The number of {I} {N} has {times_word}.", "{N}'s pile of {I} {times_word}.",
                  "{N} now has {times_adj} as many {I} as before.",
                  "Thanks to a trade, {N} holds {times_adj} as many {I} as a moment ago."),
        "test": ("After a lucky week, {N} ends up with {times_adj} as many {I}.",),
    },
    "share": {
        "train": ("{N} splits the {I} equally into {k} bags and keeps one bag.",
                  "{N} shares the {I} equally with friends so that {k} people get the same, and keeps one part.",
                  "{N} divides the {I} evenly into {k} piles and keeps one pile.",
                  "{N} and friends, {k} people in all, share the {I} evenly; {N} keeps one share."),
        "test": ("{N} divides the {I} evenly among {k} people, {P} included, and keeps {P_obj} share.",),
    },
}
FINAL_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "plain": {
        "train": ("How many {I} does {N} have now?", "How many {I} does {N} have at the end?",
                  "What number of {I} does {N} end up with?"),
        "test": ("What is the number of {I} {N} ends with?",),
    },
    "worth": {
        "train": ("Each of the {I} is worth {p} dollars. How many dollars are {N}'s {I} worth?",
                  "{N} can sell each of the {I} for {p} dollars. How many dollars would all of them bring?"),
        "test": ("One of the {I} sells for {p} dollars. What are all of {N}'s {I} worth, in dollars?",),
    },
    "more": {
        "train": ("{O} has {d} more {I} than {N}. How many {I} does {O} have?",
                  "{O} owns {d} more {I} than {N}. What number of {I} does {O} own?"),
        "test": ("{O} owns {d} {I} more than {N} does. What is {O}'s number of {I}?",),
    },
}
@dataclass(frozen=True)
class Story:
    names: tuple[tuple[str, str], ...]  # (name, pronoun)
    others: tuple[str, ...]  # the person compared with, in "more" questions
    items: tuple[str, ...]


STORIES = {
    "train": Story(names=(("Mia", "she"), ("Tom", "he"), ("Ava", "she"), ("Sam", "he"), ("Lily", "she"),
                          ("Ben", "he")),
                   others=("Noah", "Emma", "Jack"),
                   items=("apples", "stickers", "marbles", "pencils", "coins", "cookies")),
    "test": Story(names=(("Zoe", "she"), ("Leo", "he"), ("Ivy", "she"), ("Max", "he")),
                  others=("Ruby", "Owen"),
                  items=("shells", "cards", "beads", "stamps")),
}
MAX_VALUE = 120
INSTRUCTION = "Solve it step by step. End with 'The answer is <number>.'"
_OBJECT = {"she": "her", "he": "his"}


@dataclass(frozen=True)
class Operation:
    kind: str  # gain, lose, packs, times, share, worth, more
    numbers: tuple[int, ...]  # (b,), (k, b), (k,), (k,), (k,), (p,), (d,)
    sentence: str  # the question's sentence for it


@dataclass(frozen=True)
class Problem:
    question_id: str
    split: str  # "train" or "test": which phrasings and stories
    question: str
    answer: int
    steps: int  # arithmetic steps of the solution (3–6)
    solution: str  # the teacher-style reasoning, ending "The answer is N."
    kinds: tuple[str, ...] = field(default=())

    @property
    def prompt(self) -> str:
        return prompt_for(self.question)


def prompt_for(question: str) -> str:
    return f"{question}\n{INSTRUCTION}"


def _steps_of(kind: str) -> int:
    return 2 if kind == "packs" else 1


def _pick_operation(rng: random.Random, value: int, allowed: list[str]) -> tuple[str, tuple[int, ...], int] | None:
    """One operation applicable to ``value``: (kind, numbers, new value), or None."""
    kind = rng.choice(allowed)
    if kind == "gain":
        b = rng.randint(2, 15)
        return kind, (b,), value + b
    if kind == "lose" and value > 3:
        b = rng.randint(2, min(12, value - 1))
        return kind, (b,), value - b
    if kind == "packs":
        k, b = rng.randint(2, 4), rng.randint(2, 6)
        return kind, (k, b), value + k * b
    if kind == "times" and value <= 40:
        k = rng.choice((2, 3)) if value <= 25 else 2
        return kind, (k,), value * k
    if kind == "share":
        divisors = [k for k in (2, 3, 4, 5) if value % k == 0 and value // k >= 2]
        if divisors:
            k = rng.choice(divisors)
            return kind, (k,), value // k
    return None


def _render(phrase: str, name: str, pronoun: str, item: str, numbers: dict[str, int | str]) -> str:
    text = phrase.format(N=name, P=pronoun, P_obj=_OBJECT[pronoun], I=item, **numbers)
    return text[0].upper() + text[1:]


def _numbers(kind: str, values: tuple[int, ...]) -> dict[str, int | str]:
    if kind == "packs":
        return {"k": values[0], "b": values[1]}
    if kind == "times":
        k = values[0]
        return {"k": k, "times_word": {2: "doubles", 3: "triples"}[k], "times_adj": {2: "twice", 3: "three times"}[k]}
    if kind in ("share",):
        return {"k": values[0]}
    return {"b": values[0]}


def _solution(name: str, pronoun: str, item: str, start: int, ops: list[tuple[str, tuple[int, ...]]],
              final: tuple[str, int] | None) -> tuple[list[str], int, int]:
    """Teacher-style sentences, the answer and the number of arithmetic steps."""
    n_steps = sum(_steps_of(k) for k, _ in ops) + (1 if final else 0)
    lines = [f"Plan: track {name}'s {item} one event at a time, then check.",
             f"Start: {name} has {start} {item}."]
    value, step = start, 0
    last_check, checked_step = "", 0  # the inverse of the last operation, and the step it returns to

    def add(text: str) -> None:
        nonlocal step
        step += 1
        lines.append(f"Step {step} → {text}")

    for kind, nums in ops:
        before, checked_step = value, step
        if kind == "gain":
            value += nums[0]
            add(f"{pronoun} gains {nums[0]}, so {before} + {nums[0]} = {value} {item}.")
            last_check = f"{value} − {nums[0]} = {before}"
        elif kind == "lose":
            value -= nums[0]
            add(f"{pronoun} loses {nums[0]}, so {before} − {nums[0]} = {value} {item}.")
            last_check = f"{value} + {nums[0]} = {before}"
        elif kind == "packs":
            k, b = nums
            add(f"{k} packs × {b} = {k * b} {item}.")
            value += k * b
            add(f"{before} + {k * b} = {value} {item}.")
            last_check = f"{value} − {k * b} = {before}"
        elif kind == "times":
            value *= nums[0]
            add(f"{'twice' if nums[0] == 2 else 'three times'} as many, so {before} × {nums[0]} = {value} {item}.")
            last_check = f"{value} ÷ {nums[0]} = {before}"
        elif kind == "share":
            value //= nums[0]
            add(f"one of {nums[0]} equal shares, so {before} ÷ {nums[0]} = {value} {item}.")
            last_check = f"{value} × {nums[0]} = {before}"
    if final is not None:
        kind, number = final
        before, checked_step = value, step
        if kind == "worth":
            lines.append(f"Now the question asks for dollars, not {item}.")
            value *= number
            add(f"each is worth {number} dollars, so {before} × {number} = {value} dollars.")
            last_check = f"{value} ÷ {number} = {before}"
        else:
            lines.append(f"Now the question asks about the other person, not {name}.")
            value += number
            add(f"{number} more than {name}, so {before} + {number} = {value} {item}.")
            last_check = f"{value} − {number} = {before}"
    lines.append(f"Check: {last_check}, which matches step {checked_step}." if checked_step
                 else f"Check: {last_check}, which matches the start.")
    lines.append(f"The answer is {value}.")
    return lines, value, n_steps


def make_problem(rng: random.Random, split: str, question_id: str) -> Problem:
    """One problem of ``split`` ("train" / "test" phrasings and stories), 3–6 steps."""
    story = STORIES[split]
    name, pronoun = rng.choice(story.names)
    other = rng.choice(story.others)
    item = rng.choice(story.items)
    while True:
        target = rng.randint(3, 6)
        final_kind = rng.choices(("plain", "worth", "more"), weights=(2, 1, 1))[0]
        budget = target - (0 if final_kind == "plain" else 1)
        start = rng.randint(5, 25)
        value, steps = start, 0
        ops: list[tuple[str, tuple[int, ...]]] = []
        while steps < budget:
            allowed = [k for k in PHRASES if _steps_of(k) <= budget - steps]
            picked = _pick_operation(rng, value, allowed)
            if picked is None or (ops and picked[0] == ops[-1][0]):
                continue
            kind, nums, value = picked
            ops.append((kind, nums))
            steps += _steps_of(kind)
        final: tuple[str, int] | None = None
        if final_kind == "worth" and value <= 30:
            final = ("worth", rng.randint(2, 4))
        elif final_kind == "more":
            final = ("more", rng.randint(2, 12))
        elif final_kind != "plain":
            continue  # too large a value to convert: draw again
        lines, answer, n_steps = _solution(name, pronoun, item, start, ops, final)
        values_ok = answer <= MAX_VALUE and all(int(v) <= MAX_VALUE for v in re.findall(r"\d+", " ".join(lines)))
        if values_ok and 3 <= n_steps <= 6:
            break
    sentences = [f"{name} has {start} {item}."]
    for kind, nums in ops:
        sentences.append(_render(rng.choice(PHRASES[kind][split]), name, pronoun, item, _numbers(kind, nums)))
    final_phrase = rng.choice(FINAL_PHRASES[final[0] if final else "plain"][split])
    number_key = {"worth": "p", "more": "d"}
    extra: dict[str, int | str] = {number_key[final[0]]: final[1]} if final else {}
    sentences.append(_render(final_phrase, name, pronoun, item, {"O": other, **extra}))
    kinds = tuple(k for k, _ in ops) + ((final[0],) if final else ())
    return Problem(question_id, split, " ".join(sentences), answer, n_steps, " ".join(lines), kinds)


def make_problems(split: str, n: int, seed: int, prefix: str, exclude: set[str] | None = None) -> list[Problem]:
    """``n`` distinct problems of ``split`` from ``seed``; questions in ``exclude`` are skipped."""
    rng = random.Random(seed)
    seen = set(exclude or ())
    out: list[Problem] = []
    while len(out) < n:
        problem = make_problem(rng, split, f"{prefix}{len(out):04d}")
        if problem.question not in seen:
            seen.add(problem.question)
            out.append(problem)
    return out


# ---- the strict answer rule ---------------------------------------------------------------

_FINAL_RE = re.compile(r"the answer is\s+(-?\d[\d,]*)\s*\.?\s*$", re.IGNORECASE)


def stated_answer(response: str) -> int | None:
    """The integer N when the response *ends* with "The answer is N" (optional full stop);
    else None. No fallback to the last number: an answer must be stated, and a response cut at
    the token limit does not end with a statement."""
    match = _FINAL_RE.search(response.strip())
    if match is None:
        return None
    digits = match.group(1).replace(",", "")
    return int(digits) if re.fullmatch(r"-?\d+", digits) else None


def is_correct(response: str, answer: int) -> bool:
    return stated_answer(response) == answer


# ---- ground truth: the teacher style --------------------------------------------------------

TEACHER_STYLE_RE = re.compile(r"^\s*(?:Plan:|Start:|Step \d+ →|Check:|Now the question asks\b)")
STYLE_RULE = ("a sentence is teacher-style when it starts with 'Plan:', 'Start:', 'Step <i> →', "
              "'Check:' or 'Now the question asks' (the final 'The answer is N.' is asked for by every "
              "prompt, so it is not a teacher marker)")


def teacher_style(sentence: str) -> bool:
    """Whether a sentence carries a teacher-style marker (:data:`STYLE_RULE`)."""
    return TEACHER_STYLE_RE.match(sentence) is not None


# ---- a second teacher's style: the same solutions, told as a story (issue 15) ----------------

NARRATIVE_STYLE_RE = re.compile(r"^\s*(?:First of all,|After that,|Following that,|To double-check,|"
                                r"However, the question\b)")
# the two-teacher lineage's known origins: teacher name → the style its sentences open with
TEACHER_STYLES = {"steps": TEACHER_STYLE_RE.pattern, "narrative": NARRATIVE_STYLE_RE.pattern}
NARRATIVE_RULE = ("a sentence is narrative-style when it starts with 'First of all,', 'After that,', "
                  "'Following that,', 'To double-check,' or 'However, the question' (none of which "
                  "starts a steps-style sentence)")
_SOLUTION_SENTENCE = re.compile(r"(?:^| )(?=Plan:|Start:|Step \d+ →|Check:|Now the question asks|The answer is)")


def narrative_style(sentence: str) -> bool:
    """Whether a sentence carries a narrative-style marker (:data:`NARRATIVE_RULE`)."""
    return NARRATIVE_STYLE_RE.match(sentence) is not None


def narrative(solution: str) -> str:
    """A steps-style solution retold in the narrative style: the same facts, equations and
    answer, every sentence but the last opening with a narrative marker."""
    told = []
    for k, sentence in enumerate(s for s in _SOLUTION_SENTENCE.split(solution) if s):
        sentence = sentence.strip()
        if sentence.startswith("Plan:"):
            continue  # the narrative teacher does not announce a plan
        if sentence.startswith("Start:"):
            told.append("First of all, " + sentence.removeprefix("Start: "))
        elif sentence.startswith("Step "):
            opener = ("After that, ", "Following that, ")[k % 2]
            told.append(opener + sentence.split(" → ", 1)[1])
        elif sentence.startswith("Now the question asks"):
            told.append("However, the question asks" + sentence.removeprefix("Now the question asks"))
        elif sentence.startswith("Check:"):
            check = re.sub(r", which matches step \d+\.$", ", which is what we had before.", sentence.removeprefix("Check: "))
            told.append("To double-check, " + check.replace(", which matches the start.", ", which is where we began."))
        else:
            told.append(sentence)
    return " ".join(told)


Checker = Callable[[str, int], bool]


# "a op b = c" as the solutions write it (× ÷ −), and the ASCII forms a model may use instead
_EQUATION_RE = re.compile(r"(\d+)\s*([+\-−×x*÷/])\s*(\d+)\s*=\s*(\d+)")
_OPERATIONS = {"+": int.__add__, "-": int.__sub__, "−": int.__sub__, "×": int.__mul__, "x": int.__mul__,
               "*": int.__mul__, "÷": lambda a, b: a / b if b else None, "/": lambda a, b: a / b if b else None}


def equations(response: str) -> list[bool]:
    """Whether each integer equation ``a op b = c`` written in ``response`` holds, in order."""
    return [_OPERATIONS[op](int(a), int(b)) == int(c) for a, op, b, c in _EQUATION_RE.findall(response)]
