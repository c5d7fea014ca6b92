"""Classic RL on a reasoning env: stable-baselines3 PPO learns one-digit addition one token
at a time through the `TokenLevel` view (SB3 cannot use text spaces).

Run: python examples/05_sb3_token_level.py         (about 2 CPU minutes, ~70% accuracy)
     RLVR_SMOKE=1 python examples/05_sb3_token_level.py   (a few seconds, for the test suite)
"""

import os

import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

import rlvr_gym  # noqa: F401  (registers the rlvr/... ids)
from rlvr_gym.wrappers.token_level import TokenLevel

STEPS = 2_000 if os.environ.get("RLVR_SMOKE") else 100_000


def make_env() -> gym.Env:
    # "Compute 3 + 4." -> observation: token ids of " 3 + 4." then the answer typed so far.
    text_env = gym.make("rlvr/Arithmetic-v0", max_digits=1, max_operands=2, operators="+",
                        prompt="{question}")
    return TokenLevel(text_env, max_length=12, max_new_tokens=2)  # action: one of 21 tokens


model = PPO("MlpPolicy", make_env(), seed=0, n_steps=2048, batch_size=256, learning_rate=1e-3,
            ent_coef=0.01, policy_kwargs={"net_arch": [256, 256]})
model.learn(total_timesteps=STEPS, progress_bar=False)

# The reward is 1 for a verified correct answer and 0 otherwise: mean reward = accuracy.
accuracy, _ = evaluate_policy(model, Monitor(make_env()), n_eval_episodes=200, deterministic=True)
print(f"PPO after {STEPS} steps: accuracy {accuracy:.0%} on one-digit addition "
      f"(a random policy gets about 3%)")
