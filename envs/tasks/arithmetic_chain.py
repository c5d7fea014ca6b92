"""`rlvr/ArithmeticChain-v0`: a start value and k operations in words, one step per operation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlvr_gym.envs.sources import ProceduralConfig, ProceduralSource, apply_op, require
from rlvr_gym.registration import register_task
from rlvr_gym.types import Problem


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
        require(1 <= self.min_steps <= self.max_steps <= 64,
               "need 1 <= min_steps <= max_steps <= 64")
        require(self.max_operand >= 2, "max_operand must be at least 2")
        require(bool(self.operators) and set(self.operators) <= set("+-*"),
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
            result = apply_op(op, value, operand)
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


register_task("rlvr/ArithmeticChain-v0", "chain", ChainSource, ChainConfig,
              description="a start value and k operations, one step per line")
