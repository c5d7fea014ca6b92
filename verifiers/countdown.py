"""Countdown: reach a target with given numbers. Many answers are right, so the verifier
evaluates the proposed expression instead of comparing it with the reference.

The expression is parsed with `ast` and evaluated over exact fractions with only + - * / and
parentheses: model text is never passed to `eval`.
"""

from __future__ import annotations

import ast
import time
from collections import Counter
from fractions import Fraction

from rlvr_gym.types import Problem, Status, Verdict
from rlvr_gym.verifiers.extract import last_boxed

MAX_EXPRESSION_CHARS = 500

_OPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


class ExpressionError(ValueError):
    """The text is not an arithmetic expression over integers with + - * / and parentheses."""


def evaluate(expression: str) -> tuple[Fraction, list[int]]:
    """Exact value of an arithmetic expression and the integer literals it uses, in order.

    Raises `ExpressionError` for anything else (names, calls, powers, floats, division by 0).
    """
    text = expression.replace("\\times", "*").replace("\\cdot", "*").replace("\\div", "/")
    text = text.replace("×", "*").replace("÷", "/").replace("−", "-").strip().strip("$")
    if "=" in text:  # "3 + 4 = 7": the expression is the left-hand side
        text = text.split("=", 1)[0]
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise ExpressionError(f"not an arithmetic expression: {exc}") from exc
    numbers: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ExpressionError("division by zero")
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            numbers.append(node.value)
            return Fraction(node.value)
        raise ExpressionError(f"only integers, + - * / and parentheses are allowed, got "
                              f"{type(node).__name__}")

    return walk(tree), numbers


class CountdownVerifier:
    """Correct when the boxed expression uses each given number exactly once and equals the
    target. The numbers and target come from `problem.meta["numbers"]` and `["target"]`."""

    def verify(self, response: str, problem: Problem) -> Verdict:
        start = time.perf_counter()

        def verdict(status: Status, reason: str, extracted: str | None = None) -> Verdict:
            score = 1.0 if status is Status.CORRECT else 0.0
            return Verdict(status, score, extracted, reason, time.perf_counter() - start)

        expression = last_boxed(response)
        if expression is None:
            return verdict(Status.NO_ANSWER, "no \\boxed{} expression found")
        try:
            value, used = evaluate(expression)
        except ExpressionError as exc:
            return verdict(Status.INCORRECT, str(exc), expression)
        numbers, target = problem.meta["numbers"], problem.meta["target"]
        if Counter(used) != Counter(numbers):
            return verdict(Status.INCORRECT,
                           f"uses {sorted(used)} but must use each of {sorted(numbers)} once",
                           expression)
        if value != target:
            return verdict(Status.INCORRECT, f"evaluates to {value}, not {target}", expression)
        return verdict(Status.CORRECT, f"reaches {target}", expression)
