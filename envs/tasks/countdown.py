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
    operators: str = "+-*/"
    """Operations allowed, a subset of "+-*/" (the question names them)."""
    search_attempts: int = 0
    """0: the reference solution is the construction. n > 0: it shows a search, for a model
    to imitate in pre-training: up to n random attempts, each worked out and rejected when it
    misses the target (", not T."), separated by "\\n\\nWait\\n" (an episode marker of MRT),
    until one reaches it; after n misses the construction follows."""

    def validate(self) -> None:
        super().validate()
        require(2 <= self.min_numbers <= self.max_numbers <= 6,
               "need 2 <= min_numbers <= max_numbers <= 6")
        require(self.max_number >= 2, "max_number must be at least 2")
        require(self.max_target >= 10, "max_target must be at least 10")
        require(set(self.operators) <= set("+-*/") and bool(set(self.operators) & set("+*")),
                f"operators must be a subset of '+-*/' with '+' or '*', got {self.operators!r}")
        require(self.search_attempts >= 0,
                f"search_attempts must be 0 or more, got {self.search_attempts}")


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
        misses, expression, steps = self._search(rng, numbers, target, expression, steps)
        parentheses = " with parentheses" if set(c.operators) & set("*/") else ""
        return Problem(
            id=problem_id,
            question=(f"Using the numbers {', '.join(map(str, numbers))}, each exactly once, "
                      f"and {' '.join(c.operators)}{parentheses}, make {target}."),
            answer=expression,
            solution=misses + "\n".join(steps + [f"\\boxed{{{expression}}}"]),
            difficulty=float(n),
            meta={"numbers": numbers, "target": target},
        )

    def _search(self, rng: np.random.Generator, numbers: list[int], target: int,
                expression: str, steps: list[str]) -> tuple[str, str, list[str]]:
        """A search (`search_attempts`): the text of its misses, and the expression and steps
        of its hit (the construction's after `search_attempts` misses)."""
        misses: list[str] = []
        for _ in range(self.config.search_attempts):
            attempt = self._build(rng, numbers)
            if attempt is None:
                continue
            if attempt[0] == target:
                return "".join(misses), attempt[1], attempt[2]
            misses.append("\n".join(attempt[2]) + f", not {target}.\n\nWait\n")
        return "".join(misses), expression, steps

    def _build(self, rng: np.random.Generator, numbers: list[int]
               ) -> tuple[int, str, list[str]] | None:
        order = [numbers[i] for i in rng.permutation(len(numbers))]
        value, expression, steps = order[0], str(order[0]), []
        for v in order[1:]:
            options = ["+", "*"] + (["-"] if value > v else []) + (["/"] if value % v == 0 else [])
            options = [o for o in options if o in self.config.operators]
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
