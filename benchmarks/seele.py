"""A miniature of SEELE's main table (arXiv 2509.06923, Table 1): SEELE vs GRPO at equal
rollout budgets, on a task where hints move the bundled chain model's accuracy.

Task: 6-term sums of one-digit numbers (`rlvr/Arithmetic-v0`, the hardest length the
`tiny-chain` model was trained on; its greedy accuracy there is about 0.3, sampled about 0.1).
Hints are the first lines of the reference solution, which the model can continue: the lever
check measures how far a hint lifts its sampled accuracy before any training. The training
set is finite (`--train-size` problems of dataset seed 0, drawn at random each step) and is
seen over several epochs, so a problem's stored hint ratio is used again. Per step every
method samples the same number of completions: GRPO draws `problems` problems x `rounds *
samples` completions; SEELE the same problems x `rounds` rounds x `samples` completions with
hints. Held-out accuracy is measured on dataset seed 1 WITHOUT hints. `seele-gamma0` is SEELE
without the imitation term (gamma = 0): RL on hinted rollouts only.

    python -m benchmarks.seele --jobs 2   # 10 seeds x 3 methods, writes results/seele.md
    python -m benchmarks.seele --steps 3 --seeds 0 --report /tmp/seele.md   # quick look
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import rlvr_gym  # noqa: F401  (registers the env ids)
from benchmarks.common import (
    RESULTS_DIR,
    check_report,
    level_verdict,
    paired,
    provenance,
    seeds_line,
    verdict,
)
from rlvr_gym.agents.grpo import GRPO, GRPOConfig, PolicyGradient
from rlvr_gym.agents.policy import Policy, SamplingConfig
from rlvr_gym.agents.rollout import evaluate, score
from rlvr_gym.agents.seele import SEELE, SEELEConfig, hinted_env
from rlvr_gym.agents.tiny import CHAIN_ENV_ID, CHAIN_ENV_KWARGS, TINY_CHAIN_MODEL_DIR
from rlvr_gym.wrappers.hints import hint_text, solution_units

MODEL = TINY_CHAIN_MODEL_DIR
ENV_ID = CHAIN_ENV_ID
HARD = {**CHAIN_ENV_KWARGS, "min_operands": 6, "max_operands": 6}
MAX_NEW_TOKENS = 80  # the longest 6-term solution is 66 tokens plus end-of-text
TOLERANCE = 0.05
"""How near the target SEELE's rollout accuracy must stay to count as pinned."""
LEVER_RATIOS = (0.0, 0.25, 0.5, 0.75)
"""Hint ratios (share of the solution's lines given) of the lever check."""


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
    train_size: int


def make_env(seed: int, size: int | None = None) -> gym.Env:
    return gym.make(ENV_ID, seed=seed, **HARD, **({"size": size} if size else {}))


def build(method: str, seed: int, budget: Budget) -> PolicyGradient:
    shared = dict(prompts_per_step=budget.problems, max_new_tokens=MAX_NEW_TOKENS, lr=budget.lr,
                  num_minibatches=budget.num_minibatches, seed=seed, device="cpu",
                  eval_problems=budget.eval_problems, eval_samples=budget.eval_samples,
                  eval_k=(1, budget.eval_samples),
                  warmup_steps=0)  # constant lr, as results/seele.md was recorded
    if method == "grpo":
        config = GRPOConfig(group_size=budget.rounds * budget.samples, **shared)
        return GRPO(MODEL, make_env(0, budget.train_size), config, eval_env=make_env(1))
    gamma = {"seele": SEELEConfig().imitation_coef, "seele-gamma0": 0.0}[method]
    config = SEELEConfig(rounds=budget.rounds, group_size=budget.samples,
                         imitation_coef=gamma, **shared)
    return SEELE(MODEL, hinted_env(make_env(0, budget.train_size), config, MODEL), config,
                 eval_env=make_env(1))


def hinted_accuracy(policy: Policy, env: gym.Env, problems: int, ratio: float,
                    samples: int = 1, temperature: float = 0.0) -> float:
    """Accuracy on problems 0..problems-1 of `env` when the first `ratio` of the solution's
    lines is given as the start of the response (0: no hint): a point on the accuracy-vs-hint
    curve, measured without training; `samples` completions per problem at `temperature`."""
    prompts, prefixes, ids = [], [], []
    for i in range(problems):
        obs, info = env.reset(options={"index": i})
        hint = hint_text(solution_units(info["solution"], "steps"), ratio)
        prompts += [obs] * samples
        prefixes += [hint] * samples
        ids += [info["problem_id"]] * samples
    gens = policy.generate(prompts, SamplingConfig(temperature, 1.0, MAX_NEW_TOKENS), prefixes)
    return float(np.mean([s.correct for s in score(env, ids, [g.response for g in gens])]))


