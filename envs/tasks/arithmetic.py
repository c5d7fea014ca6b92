"""`rlvr/Arithmetic-v0`: integer expressions such as `12 + 7 * 3`, solved one operation per line."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlvr_gym.envs.sources import ProceduralConfig, ProceduralSource, apply_op, require
from rlvr_gym.registration import register_task
from rlvr_gym.types import Problem


def _number(rng: np.random.Generator, digits: int) -> int:
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return int(rng.integers(low, 10**digits))


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
        require(1 <= self.min_digits <= self.max_digits <= 18,
               "need 1 <= min_digits <= max_digits <= 18")
        require(2 <= self.min_operands <= self.max_operands <= 12,
               "need 2 <= min_operands <= max_operands <= 12")
        require(bool(self.operators) and set(self.operators) <= set("+-*"),
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
                    result = apply_op(ops[i], a, b)
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


register_task("rlvr/Arithmetic-v0", "arithmetic", ArithmeticSource, ArithmeticConfig,
              description="integer expressions; difficulty = digits and operands")
