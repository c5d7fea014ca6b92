"""IB-TPO tree bookkeeping, IB-Score and advantages on a hand-built tree.

    root ─ A (p=.5,.5) ─ B1 (p=.8)   reward 1
         │             └ B2 (p=.2)   reward 0   (branched from A)
         └ C (p=.4)                  reward 0

Visits/correct: root 3/1, A 2/1, B1 1/1, B2 1/0, C 1/0.
Smoothed success (c + .5)/(n + 1): root .375, A .5, B1 .75, B2 .25, C .25. With beta = 5,
1 + 1/beta = 1.2, so eta1: A .5/.375 - 1.2 = 2/15, C .25/.375 - 1.2 = -8/15,
B1 .75/.5 - 1.2 = .3, B2 .25/.5 - 1.2 = -.7.
"""

import math

import pytest

from rlvr_gym.agents.tree import RolloutTree, Step, split_steps, step_probability


def step(name, *probs):
    return Step(name, tuple(hash((name, i)) % 1000 for i in range(len(probs))),
                tuple(math.log(p) for p in probs))


@pytest.fixture
def tree():
    t = RolloutTree()
    first = t.add(t.root, [step("A", 0.5, 0.5), step("B1", 0.8)], reward=1.0)
    a = first.nodes[0]
    t.add(a, [step("B2", 0.2)], reward=0.0)
    t.add(t.root, [step("C", 0.4)], reward=0.0)
    return t


def nodes_by_name(tree):
    return {n.step.text: n for n in tree.nodes() if n.step is not None}


def test_success_estimates_visits_and_tokens_counted_once(tree):
    n = nodes_by_name(tree)
    assert (tree.root.visits, tree.root.correct) == (3, 1.0)
    assert (n["A"].visits, n["A"].correct) == (2, 1.0)
    assert n["A"].success() == pytest.approx(0.5)
    assert tree.root.success() == pytest.approx(0.375)
    assert n["B2"].success(smoothed=False) == 0.0
    assert tree.generated_tokens == 5  # A's two tokens were generated once
    assert [t.text() for t in tree.trajectories] == ["AB1", "AB2", "C"]


def test_ib_scores_match_hand_computation(tree):
    n = nodes_by_name(tree)
    # root: (1 + 5) / 3 * (2 * 2/15 * .5 + 1 * (-8/15) * .4) = -0.16
    assert tree.ib_score(tree.root, beta=5) == pytest.approx(-0.16)
    # A: (1 + 5) / 2 * (.3 * .8 + (-.7) * .2) = 0.3
    assert tree.ib_score(n["A"], beta=5) == pytest.approx(0.3)
    assert tree.branchable() == [tree.root, n["A"]]


def test_step_probability_is_length_normalised_or_the_plain_product():
    logprobs = [math.log(0.5), math.log(0.8)]
    assert step_probability(logprobs, "mean") == pytest.approx(math.sqrt(0.4))
    assert step_probability(logprobs, "product") == pytest.approx(0.4)
    assert step_probability([], "product") == 1.0
    with pytest.raises(ValueError, match="'mean'"):
        step_probability(logprobs, "sum")
    with pytest.raises(ValueError, match="step_probability"):
        RolloutTree(step_probability="geometric")


def test_product_step_probability_changes_eta2_of_multi_token_steps_only():
    t = RolloutTree(step_probability="product")
    first = t.add(t.root, [step("A", 0.5, 0.5), step("B1", 0.8)], reward=1.0)
    t.add(first.nodes[0], [step("B2", 0.2)], reward=0.0)
    t.add(t.root, [step("C", 0.4)], reward=0.0)
    a = first.nodes[0]
    assert t.eta(a, beta=5)[1] == pytest.approx(0.25)  # 0.5 * 0.5, not exp(mean log) = 0.5
    # root: (1 + 5) / 3 * (2 * 2/15 * .25 + 1 * (-8/15) * .4); A's one-token children as before
    assert t.ib_score(t.root, beta=5) == pytest.approx(2 * (4 / 15 * 0.25 - 8 / 15 * 0.4))
    assert t.ib_score(a, beta=5) == pytest.approx(0.3)


