"""Check a response's final answer against a reference (math-verify, with a plain fallback)."""

from __future__ import annotations

import re

_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def check_answer(response: str, reference: str) -> bool | None:
    """True/False when the reference can be compared, None when no reference is given.

    math-verify parses LaTeX and plain answers (``\\boxed{..}``, fractions, sets) and compares
    them symbolically; if it is not installed or cannot parse either side, the last number of
    the response is compared with the reference as a number.
    """
    reference = (reference or "").strip()
    if not reference:
        return None
    try:
        from math_verify import parse, verify

        gold, answer = parse(reference), parse(response)
        if gold and answer:
            return bool(verify(gold, answer))
    except ImportError:  # pragma: no cover - math-verify is in requirements.txt
        pass
    numbers = _LAST_NUMBER.findall(response)
    try:
        return bool(numbers) and float(numbers[-1].replace(",", "")) == float(reference.replace(",", ""))
    except ValueError:
        return False
