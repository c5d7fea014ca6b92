"""Curriculum by classic RL: stable-baselines3 PPO decides, problem by problem, how much of the
reference solution to reveal, while the bundled tiny LLM answers inside the env.

The LLM was trained on 2-3 digit additions and mostly fails on 4-digit ones; the hint (the
solution's first line) can rescue it. The reward is correctness minus a cost per unit of
hint. The controller sees the problem's difficulty as a number and could learn to hint only
hard problems; the script compares what PPO learns with the two fixed policies. (Measured
with the bundled model: hinting every problem wins here, and PPO learns exactly that: a
difficulty-dependent rule would need a model that solves the easy problems more reliably.)

Run: python examples/10_sb3_hint_controller.py            (a few CPU minutes)
     RLVR_SMOKE=1 python examples/10_sb3_hint_controller.py   (seconds, for the test suite)
"""

import os

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.monitor import Monitor

import rlvr_gym  # noqa: F401  (registers the rlvr/... ids)
from rlvr_gym.agents.policy import Policy, SamplingConfig
from rlvr_gym.agents.tiny import TINY_MODEL_DIR
from rlvr_gym.wrappers import HintController

SMOKE = os.environ.get("RLVR_SMOKE") == "1"
torch.set_num_threads(1)
llm = Policy.from_pretrained(TINY_MODEL_DIR, device="cpu")
greedy = SamplingConfig(temperature=0.0, max_new_tokens=24)


def answer(prompt: str) -> str:
    """The LLM's continuation of the prompt (which ends with the hint)."""
    return llm.generate([prompt], greedy)[0].text


def make_env() -> gym.Env:
    text_env = gym.make("rlvr/Arithmetic-v0", min_digits=2, max_digits=4, max_operands=2,
                        operators="+", prompt="{question}\n")
    # Levels are shares of the solution's two lines: none, or the sum line (ratio 0.5), which
    # costs 0.5 * 1.2 = 0.6 reward: worth it only where the model's own accuracy is below 40%.
    return Monitor(HintController(text_env, answer, levels=(0.0, 0.5), hint_cost=1.2,
                                  problems_per_episode=8))


def mean_reward(choose, episodes: int, seed: int = 1) -> float:
    env, total = make_env(), 0.0
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(choose(obs))
            total += reward
            done = terminated or truncated
    return total / episodes


episodes = 1 if SMOKE else 25
for level, name in enumerate(("never hint", "always hint")):
    print(f"{name:>12}: mean episode reward {mean_reward(lambda obs, lv=level: lv, episodes):.2f}")
model = PPO("MlpPolicy", make_env(), n_steps=64 if SMOKE else 256, batch_size=64, seed=0,
            learning_rate=3e-3)
model.learn(total_timesteps=64 if SMOKE else 2_000)
ppo = mean_reward(lambda obs: int(model.predict(obs, deterministic=True)[0]), episodes)
print(f"{'PPO':>12}: mean episode reward {ppo:.2f}  (8 problems per episode)")
# Difficulty = digits of both operands + 2, scaled by 0.1: 2+2 digits -> 0.6, 4+4 -> 1.0.
for digits, feature in ((2, 0.6), (3, 0.8), (4, 1.0)):
    obs = np.array([feature, 0.5, 0.5], dtype=np.float32)
    print(f"PPO hints {digits}-digit sums: {bool(model.predict(obs, deterministic=True)[0])}")
