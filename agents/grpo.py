"""GRPO and its variants (Dr. GRPO, DAPO, BNPO aggregation, clip-higher, dynamic sampling;
docs/algorithms.md, GRPO): the config, the math every policy-gradient agent here reuses
(`group_advantages`, `policy_loss`), their trainer `PolicyGradient`, and the agent `GRPO`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch

from rlvr_gym.agents.core import Mean, Trainer, TrainerConfig, check_choice, check_minimum
from rlvr_gym.agents.monitors import eff_rate
from rlvr_gym.agents.policy import Policy, TokenBatch
from rlvr_gym.agents.rollout import Group, Rollout, collect, draw, evaluate, sample_groups
from rlvr_gym.distributed import data_parallel

AdvantageMode = Literal["group", "mean", "none"]
LossType = Literal["grpo", "dr_grpo", "dapo", "bnpo"]


@dataclass
class GRPOConfig(TrainerConfig):
    """Hyper-parameters of GRPO's objective; the comments give published values for 1B+ models."""

    prompts_per_step: int = 32
    """Problems per training step (DAPO: 512; on a CPU with the tiny model: 32)."""
    group_size: int = 8
    """Completions sampled per problem, G (DeepSeekMath: 64; DAPO: 16; common: 8)."""
    advantage: AdvantageMode = "group"
    """'group': GRPO's (r - mean) / (std + std_eps); 'mean': Dr. GRPO's r - mean; 'none': r."""
    std_eps: float = 1e-4
    """Added to the group std in 'group' advantages (TRL: 1e-4)."""
    loss_type: LossType = "grpo"
    """Aggregation of the token losses: 'grpo', 'dr_grpo', 'dapo' or 'bnpo' (`policy_loss`)."""
    epsilon_low: float = 0.2
    """Lower clip range of the ratio, 1 - eps (PPO/GRPO: 0.2)."""
    epsilon_high: float = 0.2
    """Upper clip range, 1 + eps; DAPO's clip-higher uses 0.28."""
    beta: float = 0.0
    """Weight of the k3 KL to the frozen initial policy (DeepSeekMath: 0.04; TRL, DAPO,
    Dr. GRPO: 0). Above 0 a copy of the model is kept as the reference (with LoRA: the base
    model, the adapters off)."""
    dynamic_sampling: bool = False
    """DAPO dynamic sampling: replace the groups whose rewards are all equal by new ones."""
    max_sampling_rounds: int = 3
    """Sampling rounds per step with dynamic sampling; the step trains on what it has then."""
    decay_steps: int = 0
    """After warm-up the learning rate falls linearly to 0 at this step (0: constant); set it
    to the run's length, as `rlvr-gym train` does unless told otherwise."""
    num_iterations: int = 1
    """Optimisation passes over each sampled batch (mu in GRPO; 1 = on-policy, ratio = 1)."""
    num_minibatches: int = 1
    """Optimiser steps per pass over the batch, split into this many mini-batches, the later
    ones off-policy and clipped (TRL/DeepSeekMath: 1; tiny model: 1, better than 2)."""
    eval_k: tuple[int, ...] = (1, 8)
    """k values of the unbiased pass@k estimate of held-out evaluations."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self, "advantage", get_args(AdvantageMode))
        check_choice(self, "loss_type", get_args(LossType))
        check_minimum(self, ("prompts_per_step", "group_size", "num_iterations",
                             "num_minibatches", "max_sampling_rounds"))
        if self.group_size < 2 and self.advantage != "none":
            raise ValueError("group advantages need group_size >= 2; use advantage='none' "
                             "for single samples")
        check_minimum(self, ("decay_steps",), 0, " (0 turns it off)")
        if 0 < self.decay_steps <= self.warmup_steps:
            raise ValueError(f"decay_steps ({self.decay_steps}) must be above warmup_steps "
                             f"({self.warmup_steps}); set it to the run's total steps")
        if self.fsdp and self.dynamic_sampling:
            raise ValueError("fsdp=True needs the same sampling on every rank; dynamic_sampling "
                             "refills a different number of groups on each: set "
                             "dynamic_sampling=False or fsdp=False")
        if self.fsdp and self.beta != 0.0:
            raise ValueError(f"fsdp=True does not shard a reference model; set beta=0 (got "
                             f"{self.beta}) or fsdp=False")
        self.eval_k = tuple(self.eval_k)


def group_advantages(rewards: torch.Tensor, usable: torch.Tensor, mode: AdvantageMode = "group",
                     std_eps: float = 1e-4) -> torch.Tensor:
    """Per-sample advantages from rewards of shape [groups, G]: 'group' (r - mean) / (std +
    eps) with the sample std, 'mean' r - mean, 'none' r. Statistics use only `usable` samples
    (verdict not error/timeout); unusable samples get advantage 0."""
    usable = usable.to(rewards.dtype)
    if mode == "none":
        return rewards * usable
    count = usable.sum(1, keepdim=True)
    mean = (rewards * usable).sum(1, keepdim=True) / count.clamp(min=1)
    centred = (rewards - mean) * usable
    if mode == "mean":
        return centred
    var = (centred**2).sum(1, keepdim=True) / (count - 1).clamp(min=1)
    return centred / (var.sqrt() + std_eps)


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, *, loss_type: LossType = "grpo", epsilon_low: float = 0.2,
                epsilon_high: float = 0.2, beta: float = 0.0,
                ref_logprobs: torch.Tensor | None = None, max_tokens: int | None = None,
                total_sequences: float | None = None, total_tokens: float | None = None,
                num_micro_batches: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped-ratio policy-gradient loss (to minimise) of GRPO and everything built on it.

    `logprobs`, `old_logprobs`, `mask` (and `ref_logprobs`) are [B, T], `advantages` [B] or
    [B, T] (per token); `mask` is 1 on the generated tokens that count. Per token:
    l = -min(rho A, clip(rho, 1-eps_low, 1+eps_high) A) + beta k3, with
    k3 = exp(ref - logp) - (ref - logp) - 1 (Schulman's estimator; DeepSeekMath eq. 4).

    Aggregation (docs/algorithms.md, GRPO), with the totals of the whole (mini-)batch when
    gradients are accumulated over micro-batches, so that their losses add up to the batch's:
      grpo     sum_i (sum_t m l / sum_t m) / total_sequences
      dr_grpo  sum_it m l / (total_sequences * max_tokens)
      dapo     sum_it m l / total_tokens
      bnpo     sum_it m l / (tokens of this micro-batch) / num_micro_batches
    `total_sequences` defaults to the rows of this call with any masked-in token,
    `total_tokens` to this call's masked-in tokens.

    Returns the loss and detached statistics over the masked-in tokens: clip fractions
    (ratio below 1-eps_low with A < 0, above 1+eps_high with A > 0), mean ratio and mean k3.
    """
    mask = mask.to(logprobs.dtype)
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    ratio = torch.exp(logprobs - old_logprobs)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    per_token = -torch.minimum(ratio * advantages, clipped * advantages)
    kl = None
    if beta != 0.0:
        if ref_logprobs is None:
            raise ValueError("beta > 0 needs ref_logprobs (log-probs under the reference model)")
        delta = ref_logprobs - logprobs
        kl = torch.exp(delta) - delta - 1
        per_token = per_token + beta * kl

    seq_tokens = mask.sum(1)
    tokens = seq_tokens.sum()
    if total_sequences is None:
        total_sequences = float((seq_tokens > 0).sum())
    if total_tokens is None:
        total_tokens = float(tokens)
    total = (per_token * mask).sum()
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(1) / seq_tokens.clamp(min=1)).sum() / max(
            total_sequences, 1)
    elif loss_type == "dr_grpo":
        if max_tokens is None:
            raise ValueError("loss_type='dr_grpo' needs max_tokens (the fixed generation "
                             "budget, e.g. max_new_tokens)")
        loss = total / (max(total_sequences, 1) * max_tokens)
    elif loss_type == "dapo":
        loss = total / max(total_tokens, 1)
    elif loss_type == "bnpo":
        loss = total / tokens.clamp(min=1) / num_micro_batches
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}; use grpo, dr_grpo, dapo or bnpo")

    with torch.no_grad():
        n = tokens.clamp(min=1)
        adv = advantages.expand_as(ratio)
        stats = {
            "clip_frac_low": float((((ratio < 1 - epsilon_low) & (adv < 0)) * mask).sum() / n),
            "clip_frac_high": float((((ratio > 1 + epsilon_high) & (adv > 0)) * mask).sum() / n),
            "ratio": float((ratio * mask).sum() / n),
        }
        if kl is not None:
            stats["kl"] = float((kl * mask).sum() / n)
    return loss, stats


