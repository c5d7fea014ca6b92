"""Task sources: where a task's problems come from.

- `TaskSource`: what every source is: indexable (`source[i] -> Problem`), sized, with ids.
- `ListSource`: base of the finite sources held as a list (local files, hand-written sets).
- `ProceduralConfig` / `ProceduralSource`: base of the generated tasks (`rlvr_gym.envs.tasks`),
  where each problem is a pure function of (config, index). The same config and index always
  give the same problem, on any machine and in any process, so data is reproducible and
  shardable and nothing is downloaded. Held-out problems come from the same source with
  another `seed`. Every generated problem carries a step-wise solution (one step per line)
  that ends in `\\boxed{answer}`: SEELE uses its prefixes as hints and IB-TPO branches at its
  line breaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rlvr_gym.types import Problem


class TaskSource(Protocol):
    """A finite, indexable collection of problems. `name` prefixes every problem id."""

    name: str

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Problem: ...

    def index_of(self, problem_id: str) -> int:
        """Index of the problem with this id; KeyError if there is none."""
        ...


class ListSource:
    """Base of the finite sources held as a list (local files, hand-written sets): subclasses
    fill `problems` and call `_index_problems()` once."""

    name = "list"
    problems: list[Problem]

    def _index_problems(self, origin: str | None = None) -> None:
        """Index the ids; ValueError naming `origin` (default the source's name) and both
        rows when two problems share an id (pinning by id would pick one silently)."""
        self._ids: dict[str, int] = {}
        for i, p in enumerate(self.problems):
            if p.id in self._ids:
                first = self.problems[self._ids[p.id]]
                rows = [q.meta.get("row", j) for j, q in ((self._ids[p.id], first), (i, p))]
                raise ValueError(f"{origin or self.name}: rows {rows[0]} and {rows[1]} have "
                                 f"the same id {p.id!r}; ids must be unique (fix the id field, "
                                 "or set id_field=None to number the rows)")
            self._ids[p.id] = i

    def __len__(self) -> int:
        return len(self.problems)

    def __getitem__(self, index: int) -> Problem:
        return self.problems[index]

    def index_of(self, problem_id: str) -> int:
        if problem_id not in self._ids:
            raise KeyError(f"no problem with id {problem_id!r} in source {self.name!r} (its ids "
                           f"look like {self.problems[0].id!r})")
        return self._ids[problem_id]

    def characters(self) -> set[str]:
        """Every character used in the questions (the env's text spaces need them)."""
        return set().union(*(set(p.question) for p in self.problems))


def require(condition: bool, message: str) -> None:
    """ValueError(message) unless condition: how configs say what to fix."""
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class ProceduralConfig:
    """Fields shared by every procedural source."""

    seed: int = 0
    """Dataset seed: a different seed gives a disjoint-in-expectation problem set (use 1 for
    held-out evaluation when training on 0)."""
    size: int = 1_000_000
    """Number of distinct indices; `reset()` without options draws an index below it."""

    def validate(self) -> None:
        require(self.size > 0, f"size must be positive, got {self.size}")


class ProceduralSource:
    """Base of the generators: turns (config, index) into an RNG and an id."""

    name = "procedural"

    def __init__(self, config: ProceduralConfig) -> None:
        config.validate()
        self.config = config

    def __len__(self) -> int:
        return self.config.size

    def __getitem__(self, index: int) -> Problem:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} outside 0..{len(self) - 1} of source {self.name!r}")
        rng = np.random.default_rng([self.config.seed, index])
        return self.generate(rng, f"{self.name}/{self.config.seed}/{index}")

    def index_of(self, problem_id: str) -> int:
        """Inverse of the id scheme `name/seed/index`."""
        name, seed, index = (problem_id.split("/") + ["", "", ""])[:3]
        if name != self.name or seed != str(self.config.seed) or not index.isdigit():
            raise KeyError(f"{problem_id!r} is not an id of this source; ids look like "
                           f"'{self.name}/{self.config.seed}/<index>'")
        return int(index)

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        """The problem with id `problem_id`, drawn from `rng` alone (seeded by the config's
        seed and the index), so that it is a pure function of (config, index)."""
        raise NotImplementedError


def apply_op(op: str, a: int, b: int) -> int:
    """`a op b` for op in "+", "-", "*" (the integer operations of the arithmetic tasks)."""
    return {"+": a + b, "-": a - b, "*": a * b}[op]
