"""Benchmark: SB3 PPO on `TokenLevel` one-digit addition, against a random policy.

Measures held-out accuracy (200 seeded episodes, deterministic policy) and environment steps
per second of training, over several seeds, and writes benchmarks/results/sb3_token_level.md.

    .venv/bin/python -m benchmarks.sb3_token_level [--steps 100000] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import rlvr_gym  # noqa: F401
from benchmarks.common import RESULTS_DIR, provenance
from rlvr_gym.wrappers.token_level import TokenLevel

RESULTS = RESULTS_DIR / "sb3_token_level.md"


def make_env() -> gym.Env:
    text_env = gym.make("rlvr/Arithmetic-v0", max_digits=1, max_operands=2, operators="+",
                        prompt="{question}")
    return TokenLevel(text_env, max_length=12, max_new_tokens=2)


class RandomPolicy:
    """Uniform random tokens, with SB3's `predict` signature: the chance baseline."""

    def __init__(self, action_space: gym.spaces.Discrete, seed: int) -> None:
        self.space = action_space
        self.space.seed(seed)

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.array([self.space.sample() for _ in range(len(obs))]), None


def accuracy(policy, seed: int, episodes: int = 200) -> float:
    env = DummyVecEnv([lambda: Monitor(make_env())])
    env.seed(10_000 + seed)  # held-out episodes: a seed range training never resets with
    mean_reward, _ = evaluate_policy(policy, env, n_eval_episodes=episodes, deterministic=True)
    return float(mean_reward)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000, help="PPO environment steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        chance = accuracy(RandomPolicy(make_env().action_space, seed), seed)
        model = PPO("MlpPolicy", make_env(), seed=seed, n_steps=2048, batch_size=256,
                    learning_rate=1e-3, ent_coef=0.01, policy_kwargs={"net_arch": [256, 256]})
        start = time.perf_counter()
        model.learn(total_timesteps=args.steps)
        elapsed = time.perf_counter() - start
        rows.append((seed, chance, accuracy(model, seed), model.num_timesteps / elapsed, elapsed))
        print(f"seed {seed}: random {chance:.1%}  PPO {rows[-1][2]:.1%}  "
              f"{rows[-1][3]:.0f} steps/s", flush=True)
    command = (f".venv/bin/python -m benchmarks.sb3_token_level --steps {args.steps} "
               f"--seeds {' '.join(map(str, args.seeds))}")
    lines = [
        "# SB3 PPO on TokenLevel one-digit addition",
        "",
        *provenance(command),
        "",
        "Task: `rlvr/Arithmetic-v0` (one-digit a + b) through `TokenLevel(max_length=12, "
        "max_new_tokens=2)`, digits-and-operators vocabulary (21 actions). PPO MlpPolicy "
        "256x256, lr 1e-3, n_steps 2048, batch 256, ent_coef 0.01. Accuracy over 200 held-out "
        "seeded episodes, deterministic policy.",
        "",
        "| seed | random policy | PPO | train steps/s | train wall s |",
        "|---|---|---|---|---|",
        *(f"| {s} | {c:.1%} | {a:.1%} | {sps:.0f} | {w:.0f} |" for s, c, a, sps, w in rows),
        f"| mean | {np.mean([r[1] for r in rows]):.1%} | {np.mean([r[2] for r in rows]):.1%} | "
        f"{np.mean([r[3] for r in rows]):.0f} | {np.mean([r[4] for r in rows]):.0f} |",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
