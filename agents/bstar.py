"""B-STaR: online rejection fine-tuning that balances exploration and exploitation
(Zeng et al., arXiv 2412.17256, ICLR 2025; docs/algorithms.md, B-STaR).

Read top to bottom: the config, then the agent with the stable-baselines3 shape
`BSTaR(policy, env, config).learn(total_steps)`. One iteration (the paper's Algorithm 1):

1. sample K responses per query of a fixed small subset of training queries with the current
   policy P_{i-1}, at every temperature of the grid, and score them;
2. pick (T_i, tau_i) = argmax_{T, tau} BS, the balance score (`balance.search_balance`)
       bs_x = min(n'_x / n*, 1) * n'_x / n_x,   BS = mean_x bs_x,   n* = ceil(N / M)
   with n_x the distinct responses of query x that the threshold keeps (reward > tau) and n'_x
   the distinct correct ones among them;
3. sample K responses for M fresh queries at T_i, score, keep reward > tau_i (deduplicated);
4. fine-tune for a fixed number of steps on what was kept, continuing the optimiser and the
   learning-rate schedule (Algorithm 1 line 18).

Reward: r = 1(answer correct), plus, with `step_scorer=True`, the minimum step score
of `ArithmeticStepScorer` in [-1, 1] (a process-reward-model stand-in whose noise lets
selection be fooled), so r lies in [-1, 2].

The baselines of the paper's Table 1 are modes of the same loop (`mode`): online RFT with a
fixed (T, tau) inherits weights, optimiser and schedule; iterative RFT inherits the weights
only; restart (STaR / ReST-EM) fine-tunes the initial model again every iteration on data
sampled by the latest one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
from rlvr_gym.agents.checkpoint import Checkpoint, CheckpointContent, save_checkpoint
from rlvr_gym.agents.grpo import GRPOConfig, _Mean, _seed_everything
from rlvr_gym.agents.monitors import RunBookkeeping, evaluate, split_prefix
from rlvr_gym.agents.policy import (
    Generation,
    Policy,
    SamplingConfig,
    as_policy,
    cross_entropy_on,
)
from rlvr_gym.verifiers.steps import ArithmeticStepScorer

Mode = Literal["bstar", "online_rft", "iterative_rft", "restart"]
MODES = ("bstar", "online_rft", "iterative_rft", "restart")


def _mean_or_nan(values: Sequence[float]) -> float:
    """Mean, or NaN for no values (logged as null, never as a misleading 0)."""
    return float(np.mean(values)) if len(values) else float("nan")


def _grid(start: float, stop: float, step: float) -> tuple[float, ...]:
    return tuple(round(start + i * step, 4) for i in range(round((stop - start) / step) + 1))


@dataclass
class BSTaRConfig:
    """Hyper-parameters of B-STaR and its baselines. Defaults suit the bundled tiny model on a
    CPU; the comments give the paper's values (Mistral-7B on MATH)."""

    mode: Mode = "bstar"
    """'bstar': search (T, tau) every iteration; 'online_rft': fixed (temperature, threshold),
    inherit weights, optimiser and schedule; 'iterative_rft': fixed, inherit weights only
    (fresh optimiser and schedule per iteration); 'restart': fixed, fine-tune the initial
    model again every iteration (STaR / ReST-EM)."""
    queries_per_iteration: int = 64
    """Fresh training queries sampled per iteration, M (paper: 11,500)."""
    samples_per_query: int = 8
    """Responses per query, K, for the training pool, the search and the monitors (paper: 64;
    monitors in the case study: 32)."""
    temperature: float = 1.0
    """Sampling temperature of the fixed-configuration modes (paper's online RFT: 1.0)."""
    threshold: float = 0.0
    """Reward threshold tau of the fixed modes; responses with reward > tau are kept (paper's
    online RFT: 0.0)."""
    temperature_grid: tuple[float, ...] = _grid(0.5, 1.2, 0.1)
    """Temperatures B-STaR searches (paper: 0.5 to 1.2 in steps of 0.1)."""
    threshold_grid: tuple[float, ...] = _grid(-1.0, 1.0, 0.1)
    """Thresholds B-STaR searches (paper: -1.0 to 1.0 in steps of 0.1)."""
    search_queries: int = 32
    """Size of the fixed subset of training queries (indices 0..n-1 of the training env) used
    by the search and the per-iteration monitors (paper: 600)."""
    monitor_temperature: float = 1.0
    """Temperature of the per-iteration monitors, the same for every mode so that curves
    compare (paper's case study: 1.0)."""
    monitor_s: int = 2
    """S of Pass@K-S and Reward@K-S (paper: 4 with K = 32)."""
    n_star: int = 0
    """n* of the balance score; 0 means ceil(N / M) with N = steps_per_iteration x batch_size,
    the samples one iteration fine-tunes on (paper: ceil(67,500 / 11,500) = 6; code: 8)."""
    step_scorer: bool = True
    """Add the arithmetic step score (minimum over `a op b = c` lines, in [-1, 1]) to the
    answer reward, standing in for the paper's PRM; False: answer-only reward."""
    step_noise: float = 0.5
    """Standard deviation of the step scorer's deterministic noise (0: exact checker)."""
    top_p: float = 1.0
    """Nucleus sampling mass of every sampling pass."""
    max_new_tokens: int = 40
    """Most generated tokens per response."""
    stop: tuple[str, ...] = ()
    """Extra stop strings (the end-of-sequence token always stops)."""
    steps_per_iteration: int = 10
    """Optimiser steps of fine-tuning per iteration (paper: 500)."""
    batch_size: int = 32
    """Responses per optimiser step, drawn from the iteration's pool without replacement and
    reshuffled when it runs out (paper: 128)."""
    micro_batch_size: int = 64
    """Responses per forward/backward; gradients accumulate over a step's micro-batches."""
    lr: float = 1e-4
    """Peak AdamW learning rate (paper: 4.12e-6 for Mistral-7B). The tiny model was
    pre-trained at 1e-3; GRPO collapses it above 3e-4."""
    min_lr: float = 1e-5
    """Learning rate at the end of the cosine decay (paper code: 2e-7)."""
    warmup_steps: int = 2
    """Linear warm-up steps at the start of a schedule."""
    schedule_steps: int = 100
    """Length of the cosine schedule in optimiser steps for the online modes, which run one
    schedule across all iterations (set it to the planned total). The modes that reset the
    optimiser run one whole schedule of `steps_per_iteration` steps per iteration."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_betas: tuple[float, float] = (0.9, 0.99)
    """AdamW betas."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables)."""
    eval_every: int = 0
    """Held-out evaluation every this many iterations (0: only at the start and end of
    `learn`)."""
    greedy_eval_every: int = 0
    """Greedy held-out accuracy alone (no sampled monitors) every this many iterations, for
    the curves between full evaluations (0: none)."""
    eval_problems: int = 200
    """Held-out problems per evaluation."""
    eval_samples: int = 8
    """Sampled responses per held-out problem at `monitor_temperature` for the held-out
    monitors (Pass@K, Pass@K-S, diversity); 0: greedy accuracy only."""
    seed: int = 0
    """Seeds torch, numpy, random, the env's query draws and the step scorer's noise."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu', 'cuda', ..."""
    dtype: str = "auto"
    """Compute dtype: 'auto' (bf16 autocast on a GPU that supports it, else fp32), 'float32'
    or 'bfloat16'. Weights and optimiser state stay fp32."""
    output_dir: str | None = None
    """The run directory: metrics.jsonl / metrics.csv / curves.png and the saved agent
    (`agent/`) go there (None: nowhere). A new agent refuses one that holds another run."""
    save_every: int = 1
    """Save the agent to `output_dir`/agent every this many iterations (0: never in between);
    it is also saved at the end of `learn` and when Ctrl-C stops it. Needs `output_dir`."""

    field_help = classmethod(  # type: ignore[var-annotated]
        GRPOConfig.field_help.__func__)  # type: ignore[attr-defined]

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in ("queries_per_iteration", "samples_per_query", "search_queries",
                     "monitor_s", "max_new_tokens", "steps_per_iteration", "batch_size",
                     "micro_batch_size", "schedule_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")
        for name in ("eval_every", "greedy_eval_every", "save_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 turns it off), got "
                                 f"{getattr(self, name)}")
        if self.n_star < 0:
            raise ValueError(f"n_star must be >= 0 (0: ceil(N / M)), got {self.n_star}")
        self.temperature_grid = tuple(float(t) for t in self.temperature_grid)
        self.threshold_grid = tuple(float(t) for t in self.threshold_grid)
        if self.mode == "bstar" and not (self.temperature_grid and self.threshold_grid):
            raise ValueError("mode='bstar' needs a non-empty temperature_grid and threshold_grid")
        for t in (self.temperature, self.monitor_temperature, *self.temperature_grid):
            if t <= 0:
                raise ValueError(f"temperatures must be > 0 (rejection sampling needs several "
                                 f"distinct responses), got {t}")
        self.stop = tuple(self.stop)
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]

    def balance_n_star(self) -> int:
        """The n* in use: `n_star`, or ceil(N / M) with N the samples fine-tuned on per
        iteration and M the queries per iteration (docs/algorithms.md, B-STaR)."""
        return self.n_star or n_star_for(self.steps_per_iteration * self.batch_size,
                                         self.queries_per_iteration)

    def sampling(self, temperature: float) -> SamplingConfig:
        return SamplingConfig(temperature, self.top_p, self.max_new_tokens, self.stop)


