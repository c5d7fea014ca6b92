"""verl on an rlvr-gym env's rewards: the rows of a verl parquet file and a verl
`compute_score(data_source, solution_str, ground_truth, extra_info)`.

    pandas.DataFrame(verl_rows("rlvr/Arithmetic-v0", size=1000, seed=0)).to_parquet(...)

and point verl's `custom_reward_function.path` at this file (`rlvr_gym.integrations.verl.
__file__`) with `custom_reward_function.name=compute_score`. A row names its env by id
(`data_source`) and its `gym.make` keywords (`extra_info["env_kwargs"]`, JSON), and its
problem by id (`reward_model["ground_truth"]`): `compute_score` rebuilds that env once per
thread and judges the response through it, so any task (its verifier, Countdown's many
answers, code tests, reasoning-gym's `score_answer`) scores as in rlvr-gym.

verl has no masked reward: a verdict that is not usable (the verifier failed) scores 0 and
is flagged `usable: 0.0` among the extra values verl logs (`acc` is 1.0 for a correct answer).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import gymnasium as gym

import rlvr_gym  # noqa: F401  (registers the ids verl's data names)
from rlvr_gym.integrations import indexed_prompts

_local = threading.local()


def verl_rows(env_id: str, size: int | None = None, start: int = 0, split: str = "train",
              **env_kwargs: Any) -> list[dict[str, Any]]:
    """verl dataset rows for problems `start` .. `start + size - 1` of `gym.make(env_id,
    **env_kwargs)`: `data_source` (the id), `prompt` (one user message: the observation),
    `ability` (the task's kind), `reward_model` (`{"style": "rule", "ground_truth":
    problem id}`) and `extra_info` (`split`, `index`, `env_kwargs` as JSON).

    ValueError when a keyword is not a JSON value (a `PromptFormat`: pass its template
    string), and as `rlvr_gym.integrations.indexed_prompts` for the range."""
    try:
        kwargs_json = json.dumps(env_kwargs, sort_keys=True)
    except TypeError as exc:
        raise ValueError(f"env_kwargs must be JSON values to go into a verl file ({exc}); "
                         "pass a prompt as its template string") from exc
    env: Any = gym.make(env_id, **env_kwargs)
    try:
        rows = indexed_prompts(env, size, start)
        kind = env.unwrapped.source[start].kind
    finally:
        env.close()
    return [{"data_source": env_id,
             "prompt": [{"role": "user", "content": prompt}],
             "ability": kind,
             "reward_model": {"style": "rule", "ground_truth": problem_id},
             "extra_info": {"split": split, "index": start + k, "env_kwargs": kwargs_json}}
            for k, (prompt, problem_id) in enumerate(rows)]


def compute_score(data_source: str, solution_str: str, ground_truth: str,
                  extra_info: dict[str, Any] | None = None) -> dict[str, float]:
    """verl's reward function: `solution_str` judged on problem `ground_truth` (its id) of
    `gym.make(data_source, **json.loads(extra_info["env_kwargs"]))` (no `env_kwargs`: the
    id's defaults). Returns `score` (the reward; 0 when unusable), `acc` and `usable`."""
    kwargs_json = (extra_info or {}).get("env_kwargs") or "{}"
    if not isinstance(kwargs_json, str):  # a dict written by hand
        kwargs_json = json.dumps(kwargs_json, sort_keys=True)
    envs: dict[tuple[str, str], Any] = _local.__dict__.setdefault("envs", {})
    key = (data_source, kwargs_json)
    if key not in envs:
        envs[key] = gym.make(data_source, **json.loads(kwargs_json))
    return score_response(envs[key], ground_truth, solution_str)


def score_response(env: Any, problem_id: str, response: str) -> dict[str, float]:
    """`response` judged on the problem `problem_id` of `env`, as `compute_score` reports
    it: `score` (the reward, 0 when the verdict is not usable), `acc`, `usable`."""
    from rlvr_gym.agents.rollout import score

    scored = score(env, [problem_id], [response])[0]
    return {"score": scored.reward if scored.usable else 0.0, "acc": float(scored.correct),
            "usable": float(scored.usable)}
