"""Bridges to the trainers users already run, over any rlvr-gym env.

- `rlvr_gym.integrations.trl`: an HF dataset of prompts and a reward function for TRL's
  `GRPOTrainer` (`pip install "rlvr-gym[trl]"`), and the position-id fix that GPT-2-style
  models need under TRL's left padding;
- `rlvr_gym.integrations.verl`: rows for a verl parquet file and a verl `compute_score`.

Both take the prompts from `env.reset(options={"index": i})` and judge a response as
rlvr-gym's own agents do (`rlvr_gym.agents.rollout.score`: reset pinned by problem id, then
`step`), so the task's verifier, the env's wrappers and the masking of failed verifications
(`Verdict.usable`) apply unchanged.
"""

from __future__ import annotations

from typing import Any

from rlvr_gym.types import RESPONSE_PREFIX_KEY

#: Sources with more problems than this need an explicit `size`.
MAX_DEFAULT_SIZE = 100_000


def indexed_prompts(env: Any, size: int | None = None, start: int = 0
                    ) -> list[tuple[str, str]]:
    """(prompt, problem id) of problems `start` .. `start + size - 1` of `env`, pinned by
    index (`size` None: every problem of a source of at most `MAX_DEFAULT_SIZE`).

    ValueError naming the fix for a range outside the source, a missing `size` on a large
    source, or an env whose observation starts the response (a wrapper's response prefix,
    such as SEELE's hints: a fixed prompt dataset cannot follow prefixes that change)."""
    total = len(env.unwrapped.source)
    if size is None:
        if total > MAX_DEFAULT_SIZE:
            raise ValueError(f"the env has {total} problems; pass size=N for the first N")
        size = total - start
    if size < 1 or start < 0 or start + size > total:
        raise ValueError(f"problems {start}..{start + size - 1} are outside the env's "
                         f"0..{total - 1}; choose start and size within them")
    out = []
    for index in range(start, start + size):
        observation, info = env.reset(options={"index": index})
        if info.get(RESPONSE_PREFIX_KEY):
            raise ValueError("the env starts the response (info['response_prefix'], e.g. a "
                             "HintScaffold wrapper); give the bridge the env without it")
        out.append((observation, info["problem_id"]))
    return out
