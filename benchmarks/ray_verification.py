"""Benchmark: verifications/s of code candidates, the local sandbox pool against
`RayVerifierPool` with 1 and 2 worker processes.

Arms (each built fresh, warmed up on a few candidates, timed on one batch, closed):
- local: `CodeVerifier().verify_batch` in this process, its own pool (default workers: one
  sandbox per CPU);
- Ray pool, 1 worker and 2 workers: actors spread over the cluster, each holding a
  `CodeVerifier(workers=1)`, so workers = verifying processes.

Workload: every rlvr/CodeProblems-v0 problem's reference solution (passes), a blank program
(fails every test) and a program that raises while loading, `--copies` times. The arms take
turns within each of `--repeats` rounds; the table gives medians. CPU seconds: this process
(user + system, itself and its reaped children) plus, for the Ray arms, each actor's own
`getrusage` (itself and its reaped children, read after its sandboxes closed), as deltas
over the timed batch. Ray's own daemons (raylet, GCS) are not counted.

    python -m benchmarks.ray_verification [--repeats 3] [--copies 3] [--address ADDR]
    python -m benchmarks.ray_verification --quick --report /tmp/ray.md   # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

from benchmarks.common import RESULTS_DIR, provenance
from rlvr_gym.distributed.ray_verifier import RayVerifierPool, connect, cpu_seconds
from rlvr_gym.envs.tasks.code_problems import CodeProblemSource
from rlvr_gym.types import Problem, Verdict
from rlvr_gym.verifiers.code import CodeVerifier, CodeVerifierConfig

RESULTS = RESULTS_DIR / "ray_verification.md"
BLANK = "```python\nx = 0\n```"
RAISES = "```python\nraise RuntimeError('not solved')\n```"
ARMS = ("local CodeVerifier.verify_batch", "Ray pool, 1 worker", "Ray pool, 2 workers")


def workload(copies: int, problems: int | None = None) -> tuple[list[str], list[Problem]]:
    """(responses, problems): each problem's solution, a blank and a raising program."""
    chosen = list(CodeProblemSource())[:problems]
    pairs = [(r, p) for p in chosen for r in (p.solution, BLANK, RAISES)] * copies
    return [r for r, _ in pairs], [p for _, p in pairs]


def total(usages: Sequence[dict[str, float]]) -> float:
    return sum(u["self"] + u["children"] for u in usages)


def run_arm(arm: str, responses: list[str], problems: list[Problem], warmup: int
            ) -> tuple[float, float, list[Verdict]]:
    """(wall s, CPU s, verdicts) of one timed batch of `arm`."""
    if arm == ARMS[0]:
        verifier = CodeVerifier()
        verifier.verify_batch(responses[:warmup], problems[:warmup])
        before = total([cpu_seconds()])
        start = time.perf_counter()
        verdicts = verifier.verify_batch(responses, problems)
        wall = time.perf_counter() - start
        verifier.close()
        return wall, total([cpu_seconds()]) - before, verdicts
    pool = RayVerifierPool(CodeVerifier(CodeVerifierConfig(workers=1)), ARMS.index(arm))
    try:
        pool.verify_batch(responses[:warmup], problems[:warmup])
        before = total(pool.usage()) + total([cpu_seconds()])
        start = time.perf_counter()
        verdicts = pool.verify_batch(responses, problems)
        wall = time.perf_counter() - start
    finally:
        after = total(pool.close())
    return wall, after + total([cpu_seconds()]) - before, verdicts


def table(results: dict[str, list[tuple[float, float]]], n: int) -> list[str]:
    header = ["arm", "wall s", "verifications/s", "CPU s", "CPU ms / verification"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm in ARMS:
        wall = statistics.median(w for w, _ in results[arm])
        rate = statistics.median(n / w for w, _ in results[arm])
        cpu = statistics.median(c for _, c in results[arm])
        lines.append(f"| {arm} | {wall:.2f} | {rate:.1f} | {cpu:.2f} | {1000 * cpu / n:.1f} |")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds of all arms (median)")
    parser.add_argument("--copies", type=int, default=3, help="copies of the workload")
    parser.add_argument("--address", default=None,
                        help="Ray cluster (default: RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 round of 18 candidates (needs --report)")
    parser.add_argument("--report", default=str(RESULTS), help="markdown report path")
    args = parser.parse_args(argv)
    if args.quick and args.report == str(RESULTS):
        raise SystemExit("error: --quick never writes the recorded table; give --report PATH")
    if args.repeats < 1 or args.copies < 1:
        raise SystemExit("error: --repeats and --copies must be at least 1")
    repeats, copies = (1, 1) if args.quick else (args.repeats, args.copies)
    responses, problems = workload(copies, 6 if args.quick else None)
    ray = connect(args.address)
    nodes = sum(node["Alive"] for node in ray.nodes())
    cpus = ray.cluster_resources().get("CPU", 0)
    results: dict[str, list[tuple[float, float]]] = {arm: [] for arm in ARMS}
    reference: list[Verdict] | None = None
    same = True
    for round_ in range(repeats):
        for arm in ARMS:
            wall, cpu, verdicts = run_arm(arm, responses, problems, warmup=6)
            reference = reference or verdicts
            same = same and verdicts == reference
            results[arm].append((wall, cpu))
            print(f"round {round_ + 1}/{repeats} {arm}: {len(responses) / wall:.1f} "
                  f"verifications/s, {cpu:.2f} CPU s", file=sys.stderr)
    assert reference is not None
    rates: dict[str, float] = {arm: statistics.median(len(responses) / w for w, _ in runs)
                               for arm, runs in results.items()}
    correct = sum(v.correct for v in reference)
    command = "python -m benchmarks.ray_verification" + (
        " --quick" if args.quick else f" --repeats {repeats} --copies {copies}") + (
        f" --address {args.address}" if args.address else "")
    lines = ["# Code verification on Ray: local sandbox pool vs RayVerifierPool", "",
             *provenance(command, ("ray",)), "",
             f"Workload: {len(responses)} verifications ({len(problems) // (3 * copies)} "
             f"rlvr/CodeProblems-v0 problems x (reference solution + blank program + program "
             f"that raises) x {copies}); {correct} correct. Ray cluster: {nodes} node(s), "
             f"{cpus:g} CPUs. Arms take turns in each of {repeats} round(s), each built "
             "fresh and warmed up on 6 candidates; medians over the rounds. Local: "
             "`CodeVerifier()` (one sandbox per CPU); Ray: actors spread over the nodes, each "
             "with `CodeVerifier(workers=1)` (workers = verifying processes).", "",
             *table(results, len(responses)), "",
             f"Ray pool, 2 workers / 1 worker: {rates[ARMS[2]] / rates[ARMS[1]]:.2f}x "
             f"verifications/s; 2 workers / local: {rates[ARMS[2]] / rates[ARMS[0]]:.2f}x. "
             f"Verdicts of every arm and round equal to the first: {'yes' if same else 'NO'}. "
             "CPU s: this process (itself and reaped children) plus each Ray actor's own "
             "getrusage (itself and its reaped sandbox processes, read after its verifier "
             "closed), deltas over the timed batch; Ray's daemons (raylet, GCS) are not "
             "counted. Timings are noisy: the machine's cores are shared with other work.", ""]
    with open(args.report, "w") as out:
        out.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
