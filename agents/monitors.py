"""Monitors shared by all agents: the statistics they log, held-out evaluation, and the
files a run writes (metrics.jsonl, metrics.csv, TensorBoard events when installed, and a
PNG of the training curves at the end of every run)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlvr_gym.agents.policy import Policy, SamplingConfig

RESPONSE_PREFIX_KEY = "response_prefix"
"""`info` key a wrapper sets when the response starts with given text (a SEELE hint, an MRT
prefix). The rule for every env and wrapper: the action continues the observation. A wrapper
that gives a prefix puts it at the end of the observation and under this key; the agent
continues from it, sends only what it generated, and masks the prefix out of the RL loss."""


def split_prefix(observation: str, info: dict[str, Any]) -> tuple[str, str]:
    """(prompt, response prefix) of an observation: the prefix is `info[RESPONSE_PREFIX_KEY]`,
    which must end the observation."""
    prefix = info.get(RESPONSE_PREFIX_KEY, "")
    if not prefix:
        return observation, ""
    if not observation.endswith(prefix):
        raise ValueError(f"info[{RESPONSE_PREFIX_KEY!r}] must end the observation (the action "
                         "continues the observation); the wrapper that set it breaks that rule")
    return observation[: len(observation) - len(prefix)], prefix


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k)
    (Chen et al. 2021, arXiv 2107.03374, eq. 1)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # Product form of the binomial ratio: exact and free of overflow.
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def eff_rate(group_rewards: Iterable[Sequence[float]]) -> float:
    """Eff-Rate: share of groups whose rewards are not all equal (those carry a gradient)."""
    groups = [list(g) for g in group_rewards if len(g) > 0]
    if not groups:
        return 0.0
    return sum(max(g) != min(g) for g in groups) / len(groups)


def evaluate(policy: Policy, env: Any, num_problems: int = 200, samples: int = 8,
             ks: Sequence[int] = (1, 8), temperature: float = 1.0, max_new_tokens: int = 64,
             stop: tuple[str, ...] = ()) -> dict[str, float]:
    """Held-out evaluation on problems 0..num_problems-1 of `env` (pinned by index).

    Returns `accuracy` (greedy decoding), `pass@k` for each k (unbiased, from `samples`
    sampled completions per problem at `temperature`; pass@1 is then the mean sampled
    accuracy) and `mean_length` (generated tokens of the greedy answers).
    """
    prompts, prefixes, indices = [], [], []
    for i in range(num_problems):
        prompt, prefix = split_prefix(*env.reset(options={"index": i}))
        prompts.append(prompt)
        prefixes.append(prefix)
        indices.append(i)

    def correct(gens: Sequence[Any], index_of: Sequence[int]) -> list[bool]:
        results = []
        for g, i in zip(gens, index_of, strict=True):
            env.reset(options={"index": i})
            results.append(env.step(g.text)[4]["verdict"].correct)
        return results

    greedy = policy.generate(prompts, SamplingConfig(0.0, 1.0, max_new_tokens, stop), prefixes)
    metrics = {"accuracy": float(np.mean(correct(greedy, indices))),
               "mean_length": float(np.mean([len(g.completion_ids) for g in greedy]))}
    if samples > 0:
        sampled = policy.generate([p for p in prompts for _ in range(samples)],
                                  SamplingConfig(temperature, 1.0, max_new_tokens, stop),
                                  [x for x in prefixes for _ in range(samples)])
        hits = np.array(correct(sampled, [i for i in indices for _ in range(samples)]))
        counts = hits.reshape(num_problems, samples).sum(1)
        for k in ks:
            if k <= samples:
                metrics[f"pass@{k}"] = float(np.mean([pass_at_k(samples, int(c), k)
                                                      for c in counts]))
    return metrics


class MetricsLogger:
    """Writes one record per `log` call to `metrics.jsonl` (flushed at once, so a crashed run
    keeps its history) and, on `close`, `metrics.csv` and `curves.png`. Mirrors scalars to
    TensorBoard when the `tensorboard` package is installed."""

    def __init__(self, out_dir: str | Path | None, tensorboard: bool = True) -> None:
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.records: list[dict[str, Any]] = []
        self._jsonl = None
        self._tb = None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._jsonl = open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(str(self.out_dir / "tensorboard"))
                except ImportError:
                    self._tb = None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        self.records.append(record)
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(record) + "\n")
            self._jsonl.flush()
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        """Write the CSV and the PNG of the curves; safe to call twice."""
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
            assert self.out_dir is not None
            records = read_jsonl(self.out_dir / "metrics.jsonl")
            write_csv(records, self.out_dir / "metrics.csv")
            plot_curves(records, self.out_dir / "curves.png")
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_csv(records: Sequence[dict[str, Any]], path: str | Path) -> None:
    columns: list[str] = []
    for r in records:
        columns += [k for k in r if k not in columns]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(records)


#: curves drawn when present, in this order; held-out metrics are drawn as points
CURVES = ("reward", "eval/accuracy", "eval/pass@1", "eff_rate", "entropy", "response_length",
          "clip_frac_low", "clip_frac_high", "kl", "grad_norm")


def plot_curves(records: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Draw every known metric against the step into one PNG; None if nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    present = [k for k in CURVES if any(r.get(k) is not None for r in records)]
    if not present:
        return None
    cols = min(3, len(present))
    rows = math.ceil(len(present) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, present, strict=False):
        xs = [r["step"] for r in records if r.get(key) is not None]
        ys = [r[key] for r in records if r.get(key) is not None]
        ax.plot(xs, ys, marker="o" if key.startswith("eval/") or len(xs) < 3 else None,
                markersize=3, linewidth=1)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


class RunBookkeeping:
    """What every agent shares around its training loop: seeding the training env's problem
    draws once, recording held-out evaluations in `eval_history` (with their `step`), and the
    random states an exact resume needs.

    The agent provides `env`, `config.seed`, `num_steps`, `eval_history`, `_env_seeded` and an
    `evaluate()` that returns a dict of held-out metrics.
    """

    env: Any
    eval_env: Any
    config: Any
    num_steps: int
    eval_history: list[dict[str, float]]
    _env_seeded: bool
    evaluate: Callable[[], dict[str, float]]

    def _training_loop(self, iterations: int, step: Callable[[], dict[str, Any]], desc: str,
                       progress: Callable[[dict[str, Any]], dict[str, Any]],
                       counter: Callable[[], int],
                       callback: Callable[[Any, dict[str, Any]], Any] | None,
                       progress_bar: bool) -> None:
        """The loop every agent's `learn` runs: held-out evaluation before and after (and
        every `config.eval_every` counts of `counter()`), `step()` per iteration, metrics to
        `config.output_dir`, `progress(metrics)` on the progress bar, and a `callback(agent,
        metrics)` that stops training by returning False."""
        from tqdm.auto import tqdm

        logger = MetricsLogger(self.config.output_dir)
        try:
            if self.eval_env is not None and not self._evaluated_now():
                logger.log(self.num_steps, self._evaluate(progress_bar))
            bar = tqdm(range(iterations), desc=desc, disable=not progress_bar)
            for _ in bar:
                metrics = step()
                if (self.eval_env is not None and self.config.eval_every
                        and counter() % self.config.eval_every == 0):
                    metrics.update(self._evaluate(progress_bar))
                logger.log(self.num_steps, metrics)
                bar.set_postfix(**progress(metrics))
                if callback is not None and callback(self, metrics) is False:
                    break
            if self.eval_env is not None and not self._evaluated_now():
                logger.log(self.num_steps, self._evaluate(progress_bar))
        finally:
            logger.close()

    def _random_state(self) -> dict[str, Any]:
        """The random states of torch (and CUDA), numpy, `random` and the env's problem draws."""
        import random

        import torch

        return {"torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy_rng": np.random.get_state(), "python_rng": random.getstate(),
                "env_rng": self.env.unwrapped.np_random.bit_generator.state
                if self._env_seeded else None}

    def _restore_random_state(self, state: dict[str, Any]) -> None:
        """Inverse of `_random_state` (extra keys in `state` are ignored)."""
        import random

        import torch

        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        if state["env_rng"] is not None:
            self._seed_env()
            self.env.unwrapped.np_random.bit_generator.state = state["env_rng"]

    def _seed_env(self) -> None:
        if not self._env_seeded:
            self.env.reset(seed=self.config.seed)
            self._env_seeded = True

    def _evaluated_now(self) -> bool:
        return bool(self.eval_history) and self.eval_history[-1]["step"] == self.num_steps

    def _evaluate(self, progress_bar: bool = False) -> dict[str, float]:
        result = self.evaluate()
        self.eval_history.append({"step": self.num_steps, **result})
        if progress_bar:
            from tqdm.auto import tqdm

            tqdm.write(f"step {self.num_steps} held-out: " + "  ".join(
                f"{k} {v:.3f}" for k, v in result.items()))
        return {f"eval/{k}": v for k, v in result.items()}
