"""`rlvr/Fractions-v0`: `(p/q) op (r/s)` evaluated to a fraction in lowest terms."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from rlvr_gym.envs.sources import ProceduralConfig, ProceduralSource, require
from rlvr_gym.registration import register_task
from rlvr_gym.types import Problem


@dataclass(frozen=True)
class FractionConfig(ProceduralConfig):
    """`p/q op r/s` evaluated to a reduced fraction."""

    max_denominator: int = 12
    """Largest denominator of an operand."""
    operators: str = "+-*/"
    """Operators to draw from."""

    def validate(self) -> None:
        super().validate()
        require(self.max_denominator >= 2, "max_denominator must be at least 2")
        require(bool(self.operators) and set(self.operators) <= set("+-*/"),
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


register_task("rlvr/Fractions-v0", "fractions", FractionSource, FractionConfig,
              description="fraction arithmetic, answer in lowest terms")
