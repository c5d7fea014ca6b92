"""A step scorer standing in for a process reward model on arithmetic chains.

Each line of the form `a op b = c` is checked exactly; a noise level perturbs the scores so
that, as with a learned PRM, selecting by step score can be fooled (B-STaR's exploitation
trade-off needs an imperfect scorer). The score of a response is the minimum over its steps
(Lightman-style), in [-1, 1].
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

_STEP = re.compile(r"^\s*(-?\d+)\s*([+\-*])\s*(-?\d+)\s*=\s*(-?\d+)\s*$")


class ArithmeticStepScorer:
    """Scores each `a op b = c` line +1 (true) or -1 (false), adds Gaussian noise of standard
    deviation `noise`, clips to [-1, 1] and returns the minimum; -1 when there is no step.

    The noise is a deterministic function of (seed, line), so a response keeps its score.
    """

    def __init__(self, noise: float = 0.0, seed: int = 0) -> None:
        if noise < 0:
            raise ValueError(f"noise must be non-negative, got {noise}")
        self.noise = noise
        self.seed = seed

    def step_scores(self, response: str) -> list[float]:
        scores = []
        for line in response.splitlines():
            m = _STEP.match(line)
            if not m:
                continue
            a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
            true = {"+": a + b, "-": a - b, "*": a * b}[op] == c
            score = 1.0 if true else -1.0
            if self.noise:
                digest = hashlib.blake2b(f"{self.seed}|{line.strip()}".encode(),
                                         digest_size=8).digest()
                rng = np.random.default_rng(int.from_bytes(digest, "little"))
                score += float(rng.normal(0.0, self.noise))
            scores.append(min(1.0, max(-1.0, score)))
        return scores

    def __call__(self, response: str) -> float:
        scores = self.step_scores(response)
        return min(scores) if scores else -1.0
