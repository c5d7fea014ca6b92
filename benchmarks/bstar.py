"""A miniature of B-STaR's Table 1 and training dynamics (arXiv 2412.17256; docs/algorithms.md,
B-STaR): B-STaR against online RFT with a fixed configuration, on the bundled tiny model.

    .venv/bin/python -m benchmarks.bstar --jobs 2   # 20 seeds x 3 methods, writes results/bstar.md
    .venv/bin/python -m benchmarks.bstar --seeds 0 --iterations 2 --report /tmp/b.md  # a look

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
paper's online-RFT setting); `rft_tau1` is online RFT with the threshold B-STaR's search
picks most often, tau = 1.0, fixed from the start (T = 1.0): it asks whether B-STaR's gain is
the adaptive search or only a stricter threshold. B-STaR searches T in {0.5, 0.7, 0.9, 1.1}
and tau in -1.0..1.0 (step 0.1) every iteration on a fixed subset of 40 training queries;
n* = ceil(8 x 32 / 64) = 4.

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

from benchmarks.common import RESULTS_DIR, check_report, paired, provenance, seeds_line, verdict

METHODS = {
    "bstar": {"mode": "bstar"},
    "online_rft": {"mode": "online_rft", "temperature": 1.0, "threshold": 0.0},
    "rft_tau1": {"mode": "online_rft", "temperature": 1.0, "threshold": 1.0},
}
STEPS_PER_ITERATION = 8


def _agent(method: str, seed: int, iterations: int, eval_problems: int) -> Any:
    import gymnasium as gym

    import rlvr_gym  # noqa: F401  (registers the env ids)
    from rlvr_gym.agents import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, TINY_MODEL_DIR
    from rlvr_gym.agents.bstar import BSTaR, BSTaRConfig
    from rlvr_gym.verifiers.steps import ArithmeticStepScorer

    steps = STEPS_PER_ITERATION
    config = BSTaRConfig(
        queries_per_iteration=64, samples_per_query=8, search_queries=40,
        temperature_grid=(0.5, 0.7, 0.9, 1.1), monitor_temperature=1.0, monitor_s=2,
        steps_per_iteration=steps, batch_size=32, lr=2e-4,
        min_lr=2e-5, warmup_steps=2, schedule_steps=steps * iterations, eval_every=1,
        eval_problems=eval_problems, eval_samples=0, seed=seed, device="cpu",
        **METHODS[method])
    env = gym.make(DEFAULT_ENV_ID, seed=0, **DEFAULT_ENV_KWARGS)
    held_out = gym.make(DEFAULT_ENV_ID, seed=1, **DEFAULT_ENV_KWARGS)
    return BSTaR(TINY_MODEL_DIR, env, config, eval_env=held_out,
                 step_scorer=ArithmeticStepScorer(noise=0.5, seed=seed))


def run(method: str, seed: int, iterations: int, eval_problems: int) -> dict[str, Any]:
    """Train one method for one seed; per-iteration records and held-out results."""
    start, cpu = time.perf_counter(), time.process_time()
    agent = _agent(method, seed, iterations, eval_problems)
    before = agent.evaluate(samples=8)
    agent.learn(STEPS_PER_ITERATION * iterations, progress_bar=False)
    after = agent.evaluate(samples=8)
    return {"method": method, "seed": seed, "history": agent.history,
            "pass1": [e["accuracy"] for e in agent.eval_history],
            "before": before, "after": after, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu}


LEVER_THRESHOLDS = (-1.0, 0.0, 0.5, 1.0)


def lever_check(seed: int = 0) -> dict[str, Any]:
    """What the (T, tau) choice changes before any training: on the search subset (40
    training queries x 8 samples) of the bundled model, per temperature of the grid the sample
    accuracy and, per threshold, the kept pool (distinct responses), its accuracy and the
    balance score; and the search's pick against online RFT's fixed (1.0, 0.0)."""
    import torch

    from rlvr_gym.agents.balance import balance_score, search_balance, select, unique_responses

    torch.set_num_threads(1)
    agent = _agent("bstar", seed, 1, 1)
    c = agent.config
    subset = agent.queries(agent.env, range(c.search_queries))
    grid = sorted({*c.temperature_grid, 1.0})
    by_t = {t: agent.sample(subset, t) for t in grid}
    n_star = c.balance_n_star()
    rows = []
    for t in grid:
        for tau in LEVER_THRESHOLDS:
            pool = unique_responses(select(by_t[t], tau))
            rows.append({"T": t, "tau": tau, "sample_accuracy": float(np.mean(
                [r.correct for r in by_t[t]])), "pool": len(pool), "pool_accuracy": float(
                    np.mean([r.correct for r in pool])) if pool else float("nan"),
                "balance": balance_score(by_t[t], tau, n_star)})
    choice = search_balance({t: by_t[t] for t in c.temperature_grid}, c.threshold_grid, n_star)
    return {"rows": rows, "n_star": n_star, "choice": [choice.temperature, choice.threshold,
                                                       choice.score],
            "online_rft": balance_score(by_t[1.0], 0.0, n_star),
            "scores": sorted(choice.grid.values())}


def _mean(values: list[float]) -> str:
    return f"{np.mean(values):.3f}"


def report(runs: list[dict[str, Any]], lever: dict[str, Any], command: str, iterations: int,
           n: int) -> str:
    """The markdown tables of the figures (n = held-out problems), the paired comparisons and
    one verdict line per effect."""
    seeds = sorted({r["seed"] for r in runs})
    by = {(r["method"], r["seed"]): r for r in runs}
    lines = ["# Benchmark: B-STaR vs online RFT with a fixed configuration (tiny model)", "",
             *provenance(command), seeds_line(seeds), "",
             (__doc__ or "").split("\n\n", 2)[2].strip(), "",
             *lever_lines(lever), "",
             "## Final results (after the last iteration)", "",
             f"Held-out: Pass@1 = greedy accuracy on {n} problems; Pass@8, Pass@8-2, distinct "
             f"equations and sample accuracy from 8 samples per problem at T = 1.0 (same {n} "
             "problems).", "",
             "| method | seed | Pass@1 before | Pass@1 after | Pass@8 | Pass@8-2 | distinct "
             "equations | sample accuracy | wall time (s) | CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for method in METHODS:
        rows = [by[(method, s)] for s in seeds]
        for r in rows:
            a = r["after"]
            lines.append(f"| {method} | {r['seed']} | {r['before']['accuracy']:.3f} | "
                         f"{a['accuracy']:.3f} | {a['pass_at_k']:.3f} | {a['pass_at_k_s']:.3f} | "
                         f"{a['distinct_equations']:.3f} | {a['sample_accuracy']:.3f} | "
                         f"{r['seconds']:.0f} | {r['cpu_seconds']:.0f} |")
        lines.append(f"| **{method} mean** | | {_mean([r['before']['accuracy'] for r in rows])} "
                     f"| **{_mean([r['after']['accuracy'] for r in rows])}** | "
                     + " | ".join(_mean([r["after"][k] for r in rows]) for k in
                                  ("pass_at_k", "pass_at_k_s", "distinct_equations",
                                   "sample_accuracy"))
                     + f" | {np.mean([r['seconds'] for r in rows]):.0f} | "
                     f"{np.mean([r['cpu_seconds'] for r in rows]):.0f} |")
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
    return "\n".join(lines + ["", *comparison_lines(by, seeds)]) + "\n"


def lever_lines(lever: dict[str, Any]) -> list[str]:
    """The lever check as a table: what each (T, tau) keeps from the bundled model's samples."""
    t, tau, score = lever["choice"]
    lines = ["## Lever check: what (T, tau) changes, before training", "",
             "The bundled model's samples of the search subset (40 training queries x 8, dataset "
             "seed 0, step scorer seed 0); pool = distinct responses with reward > tau; balance "
             f"score with n* = {lever['n_star']}.", "",
             "| T | sample accuracy | " + " | ".join(
                 f"tau {x:+.1f}: pool (accuracy), balance" for x in LEVER_THRESHOLDS) + " |",
             "|---" * (2 + len(LEVER_THRESHOLDS)) + "|"]
    for temp in sorted({r["T"] for r in lever["rows"]}):
        rows = [r for r in lever["rows"] if r["T"] == temp]
        lines.append(f"| {temp:.1f} | {rows[0]['sample_accuracy']:.3f} | " + " | ".join(
            f"{r['pool']} ({r['pool_accuracy']:.2f}), {r['balance']:.3f}" for r in rows) + " |")
    scores = lever["scores"]
    lines += ["", f"The search picks T = {t:.1f}, tau = {tau:+.1f} (balance score {score:.3f}) "
              f"against {lever['online_rft']:.3f} for online RFT's fixed (1.0, +0.0); over the "
              f"whole grid the score ranges {scores[0]:.3f}..{scores[-1]:.3f}."]
    return lines


