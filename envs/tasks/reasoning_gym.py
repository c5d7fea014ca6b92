"""`rlvr/ReasoningGym-v0`: any reasoning-gym dataset as an env, scored by its own
`score_answer` (`pip install "rlvr-gym[reasoning-gym]"`).

    env = gym.make("rlvr/ReasoningGym-v0", task="chain_sum", seed=0, max_terms=4)

`task` names the dataset (`reasoning_gym.factory.DATASETS`: chain_sum, sudoku, knights_knaves,
... over 100); the other options are the fields of that dataset's config (`min_terms`, ...),
checked against it; `seed` is the dataset seed as for every procedural task (train on 0,
evaluate on 1), and `size` (reasoning-gym's default, usually 500) the number of problems.
Problem `i` is reasoning-gym's item `i`, a pure function of (task, options, i), with the id
`reasoning_gym.<task>/<seed>/<i>`.

What differs from the built-in tasks:

- the default prompt asks for the answer between `<answer>` and `</answer>` tags, as
  reasoning-gym's own prompts do (`ReasoningGymVerifier` also takes a `\\boxed{}`);
- the reward is the dataset's `score_answer`, which for some datasets gives partial or
  format credit below 1 (`correct` only at 1);
- the reference solution is the answer in tags, one line (no worked steps), and it is empty
  for the datasets that have no single reference answer (graph_color, rush_hour, ...: any
  valid answer scores 1); `difficulty` is 0 (configure hardness through the options);
- the text spaces admit box drawing, dingbats, emoji and variation selectors besides the
  usual charset; any other character shows as U+FFFD in observations.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from rlvr_gym.envs.env import CHARSET, PromptFormat, ReasoningEnv
from rlvr_gym.envs.registry import make_task_env
from rlvr_gym.envs.sources import ProceduralConfig, ProceduralSource
from rlvr_gym.registration import register_task
from rlvr_gym.types import Problem
from rlvr_gym.verifiers.reasoning_gym import ReasoningGymVerifier, import_reasoning_gym

DEFAULT_TASK = "chain_sum"
"""The dataset of `gym.make("rlvr/ReasoningGym-v0")` without `task`."""

TEMPLATE = "{question}\nGive only the final answer, between <answer> and </answer> tags.\n"
"""Default prompt: reasoning-gym's answer format."""

# Box drawing and block elements, miscellaneous symbols and dingbats, variation selectors,
# emoji, variation selectors supplement: characters reasoning-gym's questions use.
_RANGES = [(0x2500, 0x25A0), (0x2600, 0x27C0), (0xFE00, 0xFE10), (0x1F300, 0x1FB00),
           (0xE0100, 0xE01F0)]
EXTRA_CHARS = frozenset(chr(c) for lo, hi in _RANGES for c in range(lo, hi)) - CHARSET


class ReasoningGymSource(ProceduralSource):
    """The reasoning-gym dataset `dataset` (the env's `task`) built with `options` (its
    config's fields) and the dataset `seed`; ValueError naming the valid choices for an
    unknown dataset or option, or with reasoning-gym's reason for a value it refuses."""

    def __init__(self, dataset: str = DEFAULT_TASK, seed: int = 0, **options: Any) -> None:
        reasoning_gym = import_reasoning_gym()
        datasets = reasoning_gym.factory.DATASETS
        if dataset not in datasets:
            raise ValueError(f"unknown reasoning-gym task {dataset!r}; choose one of "
                             f"{sorted(datasets)}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int (the dataset seed), got {seed!r}")
        known = {f.name for f in fields(datasets[dataset][1])} - {"seed"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown {dataset} options {sorted(unknown)}; valid: "
                             f"{sorted(known)}")
        self.task = dataset
        self.options = {"seed": seed, **options}
        try:
            self.dataset = reasoning_gym.create_dataset(dataset, **self.options)
        except (AssertionError, TypeError, ValueError) as exc:
            raise ValueError(f"reasoning-gym refuses the {dataset} options {options}: "
                             f"{exc or type(exc).__name__}") from exc
        self.name = f"reasoning_gym.{dataset}"
        super().__init__(ProceduralConfig(seed=seed, size=len(self.dataset)))

    def characters(self) -> frozenset[str]:
        """What the env's text spaces admit beyond `CHARSET`: `EXTRA_CHARS`."""
        return EXTRA_CHARS

    def generate(self, rng: np.random.Generator, problem_id: str) -> Problem:
        """reasoning-gym's item at the id's index (it seeds its own generator from the dataset
        seed and the index; `rng` is not used)."""
        entry = self.dataset[self.index_of(problem_id)]
        answer = entry["answer"]
        return Problem(
            id=problem_id,
            question=entry["question"],
            answer="" if answer is None else str(answer),
            solution="" if answer is None else f"<answer>{answer}</answer>",
            meta={"task": self.task, "options": dict(self.options), "entry": entry},
        )


def make_reasoning_gym_env(task: str = DEFAULT_TASK, prompt: PromptFormat | str | None = None,
                           **options: Any) -> ReasoningEnv:
    """Entry point of `rlvr/ReasoningGym-v0`: the reasoning-gym dataset `task`, prompted with
    `TEMPLATE` unless `prompt` is given; the other keywords are `make_task_env`'s (the env's
    `verifier`, default `ReasoningGymVerifier`, `max_attempts`, ...; the dataset's `seed`,
    `size` and config fields)."""
    return make_task_env(DEFAULT_TASK, prompt=TEMPLATE if prompt is None else prompt,
                         dataset=task, **options)


register_task("rlvr/ReasoningGym-v0", DEFAULT_TASK, ReasoningGymSource,
              verifier=ReasoningGymVerifier,
              entry_point="rlvr_gym.envs.tasks.reasoning_gym:make_reasoning_gym_env",
              description="any reasoning-gym dataset (task=...), scored by its score_answer")
