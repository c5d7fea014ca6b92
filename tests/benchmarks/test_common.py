"""The statistics every method benchmark ends with, and the guard of recorded tables."""

import math

import pytest

from benchmarks.common import check_report, level_verdict, paired, seeds_line, verdict


def test_paired_gives_the_mean_difference_its_standard_error_interval_and_t_test() -> None:
    d = paired([1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.0, 0.0, 0.0, 0.0])
    assert d.diffs == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert d.mean == pytest.approx(3.0)
    assert d.se == pytest.approx(math.sqrt(2.5) / math.sqrt(5))  # sample std / sqrt(n)
    assert (d.low, d.high) == pytest.approx((3 - 2.7764451 * d.se, 3 + 2.7764451 * d.se))
    assert d.p == pytest.approx(0.01324, abs=1e-5)  # t = 4.243 on 4 d.o.f., two-sided
    assert d.text(100, " points").startswith("+300.0 points (SE 70.7, 95% CI +103.7..+496.3")


def test_paired_pairs_by_seed_not_by_pooling() -> None:
    # The same two samples, paired: a constant shift of 0.1 is perfectly separated, although
    # the seeds themselves spread far more than 0.1.
    base = [0.1, 0.5, 0.9, 0.3, 0.7]
    d = paired([b + 0.1 for b in base], [b + 0.02 * (-1) ** i for i, b in enumerate(base)])
    assert d.mean == pytest.approx(0.096) and d.low > 0.05
    assert d.p < 1e-3


def test_paired_refuses_unpaired_figures() -> None:
    with pytest.raises(ValueError, match="same seeds"):
        paired([0.1, 0.2], [0.1])


@pytest.mark.parametrize(("method", "higher", "word"), [
    ([0.6, 0.62, 0.65, 0.61, 0.64], True, "reproduced"),
    ([0.6, 0.62, 0.65, 0.61, 0.64], False, "not reproduced"),
    ([0.7, 0.45, 0.66, 0.52, 0.58], True, "same direction, not separated"),
    ([0.4, 0.38, 0.45, 0.39, 0.41], False, "reproduced"),
])
def test_verdict_judges_the_interval_in_the_papers_direction(
        method: list[float], higher: bool, word: str) -> None:
    line = verdict("effect", paired(method, [0.5] * 5), higher_is_paper=higher, cause="why")
    assert line == f"- effect: **{word}**; why."


def test_verdict_makes_no_claim_below_five_seeds() -> None:
    line = verdict("effect", paired([0.9, 0.9, 0.9, 0.91], [0.1, 0.1, 0.1, 0.1]))
    assert "too few seeds to judge (4 < 5)" in line and "reproduced" not in line


def test_a_report_with_fewer_seeds_does_not_replace_the_recorded_one(tmp_path) -> None:
    recorded = tmp_path / "method.md"
    recorded.write_text("# table\n\nCommand: `x`  \n" + seeds_line([0, 1, 2, 3, 4]) + "\n")
    with pytest.raises(SystemExit, match="records 5 seeds and this run has 1"):
        check_report(recorded, [0], default=recorded)
    check_report(recorded, [0, 1, 2, 3, 4, 5], default=recorded)  # more seeds: allowed
    check_report(tmp_path / "elsewhere.md", [0], default=recorded)  # another file: allowed
    assert "Seeds: 0, 1, 2, 3, 4" in recorded.read_text()


@pytest.mark.parametrize(("measured", "word"), [
    ([0.51, 0.49, 0.50, 0.52, 0.50], "reproduced"),
    ([0.62, 0.40, 0.55, 0.38, 0.60], "same direction, not separated"),
    ([0.68, 0.66, 0.70, 0.69, 0.67], "not reproduced"),
])
def test_a_level_is_reproduced_when_its_interval_lies_within_the_tolerance(
        measured: list[float], word: str) -> None:
    line = level_verdict("pinned", paired(measured, [0.5] * 5), tolerance=0.05)
    assert line == f"- pinned: **{word}**."
    assert "too few seeds" in level_verdict("pinned", paired([0.5] * 4, [0.5] * 4), 0.05)