def comparison_lines(by: dict[tuple[str, int], dict[str, Any]], seeds: list[int]
                     ) -> list[str]:
    """Paired differences (same seeds) and one verdict line per effect of the paper."""
    def after(method: str, key: str) -> list[float]:
        return [by[(method, s)]["after"][key] for s in seeds]

    p1_rft = paired(after("bstar", "accuracy"), after("online_rft", "accuracy"))
    p1_tau = paired(after("bstar", "accuracy"), after("rft_tau1", "accuracy"))
    tau_rft = paired(after("rft_tau1", "accuracy"), after("online_rft", "accuracy"))
    div = paired(after("bstar", "distinct_equations"), after("online_rft", "distinct_equations"))
    pks = paired(after("bstar", "pass_at_k_s"), after("online_rft", "pass_at_k_s"))
    temps = [by[("bstar", s)]["history"] for s in seeds]
    rise = paired([h[-1]["temperature"] for h in temps], [h[0]["temperature"] for h in temps])
    return [
        "## Paired comparisons (same seeds; held-out, after the last iteration)", "",
        f"- Pass@1, B-STaR minus online RFT: {p1_rft.text(100, ' points')}",
        f"- Pass@1, B-STaR minus online RFT with tau = 1.0 fixed: {p1_tau.text(100, ' points')}",
        f"- Pass@1, online RFT with tau = 1.0 minus online RFT: {tau_rft.text(100, ' points')}",
        f"- Distinct equations, B-STaR minus online RFT: {div.text()}",
        f"- Pass@8-2, B-STaR minus online RFT: {pks.text()}",
        f"- B-STaR's chosen temperature, last iteration minus first: {rise.text()}", "",
        "## Verdict", "",
        verdict("Pass@1 above online RFT", p1_rft),
        verdict("Pass@1 above online RFT with the threshold fixed at tau = 1.0 (the adaptive "
                "search, not only a stricter threshold)", p1_tau),
        verdict("Diversity kept: more distinct equations than online RFT", div),
        verdict("The chosen temperature rises over training", rise),
    ]