def first_step_hint_accuracy(policy: Policy, problems: int) -> float:
    """Held-out greedy accuracy when the first third of the solution lines is given: how far
    along the hint curve the model has come (the S-curve moving left)."""
    return hinted_accuracy(policy, make_env(1), problems, 1 / 3)


def lever_check(train_size: int, samples: int = 8) -> dict[str, float]:
    """The bundled model's sampled accuracy (T = 1) on the training set at each hint ratio of
    `LEVER_RATIOS`: hints can act only if they move this toward the target 0.5."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    policy = Policy.from_pretrained(MODEL, "cpu")
    env = make_env(0, train_size)
    return {f"{r:.2f}": hinted_accuracy(policy, env, min(train_size, 32), r, samples, 1.0)
            for r in LEVER_RATIOS}


def run(method: str, seed: int, budget: Budget) -> dict[str, Any]:
    torch.set_num_threads(1)
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
    torch.set_num_threads(1)
    policy = Policy.from_pretrained(MODEL, "cpu")
    torch.manual_seed(0)
    metrics = evaluate(policy, make_env(1), budget.eval_problems, budget.eval_samples,
                       (1, budget.eval_samples), 1.0, MAX_NEW_TOKENS)
    metrics["first_step_hint_accuracy"] = first_step_hint_accuracy(policy, budget.eval_problems)
    return metrics


def fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def write_report(rows: list[dict[str, Any]], base: dict[str, float], lever: dict[str, float],
                 budget: Budget, command: str, path: Path) -> None:
    k = budget.eval_samples
    per_step = budget.problems * budget.rounds * budget.samples
    seeds = sorted({r["seed"] for r in rows})
    epochs = budget.steps * budget.problems / budget.train_size
    lines = [
        "# Benchmark: SEELE vs GRPO at equal rollout budgets (miniature of the paper's Table 1)",
        "", *provenance(command, ("transformers", "scipy")), seeds_line(seeds), "",
        f"Task: `{ENV_ID}` with {HARD}; model: the bundled `tiny-chain` (trained on 4-6 terms). "
        f"Training set: the first {budget.train_size} problems of dataset seed 0, drawn at "
        f"random ({epochs:.1f} epochs); held-out: the first {budget.eval_problems} problems of "
        "seed 1.", "",
        f"Equal rollout budgets: {budget.steps} steps x {budget.problems} problems x "
        f"{budget.rounds * budget.samples} completions = {per_step} completions per step "
        f"(SEELE: {budget.rounds} rounds x {budget.samples}); lr {budget.lr}, "
        f"{budget.num_minibatches} mini-batches per step, max {MAX_NEW_TOKENS} new tokens, "
        "temperature 1. GRPO: GRPOConfig defaults otherwise (z-score advantages, per-sequence "
        "loss). SEELE: SEELEConfig defaults (Dr. GRPO advantages over all rounds, token-sum "
        f"loss / L, target accuracy 0.5, hints in tokens, gamma = "
        f"{SEELEConfig().imitation_coef}); `seele-gamma0` is SEELE without the imitation term.",
        "",
        "## Lever check: accuracy against hint length, before training", "",
        "The bundled model's sampled accuracy (T = 1, 8 samples on "
        f"{min(budget.train_size, 32)} training problems) when the first share of the "
        "solution's lines is given:", "",
        "| hint ratio | " + " | ".join(lever) + " |", "|---" * (len(lever) + 1) + "|",
        "| accuracy | " + " | ".join(fmt(v) for v in lever.values()) + " |", "",
        f"Held-out metrics are WITHOUT hints: greedy accuracy, pass@1 and pass@{k} (unbiased, "
        f"{k} samples at T = 1). `1st-step hint acc.` is held-out greedy accuracy when the "
        "first third of the solution lines is given (a point on the accuracy-vs-hint curve).",
        "", f"Before training (all runs): accuracy {fmt(base['accuracy'])}, pass@1 "
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
    lines += ["", *comparison_lines(rows, seeds, budget)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def comparison_lines(rows: list[dict[str, Any]], seeds: list[int], budget: Budget
                     ) -> list[str]:
    """Paired differences (same seeds) and one verdict line per effect of the paper."""
    by = {(r["method"], r["seed"]): r for r in rows}
    if {m for m, _ in by} != {"grpo", "seele", "seele-gamma0"}:
        return ["(The paired comparisons and verdicts need all three methods.)"]

    def per_seed(method: str, key: str) -> list[float]:
        return [by[(method, s)][key] for s in seeds]

    def late(method: str, key: str) -> list[float]:
        half = slice(budget.steps // 2, None)
        return [mean(by[(method, s)]["steps"], key, half) for s in seeds]

    acc = paired(per_seed("seele", "accuracy"), per_seed("grpo", "accuracy"))
    pass1 = paired(per_seed("seele", "pass@1"), per_seed("grpo", "pass@1"))
    gamma = paired(per_seed("seele", "accuracy"), per_seed("seele-gamma0", "accuracy"))
    eff = paired(late("seele", "eff_rate"), late("grpo", "eff_rate"))
    # SEELE's rollout accuracy (all rounds) in the second half against the target.
    target = SEELEConfig().target_accuracy
    pinned = paired(late("seele", "reward"), [target] * len(seeds))
    return [
        "## Paired comparisons (same seeds)", "",
        f"- Held-out greedy accuracy, SEELE minus GRPO: {acc.text(100, ' points')}",
        f"- Held-out pass@1, SEELE minus GRPO: {pass1.text(100, ' points')}",
        f"- Held-out greedy accuracy, SEELE (gamma 1) minus SEELE (gamma 0): "
        f"{gamma.text(100, ' points')}",
        f"- Eff-Rate in the second half of training, SEELE minus GRPO: {eff.text()}",
        f"- SEELE's rollout accuracy (all rounds) in the second half minus the target "
        f"{target}: {pinned.text()}; GRPO's rollout accuracy there "
        f"{np.mean(late('grpo', 'reward')):.3f}",
        "", "## Verdict", "",
        verdict("Held-out accuracy (no hints) above GRPO", acc),
        verdict("The imitation term helps: gamma 1 above gamma 0", gamma),
        verdict("More informative groups (Eff-Rate) than GRPO", eff),
        level_verdict(f"Rollout accuracy pinned at the target (95% interval within "
                      f"+-{TOLERANCE} of {target})", pinned, TOLERANCE),
    ]


def _blocks(steps: int, count: int = 4) -> list[tuple[int, int]]:
    edges = np.linspace(0, steps, min(count, steps) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--methods", nargs="+", default=["grpo", "seele", "seele-gamma0"],
                        choices=["grpo", "seele", "seele-gamma0"])
    parser.add_argument("--steps", type=int, default=80, help="training steps per run")
    parser.add_argument("--problems", type=int, default=4, help="problems per step")
    parser.add_argument("--rounds", type=int, default=4, help="SEELE rounds per problem")
    parser.add_argument("--samples", type=int, default=4, help="SEELE completions per round")
    parser.add_argument("--lr", type=float, default=2e-5,
                        help="learning rate of every method: GRPO's best of 5e-6, 1e-5, 2e-5 "
                        "(80 steps, seeds 0 and 1; 5e-5 and more made it forget)")
    parser.add_argument("--num-minibatches", type=int, default=4,
                        help="optimiser steps per sampled batch (paper: 256 / 64 = 4)")
    parser.add_argument("--train-size", type=int, default=64,
                        help="finite training set: problems 0..N-1 of dataset seed 0")
    parser.add_argument("--eval-problems", type=int, default=100)
    parser.add_argument("--eval-samples", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs (method x seed) in parallel processes, one torch thread each")
    parser.add_argument("--report", default=str(RESULTS_DIR / "seele.md"))
    args = parser.parse_args()
    check_report(args.report, args.seeds, RESULTS_DIR / "seele.md")
    if args.train_size < 1:
        raise SystemExit("error: --train-size must be at least 1")
    torch.set_num_threads(1)
    budget = Budget(args.steps, args.problems, args.rounds, args.samples, args.lr,
                    args.num_minibatches, args.eval_problems, args.eval_samples,
                    args.train_size)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        base_future = pool.submit(base_model_row, budget)
        lever_future = pool.submit(lever_check, budget.train_size)
        futures = [pool.submit(run, m, s, budget) for s in args.seeds for m in args.methods]
        rows = [f.result() for f in futures]
        base, lever = base_future.result(), lever_future.result()
    print(f"bundled model on the task: {base}; lever check {lever}", flush=True)
    command = shlex.join(["python", "-m", "benchmarks.seele", *sys.argv[1:]])
    write_report(rows, base, lever, budget, command, Path(args.report))


if __name__ == "__main__":
    main()
