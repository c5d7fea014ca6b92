"""The shared policy loss and advantages against hand-computed values."""

import math

import pytest
import torch

from rlvr_gym.agents.grpo import group_advantages, policy_loss

# Two sequences, three token slots; the second sequence has one generated token.
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
ADV = torch.tensor([1.0, -3.0])
ZERO = torch.zeros(2, 3)


@pytest.mark.parametrize("loss_type, expected", [
    # ratio 1, so each token loss is -A: seq 1 tokens -1,-1; seq 2 token +3.
    ("grpo", (-1.0 + 3.0) / 2),          # mean per sequence, then over sequences
    ("dr_grpo", (-2.0 + 3.0) / (2 * 4)),  # sum / (sequences * max_tokens=4)
    ("dapo", (-2.0 + 3.0) / 3),           # token mean over the batch
    ("bnpo", (-2.0 + 3.0) / 3),           # token mean of this (only) micro-batch
])
def test_aggregation_modes_match_hand_values(loss_type, expected):
    loss, _ = policy_loss(ZERO, ZERO, ADV, MASK, loss_type=loss_type, max_tokens=4)
    assert loss.item() == pytest.approx(expected)


def test_clipping_uses_separate_low_and_high_epsilon():
    # Token 1: ratio 1.5, A = +1, eps_high 0.28 -> clipped at 1.28 -> loss -1.28.
    # Token 2: ratio 0.5, A = -1, eps_low 0.2 -> min(-0.5, -0.8) = -0.8 -> loss +0.8.
    logp = torch.log(torch.tensor([[1.5], [0.5]]))
    loss, stats = policy_loss(logp, torch.zeros(2, 1), torch.tensor([1.0, -1.0]),
                              torch.ones(2, 1), loss_type="dapo", epsilon_low=0.2,
                              epsilon_high=0.28)
    assert loss.item() == pytest.approx((-1.28 + 0.8) / 2)
    assert stats["clip_frac_high"] == pytest.approx(0.5)
    assert stats["clip_frac_low"] == pytest.approx(0.5)


def test_unclipped_side_keeps_the_full_ratio():
    # ratio 1.5 with A = -1: min(-1.5, -1.2) = -1.5, the pessimistic unclipped term.
    logp = torch.log(torch.tensor([[1.5]]))
    loss, stats = policy_loss(logp, torch.zeros(1, 1), torch.tensor([-1.0]), torch.ones(1, 1))
    assert loss.item() == pytest.approx(1.5)
    assert stats["clip_frac_high"] == 0.0 and stats["clip_frac_low"] == 0.0


def test_k3_kl_term():
    # ref - logp = log 2 -> k3 = 2 - log 2 - 1; with A = 0 the loss is beta * k3.
    ref = torch.full((1, 1), math.log(2.0))
    loss, stats = policy_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1),
                              torch.ones(1, 1), beta=0.5, ref_logprobs=ref)
    assert stats["kl"] == pytest.approx(1 - math.log(2.0))
    assert loss.item() == pytest.approx(0.5 * (1 - math.log(2.0)))


def test_beta_without_reference_says_what_to_pass():
    with pytest.raises(ValueError, match="ref_logprobs"):
        policy_loss(ZERO, ZERO, ADV, MASK, beta=0.1)


def test_per_token_advantages_equal_broadcast_sequence_advantages():
    logp = torch.randn(2, 3)
    a, _ = policy_loss(logp, ZERO, ADV, MASK)
    b, _ = policy_loss(logp, ZERO, ADV[:, None].expand(2, 3), MASK)
    assert a.item() == pytest.approx(b.item())


def test_masked_tokens_get_no_gradient():
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, _ = policy_loss(logp, ZERO, ADV, MASK, loss_type="dapo")
    loss.backward()
    assert torch.all(logp.grad[MASK == 0] == 0)
    assert torch.all(logp.grad[MASK == 1] != 0)


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_micro_batch_losses_add_up_to_the_full_batch_loss(loss_type):
    logp, old = torch.randn(4, 5) * 0.1, torch.randn(4, 5) * 0.1
    adv, mask = torch.randn(4), (torch.rand(4, 5) > 0.3).float()
    mask[:, 0] = 1
    full, _ = policy_loss(logp, old, adv, mask, loss_type=loss_type, max_tokens=5)
    parts = [policy_loss(logp[i:i + 2], old[i:i + 2], adv[i:i + 2], mask[i:i + 2],
                         loss_type=loss_type, max_tokens=5, total_sequences=4.0,
                         total_tokens=float(mask.sum()), num_micro_batches=2)[0]
             for i in (0, 2)]
    assert sum(p.item() for p in parts) == pytest.approx(full.item(), rel=1e-5)


def test_bnpo_averages_the_token_means_of_micro_batches():
    logp = torch.zeros(2, 2)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([1.0, 3.0])
    parts = [policy_loss(logp[i:i + 1], logp[i:i + 1], adv[i:i + 1], mask[i:i + 1],
                         loss_type="bnpo", num_micro_batches=2)[0].item() for i in (0, 1)]
    assert sum(parts) == pytest.approx((-1.0 + -3.0) / 2)


def test_dr_grpo_needs_the_constant():
    with pytest.raises(ValueError, match="max_tokens"):
        policy_loss(ZERO, ZERO, ADV, MASK, loss_type="dr_grpo")


def test_group_advantages_by_mode():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    usable = torch.ones(1, 4, dtype=torch.bool)
    # mean 0.5; sample std sqrt(4 * 0.25 / 3) = 0.57735
    z = group_advantages(rewards, usable, "group", std_eps=0.0)
    assert z[0].tolist() == pytest.approx([0.8660254, -0.8660254, -0.8660254, 0.8660254])
    assert group_advantages(rewards, usable, "mean")[0].tolist() == [0.5, -0.5, -0.5, 0.5]
    assert group_advantages(rewards, usable, "none")[0].tolist() == [1.0, 0.0, 0.0, 1.0]


def test_unusable_samples_are_excluded_from_group_statistics():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    usable = torch.tensor([[True, True, False, False]])
    adv = group_advantages(rewards, usable, "mean")
    assert adv[0].tolist() == [0.5, -0.5, 0.0, 0.0]


def test_equal_rewards_give_zero_advantage():
    adv = group_advantages(torch.ones(2, 3), torch.ones(2, 3, dtype=torch.bool), "group")
    assert torch.all(adv == 0)
