"""SEELE: GRPO on problems whose reference-solution hint is sized per problem so that rollout
accuracy sits near a target (arXiv 2509.06923; docs/algorithms.md, SEELE).

The hint lengths come from `rlvr_gym.wrappers.HintScaffold` (3PL IRT fit); this module is the
agent side of the paper's Algorithm 1:

- Sampling: each training step draws `prompts_per_step` problems and gives each `rounds`
  sequential rounds of `group_size` completions. Every round resets the pinned problem, so the
  wrapper refits the accuracy-vs-hint curve on the rounds so far and hands out the next ratio.
- Advantages: Dr. GRPO, `A = r - mean(r)` over all `rounds x group_size` completions of a
  problem (one baseline across rounds of different hint lengths, as in the paper), computed
  by GRPO's `group_advantages` on one group per problem.
- Loss (the paper's Eq. 47-48), minimised:

      L = L_GRPO(generated tokens) + gamma/(N L) sum_i sum_{t in hint_i} -log pi(y_t | x, y_<t)

  The clipped policy-gradient term is GRPO's `policy_loss` on the generated tokens (the hint
  is a response prefix, masked out of it). The imitation term is the negative log-likelihood
  of the hint y_{1:l} given the prompt (`log pi` where the paper writes `pi`), summed
  over the hint tokens of each of the N rollouts of the mini-batch and divided by N and by the
  same constant L = `max_new_tokens` as Dr. GRPO's token sum, so gamma weighs a hint token
  against a generated token of advantage 1.

Held-out evaluation runs on the `eval_env` as given, i.e. without hints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch

from rlvr_gym.agents.checkpoint import Checkpoint, CheckpointContent
from rlvr_gym.agents.grpo import GRPO, AdvantageMode, Group, GRPOConfig, LossType, Rollout
from rlvr_gym.agents.monitors import split_prefix
from rlvr_gym.agents.policy import Policy, TokenBatch
from rlvr_gym.wrappers.hints import HintScaffold, Unit

HINT_STATE_FILE = "hints.json"


@dataclass
class SEELEConfig(GRPOConfig):
    """Hyper-parameters of SEELE: GRPO's fields plus the hint schedule and the imitation
    weight. Defaults scale the paper's setup to the bundled tiny model on a CPU: 8 problems x
    4 rounds x 8 completions = 256 completions per step, the rollout budget of GRPO's defaults
    (32 x 8)."""

    prompts_per_step: int = 8
    """Problems per training step (paper: 256 with 4 x 8 rollouts each; here 8 x 4 x 8)."""
    group_size: int = 8
    """Completions per round, n (paper: 8). A problem gets rounds x group_size per step."""
    rounds: int = 4
    """Sequential sampling rounds per problem per step, m (paper: 4; 3 points are too few for
    the three-parameter fit, more rounds make per-round accuracies noisier)."""
    target_accuracy: float = 0.5
    """Rollout accuracy a* the hint length aims at (paper: 0.5, the maximiser of the
    per-step loss decrease a(1 - a); docs/algorithms.md, SEELE)."""
    imitation_coef: float = 1.0
    """gamma, weight of the negative log-likelihood of the hint tokens (Eq. 47). Paper: 0.001
    with Qwen2.5 base models; the tiny model knows nothing of the hard tasks' solution format,
    so here it is 1 (under loss_type='dr_grpo' a hint token then counts like a generated
    token of advantage 1; other loss types scale the RL term differently)."""
    hint_unit: Unit = "tokens"
    """What the hint ratio counts when SEELE wraps the env itself: 'tokens' (the policy's
    tokenizer; docs/algorithms.md, SEELE), 'steps' (solution lines) or 'chars'."""
    snap_to_steps: bool = False
    """Cut token/char hints back to the last line break (optional)."""
    advantage: AdvantageMode = "mean"
    """Dr. GRPO advantage r - mean over all rounds of a problem (SEELE's derivation
    assumes the unnormalised advantage)."""
    loss_type: LossType = "dr_grpo"
    """Token sum divided by a constant (Eq. 48); see GRPOConfig for the other options."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.target_accuracy < 1.0:
            raise ValueError(f"target_accuracy must lie strictly between 0 and 1, got "
                             f"{self.target_accuracy}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")
        if self.imitation_coef < 0:
            raise ValueError(f"imitation_coef must be >= 0, got {self.imitation_coef}")
        if self.hint_unit not in ("tokens", "steps", "chars"):
            raise ValueError(f"hint_unit must be 'tokens', 'steps' or 'chars', got "
                             f"{self.hint_unit!r}")
        if self.dynamic_sampling:
            raise ValueError("SEELE sizes hints so that groups keep reward variance instead of "
                             "dropping them; set dynamic_sampling=False")

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Help lines of GRPO's fields, overridden by SEELE's own."""
        return {**GRPOConfig.field_help(), **super().field_help()}


@dataclass
class HintedRollout(Rollout):
    """A SEELE step's samples: one group per problem holding all its rounds, and for each
    generation (aligned with `group.generations`) its round (0-based) and hint ratio."""

    rounds: list[list[int]] = field(default_factory=list)
    ratios: list[list[float]] = field(default_factory=list)


class SEELE(GRPO):
    """GRPO with capability-adaptive hint scaffolding (SEELE, Algorithm 1).

    Args:
        policy: a `Policy`, or a path of a local Hugging Face model directory.
        env: the training env. If it contains no `HintScaffold`, SEELE wraps it in one built
            from the config (`target_accuracy`, `rounds`, `group_size` as samples per round,
            `hint_unit` with the policy's tokenizer, `snap_to_steps`). If it does (e.g. from
            `rlvr-gym train --wrapper seele`), that one is used and its target, rounds and
            samples per round must equal the config's. Its `info` needs `problem_id` and
            `solution`.
        config: a `SEELEConfig`.
        eval_env: optional held-out env, evaluated as given (without hints).

    The hint state (each problem's stored ratio) is saved and restored with the agent.
    """

    config_class = SEELEConfig
    config: SEELEConfig

    def __init__(self, policy: Policy | str | Path, env: Any, config: SEELEConfig | None = None,
                 eval_env: Any = None) -> None:
        config = config or SEELEConfig()
        if not isinstance(config, SEELEConfig):
            raise TypeError(f"SEELE needs a SEELEConfig, got {type(config).__name__}; build one "
                            "with SEELEConfig(**fields)")
        super().__init__(policy, env, config, eval_env)
        scaffold = find_scaffold(env)
        if scaffold is None:
            scaffold = HintScaffold(env, config.target_accuracy, config.rounds,
                                    config.group_size, config.hint_unit, self.policy.tokenizer,
                                    config.snap_to_steps)
            self.env = scaffold
        else:
            ours = (config.target_accuracy, config.rounds, config.group_size)
            theirs = (scaffold.target_accuracy, scaffold.rounds, scaffold.samples_per_round)
            if ours != theirs:
                raise ValueError(
                    f"the env's HintScaffold has (target_accuracy, rounds, samples_per_round) = "
                    f"{theirs} but the config has (target_accuracy, rounds, group_size) = {ours}; "
                    "pass the unwrapped env (SEELE then wraps it) or make them equal")
        self.scaffold: HintScaffold = scaffold

    # -- sampling (Algorithm 1, the rounds loop) --

    def collect(self) -> HintedRollout:
        """Draw `prompts_per_step` distinct problems and sample `rounds` rounds of
        `group_size` completions each; the wrapper refits the hint between rounds."""
        c = self.config
        start = time.perf_counter()
        self._seed_env()
        # Distinct problems: the wrapper counts a round per problem, so a duplicate would
        # split one problem's round across two groups.
        problem_ids = list(dict.fromkeys(self.env.reset()[1]["problem_id"]
                                         for _ in range(c.prompts_per_step)))
        groups = [Group(pid, [], [], [], []) for pid in problem_ids]
        rounds: list[list[int]] = [[] for _ in problem_ids]
        ratios: list[list[float]] = [[] for _ in problem_ids]
        tokens = 0
        for r in range(c.rounds):
            heads = [self.env.reset(options={"problem_id": pid}) for pid in problem_ids]
            for pid, (_, info) in zip(problem_ids, heads, strict=True):
                if info.get("hint_round") != r + 1:
                    raise RuntimeError(
                        f"problem {pid!r} is in hint round {info.get('hint_round')} where SEELE "
                        f"expected {r + 1}: something else stepped the HintScaffold mid-visit; "
                        "give SEELE an env of its own")
            split = [split_prefix(obs, info) for obs, info in heads]
            gens = self.policy.generate(
                [prompt for prompt, _ in split for _ in range(c.group_size)], c.sampling(),
                [prefix for _, prefix in split for _ in range(c.group_size)])
            tokens += sum(len(g.completion_ids) for g in gens)
            for k, (group, (_, info)) in enumerate(zip(groups, heads, strict=True)):
                for gen in gens[k * c.group_size:(k + 1) * c.group_size]:
                    self.env.reset(options={"problem_id": group.problem_id})
                    _, reward, _, _, step_info = self.env.step(gen.text)  # continues the hint
                    verdict = step_info.get("verdict")
                    group.generations.append(gen)
                    group.rewards.append(float(reward))
                    group.usable.append(verdict is None or verdict.usable)
                    group.correct.append(verdict.correct if verdict is not None
                                         else float(reward) >= 1)
                    rounds[k].append(r)
                    ratios[k].append(float(info["hint_ratio"]))
        return HintedRollout(groups=groups, sampled_groups=groups, generated_tokens=tokens,
                             seconds=time.perf_counter() - start, rounds=rounds, ratios=ratios)

    # -- the imitation term --

    def extra_loss(self, batch: TokenBatch, logprobs: torch.Tensor, total_sequences: float
                   ) -> tuple[torch.Tensor, dict[str, float]] | None:
        """gamma * (1/N) sum_i (1/L) sum_{hint tokens} -log pi (module docstring; Eq. 47).

        Uses the log-probs at the sampling temperature, the model's own at the paper's T = 1.
        Only `prefix_mask` tokens (the hint) enter; prompt and generated tokens do not."""
        c = self.config
        if c.imitation_coef == 0:
            return None
        hint = batch.prefix_mask.to(logprobs.device, logprobs.dtype)
        nll = -(logprobs * hint).sum()
        loss = c.imitation_coef * nll / (max(total_sequences, 1.0) * c.max_new_tokens)
        return loss, {"hint_nll": float(nll.detach() / hint.sum().clamp(min=1))}

    # -- monitors --

    def _rollout_metrics(self, rollout: Rollout) -> dict[str, Any]:
        """GRPO's metrics (Eff-Rate over each problem's all-round group) plus rollout accuracy
        and mean hint ratio per round, the target, and the mean hint ratio and length."""
        assert isinstance(rollout, HintedRollout), "SEELE's rollouts come from its collect()"
        metrics = super()._rollout_metrics(rollout)
        c = self.config
        rounds = np.concatenate([np.asarray(r, dtype=int) for r in rollout.rounds])
        ratios = np.concatenate([np.asarray(r, dtype=float) for r in rollout.ratios])
        correct = np.array([x for g in rollout.groups for x in g.correct], dtype=float)
        for r in range(c.rounds):
            metrics[f"accuracy_round{r + 1}"] = float(correct[rounds == r].mean())
            metrics[f"hint_ratio_round{r + 1}"] = float(ratios[rounds == r].mean())
        metrics["target_accuracy"] = c.target_accuracy
        metrics["hint_ratio"] = float(ratios.mean())
        metrics["hint_tokens"] = float(np.mean([len(gen.prefix_ids) for g in rollout.groups
                                                for gen in g.generations]))
        return metrics

    # -- persistence --

    def _checkpoint_content(self) -> CheckpointContent:
        """GRPO's checkpoint plus the hint state (hints.json: each problem's stored ratio)."""
        content = super()._checkpoint_content()
        content.files[HINT_STATE_FILE] = self.scaffold.state_dict()
        return content

    @classmethod
    def _from_checkpoint(cls, checkpoint: Checkpoint, env: Any, eval_env: Any,
                         overrides: dict[str, Any]) -> SEELE:
        """GRPO's restore plus the hint state."""
        hints = checkpoint.json_file(
            HINT_STATE_FILE, f"{checkpoint.path} was not saved by SEELE.save (a GRPO checkpoint "
            "can seed SEELE through its policy directory instead)")
        agent = cast(SEELE, super()._from_checkpoint(checkpoint, env, eval_env, overrides))
        agent.scaffold.load_state_dict(hints)
        return agent


def find_scaffold(env: Any) -> HintScaffold | None:
    """The first `HintScaffold` in a chain of Gymnasium wrappers, or None."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, HintScaffold):
            return env
        env = env.env
    return None
