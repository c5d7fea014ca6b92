"""Miniature of MRT's Table 1 and token-efficiency claim (arXiv 2503.07572; docs/algorithms.md,
MRT): GRPO vs MRT (progress and termination variants) vs GRPO with a length penalty, on a
search task where a later episode can catch an earlier miss.

    python -m benchmarks.mrt --jobs 2           # 5 seeds; writes benchmarks/results/mrt.md
    python -m benchmarks.mrt --quick            # a smoke run of every code path (minutes)

Task and model: `rlvr/Countdown-v0` with three numbers 1-9 and + - (`COUNTDOWN_ENV_KWARGS`)
and the bundled `tiny-countdown` model, pre-trained on search traces: attempts, each worked
out and rejected when it misses the target ("2 + 5 = 7, not 19."), separated by
"\\n\\nWait\\n", until one reaches it and is boxed. Finding an expression is a guess (a random
attempt hits about a third of the time); checking one is two one-digit sums. That asymmetry
is what MRT's lever needs: an episode after a miss can raise the chance of a right answer.

1. Lever check, on the bundled model's held-out traces before any RL: MRT pays a response for
   episodes that raise J, so it can only act if a later episode can catch an earlier miss.
   Over the responses with more than one episode, J after the first episode is paired with
   J at the end.
2. RL from the bundled model with each method and seed, same budget of sampled tokens per
   step.
3. Held-out evaluation: one sampled response (temperature 1) per held-out problem within the
   training budget, cut into episodes at "\\n\\nWait"; the meta-prover's J after each episode.
   Reported: accuracy of responses that answered correctly within C tokens, normalized regret
   at C0 and cumulative regret (`rlvr_gym.agents.mrt.summarize_regret`), mean tokens, and the
   tokens a method needs to reach GRPO's accuracy at the full budget.
"""

from __future__ import annotations

import argparse
import copy
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
    Paired,
    check_report,
    paired,
    provenance,
    seeds_line,
    verdict,
)
from rlvr_gym.agents import (
    GRPO,
    MRT,
    GRPOConfig,
    MetaProver,
    MRTConfig,
    Policy,
    regret_traces,
    summarize_regret,
)
from rlvr_gym.agents.mrt import RegretTrace
from rlvr_gym.agents.tiny import BUNDLED_MODELS
from rlvr_gym.wrappers import LengthPenalty

MODEL = BUNDLED_MODELS["tiny-countdown"]
METHODS = ("grpo", "mrt-progress", "grpo-length-penalty", "mrt-termination")


@dataclass(frozen=True)
class Settings:
    """Everything the benchmark's numbers depend on."""

    rl_steps: int = 30
    """RL steps per run."""
    prompts_per_step: int = 8
    """Problems per RL step."""
    group_size: int = 8
    """Samples per problem (GRPO) or continuations per stale prefix (MRT)."""
    budget: int = MODEL.max_new_tokens
    """Training token budget (max_new_tokens; MRT: prefix + continuation): the model's
    generation budget, 160, room for the longest reference search (154 tokens)."""
    lr: float = 5e-5
    """RL learning rate (constant): GRPO's best of {5e-5, 1e-4, 2e-4} over 20 steps on seed 0
    (held-out acc@160 0.59 / 0.53 / 0.32, from 0.54 before RL)."""
    alpha: float = 1.0
    """MRT 'progress' bonus weight."""
    length_coef: float = 0.3
    """Length-penalty coefficient: reward - coef * tokens / budget."""
    termination_samples: int = 4
    """Meta-prover forced answers per prefix (training and evaluation)."""
    eval_problems: int = 200
    """Held-out problems (dataset seed 1), one sampled response each."""
    eval_budgets: tuple[int, ...] = (48, 96, 128, 160)
    """Token budgets C of the accuracy and regret columns."""


def task_env(seed: int) -> Any:
    """The countdown model's task (dataset `seed`); `CountdownVerifier` reads `\\boxed{}` only,
    so a response cut by the budget before its box has no answer."""
    return gym.make(MODEL.env_id, seed=seed, **MODEL.env_kwargs)


