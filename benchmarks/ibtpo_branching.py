"""IB-TPO branching strategies at (about) equal generated tokens, no training: a miniature of
the paper's branching table (arXiv 2605.28109, Table 3).

    nice -n 10 .venv/bin/python -m benchmarks.ibtpo_branching [--problems 128] [--seeds 0]
    .venv/bin/python -m benchmarks.ibtpo_branching --model tiny-chain \\
        --delimiters '\\n' = --seeds 0 1 2 --step-probabilities mean product \\
        --report benchmarks/results/ibtpo_branching_chain.md

A bundled model (`--model`, default `tiny`) samples on its own task (held-out split, dataset
seed 1) at temperature 1, with the model's generation budget per root-to-leaf response (40
new tokens for `tiny`, 80 for `tiny-chain`). Rows: independent 8, independent 12, and trees
of shape (B0, L, K, B) (default (4, 9, 1, 1), G = 12, the paper's) branched at random, by
entropy (mean surprisal of a node's children) and by IB-Score (beta = 5), one IB row per
`--step-probabilities` entry (how eta2 reads a step's probability: length-normalised 'mean',
the default, or the paper's literal 'product'). Each row samples the same problems from the
same torch seed; with several `--seeds` every figure is the mean over the seeds' runs, and the
IB trees' ratios are also listed per seed.

- `tiny` (2-3 digit addition): solutions are "a + b = c\\n\\boxed{c}". Two step definitions
  are measured by default: "\\n" (the paper's choice, one step per line: a working line and an
  answer line) and "=" (the copy of the question "a + b =", then the result with the answer
  line, so that a branch can resample the result without re-copying the question).
- `tiny-chain` (sums of 4-6 one-digit terms): solutions have 3-5 working lines and the answer
  line; "=" makes each step one result and the copy of the next operation.

Per row: Eff-Rate (share of problems whose leaves disagree), mean leaf accuracy, generated
tokens per problem (shared prefixes counted once), trajectories per 1,000 generated tokens,
the ratio of trajectories per token to independent-8, the tree's Cov(eta1, eta2), and where
the branches started: mean depth (steps of shared prefix) and mean new tokens of the
continuations that start below the root, against the mean length of a sample from the root.
The figures go to the report (default `benchmarks/results/ibtpo_branching.md`), written by
this script (a reading of them may follow under "Verdict").
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import rlvr_gym  # noqa: F401  (registers the env ids)
from benchmarks.common import RESULTS_DIR, provenance
from rlvr_gym.agents.ibtpo import ProblemTree, TreeSampler, tree_metrics
from rlvr_gym.agents.policy import Policy, SamplingConfig
from rlvr_gym.agents.tiny import BUNDLED_MODELS
from rlvr_gym.agents.tree import STEP_PROBABILITIES


def rows_for(shape: tuple[int, int, int, int], step_probabilities: list[str]
             ) -> list[tuple[str, dict]]:
    """Independent 8 and 12, then random, entropy and IB trees of `shape`: one IB row per
    way of reading step probabilities (the IB rows come last)."""
    b0, rounds, k, b = shape
    g = b0 + (rounds - 1) * k * b
    tree = {"initial_samples": b0, "rounds": rounds, "top_k": k, "branches": b}
    rows = [("independent 8", {"initial_samples": 8, "rounds": 1}),
            ("independent 12", {"initial_samples": 12, "rounds": 1}),
            (f"random tree {g}", {**tree, "strategy": "random"}),
            (f"entropy tree {g}", {**tree, "strategy": "entropy"})]
    return rows + [(f"IB tree {g}" + (f" ({how} p)" if len(step_probabilities) > 1 else ""),
                    {**tree, "strategy": "ib", "step_probability": how})
                   for how in step_probabilities]


def branch_stats(trees: list[ProblemTree]) -> dict[str, float]:
    """Where continuations started: mean depth of all leaves' branch points, mean new tokens
    of leaves sampled from the root and of those continuing a deeper node (0 if none)."""
    leaves = [leaf for t in trees for leaf in t.leaves]
    root = [leaf.new_tokens for leaf in leaves if leaf.branch_depth == 0]
    deep = [leaf.new_tokens for leaf in leaves if leaf.branch_depth > 0]
    return {"branch_depth": float(np.mean([leaf.branch_depth for leaf in leaves])),
            "root_tokens": float(np.mean(root)) if root else 0.0,
            "deep_share": len(deep) / len(leaves),
            "deep_tokens": float(np.mean(deep)) if deep else 0.0}


def run(policy: Policy, env: gym.Env, problems: int, seed: int, delimiter: str,
        shape: tuple[int, int, int, int], beta: float, max_new_tokens: int,
        step_probabilities: list[str]) -> list[dict]:
    env.reset(seed=seed)
    heads = [env.reset(options={"index": i}) for i in range(problems)]
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens)
    rows = []
    for name, options in rows_for(shape, step_probabilities):
        torch.manual_seed(seed)
        start, cpu = time.perf_counter(), time.process_time()
        sampler = TreeSampler(policy, env, sampling, beta=beta, delimiter=delimiter, **options)
        trees = sampler.sample(heads)
        rows.append({"name": name, "seconds": time.perf_counter() - start,
                     "cpu_seconds": time.process_time() - cpu,
                     **tree_metrics(trees, beta=beta), **branch_stats(trees)})
        print(f"{delimiter!r} {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()
                                                    if k != "name"), flush=True)
    return rows


def mean_rows(per_seed: list[list[dict]]) -> list[dict]:
    """Row-wise means over the seeds' runs (names kept)."""
    return [{"name": rows[0]["name"], **{k: float(np.mean([r[k] for r in rows]))
                                         for k in rows[0] if k != "name"}}
            for rows in zip(*per_seed, strict=True)]


