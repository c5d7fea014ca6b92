"""A miniature of SEELE's main table (arXiv 2509.06923, Table 1): SEELE vs GRPO on a split
where the bundled model's reward is about zero, at equal rollout budgets.

Hard split: `rlvr/Arithmetic-v0` with three 2-digit operands and "+" (the model was trained
on two operands). Per step both methods sample the same number of completions: GRPO draws
`problems` problems x `rounds * samples` completions; SEELE the same problems count x
`rounds` rounds x `samples` completions with hints. Held-out accuracy is measured on dataset
seed 1 WITHOUT hints. Also run: SEELE with gamma = 0 (RL on hinted rollouts only), which
separates what the hints' RL signal does from what imitating the hint does.

    python -m benchmarks.seele                     # 3 seeds x 3 methods, writes results/seele.md
    python -m benchmarks.seele --steps 3 --seeds 0 --report /tmp/seele.md   # quick look
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import rlvr_gym  # noqa: F401  (registers the env ids)
from benchmarks.common import RESULTS_DIR, provenance
from rlvr_gym.agents.grpo import GRPO, GRPOConfig, PolicyGradient
from rlvr_gym.agents.policy import Policy, SamplingConfig
from rlvr_gym.agents.rollout import evaluate
from rlvr_gym.agents.seele import SEELE, SEELEConfig, hinted_env
from rlvr_gym.agents.tiny import TINY_MODEL_DIR
from rlvr_gym.wrappers.hints import hint_text, solution_units

HARD = {"operators": "+", "min_digits": 2, "max_digits": 2, "min_operands": 3,
        "max_operands": 3, "prompt": "{question}\n"}
ENV_ID = "rlvr/Arithmetic-v0"
MAX_NEW_TOKENS = 48  # the longest 3-operand solution is 42 characters plus end-of-text


@dataclass(frozen=True)
class Budget:
    """What every method gets: the same steps, problems per step and completions per problem."""

    steps: int
    problems: int
    rounds: int
    samples: int
    lr: float
    num_minibatches: int
    eval_problems: int
    eval_samples: int


def make_env(seed: int) -> gym.Env:
    return gym.make(ENV_ID, seed=seed, **HARD)


def build(method: str, seed: int, budget: Budget) -> PolicyGradient:
    shared = dict(prompts_per_step=budget.problems, max_new_tokens=MAX_NEW_TOKENS, lr=budget.lr,
                  num_minibatches=budget.num_minibatches, seed=seed, device="cpu",
                  eval_problems=budget.eval_problems, eval_samples=budget.eval_samples,
                  eval_k=(1, budget.eval_samples),
                  warmup_steps=0)  # constant lr, as results/seele.md was recorded
    if method == "grpo":
        config = GRPOConfig(group_size=budget.rounds * budget.samples, **shared)
        return GRPO(TINY_MODEL_DIR, make_env(0), config, eval_env=make_env(1))
    gamma = {"seele": SEELEConfig().imitation_coef, "seele-gamma0": 0.0}[method]
    config = SEELEConfig(rounds=budget.rounds, group_size=budget.samples,
                         imitation_coef=gamma, **shared)
    return SEELE(TINY_MODEL_DIR, hinted_env(make_env(0), config, TINY_MODEL_DIR), config,
                 eval_env=make_env(1))


def first_step_hint_accuracy(policy: Policy, problems: int) -> float:
    """Held-out greedy accuracy when the first solution line is given: how far along the
    hint curve the model has come (the S-curve moving left), measured without training."""
    env = make_env(1)
    prompts, prefixes = [], []
    for i in range(problems):
        obs, info = env.reset(options={"index": i})
        prompts.append(obs)
        prefixes.append(hint_text(solution_units(info["solution"], "steps"), 1 / 3))
    gens = policy.generate(prompts, SamplingConfig(0.0, 1.0, MAX_NEW_TOKENS), prefixes)
    hits = []
    for i, gen in enumerate(gens):
        env.reset(options={"index": i})
        hits.append(env.step(gen.response)[4]["verdict"].correct)
    return float(np.mean(hits))


def run(method: str, seed: int, budget: Budget) -> dict[str, Any]:
    torch.manual_seed(seed)
    cpu, wall = time.process_time(), time.perf_counter()
    agent = build(method, seed, budget)
    steps: list[dict[str, Any]] = []
    agent.learn(budget.steps, callback=lambda a, m: steps.append(m), progress_bar=False)
    result = agent.eval_history[-1]
    row = {"method": method, "seed": seed, "steps": steps,
           "accuracy": result["accuracy"], "pass@1": result["pass@1"],
           f"pass@{budget.eval_samples}": result[f"pass@{budget.eval_samples}"],
           "first_step_hint_accuracy": first_step_hint_accuracy(agent.policy,
                                                                budget.eval_problems),
           "cpu_seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall}
    print(f"{method} seed {seed}: held-out accuracy {row['accuracy']:.3f}, pass@1 "
          f"{row['pass@1']:.3f}, train reward {mean(steps, 'reward'):.3f}, Eff-Rate "
          f"{mean(steps, 'eff_rate'):.2f}, {row['cpu_seconds']:.0f} CPU s", flush=True)
    return row


def mean(steps: list[dict[str, Any]], key: str, part: slice = slice(None)) -> float:
    values = [s[key] for s in steps[part] if key in s]
    return float(np.mean(values)) if values else float("nan")


def base_model_row(budget: Budget) -> dict[str, float]:
    """The bundled model before training, without hints (every run starts from it)."""
    policy = Policy.from_pretrained(TINY_MODEL_DIR, "cpu")
    torch.manual_seed(0)
    metrics = evaluate(policy, make_env(1), budget.eval_problems, budget.eval_samples,
                       (1, budget.eval_samples), 1.0, MAX_NEW_TOKENS)
    metrics["first_step_hint_accuracy"] = first_step_hint_accuracy(policy, budget.eval_problems)
    return metrics


def fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def write_report(rows: list[dict[str, Any]], base: dict[str, float], budget: Budget,
                 command: str, path: Path) -> None:
    k = budget.eval_samples
    per_step = budget.problems * budget.rounds * budget.samples
    lines = [
        "# Benchmark: SEELE vs GRPO on a hard split (miniature of the paper's Table 1)", "",
        *provenance(command, ("transformers", "scipy")), "",
        f"Task: `{ENV_ID}` with {HARD} (training: dataset seed 0; held-out: the first "
        f"{budget.eval_problems} problems of seed 1). The bundled tiny model was trained on "
        "two operands only.", "",
        f"Equal rollout budgets: {budget.steps} steps x {budget.problems} problems x "
        f"{budget.rounds * budget.samples} completions = {per_step} completions per step "
        f"(SEELE: {budget.rounds} rounds x {budget.samples}); lr {budget.lr}, "
        f"{budget.num_minibatches} mini-batches per step, max {MAX_NEW_TOKENS} new tokens, "
        "temperature 1. GRPO: GRPOConfig defaults otherwise (z-score advantages, per-sequence "
        "loss). SEELE: SEELEConfig defaults (Dr. GRPO advantages over all rounds, token-sum "
        f"loss / L, target accuracy 0.5, hints in tokens, gamma = "
        f"{SEELEConfig().imitation_coef}); `seele-gamma0` is SEELE without the imitation term.",
        "",
        f"Held-out metrics are WITHOUT hints: greedy accuracy, pass@1 and pass@{k} (unbiased, "
        f"{k} samples at T = 1). `1st-step hint acc.` is held-out greedy accuracy when the "
        "first solution line is given (a point on the accuracy-vs-hint curve).", "",
        f"Before training (all runs): accuracy {fmt(base['accuracy'])}, pass@1 "
        f"{fmt(base['pass@1'])}, pass@{k} {fmt(base[f'pass@{k}'])}, 1st-step hint acc. "
        f"{fmt(base['first_step_hint_accuracy'])}.", "",
        "## Per run", "",
        f"| method | seed | held-out acc. | pass@1 | pass@{k} | 1st-step hint acc. | train "
        "reward | Eff-Rate | hint ratio (first 5 / last 5 steps) | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["steps"]
        ratio = (f"{fmt(mean(s, 'hint_ratio', slice(0, 5)), 2)} / "
                 f"{fmt(mean(s, 'hint_ratio', slice(-5, None)), 2)}"
                 if "hint_ratio" in s[0] else "0 (no hints)")
        lines.append(f"| {r['method']} | {r['seed']} | {fmt(r['accuracy'])} | "
                     f"{fmt(r['pass@1'])} | {fmt(r[f'pass@{k}'])} | "
                     f"{fmt(r['first_step_hint_accuracy'])} | {fmt(mean(s, 'reward'))} | "
                     f"{fmt(mean(s, 'eff_rate'), 2)} | {ratio} | {r['cpu_seconds']:.0f} |")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines += ["", "## Mean over seeds", "",
              f"| method | held-out acc. | pass@1 | pass@{k} | 1st-step hint acc. | train "
              "reward | Eff-Rate | CPU s |", "|---|---|---|---|---|---|---|---|"]
    for m in methods:
        group = [r for r in rows if r["method"] == m]

        def avg(key: str, group: list[dict[str, Any]] = group) -> float:
            return float(np.mean([r[key] for r in group]))

        lines.append(f"| {m} | {fmt(avg('accuracy'))} | {fmt(avg('pass@1'))} | "
                     f"{fmt(avg(f'pass@{k}'))} | {fmt(avg('first_step_hint_accuracy'))} | "
                     f"{fmt(float(np.mean([mean(r['steps'], 'reward') for r in group])))} | "
                     f"{fmt(float(np.mean([mean(r['steps'], 'eff_rate') for r in group])), 2)}"
                     f" | {avg('cpu_seconds'):.0f} |")
    lines += ["", "## Over training (mean over seeds, per block of steps)", "",
              "Eff-Rate = share of problems whose completions (all rounds for SEELE) do not all "
              "get the same reward. Rollout accuracy per round is SEELE's, against target 0.5.",
              ""]
    blocks = _blocks(budget.steps)
    header = "| method | metric | " + " | ".join(f"steps {a + 1}-{b}" for a, b in blocks) + " |"
    lines += [header, "|---|---|" + "---|" * len(blocks)]
    keys = ["eff_rate", "reward", "hint_ratio", "hint_nll",
            *(f"accuracy_round{i + 1}" for i in range(budget.rounds))]
    for m in methods:
        group = [r for r in rows if r["method"] == m]
        for key in keys:
            if key not in group[0]["steps"][0]:
                continue
            cells = [fmt(float(np.mean([mean(r["steps"], key, slice(a, b)) for r in group])), 2)
                     for a, b in blocks]
            lines.append(f"| {m} | {key} | " + " | ".join(cells) + " |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _blocks(steps: int, count: int = 4) -> list[tuple[int, int]]:
    edges = np.linspace(0, steps, min(count, steps) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["grpo", "seele", "seele-gamma0"],
                        choices=["grpo", "seele", "seele-gamma0"])
    parser.add_argument("--steps", type=int, default=20, help="training steps per run")
    parser.add_argument("--problems", type=int, default=4, help="problems per step")
    parser.add_argument("--rounds", type=int, default=4, help="SEELE rounds per problem")
    parser.add_argument("--samples", type=int, default=4, help="SEELE completions per round")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate of every method")
    parser.add_argument("--num-minibatches", type=int, default=4,
                        help="optimiser steps per sampled batch (paper: 256 / 64 = 4)")
    parser.add_argument("--eval-problems", type=int, default=100)
    parser.add_argument("--eval-samples", type=int, default=4)
    parser.add_argument("--report", default=str(RESULTS_DIR / "seele.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    budget = Budget(args.steps, args.problems, args.rounds, args.samples, args.lr,
                    args.num_minibatches, args.eval_problems, args.eval_samples)
    base = base_model_row(budget)
    print(f"bundled model on the hard split: {base}", flush=True)
    rows = [run(m, s, budget) for s in args.seeds for m in args.methods]
    command = shlex.join(["python", "-m", "benchmarks.seele", *sys.argv[1:]])
    write_report(rows, base, budget, command, Path(args.report))


if __name__ == "__main__":
    main()