def test_ib_score_favours_rebranching_under_a_failing_prefix():
    # Same shape, but both paths under A fail and C succeeds. Smoothed: root 1.5/4 = .375,
    # A .5/3 = 1/6, B1 = B2 = .5/2 = .25, C .75. eta1: B1 = B2 = .25/(1/6) - 1.2 = .3,
    # A (1/6)/.375 - 1.2 = -68/90, C .75/.375 - 1.2 = .8.
    t = RolloutTree()
    a = t.add(t.root, [step("A", 0.5, 0.5), step("B1", 0.8)], reward=0.0).nodes[0]
    t.add(a, [step("B2", 0.2)], reward=0.0)
    t.add(t.root, [step("C", 0.4)], reward=1.0)
    assert t.ib_score(a, beta=5) == pytest.approx(3 * (0.3 * 0.8 + 0.3 * 0.2))
    assert t.ib_score(t.root, beta=5) == pytest.approx(2 * (2 * (-68 / 90) * 0.5 + 0.8 * 0.4))


def test_step_advantages_match_hand_computation(tree):
    advantages = tree.step_advantages(beta=5, lam=0.1)
    scale = math.sqrt(1 / 3) + 1e-4  # sample std of rewards (1, 0, 0), plus eps
    a_a = (0.5 - 1 / 3) / scale + 0.1 * (2 / 15) * 0.5
    a_b1 = (1.0 - 1 / 3) / scale + 0.1 * 0.3 * 0.8
    a_b2 = (0.0 - 1 / 3) / scale + 0.1 * (-0.7) * 0.2
    a_c = (0.0 - 1 / 3) / scale + 0.1 * (-8 / 15) * 0.4
    assert advantages[0] == pytest.approx([a_a, a_b1])
    assert advantages[1] == pytest.approx([a_a, a_b2])
    assert advantages[2] == pytest.approx([a_c])


def test_reference_confidence_replaces_the_sampling_confidence_in_a_ib(tree):
    n = nodes_by_name(tree)
    n["C"].ref_confidence = 0.9
    scale = math.sqrt(1 / 3) + 1e-4
    expected = (0.0 - 1 / 3) / scale + 0.1 * (-8 / 15) * 0.9
    assert tree.step_advantages(beta=5, lam=0.1)[2] == pytest.approx([expected])


def test_eta_covariance_matches_hand_computation(tree):
    # Weighted means: eta1 -2/15, eta2 .48; weighted cross terms sum to .34 over weight 5.
    assert tree.eta_covariance(beta=5) == pytest.approx(0.068)


def test_identical_sibling_steps_merge_and_count_visits():
    t = RolloutTree()
    s = step("same", 0.5)
    t.add(t.root, [s], reward=1.0)
    t.add(t.root, [s], reward=0.0)
    assert len(t.root.children) == 1 and t.root.children[0].visits == 2
    assert t.generated_tokens == 2 and len(t.trajectories) == 2


def test_entropy_score_is_mean_surprisal_of_children(tree):
    n = nodes_by_name(tree)
    assert tree.entropy_score(n["A"]) == pytest.approx(-(math.log(0.8) + math.log(0.2)) / 2)


def test_split_steps_keeps_delimiters_and_every_token():
    text = "1 + 2 = 3\n3 * 4 = 12\n\\boxed{12}"
    ids = [ord(c) for c in text]

    def decode(i):
        return "".join(map(chr, i))

    steps = split_steps(ids, [-0.1] * len(ids), decode, delimiter="\n")
    assert [s.text for s in steps] == ["1 + 2 = 3\n", "3 * 4 = 12\n", "\\boxed{12}"]
    assert sum(len(s.token_ids) for s in steps) == len(ids)
    two = split_steps(ids, [-0.1] * len(ids), decode, delimiter="\n\n")
    assert [s.text for s in two] == [text]


def test_bad_arguments():
    t = RolloutTree()
    with pytest.raises(ValueError, match="reward"):
        t.add(t.root, [step("x", 0.5)], reward=2.0)
    with pytest.raises(ValueError, match="beta"):
        t.step_advantages(beta=0, lam=0.1)
