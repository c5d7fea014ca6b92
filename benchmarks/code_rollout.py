"""Benchmark: verification time of one GRPO step on `rlvr/CodeProblems-v0`, the batched rollout
path (`rlvr_gym.agents.rollout.score`: the whole step handed to the env's `verify_ahead`, which
runs it on the sandbox pool in parallel) against the sequential path agents used before (a
pinned `reset` and a `step` per sample, each waiting for its own sandbox run).

A step is what `GRPOConfig()` samples: `prompts_per_step` problems drawn by the env, `group_size`
responses each. The responses are scripted so that the sandbox has real work (the bundled tiny
model writes no Python): per group, half are the problem's reference program (passes), a
quarter a blank program (fails every test) and a quarter a program that raises. Both arms score
the same responses on the same env; the rewards must be equal. Arms alternate, step by step.

    .venv/bin/python -m benchmarks.code_rollout [--steps 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym

import rlvr_gym  # noqa: F401  (registers the envs)
from benchmarks.common import RESULTS_DIR, provenance
from rlvr_gym.agents.grpo import GRPOConfig
from rlvr_gym.agents.rollout import draw, score

RESULTS = RESULTS_DIR / "code_rollout.md"
BLANK = "```python\nx = 0\n```"
RAISES = "```python\nraise SystemExit(3)\n```"


def responses_for(solution: str, group_size: int) -> list[str]:
    """The scripted group: half reference, a quarter blank, a quarter raising; each response
    made distinct by a comment (a model's samples rarely repeat, and identical ones would be
    verified once by the batched path)."""
    half, quarter = group_size // 2, group_size // 4
    programs = [solution] * half + [BLANK] * quarter + [RAISES] * (group_size - half - quarter)
    return [p.replace("```python\n", f"```python\n# sample {i}\n", 1)
            for i, p in enumerate(programs)]


def sequential(env: Any, ids: list[str], actions: list[str]) -> list[float]:
    """The path before the batched rollout: reset + step, one sample at a time."""
    rewards = []
    for pid, action in zip(ids, actions, strict=True):
        env.reset(options={"problem_id": pid})
        rewards.append(float(env.step(action)[1]))
    return rewards


def batched(env: Any, ids: list[str], actions: list[str]) -> list[float]:
    return [s.reward for s in score(env, ids, actions)]


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the sandboxes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), \
        resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="steps per arm (interleaved)")
    args = parser.parse_args()
    config = GRPOConfig()
    env = gym.make("rlvr/CodeProblems-v0")
    env.reset(seed=0)
    arms: dict[str, Callable[[Any, list[str], list[str]], list[float]]] = {
        "sequential (reset + step each)": sequential, "batched (rollout.score)": batched}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in arms}
    batched(env, *_step(env, config))  # warm-up: starts the sandbox pool
    for _ in range(args.steps):
        ids, actions = _step(env, config)
        rewards = {}
        for name, arm in arms.items():
            wall, cpu = time.perf_counter(), cpu_seconds()
            rewards[name] = arm(env, ids, actions)
            times[name].append((time.perf_counter() - wall, cpu_seconds() - cpu))
        first, second = rewards.values()
        if first != second:
            raise SystemExit("the two paths gave different rewards")
    workers = env.unwrapped.verifier.pool.workers
    seq, bat = (statistics.median(w for w, _ in times[name]) for name in arms)
    lines = ["# Verification time of a GRPO step on rlvr/CodeProblems-v0", "",
             *provenance(f"python -m benchmarks.code_rollout --steps {args.steps}"), "",
             f"One step = {config.prompts_per_step} problems x {config.group_size} responses "
             f"= {config.prompts_per_step * config.group_size} verifications (half reference "
             f"programs, a quarter blank, a quarter raising, all distinct); sandbox pool of "
             f"{workers} "
             f"workers; {args.steps} steps per arm, interleaved; rewards equal in every step.",
             "", "| path | wall s / step (median) | wall s per step | CPU s per step (incl. "
             "sandboxes) |", "|---|---|---|---|"]
    for name in arms:
        walls = ", ".join(f"{w:.2f}" for w, _ in times[name])
        cpus = ", ".join(f"{c:.2f}" for _, c in times[name])
        median = statistics.median(w for w, _ in times[name])
        lines.append(f"| {name} | {median:.2f} | {walls} | {cpus} |")
    lines += ["", f"Batched / sequential wall time: {bat / seq:.2f} ({seq / bat:.2f}x faster)."]
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    env.close()


def _step(env: Any, config: GRPOConfig) -> tuple[list[str], list[str]]:
    """The problem ids and scripted responses of one step's draw."""
    heads = draw(env, config.prompts_per_step)
    ids = [info["problem_id"] for _, info in heads for _ in range(config.group_size)]
    actions = [a for _, info in heads for a in responses_for(info["solution"], config.group_size)]
    return ids, actions


if __name__ == "__main__":
    main()
