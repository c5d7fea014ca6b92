"""Procedural math task sources: each problem is a pure function of (config, index).

A source is indexable (`source[i] -> Problem`) and sized. The same config and index always
give the same problem, on any machine and in any process, so data is reproducible and
shardable and nothing is downloaded. Held-out problems come from the same source with
another `seed`. Every problem carries a step-wise solution (one step per line) that ends in
`\\boxed{answer}`: SEELE uses its prefixes as hints and IB-TPO branches at its line breaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import numpy as np

from rlvr_gym.types import Problem


class TaskSource(Protocol):
    """A finite, indexable collection of problems. `name` prefixes every problem id."""

    name: str

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Problem: ...

    def index_of(self, problem_id: str) -> int:
        """Index of the problem with this id; KeyError if there is none."""
        ...


class ListSource:
    """Base of the finite sources held as a list (local files, hand-written sets): subclasses
    fill `problems` and call `_index_problems()` once."""

    name = "list"
    problems: list[Problem]

    def _index_problems(self, origin: str | None = None) -> None:
        """Index the ids; ValueError naming `origin` (default the source's name) and both
        rows when two problems share an id (pinning by id would pick one silently)."""
        self._ids: dict[str, int] = {}
        for i, p in enumerate(self.problems):
            if p.id in self._ids:
                first = self.problems[self._ids[p.id]]
                rows = [q.meta.get("row", j) for j, q in ((self._ids[p.id], first), (i, p))]
                raise ValueError(f"{origin or self.name}: rows {rows[0]} and {rows[1]} have "
                                 f"the same id {p.id!r}; ids must be unique (fix the id field, "
                                 "or set id_field=None to number the rows)")
            self._ids[p.id] = i

    def __len__(self) -> int:
        return len(self.problems)

    def __getitem__(self, index: int) -> Problem:
        return self.problems[index]

    def index_of(self, problem_id: str) -> int:
        if problem_id not in self._ids:
            raise KeyError(f"no problem with id {problem_id!r} in source {self.name!r} (its ids "
                           f"look like {self.problems[0].id!r})")
        return self._ids[problem_id]

    def characters(self) -> set[str]:
        """Every character used in the questions (the env's text spaces need them)."""
        return set().union(*(set(p.question) for p in self.problems))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class ProceduralConfig:
    """Fields shared by every procedural source."""

    seed: int = 0
    """Dataset seed: a different seed gives a disjoint-in-expectation problem set (use 1 for
    held-out evaluation when training on 0)."""
    size: int = 1_000_000
    """Number of distinct indices; `reset()` without options draws an index below it."""

    def validate(self) -> None:
        _check(self.size > 0, f"size must be positive, got {self.size}")


class ProceduralSource:
    """Base of the generators: turns (config, index) into an RNG and an id."""

    name = "procedural"

    def __init__(self, config: ProceduralConfig) -> None:
        config.validate()
        self.config = config

    def __len__(self) -> int:
        return self.config.size

    def __getitem__(self, index: int) -> Problem:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} outside 0..{len(self) - 1} of source {self.name!r}")
        rng = np.random.default_rng([self.config.seed, index])
        return self.generate(rng, f"{self.name}/{self.config.seed}/{index}")

    def index_of(self, problem_id: str) -> int:
        """Inverse of the id scheme `name/seed/index`."""
        name, seed, index = (problem_id.split("/") + ["", "", ""])[:3]
        if name != self.name or seed != str(self.config.seed) or not index.isdigit():
            raise KeyError(f"{problem_id!r} is not an id of this source; ids look like "
                           f"'{self.name}/{self.config.seed}/<index>'")
        return int(index)

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        raise NotImplementedError


def _number(rng: np.random.Generator, digits: int) -> int:
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return int(rng.integers(low, 10**digits))


def _apply(op: str, a: int, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b}[op]


# --- Arithmetic ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ArithmeticConfig(ProceduralConfig):
    """Integer expressions such as `12 + 7 * 3`; difficulty = digits and number of operands."""

    min_digits: int = 1
    """Fewest digits of an operand."""
    max_digits: int = 2
    """Most digits of an operand."""
    min_operands: int = 2
    """Fewest operands in the expression."""
    max_operands: int = 3
    """Most operands in the expression."""
    operators: str = "+-*"
    """Operators to draw from (any of "+", "-", "*")."""

    def validate(self) -> None:
        super().validate()
        _check(1 <= self.min_digits <= self.max_digits <= 18,
               "need 1 <= min_digits <= max_digits <= 18")
        _check(2 <= self.min_operands <= self.max_operands <= 12,
               "need 2 <= min_operands <= max_operands <= 12")
        _check(bool(self.operators) and set(self.operators) <= set("+-*"),
               f"operators must be a non-empty subset of '+-*', got {self.operators!r}")


class ArithmeticSource(ProceduralSource):
    """`a op b op c ...` with the usual precedence; the solution does one operation per line."""

    name = "arithmetic"
    config: ArithmeticConfig

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        c = self.config
        n = int(rng.integers(c.min_operands, c.max_operands + 1))
        digits = [int(rng.integers(c.min_digits, c.max_digits + 1)) for _ in range(n)]
        values: list[int] = [_number(rng, d) for d in digits]
        ops = [c.operators[int(rng.integers(len(c.operators)))] for _ in range(n - 1)]
        question = " ".join(
            [str(values[0])] + [f"{op} {v}" for op, v in zip(ops, values[1:], strict=True)]
        )
        steps = []
        # Multiplications first, left to right, then additions and subtractions.
        for precedence in ("*", "+-"):
            i = 0
            while i < len(ops):
                if ops[i] in precedence:
                    a, b = values[i], values[i + 1]
                    result = _apply(ops[i], a, b)
                    steps.append(f"{a} {ops[i]} {b} = {result}")
                    values[i : i + 2] = [result]
                    del ops[i]
                else:
                    i += 1
        answer = str(values[0])
        return Problem(
            id=problem_id,
            question=f"Compute {question}.",
            answer=answer,
            solution="\n".join(steps + [f"\\boxed{{{answer}}}"]),
            difficulty=float(sum(digits) + n),
            meta={"expression": question},
        )


# --- Multi-step chains ---------------------------------------------------------------------


@dataclass(frozen=True)
class ChainConfig(ProceduralConfig):
    """A start value and k operations applied in order; difficulty = k."""

    min_steps: int = 2
    """Fewest operations in the chain."""
    max_steps: int = 4
    """Most operations in the chain."""
    max_operand: int = 9
    """Operands are drawn from 1..max_operand (multipliers from 2..max_operand)."""
    operators: str = "+-*"
    """Operators to draw from (any of "+", "-", "*")."""

    def validate(self) -> None:
        super().validate()
        _check(1 <= self.min_steps <= self.max_steps <= 64,
               "need 1 <= min_steps <= max_steps <= 64")
        _check(self.max_operand >= 2, "max_operand must be at least 2")
        _check(bool(self.operators) and set(self.operators) <= set("+-*"),
               f"operators must be a non-empty subset of '+-*', got {self.operators!r}")


class ChainSource(ProceduralSource):
    """"Start with 5. Add 3, then multiply by 4." Solution: one `a op b = c` line per operation."""

    name = "chain"
    config: ChainConfig
    _WORDS = {"+": "add {}", "-": "subtract {}", "*": "multiply by {}"}

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        c = self.config
        k = int(rng.integers(c.min_steps, c.max_steps + 1))
        value = int(rng.integers(1, c.max_operand + 1))
        start, words, steps = value, [], []
        for _ in range(k):
            op = c.operators[int(rng.integers(len(c.operators)))]
            operand = int(rng.integers(2 if op == "*" else 1, c.max_operand + 1))
            result = _apply(op, value, operand)
            words.append(self._WORDS[op].format(operand))
            steps.append(f"{value} {op} {operand} = {result}")
            value = result
        question = f"Start with {start}. Then " + ", then ".join(words) + ". What is the result?"
        return Problem(
            id=problem_id,
            question=question,
            answer=str(value),
            solution="\n".join(steps + [f"\\boxed{{{value}}}"]),
            difficulty=float(k),
            meta={"steps": k},
        )


# --- Linear equations ----------------------------------------------------------------------


@dataclass(frozen=True)
class LinearEquationConfig(ProceduralConfig):
    """`a x + b = c` (or `a x + b = c x + d` when two_sided) with an integer solution."""

    max_coefficient: int = 9
    """Largest absolute value of a coefficient."""
    max_solution: int = 20
    """Largest absolute value of the solution."""
    two_sided_probability: float = 0.3
    """Share of problems with x on both sides (harder)."""

    def validate(self) -> None:
        super().validate()
        _check(self.max_coefficient >= 2, "max_coefficient must be at least 2")
        _check(self.max_solution >= 1, "max_solution must be at least 1")
        _check(0.0 <= self.two_sided_probability <= 1.0, "two_sided_probability must be in [0, 1]")


def _linear(coef: int, const: int, var: str = "x") -> str:
    """Pretty `coef x + const` with signs and unit coefficients handled."""
    head = {1: var, -1: f"-{var}"}.get(coef, f"{coef}{var}")
    if const == 0:
        return head
    return f"{head} {'+' if const > 0 else '-'} {abs(const)}"


class LinearEquationSource(ProceduralSource):
    name = "linear"
    config: LinearEquationConfig

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        c = self.config
        x = int(rng.integers(-c.max_solution, c.max_solution + 1))
        coefs = [v for v in range(-c.max_coefficient, c.max_coefficient + 1) if v != 0]
        a = int(rng.choice(coefs))
        b = int(rng.integers(-c.max_coefficient * 3, c.max_coefficient * 3 + 1))
        two_sided = bool(rng.random() < c.two_sided_probability)
        steps = []
        if two_sided:
            cx = int(rng.choice([v for v in coefs if v != a]))
            d = a * x + b - cx * x
            question = f"Solve for x: {_linear(a, b)} = {_linear(cx, d)}"
            steps.append(f"{a}x - {cx}x = {d} - {b}".replace("- -", "+ "))
            a, b, rhs = a - cx, 0, d - b
            steps[-1] += f", so {_linear(a, 0)} = {rhs}"
        else:
            rhs = a * x + b
            question = f"Solve for x: {_linear(a, b)} = {rhs}"
            if b:
                steps.append(f"{_linear(a, 0)} = {rhs} - {b}".replace("- -", "+ ")
                             + f" = {rhs - b}")
                rhs -= b
        if a != 1:
            steps.append(f"x = {rhs} / {a} = {x}")
        return Problem(
            id=problem_id,
            question=question,
            answer=str(x),
            solution="\n".join(steps + [f"\\boxed{{{x}}}"]),
            difficulty=2.0 if two_sided else 1.0,
        )


# --- Fractions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FractionConfig(ProceduralConfig):
    """`p/q op r/s` evaluated to a reduced fraction."""

    max_denominator: int = 12
    """Largest denominator of an operand."""
    operators: str = "+-*/"
    """Operators to draw from."""

    def validate(self) -> None:
        super().validate()
        _check(self.max_denominator >= 2, "max_denominator must be at least 2")
        _check(bool(self.operators) and set(self.operators) <= set("+-*/"),
               f"operators must be a non-empty subset of '+-*/', got {self.operators!r}")


def _latex_fraction(f: Fraction) -> str:
    if f.denominator == 1:
        return str(f.numerator)
    sign = "-" if f < 0 else ""
    return f"{sign}\\frac{{{abs(f.numerator)}}}{{{f.denominator}}}"


class FractionSource(ProceduralSource):
    name = "fractions"
    config: FractionConfig

    def _operand(self, rng: np.random.Generator) -> Fraction:
        q = int(rng.integers(2, self.config.max_denominator + 1))
        return Fraction(int(rng.integers(1, q)), q)

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        c = self.config
        a, b = self._operand(rng), self._operand(rng)
        op = c.operators[int(rng.integers(len(c.operators)))]
        # Parenthesised: "1/2 / 1/3" reads as ((1/2)/1)/3 by the usual precedence.
        text = f"({a.numerator}/{a.denominator}) {op} ({b.numerator}/{b.denominator})"
        if op in "+-":
            lcd = a.denominator * b.denominator // math.gcd(a.denominator, b.denominator)
            na, nb = a.numerator * lcd // a.denominator, b.numerator * lcd // b.denominator
            raw = na + nb if op == "+" else na - nb
            steps = [f"Common denominator {lcd}: {na}/{lcd} {op} {nb}/{lcd} = {raw}/{lcd}"]
        elif op == "*":
            raw_n, lcd = a.numerator * b.numerator, a.denominator * b.denominator
            steps = [f"Multiply: ({a.numerator} * {b.numerator}) / ({a.denominator} * "
                     f"{b.denominator}) = {raw_n}/{lcd}"]
            raw = raw_n
        else:
            raw, lcd = a.numerator * b.denominator, a.denominator * b.numerator
            steps = [f"Multiply by the reciprocal: {a.numerator}/{a.denominator} * "
                     f"{b.denominator}/{b.numerator} = {raw}/{lcd}"]
        result = {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]
        if (raw, lcd) != (result.numerator, result.denominator):
            steps.append(f"Simplify: {raw}/{lcd} = {result}")
        answer = _latex_fraction(result)
        return Problem(
            id=problem_id,
            question=f"Compute {text}. Give the answer as a fraction in lowest terms.",
            answer=answer,
            solution="\n".join(steps + [f"\\boxed{{{answer}}}"]),
            difficulty=float(max(a.denominator, b.denominator)),
        )


# --- Polynomial roots ----------------------------------------------------------------------


@dataclass(frozen=True)
class PolynomialRootsConfig(ProceduralConfig):
    """A monic polynomial with distinct integer roots; the answer is the set of roots."""

    min_degree: int = 2
    """Smallest degree."""
    max_degree: int = 3
    """Largest degree."""
    max_root: int = 6
    """Roots are drawn from -max_root..max_root."""

    def validate(self) -> None:
        super().validate()
        _check(1 <= self.min_degree <= self.max_degree <= 6,
               "need 1 <= min_degree <= max_degree <= 6")
        _check(2 * self.max_root + 1 >= self.max_degree,
               "max_root too small for that many distinct roots")


def _poly_text(coefficients: list[int]) -> str:
    """x^n + c1 x^(n-1) + ... from integer coefficients, highest degree first."""
    n = len(coefficients) - 1
    terms = []
    for power, coef in zip(range(n, -1, -1), coefficients, strict=True):
        if coef == 0:
            continue
        var = "" if power == 0 else ("x" if power == 1 else f"x^{power}")
        magnitude = "" if abs(coef) == 1 and var else str(abs(coef))
        sign = "-" if coef < 0 else "+"
        terms.append((sign, magnitude + var))
    first_sign, first = terms[0]
    return ("-" if first_sign == "-" else "") + first + "".join(f" {s} {t}" for s, t in terms[1:])


class PolynomialRootsSource(ProceduralSource):
    name = "roots"
    config: PolynomialRootsConfig

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        c = self.config
        degree = int(rng.integers(c.min_degree, c.max_degree + 1))
        roots = sorted(int(r) for r in rng.choice(
            np.arange(-c.max_root, c.max_root + 1), size=degree, replace=False))
        coefficients = [1]
        for r in roots:  # multiply by (x - r)
            coefficients = [a - r * b for a, b in zip(coefficients + [0], [0] + coefficients,
                                                      strict=True)]
        factors = "".join(f"(x {'-' if r > 0 else '+'} {abs(r)})" if r else "x" for r in roots)
        answer = ", ".join(str(r) for r in roots)
        steps = [f"{_poly_text(coefficients)} = {factors}"]
        steps += [f"x = {r}" for r in roots]
        return Problem(
            id=problem_id,
            question=f"Find all real roots of {_poly_text(coefficients)} = 0.",
            answer=answer,
            solution="\n".join(steps + [f"\\boxed{{{answer}}}"]),
            difficulty=float(degree),
            meta={"roots": roots, "answer_type": "set"},
        )


# --- Countdown -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CountdownConfig(ProceduralConfig):
    """Reach a target by combining all given numbers once each with + - * /."""

    min_numbers: int = 3
    """Fewest numbers given."""
    max_numbers: int = 4
    """Most numbers given."""
    max_number: int = 25
    """Numbers are drawn from 1..max_number."""
    max_target: int = 1000
    """Targets are positive integers up to this value."""

    def validate(self) -> None:
        super().validate()
        _check(2 <= self.min_numbers <= self.max_numbers <= 6,
               "need 2 <= min_numbers <= max_numbers <= 6")
        _check(self.max_number >= 2, "max_number must be at least 2")
        _check(self.max_target >= 10, "max_target must be at least 10")


class CountdownSource(ProceduralSource):
    """Built backwards: combine the numbers in a random order with random operations, keeping
    every intermediate a positive integer, and use the result as the target."""

    name = "countdown"
    config: CountdownConfig

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        c = self.config
        n = int(rng.integers(c.min_numbers, c.max_numbers + 1))
        while True:  # rejection sampling; almost always accepts within a few tries
            numbers = [int(v) for v in rng.integers(1, c.max_number + 1, size=n)]
            built = self._build(rng, numbers)
            if built is not None and 1 <= built[0] <= c.max_target:
                break
        target, expression, steps = built
        return Problem(
            id=problem_id,
            question=(f"Using the numbers {', '.join(map(str, numbers))}, each exactly once, "
                      f"and + - * / with parentheses, make {target}."),
            answer=expression,
            solution="\n".join(steps + [f"\\boxed{{{expression}}}"]),
            difficulty=float(n),
            meta={"numbers": numbers, "target": target},
        )

    @staticmethod
    def _build(rng: np.random.Generator, numbers: list[int]) -> tuple[int, str, list[str]] | None:
        order = [numbers[i] for i in rng.permutation(len(numbers))]
        value, expression, steps = order[0], str(order[0]), []
        for v in order[1:]:
            options = ["+", "*"] + (["-"] if value > v else []) + (["/"] if value % v == 0 else [])
            op = options[int(rng.integers(len(options)))]
            new = value // v if op == "/" else _apply(op, value, v)
            steps.append(f"{value} {op} {v} = {new}")
            expression = f"({expression}) {op} {v}" if op in "*/" and " " in expression \
                else f"{expression} {op} {v}"
            value = new
        return (value, expression, steps) if value > 0 else None
