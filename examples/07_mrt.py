"""Tutorial: MRT (arXiv 2503.07572) - episodes, the meta-prover, progress, regret, training.

    python examples/07_mrt.py               # a few minutes on a laptop CPU
    RLVR_SMOKE=1 python examples/07_mrt.py  # seconds: checks that it runs

MRT views a response as episodes (an attempt, "Wait, ..." a re-check, ...) and asks after
each one: if the model had to answer now, how likely is it to be right? That chance, J, comes
from the *meta-prover*: the policy itself, forced to answer by a suffix. An episode's progress
is the change in J it makes; a response's regret is the area above its J-vs-tokens curve.
"""

import os

import gymnasium as gym
import torch

import rlvr_gym  # noqa: F401  (registers the rlvr/... env ids)
from rlvr_gym.agents import (
    DEFAULT_ENV_ID,
    DEFAULT_ENV_KWARGS,
    MRT,
    TINY_MODEL_DIR,
    MetaProver,
    MRTConfig,
    Policy,
    SamplingConfig,
    budget_forcing,
    fresh_run_dir,
    regret_traces,
    summarize_regret,
)
from rlvr_gym.verifiers import MathVerifier
from rlvr_gym.wrappers import ProgressReward, TokenBudget

#: A fresh run directory each time (runs/example-mrt, then -2, -3, ...): runs never mix.
RUN_DIR = fresh_run_dir("runs/example-mrt")

SMOKE = os.environ.get("RLVR_SMOKE") == "1"
torch.set_num_threads(1)
torch.manual_seed(0)

# The bundled tiny model answers "a + b = c\n\boxed{c}". Verify on \boxed{} only, so that a
# response cut before its box counts as no answer.
policy = Policy.from_pretrained(TINY_MODEL_DIR, "cpu")


def strict_env(seed: int) -> gym.Env:
    return gym.make(DEFAULT_ENV_ID, seed=seed, verifier=MathVerifier(last_number_fallback=False),
                    **DEFAULT_ENV_KWARGS)


env = strict_env(1)

# 1. The meta-prover: append "\n\boxed{" to a prefix, sample K answers, have the env judge
#    each whole response, average. Its env must take whole responses (no hint wrapper).
prover = MetaProver(policy, env.unwrapped, suffix="\n\\boxed{", samples=8)
prompt, info = env.reset(options={"index": 0})
problem = info["problem"]
expression = problem.meta["expression"]
for prefix in ("", f"{expression} = {int(problem.answer) + 10}",
               f"{expression} = {problem.answer}"):
    print(f"J({prefix!r}) = {prover(problem, prompt, prefix):.2f}")

# 2. Episodes as env steps: TokenBudget makes one step per episode within a token budget;
#    ProgressReward adds alpha * (J(after) - J(before)) to each step's reward. The bundled
#    model has never seen a re-check, so J may stay low after one; benchmarks/mrt.py first
#    teaches it to retry. The prover resets and steps its own env for every forced answer, so
#    the stepwise episode runs on a second instance of the env.
stepwise = ProgressReward(TokenBudget(strict_env(1), policy.tokenizer, budget_tokens=96), prover,
                          alpha=1)
obs, info = stepwise.reset(options={"index": 0})
episodes = [f"{expression} = {int(problem.answer) + 10}",
            f"\n\nWait, let me recheck.\n{expression} = {problem.answer}",
            f"\n\\boxed{{{problem.answer}}}"]
for episode in episodes:
    obs, reward, terminated, truncated, info = stepwise.step(episode)
    print(f"episode {info['episode_index']}: J {info['J']:.2f} progress {info['progress']:+.2f} "
          f"reward {reward:+.2f} tokens {info['total_tokens']}")
    if terminated or truncated:
        break

# 3. Regret of the policy: J after every episode of sampled responses, then the area above
#    the curve up to a budget C0 (0 = right from the first token, 1 = never right).
traces = regret_traces(policy, env, prover, num_problems=10 if SMOKE else 100, budget_tokens=64)
print("regret at C0=64:", {k: round(v, 3) for k, v in summarize_regret(traces, 64).items()})

# 4. Budget forcing: when a response stops without an answer, append "\n\nWait," and go on.
forced = budget_forcing(policy, [prompt], 64, SamplingConfig(1.0, 1.0, 64), "\n\nWait,", 2)
print(f"budget forcing: {forced[0].text!r} ({forced[0].tokens} tokens, "
      f"{forced[0].extensions} extensions)")

# 5. Training: GRPO's loss on continuations of stale prefixes. 'termination' uses
#    A = r - J(c); 'progress' uses R = r + alpha (J after the first new episode - J(c)).
#    Every field has a help line: `rlvr-gym train --agent mrt --help-config`.
train_env = strict_env(0)
config = MRTConfig(variant="termination", prompts_per_step=2 if SMOKE else 16, group_size=4,
                   max_new_tokens=48, termination_samples=2 if SMOKE else 4,
                   eval_problems=10 if SMOKE else 200, eval_samples=0,
                   warmup_steps=0,  # a 20-step run: no learning-rate warm-up
                   output_dir=str(RUN_DIR))
agent = MRT(policy, train_env, config, eval_env=env)
agent.learn(total_steps=1 if SMOKE else 20, progress_bar=not SMOKE)
before, after = agent.eval_history[0], agent.eval_history[-1]
print(f"held-out greedy accuracy {before['accuracy']:.2f} -> {after['accuracy']:.2f}; "
      "per-step J(c), prefix episodes and outcome reward are in", RUN_DIR / "metrics.csv")
