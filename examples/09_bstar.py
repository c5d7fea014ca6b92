"""Tutorial: B-STaR, self-improvement that watches its own exploration and exploitation.

    python examples/09_bstar.py              # about 5 minutes on a laptop CPU
    RLVR_SMOKE=1 python examples/09_bstar.py # a few seconds: checks that it runs

B-STaR (arXiv 2412.17256) is rejection fine-tuning: sample K responses per question, keep
those whose reward clears a threshold, fine-tune on them, repeat. Its addition is a search,
every iteration, over the sampling temperature (exploration) and the reward threshold
(exploitation) that maximises a *balance score*: enough distinct correct responses per
question (up to n*), and few wrong ones among what is kept.
"""

import os

import gymnasium as gym
import torch

import rlvr_gym  # noqa: F401  (registers the rlvr/... env ids)
from rlvr_gym.agents import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, TINY_MODEL_DIR, fresh_run_dir
from rlvr_gym.agents.balance import Sample, balance_score, search_balance
from rlvr_gym.agents.bstar import BSTaR, BSTaRConfig
from rlvr_gym.verifiers.steps import ArithmeticStepScorer

#: A fresh run directory each time (runs/example-bstar, then -2, -3, ...): runs never mix.
RUN_DIR = fresh_run_dir("runs/example-bstar")

SMOKE = os.environ.get("RLVR_SMOKE") == "1"
torch.set_num_threads(1)

# 1. The reward. The verifier checks the final answer; a step scorer stands in for a process
#    reward model: the minimum over the `a op b = c` lines of +1 (true) / -1 (false), plus
#    noise so that, like a learned PRM, it can be fooled. Reward = 1(correct) + step score.
scorer = ArithmeticStepScorer(noise=0.5, seed=0)
for response in ("12 + 30 = 42\n\\boxed{42}", "12 + 30 = 41\n\\boxed{42}"):
    print(f"{response!r}: step score {scorer(response):+.2f}")

# 2. The balance score on hand-made samples: per query min(n'/n*, 1) * n'/n, where n counts
#    the distinct responses with reward > tau and n' the distinct correct ones among them.
samples = [Sample("q", "a", True, 2.0), Sample("q", "b", True, 0.4),
           Sample("q", "c", False, 0.6), Sample("q", "d", False, -1.0)]
for tau in (-1.0, 0.0, 0.5, 1.0):
    print(f"tau {tau:+.1f}: balance score {balance_score(samples, tau, n_star=2):.3f}")
choice = search_balance({1.0: samples}, thresholds=[-1.0, 0.0, 0.5, 1.0], n_star=2)
print(f"best threshold {choice.threshold:+.1f} (score {choice.score:.3f})")

# 3. The agent. Every iteration it samples a fixed subset of training questions at each
#    temperature of the grid, picks (T, tau) by the balance score, samples fresh questions at
#    T, keeps reward > tau and fine-tunes for a fixed number of steps, continuing optimiser
#    and learning-rate schedule. mode="online_rft" keeps (temperature, threshold) fixed
#    instead; "iterative_rft" and "restart" are the paper's other baselines. The step scorer
#    is passed to the agent (without one the reward is the answer check alone).
env = gym.make(DEFAULT_ENV_ID, seed=0, **DEFAULT_ENV_KWARGS)
held_out = gym.make(DEFAULT_ENV_ID, seed=1, **DEFAULT_ENV_KWARGS)
iterations = 1 if SMOKE else 6
config = BSTaRConfig(
    mode="bstar",
    queries_per_iteration=4 if SMOKE else 64,
    samples_per_query=4 if SMOKE else 8,
    search_queries=4 if SMOKE else 40,
    temperature_grid=(0.7, 1.0) if SMOKE else (0.5, 0.7, 0.9, 1.1),
    steps_per_iteration=2 if SMOKE else 8,
    batch_size=8 if SMOKE else 32,
    lr=2e-4,
    schedule_steps=(2 if SMOKE else 8) * iterations,
    eval_problems=10 if SMOKE else 150,
    eval_samples=0,  # greedy accuracy during training; sampled monitors at the end
    output_dir=str(RUN_DIR),
)
agent = BSTaR(TINY_MODEL_DIR, env, config, eval_env=held_out, step_scorer=scorer)
agent.learn(total_steps=config.steps_per_iteration * iterations)

# 4. What it chose and what it saw: the monitors are measured on the policy each iteration
#    starts from (Pass@K, Pass@K-S with S = 2, distinct-equation diversity).
for record in agent.history:
    print(f"iteration {record['iteration']}: T {record['temperature']:.1f}  "
          f"tau {record['threshold']:+.1f}  balance {record['balance_score']:.3f}  "
          f"Pass@K-S {record['subset/pass_at_k_s']:.3f}  "
          f"diversity {record['subset/distinct_equations']:.3f}  pool {record['pool_size']}")
before, after = agent.eval_history[0], agent.eval_history[-1]
print(f"held-out greedy accuracy (Pass@1): {before['accuracy']:.2f} -> {after['accuracy']:.2f}")
print("held-out monitors at T = 1.0:", {k: round(v, 3) for k, v in
                                        agent.evaluate(samples=2 if SMOKE else 8).items()})
agent.save(RUN_DIR / "agent")
