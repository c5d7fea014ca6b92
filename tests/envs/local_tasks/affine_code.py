"""A code task in one file, outside the package: write `f(x) = a * x + b` for generated a, b.

Importing this module registers `rlvr/AffineCode-v0` (`kind="code"`: the response is a program,
run against the problem's tests by `CodeVerifier`). Shown in docs/adding_a_task.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlvr_gym.envs.code_tasks import fenced
from rlvr_gym.envs.sources import ProceduralConfig, ProceduralSource, require
from rlvr_gym.registration import register_task
from rlvr_gym.types import Problem


@dataclass(frozen=True)
class AffineConfig(ProceduralConfig):
    """Coefficients a, b drawn from -max_coefficient..max_coefficient."""

    max_coefficient: int = 9
    """Largest absolute value of a and b."""
    cases: int = 4
    """Number of test calls per problem."""

    def validate(self) -> None:
        super().validate()
        require(self.max_coefficient >= 1, "max_coefficient must be at least 1")
        require(self.cases >= 1, "cases must be at least 1")


class AffineSource(ProceduralSource):
    name = "affine"
    config: AffineConfig

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        c = self.config
        a, b = (int(v) for v in rng.integers(-c.max_coefficient, c.max_coefficient + 1, size=2))
        xs = [int(x) for x in rng.integers(-100, 101, size=c.cases)]
        expression = f"{a} * x {'-' if b < 0 else '+'} {abs(b)}"
        return Problem(
            id=problem_id,
            question=f"Write a function `f(x)` that returns {expression} for an integer x.",
            answer="",
            solution=fenced(f"def f(x):\n    return {expression}\n"),
            kind="code",
            tests={"format": "call", "fn": "f",
                   "cases": [{"args": [x], "expected": a * x + b} for x in xs]},
        )


register_task("rlvr/AffineCode-v0", "affine", AffineSource, AffineConfig, kind="code",
              description="write a function returning a x + b for given a, b")
