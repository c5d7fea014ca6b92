"""`rlvr/LinearEquation-v0`: `a x + b = c` (or x on both sides) with an integer solution."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlvr_gym.envs.sources import ProceduralConfig, ProceduralSource, require
from rlvr_gym.registration import register_task
from rlvr_gym.types import Problem


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
        require(self.max_coefficient >= 2, "max_coefficient must be at least 2")
        require(self.max_solution >= 1, "max_solution must be at least 1")
        require(0.0 <= self.two_sided_probability <= 1.0, "two_sided_probability must be in [0, 1]")


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


register_task("rlvr/LinearEquation-v0", "linear", LinearEquationSource, LinearEquationConfig,
              description="solve a x + b = c for x (sometimes x on both sides)")
