"""A miniature of B-STaR's Table 1 and training dynamics (arXiv 2412.17256; docs/algorithms.md,
B-STaR): B-STaR against online RFT with a fixed configuration, on the bundled tiny model.

    nice -n 10 .venv/bin/python -m benchmarks.bstar --jobs 3   # 3 seeds, both methods
    .venv/bin/python -m benchmarks.bstar --seeds 0 --iterations 2   # a quick look

Task: the bundled model's own task, 2-3 digit addition (`DEFAULT_ENV_KWARGS`). It has room
(greedy accuracy about 0.4 at the start), but its solutions have one canonical form, so
distinct correct responses to a query are rare. 3-operand addition, where the order of
operations could vary, is out of reach: the model was trained on two operands only and
answers 0% of 3-operand problems at any temperature, so rejection fine-tuning would have
nothing to keep.

Both methods share everything but the choice of (T, tau): the reward is 1(correct) + the
noisy arithmetic step score (`ArithmeticStepScorer`, noise 0.5), M = 64 fresh queries and
K = 8 samples per iteration, 8 fine-tuning steps of 32 responses per iteration continuing
optimiser and cosine schedule, lr 2e-4. Online RFT samples at T = 1.0 and keeps r > 0 (the
paper's online-RFT setting); B-STaR searches T in {0.5, 0.7, 0.9, 1.1} and tau in -1.0..1.0
(step 0.1) every iteration on a fixed subset of 40 training queries; n* = ceil(8 x 32 / 64) = 4.

Measured per iteration: held-out Pass@1 (greedy accuracy on 150 problems of dataset seed 1)
and the monitors of the training subset at T = 1.0 (Pass@8, Pass@8-2, distinct equations),
taken on the policy each iteration starts from; after the last iteration the same monitors on
the held-out problems. Everything in `benchmarks/results/bstar.md` above the verdict is
written by this script.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, provenance

METHODS = {
    "bstar": {"mode": "bstar"},
    "online_rft": {"mode": "online_rft", "temperature": 1.0, "threshold": 0.0},
}


def run(method: str, seed: int, iterations: int, eval_problems: int) -> dict[str, Any]:
    """Train one method for one seed; per-iteration records and held-out results."""
    import gymnasium as gym

    import rlvr_gym  # noqa: F401  (registers the env ids)
    from rlvr_gym.agents import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, TINY_MODEL_DIR
    from rlvr_gym.agents.bstar import BSTaR, BSTaRConfig
    from rlvr_gym.verifiers.steps import ArithmeticStepScorer

    steps = 8
    config = BSTaRConfig(
        queries_per_iteration=64, samples_per_query=8, search_queries=40,
        temperature_grid=(0.5, 0.7, 0.9, 1.1), monitor_temperature=1.0, monitor_s=2,
        steps_per_iteration=steps, batch_size=32, lr=2e-4,
        min_lr=2e-5, warmup_steps=2, schedule_steps=steps * iterations, eval_every=1,
        eval_problems=eval_problems, eval_samples=0, seed=seed, device="cpu",
        **METHODS[method])
    env = gym.make(DEFAULT_ENV_ID, seed=0, **DEFAULT_ENV_KWARGS)
    held_out = gym.make(DEFAULT_ENV_ID, seed=1, **DEFAULT_ENV_KWARGS)
    start = time.perf_counter()
    agent = BSTaR(TINY_MODEL_DIR, env, config, eval_env=held_out,
                  step_scorer=ArithmeticStepScorer(noise=0.5, seed=seed))
    before = agent.evaluate(samples=8)
    agent.learn(steps * iterations, progress_bar=False)
    after = agent.evaluate(samples=8)
    return {"method": method, "seed": seed, "history": agent.history,
            "pass1": [e["accuracy"] for e in agent.eval_history],
            "before": before, "after": after, "seconds": time.perf_counter() - start}


def _mean(values: list[float]) -> str:
    return f"{np.mean(values):.3f}"


def report(runs: list[dict[str, Any]], command: str, iterations: int, n: int) -> str:
    """The markdown tables of the figures (n = held-out problems)."""
    seeds = sorted({r["seed"] for r in runs})
    by = {(r["method"], r["seed"]): r for r in runs}
    lines = ["# Benchmark: B-STaR vs online RFT with a fixed configuration (tiny model)", "",
             *provenance(command), "", (__doc__ or "").split("\n\n", 2)[2].strip(), "",
             "## Final results (after the last iteration)", "",
             f"Held-out: Pass@1 = greedy accuracy on {n} problems; Pass@8, Pass@8-2, distinct "
             f"equations and sample accuracy from 8 samples per problem at T = 1.0 (same {n} "
             "problems).", "",
             "| method | seed | Pass@1 before | Pass@1 after | Pass@8 | Pass@8-2 | distinct "
             "equations | sample accuracy | wall time (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method in METHODS:
        rows = [by[(method, s)] for s in seeds]
        for r in rows:
            a = r["after"]
            lines.append(f"| {method} | {r['seed']} | {r['before']['accuracy']:.3f} | "
                         f"{a['accuracy']:.3f} | {a['pass_at_k']:.3f} | {a['pass_at_k_s']:.3f} | "
                         f"{a['distinct_equations']:.3f} | {a['sample_accuracy']:.3f} | "
                         f"{r['seconds']:.0f} |")
        lines.append(f"| **{method} mean** | | {_mean([r['before']['accuracy'] for r in rows])} "
                     f"| **{_mean([r['after']['accuracy'] for r in rows])}** | "
                     + " | ".join(_mean([r["after"][k] for r in rows]) for k in
                                  ("pass_at_k", "pass_at_k_s", "distinct_equations",
                                   "sample_accuracy"))
                     + f" | {np.mean([r['seconds'] for r in rows]):.0f} |")
    b0 = by[("bstar", seeds[0])]["before"]
    lines += ["", f"Initial model, held-out: Pass@1 {b0['accuracy']:.3f}, Pass@8 "
              f"{b0['pass_at_k']:.3f}, Pass@8-2 {b0['pass_at_k_s']:.3f}, distinct equations "
              f"{b0['distinct_equations']:.3f}, sample accuracy {b0['sample_accuracy']:.3f}.",
              "", "## Dynamics, mean over seeds", "",
              "Iteration i shows held-out Pass@1 after i iterations; the subset monitors "
              "(training queries, T = 1.0, K = 8) and the chosen configuration belong to "
              "iteration i + 1, i.e. they are measured on the same policy.", ""]
    header = "| iteration | " + " | ".join(
        f"{m} {k}" for m in METHODS for k in ("Pass@1", "subset Pass@8-2", "subset diversity",
                                              "balance score"))
    lines += [header + " |", "|---" * (1 + 4 * len(METHODS)) + "|"]
    for i in range(iterations + 1):
        cells = [str(i)]
        for method in METHODS:
            rows = [by[(method, s)] for s in seeds]
            cells.append(_mean([r["pass1"][i] for r in rows]))
            if i < iterations:
                hist = [r["history"][i] for r in rows]
                cells += [_mean([h["subset/pass_at_k_s"] for h in hist]),
                          _mean([h["subset/distinct_equations"] for h in hist]),
                          _mean([h["balance_score"] for h in hist])]
            else:
                cells += ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## B-STaR's chosen configuration per iteration (T / tau, balance score)", "",
              "| seed | " + " | ".join(f"it {i + 1}" for i in range(iterations)) + " |",
              "|---" * (iterations + 1) + "|"]
    for s in seeds:
        hist = by[("bstar", s)]["history"]
        lines.append(f"| {s} | " + " | ".join(
            f"{h['temperature']:.1f} / {h['threshold']:+.1f} ({h['balance_score']:.2f})"
            for h in hist) + " |")
    lines += ["", "Pool per iteration (distinct kept responses, their accuracy), mean over "
              "seeds:", ""]
    for method in METHODS:
        rows = [by[(method, s)] for s in seeds]
        sizes = [np.mean([r["history"][i]["pool_size"] for r in rows])
                 for i in range(iterations)]
        accs = [np.mean([r["history"][i]["pool_accuracy"] for r in rows])
                for i in range(iterations)]
        lines.append(f"- {method}: " + ", ".join(f"{n:.0f} ({a:.2f})"
                                               for n, a in zip(sizes, accs, strict=True)))
    return "\n".join(lines) + "\n"


def run_seed(seed: int, iterations: int, eval_problems: int, out_dir: Path
             ) -> list[dict[str, Any]]:
    """Both methods for one seed, in one process with one torch thread; each run is also
    written to `out_dir/<method>-seed<seed>.json` as soon as it ends."""
    import torch

    torch.set_num_threads(1)
    runs = []
    for method in METHODS:
        r = run(method, seed, iterations, eval_problems)
        (out_dir / f"{method}-seed{seed}.json").write_text(json.dumps(r) + "\n")
        print(f"{method} seed {seed}: Pass@1 {r['pass1'][0]:.3f} -> {r['pass1'][-1]:.3f} "
              f"({r['seconds']:.0f} s)", flush=True)
        runs.append(r)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--eval-problems", type=int, default=150)
    parser.add_argument("--jobs", type=int, default=1,
                        help="seeds run in parallel processes (one torch thread each)")
    parser.add_argument("--runs", default="runs/bench-bstar", help="per-run JSON files")
    parser.add_argument("--report", default=str(RESULTS_DIR / "bstar.md"))
    args = parser.parse_args()
    command = "python -m benchmarks.bstar " + " ".join(sys.argv[1:])
    out_dir = Path(args.runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_seed, s, args.iterations, args.eval_problems, out_dir)
                   for s in args.seeds]
        runs = [r for f in futures for r in f.result()]
    text = report(runs, command.strip(), args.iterations, args.eval_problems)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