ExtraLoss = Callable[[TokenBatch, torch.Tensor, float],
                     "tuple[torch.Tensor, dict[str, float]] | None"]
"""A term added to the policy loss of every micro-batch (SEELE's hint imitation): (micro-batch,
its token log-probs with gradient, rows of its mini-batch) -> (loss, statistics) or None."""


class PolicyGradient(Trainer):
    """The trainer of GRPO's objective, which GRPO, SEELE, MRT and IB-TPO share: one iteration
    collects a `Rollout` and runs `update` on it. Not an algorithm: a subclass implements
    `collect` and may set `Rollout.advantages`, `Rollout.stats` and an `extra_loss`."""

    config_class = GRPOConfig
    config: GRPOConfig
    data_parallel = True
    extra_loss: ExtraLoss | None = None
    """Added to the policy loss of every micro-batch when set; without one, rows whose
    advantages are all zero are not forwarded."""

    def collect(self) -> Rollout:
        """Sample the step's groups through the env (`prompts_per_rank` problems)."""
        raise NotImplementedError(f"{type(self).__name__} must implement collect")

    @property
    def prompts_per_rank(self) -> int:
        """This rank's share of `prompts_per_step` (all of it in one process)."""
        return self.world.share(self.config.prompts_per_step, "prompts_per_step")

    def train_step(self) -> dict[str, Any]:
        start = time.perf_counter()
        rollout = self.collect()
        metrics = rollout_metrics(rollout)
        if self._any_rank(bool(rollout.groups)):  # a rank without groups still takes part
            metrics.update(self.update(rollout))
        else:
            metrics["skipped_update"] = 1  # every group had equal rewards; nothing to learn
        self.num_steps += 1
        metrics["step_seconds"] = time.perf_counter() - start
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    def _needs_reference(self) -> bool:
        return self.config.beta != 0.0

    def _held_out(self, env: Any, samples: int, progress_bar: bool) -> dict[str, float]:
        c = self.config
        return evaluate(self.policy, env, c.eval_problems, samples, c.eval_k,
                        c.temperature or 1.0, c.max_new_tokens, c.stop, progress_bar)

    def update(self, rollout: Rollout) -> dict[str, float]:
        """Advantages (the rollout's own, or group advantages) and `num_iterations` passes of
        clipped policy-gradient updates; returns the update's statistics. With several ranks
        every rank calls it, with its own groups (possibly none): the losses are normalised by
        the totals of all ranks and the gradients summed over them before each optimiser step,
        which is then the step one process takes on all the groups. With `fsdp=True` the
        gradients are reduce-scattered (summed) in every backward pass, and each rank pads its
        passes to the largest count of any rank with `_idle_pass`."""
        c = self.config
        sharded = c.fsdp
        start = time.perf_counter()
        gens = [gen for g in rollout.groups for gen in g.generations]
        rows: list[int] = []
        if gens:
            usable = torch.tensor([g.usable for g in rollout.groups])
            advantages = rollout.advantages
            if advantages is None:
                rewards = torch.tensor([g.rewards for g in rollout.groups])
                advantages = group_advantages(rewards, usable, c.advantage, c.std_eps).flatten()
            batch = self.policy.batch(gens)
            mask = batch.completion_mask * usable.flatten()[:, None].float()
            rows = [i for i in range(len(gens)) if mask[i].sum() > 0]
            nonzero = (advantages.reshape(len(gens), -1) != 0).any(1)
        # Rows whose advantages are all zero add nothing to the loss or its gradient unless a
        # KL term, an extra loss or bnpo's per-micro-batch normalisation involves them; they
        # still count in the aggregation totals, so skipping them changes no gradient.
        skip_zero = c.beta == 0.0 and c.loss_type != "bnpo" and self.extra_loss is None
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.num_steps)
        temperature = c.temperature or 1.0
        stats = Mean()

        # On-policy (one pass, one mini-batch) the detached current log-probs serve as "old".
        off_policy = c.num_iterations > 1 or c.num_minibatches > 1
        old_logprobs = self._logprobs_no_grad(self.policy.model, batch if gens else None) \
            if off_policy else None
        ref_logprobs = None
        if c.beta != 0.0 and gens:
            with self.reference_model() as reference:
                ref_logprobs = self._logprobs_no_grad(reference, batch)
        processed_tokens = trained = 0
        for iteration in range(c.num_iterations):
            for minibatch in np.array_split(np.array(rows, dtype=int), c.num_minibatches):
                active = minibatch[nonzero[torch.as_tensor(minibatch)].numpy()] \
                    if skip_zero and len(minibatch) else minibatch
                micro_batches = [active[i:i + c.micro_batch_size]
                                 for i in range(0, len(active), c.micro_batch_size)]
                totals = [float(len(minibatch)),
                          float(mask[minibatch].sum()) if len(minibatch) else 0.0,
                          float(len(micro_batches))]
                if self.world.distributed:
                    totals = data_parallel.all_sum(totals)
                sequences, total_tokens, num_micro_batches = totals
                if sequences == 0:
                    continue
                passes = int(data_parallel.all_max([len(micro_batches)])[0]) if sharded \
                    else len(micro_batches)
                trained += len(active)
                self.optimizer.zero_grad(set_to_none=True)
                minibatch_loss = 0.0
                for micro in micro_batches:
                    index = torch.as_tensor(micro)
                    sub = batch.rows(index)
                    cols = sub.completion_mask.shape[1]
                    logprobs, entropy = self.policy.token_logprobs(
                        sub, temperature, with_entropy=iteration == 0)
                    dev = logprobs.device
                    old = (old_logprobs[index, :cols].to(dev) if old_logprobs is not None
                           else logprobs.detach())
                    ref = ref_logprobs[index, :cols].to(dev) if ref_logprobs is not None else None
                    m = mask[index, :cols].to(dev)
                    adv = advantages[index] if advantages.dim() == 1 else \
                        advantages[index, :cols]
                    loss, loss_stats = policy_loss(
                        logprobs, old, adv.to(dev), m, loss_type=c.loss_type,
                        epsilon_low=c.epsilon_low, epsilon_high=c.epsilon_high, beta=c.beta,
                        ref_logprobs=ref, max_tokens=c.max_new_tokens,
                        total_sequences=sequences, total_tokens=total_tokens,
                        num_micro_batches=int(num_micro_batches))
                    extra = self.extra_loss(sub, logprobs, sequences) \
                        if self.extra_loss is not None else None
                    if extra is not None:
                        loss = loss + extra[0]
                        stats.add(extra[1], 1.0)
                    loss.backward()
                    weight = float(m.sum())
                    stats.add(loss_stats, weight)
                    minibatch_loss += loss.item()
                    if entropy is not None:
                        stats.add({"entropy": float((entropy * m).sum() / m.sum().clamp(min=1))},
                                  weight)
                    processed_tokens += int(sub.attention_mask.sum())
                for _ in range(passes - len(micro_batches)):
                    self._idle_pass(grad=True)
                if self.world.distributed and not sharded:
                    data_parallel.all_reduce_gradients(self.policy.model.parameters())
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    self.policy.model.parameters(),
                    c.max_grad_norm if c.max_grad_norm > 0 else float("inf"))
                if sharded:
                    from rlvr_gym.distributed import fsdp

                    grad_norm = fsdp.full_tensor(grad_norm)
                stats.add({"grad_norm": float(grad_norm), "loss": minibatch_loss}, 1.0)
                self.optimizer.step()
        self.policy.backend.sync_weights()
        seconds = time.perf_counter() - start
        return {**stats.means(), "update_seconds": seconds,
                "update_tokens_per_s": processed_tokens / max(seconds, 1e-9),
                "trained_sequences": trained / c.num_iterations}

    def learning_rate(self, step: int) -> float:
        """The learning rate of training step `step` (0-based; a resumed run follows the same
        schedule): linear warm-up, then constant or a linear decay to 0 at `decay_steps`."""
        c = self.config
        rate = c.lr
        if c.warmup_steps > 0:
            rate *= min(1.0, (step + 1) / c.warmup_steps)
        if c.decay_steps > 0 and step >= c.warmup_steps:
            rate *= max(0.0, 1 - (step - c.warmup_steps) / max(c.decay_steps - c.warmup_steps, 1))
        return rate

    @torch.no_grad()
    def _logprobs_no_grad(self, model: Any, batch: TokenBatch | None) -> torch.Tensor | None:
        """Token log-probs of the whole batch under `model` (old policy or reference), [B, L-1]
        (None for no batch). With `fsdp=True` every rank calls it, and runs as many passes as
        the rank with the most."""
        size = self.config.micro_batch_size
        starts = range(0, len(batch), size) if batch is not None else range(0)
        if self.config.fsdp:
            for _ in range(int(data_parallel.all_max([len(starts)])[0]) - len(starts)):
                self._idle_pass(grad=False)
        if batch is None:
            return None
        policy = Policy(model, self.policy.tokenizer, self.policy.backend,
                        self.policy.compute_dtype)
        out = torch.zeros(batch.completion_mask.shape)
        for i in starts:
            index = torch.arange(i, min(i + size, len(batch)))
            logp, _ = policy.token_logprobs(batch.rows(index), self.config.temperature or 1.0)
            out[index, :logp.shape[1]] = logp.float().cpu()
        return out

    def _idle_pass(self, grad: bool) -> None:
        """One forward pass of the sharded policy on a short fixed sequence, and with `grad` a
        backward pass of its loss times 0: the collectives of a pass this rank has no rows
        for, adding nothing to any gradient (fsdp=True)."""
        policy = self.policy
        batch = policy.batch(policy.samples(["1 + 1 ="], ["2"]))
        with torch.set_grad_enabled(grad):
            logprobs, _ = policy.token_logprobs(batch, self.config.temperature or 1.0)
            if grad:
                (logprobs.sum() * 0.0).backward()


