import pytest

from rdpt_core.answers import check_answer


@pytest.mark.parametrize("response, reference, expected", [
    ("So the total is \\boxed{204}.", "204", True),
    ("The answer is 7.", "7", True),
    ("The answer is 8.", "7", False),
    ("We get $\\frac{1}{2}$", "0.5", True),
    ("anything", "", None),
])
def test_check_answer(response, reference, expected):
    assert check_answer(response, reference) is expected


def _in_thread(*args):
    """Run check_answer in a worker thread (as Streamlit runs pages) and hand back its outcome."""
    import threading

    outcome: dict = {}

    def work():
        try:
            outcome["value"] = check_answer(*args)
        except BaseException as e:  # noqa: BLE001 - the test reports what the thread raised
            outcome["error"] = e

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert "error" not in outcome, repr(outcome.get("error"))
    return outcome["value"]


@pytest.mark.parametrize("response, reference, expected", [
    (r"\frac{1}{2}", "0.5", True),
    (r"We get $\frac{1}{3}$", "0.5", False),
    ("So the total is \\boxed{204}.", "204", True),
])
def test_check_answer_outside_the_main_thread(response, reference, expected):
    assert check_answer(response, reference) is expected  # the main thread agrees
    assert _in_thread(response, reference) is expected
