"""MathVerifier against math-verify: accuracy on the labelled corpus, throughput on a mix.

    .venv/bin/python -m benchmarks.math_verifier [--items 2000] [--seed 0]

One run, one process, both verifiers called sequentially from the main thread:

1. Accuracy on `tests/verifiers/math_corpus.jsonl`, overall and per category. A case counts
   as right when the verifier's reward (correct or not) matches the label; for MathVerifier
   the exact status (correct / incorrect / no_answer) is reported too. math-verify is called
   the way its README shows: `verify(parse("$" + reference + "$"), parse(response))`.
2. Throughput on a seeded synthetic mix shaped like RL rewards (80% plain numbers, then
   fractions, root sets and LaTeX answers; about half right), distinct numbers per item so
   that neither verifier's parse cache answers for it: verdicts per second and p50/p99
   latency. Both verifiers first see a short warm-up (imports, MathVerifier's worker start).

The figures go to `benchmarks/results/math_verifier.md`; nothing in that file is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import provenance
from rlvr_gym.types import Problem
from rlvr_gym.verifiers.math import MathVerifier

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "verifiers" / "math_corpus.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "math_verifier.md"


def load_corpus() -> list[dict]:
    """The labelled cases: category, reference, response, expected status, optional question."""
    with open(CORPUS, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def math_verify_correct(response: str, reference: str) -> bool:
    """math-verify's judgement, called as its README shows."""
    from math_verify import parse, verify

    return bool(verify(parse("$" + reference + "$"), parse(response)))


def ours_status(verifier: MathVerifier, case: dict) -> str:
    """MathVerifier's status; the question is passed along when the case has one."""
    reference: str | Problem = case["reference"]
    if case.get("question"):
        reference = Problem(id="corpus", question=case["question"], answer=case["reference"])
    return verifier.verify(case["response"], reference).status.value


