"""Core types."""

import pytest

from rlvr_gym import Status, Verdict


def test_verifier_failures_are_masked_by_default_and_answers_are_not():
    assert not Verdict(Status.ERROR).usable and not Verdict(Status.TIMEOUT).usable
    assert Verdict(Status.INCORRECT).usable and Verdict(Status.NO_ANSWER).usable
    assert Verdict(Status.TIMEOUT, 0.5, usable=True).usable  # a program's own overrun


def test_verdict_equality_ignores_timing_and_checks_score_range():
    assert Verdict(Status.CORRECT, 1.0, elapsed_s=0.1) == Verdict(Status.CORRECT, 1.0,
                                                                    elapsed_s=2.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Verdict(Status.CORRECT, 1.5)
    assert Verdict("correct", 1.0).status is Status.CORRECT
