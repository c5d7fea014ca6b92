"""Countdown: the proposed expression is evaluated safely, never with eval()."""

from fractions import Fraction

import pytest

from rlvr_gym import Problem
from rlvr_gym.verifiers.countdown import CountdownVerifier, ExpressionError, evaluate

PROBLEM = Problem(id="c", question="", answer="(8 - 2) * 4 + 1",
                  meta={"numbers": [8, 2, 4, 1], "target": 25})


@pytest.mark.parametrize(("response", "status"), [
    ("\\boxed{(8 - 2) * 4 + 1}", "correct"),
    ("\\boxed{1 + 4 * (8 - 2)}", "correct"),            # another valid solution
    ("\\boxed{4 \\times (8 - 2) + 1 = 25}", "correct"),   # LaTeX times, restated target
    ("\\boxed{(8 / 2) * 4 + 1 + 8}", "incorrect"),      # 8 used twice
    ("\\boxed{(8 - 2) * 4}", "incorrect"),              # 1 unused
    ("\\boxed{8 * 4 - 2 - 1}", "incorrect"),            # uses all, wrong value (29)
    ("\\boxed{25}", "incorrect"),                       # restating the target is no solution
    ("\\boxed{__import__('os').system('id')}", "incorrect"),
    ("\\boxed{2 ** 8}", "incorrect"),
    ("no box at all", "no_answer"),
])
def test_verdicts(response, status):
    assert CountdownVerifier().verify(response, PROBLEM).status.value == status


def test_evaluation_is_exact_over_fractions():
    assert evaluate("(1 / 3) * 3") == (Fraction(1), [1, 3, 3])


@pytest.mark.parametrize("text", [
    "1 / 0", "x + 1", "1.5 + 2", "-3 + 5",
    "(" * 240 + "1" + ")" * 240,  # under the length cap, over the parser's nesting limit
    "(" * 300 + "1" + ")" * 300, "1 + " * 200 + "1",  # over the length cap
])
def test_unsafe_or_malformed_expressions_raise_expression_error(text):
    with pytest.raises(ExpressionError):
        evaluate(text)
