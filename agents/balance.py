"""B-STaR's monitors and its exploration/exploitation balance (arXiv 2412.17256;
docs/algorithms.md, B-STaR, which lists the choices made): which responses a threshold keeps,
how many distinct correct ones a query gets, and the balance score that B-STaR maximises over
a temperature grid and a threshold grid each iteration ("distinct": exact-string distinct).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    """One scored response to a query."""

    query: str
    """Problem id."""
    text: str
    correct: bool
    """The verifier's answer check."""
    reward: float
    """The selection reward: 1(correct), plus the step score when a step scorer is used."""


def by_query(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    """Samples grouped by query, in order of first appearance."""
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.query].append(s)
    return dict(groups)


def unique_responses(samples: Iterable[Sample]) -> list[Sample]:
    """The first sample of every distinct (query, text) pair, in order (the official code's)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for s in samples:
        if (s.query, s.text) not in seen:
            seen.add((s.query, s.text))
            out.append(s)
    return out


def unique_correct(samples: Iterable[Sample]) -> int:
    """Number of distinct (exact-string) correct responses."""
    return len({s.text for s in samples if s.correct})


def pass_at_k_s(samples: Sequence[Sample], s: int = 1) -> float:
    """Share of queries with at least `s` distinct correct responses among their samples
    (Pass@K-S, K being the samples per query; Pass@K = Pass@K-1)."""
    groups = by_query(samples)
    return sum(unique_correct(g) >= s for g in groups.values()) / len(groups) if groups else 0.0


def reward_at_k_s(samples: Sequence[Sample], s: int = 1) -> float:
    """Share of queries whose top-`s` samples by reward are all correct (Reward@K-S;
    Best-of-K = Reward@K-1). Ties keep sampling order."""
    groups = by_query(samples)
    if not groups:
        return 0.0
    hits = 0
    for group in groups.values():
        top = sorted(group, key=lambda x: -x.reward)[:s]
        hits += len(top) == s and all(x.correct for x in top)
    return hits / len(groups)


_EQUATION_SPANS = re.compile(r"\$([^$]*=[^$]*)\$|<<([^<>]*)>>|\\\[(.*?)\\\]", re.DOTALL)


def equations(text: str) -> list[str]:
    """The equations of a response: `$...$`, `<<...>>` and `\\[...\\]` spans containing "=",
    and plain lines of the form `lhs = rhs` (the procedural tasks' steps), whitespace-free."""
    found = [next(g for g in m.groups() if g is not None) for m in _EQUATION_SPANS.finditer(text)]
    stripped = _EQUATION_SPANS.sub("", text)
    found += [line for line in stripped.splitlines() if "=" in line]
    return ["".join(e.split()) for e in found if "=" in e]


def distinct_equations(samples: Sequence[Sample]) -> float:
    """Diversity: per query, distinct equations / all equations over its correct responses,
    averaged over queries that have any (Distinct Equations, Wu et al. 2024)."""
    ratios = []
    for group in by_query(samples).values():
        eqs = [e for s in group if s.correct for e in equations(s.text)]
        if eqs:
            ratios.append(len(set(eqs)) / len(eqs))
    return sum(ratios) / len(ratios) if ratios else 0.0


def select(samples: Iterable[Sample], threshold: float) -> list[Sample]:
    """The samples rejection fine-tuning keeps: reward strictly above the threshold."""
    return [s for s in samples if s.reward > threshold]


def balance_score(samples: Sequence[Sample], threshold: float, n_star: int) -> float:
    """Mean over the queries of `samples` of min(n'/n*, 1) * n'/n, with n the distinct responses
    the threshold keeps for the query and n' the correct ones among them (0 if none kept)."""
    if n_star < 1:
        raise ValueError(f"n_star must be at least 1, got {n_star}")
    groups = by_query(samples)
    if not groups:
        return 0.0
    total = 0.0
    for group in groups.values():
        kept = unique_responses(select(group, threshold))
        if kept:
            n_unique = unique_correct(kept)
            total += min(n_unique / n_star, 1.0) * n_unique / len(kept)
    return total / len(groups)


def monitors(samples: Sequence[Sample], s: int) -> dict[str, float]:
    """B-STaR's monitors of K samples per query, S = `s` (docs/algorithms.md, B-STaR)."""
    return {
        "pass_at_k": pass_at_k_s(samples, 1),
        "pass_at_k_s": pass_at_k_s(samples, s),
        "best_of_k": reward_at_k_s(samples, 1),
        "reward_at_k_s": reward_at_k_s(samples, s),
        "distinct_equations": distinct_equations(samples),
        "sample_accuracy": sum(x.correct for x in samples) / len(samples) if samples else 0.0,
    }


def n_star_for(selected_per_iteration: int, queries_per_iteration: int) -> int:
    """n* = ceil(N / M): the share of the selected data one query should get."""
    if selected_per_iteration < 1 or queries_per_iteration < 1:
        raise ValueError("N and M must be positive")
    return math.ceil(selected_per_iteration / queries_per_iteration)


@dataclass(frozen=True)
class BalanceChoice:
    """The (temperature, threshold) pair with the highest balance score, and the grid."""

    temperature: float
    threshold: float
    score: float
    grid: dict[tuple[float, float], float]


def search_balance(samples_by_temperature: dict[float, Sequence[Sample]],
                   thresholds: Sequence[float], n_star: int) -> BalanceChoice:
    """B-STaR's per-iteration search: the pair maximising the balance score. Ties go to the
    lower temperature, then the higher threshold (the more conservative choice)."""
    if not samples_by_temperature or not thresholds:
        raise ValueError("need at least one temperature and one threshold")
    grid = {(t, tau): balance_score(samples, tau, n_star)
            for t, samples in samples_by_temperature.items() for tau in thresholds}
    (t, tau), score = max(grid.items(), key=lambda kv: (kv[1], -kv[0][0], kv[0][1]))
    return BalanceChoice(t, tau, score, grid)