def accuracy(cases: list[dict], verifier: MathVerifier) -> dict:
    """Per category: cases, ours exact-status right, ours reward right, math-verify right."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for case in cases:
        row = table[case["category"]]
        status = ours_status(verifier, case)
        want_reward = case["expected"] == "correct"
        row["cases"] += 1
        row["ours_status"] += status == case["expected"]
        row["ours_reward"] += (status == "correct") == want_reward
        row["math_verify"] += math_verify_correct(case["response"], case["reference"]) == (
            want_reward)
    return table


def _number_item(rng: random.Random) -> tuple[str, str]:
    value = rng.choice([rng.randint(-50, 10_000), round(rng.uniform(0, 1000), rng.randint(1, 2))])
    answer = value if rng.random() < 0.5 else value + rng.choice([1, -1, 10, 2])
    shown = f"{answer:,}" if isinstance(answer, int) and answer > 9999 and rng.random() < 0.3 else (
        str(answer))
    style = rng.random()
    if style < 0.5:
        response = f"First we add the parts.\nThen simplify.\nThe answer is $\\boxed{{{shown}}}$."
    elif style < 0.8:
        response = f"Step 1: compute.\nStep 2: check.\n#### {shown}"
    else:
        response = f"So in total she has {shown} apples."
    return response, str(value)


def _fraction_item(rng: random.Random) -> tuple[str, str]:
    num, den = rng.randint(1, 99), rng.randint(2, 99)
    reference = f"\\frac{{{num}}}{{{den}}}"
    pick = rng.random()
    if pick < 0.4:
        answer = reference
    elif pick < 0.6:
        answer = f"\\frac{{{num * 2}}}{{{den * 2}}}"
    else:
        answer = f"\\frac{{{num + 1}}}{{{den}}}"
    return f"Combining the fractions gives $\\boxed{{{answer}}}$.", reference


def _set_item(rng: random.Random) -> tuple[str, str]:
    roots = sorted(rng.sample(range(-20, 21), 3))
    reference = ", ".join(map(str, roots))
    answer = list(roots)
    rng.shuffle(answer)
    if rng.random() < 0.5:
        answer[0] += 1
    return f"The roots are $\\boxed{{{', '.join(map(str, answer))}}}$.", reference


def _latex_item(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(2, 30), rng.choice([2, 3, 5, 6, 7, 10, 11])
    kind = rng.randrange(4)
    if kind == 0:  # radicals
        reference, right = f"{a}\\sqrt{{{b}}}", f"\\sqrt{{{a * a * b}}}"
        wrong = f"{a}\\sqrt{{{b + 1}}}"
    elif kind == 1:  # pi
        reference, right = f"\\frac{{{a}\\pi}}{{{b}}}", f"\\frac{{{a}}}{{{b}}}\\pi"
        wrong = f"{a}\\pi"
    elif kind == 2:  # intervals
        reference, right, wrong = f"({a}, \\infty)", f"x > {a}", f"[{a}, \\infty)"
    else:  # expressions
        reference, right, wrong = f"x^2+{a + b}x+{a * b}", f"(x+{a})(x+{b})", f"(x+{a})(x-{b})"
    answer = right if rng.random() < 0.5 else wrong
    return f"Simplifying, $\\boxed{{{answer}}}$.", reference


#: Shares of the throughput mix: (kind, cumulative probability, item maker).
MIX = [("number", 0.80, _number_item), ("fraction", 0.88, _fraction_item),
       ("root set", 0.93, _set_item), ("LaTeX", 1.01, _latex_item)]


def realistic_mix(n: int, seed: int) -> list[tuple[str, str, str]]:
    """`n` (kind, response, reference) triples: 80% numbers, 8% fractions, 5% root sets,
    7% LaTeX (radicals, pi, intervals, polynomials)."""
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        u = rng.random()
        kind, maker = next((k, m) for k, bound, m in MIX if u < bound)
        items.append((kind, *maker(rng)))
    return items


def timed(judge: Callable[[str, str], object], items: list[tuple[str, str, str]]) -> dict:
    """Throughput and latency of `judge` over `items`, called one after another."""
    latencies = []
    start = time.perf_counter()
    for _, response, reference in items:
        t = time.perf_counter()
        judge(response, reference)
        latencies.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    latencies.sort()
    return {
        "per_s": len(items) / total,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "total_s": total,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=2000, help="size of the throughput mix")
    parser.add_argument("--seed", type=int, default=0, help="seed of the throughput mix")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results markdown file")
    args = parser.parse_args(argv)
    if args.items < 100:
        raise ValueError(f"--items must be at least 100 for a meaningful p99, got {args.items}")

    verifier = MathVerifier()
    cases = load_corpus()
    table = accuracy(cases, verifier)

    items = realistic_mix(args.items, args.seed)
    warm_up = realistic_mix(50, args.seed + 1)
    timed(verifier.verify, warm_up)
    timed(math_verify_correct, warm_up)
    ours = timed(verifier.verify, items)
    theirs = timed(math_verify_correct, items)
    composition = ", ".join(f"{sum(1 for k, _, _ in items if k == kind)} {kind}"
                            for kind, _, _ in MIX)
    verifier.close()

    command = ".venv/bin/python -m benchmarks.math_verifier " + " ".join(
        sys.argv[1:] if argv is None else argv)
    lines = [
        "# MathVerifier vs math-verify",
        "",
        *provenance(command.strip(), ("sympy", "latex2sympy2_extended", "math-verify")),
        "Other jobs shared the CPU during the run: absolute timings are noisy, the ratio "
        "is the figure that matters.",
        "",
        f"## Accuracy on the labelled corpus ({len(cases)} cases)",
        "",
        "Reward agreement: the verifier's correct / not-correct matches the label. "
        "Exact status: MathVerifier's status (correct / incorrect / no_answer) equals the label.",
        "",
        "| category | cases | MathVerifier reward | MathVerifier exact status "
        "| math-verify reward |",
        "|---|---:|---:|---:|---:|",
    ]
    totals: dict[str, int] = defaultdict(int)
    for category in sorted(table):
        row = table[category]
        for key, count in row.items():
            totals[key] += count
        lines.append(f"| {category} | {row['cases']} | {_pct(row['ours_reward'], row['cases'])} "
                     f"| {_pct(row['ours_status'], row['cases'])} "
                     f"| {_pct(row['math_verify'], row['cases'])} |")
    lines.append(f"| **all** | {totals['cases']} | "
                 f"**{_pct(totals['ours_reward'], totals['cases'])}** "
                 f"| {_pct(totals['ours_status'], totals['cases'])} "
                 f"| **{_pct(totals['math_verify'], totals['cases'])}** |")
    lines += [
        "",
        f"## Throughput on a realistic mix ({len(items)} responses, seed {args.seed}: "
        f"{composition})",
        "",
        "| verifier | verdicts/s | p50 latency (ms) | p99 latency (ms) | total (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in (("MathVerifier", ours), ("math-verify parse+verify", theirs)):
        lines.append(f"| {name} | {r['per_s']:.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.2f} "
                     f"| {r['total_s']:.2f} |")
    lines += ["", f"Throughput ratio (MathVerifier / math-verify): "
                  f"**{ours['per_s'] / theirs['per_s']:.1f}x**", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def _pct(right: int, total: int) -> str:
    return f"{right}/{total} ({100 * right / total:.1f}%)"


if __name__ == "__main__":
    main()