def make_agent(method: str, base: Policy, seed: int, s: Settings) -> GRPO | MRT:
    policy = Policy(copy.deepcopy(base.model), base.tokenizer)
    common = dict(prompts_per_step=s.prompts_per_step, group_size=s.group_size,
                  max_new_tokens=s.budget, lr=s.lr, seed=seed, eval_samples=0,
                  num_minibatches=2, warmup_steps=0)
    env = task_env(0)
    if method == "grpo":
        return GRPO(policy, env, GRPOConfig(**common))
    if method == "grpo-length-penalty":
        return GRPO(policy, LengthPenalty(env, base.tokenizer, s.length_coef, s.budget),
                    GRPOConfig(**common))
    mrt = dict(termination_samples=s.termination_samples, alpha=s.alpha)
    if method == "mrt-termination":
        return MRT(policy, env, MRTConfig(**common, **mrt, variant="termination"))
    if method == "mrt-progress":
        return MRT(policy, env, MRTConfig(**common, **mrt, variant="progress",
                                          advantage="group"))
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def measure(policy: Policy, s: Settings, seed: int) -> dict[str, Any]:
    """Held-out traces and their metrics (see top)."""
    env = task_env(1)
    torch.manual_seed(10_000 + seed)
    prover = MetaProver(policy, env.unwrapped, samples=s.termination_samples)
    traces = regret_traces(policy, env, prover, s.eval_problems, s.budget)
    out: dict[str, Any] = {"traces": traces, **summarize_regret(traces, s.budget)}
    for c in s.eval_budgets:
        out[f"acc@{c}"] = accuracy_within(traces, c)
        out[f"regret@{c}"] = summarize_regret(traces, c)["normalized_regret"]
    out["recheck_rate"] = float(np.mean([len(t.j_values) > 1 for t in traces]))
    return out


def accuracy_within(traces: list[RegretTrace], tokens: int) -> float:
    """Share of responses that gave a correct answer using at most `tokens` tokens."""
    return float(np.mean([t.correct and t.tokens[-1] <= tokens for t in traces]))


def tokens_to_reach(traces: list[RegretTrace], target: float, budget: int) -> int | None:
    """Smallest budget C <= `budget` whose `accuracy_within` reaches `target` (None: never)."""
    for c in range(1, budget + 1):
        if accuracy_within(traces, c) >= target - 1e-12:
            return c
    return None


def train_one(method: str, base: Policy, seed: int, s: Settings) -> dict[str, Any]:
    """RL from the bundled model with one method and seed, then the held-out measurement."""
    torch.set_num_threads(1)
    start, cpu = time.perf_counter(), time.process_time()
    agent = make_agent(method, base, seed, s)
    agent.learn(s.rl_steps, progress_bar=False)
    seconds = time.perf_counter() - start
    r = {**measure(agent.policy, s, seed), "train_s": seconds}
    r["cpu_s"] = time.process_time() - cpu
    print(f"{method} seed {seed}: acc@{s.budget} {r[f'acc@{s.budget}']:.3f} tokens "
          f"{r['tokens']:.1f} regret {r['normalized_regret']:.3f} ({seconds:.0f} s, "
          f"{r['cpu_s']:.0f} CPU s)", flush=True)
    return r


def lever_check(traces: list[RegretTrace]) -> tuple[int, Paired | None]:
    """Responses with more than one episode, and J at their end paired with J after their
    first episode (None when fewer than 2 re-check)."""
    rechecks = [t for t in traces if len(t.j_values) > 1]
    if len(rechecks) < 2:
        return len(rechecks), None
    return len(rechecks), paired([t.j_values[-1] for t in rechecks],
                                 [t.j_values[0] for t in rechecks])


