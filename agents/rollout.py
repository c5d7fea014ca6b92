"""Sampling through the env: the one place where agents generate responses for problems and
score them (`score`), so that every wrapper (hints, budgets, penalties) sees every sample.
The action continues the observation: a response prefix given by a wrapper
(`rlvr_gym.types.split_prefix`) is generated from, masked out of the loss, and not sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlvr_gym.agents.monitors import pass_at_k
from rlvr_gym.agents.policy import Generation, Policy, SamplingConfig
from rlvr_gym.types import Problem, Verdict, split_prefix

Head = tuple[str, dict[str, Any]]
"""What `env.reset()` returns: the observation and its info."""


@dataclass(frozen=True)
class Scored:
    """One response as the env judged it."""

    reward: float
    usable: bool
    """False when the verifier failed (error/timeout): mask it, never score it as wrong."""
    correct: bool
    verdict: Verdict | None


@dataclass
class Group:
    """Responses to one problem with their rewards and verdicts (G samples, a tree's leaves,
    or all of a problem's hint rounds)."""

    problem_id: str
    generations: list[Generation]
    rewards: list[float]
    usable: list[bool]
    correct: list[bool]


@dataclass
class Rollout:
    """What one training step sampled."""

    groups: list[Group]
    sampled_groups: list[Group] = field(default_factory=list)
    """Every group sampled this step, also those dropped by dynamic sampling."""
    generated_tokens: int = 0
    seconds: float = 0.0
    advantages: Any = None
    """Advantages the sampler computed (IB-TPO's), per sample [B] or per token [B, L-1]
    (aligned with `Policy.batch` of the generations); None: group advantages of the rewards."""
    stats: dict[str, float] = field(default_factory=dict)
    """Statistics the sampler reports, logged with the step's metrics."""


def draw(env: Any, n: int) -> list[Head]:
    """`n` problems drawn by the env (`reset()` without options)."""
    return [env.reset() for _ in range(n)]


def score(env: Any, problems: Sequence[str | Problem], actions: Sequence[str],
          prefixes: Sequence[str] | None = None) -> list[Scored]:
    """Judge `actions[i]` on `problems[i]` (a problem id, or a `Problem` pinned as it is)
    through `reset(options=...)` + `step`, after handing the whole batch to the env's
    `verify_ahead` (a verifier that can run in parallel verifies it at once; rewards are the
    same). `prefixes[i]` is the response prefix the env gave (`step` gets prefix + action).
    An env with a `score_batch(problems, actions, prefixes)` method (a
    `rlvr_gym.distributed.ray_env.RayVectorEnv`) scores the batch itself, as this does."""
    batch = getattr(env, "score_batch", None)
    if callable(batch):
        return list(batch(problems, actions, prefixes))
    prefixes = prefixes if prefixes is not None else [""] * len(actions)
    ahead = getattr(getattr(env, "unwrapped", env), "verify_ahead", None)
    if callable(ahead):
        ahead([(p if isinstance(p, str) else p.id, x + a)
               for p, a, x in zip(problems, actions, prefixes, strict=True)])
    out = []
    for problem, action in zip(problems, actions, strict=True):
        env.reset(options={"problem_id": problem} if isinstance(problem, str)
                  else {"problem": problem})
        _, reward, _, _, info = env.step(action)
        verdict = info.get("verdict")
        out.append(Scored(float(reward), verdict is None or verdict.usable,
                          verdict.correct if verdict is not None else float(reward) >= 1, verdict))
    return out


def sample_groups(policy: Policy, env: Any, heads: Sequence[Head], group_size: int,
                  sampling: SamplingConfig) -> tuple[list[Group], int]:
    """`group_size` responses to each problem of `heads`, scored through the env. Returns the
    groups and the number of generated tokens."""
    split = [split_prefix(obs, info) for obs, info in heads]
    prefixes = [x for _, x in split for _ in range(group_size)]
    gens = policy.generate([p for p, _ in split for _ in range(group_size)], sampling, prefixes)
    scored = score(env, [info["problem_id"] for _, info in heads for _ in range(group_size)],
                   [g.text for g in gens], prefixes)
    groups = []
    for k, (_, info) in enumerate(heads):
        members = slice(k * group_size, (k + 1) * group_size)
        part = scored[members]
        groups.append(Group(info["problem_id"], gens[members], [s.reward for s in part],
                            [s.usable for s in part], [s.correct for s in part]))
    return groups, sum(len(g.completion_ids) for g in gens)


def collect(sample: Callable[[int], tuple[list[Group], int]], num_problems: int,
            dynamic_sampling: bool = False, max_rounds: int = 1) -> Rollout:
    """A step's groups from `sample(n)` (n problems -> groups, generated tokens). With
    `dynamic_sampling` (DAPO) groups whose usable rewards are all equal are dropped and more
    problems sampled, for at most `max_rounds` rounds."""
    start = time.perf_counter()
    rollout = Rollout(groups=[])
    for _ in range(max_rounds if dynamic_sampling else 1):
        groups, tokens = sample(num_problems - len(rollout.groups))
        rollout.sampled_groups += groups
        rollout.generated_tokens += tokens
        rollout.groups += [g for g in groups if not dynamic_sampling or _varies(
            [r for r, u in zip(g.rewards, g.usable, strict=True) if u])]
        if len(rollout.groups) >= num_problems:
            break
    rollout.seconds = time.perf_counter() - start
    return rollout


def _varies(values: Sequence[float]) -> bool:
    return len(values) > 1 and max(values) != min(values)


def evaluate(policy: Policy, env: Any, num_problems: int = 200, samples: int = 8,
             ks: Sequence[int] = (1, 8), temperature: float = 1.0, max_new_tokens: int = 64,
             stop: tuple[str, ...] = (), progress_bar: bool = False) -> dict[str, float]:
    """Held-out evaluation on problems 0..num_problems-1 of `env` (pinned by index):
    `accuracy` (greedy decoding), `pass@k` for each k (unbiased, from `samples` completions per
    problem sampled at `temperature`) and `mean_length` (generated tokens of the greedy
    answers). `progress_bar` shows the generations done (the results are the same without)."""
    heads = [env.reset(options={"index": i}) for i in range(num_problems)]
    ids = [info["problem_id"] for _, info in heads]
    prompts, prefixes = zip(*(split_prefix(*head) for head in heads), strict=True) \
        if heads else ((), ())

    def correct(gens: Sequence[Generation], repeat: int) -> list[bool]:
        return [s.correct for s in score(env, [i for i in ids for _ in range(repeat)],
                                         [g.text for g in gens],
                                         [x for x in prefixes for _ in range(repeat)])]

    from tqdm.auto import tqdm

    bar = tqdm(total=num_problems * (1 + samples), desc="held-out", unit="gen", leave=False,
               disable=not progress_bar)
    with bar:
        greedy = _generate_counted(policy, prompts, SamplingConfig(0.0, 1.0, max_new_tokens, stop),
                                   prefixes, bar)
        sampled = _generate_counted(policy, [p for p in prompts for _ in range(samples)],
                                    SamplingConfig(temperature, 1.0, max_new_tokens, stop),
                                    [x for x in prefixes for _ in range(samples)], bar)
    metrics = {"accuracy": float(np.mean(correct(greedy, 1))),
               "mean_length": float(np.mean([len(g.completion_ids) for g in greedy]))}
    if samples > 0:
        counts = np.array(correct(sampled, samples)).reshape(num_problems, samples).sum(1)
        for k in ks:
            if k <= samples:
                metrics[f"pass@{k}"] = float(np.mean([pass_at_k(samples, int(c), k)
                                                      for c in counts]))
    return metrics


def _generate_counted(policy: Policy, prompts: Sequence[str], sampling: SamplingConfig,
                      prefixes: Sequence[str], bar: Any) -> list[Generation]:
    """`policy.generate`, called in chunks of the backend's own generation batch so that the
    progress bar advances per batch: the batches, and so the random draws, are the ones a
    single call makes. A backend without a batch size (vLLM schedules its own) gets one call."""
    if not prompts:
        return []
    chunk = getattr(getattr(policy, "backend", None), "batch_size", None) or len(prompts)
    out: list[Generation] = []
    for start in range(0, len(prompts), chunk):
        batch = policy.generate(prompts[start:start + chunk], sampling,
                                prefixes[start:start + chunk])
        out += batch
        bar.update(len(batch))
    return out
