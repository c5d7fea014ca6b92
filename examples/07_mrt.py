"""Tutorial: MRT (arXiv 2503.07572) - episodes, the meta-prover, progress, regret, training.

    python examples/07_mrt.py               # a few minutes on a laptop CPU
    RLVR_SMOKE=1 python examples/07_mrt.py  # seconds: checks that it runs

MRT views a response as episodes (an attempt, "Wait" and another attempt, ...) and asks after
each one: if the model had to answer now, how likely is it to be right? That chance, J, comes
from the *meta-prover*: the policy itself, forced to answer by a suffix. An episode's progress
is the change in J it makes; a response's regret is the area above its J-vs-tokens curve.
Prints: J before any work, after a missed attempt and after the hit; each episode's J,
progress and reward as env steps; the policy's regret; a budget-forced response; held-out
accuracy before and after 20 MRT steps.
"""

import os

import gymnasium as gym
import torch

import rlvr_gym  # noqa: F401  (registers the rlvr/... env ids)
from rlvr_gym.agents import (
    MRT,
    MetaProver,
    MRTConfig,
    Policy,
    SamplingConfig,
    budget_forcing,
    fresh_run_dir,
    regret_traces,
    summarize_regret,
)
from rlvr_gym.agents.tiny import BUNDLED_MODELS
from rlvr_gym.wrappers import ProgressReward, TokenBudget
from rlvr_gym.wrappers.budget import split_episodes

#: A fresh run directory each time (runs/example-mrt, then -2, -3, ...): runs never mix.
RUN_DIR = fresh_run_dir("runs/example-mrt")

SMOKE = os.environ.get("RLVR_SMOKE") == "1"
torch.set_num_threads(1)
torch.manual_seed(0)

# A task where a later episode can catch an earlier miss: reach a target with three numbers
# and + -. Finding an expression takes guessing; checking one is two small sums. The bundled
# `tiny-countdown` model learned from search traces: attempts, each worked out and rejected
# when it misses ("2 + 5 = 7, not 19."), separated by "\n\nWait\n", until one hits and is
# boxed. Its verifier reads only the \boxed{} expression.
countdown = BUNDLED_MODELS["tiny-countdown"]
policy = Policy.from_pretrained(countdown.directory, "cpu")
BUDGET = countdown.max_new_tokens  # 160 tokens: room for the longest reference search


def task_env(seed: int) -> gym.Env:
    return gym.make(countdown.env_id, seed=seed, **countdown.env_kwargs)


env = task_env(1)

# 1. The meta-prover: append "\n\boxed{" to a prefix, sample K answers, have the env judge
#    each whole response, average. Its env must take whole responses (no hint wrapper). The
#    prefixes here are a reference search of a held-out problem: a miss, then the hit.
prover = MetaProver(policy, env.unwrapped, suffix="\n\\boxed{", samples=8)
index = next(i for i in range(100)
             if len(split_episodes(env.unwrapped.source[i].solution)) > 1)
prompt, info = env.reset(options={"index": index})
problem = info["problem"]
episodes = split_episodes(problem.solution)
print(prompt.strip())
for prefix in ("", episodes[0], "".join(episodes)):
    print(f"J({prefix!r}) = {prover(problem, prompt, prefix):.2f}")

# 2. Episodes as env steps: TokenBudget makes one step per episode within a token budget;
#    ProgressReward adds alpha * (J(after) - J(before)) to each step's reward, so the episode
#    that catches the miss earns the progress. The prover resets and steps its own env for
#    every forced answer, so the stepwise episode runs on a second instance of the env.
stepwise = ProgressReward(TokenBudget(task_env(1), policy.tokenizer, budget_tokens=BUDGET), prover,
                          alpha=1)
stepwise.reset(options={"index": index})
for episode in episodes:
    obs, reward, terminated, truncated, info = stepwise.step(episode)
    print(f"episode {info['episode_index']}: J {info['J']:.2f} progress {info['progress']:+.2f} "
          f"reward {reward:+.2f} tokens {info['total_tokens']}")
    if terminated or truncated:
        break

# 3. Regret of the policy: J after every episode of sampled responses, then the area above
#    the curve up to a budget C0 (0 = right from the first token, 1 = never right).
traces = regret_traces(policy, env, prover, num_problems=10 if SMOKE else 100,
                       budget_tokens=BUDGET)
print(f"regret at C0={BUDGET}:",
      {k: round(v, 3) for k, v in summarize_regret(traces, BUDGET).items()})

# 4. Budget forcing: when a response stops without an answer, append "\n\nWait\n" and go on.
forced = budget_forcing(policy, [prompt], BUDGET, SamplingConfig(1.0, 1.0, BUDGET), "\n\nWait\n",
                        2)
print(f"budget forcing: {forced[0].text!r} ({forced[0].tokens} tokens, "
      f"{forced[0].extensions} extensions)")

# 5. Training: GRPO's loss on continuations of stale prefixes. 'termination' uses
#    A = r - J(c); 'progress' uses R = r + alpha (J after the first new episode - J(c)).
#    Every field has a help line: `rlvr-gym train --agent mrt --help-config`.
train_env = task_env(0)
config = MRTConfig(variant="termination", prompts_per_step=2 if SMOKE else 16, group_size=4,
                   max_new_tokens=BUDGET, termination_samples=2 if SMOKE else 4,
                   eval_problems=10 if SMOKE else 200, eval_samples=0,
                   warmup_steps=0,  # a 20-step run: no learning-rate warm-up
                   output_dir=str(RUN_DIR))
agent = MRT(policy, train_env, config, eval_env=env)
agent.learn(total_steps=1 if SMOKE else 20, progress_bar=not SMOKE)
before, after = agent.eval_history[0], agent.eval_history[-1]
print(f"held-out greedy accuracy {before['accuracy']:.2f} -> {after['accuracy']:.2f}; "
      "per-step J(c), prefix episodes and outcome reward are in", RUN_DIR / "metrics.csv")
