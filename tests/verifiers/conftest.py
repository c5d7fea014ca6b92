"""Shared by the verifier tests: the per-category report of the math corpus."""

from __future__ import annotations

import pytest

_CORPUS_REPORT: dict[str, list[int]] = {}


@pytest.fixture(scope="session")
def corpus_report() -> dict[str, list[int]]:
    """category -> [cases judged as labelled, cases]; printed at the end of the run."""
    return _CORPUS_REPORT


def pytest_terminal_summary(terminalreporter) -> None:
    if not _CORPUS_REPORT:
        return
    terminalreporter.section("math verifier corpus: verdicts as labelled, per category")
    right = sum(r for r, _ in _CORPUS_REPORT.values())
    total = sum(n for _, n in _CORPUS_REPORT.values())
    for category, (r, n) in sorted(_CORPUS_REPORT.items()):
        terminalreporter.write_line(f"{category:>14}: {r}/{n}")
    terminalreporter.write_line(f"{'all':>14}: {right}/{total} ({100 * right / total:.1f}%)")
