"""MathVerifier against math-verify: accuracy on the labelled corpus and the hedging suite,
throughput on a numeric mix and on a symbolic-only mix.

    .venv/bin/python -m benchmarks.math_verifier [--items 2000] [--seed 0]

One run, one process, both verifiers called from the main thread:

1. Accuracy on `tests/verifiers/math_corpus.jsonl`, overall and per category. A case counts
   as right when the verifier's reward (correct or not) matches the label; for MathVerifier
   the exact status (correct / incorrect / no_answer) is reported too, and the slowest call.
   math-verify is called the way its README shows: `verify(parse("$" + reference + "$"),
   parse(response))`.
2. The hedging suite (`HEDGING_CASES` of `tests/verifiers/test_math_hedging.py`): how many
   responses that must never pay each verifier pays.
3. Throughput on two seeded mixes of unique items (distinct numbers per item, so neither
   verifier's parse cache answers for it), about half right: a numeric mix shaped like RL
   rewards (80% plain numbers, then fractions, root sets and LaTeX answers) and a symbolic-only
   mix (radicals, pi, `\\pm`, fractions with radicals, intervals, polynomials), where every
   item needs a symbolic comparison. The two verifiers are interleaved item by item (the
   order alternating), so load on a shared machine falls on both alike: verdicts per second
   and p50/p99/max latency. Both first see a short warm-up (imports, the worker's start).

The figures go to `benchmarks/results/math_verifier.md`; nothing in that file is typed by hand.
"""

from __future__ import annotations

import argparse
import importlib.util
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
HEDGING = ROOT / "tests" / "verifiers" / "test_math_hedging.py"
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


def accuracy(cases: list[dict], verifier: MathVerifier) -> tuple[dict, float]:
    """Per category: cases, ours exact-status right, ours reward right, math-verify right;
    and the slowest MathVerifier call in seconds."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    slowest = 0.0
    for case in cases:
        row = table[case["category"]]
        start = time.perf_counter()
        status = ours_status(verifier, case)
        slowest = max(slowest, time.perf_counter() - start)
        want_reward = case["expected"] == "correct"
        row["cases"] += 1
        row["ours_status"] += status == case["expected"]
        row["ours_reward"] += (status == "correct") == want_reward
        row["math_verify"] += math_verify_correct(case["response"], case["reference"]) == (
            want_reward)
    return table, slowest


def hedging_cases() -> list:
    """The hedging suite's responses that must never pay, loaded from its test module."""
    spec = importlib.util.spec_from_file_location("math_hedging_cases", HEDGING)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.HEDGING_CASES)


def hedges_paid(cases: list, verifier: MathVerifier) -> tuple[int, int]:
    """(hedges MathVerifier pays, hedges math-verify pays). math-verify gets no question."""
    ours = theirs = 0
    for case in cases:
        reference: str | Problem = case.reference
        if case.question:
            reference = Problem(id="hedge", question=case.question, answer=case.reference)
        ours += verifier.verify(case.response, reference).correct
        theirs += math_verify_correct(case.response, case.reference)
    return ours, theirs


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


def _symbolic_item(rng: random.Random) -> tuple[str, str]:
    """One unique item that needs a symbolic comparison, right or wrong with equal odds."""
    a, b, c = rng.randint(2, 40), rng.choice([2, 3, 5, 6, 7, 10, 11, 13]), rng.randint(2, 9)
    kind = rng.randrange(6)
    if kind == 0:  # radicals
        reference, right = f"{a}\\sqrt{{{b}}}", f"\\sqrt{{{a * a * b}}}"
        wrong = f"{a}\\sqrt{{{b + 1}}}"
    elif kind == 1:  # pi
        reference, right = f"\\frac{{{a}\\pi}}{{{c}}}", f"\\frac{{{a}}}{{{c}}}\\pi"
        wrong = f"\\frac{{{a}\\pi}}{{{c + 1}}}"
    elif kind == 2:  # \pm
        reference = f"{a} \\pm \\sqrt{{{b}}}"
        right = f"{a} + \\sqrt{{{b}}}, {a} - \\sqrt{{{b}}}"
        wrong = f"{a} + \\sqrt{{{b}}}"
    elif kind == 3:  # fractions with radicals
        reference = f"\\frac{{{a} + \\sqrt{{{b}}}}}{{{c}}}"
        right = f"\\frac{{{2 * a} + 2\\sqrt{{{b}}}}}{{{2 * c}}}"
        wrong = f"\\frac{{{a} - \\sqrt{{{b}}}}}{{{c}}}"
    elif kind == 4:  # intervals
        reference, right, wrong = f"({a}, \\infty)", f"x > {a}", f"[{a}, \\infty)"
    else:  # polynomials
        reference, right = f"x^2+{a + c}x+{a * c}", f"(x+{a})(x+{c})"
        wrong = f"(x+{a})(x-{c})"
    answer = right if rng.random() < 0.5 else wrong
    return f"Simplifying, the answer is $\\boxed{{{answer}}}$.", reference


