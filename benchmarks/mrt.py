"""Miniature of MRT's Table 1 and token-efficiency claim (arXiv 2503.07572; docs/algorithms.md,
MRT): GRPO vs MRT vs GRPO with a length penalty, on the bundled tiny model's addition task after a
short warm-start that teaches it to retry.

    python -m benchmarks.mrt                    # 3 seeds; writes benchmarks/results/mrt.md
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
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import rlvr_gym  # noqa: F401  (registers the env ids)
from benchmarks.common import RESULTS_DIR, provenance
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


def run(methods: tuple[str, ...], seeds: list[int], s: Settings, command: str,
        write: bool) -> None:
    """Warm-start, train and measure every method and seed; the report is rewritten after
    each method, so an interrupted run keeps what it finished."""
    log: list[str] = []
    base = Policy.from_pretrained(TINY_MODEL_DIR, "cpu")
    results: dict[str, dict[int, dict[str, Any]]] = {"bundled model": {0: measure(base, s, 0)}}
    warm = warm_start(s, log)
    results["warm-start"] = {0: measure(warm, s, 0)}
    print(log[-1], flush=True)
    for method in methods:
        results[method] = {}
        for seed in seeds:
            start = time.perf_counter()
            agent = make_agent(method, warm, seed, s)
            agent.learn(s.rl_steps, progress_bar=False)
            seconds = time.perf_counter() - start
            results[method][seed] = {**measure(agent.policy, s, seed), "train_s": seconds}
            r = results[method][seed]
            print(f"{method} seed {seed}: acc@{s.budget} {r[f'acc@{s.budget}']:.3f} tokens "
                  f"{r['tokens']:.1f} regret {r['normalized_regret']:.3f} ({seconds:.0f} s)",
                  flush=True)
        text = report(log, results, s, command)
        if write:
            (RESULTS_DIR / "mrt.md").write_text(text)
    print(text)


def report(log: list[str], results: dict, s: Settings, command: str) -> str:
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
            *provenance(command), "",
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
    return "\n".join(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS[:3]), choices=METHODS,
                        help="methods to compare (default: all but mrt-termination, to fit "
                        "the CPU budget)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings to check the code paths; writes no report")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    s = Settings()
    if args.quick:
        s = Settings(warm_problems=100, warm_steps=5, rl_steps=1, prompts_per_step=2,
                     eval_problems=10)
    command = "python -m benchmarks.mrt " + shlex.join(sys.argv[1:] if argv is None else argv)
    run(tuple(args.methods), args.seeds, s, command.strip(), write=not args.quick)


if __name__ == "__main__":
    main()