def run(methods: tuple[str, ...], seeds: list[int], s: Settings, command: str,
        report_path: str | None, jobs: int) -> None:
    """Measure the bundled model, then train and measure every method and seed, `jobs` runs
    at a time."""
    base = Policy.from_pretrained(MODEL.directory, "cpu")
    results: dict[str, dict[int, dict[str, Any]]] = {"bundled model": {0: measure(base, s, 0)}}
    print("\n".join(lever_lines(results["bundled model"][0]["traces"])), flush=True)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {(m, seed): pool.submit(train_one, m, base, seed, s)
                   for m in methods for seed in seeds}
        for (m, seed), future in futures.items():
            results.setdefault(m, {})[seed] = future.result()
    text = report(results, s, command, seeds)
    if report_path is not None:
        Path(report_path).write_text(text)
    print(text)


def report(results: dict, s: Settings, command: str, seeds: list[int]) -> str:
    budgets = s.eval_budgets
    target = float(np.mean([r[f"acc@{s.budget}"] for r in results["grpo"].values()])) \
        if "grpo" in results else None
    head = (["method", "seed"] + [f"acc@{c}" for c in budgets]
            + [f"norm. regret@{c}" for c in (budgets[0], s.budget)]
            + ["cum. regret", "tokens", "episodes", "rechecks", "tokens to GRPO acc", "train s",
               "CPU s"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(name: str, seed: str, r: dict[str, Any], reach: str) -> str:
        cells = [name, seed] + [f"{r[f'acc@{c}']:.3f}" for c in budgets] + [
            f"{r[f'regret@{c}']:.3f}" for c in (budgets[0], s.budget)] + [
            f"{r['cumulative_regret']:.3f}", f"{r['tokens']:.1f}", f"{r['episodes']:.2f}",
            f"{r['recheck_rate']:.2f}", reach,
            f"{r['train_s']:.0f}" if "train_s" in r else "-",
            f"{r['cpu_s']:.0f}" if "cpu_s" in r else "-"]
        return "| " + " | ".join(cells) + " |"

    means: dict[str, dict[str, float]] = {}
    for name, by_seed in results.items():
        reaches = []
        for seed, r in by_seed.items():
            reach = tokens_to_reach(r["traces"], target, s.budget) if target is not None else None
            reaches.append(reach)
            lines.append(row(name, str(seed), r, "not reached" if reach is None else str(reach)))
        if len(by_seed) > 1:
            keys = [k for k, v in next(iter(by_seed.values())).items()
                    if isinstance(v, float)]
            mean = {k: float(np.mean([r[k] for r in by_seed.values()])) for k in keys}
            hit = [x for x in reaches if x is not None]
            reach_text = (f"{np.mean(hit):.1f} ({len(hit)}/{len(reaches)} seeds)" if hit
                          else "not reached")
            lines.append(row(f"**{name}**", "mean", mean, reach_text))
            means[name] = {**mean, "reach": float(np.mean(hit)) if hit else float("nan")}
    text = ["# MRT miniature: GRPO vs MRT vs GRPO + length penalty", "",
            *provenance(command), seeds_line(seeds), "",
            f"Task: `{MODEL.env_id}` {MODEL.env_kwargs} (train dataset seed 0, held-out seed 1), "
            "verified on the `\\boxed{}` expression. Model: the bundled `tiny-countdown` "
            "(0.84M-parameter character GPT-2), pre-trained on search traces: attempts, each "
            "worked out and rejected when it misses, separated by \"\\n\\nWait\\n\" (see "
            "`benchmarks/mrt.py`).", "",
            f"RL: {s.rl_steps} steps x {s.prompts_per_step} problems x {s.group_size} samples, "
            f"budget {s.budget} tokens, lr {s.lr}, temperature 1. MRT: stale prefix cut after a "
            f"random number of episodes, meta-prover K={s.termination_samples} forced answers "
            "after \"\\n\\boxed{\"; 'termination' A = r - J(c); 'progress' "
            f"R = r + {s.alpha} (J after the first new episode - J(c)), group z-scored. Length "
            f"penalty: r - {s.length_coef} tokens / {s.budget}.", "",
            f"Held-out: {s.eval_problems} problems (dataset seed 1), one response each at "
            "temperature 1. acc@C: answered correctly within C tokens. Normalized regret at C0: "
            "1 - area under the J-vs-tokens curve / C0, J from the meta-prover after each "
            "episode. Cumulative regret: sum over episodes of 1 - J. Rechecks: share of "
            "responses with more than one episode. Tokens to GRPO acc: smallest budget C at "
            f"which acc@C reaches GRPO's mean acc@{s.budget}"
            + (f" ({target:.3f})." if target is not None else "."), "",
            *lines, ""]
    if target is not None and means:
        grpo_tokens = means["grpo"]["tokens"]
        text += ["Token use relative to GRPO (mean response tokens, GRPO / method): " + ", ".join(
            f"{m} {grpo_tokens / v['tokens']:.2f}x" for m, v in means.items()) + ".", ""]
    return "\n".join(text + lever_lines(results["bundled model"][0]["traces"])
                     + comparison_lines(results, s, seeds))


def lever_lines(traces: list[RegretTrace]) -> list[str]:
    n, diff = lever_check(traces)
    caught = sum(len(t.j_values) > 1 and t.j_values[0] < 0.5 <= t.j_values[-1] for t in traces)
    lost = sum(len(t.j_values) > 1 and t.j_values[-1] < 0.5 <= t.j_values[0] for t in traces)
    return ["## Lever check: does a later episode catch a miss? (bundled model, before RL)", "",
            f"{n} of {len(traces)} held-out responses re-check. "
            + (f"J at the end minus J after the first episode: {diff.text(pairs='responses')}. "
               if diff is not None else "")
            + f"Re-checks that turned J from below 0.5 to at least 0.5: {caught}; the reverse: "
            f"{lost}. MRT's bonus can only reward an episode that raises J.", ""]


def comparison_lines(results: dict, s: Settings, seeds: list[int]) -> list[str]:
    """Paired differences against GRPO (same seeds) and one verdict line per effect."""
    arms = [m for m in ("mrt-progress", "mrt-termination") if m in results]
    if "grpo" not in results or not arms:
        return ["(The paired comparisons need grpo and an MRT variant.)"]

    def per_seed(method: str, key: str) -> list[float]:
        return [results[method][seed][key] for seed in seeds]

    lines = ["## Paired comparisons with GRPO (same seeds)", ""]
    verdicts = ["## Verdict", ""]
    acc = f"acc@{s.budget}"
    for m in arms:
        tokens = paired(per_seed(m, "tokens"), per_seed("grpo", "tokens"))
        accuracy = paired(per_seed(m, acc), per_seed("grpo", acc))
        regret = paired(per_seed(m, "normalized_regret"), per_seed("grpo", "normalized_regret"))
        lines += [f"- {m} minus GRPO, mean response tokens: {tokens.text()}",
                  f"- {m} minus GRPO, {acc}: {accuracy.text(100, ' points')}",
                  f"- {m} minus GRPO, normalized regret@{s.budget}: {regret.text()}"]
        verdicts += [verdict(f"{m}: fewer tokens than GRPO", tokens, higher_is_paper=False),
                     verdict(f"{m}: lower normalized regret than GRPO", regret,
                             higher_is_paper=False),
                     verdict(f"{m}: accuracy above GRPO's", accuracy)]
    return lines + [""] + verdicts + [""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                        help="methods to compare")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs (method x seed) in parallel processes, one torch thread each")
    parser.add_argument("--report", default=str(RESULTS_DIR / "mrt.md"))
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings to check the code paths; writes no report")
    args = parser.parse_args(argv)
    if not args.quick:
        check_report(args.report, args.seeds, RESULTS_DIR / "mrt.md")
    torch.set_num_threads(1)
    s = Settings()
    if args.quick:
        s = Settings(rl_steps=1, prompts_per_step=2, eval_problems=10)
    command = "python -m benchmarks.mrt " + shlex.join(sys.argv[1:] if argv is None else argv)
    run(tuple(args.methods), args.seeds, s, command.strip(),
        None if args.quick else args.report, args.jobs)


if __name__ == "__main__":
    main()
