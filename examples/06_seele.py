"""Tutorial: SEELE, hint scaffolding that keeps every problem near 50% rollout accuracy.

On a task the bundled model cannot do at all, plain GRPO sees only zero rewards and learns
nothing. SEELE (arXiv 2509.06923) starts each problem's response with a prefix of the
reference solution, sized per problem by an Item Response Theory fit so that about half of
the rollouts succeed, and adds an imitation term on the hint tokens.

    python examples/06_seele.py              # about 3 CPU minutes
    RLVR_SMOKE=1 python examples/06_seele.py # a few seconds: checks that it runs
"""

import os

import gymnasium as gym
import torch

import rlvr_gym  # noqa: F401  (registers the rlvr/... env ids)
from rlvr_gym.agents.monitors import fresh_run_dir
from rlvr_gym.agents.seele import SEELE, SEELEConfig, hinted_env
from rlvr_gym.agents.tiny import TINY_MODEL_DIR
from rlvr_gym.wrappers import HintScaffold, IRTCurve

#: A fresh run directory each time (runs/example-seele, then -2, -3, ...): runs never mix.
RUN_DIR = fresh_run_dir("runs/example-seele")

SMOKE = os.environ.get("RLVR_SMOKE") == "1"
torch.set_num_threads(1)  # fastest for a model this small, and kind to a shared machine

# 1. A hard split for the bundled model: three 2-digit operands instead of two. The reference
#    solution does one addition per line, e.g. "52 + 56 = 108\n108 + 77 = 185\n\boxed{185}".
HARD = dict(operators="+", min_digits=2, max_digits=2, min_operands=3, max_operands=3,
            prompt="{question}\n")
env = gym.make("rlvr/Arithmetic-v0", seed=0, **HARD)
held_out = gym.make("rlvr/Arithmetic-v0", seed=1, **HARD)

# 2. The wrapper on its own: the observation is the prompt followed by the hint, and `info`
#    names the hint so an agent can mask it. The action continues the hint.
hinted = HintScaffold(gym.make("rlvr/Arithmetic-v0", seed=0, **HARD), unit="steps")
obs, info = hinted.reset(seed=0)
print(f"hinted observation (ratio {info['hint_ratio']:.2f}, round {info['hint_round']}):")
print(f"  {obs!r}")
# The cold start reveals all but the last step; the last line finishes the solution.
_, reward, *_ = hinted.step(info["solution"][len(info["hint"]):])
print(f"  finishing it gives reward {reward}")

# The accuracy-vs-hint curve it fits: f(p) = b + (1 - b) / (1 + exp(-k (p + mu))). The hint
# ratio handed out next is its inverse at the target accuracy.
curve = IRTCurve(k=12.0, mu=-0.7, b=0.0)
print(f"  a curve with midpoint 0.7 asks for ratio {curve.inverse(0.5):.2f} to reach 50%")

# 3. The agent: per step, 4 problems x 4 rounds x 4 completions (64 completions, what GRPO
#    with group_size=16 would sample). Every field has a help line:
#    `rlvr-gym train --agent seele --help-config`.
config = SEELEConfig(
    prompts_per_step=2 if SMOKE else 4,
    rounds=4,
    group_size=2 if SMOKE else 4,
    max_new_tokens=16 if SMOKE else 48,  # the 3-operand solution is about 42 characters
    target_accuracy=0.5,
    imitation_coef=1.0,  # gamma; the paper's 0.001 suits 1.5B models that know the format
    lr=1e-3,  # faster than GRPO's 2e-4 default; benchmarks/results/seele.md was run with it
    num_minibatches=4,  # four optimiser steps per sampled batch, as the paper's 256 / 64
    warmup_steps=0,  # a 40-step run: no learning-rate warm-up
    eval_problems=5 if SMOKE else 100,
    eval_samples=2 if SMOKE else 4,
    eval_k=(1, 2) if SMOKE else (1, 4),
    output_dir=str(RUN_DIR),
)
# SEELE reads the hints from the env: `hinted_env` wraps it in the HintScaffold the config asks
# for (target, rounds, group_size completions per round), counting hints in tokens of the
# model's tokenizer.
agent = SEELE(TINY_MODEL_DIR, hinted_env(env, config, TINY_MODEL_DIR), config, eval_env=held_out)

# 4. Learn, and watch the monitors: rollout accuracy per round against the target, the mean
#    hint ratio and Eff-Rate (share of problems whose rollouts disagree, i.e. carry gradient).
def report(agent: SEELE, metrics: dict) -> None:
    rounds = " ".join(f"{metrics[f'accuracy_round{r}']:.2f}" for r in range(1, config.rounds + 1))
    print(f"step {agent.num_steps}: accuracy per round {rounds} (target "
          f"{metrics['target_accuracy']}), hint ratio {metrics['hint_ratio']:.2f}, "
          f"Eff-Rate {metrics['eff_rate']:.2f}, hint NLL {metrics.get('hint_nll', 0):.2f}")


agent.learn(total_steps=2 if SMOKE else 40, callback=report, progress_bar=False)

# 5. Held-out accuracy is measured WITHOUT hints: the scaffold is for training only.
before, after = agent.eval_history[0], agent.eval_history[-1]
print(f"held-out greedy accuracy without hints: {before['accuracy']:.2f} -> "
      f"{after['accuracy']:.2f}")

# 6. Save: the checkpoint holds the scaffold's state too (each problem's stored ratio), so a
#    resumed run, given the env wrapped the same way, hands out the same hints.
agent.save(RUN_DIR / "agent")
resumed = SEELE.load(RUN_DIR / "agent",
                     hinted_env(gym.make("rlvr/Arithmetic-v0", seed=0, **HARD), config,
                                TINY_MODEL_DIR))
print(f"resumed at step {resumed.num_steps} with {len(resumed.env.state_dict())} "
      "problems' hint state")
