"""B-STaR monitors and balance score on hand-made samples (values worked out by hand)."""

import pytest

from rlvr_gym.agents.balance import (
    Sample,
    balance_score,
    distinct_equations,
    equations,
    monitors,
    n_star_for,
    pass_at_k_s,
    reward_at_k_s,
    search_balance,
    select,
    unique_responses,
)

# q1: "a" twice (correct), "b" (correct), "x" and "y" wrong. q2: "c" correct, "z" wrong.
SAMPLES = [
    Sample("q1", "a", True, 1.0), Sample("q1", "a", True, 1.0), Sample("q1", "b", True, 0.5),
    Sample("q1", "x", False, 0.2), Sample("q1", "y", False, -0.5),
    Sample("q2", "c", True, 1.0), Sample("q2", "z", False, 0.8),
]


def test_selection_keeps_rewards_strictly_above_the_threshold():
    assert [s.text for s in select(SAMPLES, 0.5)] == ["a", "a", "c", "z"]


def test_unique_responses_keeps_the_first_of_each_query_and_text():
    kept = unique_responses(SAMPLES + [Sample("q2", "a", True, 1.0)])
    assert [(s.query, s.text) for s in kept] == [("q1", "a"), ("q1", "b"), ("q1", "x"),
                                                ("q1", "y"), ("q2", "c"), ("q2", "z"),
                                                ("q2", "a")]


# Kept responses are deduplicated first: n counts distinct kept texts.
@pytest.mark.parametrize(("threshold", "expected"), [
    # q1 keeps a,a,b,x -> {a,b,x}: min(2/2,1)*2/3;  q2 keeps c,z: min(1/2,1)*1/2 = .25
    (0.0, (2 / 3 + 0.25) / 2),
    # q1 keeps a,a,b -> {a,b}: 1 * 2/2;  q2 keeps c,z: .25
    (0.3, (1.0 + 0.25) / 2),
    # q1 keeps a,a -> {a}: .5 * 1;  q2 keeps c: .5 * 1
    (0.9, (0.5 + 0.5) / 2),
    # nothing kept anywhere
    (1.0, 0.0),
])
def test_balance_score(threshold, expected):
    assert balance_score(SAMPLES, threshold, n_star=2) == pytest.approx(expected)


def test_answer_only_rewards_make_the_purity_factor_one():
    samples = [Sample("q", t, c, float(c)) for t, c in [("a", True), ("a", True), ("b", True),
                                                       ("x", False)]]
    # kept {a, b}, both correct: min(2/4, 1) * 2/2
    assert balance_score(samples, 0.5, n_star=4) == pytest.approx(0.5)


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
    assert choice.score == pytest.approx((1.0 + 0.25) / 2)
    assert choice.score == max(choice.grid.values()) and len(choice.grid) == 6


def test_monitors_bundle():
    m = monitors(SAMPLES, 2)
    assert m["pass_at_k"] == 1.0 and m["pass_at_k_s"] == 0.5
    assert m["best_of_k"] == 1.0 and m["reward_at_k_s"] == 0.5
    assert m["sample_accuracy"] == pytest.approx(4 / 7)
    assert m["distinct_equations"] == 0.0  # no response contains an equation


def test_n_star_and_bad_arguments():
    assert n_star_for(67_500, 11_500) == 6  # the paper's N and M
    with pytest.raises(ValueError):
        balance_score(SAMPLES, 0.0, n_star=0)
    with pytest.raises(ValueError):
        search_balance({}, [0.0], n_star=2)
