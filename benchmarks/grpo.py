"""Benchmark of the main job: `rlvr-gym train` (GRPO on the bundled tiny model, default task)
over several seeds. Records held-out accuracy before/after, wall time and generation/update
throughput to benchmarks/results/grpo.md.

    python benchmarks/grpo.py                 # 3 seeds, the README command's defaults
    python benchmarks/grpo.py --seeds 0 --extra --steps 5   # quicker look
    python benchmarks/grpo.py --report-only    # rebuild the report from finished runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


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
            "wall_seconds": summary["wall_seconds"], "steps": len(steps),
            "before": summary["before"], "after": summary["after"],
            "gen_tokens_per_s": float(np.mean([s["gen_tokens_per_s"] for s in steps])),
            "update_tokens_per_s": float(np.mean([s["update_tokens_per_s"] for s in steps])),
            "final_reward": float(np.mean([s["reward"] for s in steps[-5:]]))}


def write_report(rows: list[dict], path: Path, extra: list[str], jobs: int) -> None:
    def col(key: str, when: str) -> list[float]:
        return [r[when][key] for r in rows]

    gain = [100 * (a - b) for a, b in zip(col("accuracy", "after"), col("accuracy", "before"),
                                          strict=True)]
    lines = [
        "# Benchmark: GRPO on the bundled tiny model (the main job)", "",
        f"Command per seed: `{rows[0]['command'].replace('--seed 0', '--seed S')}`",
        f"(driver: `python benchmarks/grpo.py --jobs {jobs} {shlex.join(extra)}`)"
        .replace(" `)", "`)"), "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, torch "
        f"{__import__('torch').__version__}, Python {platform.python_version()}. "
        f"Report written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (load average "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} then). The CPU was shared with "
        "other jobs during the runs: wall times are slower than on an idle machine."
        + (f" The {len(rows)} seeds ran {jobs} at a time, which slows each run further."
           if jobs > 1 else ""), "",
        "Wall time: the command's own measurement (summary.json), model loading to saved "
        "agent, both held-out evaluations included.", "",
        "Held-out: 200 problems of the default task from dataset seed 1 (training uses seed 0). "
        "Accuracy = greedy decoding; pass@k unbiased from 8 samples at temperature 1.", "",
        "| seed | accuracy before | accuracy after | gain (points) | pass@1 before | pass@1 after "
        "| pass@8 before | pass@8 after | wall time (s) | generation tok/s | update tok/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r, g in zip(rows, gain, strict=True):
        b, a = r["before"], r["after"]
        lines.append(f"| {r['seed']} | {b['accuracy']:.3f} | {a['accuracy']:.3f} | {g:+.1f} | "
                     f"{b.get('pass@1', float('nan')):.3f} | {a.get('pass@1', float('nan')):.3f} "
                     f"| {b.get('pass@8', float('nan')):.3f} | {a.get('pass@8', float('nan')):.3f} "
                     f"| {r['wall_seconds']:.0f} | {r['gen_tokens_per_s']:.0f} | "
                     f"{r['update_tokens_per_s']:.0f} |")
    lines += ["", f"Mean gain: {np.mean(gain):+.1f} points (min {min(gain):+.1f}); mean wall "
              f"time {np.mean([r['wall_seconds'] for r in rows]):.0f} s "
              f"(max {max(r['wall_seconds'] for r in rows):.0f} s).", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/bench-grpo", help="run directories")
    parser.add_argument("--report", default=str(ROOT / "benchmarks/results/grpo.md"))
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
