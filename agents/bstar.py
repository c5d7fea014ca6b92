"""B-STaR: online rejection fine-tuning that balances exploration and exploitation (Zeng et al.,
arXiv 2412.17256, ICLR 2025; docs/algorithms.md, B-STaR). One iteration (the paper's Algorithm 1,
`BSTaR.train_step`): sample K responses per query of a fixed subset of training queries at every
temperature of the grid; pick the (temperature T, threshold tau) of highest balance score
(`balance.search_balance`); sample K responses for M fresh queries at T, keep those with reward >
tau (deduplicated) and fine-tune on them, continuing the optimiser and the learning-rate schedule.
The paper's baselines are modes of the same loop (`BSTaRConfig.mode`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch

from rlvr_gym.agents.balance import (
    Sample,
    balance_score,
    monitors,
    n_star_for,
    search_balance,
    select,
    unique_responses,
)
from rlvr_gym.agents.core import Mean, Trainer, TrainerConfig, check_choice, check_minimum
from rlvr_gym.agents.policy import Generation, Policy, cross_entropy_on
from rlvr_gym.agents.rollout import Head, draw, evaluate, sample_groups

Mode = Literal["bstar", "online_rft", "iterative_rft", "restart"]

StepScorer = Callable[[str], float]
"""Response text (prefix + generated text) -> step score, added to the answer reward
1(correct): e.g. `ArithmeticStepScorer`, in [-1, 1], for the paper's process reward model."""


def _mean_or_nan(values: Sequence[float]) -> float:
    """Mean, or NaN for no values (logged as null, never as a misleading 0)."""
    return float(np.mean(values)) if len(values) else float("nan")


def _grid(start: float, stop: float, step: float) -> tuple[float, ...]:
    return tuple(round(start + i * step, 4) for i in range(round((stop - start) / step) + 1))


@dataclass
class BSTaRConfig(TrainerConfig):
    """Hyper-parameters of B-STaR and its baselines; the comments give the paper's values."""

    mode: Mode = "bstar"
    """'bstar': search (T, tau) every iteration; 'online_rft': fixed (temperature, threshold),
    inherit weights, optimiser and schedule; 'iterative_rft': fixed, inherit weights only
    (fresh optimiser and schedule per iteration); 'restart': fixed, fine-tune the initial
    model again every iteration (STaR / ReST-EM)."""
    queries_per_iteration: int = 64
    """Fresh training queries sampled per iteration, M (paper: 11,500)."""
    samples_per_query: int = 8
    """Responses per query, K, for the training pool, the search and the monitors (paper: 64)."""
    temperature: float = 1.0
    """Sampling temperature of the fixed-configuration modes (paper's online RFT: 1.0)."""
    threshold: float = 0.0
    """Reward threshold tau of the fixed modes: responses with reward > tau are kept (paper: 0)."""
    temperature_grid: tuple[float, ...] = _grid(0.5, 1.2, 0.1)
    """Temperatures B-STaR searches (paper: 0.5 to 1.2 in steps of 0.1)."""
    threshold_grid: tuple[float, ...] = _grid(-1.0, 1.0, 0.1)
    """Thresholds B-STaR searches (paper: -1.0 to 1.0 in steps of 0.1)."""
    search_queries: int = 32
    """Size of the fixed subset of training queries (indices 0..n-1 of the training env) used
    by the search and the per-iteration monitors (paper: 600)."""
    monitor_temperature: float = 1.0
    """Temperature of the monitors and of `predict(deterministic=False)`, the same for every
    mode so that curves compare (paper's case study: 1.0)."""
    monitor_s: int = 2
    """S of Pass@K-S and Reward@K-S (paper: 4 with K = 32)."""
    n_star: int = 0
    """n* of the balance score; 0 means ceil(N / M) with N = steps_per_iteration x batch_size,
    the samples one iteration fine-tunes on (paper: ceil(67,500 / 11,500) = 6; code: 8)."""
    steps_per_iteration: int = 10
    """Optimiser steps of fine-tuning per iteration (paper: 500)."""
    batch_size: int = 32
    """Responses per optimiser step, drawn from the pool without replacement (paper: 128)."""
    lr: float = 1e-4
    """Peak AdamW learning rate (paper: 4.12e-6; GRPO collapses the tiny model above 3e-4)."""
    min_lr: float = 1e-5
    """Learning rate at the end of the cosine decay (paper code: 2e-7)."""
    warmup_steps: int = 2
    """Linear warm-up steps at the start of a schedule."""
    schedule_steps: int = 100
    """Length in optimiser steps of the cosine schedule that the online modes run across all
    iterations (set it to the planned total); the other modes run one per iteration."""
    save_every: int = 1  # help: TrainerConfig's

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self, "mode", get_args(Mode))
        check_minimum(self, ("queries_per_iteration", "samples_per_query", "search_queries",
                             "monitor_s", "steps_per_iteration", "batch_size", "schedule_steps"))
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")
        check_minimum(self, ("n_star",), 0, " (0: ceil(N / M))")
        self.temperature_grid = tuple(float(t) for t in self.temperature_grid)
        self.threshold_grid = tuple(float(t) for t in self.threshold_grid)
        if self.mode == "bstar" and not (self.temperature_grid and self.threshold_grid):
            raise ValueError("mode='bstar' needs a non-empty temperature_grid and threshold_grid")
        for t in (self.temperature, self.monitor_temperature, *self.temperature_grid):
            if t <= 0:
                raise ValueError(f"temperatures must be > 0 (rejection sampling needs several "
                                 f"distinct responses), got {t}")

    def balance_n_star(self) -> int:
        """The n* in use: `n_star`, or ceil(N / M) as its help says."""
        return self.n_star or n_star_for(self.steps_per_iteration * self.batch_size,
                                         self.queries_per_iteration)


