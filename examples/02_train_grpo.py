"""Tutorial: train the bundled tiny model with GRPO and watch held-out accuracy rise.

    python examples/02_train_grpo.py        # under 10 minutes on a laptop CPU
    RLVR_SMOKE=1 python examples/02_train_grpo.py   # a few seconds: checks that it runs
"""

import os

import gymnasium as gym
import torch

import rlvr_gym  # noqa: F401  (registers the rlvr/... env ids)
from rlvr_gym.agents import (
    DEFAULT_ENV_ID,
    DEFAULT_ENV_KWARGS,
    GRPO,
    TINY_MODEL_DIR,
    GRPOConfig,
    fresh_run_dir,
)

#: A fresh run directory each time (runs/example-grpo, then -2, -3, ...): runs never mix.
RUN_DIR = fresh_run_dir("runs/example-grpo")

SMOKE = os.environ.get("RLVR_SMOKE") == "1"
torch.set_num_threads(1)  # fastest for a model this small, and kind to a shared machine

# 1. The task: 2-3 digit addition. Training problems come from dataset seed 0, held-out
#    problems from seed 1 (same generator, different problems).
env = gym.make(DEFAULT_ENV_ID, seed=0, **DEFAULT_ENV_KWARGS)
held_out = gym.make(DEFAULT_ENV_ID, seed=1, **DEFAULT_ENV_KWARGS)

# 2. The agent: 32 problems x 8 samples per step, group z-score advantages, per-sequence
#    loss ("grpo"); try loss_type="dapo" with epsilon_high=0.28 for DAPO's token-mean loss
#    and clip-higher. Every field has a help line: `rlvr-gym train --help-config`.
STEPS = 2 if SMOKE else 150
config = GRPOConfig(
    prompts_per_step=4 if SMOKE else 32,
    group_size=8,
    lr=2e-4,  # peak learning rate after 20 warm-up steps; 3e-4 collapses this model
    decay_steps=0 if SMOKE else STEPS,  # then down to 0 at the last step: the run ends steady
    eval_problems=10 if SMOKE else 200,
    eval_samples=2 if SMOKE else 8,
    eval_k=(1, 2) if SMOKE else (1, 8),
    output_dir=str(RUN_DIR),
)
agent = GRPO(TINY_MODEL_DIR, env, config, eval_env=held_out)

# 3. Learn. Held-out accuracy is measured before and after; metrics.jsonl, metrics.csv and
#    curves.png land in RUN_DIR (a fresh directory each run).
agent.learn(total_steps=STEPS)
before, after = agent.eval_history[0], agent.eval_history[-1]
print(f"held-out greedy accuracy: {before['accuracy']:.2f} -> {after['accuracy']:.2f}")

# 4. Use the trained policy like any Gymnasium agent, then save it (exact resume).
obs, info = held_out.reset(seed=7)
response, _ = agent.predict(obs)
_, reward, *_ = held_out.step(response)
print(f"{obs.strip()}  ->  {response!r}  reward {reward}")
agent.save(RUN_DIR / "agent")