def rollout_metrics(rollout: Rollout) -> dict[str, Any]:
    """What every policy-gradient step logs about its samples, then the rollout's own `stats`."""
    sampled = rollout.sampled_groups
    rewards = [r for g in sampled for r, u in zip(g.rewards, g.usable, strict=True) if u]
    lengths = [len(gen.completion_ids) for g in sampled for gen in g.generations]
    return {
        "reward": float(np.mean(rewards)) if rewards else 0.0,
        "accuracy": float(np.mean([c for g in sampled for c in g.correct])),
        "eff_rate": eff_rate([r for r, u in zip(g.rewards, g.usable, strict=True) if u]
                             for g in sampled),
        "response_length": float(np.mean(lengths)),
        "truncated_frac": float(np.mean([gen.finish_reason == "length" for g in sampled
                                         for gen in g.generations])),
        "masked_samples": sum(not u for g in sampled for u in g.usable),
        "groups_trained": len(rollout.groups),
        "gen_tokens_per_s": rollout.generated_tokens / max(rollout.seconds, 1e-9),
        **rollout.stats,
    }


class GRPO(PolicyGradient):
    """Group Relative Policy Optimisation: `GRPO(policy, env, config, eval_env).learn(steps)`
    (arguments: `Trainer`). Each step samples `group_size` completions of `prompts_per_step`
    problems (refilling dropped groups with `dynamic_sampling`) and updates on them."""

    shards = True

    def collect(self) -> Rollout:
        c = self.config
        return collect(self.sample_groups, self.prompts_per_rank, c.dynamic_sampling,
                       c.max_sampling_rounds)

    def sample_groups(self, num_problems: int) -> tuple[list[Group], int]:
        """`group_size` independent samples of `num_problems` problems drawn by the env."""
        self._seed_env()
        return sample_groups(self.policy, self.env, draw(self.env, num_problems),
                             self.config.group_size, self.config.sampling())