def table(rows: list[dict]) -> list[str]:
    base = rows[0]["trajectories_per_1k_tokens"]
    lines = ["| sampling | Eff-Rate | mean accuracy | generated tokens / problem | "
             "trajectories / 1k tokens | vs independent 8 | Cov(eta1, eta2) | "
             "mean branch depth (steps) | tokens / root sample | leaves branched below root "
             "| tokens / branch below root | wall s | CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {100 * r['eff_rate']:.1f}% | {100 * r['accuracy']:.1f}% "
                     f"| {r['generated_tokens_per_problem']:.1f} | "
                     f"{r['trajectories_per_1k_tokens']:.1f} | "
                     f"{r['trajectories_per_1k_tokens'] / base:.2f}x | {r['eta_cov']:+.4f} | "
                     f"{r['branch_depth']:.2f} | {r['root_tokens']:.1f} | "
                     f"{100 * r['deep_share']:.0f}% | {r['deep_tokens']:.1f} | "
                     f"{r['seconds']:.0f} | {r['cpu_seconds']:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", choices=sorted(BUNDLED_MODELS),
                        help="bundled model, sampled on its own task")
    parser.add_argument("--problems", type=int, default=128, help="held-out problems")
    parser.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0],
                        help="torch sampling seeds (figures are means over them)")
    parser.add_argument("--delimiters", nargs="+", default=["\\n", "="],
                        help="step delimiters to measure, one table each (backslash escapes "
                        "such as '\\n' are decoded)")
    parser.add_argument("--shape", type=int, nargs=4, default=[4, 9, 1, 1],
                        metavar=("B0", "L", "K", "B"), help="tree shape (paper: 4 9 1 1)")
    parser.add_argument("--beta", type=float, default=5.0, help="IB-Score beta (paper: 5)")
    parser.add_argument("--step-probabilities", nargs="+", default=["mean"],
                        choices=STEP_PROBABILITIES, help="one IB tree row per way of reading a "
                        "step's probability: 'mean' (length-normalised), 'product'")
    parser.add_argument("--report", default=str(RESULTS_DIR / "ibtpo_branching.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundled = BUNDLED_MODELS[args.model]
    shape = tuple(args.shape)
    delimiters = [d.encode().decode("unicode_escape") for d in args.delimiters]
    policy = Policy.from_pretrained(bundled.directory, device="cpu")
    env = gym.make(bundled.env_id, seed=1, **bundled.env_kwargs)
    results = {d: [run(policy, env, args.problems, seed, d, shape, args.beta,
                       bundled.max_new_tokens, args.step_probabilities)
                   for seed in args.seeds] for d in delimiters}
    command = "python -m benchmarks.ibtpo_branching " + shlex.join(sys.argv[1:])
    lines = ["# Benchmark: IB-TPO branching strategies (no training)", "",
             *provenance(command.strip()), "",
             f"{args.problems} held-out problems of the bundled model `{args.model}`'s task "
             f"({bundled.env_id}, {bundled.env_kwargs}, dataset seed 1); temperature 1, "
             f"at most {bundled.max_new_tokens} new tokens per root-to-leaf response; trees "
             f"(B0, L, K, B) = {shape}, beta = {args.beta:g}; every row from torch seed(s) "
             f"{', '.join(map(str, args.seeds))} (means over seeds). Generated tokens count "
             "shared prefixes once. Wall seconds depend on what else shares the CPU (load "
             "average when the report was written: "
             f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())}); CPU seconds are the "
             "process's own (one torch thread).", ""]
    for delimiter, per_seed in results.items():
        rows = mean_rows(per_seed)
        lines += [f"## Steps split at {delimiter!r}", "", *table(rows), ""]
        for i in range(len(rows) - len(args.step_probabilities), len(rows)):
            ib = rows[i]["trajectories_per_1k_tokens"]
            lines += [f"{rows[i]['name']} vs independent sampling, trajectories per generated "
                      f"token: {ib / rows[0]['trajectories_per_1k_tokens']:.2f}x independent 8, "
                      f"{ib / rows[1]['trajectories_per_1k_tokens']:.2f}x independent 12 "
                      "(issue 7 asks for at least 1.5x; the paper reports 1.48x and 1.58x).", ""]
            if len(per_seed) > 1:
                ratios = [r[i]["trajectories_per_1k_tokens"]
                          / r[0]["trajectories_per_1k_tokens"] for r in per_seed]
                lines += [f"{rows[i]['name']} vs independent 8 per seed ("
                          + ", ".join(map(str, args.seeds)) + "): "
                          + ", ".join(f"{x:.2f}x" for x in ratios) + ".", ""]
    path = Path(args.report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
