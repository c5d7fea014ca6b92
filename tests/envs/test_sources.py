"""Procedural sources: pure functions of (config, index), with answers that check out."""

import subprocess
import sys
from fractions import Fraction

import pytest
import sympy
from sympy.parsing.sympy_parser import (
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

from rlvr_gym.envs import ProceduralConfig, make_source
from rlvr_gym.registration import TASKS as REGISTERED
from rlvr_gym.verifiers.countdown import evaluate

#: every registered procedural math task, so that a new one is checked the day it is added
TASKS = sorted(t.name for t in REGISTERED.values()
               if t.kind == "math" and t.config and issubclass(t.config, ProceduralConfig))
TRANSFORMS = standard_transformations + (implicit_multiplication_application,)


@pytest.mark.parametrize("task", TASKS)
def test_same_config_and_index_give_the_same_problem(task):
    a, b = make_source(task), make_source(task)
    assert [a[i] for i in range(20)] == [b[i] for i in range(20)]


@pytest.mark.parametrize("task", TASKS)
def test_problems_do_not_depend_on_the_process(task):
    code = ("from rlvr_gym.envs import make_source; "
            f"print(repr(make_source({task!r})[41]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == repr(make_source(task)[41])


@pytest.mark.parametrize("task", TASKS)
def test_another_seed_gives_other_problems(task):
    train, held_out = make_source(task, seed=0), make_source(task, seed=1)
    same = sum(train[i].question == held_out[i].question for i in range(50))
    assert same < 10


@pytest.mark.parametrize("task", TASKS)
def test_solutions_are_stepwise_and_end_in_the_boxed_answer(task):
    source = make_source(task)
    for i in range(30):
        p = source[i]
        assert p.solution.endswith(f"\\boxed{{{p.answer}}}")
        assert len(p.steps()) >= 2
        assert p.id == f"{source.name}/0/{i}" and source.index_of(p.id) == i


def test_arithmetic_answers_match_python_evaluation():
    source = make_source("arithmetic", max_operands=5, max_digits=3)
    for i in range(200):
        p = source[i]
        assert int(p.answer) == eval(p.meta["expression"])  # trusted generator text


def test_chain_difficulty_is_the_number_of_operations_and_lines_chain():
    source = make_source("chain", min_steps=3, max_steps=6)
    for i in range(100):
        p = source[i]
        lines = p.steps()[:-1]
        assert len(lines) == p.difficulty and 3 <= p.difficulty <= 6
        for prev, line in zip(lines, lines[1:], strict=False):
            assert line.split()[0] == prev.split()[-1]  # each step starts from the last result


def _parse(text: str) -> sympy.Expr:
    """Generator output such as `3x^2 - 5x` as a sympy expression (independent of the code
    under test)."""
    return parse_expr(text.replace("^", "**"), transformations=TRANSFORMS)


def test_linear_equation_answer_solves_the_equation():
    source = make_source("linear", two_sided_probability=0.5)
    x = sympy.Symbol("x")
    for i in range(200):
        p = source[i]
        lhs, rhs = p.question.removeprefix("Solve for x: ").split(" = ")
        assert sympy.solve(_parse(lhs) - _parse(rhs), x) == [int(p.answer)], p.question


def test_fraction_answers_are_reduced_and_correct():
    source = make_source("fractions")
    for i in range(200):
        p = source[i]
        a, op, b = p.question.removeprefix("Compute ").split(".")[0].split()
        # Operands are parenthesised: "1/2 / 1/3" would read as ((1/2)/1)/3.
        assert a[0] + a[-1] == b[0] + b[-1] == "()"
        a, b = a.strip("()"), b.strip("()")
        expected = {"+": Fraction(a) + Fraction(b), "-": Fraction(a) - Fraction(b),
                    "*": Fraction(a) * Fraction(b), "/": Fraction(a) / Fraction(b)}[op]
        sign = -1 if p.answer.startswith("-") else 1
        if "frac" in p.answer:
            num, den = p.answer.lstrip("-").removeprefix("\\frac{").rstrip("}").split("}{")
            got = sign * Fraction(int(num), int(den))
            assert Fraction(int(num), int(den)).denominator == int(den)  # lowest terms
        else:
            got = Fraction(int(p.answer))
        assert got == expected


def test_polynomial_roots_are_the_roots():
    source = make_source("roots", max_degree=4)
    x = sympy.Symbol("x")
    for i in range(100):
        p = source[i]
        roots = [int(r) for r in p.answer.split(", ")]
        assert roots == sorted(set(roots)) == p.meta["roots"]
        poly = _parse(p.question.removeprefix("Find all real roots of ").removesuffix(" = 0."))
        assert sorted(sympy.solve(poly, x)) == roots, p.question


def test_countdown_reference_reaches_the_target_with_all_numbers():
    source = make_source("countdown", max_numbers=5)
    for i in range(200):
        p = source[i]
        value, used = evaluate(p.answer)
        assert value == p.meta["target"] and sorted(used) == sorted(p.meta["numbers"])


@pytest.mark.parametrize(("task", "bad", "message"), [
    ("arithmetic", {"min_digits": 3, "max_digits": 2}, "min_digits"),
    ("arithmetic", {"operators": "^"}, "operators"),
    ("chain", {"max_steps": 0}, "min_steps"),
    ("roots", {"max_degree": 9}, "max_degree"),
    ("countdown", {"min_numbers": 1}, "min_numbers"),
    ("fractions", {"operators": ""}, "operators"),
    ("arithmetic", {"size": 0}, "size"),
    ("arithmetic", {"digits": 3}, "valid"),
])
def test_bad_configs_are_value_errors_that_say_what_to_fix(task, bad, message):
    with pytest.raises(ValueError, match=message):
        make_source(task, **bad)


def test_index_out_of_range_and_foreign_ids_are_rejected():
    source = make_source("arithmetic", size=10)
    with pytest.raises(IndexError):
        source[10]
    with pytest.raises(KeyError, match="arithmetic/0/<index>"):
        source.index_of("chain/0/3")
