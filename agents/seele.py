"""SEELE: GRPO on problems whose reference-solution hint is sized per problem so that rollout
accuracy sits near a target (arXiv 2509.06923; docs/algorithms.md, SEELE). The env sizes the hints:
a `rlvr_gym.wrappers.HintScaffold` (3PL IRT fit; `hinted_env` builds the one matching a config). The
agent is the rest of the paper's Algorithm 1: it samples `rounds` rounds per problem, reading the
hint from `info` (`response_prefix`, `hint_ratio`, `hint_round`), takes Dr. GRPO advantages over all
rounds of a problem, and adds an imitation term on the hint tokens to GRPO's loss
(`SEELE.imitation_loss`). Held-out evaluation runs on the `eval_env` as given, i.e. without hints.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch

from rlvr_gym.agents.core import check_choice, check_minimum
from rlvr_gym.agents.grpo import AdvantageMode, GRPOConfig, LossType, PolicyGradient
from rlvr_gym.agents.policy import Policy, TokenBatch
from rlvr_gym.agents.rollout import Group, Rollout, draw, sample_groups
from rlvr_gym.wrappers.hints import HintScaffold, Unit


@dataclass
class SEELEConfig(GRPOConfig):
    """GRPO's fields plus the hint schedule and the imitation weight; the defaults spend the
    rollout budget of GRPO's (32 x 8) as 8 problems x 4 rounds x 8 completions per step."""

    prompts_per_step: int = 8
    """Problems per training step (paper: 256 with 4 x 8 rollouts each; here 8 x 4 x 8)."""
    group_size: int = 8
    """Completions per round, n (paper: 8)."""
    rounds: int = 4
    """Sequential sampling rounds per problem per step, m (paper: 4; 3 points are too few for
    the three-parameter fit)."""
    target_accuracy: float = 0.5
    """Rollout accuracy a* the hint length aims at (paper: 0.5, the maximiser of a(1 - a))."""
    imitation_coef: float = 1.0
    """gamma, weight of the hint tokens' negative log-likelihood (Eq. 47). Paper: 0.001 with
    Qwen2.5; here 1, as the tiny model knows nothing of the hard tasks' solution format."""
    hint_unit: Unit = "tokens"
    """What the hint ratio of `hinted_env`'s scaffold counts: 'tokens' (the policy's
    tokenizer; docs/algorithms.md, SEELE), 'steps' (solution lines) or 'chars'."""
    snap_to_steps: bool = False
    """Cut token/char hints back to the last line break (optional)."""
    advantage: AdvantageMode = "mean"
    """Dr. GRPO's r - mean over all rounds of a problem (what SEELE's derivation assumes)."""
    loss_type: LossType = "dr_grpo"
    """Token sum divided by a constant (Eq. 48); see GRPOConfig for the other options."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.target_accuracy < 1.0:
            raise ValueError(f"target_accuracy must lie strictly between 0 and 1, got "
                             f"{self.target_accuracy}")
        check_minimum(self, ("rounds",))
        check_minimum(self, ("imitation_coef",), 0)
        check_choice(self, "hint_unit", get_args(Unit))
        if self.dynamic_sampling:
            raise ValueError("SEELE sizes hints so that groups keep reward variance instead of "
                             "dropping them; set dynamic_sampling=False")


def hinted_env(env: Any, config: SEELEConfig, tokenizer: Any = None) -> HintScaffold:
    """`env` in the `HintScaffold` that `config` asks for: its `target_accuracy`, `rounds`,
    `group_size` as samples per round, `hint_unit` and `snap_to_steps`. `tokenizer` counts
    'tokens' hints (the policy's: a tokenizer, or the path of the model directory to load it
    from); other units need none. `env`'s `info` needs `problem_id` and `solution`."""
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
    return HintScaffold(env, config.target_accuracy, config.rounds, config.group_size,
                        config.hint_unit, tokenizer, config.snap_to_steps)


