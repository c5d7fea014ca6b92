"""The direct parser of common answer shapes builds what the LaTeX grammar builds."""

from __future__ import annotations

import random

import pytest
import sympy

from rlvr_gym.verifiers.symbolic import _latex, direct, parse

_POINT = {sympy.Symbol("x"): sympy.Rational(37, 100), sympy.Symbol("y"): sympy.Rational(-113, 100)}


def _atom(rng: random.Random, depth: int) -> str:
    u = rng.random()
    if depth > 2 or u < 0.3:
        return rng.choice([str(rng.randint(0, 20)), "x", "y", "\\pi", "e", "i",
                           f"{rng.randint(0, 9)}.{rng.randint(0, 99)}"])
    if u < 0.45:
        return f"\\frac{{{_expr(rng, depth + 1)}}}{{{_expr(rng, depth + 1)}}}"
    if u < 0.55:
        return f"\\sqrt{{{_expr(rng, depth + 1)}}}"
    if u < 0.6:
        return f"\\sqrt[3]{{{_expr(rng, depth + 1)}}}"
    if u < 0.7:
        return f"({_expr(rng, depth + 1)})"
    if u < 0.8:
        return f"{_atom(rng, depth + 1)}^{{{_expr(rng, depth + 1)}}}"
    if u < 0.85:
        return f"{_atom(rng, depth + 1)}^{rng.randint(2, 9)}"
    return str(rng.randint(2, 9)) + rng.choice(["x", "\\sqrt{2}", "\\pi", "y"])


def _expr(rng: random.Random, depth: int = 0) -> str:
    text = _atom(rng, depth)
    for _ in range(rng.randint(0, 2)):
        text += rng.choice([" + ", " - ", " \\cdot ", " ", " \\times ", "/"]) + _atom(rng, depth)
    return "-" + text if rng.random() < 0.1 else text


def _difference(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr | None:
    """|a - b| at a generic point, or None where it does not evaluate to a finite number."""
    difference = sympy.N((a - b).xreplace(_POINT), 30)
    return abs(difference) if difference.is_number and difference.is_finite else None


def test_direct_parses_agree_with_the_grammar_on_generated_expressions() -> None:
    rng = random.Random(0)
    checked = 0
    while checked < 120:
        text = _expr(rng)
        built = direct(text)
        if built is None:
            continue  # outside the subset: the grammar decides
        try:
            reference = _latex(text)
        except Exception:  # noqa: BLE001  (the grammar's own syntax errors)
            continue
        difference = _difference(built, reference)
        if built != reference and difference is None:
            continue  # 0 to a complex power, a pole at the point: nothing to compare
        assert built == reference or difference < 1e-20, (text, built, reference)
        checked += 1


@pytest.mark.parametrize(("text", "expected"), [
    ("2\\sqrt{3}", 2 * sympy.sqrt(3)),
    ("\\frac{1+\\sqrt{5}}{2}", (1 + sympy.sqrt(5)) / 2),
    ("\\frac12", sympy.Rational(1, 2)),
    ("3.5", sympy.Rational(7, 2)),
    ("\\pm 2", sympy.FiniteSet(2, -2)),
    ("1 \\pm \\sqrt{2}", sympy.FiniteSet(1 + sympy.sqrt(2), 1 - sympy.sqrt(2))),
    ("2, 3, 5", sympy.FiniteSet(2, 3, 5)),
    ("\\sqrt[3]{2}", sympy.root(2, 3)),
    ("e^{2}", sympy.exp(2)),
    ("2+3i", 2 + 3 * sympy.I),
])
def test_direct_builds_common_shapes(text: str, expected: object) -> None:
    assert direct(text) == expected


@pytest.mark.parametrize("text", [
    "(1, 2)", "f(x)", "\\frac{a}{b}^{2}", "1/2x", "x^23", "x \\geq 5", "\\{1, 2\\}", "30^\\circ",
    "50\\%", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", "E", "\\sin x", "1 2",
])
def test_shapes_outside_the_subset_are_left_to_the_grammar(text: str) -> None:
    assert direct(text) is None


def test_pm_inside_a_fraction_is_the_set_of_both_values() -> None:
    assert parse("\\frac{-1 \\pm \\sqrt{5}}{2}") == sympy.FiniteSet(
        (-1 + sympy.sqrt(5)) / 2, (-1 - sympy.sqrt(5)) / 2)
