"""A math task in one file, outside the package: the sum of the digits of a number.

Importing this module registers `rlvr/DigitSum-v0`; `gymnasium.make("digit_sum:rlvr/DigitSum-v0")`
imports it. It is the worked example of docs/adding_a_task.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlvr_gym.envs.sources import ProceduralConfig, ProceduralSource, require
from rlvr_gym.registration import register_task
from rlvr_gym.types import Problem


@dataclass(frozen=True)
class DigitSumConfig(ProceduralConfig):
    """Numbers of `min_digits` to `max_digits` digits; difficulty = the number of digits."""

    min_digits: int = 2
    """Fewest digits of the number."""
    max_digits: int = 4
    """Most digits of the number."""

    def validate(self) -> None:
        super().validate()
        require(2 <= self.min_digits <= self.max_digits <= 30,
                "need 2 <= min_digits <= max_digits <= 30")


class DigitSumSource(ProceduralSource):
    """"What is the sum of the digits of 4096?" Solution: one running total per digit."""

    name = "digit_sum"
    config: DigitSumConfig

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        c = self.config
        n = int(rng.integers(c.min_digits, c.max_digits + 1))
        digits = [int(rng.integers(1, 10)), *(int(d) for d in rng.integers(0, 10, size=n - 1))]
        total, steps = digits[0], []
        for d in digits[1:]:
            steps.append(f"{total} + {d} = {total + d}")
            total += d
        number = "".join(map(str, digits))
        return Problem(
            id=problem_id,
            question=f"What is the sum of the digits of {number}?",
            answer=str(total),
            solution="\n".join(steps + [f"\\boxed{{{total}}}"]),
            difficulty=float(n),
        )


register_task("rlvr/DigitSum-v0", "digit_sum", DigitSumSource, DigitSumConfig,
              description="the sum of the digits of a number")