class SEELE(PolicyGradient):
    """GRPO with capability-adaptive hint scaffolding:
    `SEELE(policy, hinted_env(env, config, tokenizer), config, eval_env).learn(total_steps)`
    (arguments: `Trainer`). The env gives hints in rounds: a `HintScaffold` whose target,
    rounds and samples per round are the config's, possibly further wrapped; its state (each
    problem's stored ratio) is saved and restored with the agent."""

    config_class = SEELEConfig
    config: SEELEConfig

    def __init__(self, policy: Policy | str | Path, env: Any, config: SEELEConfig | None = None,
                 eval_env: Any = None) -> None:
        super().__init__(policy, env, config, eval_env)
        # Set also at imitation_coef 0, where it adds nothing: rows whose advantages are all
        # zero are then still forwarded, the batches benchmarks/results/seele.md was run with.
        self.extra_loss = self.imitation_loss

    def collect(self) -> Rollout:
        """`rounds` rounds of `group_size` completions of `prompts_per_step` distinct problems,
        one group per problem (the env refits the hint between rounds). `stats`: accuracy and
        hint ratio per round, the target, the mean hint ratio and hint length."""
        c = self.config
        start = time.perf_counter()
        self._seed_env()
        drawn = draw(self.env, self.prompts_per_rank)
        if any("hint_round" not in info for _, info in drawn):
            raise ValueError("SEELE's env gives no hints (no 'hint_round' in its reset info); "
                             "wrap it with rlvr_gym.agents.seele.hinted_env(env, config, "
                             "tokenizer) or a HintScaffold")
        # Distinct problems: the wrapper counts a round per problem, so a duplicate would
        # split one problem's round across two groups.
        problem_ids = list(dict.fromkeys(info["problem_id"] for _, info in drawn))
        groups = [Group(pid, [], [], [], []) for pid in problem_ids]
        ratios: list[list[float]] = [[] for _ in problem_ids]  # per sample, problem by problem
        stats: dict[str, float] = {}
        tokens = 0
        for r in range(c.rounds):
            heads = [self.env.reset(options={"problem_id": pid}) for pid in problem_ids]
            for pid, (_, info) in zip(problem_ids, heads, strict=True):
                if info.get("hint_round") != r + 1:
                    raise RuntimeError(
                        f"problem {pid!r} is in hint round {info.get('hint_round')} where SEELE "
                        f"expected {r + 1}: the HintScaffold's rounds or samples per round are "
                        "not the config's rounds and group_size (build it with hinted_env), or "
                        "something else stepped it; give SEELE an env of its own")
            sampled, count = sample_groups(self.policy, self.env, heads, c.group_size, c.sampling())
            tokens += count
            round_ratios = [float(info["hint_ratio"]) for _, info in heads]
            for group, part, ratio, mine in zip(groups, sampled, round_ratios, ratios, strict=True):
                group.generations += part.generations
                group.rewards += part.rewards
                group.usable += part.usable
                group.correct += part.correct
                mine += [ratio] * c.group_size
            stats[f"accuracy_round{r + 1}"] = float(np.array(
                [x for g in sampled for x in g.correct], dtype=float).mean())
            stats[f"hint_ratio_round{r + 1}"] = float(np.repeat(round_ratios, c.group_size).mean())
        stats["target_accuracy"] = c.target_accuracy
        stats["hint_ratio"] = float(np.concatenate(ratios).mean())
        stats["hint_tokens"] = float(np.mean([len(gen.prefix_ids) for g in groups
                                              for gen in g.generations]))
        return Rollout(groups=groups, sampled_groups=groups, generated_tokens=tokens,
                       seconds=time.perf_counter() - start, stats=stats)

    def imitation_loss(self, batch: TokenBatch, logprobs: torch.Tensor, total_sequences: float
                       ) -> tuple[torch.Tensor, dict[str, float]] | None:
        """The paper's imitation term (Eq. 47-48), None at gamma = 0:

            gamma / (N L) sum_i sum_{t in hint_i} -log pi(y_t | x, y_<t)

        over the hint (`prefix_mask`) tokens of the N rows of the mini-batch, with L =
        `max_new_tokens`, Dr. GRPO's constant, so gamma weighs a hint token against a generated
        token of advantage 1. Log-probs are at the sampling temperature (T = 1 in the paper)."""
        c = self.config
        if c.imitation_coef == 0:
            return None
        hint = batch.prefix_mask.to(logprobs.device, logprobs.dtype)
        nll = -(logprobs * hint).sum()
        loss = c.imitation_coef * nll / (max(total_sequences, 1.0) * c.max_new_tokens)
        return loss, {"hint_nll": float(nll.detach() / hint.sum().clamp(min=1))}
