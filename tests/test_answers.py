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
