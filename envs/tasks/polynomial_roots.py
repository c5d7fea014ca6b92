"""`rlvr/PolynomialRoots-v0`: the distinct integer roots of a monic polynomial."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlvr_gym.envs.sources import ProceduralConfig, ProceduralSource, require
from rlvr_gym.registration import register_task
from rlvr_gym.types import Problem


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
        require(1 <= self.min_degree <= self.max_degree <= 6,
               "need 1 <= min_degree <= max_degree <= 6")
        require(2 * self.max_root + 1 >= self.max_degree,
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


register_task("rlvr/PolynomialRoots-v0", "roots", PolynomialRootsSource, PolynomialRootsConfig,
              description="the integer roots of a polynomial; the answer is a set")