def symbolic_mix(n: int, seed: int) -> list[tuple[str, str, str]]:
    """`n` unique (kind, response, reference) triples that all need sympy."""
    rng, items, seen = random.Random(seed), [], set()
    while len(items) < n:
        response, reference = _symbolic_item(rng)
        if (response, reference) not in seen:
            seen.add((response, reference))
            items.append(("symbolic", response, reference))
    return items


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


def interleaved(judges: dict[str, Callable[[str, str], object]],
                items: list[tuple[str, str, str]]) -> dict[str, dict]:
    """Throughput and latency of each judge over `items`, interleaved item by item (the order
    of the judges alternating), so that load on a shared machine falls on all of them."""
    names = list(judges)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    for k, (_, response, reference) in enumerate(items):
        for name in names if k % 2 == 0 else reversed(names):
            t = time.perf_counter()
            judges[name](response, reference)
            latencies[name].append(time.perf_counter() - t)
    results = {}
    for name, values in latencies.items():
        values.sort()
        results[name] = {
            "per_s": len(values) / sum(values),
            "p50_ms": 1000 * statistics.median(values),
            "p99_ms": 1000 * values[min(len(values) - 1, int(0.99 * len(values)))],
            "max_ms": 1000 * values[-1],
            "total_s": sum(values),
        }
    return results


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
    table, slowest = accuracy(cases, verifier)
    hedges = hedging_cases()
    ours_paid, theirs_paid = hedges_paid(hedges, verifier)

    judges = {"MathVerifier": verifier.verify, "math-verify parse+verify": math_verify_correct}
    interleaved(judges, realistic_mix(50, args.seed + 1) + symbolic_mix(50, args.seed + 1))
    mixes = {"numeric": realistic_mix(args.items, args.seed),
             "symbolic-only": symbolic_mix(args.items, args.seed + 2)}
    speed = {name: interleaved(judges, items) for name, items in mixes.items()}
    composition = ", ".join(f"{sum(1 for k, _, _ in mixes['numeric'] if k == kind)} {kind}"
                            for kind, _, _ in MIX)
    verifier.close()

    command = ".venv/bin/python -m benchmarks.math_verifier " + " ".join(
        sys.argv[1:] if argv is None else argv)
    lines = [
        "# MathVerifier vs math-verify",
        "",
        *provenance(command.strip(), ("sympy", "latex2sympy2_extended", "math-verify")),
        "Other jobs shared the CPU during the run: absolute timings are noisy; the two "
        "verifiers are interleaved item by item, so the ratio is the figure that matters.",
        "",
        f"## Accuracy on the labelled corpus ({len(cases)} cases)",
        "",
        "Reward agreement: the verifier's correct / not-correct matches the label. "
        "Exact status: MathVerifier's status (correct / incorrect / no_answer) equals the label. "
        "Labels follow the mathematics and `docs/math_verification.md`.",
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
        f"Slowest MathVerifier call on a corpus case: {slowest:.2f} s.",
        "",
        f"## Hedging suite ({len(hedges)} responses that must never pay)",
        "",
        "| verifier | hedges paid (false positives) |",
        "|---|---:|",
        f"| MathVerifier | {ours_paid} |",
        f"| math-verify parse+verify (given no question) | {theirs_paid} |",
    ]
    for name, results in speed.items():
        detail = composition if name == "numeric" else (
            "radicals, pi, \\pm, fractions with radicals, intervals, polynomials")
        lines += [
            "",
            f"## Throughput, {name} mix ({args.items} unique responses: {detail})",
            "",
            "| verifier | verdicts/s | p50 latency (ms) | p99 latency (ms) | max (ms) |",
            "|---|---:|---:|---:|---:|",
        ]
        for judge, r in results.items():
            lines.append(f"| {judge} | {r['per_s']:.0f} | {r['p50_ms']:.3f} "
                         f"| {r['p99_ms']:.2f} | {r['max_ms']:.1f} |")
        ours, theirs = (results[judge]["per_s"] for judge in judges)
        lines += ["", f"Throughput ratio (MathVerifier / math-verify): **{ours / theirs:.1f}x**"]
    lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def _pct(right: int, total: int) -> str:
    return f"{right}/{total} ({100 * right / total:.1f}%)"


if __name__ == "__main__":
    main()
