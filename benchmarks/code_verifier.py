"""Benchmark: the pooled, sandboxed `CodeVerifier` against a naive runner, side by side.

The naive runner is what many RL code pipelines start with: one fresh `python` subprocess per
test (program + that test, written to a temporary file), no sandbox layers, pass = right
output or exit status 0. The pooled verifier runs all tests of a candidate in one sandboxed
process, keeps a warm spare process per worker, and runs candidates on a bounded pool. Both
get the same number of parallel workers and the same interpreter.

Workload: every self-written problem's reference solution (passes) and a blank program
(fails every test), repeated. Throughput comes from one batch; latency (what one `env.step`
waits) from single candidates one after another.

    .venv/bin/python -m benchmarks.code_verifier [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from benchmarks.common import RESULTS_DIR, provenance
from rlvr_gym import Problem
from rlvr_gym.envs.tasks.code_problems import CodeProblemSource
from rlvr_gym.verifiers.code import (
    CodeVerifier,
    CodeVerifierConfig,
    extract_code,
    outputs_match,
)
from rlvr_gym.verifiers.sandbox import SandboxConfig

RESULTS = RESULTS_DIR / "code_verifier.md"
BLANK = "```python\nx = 0\n```"


def naive_test_runs(code: str, problem: Problem) -> list[tuple[str, str, Callable]]:
    """(script, stdin, pass check on the completed process) for each test."""
    tests = problem.tests
    if tests["format"] == "stdio":
        return [(code, c["input"],
                 lambda p, c=c: p.returncode == 0 and outputs_match(p.stdout, c["output"],
                                                                    tests.get("float_tol")))
                for c in tests["cases"]]
    if tests["format"] == "call":
        return [(f"{code}\nprint(repr({tests['fn']}(*{c['args']!r})))", "",
                 lambda p, c=c: p.stdout.strip() == repr(c["expected"]))
                for c in tests["cases"]]
    setup = tests.get("setup") or ""
    return [(f"{code}\n{setup}\n{line}", "", lambda p: p.returncode == 0)
            for line in tests["asserts"]]


def naive_verify(python: str, response: str, problem: Problem, timeout_s: float) -> float:
    """Fraction of tests passed, one subprocess per test."""
    code = extract_code(response) or ""
    runs = naive_test_runs(code, problem)
    passed = 0
    for script, stdin, check in runs:
        with tempfile.NamedTemporaryFile("w", suffix=".py") as file:
            file.write(script)
            file.flush()
            try:
                done = subprocess.run([python, "-I", "-S", file.name], input=stdin, text=True,
                                      capture_output=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                continue
        passed += bool(check(done))
    return passed / len(runs)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(name: str, batch: Callable[[], list[float]], single: Callable[[int], float],
            n_candidates: int, n_tests: int, n_latency: int) -> dict[str, float | str]:
    start = time.perf_counter()
    scores = batch()
    elapsed = time.perf_counter() - start
    latencies = []
    for i in range(n_latency):
        t0 = time.perf_counter()
        single(i)
        latencies.append(time.perf_counter() - t0)
    return {"runner": name, "candidates/s": n_candidates / elapsed, "tests/s": n_tests / elapsed,
            "p50 ms": 1000 * statistics.median(latencies),
            "p99 ms": 1000 * percentile(latencies, 0.99),
            "mean score": sum(scores) / len(scores)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="copies of the workload")
    parser.add_argument("--workers", type=int, default=2, help="parallel workers for both")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds in which the sandboxed arms take turns (medians reported)")
    parser.add_argument("--latency-samples", type=int, default=72,
                        help="single candidates timed one after another")
    args = parser.parse_args()

    problems = list(CodeProblemSource())
    pairs = [(p.solution, p) for p in problems] + [(BLANK, p) for p in problems]
    pairs *= args.repeats
    responses, targets = [r for r, _ in pairs], [p for _, p in pairs]
    n_tests = sum(len(naive_test_runs("", p)) for p in targets)
    n_latency = min(args.latency_samples, len(pairs))
    arms = (("pooled, sandboxed", "auto", True),
            ("pooled, sandboxed without bubblewrap", "never", True),
            ("pooled, sandboxed, run_cgroup=False", "auto", False))
    verifiers = [CodeVerifier(CodeVerifierConfig(workers=args.workers, sandbox=SandboxConfig(
        bubblewrap=bubblewrap, run_cgroup=cgroup))) for _, bubblewrap, cgroup in arms]
    layers = ", ".join(verifiers[0].layers.active())
    python = verifiers[0].pool.python
    labels = [f"{label} ({', '.join(v.layers.active()[4:]) or 'base layers'})"
              for (label, _, _), v in zip(arms, verifiers, strict=True)]
    runs: list[list[dict[str, float | str]]] = [[] for _ in arms]
    for _ in range(args.rounds):  # the arms take turns: each sees the same machine load
        for k, verifier in enumerate(verifiers):
            runs[k].append(measure(
                labels[k], lambda v=verifier: [x.score for x in v.verify_batch(responses, targets)],
                lambda i, v=verifier: v.verify(*pairs[i]), len(pairs), n_tests, n_latency))
    for verifier in verifiers:
        verifier.close()
    rows = [{key: statistics.median(r[key] for r in arm) if key != "runner" else arm[0][key]
             for key in arm[0]} for arm in runs]
    timeout_s = CodeVerifierConfig().test_timeout_s
    with ThreadPoolExecutor(args.workers) as pool:
        rows.insert(0, measure(
            "naive: one subprocess per test",
            lambda: list(pool.map(lambda rp: naive_verify(python, *rp, timeout_s), pairs)),
            lambda i: naive_verify(python, *pairs[i], timeout_s), len(pairs), n_tests,
            n_latency))

    speedups = [row["candidates/s"] / rows[0]["candidates/s"]  # type: ignore[operator]
                for row in rows[1:]]
    header = ["runner", "candidates/s", "tests/s", "p50 ms", "p99 ms", "mean score"]
    lines = ["# Code verifier throughput: pooled sandbox vs naive subprocess-per-test", "",
             *provenance(f"python -m benchmarks.code_verifier --repeats {args.repeats} "
                         f"--workers {args.workers} --rounds {args.rounds}"), "",
             f"Workload: {len(pairs)} candidates ({len(problems)} problems x (reference "
             f"solution + blank program) x {args.repeats}), {n_tests} tests, {args.workers} "
             f"workers for every runner, interpreter {python}. Latency: {n_latency} single "
             "candidates one after another (what one env.step waits). The sandboxed arms take "
             f"turns in {args.rounds} rounds; their figures are medians over the rounds. "
             f"Isolation layers of the default verifier here: {layers}.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(
            f"{row[h]:.2f}" if isinstance(row[h], float) else str(row[h]) for h in header)
            + " |")
    lines += ["", f"Candidates/s relative to the naive runner: {speedups[0]:.1f}x with "
              f"bubblewrap, {speedups[1]:.1f}x without (host running as "
              f"{'root' if os.geteuid() == 0 else 'a normal user'}). Mean score is the same "
              "check both ways (0.5 = every reference passes, every blank fails). The naive "
              "runner has no isolation at all and scores assert tests by exit status, which "
              "`os._exit(0)` fools. Timings are noisy: the machine's cores are shared with "
              "other work.", "",
              f"The run's cgroup (memory and process cap of the whole run): "
              f"{rows[1]['candidates/s'] / rows[3]['candidates/s']:.2f}x the candidates/s of "
              "the same sandbox without it (`run_cgroup=False`).", ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
