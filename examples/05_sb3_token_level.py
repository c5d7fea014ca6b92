"""Classic RL on a reasoning env: stable-baselines3 PPO learns one-digit addition one token
at a time through the `TokenLevel` view (SB3 cannot use text spaces).

Run: python examples/05_sb3_token_level.py         (about 1 CPU minute: accuracy 56.6%, from
                                                    0.0% before training)
     RLVR_SMOKE=1 python examples/05_sb3_token_level.py   (a few seconds, for the test suite)

PPO runs on one torch thread: how a matrix product is rounded depends on how many threads
share it, and PPO's updates amplify such differences, so on another thread count the same seed
learns another policy with another accuracy. On one thread (also the fastest for this small
network) the run prints the same whatever the machine's core count.
"""

import os

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import rlvr_gym  # noqa: F401  (registers the rlvr/... ids)
from rlvr_gym.wrappers.token_level import TokenLevel

SMOKE = os.environ.get("RLVR_SMOKE") == "1"
STEPS, PROBLEMS = (2_000, 100) if SMOKE else (100_000, 1_000)
torch.set_num_threads(1)


def make_env() -> gym.Env:
    # "Compute 3 + 4." -> observation: token ids of " 3 + 4." then the answer typed so far.
    text_env = gym.make("rlvr/Arithmetic-v0", max_digits=1, max_operands=2, operators="+",
                        prompt="{question}")
    return TokenLevel(text_env, max_length=12, max_new_tokens=2)  # action: one of 21 tokens


def accuracy(model: PPO) -> float:
    """Greedy accuracy on the same PROBLEMS problems every time (the reward is 1 for a
    verified correct answer and 0 otherwise: mean reward = accuracy)."""
    env = DummyVecEnv([lambda: Monitor(make_env())])
    env.seed(1)
    mean_reward, _ = evaluate_policy(model, env, n_eval_episodes=PROBLEMS, deterministic=True)
    return float(mean_reward)


model = PPO("MlpPolicy", make_env(), seed=0, n_steps=2048, batch_size=256, learning_rate=1e-3,
            ent_coef=0.01, policy_kwargs={"net_arch": [256, 256]})
before = accuracy(model)
model.learn(total_timesteps=STEPS, progress_bar=False)
model.save("runs/ppo_token_level")
print(f"PPO after {STEPS} steps: accuracy {accuracy(model):.1%} on {PROBLEMS} one-digit "
      f"additions ({before:.1%} before training); saved to runs/ppo_token_level.zip")