def run_one(method: str, seed: int, iterations: int, eval_problems: int, out_dir: Path
            ) -> dict[str, Any]:
    """One method for one seed in this process with one torch thread; the run is also
    written to `out_dir/<method>-seed<seed>.json` as soon as it ends."""
    import torch

    torch.set_num_threads(1)
    r = run(method, seed, iterations, eval_problems)
    (out_dir / f"{method}-seed{seed}.json").write_text(json.dumps(r) + "\n")
    print(f"{method} seed {seed}: Pass@1 {r['pass1'][0]:.3f} -> {r['pass1'][-1]:.3f} "
          f"({r['seconds']:.0f} s, {r['cpu_seconds']:.0f} CPU s)", flush=True)
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(20)))
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--eval-problems", type=int, default=150)
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs (method x seed) in parallel processes, one torch thread each")
    parser.add_argument("--runs", default="runs/bench-bstar", help="per-run JSON files")
    parser.add_argument("--report", default=str(RESULTS_DIR / "bstar.md"))
    args = parser.parse_args()
    command = "python -m benchmarks.bstar " + " ".join(sys.argv[1:])
    check_report(args.report, args.seeds, RESULTS_DIR / "bstar.md")
    out_dir = Path(args.runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        lever = pool.submit(lever_check)
        futures = [pool.submit(run_one, m, s, args.iterations, args.eval_problems, out_dir)
                   for s in args.seeds for m in METHODS]
        runs = [f.result() for f in futures]
        lever_result = lever.result()
    text = report(runs, lever_result, command.strip(), args.iterations, args.eval_problems)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
