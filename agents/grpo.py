"""GRPO and its variants (Dr. GRPO, DAPO, BNPO aggregation, clip-higher, dynamic sampling).

Read top to bottom: the config, the two pieces of math every policy-gradient agent here
reuses (`group_advantages`, `policy_loss`), then the agent with the stable-baselines3 shape
`GRPO(policy, env, config).learn(total_steps)`.

Objective (DeepSeekMath, arXiv 2402.03300, eq. 3; docs/algorithms.md, GRPO), maximised:

    J = E[ agg_{i,t} min(rho_it A_it, clip(rho_it, 1-eps_low, 1+eps_high) A_it) - beta KL_it ]

with rho the token ratio pi_theta / pi_old, A the advantage, KL the k3 estimator to a frozen
reference, and `agg` the loss aggregation (`loss_type`; docs/algorithms.md, GRPO).
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rlvr_gym.agents.checkpoint import Checkpoint, CheckpointContent, save_checkpoint
from rlvr_gym.agents.monitors import (
    RunBookkeeping,
    eff_rate,
    evaluate,
    split_prefix,
)
from rlvr_gym.agents.policy import (
    Generation,
    Policy,
    SamplingConfig,
    TokenBatch,
    as_policy,
)

AdvantageMode = Literal["group", "mean", "none"]
LossType = Literal["grpo", "dr_grpo", "dapo", "bnpo"]


@dataclass
class GRPOConfig:
    """Hyper-parameters of GRPO. Defaults suit the bundled tiny model on a CPU; the comments
    give the published values for billion-parameter models."""

    prompts_per_step: int = 32
    """Problems per training step (DAPO: 512; on a CPU with the tiny model: 32)."""
    group_size: int = 8
    """Completions sampled per problem, G (DeepSeekMath: 64; DAPO: 16; common: 8)."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts (1.0 keeps the ratio on the model's own
    distribution; papers use 0.6-1.0)."""
    top_p: float = 1.0
    """Nucleus sampling mass of the rollouts (1.0 recommended for RL)."""
    max_new_tokens: int = 40
    """Most generated tokens per completion; also the constant L of `dr_grpo` aggregation."""
    stop: tuple[str, ...] = ()
    """Extra stop strings (the end-of-sequence token always stops)."""
    advantage: AdvantageMode = "group"
    """'group': (r - mean) / (std + std_eps) within the group (GRPO); 'mean': r - mean
    (Dr. GRPO, arXiv 2503.20783, removes the difficulty bias; SEELE uses it); 'none': raw r."""
    std_eps: float = 1e-4
    """Added to the group std in 'group' advantages (TRL: 1e-4)."""
    loss_type: LossType = "grpo"
    """Aggregation of the token losses: 'grpo' mean per sequence then over sequences;
    'dr_grpo' sum / (sequences x max_new_tokens); 'dapo' mean over all tokens of the batch;
    'bnpo' token mean per micro-batch (docs/algorithms.md, GRPO, Aggregation)."""
    epsilon_low: float = 0.2
    """Lower clip range of the ratio, 1 - eps (PPO/GRPO: 0.2)."""
    epsilon_high: float = 0.2
    """Upper clip range, 1 + eps; DAPO's clip-higher uses 0.28."""
    beta: float = 0.0
    """Weight of the k3 KL to the frozen initial policy (DeepSeekMath: 0.04; TRL, DAPO,
    Dr. GRPO: 0). Above 0 a copy of the model is kept as the reference."""
    dynamic_sampling: bool = False
    """DAPO dynamic sampling: drop groups whose rewards are all equal and sample more
    problems to refill the batch (up to `max_sampling_rounds`)."""
    max_sampling_rounds: int = 3
    """Sampling rounds per step with dynamic sampling; the step trains on what it has then."""
    lr: float = 2e-4
    """AdamW learning rate. Tiny model: 2e-4 (5e-4 collapsed it to one repeated answer);
    1B+ models: 1e-6."""
    warmup_steps: int = 20
    """Training steps of linear learning-rate warm-up from lr / warmup_steps to lr (0: none).
    Adam's first updates are full-size whatever the gradient's noise."""
    decay_steps: int = 0
    """After warm-up the learning rate falls linearly to 0 at this step (0: constant), so
    the run ends on small updates instead of wherever the last noisy step left it. Set it to
    the run's length; `rlvr-gym train` does so unless told otherwise."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_betas: tuple[float, float] = (0.9, 0.99)
    """AdamW betas."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables)."""
    num_iterations: int = 1
    """Optimisation passes over each sampled batch (mu in GRPO; 1 = on-policy, ratio = 1)."""
    num_minibatches: int = 1
    """Optimiser steps per pass: the batch is split into this many mini-batches; the later
    ones are off-policy and clipped (TRL/DeepSeekMath: 1; tiny model: 1, which gained more
    held-out accuracy than 2 in benchmarks/results/grpo*.md)."""
    micro_batch_size: int = 64
    """Sequences per forward/backward; gradients accumulate over a mini-batch's micro-batches.
    Lower it for large models or vocabularies (the logits of a micro-batch live in memory)."""
    eval_every: int = 0
    """Held-out evaluation every this many steps (0: only at the start and end of `learn`)."""
    greedy_eval_every: int = 0
    """Greedy held-out accuracy alone (no pass@k sampling: about a tenth of the cost) every
    this many steps, for the curves between full evaluations (0: none; `rlvr-gym train` asks
    for about ten points per run)."""
    eval_problems: int = 200
    """Held-out problems per evaluation."""
    eval_samples: int = 8
    """Sampled completions per held-out problem for pass@k (0: greedy accuracy only)."""
    eval_k: tuple[int, ...] = (1, 8)
    """k values of the unbiased pass@k estimate."""
    seed: int = 0
    """Seeds torch, numpy, random and the env's problem draws."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ..."""
    dtype: str = "auto"
    """Compute dtype: 'auto' (bf16 autocast on a GPU that supports it, else fp32), 'float32'
    or 'bfloat16'. Weights and optimiser state stay fp32."""
    backend: str = "transformers"
    """Generation backend: 'transformers', 'vllm' (colocated, `pip install "rlvr-gym[vllm]"`)
    or 'auto' (vLLM on a CUDA GPU where it is installed, else transformers)."""
    output_dir: str | None = None
    """The run directory: metrics.jsonl / metrics.csv / curves.png and the saved agent
    (`agent/`) go there (None: nowhere). A new agent refuses one that holds another run."""
    save_every: int = 25
    """Save the agent to `output_dir`/agent every this many steps (0: never in between); it is
    also saved at the end of `learn` and when Ctrl-C stops it. Needs `output_dir`."""

    def __post_init__(self) -> None:
        if self.advantage not in ("group", "mean", "none"):
            raise ValueError(f"advantage must be 'group', 'mean' or 'none', got "
                             f"{self.advantage!r}")
        if self.loss_type not in ("grpo", "dr_grpo", "dapo", "bnpo"):
            raise ValueError(f"loss_type must be 'grpo', 'dr_grpo', 'dapo' or 'bnpo', got "
                             f"{self.loss_type!r}")
        for name in ("prompts_per_step", "group_size", "num_iterations", "num_minibatches",
                     "micro_batch_size", "max_sampling_rounds", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("eval_every", "greedy_eval_every", "save_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 turns it off), got "
                                 f"{getattr(self, name)}")
        if self.group_size < 2 and self.advantage != "none":
            raise ValueError("group advantages need group_size >= 2; use advantage='none' "
                             "for single samples")
        if self.warmup_steps < 0 or self.decay_steps < 0:
            raise ValueError("warmup_steps and decay_steps must be >= 0 (0 turns them off)")
        if 0 < self.decay_steps <= self.warmup_steps:
            raise ValueError(f"decay_steps ({self.decay_steps}) must be above warmup_steps "
                             f"({self.warmup_steps}); set it to the run's total steps")
        self.stop = tuple(self.stop)
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]
        self.eval_k = tuple(self.eval_k)

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(self.temperature, self.top_p, self.max_new_tokens, self.stop)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Field name -> its help line (the docstring under the field), for CLIs."""
        import ast
        import inspect
        import textwrap

        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        help_ = {}
        for node, nxt in zip(body, body[1:], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)):
                help_[node.target.id] = " ".join(str(nxt.value.value).split())
        return help_


# --- The shared math -------------------------------------------------------------------------


def group_advantages(rewards: torch.Tensor, usable: torch.Tensor, mode: AdvantageMode = "group",
                     std_eps: float = 1e-4) -> torch.Tensor:
    """Per-sample advantages from rewards of shape [groups, G].

    'group' is GRPO's outcome advantage (r - mean) / (std + eps) with the sample std;
    'mean' is Dr. GRPO's r - mean; 'none' passes r through. Statistics use only `usable`
    samples (verdict not error/timeout); unusable samples get advantage 0.
    """
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


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    loss_type: LossType = "grpo",
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    beta: float = 0.0,
    ref_logprobs: torch.Tensor | None = None,
    max_tokens: int | None = None,
    total_sequences: float | None = None,
    total_tokens: float | None = None,
    num_micro_batches: int = 1,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped-ratio policy-gradient loss (to minimise) of GRPO and everything built on it.

    Shapes: `logprobs`, `old_logprobs`, `mask` (and `ref_logprobs`) are [B, T]; `advantages`
    is [B] (one per sequence) or [B, T] (per token: IB-TPO steps, MRT episodes). `mask` is 1
    on tokens the policy generated and that count (0 on prompt, prefix/hint, padding and
    unusable samples).

    Per token: l = -min(rho A, clip(rho, 1-eps_low, 1+eps_high) A) + beta k3, with
    k3 = exp(ref - logp) - (ref - logp) - 1 (Schulman's estimator; DeepSeekMath eq. 4).

    Aggregation (docs/algorithms.md, GRPO). When gradients are accumulated over micro-batches, pass
    the totals of the whole (mini-)batch so that the micro-batch losses add up to the loss of
    the whole batch:
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


# --- The agent -------------------------------------------------------------------------------


@dataclass
class Group:
    """G completions of one problem with their rewards and verdicts."""

    problem_id: str
    generations: list[Generation]
    rewards: list[float]
    usable: list[bool]
    correct: list[bool]


@dataclass
class Rollout:
    """What one training step sampled."""

    groups: list[Group]
    sampled_groups: list[Group] = field(default_factory=list)
    """Every group sampled this step, also those dropped by dynamic sampling."""
    generated_tokens: int = 0
    seconds: float = 0.0


Callback = Callable[["GRPO", dict[str, Any]], "bool | None"]


class GRPO(RunBookkeeping):
    """Group Relative Policy Optimisation against a rlvr-gym env.

    Args:
        policy: a `Policy`, or a path of a local Hugging Face model directory.
        env: the training env (a `ReasoningEnv`, possibly wrapped); groups are sampled by
            pinning problems with `reset(options={"problem_id": ...})`. A wrapper may end the
            observation with a response prefix named in `info["response_prefix"]` (masked
            from the RL loss); the action is only the generated continuation.
        config: a `GRPOConfig`.
        eval_env: optional held-out env (e.g. the same task with dataset `seed=1`), evaluated
            at the start and end of `learn` and every `config.eval_every` steps.
    """

    config_class: type[GRPOConfig] = GRPOConfig
    """The config dataclass `load` rebuilds from agent.json (a subclass's own config)."""

    def __init__(self, policy: Policy | str | Path, env: Any, config: GRPOConfig | None = None,
                 eval_env: Any = None) -> None:
        self.config = config or self.config_class()
        _seed_everything(self.config.seed)
        self.policy = as_policy(policy, self.config.device, self.config.dtype,
                                self.config.backend)
        self.env = env
        self.eval_env = eval_env
        self.reference = None
        if self.config.beta != 0.0:
            self.reference = copy.deepcopy(self.policy.model).eval().requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.policy.model.parameters(), lr=self.config.lr,
                                           betas=self.config.adam_betas,
                                           weight_decay=self.config.weight_decay)
        self.num_steps = 0
        self.eval_history: list[dict[str, float]] = []
        """Held-out results of `learn`, each with its `step`."""
        self._env_seeded = False

    # -- public API --

    def learn(self, total_steps: int, callback: Callback | None = None,
              progress_bar: bool = True) -> GRPO:
        """Run `total_steps` more training steps (sample a batch of groups, update).

        `callback(agent, metrics)` runs after every step; returning False stops training.
        Metrics go to `config.output_dir` (JSONL, CSV, PNG of the curves at the end), and the
        agent to its `agent/` every `config.save_every` steps and at the end. Ctrl-C stops
        after the current step, saves, and raises `TrainingInterrupted`; a new agent
        refuses an output_dir that holds another run (`RunExistsError`).
        """
        self._training_loop(
            total_steps, self.train_step, type(self).__name__,
            lambda m: {"reward": f"{m['reward']:.2f}", "eff": f"{m['eff_rate']:.2f}"},
            lambda: self.num_steps, callback, progress_bar)
        return self

    def train_step(self) -> dict[str, Any]:
        """One step: sample groups through the env, compute advantages, update the policy."""
        start = time.perf_counter()
        rollout = self.collect()
        metrics = self._rollout_metrics(rollout)
        if rollout.groups:
            metrics.update(self.update(rollout))
        else:
            metrics["skipped_update"] = 1  # every group had equal rewards; nothing to learn
        self.num_steps += 1
        metrics["step_seconds"] = time.perf_counter() - start
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    def predict(self, observation: str | Sequence[str], deterministic: bool = True,
                response_prefix: str = "") -> tuple[str | list[str], None]:
        """Respond to one observation (or a list): greedy when `deterministic`, else sampled.
        Returns `(response, None)` like stable-baselines3 (no recurrent state)."""
        single = isinstance(observation, str)
        prompts = [observation] if isinstance(observation, str) else list(observation)
        sampling = self.config.sampling()
        if deterministic:
            sampling = SamplingConfig(0.0, 1.0, sampling.max_new_tokens, sampling.stop)
        gens = self.policy.generate(prompts, sampling, [response_prefix] * len(prompts))
        responses = [g.response for g in gens]
        return (responses[0] if single else responses), None

    def evaluate(self, env: Any = None, samples: int | None = None,
                 progress_bar: bool = False) -> dict[str, float]:
        """Held-out metrics (greedy accuracy, pass@k) on `env` or the agent's `eval_env`, with
        `samples` completions per problem for pass@k (None: `config.eval_samples`; 0: greedy
        accuracy only).

        Runs on its own fixed random stream, so evaluating never changes training."""
        env = env if env is not None else self.eval_env
        if env is None:
            raise ValueError("no env to evaluate on: pass one or give GRPO an eval_env")
        c = self.config
        devices = [self.policy.device] if self.policy.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(c.seed + 1_000_003)
            return evaluate(self.policy, env, c.eval_problems,
                            c.eval_samples if samples is None else samples, c.eval_k,
                            c.temperature or 1.0, c.max_new_tokens, c.stop, progress_bar)

    def save(self, path: str | Path) -> Path:
        """Save everything an exact resume needs: weights (and the reference), optimiser
        state, step, config and the random states of torch, numpy, random and the env.

        Atomic (see `rlvr_gym.agents.checkpoint`): an interrupted save leaves the previous
        checkpoint at `path` intact."""
        return save_checkpoint(path, self._checkpoint_content())

    @classmethod
    def load(cls, path: str | Path, env: Any, eval_env: Any = None, **overrides: Any) -> GRPO:
        """Restore an agent saved with `save`; `learn` then continues exactly where it stopped.

        `overrides` replace config fields (e.g. `device="cpu"`, `output_dir=...`). Raises
        `CheckpointError` (a ValueError naming the file) for a missing, corrupt or
        inconsistent part."""
        return cls._from_checkpoint(Checkpoint(path), env, eval_env, overrides)

    def _checkpoint_content(self) -> CheckpointContent:
        """What `save` writes; subclasses with more state extend it."""
        models = {"policy": [self.policy.model, self.policy.tokenizer]}
        if self.reference is not None:
            models["reference"] = [self.reference]
        return CheckpointContent(
            agent=type(self).__name__, step=self.num_steps, config=self.config,
            state={"optimizer": self.optimizer.state_dict(), "eval_history": self.eval_history,
                   **self._random_state()},
            models=models, env=self._env_record())

    @classmethod
    def _from_checkpoint(cls, checkpoint: Checkpoint, env: Any, eval_env: Any,
                         overrides: dict[str, Any]) -> GRPO:
        """The agent of an opened checkpoint; subclasses with more state extend it."""
        config = checkpoint.config(cls.config_class, overrides)
        state = checkpoint.state("optimizer", "eval_history")
        agent = cls(checkpoint.policy(config.device, config.dtype), env, config, eval_env)
        reference = checkpoint.model_dir("reference")
        if agent.reference is not None and reference is not None:
            from transformers import AutoModelForCausalLM

            agent.reference = AutoModelForCausalLM.from_pretrained(
                reference, dtype=agent.policy.model.dtype, local_files_only=True
            ).to(agent.policy.device).eval().requires_grad_(False)  # type: ignore[arg-type]
        agent.optimizer.load_state_dict(state["optimizer"])
        agent.num_steps = checkpoint.step
        agent.eval_history = state["eval_history"]
        agent._restore_random_state(state)
        return agent

    # -- sampling --

    def collect(self) -> Rollout:
        """Sample `prompts_per_step` groups (refilling dropped ones with dynamic sampling)."""
        c = self.config
        start = time.perf_counter()
        rollout = Rollout(groups=[])
        for _ in range(c.max_sampling_rounds if c.dynamic_sampling else 1):
            groups, tokens = self.sample_groups(c.prompts_per_step - len(rollout.groups))
            rollout.sampled_groups += groups
            rollout.generated_tokens += tokens
            rollout.groups += [g for g in groups if not c.dynamic_sampling
                               or _varies([r for r, u in zip(g.rewards, g.usable, strict=True)
                                           if u])]
            if len(rollout.groups) >= c.prompts_per_step:
                break
        rollout.seconds = time.perf_counter() - start
        return rollout

    def sample_groups(self, num_problems: int) -> tuple[list[Group], int]:
        """Draw problems from the env, sample G completions each, score them through `step`.

        Returns the groups and the number of generated tokens."""
        c = self.config
        self._seed_env()
        heads = [self.env.reset() for _ in range(num_problems)]
        split = [split_prefix(obs, info) for obs, info in heads]
        prompts = [prompt for prompt, _ in split for _ in range(c.group_size)]
        prefixes = [prefix for _, prefix in split for _ in range(c.group_size)]
        gens = self.policy.generate(prompts, c.sampling(), prefixes)
        groups = []
        for k, (_, info) in enumerate(heads):
            members = gens[k * c.group_size:(k + 1) * c.group_size]
            rewards, usable, correct = [], [], []
            for g in members:
                self.env.reset(options={"problem_id": info["problem_id"]})
                _, reward, _, _, step_info = self.env.step(g.text)  # continues the obs
                verdict = step_info.get("verdict")
                rewards.append(float(reward))
                usable.append(verdict is None or verdict.usable)
                correct.append(verdict.correct if verdict is not None else float(reward) >= 1)
            groups.append(Group(info["problem_id"], members, rewards, usable, correct))
        return groups, sum(len(g.completion_ids) for g in gens)

    # -- optimisation --

    def update(self, rollout: Rollout, advantages: torch.Tensor | None = None
               ) -> dict[str, float]:
        """Advantages and `num_iterations` passes of clipped policy-gradient updates.

        `advantages`, when given, replaces the group advantages of the rollout's generations
        (groups in order): shape [B], or [B, L-1] per token aligned with `Policy.batch` of
        them (IB-TPO's step advantages)."""
        c = self.config
        start = time.perf_counter()
        usable = torch.tensor([g.usable for g in rollout.groups])
        if advantages is None:
            rewards = torch.tensor([g.rewards for g in rollout.groups])
            advantages = group_advantages(rewards, usable, c.advantage, c.std_eps).flatten()
        gens = [gen for g in rollout.groups for gen in g.generations]
        batch = self.policy.batch(gens)
        mask = batch.completion_mask * usable.flatten()[:, None].float()
        rows = [i for i in range(len(gens)) if mask[i].sum() > 0]
        # Rows whose advantages are all zero add nothing to the loss or its gradient unless a
        # KL term, an extra loss or per-micro-batch normalisation (bnpo) involves them; they
        # still count in the aggregation totals below, so skipping them changes no gradient
        # (a mini-batch with no other row makes no optimiser step). Statistics such as the
        # entropy are then over the trained rows.
        skip_zero = (c.beta == 0.0 and c.loss_type != "bnpo"
                     and type(self).extra_loss is GRPO.extra_loss)
        nonzero = (advantages.reshape(len(gens), -1) != 0).any(1)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.num_steps)
        temperature = c.temperature or 1.0
        stats = _Mean()

        # With one pass and one mini-batch the policy is still the sampling policy when each
        # token is scored, so the detached current log-probs serve as "old" (ratio = 1).
        # Otherwise later mini-batches are off-policy and need the sampling log-probs.
        off_policy = c.num_iterations > 1 or c.num_minibatches > 1
        old_logprobs = self._logprobs_no_grad(self.policy.model, batch) if off_policy else None
        ref_logprobs = self._logprobs_no_grad(self.reference, batch) \
            if self.reference is not None else None
        processed_tokens = trained = 0
        for iteration in range(c.num_iterations):
            for minibatch in np.array_split(np.array(rows), c.num_minibatches):
                if len(minibatch) == 0:
                    continue
                active = minibatch[nonzero[torch.as_tensor(minibatch)].numpy()] \
                    if skip_zero else minibatch
                trained += len(active)
                micro_batches = [active[i:i + c.micro_batch_size]
                                 for i in range(0, len(active), c.micro_batch_size)]
                total_tokens = float(mask[minibatch].sum())
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
                        total_sequences=float(len(minibatch)), total_tokens=total_tokens,
                        num_micro_batches=len(micro_batches))
                    extra = self.extra_loss(sub, logprobs, float(len(minibatch)))
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
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    self.policy.model.parameters(),
                    c.max_grad_norm if c.max_grad_norm > 0 else float("inf"))
                stats.add({"grad_norm": float(grad_norm), "loss": minibatch_loss}, 1.0)
                self.optimizer.step()
        self.policy.backend.sync_weights()
        seconds = time.perf_counter() - start
        return {**stats.means(), "update_seconds": seconds,
                "update_tokens_per_s": processed_tokens / max(seconds, 1e-9),
                "trained_sequences": trained / c.num_iterations}

    def learning_rate(self, step: int) -> float:
        """The learning rate of training step `step` (0-based): linear warm-up, then constant
        or a linear decay to 0 at `decay_steps`. A function of the step alone, so a resumed run
        follows the same schedule."""
        c = self.config
        rate = c.lr
        if c.warmup_steps > 0:
            rate *= min(1.0, (step + 1) / c.warmup_steps)
        if c.decay_steps > 0 and step >= c.warmup_steps:
            rate *= max(0.0, 1 - (step - c.warmup_steps) / max(c.decay_steps - c.warmup_steps, 1))
        return rate

    def extra_loss(self, batch: TokenBatch, logprobs: torch.Tensor, total_sequences: float
                   ) -> tuple[torch.Tensor, dict[str, float]] | None:
        """A term added to the policy loss of every micro-batch; GRPO adds none.

        Subclasses override it (SEELE: imitation of the hint tokens). `batch` is the
        micro-batch, `logprobs` its token log-probs at the sampling temperature (with
        gradient, aligned with `batch`'s masks), `total_sequences` the rows of its mini-batch.
        Returns the loss and statistics to log (averaged over micro-batches), or None.
        """
        return None

    @torch.no_grad()
    def _logprobs_no_grad(self, model: Any, batch: TokenBatch) -> torch.Tensor:
        """Token log-probs of the whole batch under `model` (old policy or reference), [B, L-1]."""
        policy = Policy(model, self.policy.tokenizer, self.policy.backend,
                        self.policy.compute_dtype)
        out = torch.zeros(batch.completion_mask.shape)
        for i in range(0, len(batch), self.config.micro_batch_size):
            index = torch.arange(i, min(i + self.config.micro_batch_size, len(batch)))
            logp, _ = policy.token_logprobs(batch.rows(index), self.config.temperature or 1.0)
            out[index, :logp.shape[1]] = logp.float().cpu()
        return out

    # -- helpers --

    def _rollout_metrics(self, rollout: Rollout) -> dict[str, Any]:
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
        }


def _varies(values: Sequence[float]) -> bool:
    return len(values) > 1 and max(values) != min(values)


class _Mean:
    """Weighted running means of named statistics."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def add(self, values: dict[str, float], weight: float) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * weight
            self.weights[k] = self.weights.get(k, 0.0) + weight

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.weights[k] for k in self.sums if self.weights[k] > 0}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