@dataclass(frozen=True, eq=False)
class ScoredResponse(Sample):
    """A `Sample` with its generation, whose tokens fine-tuning reuses (never re-tokenised)."""

    generation: Generation


class BSTaR(Trainer):
    """B-STaR and its baselines (`BSTaRConfig.mode`):
    `BSTaR(policy, env, config, eval_env, step_scorer).learn(total_steps)` (the first four
    arguments: `Trainer`; `step_scorer`: a `StepScorer`, None for the answer-only reward). An
    iteration uses `steps_per_iteration` steps of the `learn` budget; `iteration` counts them
    and `history` holds each one's metrics with its `step`."""

    config_class = BSTaRConfig
    config: BSTaRConfig

    def __init__(self, policy: Policy | str | Path, env: Any, config: BSTaRConfig | None = None,
                 eval_env: Any = None, step_scorer: StepScorer | None = None) -> None:
        super().__init__(policy, env, config, eval_env)
        self.step_scorer = step_scorer
        self.initial_state: dict[str, torch.Tensor] | None = None
        """CPU copy of the initial weights (restart mode only)."""
        if self.config.mode == "restart":
            self.initial_state = {k: v.detach().cpu().clone()
                                  for k, v in self.policy.model.state_dict().items()}
        self.scheduler = self._new_schedule()
        self.rng = np.random.default_rng(self.config.seed)
        """Orders the fine-tuning pool."""
        self.iteration = 0
        self.history: list[dict[str, Any]] = []

    @property
    def steps_per_iteration(self) -> int:
        return self.config.steps_per_iteration

    def train_step(self) -> dict[str, Any]:
        """One iteration of Algorithm 1 (module docstring); returns its metrics."""
        c = self.config
        start = time.perf_counter()
        subset = self.queries(self.env, range(c.search_queries))
        temperatures = c.temperature_grid if c.mode == "bstar" else (c.temperature,)
        by_temperature = {t: self.sample(subset, t)
                          for t in sorted({*temperatures, c.monitor_temperature})}
        n_star = c.balance_n_star()
        if c.mode == "bstar":
            choice = search_balance({t: by_temperature[t] for t in temperatures},
                                    c.threshold_grid, n_star)
            temperature, threshold, score = choice.temperature, choice.threshold, choice.score
        else:
            temperature, threshold = c.temperature, c.threshold
            score = balance_score(by_temperature[temperature], threshold, n_star)
        metrics: dict[str, Any] = {
            "iteration": self.iteration + 1, "temperature": temperature,
            "threshold": threshold, "balance_score": score, "n_star": n_star,
            **{f"subset/{k}": v for k, v in
               monitors(by_temperature[c.monitor_temperature], c.monitor_s).items()}}

        self._seed_env()
        responses = self.sample(draw(self.env, c.queries_per_iteration), temperature)
        # Rejection fine-tuning's data: one response per distinct (query, text) above tau.
        pool: list[ScoredResponse] = unique_responses(  # type: ignore[assignment]
            select(responses, threshold))
        metrics.update({
            "reward": _mean_or_nan([r.reward for r in responses]),
            "accuracy": _mean_or_nan([r.correct for r in responses]),
            "usable_responses": len(responses),
            "pool_size": len(pool),
            "pool_accuracy": _mean_or_nan([r.correct for r in pool]),
            "pool_queries": len({r.query for r in pool}),
        })
        metrics.update(self.fine_tune(pool))
        self.iteration += 1
        self.num_steps += c.steps_per_iteration
        metrics["iteration_seconds"] = time.perf_counter() - start
        self.history.append({"step": self.num_steps, **metrics})
        return metrics

    @staticmethod
    def queries(env: Any, indices: Sequence[int] | range) -> list[Head]:
        """The problems of `env` at these dataset indices, as `reset` returns them."""
        return [env.reset(options={"index": int(i)}) for i in indices]

    def sample(self, queries: Sequence[Head], temperature: float, env: Any = None,
               k: int | None = None) -> list[ScoredResponse]:
        """k (default `samples_per_query`) responses per query at `temperature`, scored on
        `env` (default: the training env) with reward 1(correct) [+ step score]. Responses
        whose verdict is unusable are dropped, never scored as wrong."""
        groups, _ = sample_groups(self.policy, env if env is not None else self.env, queries,
                                  k or self.config.samples_per_query,
                                  self.config.sampling(temperature))
        return [ScoredResponse(g.problem_id, gen.text, correct, float(correct) + (
                    self.step_scorer(gen.response) if self.step_scorer is not None else 0.0), gen)
                for g in groups
                for gen, usable, correct in zip(g.generations, g.usable, g.correct, strict=True)
                if usable]

    def fine_tune(self, pool: Sequence[ScoredResponse]) -> dict[str, float]:
        """`steps_per_iteration` supervised steps on the pool's generated tokens, from the
        initial weights in restart mode and with a fresh optimiser and schedule in the modes
        that reset them; the generation backend gets the new weights at the end."""
        c = self.config
        if c.mode == "restart":
            assert self.initial_state is not None
            self.policy.model.load_state_dict(self.initial_state)
        if c.mode in ("restart", "iterative_rft"):
            self.optimizer.state.clear()  # AdamW as new: no moments, step 0
            self.scheduler = self._new_schedule()
        if not pool:
            self.policy.backend.sync_weights()
            return {"skipped_update": 1}
        stats = Mean()
        order: list[int] = []
        for _ in range(c.steps_per_iteration):
            batch_index: list[int] = []
            while len(batch_index) < min(c.batch_size, len(pool)):
                if not order:
                    order = list(self.rng.permutation(len(pool)))
                batch_index.append(order.pop())
            stats.add(self._sft_step([pool[i].generation for i in batch_index]), 1.0)
        self.policy.backend.sync_weights()
        return {**stats.means(), "lr": self.optimizer.param_groups[0]["lr"]}

    def _predict_temperature(self) -> float:
        return self.config.monitor_temperature

    @classmethod
    def load(cls, path: str | Path, env: Any, eval_env: Any = None,
             step_scorer: StepScorer | None = None, **overrides: Any) -> BSTaR:
        """`Trainer.load`, with the step scorer (not saved: pass the one trained with)."""
        agent = super().load(path, env, eval_env, **overrides)
        agent.step_scorer = step_scorer
        return agent

    def _held_out(self, env: Any, samples: int, progress_bar: bool) -> dict[str, float]:
        """Greedy `accuracy` (Pass@1) and `mean_length`, and with `samples` > 0 the monitors
        (`balance.monitors`) of that many responses per problem at `monitor_temperature`."""
        c = self.config
        result = evaluate(self.policy, env, c.eval_problems, 0, (),
                          max_new_tokens=c.max_new_tokens, stop=c.stop, progress_bar=progress_bar)
        if samples > 0:
            responses = self.sample(self.queries(env, range(c.eval_problems)),
                                    c.monitor_temperature, env, samples)
            result.update(monitors(responses, c.monitor_s))
        return result

    def _progress(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {"T": metrics["temperature"], "tau": metrics["threshold"],
                "bs": f"{metrics['balance_score']:.2f}"}

    def _description(self) -> str:
        return f"B-STaR ({self.config.mode})"

    def _extra_state(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler.state_dict(), "initial_state": self.initial_state,
                "pool_rng": self.rng.bit_generator.state, "history": self.history,
                "iteration": self.iteration}

    def _restore_extra_state(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
        self.initial_state = state["initial_state"]
        self.rng.bit_generator.state = state["pool_rng"]
        self.history = state["history"]
        self.iteration = state["iteration"]

    def _new_schedule(self) -> torch.optim.lr_scheduler.LambdaLR:
        """Linear warm-up, then cosine decay from `lr` to `min_lr` over the schedule's horizon
        (`schedule_steps`, or one iteration in the resetting modes), then flat at `min_lr`."""
        c = self.config
        horizon = (c.steps_per_iteration if c.mode in ("restart", "iterative_rft")
                   else c.schedule_steps)
        floor = c.min_lr / c.lr if c.lr > 0 else 1.0

        def factor(step: int) -> float:
            if step < c.warmup_steps:
                return (step + 1) / c.warmup_steps
            progress = min(1.0, (step - c.warmup_steps) / max(1, horizon - c.warmup_steps))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    def _sft_step(self, generations: Sequence[Generation]) -> dict[str, float]:
        """One optimiser step of token-mean cross-entropy on the generated tokens."""
        c = self.config
        batch = self.policy.batch(generations)
        total = float(batch.completion_mask.sum())
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for i in range(0, len(batch), c.micro_batch_size):
            sub = batch.rows(range(i, min(i + c.micro_batch_size, len(batch))))
            weight = float(sub.completion_mask.sum()) / max(total, 1.0)
            loss = cross_entropy_on(self.policy, sub, sub.completion_mask) * weight
            loss.backward()
            loss_sum += loss.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.policy.model.parameters(),
            c.max_grad_norm if c.max_grad_norm > 0 else float("inf"))
        self.optimizer.step()
        self.scheduler.step()
        return {"sft_loss": loss_sum, "grad_norm": float(grad_norm)}
