"""`rlvr/Countdown-v0`: reach a target with all given numbers and + - * /, judged by
`CountdownVerifier` (any expression that reaches the target counts)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlvr_gym.envs.sources import ProceduralConfig, ProceduralSource, apply_op, require
from rlvr_gym.registration import register_task
from rlvr_gym.types import Problem
from rlvr_gym.verifiers.countdown import CountdownVerifier


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
        require(2 <= self.min_numbers <= self.max_numbers <= 6,
               "need 2 <= min_numbers <= max_numbers <= 6")
        require(self.max_number >= 2, "max_number must be at least 2")
        require(self.max_target >= 10, "max_target must be at least 10")


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
            new = value // v if op == "/" else apply_op(op, value, v)
            steps.append(f"{value} {op} {v} = {new}")
            expression = f"({expression}) {op} {v}" if op in "*/" and " " in expression \
                else f"{expression} {op} {v}"
            value = new
        return (value, expression, steps) if value > 0 else None


register_task("rlvr/Countdown-v0", "countdown", CountdownSource, CountdownConfig,
              verifier=CountdownVerifier,
              description="reach a target with the given numbers (many valid answers)")
