"""The arithmetic step scorer that stands in for a process reward model."""

import pytest

from rlvr_gym.verifiers.steps import ArithmeticStepScorer


def test_minimum_over_checked_steps():
    scorer = ArithmeticStepScorer()
    assert scorer("2 + 3 = 5\n5 * 4 = 20\n\\boxed{20}") == 1.0
    assert scorer("2 + 3 = 5\n5 * 4 = 21\n\\boxed{21}") == -1.0
    assert scorer("no steps at all") == -1.0


def test_noise_is_deterministic_bounded_and_can_fool_selection():
    noisy = ArithmeticStepScorer(noise=1.0, seed=3)
    text = "2 + 3 = 5\n5 * 4 = 21"
    assert noisy(text) == noisy(text)
    scores = [noisy(f"{a} + 1 = {a + 2}") for a in range(200)]  # every step false
    assert all(-1.0 <= s <= 1.0 for s in scores)
    assert max(scores) > -0.5  # some wrong steps score well: exploitation can be fooled
    with pytest.raises(ValueError):
        ArithmeticStepScorer(noise=-1)
