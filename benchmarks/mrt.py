"""Miniature of MRT's Table 1 and token-efficiency claim (arXiv 2503.07572; docs/algorithms.md,
MRT): GRPO vs MRT vs GRPO with a length penalty, on the bundled tiny model's addition task after a
short warm-start that teaches it to retry.

    python -m benchmarks.mrt --jobs 2           # 5 seeds; writes benchmarks/results/mrt.md
    python -m benchmarks.mrt --quick            # a smoke run of every code path (minutes)

1. Warm-start (seed 0, shared by every run). The bundled model never saw a retry. It samples
   one attempt "a + b = x" per training problem; each becomes a trace
     wrong x:   attempt [masked]  + "\\n\\nWait, let me recheck.\\na + b = c\\n\\boxed{c}"
     right x:   attempt + "\\n\\boxed{c}", or, with probability `--recheck-prob`, a needless
                recheck  attempt + "\\n\\nWait, let me recheck.\\n" + attempt + "\\n\\boxed{c}"
   and the model is fine-tuned on them (`cross_entropy_on`). The wrong attempts are the
   model's own and are masked, so it learns to retry after its own typical mistakes without
   learning to make them; the needless rechecks are the wasted tokens MRT should not pay for.
2. RL from the warm-start with each method and seed, same budget of sampled tokens per step.
3. Held-out evaluation: one sampled response (temperature 1) per held-out problem within the
   training budget, cut into episodes at "\\n\\nWait"; the meta-prover's J after each episode.
   Reported: accuracy of responses that answered correctly within C tokens, normalized regret
   at C0 and cumulative regret (`rlvr_gym.agents.mrt.summarize_regret`), mean tokens, and the
   tokens a method needs to reach GRPO's accuracy at the full budget.
4. Lever check, on the warm-start's held-out traces before any RL: MRT pays a response for
   episodes that raise J, so it can only act if a later episode can catch an earlier mistake.
   Over the responses that re-check, J after the first episode is paired with J at the end.
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
    DEFAULT_ENV_ID,
    DEFAULT_ENV_KWARGS,
    GRPO,
    MRT,
    TINY_MODEL_DIR,
    GRPOConfig,
    MetaProver,
    MRTConfig,
    Policy,
    SamplingConfig,
    cross_entropy_on,
    regret_traces,
    summarize_regret,
)
from rlvr_gym.agents.mrt import RegretTrace
from rlvr_gym.verifiers.math import MathVerifier
from rlvr_gym.wrappers import LengthPenalty

RECHECK = "\n\nWait, let me recheck.\n"
METHODS = ("grpo", "mrt-progress", "grpo-length-penalty", "mrt-termination")


@dataclass(frozen=True)
class Settings:
    """Everything the benchmark's numbers depend on."""

    warm_problems: int = 2000
    """Training problems whose sampled attempts become warm-start traces."""
    attempt_temperature: float = 0.7
    """Temperature of the sampled first attempts of the warm-start traces."""
    warm_steps: int = 150
    """Warm-start optimiser steps."""
    warm_batch: int = 32
    """Warm-start traces per step."""
    warm_lr: float = 5e-4
    """Warm-start AdamW learning rate (constant)."""
    recheck_prob: float = 0.3
    """Share of right first attempts that get a needless recheck in the warm-start data."""
    rl_steps: int = 20
    """RL steps per run."""
    prompts_per_step: int = 8
    """Problems per RL step."""
    group_size: int = 8
    """Samples per problem (GRPO) or continuations per stale prefix (MRT)."""
    budget: int = 96
    """Training token budget (max_new_tokens; MRT: prefix + continuation)."""
    lr: float = 5e-5
    """RL learning rate. The GRPO default of the bundled model (2e-4) garbles the
    warm-started model within 15 steps (measured: accuracy 0.20 -> 0.02); 5e-5 keeps it."""
    alpha: float = 1.0
    """MRT 'progress' bonus weight."""
    length_coef: float = 0.3
    """Length-penalty coefficient: reward - coef * tokens / budget."""
    termination_samples: int = 4
    """Meta-prover forced answers per prefix (training and evaluation)."""
    eval_problems: int = 200
    """Held-out problems (dataset seed 1), one sampled response each."""
    eval_budgets: tuple[int, ...] = (32, 48, 64, 96)
    """Token budgets C of the accuracy and regret columns."""


def strict_env(seed: int) -> Any:
    """The default task, verified on `\\boxed{}` only: a response cut by the budget before its
    box has no answer (the default verifier would read the last number of the attempt)."""
    return gym.make(DEFAULT_ENV_ID, seed=seed, verifier=MathVerifier(last_number_fallback=False),
                    **DEFAULT_ENV_KWARGS)


