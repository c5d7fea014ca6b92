"""Benchmark of the main job: `rlvr-gym train` (GRPO on the bundled tiny model, default task)
over several seeds. Records held-out accuracy before/after, wall and CPU time and
generation/update throughput to benchmarks/results/grpo.md.

    python -m benchmarks.grpo                 # 3 seeds, the README command's defaults
    python -m benchmarks.grpo --seeds 0 --extra --steps 5   # quicker look
    python -m benchmarks.grpo --report-only    # rebuild the report from finished runs

Accuracy is deterministic for a seed (one torch thread), so runs may share the CPU; the
10-minute bar is read from each run's CPU seconds, which on an idle machine is its wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch  # noqa: F401  (its version goes into the machine line)

from benchmarks.common import RESULTS_DIR, provenance

ROOT = Path(__file__).resolve().parent.parent


def command_for(seed: int, out: Path, extra: list[str]) -> list[str]:
    return ["rlvr-gym", "train", "--seed", str(seed), "--output", str(out / f"seed{seed}"),
            "--no-progress", *extra]


def run_seed(seed: int, out: Path, extra: list[str]) -> None:
    command = command_for(seed, out, extra)
    subprocess.run([sys.executable, "-m", "rlvr_gym.cli", *command[1:]], check=True, cwd=ROOT)


def read_run(seed: int, out: Path, extra: list[str]) -> dict:
    """Figures of one finished run from its summary.json and metrics.jsonl."""
    run = out / f"seed{seed}"
    summary = json.loads((run / "summary.json").read_text())
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if "gen_tokens_per_s" in s]
    return {"seed": seed, "command": shlex.join(command_for(seed, out, extra)),
            "wall_seconds": summary["wall_seconds"], "cpu_seconds": summary["cpu_seconds"],
            "threads": summary["torch_threads"], "steps": len(steps),
            "before": summary["before"], "after": summary["after"],
            "gen_tokens_per_s": float(np.mean([s["gen_tokens_per_s"] for s in steps])),
            "update_tokens_per_s": float(np.mean([s["update_tokens_per_s"] for s in steps])),
            "final_reward": float(np.mean([s["reward"] for s in steps[-5:]]))}


def write_report(rows: list[dict], path: Path, extra: list[str], jobs: int) -> None:
    def col(key: str, when: str) -> list[float]:
        return [r[when][key] for r in rows]

    gain = [100 * (a - b) for a, b in zip(col("accuracy", "after"), col("accuracy", "before"),
                                          strict=True)]
    driver = f"python -m benchmarks.grpo --jobs {jobs} {shlex.join(extra)}".strip()
    lines = [
        "# Benchmark: GRPO on the bundled tiny model (the main job)", "",
        *provenance(driver),
        "", f"Command per seed: `{rows[0]['command'].replace('--seed 0', '--seed S')}`", "",
        f"Load average when the report was written: "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())}."
        + (f" The {len(rows)} seeds ran {jobs} at a time." if jobs > 1 else ""), "",
        "Wall time: the command's own measurement (summary.json), model loading to saved "
        "agent, both held-out evaluations included; it grows with whatever else shares the "
        f"CPU. CPU time: the same span in CPU seconds of the process, which runs "
        f"{rows[0]['threads']} torch thread(s): the wall time it needs on an idle machine "
        "(the verifier's worker process, idle on this task, is not counted).", "",
        "Held-out: 200 problems of the default task from dataset seed 1 (training uses seed 0). "
        "Accuracy = greedy decoding; pass@k unbiased from 8 samples at temperature 1.", "",
        "| seed | accuracy before | accuracy after | gain (points) | pass@1 before | pass@1 after "
        "| pass@8 before | pass@8 after | wall time (s) | CPU time (s) | generation tok/s "
        "| update tok/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r, g in zip(rows, gain, strict=True):
        b, a = r["before"], r["after"]
        lines.append(f"| {r['seed']} | {b['accuracy']:.3f} | {a['accuracy']:.3f} | {g:+.1f} | "
                     f"{b.get('pass@1', float('nan')):.3f} | {a.get('pass@1', float('nan')):.3f} "
                     f"| {b.get('pass@8', float('nan')):.3f} | {a.get('pass@8', float('nan')):.3f} "
                     f"| {r['wall_seconds']:.0f} | {r['cpu_seconds']:.0f} | "
                     f"{r['gen_tokens_per_s']:.0f} | "
                     f"{r['update_tokens_per_s']:.0f} |")
    lines += ["", f"Mean gain: {np.mean(gain):+.1f} points (min {min(gain):+.1f}); CPU time "
              f"mean {np.mean([r['cpu_seconds'] for r in rows]):.0f} s "
              f"(max {max(r['cpu_seconds'] for r in rows):.0f} s); wall time mean "
              f"{np.mean([r['wall_seconds'] for r in rows]):.0f} s "
              f"(max {max(r['wall_seconds'] for r in rows):.0f} s).", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/bench-grpo", help="run directories")
    parser.add_argument("--report", default=str(RESULTS_DIR / "grpo.md"))
    parser.add_argument("--report-only", action="store_true",
                        help="only rebuild the report from finished runs in --out")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at the same time "
                        "(more than 1 inflates each run's wall time)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="further `rlvr-gym train` arguments (default: none, i.e. the "
                        "README command)")
    args = parser.parse_args()
    out = Path(args.out) if Path(args.out).is_absolute() else ROOT / args.out
    if not args.report_only:
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda s: run_seed(s, out, args.extra), args.seeds))
    rows = [read_run(s, out, args.extra) for s in args.seeds]
    write_report(rows, Path(args.report), args.extra, args.jobs)


if __name__ == "__main__":
    main()