@dataclass(frozen=True)
class Query:
    """A training or held-out problem: its id, the prompt and the response prefix a wrapper
    may have given (the action continues the observation)."""

    problem_id: str
    prompt: str
    prefix: str


@dataclass(frozen=True, eq=False)
class ScoredResponse(Sample):
    """A `Sample` (query = problem id, text = generated text) with the sampled tokens, which
    fine-tuning reuses as they were generated (never re-tokenised)."""

    generation: Generation


Callback = Callable[["BSTaR", dict[str, Any]], "bool | None"]


class BSTaR(RunBookkeeping):
    """B-STaR (and its baselines, see `BSTaRConfig.mode`) against a rlvr-gym env.

    Args:
        policy: a `Policy`, or a path of a local Hugging Face model directory.
        env: the training env; queries are drawn with `reset()` and pinned with
            `reset(options={"problem_id": ...})` to score each response through `step`.
        config: a `BSTaRConfig`.
        eval_env: optional held-out env (e.g. the same task with dataset `seed=1`), evaluated
            at the start and end of `learn` and every `config.eval_every` iterations.

    `history` holds one record per iteration: the chosen temperature and threshold, the
    balance score, the monitors of the subset (measured on the policy that the iteration
    starts from), the pool statistics and the fine-tuning loss.
    """

    def __init__(self, policy: Policy | str | Path, env: Any, config: BSTaRConfig | None = None,
                 eval_env: Any = None) -> None:
        self.config = config or BSTaRConfig()
        _seed_everything(self.config.seed)
        self.policy = as_policy(policy, self.config.device, self.config.dtype)
        self.env = env
        self.eval_env = eval_env
        self.scorer = (ArithmeticStepScorer(self.config.step_noise, self.config.seed)
                       if self.config.step_scorer else None)
        self.initial_state: dict[str, torch.Tensor] | None = None
        """CPU copy of the initial weights (restart mode only)."""
        if self.config.mode == "restart":
            self.initial_state = {k: v.detach().cpu().clone()
                                  for k, v in self.policy.model.state_dict().items()}
        self.optimizer, self.scheduler = self._new_optimizer()
        self.rng = np.random.default_rng(self.config.seed)
        """Orders the fine-tuning pool."""
        self.num_steps = 0
        """Optimiser-step budget used: iterations x steps_per_iteration (the paper's "step")."""
        self.iteration = 0
        self.history: list[dict[str, Any]] = []
        self.eval_history: list[dict[str, float]] = []
        """Held-out results of `learn`, each with its `step`."""
        self._env_seeded = False

    # -- public API --

    def learn(self, total_steps: int, callback: Callback | None = None,
              progress_bar: bool = True) -> BSTaR:
        """Run ceil(total_steps / steps_per_iteration) more iterations.

        `callback(agent, metrics)` runs after every iteration; returning False stops.
        Metrics go to `config.output_dir` (JSONL, CSV, PNG of the curves at the end), and the
        agent to its `agent/` every `config.save_every` iterations and at the end. Ctrl-C stops
        after the current iteration, saves, and raises `TrainingInterrupted`; a new agent
        refuses an output_dir that holds another run (`RunExistsError`).
        """
        self._training_loop(
            math.ceil(total_steps / self.config.steps_per_iteration), self.train_iteration,
            f"B-STaR ({self.config.mode})",
            lambda m: {"T": m["temperature"], "tau": m["threshold"],
                       "bs": f"{m['balance_score']:.2f}"},
            lambda: self.iteration, callback, progress_bar)
        return self

    def train_iteration(self) -> dict[str, Any]:
        """One iteration of Algorithm 1: monitor and choose (T, tau) on the subset, sample and
        select the training pool, fine-tune. Returns the iteration's metrics."""
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

        responses = self.sample(self._draw_queries(c.queries_per_iteration), temperature)
        pool = self.training_pool(responses, threshold)
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

    def queries(self, env: Any, indices: Sequence[int] | range) -> list[Query]:
        """The problems of `env` at these dataset indices."""
        out = []
        for i in indices:
            observation, info = env.reset(options={"index": int(i)})
            out.append(Query(info["problem_id"], *split_prefix(observation, info)))
        return out

    def sample(self, queries: Sequence[Query], temperature: float, env: Any = None,
               k: int | None = None) -> list[ScoredResponse]:
        """k (default `samples_per_query`) responses per query at `temperature`, scored on
        `env` (default: the training env): reward = 1(correct) [+ step score of prefix + text].
        Responses whose verdict is unusable (a verifier error or timeout) are dropped, never
        scored as wrong."""
        c = self.config
        env = env if env is not None else self.env
        k = k or c.samples_per_query
        gens = self.policy.generate([q.prompt for q in queries for _ in range(k)],
                                    c.sampling(temperature),
                                    [q.prefix for q in queries for _ in range(k)])
        out = []
        for i, g in enumerate(gens):
            query = queries[i // k]
            env.reset(options={"problem_id": query.problem_id})
            _, reward, _, _, info = env.step(g.text)  # the action continues the observation
            verdict = info.get("verdict")
            if verdict is not None and not verdict.usable:
                continue
            correct = verdict.correct if verdict is not None else float(reward) >= 1
            value = float(correct) + (self.scorer(g.response) if self.scorer else 0.0)
            out.append(ScoredResponse(query.problem_id, g.text, correct, value, g))
        return out

    @staticmethod
    def training_pool(responses: Sequence[ScoredResponse], threshold: float
                      ) -> list[ScoredResponse]:
        """What rejection fine-tuning trains on: responses with reward > threshold, one per
        distinct (query, text) as in the official code's selection."""
        return unique_responses(select(responses, threshold))  # type: ignore[return-value]

    def fine_tune(self, pool: Sequence[ScoredResponse]) -> dict[str, float]:
        """`steps_per_iteration` supervised steps on the pool (cross-entropy on the generated
        tokens). Restart mode first restores the initial weights; restart and iterative RFT
        start a fresh optimiser and schedule; the online modes continue both."""
        c = self.config
        if c.mode == "restart":
            assert self.initial_state is not None
            self.policy.model.load_state_dict(self.initial_state)
        if c.mode in ("restart", "iterative_rft"):
            self.optimizer, self.scheduler = self._new_optimizer()
        if not pool:
            self.policy.backend.sync_weights()
            return {"skipped_update": 1}
        stats = _Mean()
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

    def predict(self, observation: str | Sequence[str], deterministic: bool = True,
                response_prefix: str = "") -> tuple[str | list[str], None]:
        """Respond to one observation (or a list): greedy when `deterministic`, else sampled at
        `monitor_temperature`. Returns `(response, None)` like stable-baselines3."""
        single = isinstance(observation, str)
        prompts = [observation] if isinstance(observation, str) else list(observation)
        sampling = self.config.sampling(0.0 if deterministic else self.config.monitor_temperature)
        gens = self.policy.generate(prompts, sampling, [response_prefix] * len(prompts))
        responses = [g.response for g in gens]
        return (responses[0] if single else responses), None

    def evaluate(self, env: Any = None, samples: int | None = None,
                 progress_bar: bool = False) -> dict[str, float]:
        """Held-out metrics on `env` or the agent's `eval_env`: greedy `accuracy` (Pass@1) and
        `mean_length`, and with `samples` (default `eval_samples`) > 0 the monitors of that
        many responses per problem at `monitor_temperature` (Pass@K, Pass@K-S, Best-of-K,
        Reward@K-S, distinct equations, sample accuracy). `progress_bar` shows the greedy
        pass. Runs on its own fixed random stream, so evaluating never changes training."""
        env = env if env is not None else self.eval_env
        if env is None:
            raise ValueError("no env to evaluate on: pass one or give BSTaR an eval_env")
        c = self.config
        samples = c.eval_samples if samples is None else samples
        devices = [self.policy.device] if self.policy.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(c.seed + 1_000_003)
            result = evaluate(self.policy, env, c.eval_problems, 0, (),
                              max_new_tokens=c.max_new_tokens, stop=c.stop,
                              progress_bar=progress_bar)
            if samples > 0:
                responses = self.sample(self.queries(env, range(c.eval_problems)),
                                        c.monitor_temperature, env, samples)
                result.update(monitors(responses, c.monitor_s))
        return result

    def save(self, path: str | Path) -> Path:
        """Save everything an exact resume needs: weights (and the initial weights in restart
        mode), optimiser and schedule state, counters, history, config and the random states
        of torch, numpy, random, the pool order and the env.

        Atomic (see `rlvr_gym.agents.checkpoint`): an interrupted save leaves the previous
        checkpoint at `path` intact."""
        return save_checkpoint(path, CheckpointContent(
            agent=type(self).__name__, step=self.num_steps, config=self.config,
            counters={"iteration": self.iteration},
            state={"optimizer": self.optimizer.state_dict(),
                   "scheduler": self.scheduler.state_dict(),
                   "initial_state": self.initial_state, "pool_rng": self.rng.bit_generator.state,
                   "history": self.history, "eval_history": self.eval_history,
                   **self._random_state()},
            models={"policy": [self.policy.model, self.policy.tokenizer]},
            env=self._env_record()))

    @classmethod
    def load(cls, path: str | Path, env: Any, eval_env: Any = None, **overrides: Any) -> BSTaR:
        """Restore an agent saved with `save`; `learn` then continues exactly where it stopped.

        `overrides` replace config fields (e.g. `device="cpu"`, `output_dir=...`). Raises
        `CheckpointError` (a ValueError naming the file) for a missing, corrupt or
        inconsistent part."""
        checkpoint = Checkpoint(path)
        config = checkpoint.config(BSTaRConfig, overrides)
        iteration = checkpoint.counter("iteration")
        state = checkpoint.state("optimizer", "scheduler", "initial_state", "pool_rng",
                                 "history", "eval_history")
        agent = cls(checkpoint.policy(config.device, config.dtype), env, config, eval_env)
        agent.optimizer.load_state_dict(state["optimizer"])
        agent.scheduler.load_state_dict(state["scheduler"])
        agent.initial_state = state["initial_state"]
        agent.rng.bit_generator.state = state["pool_rng"]
        agent.num_steps = checkpoint.step
        agent.iteration = iteration
        agent.history = state["history"]
        agent.eval_history = state["eval_history"]
        agent._restore_random_state(state)
        return agent

    # -- helpers --

    def _new_optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        """AdamW with linear warm-up then cosine decay from `lr` to `min_lr` over the schedule
        (`schedule_steps` for the online modes, one iteration for the resetting ones), flat at
        `min_lr` afterwards."""
        c = self.config
        optimizer = torch.optim.AdamW(self.policy.model.parameters(), lr=c.lr,
                                      betas=c.adam_betas, weight_decay=c.weight_decay)
        horizon = (c.steps_per_iteration if c.mode in ("restart", "iterative_rft")
                   else c.schedule_steps)
        floor = c.min_lr / c.lr if c.lr > 0 else 1.0

        def factor(step: int) -> float:
            if step < c.warmup_steps:
                return (step + 1) / c.warmup_steps
            progress = min(1.0, (step - c.warmup_steps) / max(1, horizon - c.warmup_steps))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def _sft_step(self, generations: Sequence[Generation]) -> dict[str, float]:
        """One optimiser step of token-mean cross-entropy on the generated tokens, accumulated
        over micro-batches (each weighted by its share of the step's tokens)."""
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

    def _draw_queries(self, n: int) -> list[Query]:
        self._seed_env()
        out = []
        for _ in range(n):
            observation, info = self.env.reset()
            out.append(Query(info["problem_id"], *split_prefix(observation, info)))
        return out