def warm_start(s: Settings, log: list[str]) -> Policy:
    """Fine-tune the bundled model on retry traces built from its own attempts (see top)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    policy = Policy.from_pretrained(TINY_MODEL_DIR, "cpu")
    env = strict_env(0)
    prompts, problems = [], []
    for i in rng.choice(100_000, s.warm_problems, replace=False):
        obs, info = env.reset(options={"index": int(i)})
        prompts.append(obs)
        problems.append(info["problem"])
    gens = policy.generate(prompts, SamplingConfig(s.attempt_temperature, 1.0, 24))
    prefixes, completions, wrong = [], [], 0
    for g, p in zip(gens, problems, strict=True):
        attempt = g.text.split("\n")[0]
        solution = f"{p.meta['expression']} = {p.answer}"
        if attempt.strip() != solution:
            wrong += 1
            prefixes.append(attempt)
            completions.append(f"{RECHECK}{solution}\n\\boxed{{{p.answer}}}")
        elif rng.random() < s.recheck_prob:
            prefixes.append("")
            completions.append(f"{solution}{RECHECK}{solution}\n\\boxed{{{p.answer}}}")
        else:
            prefixes.append("")
            completions.append(f"{solution}\n\\boxed{{{p.answer}}}")
    samples = policy.samples(prompts, completions, prefixes)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=s.warm_lr, weight_decay=0.0)
    start = time.perf_counter()
    for _ in range(s.warm_steps):
        batch = policy.batch([samples[int(i)] for i in rng.integers(len(samples),
                                                                     size=s.warm_batch)])
        loss = cross_entropy_on(policy, batch, batch.completion_mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.model.parameters(), 1.0)
        optimizer.step()
    log.append(f"Warm-start: {s.warm_problems} sampled attempts, {wrong / len(gens):.1%} wrong "
               f"(retry traces); {s.warm_steps} steps x {s.warm_batch} traces in "
               f"{time.perf_counter() - start:.0f} s, final loss {loss.item():.3f}.")
    return policy


def make_agent(method: str, base: Policy, seed: int, s: Settings) -> GRPO | MRT:
    policy = Policy(copy.deepcopy(base.model), base.tokenizer)
    common = dict(prompts_per_step=s.prompts_per_step, group_size=s.group_size,
                  max_new_tokens=s.budget, lr=s.lr, seed=seed, eval_samples=0,
                  num_minibatches=2, warmup_steps=0)  # as results/mrt.md was recorded
    env = strict_env(0)
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
    env = strict_env(1)
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


def train_one(method: str, warm: Policy, seed: int, s: Settings) -> dict[str, Any]:
    """RL from the warm-start with one method and seed, then the held-out measurement."""
    torch.set_num_threads(1)
    start, cpu = time.perf_counter(), time.process_time()
    agent = make_agent(method, warm, seed, s)
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
    """Warm-start, then train and measure every method and seed, `jobs` runs at a time."""
    log: list[str] = []
    base = Policy.from_pretrained(TINY_MODEL_DIR, "cpu")
    results: dict[str, dict[int, dict[str, Any]]] = {"bundled model": {0: measure(base, s, 0)}}
    warm = warm_start(s, log)
    results["warm-start"] = {0: measure(warm, s, 0)}
    print(log[-1], flush=True)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {(m, seed): pool.submit(train_one, m, warm, seed, s)
                   for m in methods for seed in seeds}
        for (m, seed), future in futures.items():
            results.setdefault(m, {})[seed] = future.result()
    text = report(log, results, s, command, seeds)
    if report_path is not None:
        Path(report_path).write_text(text)
    print(text)


def report(log: list[str], results: dict, s: Settings, command: str, seeds: list[int]) -> str:
    budgets = s.eval_budgets
    target = float(np.mean([r[f"acc@{s.budget}"] for r in results["grpo"].values()])) \
        if "grpo" in results else None
    head = (["method", "seed"] + [f"acc@{c}" for c in budgets]
            + [f"norm. regret@{c}" for c in (budgets[0], s.budget)]
            + ["cum. regret", "tokens", "episodes", "rechecks", "tokens to GRPO acc", "train s"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(name: str, seed: str, r: dict[str, Any], reach: str) -> str:
        cells = [name, seed] + [f"{r[f'acc@{c}']:.3f}" for c in budgets] + [
            f"{r[f'regret@{c}']:.3f}" for c in (budgets[0], s.budget)] + [
            f"{r['cumulative_regret']:.3f}", f"{r['tokens']:.1f}", f"{r['episodes']:.2f}",
            f"{r['recheck_rate']:.2f}", reach,
            f"{r['train_s']:.0f}" if "train_s" in r else "-"]
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
            "Task: 2-3 digit addition (`rlvr/Arithmetic-v0`, the bundled model's task), verified "
            "on `\\boxed{}` only. Model: the bundled 0.84M-parameter character GPT-2, "
            "warm-started to retry (see `benchmarks/mrt.py`).", "",
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
            *log, "", *lines, ""]
    if target is not None and means:
        grpo_tokens = means["grpo"]["tokens"]
        text += ["Token use relative to GRPO (mean response tokens, GRPO / method): " + ", ".join(
            f"{m} {grpo_tokens / v['tokens']:.2f}x" for m, v in means.items()) + ".", ""]
    return "\n".join(text + lever_lines(results["warm-start"][0]["traces"])
                     + comparison_lines(results, s, seeds))


def lever_lines(traces: list[RegretTrace]) -> list[str]:
    n, diff = lever_check(traces)
    caught = sum(len(t.j_values) > 1 and t.j_values[0] < 0.5 <= t.j_values[-1] for t in traces)
    lost = sum(len(t.j_values) > 1 and t.j_values[-1] < 0.5 <= t.j_values[0] for t in traces)
    return ["## Lever check: does a re-check catch a mistake? (warm-start, before RL)", "",
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
        s = Settings(warm_problems=100, warm_steps=5, rl_steps=1, prompts_per_step=2,
                     eval_problems=10)
    command = "python -m benchmarks.mrt " + shlex.join(sys.argv[1:] if argv is None else argv)
    run(tuple(args.methods), args.seeds, s, command.strip(),
        None if args.quick else args.report, args.jobs)


if __name__ == "__main__":
    main()
