"""B-STaR monitors and balance score on hand-made samples (values worked out by hand)."""

import pytest

from rlvr_gym.agents.balance import (
    Sample,
    balance_score,
    distinct_equations,
    equations,
    n_star_for,
    pass_at_k_s,
    reward_at_k_s,
    search_balance,
    select,
)

# q1: "a" twice (correct), "b" (correct), "x" and "y" wrong. q2: "c" correct, "z" wrong.
SAMPLES = [
    Sample("q1", "a", True, 1.0), Sample("q1", "a", True, 1.0), Sample("q1", "b", True, 0.5),
    Sample("q1", "x", False, 0.2), Sample("q1", "y", False, -0.5),
    Sample("q2", "c", True, 1.0), Sample("q2", "z", False, 0.8),
]


def test_selection_keeps_rewards_strictly_above_the_threshold():
    assert [s.text for s in select(SAMPLES, 0.5)] == ["a", "a", "c", "z"]


@pytest.mark.parametrize(("threshold", "expected"), [
    # q1 keeps a,a,b,x: min(2/2,1)*2/4 = .5;  q2 keeps c,z: min(1/2,1)*1/2 = .25
    (0.0, (0.5 + 0.25) / 2),
    # q1 keeps a,a,b: 1 * 2/3;  q2 keeps c,z: .25
    (0.3, (2 / 3 + 0.25) / 2),
    # q1 keeps a,a: .5 * 1/2 = .25;  q2 keeps c: .5 * 1 = .5
    (0.9, (0.25 + 0.5) / 2),
    # nothing kept anywhere
    (1.0, 0.0),
])
def test_balance_score(threshold, expected):
    assert balance_score(SAMPLES, threshold, n_star=2) == pytest.approx(expected)


def test_pass_and_reward_at_k_s():
    assert pass_at_k_s(SAMPLES, 1) == 1.0
    assert pass_at_k_s(SAMPLES, 2) == 0.5  # only q1 has two distinct correct answers
    assert pass_at_k_s(SAMPLES, 3) == 0.0
    assert reward_at_k_s(SAMPLES, 1) == 1.0  # best-of-K
    assert reward_at_k_s(SAMPLES, 2) == 0.5  # q2's second best is wrong
    assert reward_at_k_s(SAMPLES, 4) == 0.0


def test_distinct_equations():
    samples = [
        Sample("q1", "1+2=3\n3*2=6\n\\boxed{6}", True, 1),
        Sample("q1", "1 + 2 = 3\n3+3=6", True, 1),
        Sample("q1", "9=9\n8=8", False, 0),  # wrong responses do not count
        Sample("q2", "so $x=2$ and <<2*3=6>>", True, 1),
    ]
    assert equations(samples[3].text) == ["x=2", "2*3=6"]
    # q1: {1+2=3, 3*2=6, 3+3=6} of 4 equations; q2: 2 of 2.
    assert distinct_equations(samples) == pytest.approx((3 / 4 + 1.0) / 2)


def test_search_picks_the_maximising_pair():
    diverse = SAMPLES
    collapsed = [Sample("q1", "a", True, 1.0)] * 4 + [Sample("q2", "z", False, 0.8)] * 2
    choice = search_balance({0.5: collapsed, 1.0: diverse}, thresholds=[0.0, 0.3, 0.9],
                            n_star=2)
    assert (choice.temperature, choice.threshold) == (1.0, 0.3)
    assert choice.score == pytest.approx((2 / 3 + 0.25) / 2)
    assert choice.score == max(choice.grid.values()) and len(choice.grid) == 6


def test_n_star_and_bad_arguments():
    assert n_star_for(67_500, 11_500) == 6  # the paper's N and M
    with pytest.raises(ValueError):
        balance_score(SAMPLES, 0.0, n_star=0)
    with pytest.raises(ValueError):
        search_balance({}, [0.0], n_star=2)
