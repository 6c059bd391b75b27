"""Check a response's final answer against a reference (math-verify, with a plain fallback)."""

from __future__ import annotations

import os
import re
import threading

_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")

#: seconds math-verify may spend on one parse / one comparison, where it can enforce that
MATH_VERIFY_TIMEOUT_S = 5


def _timeout_s() -> int | None:
    """math-verify's timeouts use ``signal.alarm``, which works only in the main thread of a POSIX
    process (anywhere else it raises ``ValueError``; on Windows it forks a process per call). So
    the timeout applies in the main thread only; in a worker thread (Streamlit runs every page in
    one) there is *no* bound on a runaway parse or comparison: math-verify runs to completion."""
    on_main = threading.current_thread() is threading.main_thread()
    return MATH_VERIFY_TIMEOUT_S if on_main and os.name == "posix" else None


def check_answer(response: str, reference: str) -> bool | None:
    """True/False when the reference can be compared, None when no reference is given.

    math-verify parses LaTeX and plain answers (``\\boxed{..}``, fractions, sets) and compares
    them symbolically; if it is not installed or cannot parse either side, the last number of
    the response is compared with the reference as a number. Safe in any thread; each parse and
    comparison is bounded by :data:`MATH_VERIFY_TIMEOUT_S` in the main thread only (see
    :func:`_timeout_s`).
    """
    reference = (reference or "").strip()
    if not reference:
        return None
    try:
        from math_verify import parse, verify

        limit = _timeout_s()
        # ``None`` is math-verify's documented "no timeout, no signal" (its hint says ``int``)
        gold = parse(reference, parsing_timeout=limit)
        answer = parse(response, parsing_timeout=limit)
        if gold and answer:
            return bool(verify(gold, answer, timeout_seconds=limit))
    except ImportError:  # pragma: no cover - math-verify is in requirements.txt
        pass
    numbers = _LAST_NUMBER.findall(response)
    try:
        return bool(numbers) and float(numbers[-1].replace(",", "")) == float(reference.replace(",", ""))
    except ValueError:
        return False
