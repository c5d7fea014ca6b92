"""Monitors shared by all agents: the statistics they log, held-out evaluation, and the
files a run writes (metrics.jsonl, metrics.csv, TensorBoard events when installed, a PNG of
the training curves at the end of every `learn`, and the agent's checkpoint `agent/`).

A run directory belongs to one run: a new agent refuses a directory that holds another run's
files (`holds_run`), and an agent loaded from a checkpoint continues the run it came from.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import FrameType
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
             stop: tuple[str, ...] = (), progress_bar: bool = False) -> dict[str, float]:
    """Held-out evaluation on problems 0..num_problems-1 of `env` (pinned by index).

    Returns `accuracy` (greedy decoding), `pass@k` for each k (unbiased, from `samples`
    sampled completions per problem at `temperature`; pass@1 is then the mean sampled
    accuracy) and `mean_length` (generated tokens of the greedy answers). `progress_bar`
    shows the generations done (the results are the same with or without it).
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

    from tqdm.auto import tqdm

    bar = tqdm(total=num_problems * (1 + samples), desc="held-out", unit="gen", leave=False,
               disable=not progress_bar)
    with bar:
        greedy = _generate_counted(policy, prompts, SamplingConfig(0.0, 1.0, max_new_tokens, stop),
                                   prefixes, bar)
        sampled = _generate_counted(policy, [p for p in prompts for _ in range(samples)],
                                    SamplingConfig(temperature, 1.0, max_new_tokens, stop),
                                    [x for x in prefixes for _ in range(samples)], bar)
    metrics = {"accuracy": float(np.mean(correct(greedy, indices))),
               "mean_length": float(np.mean([len(g.completion_ids) for g in greedy]))}
    if samples > 0:
        hits = np.array(correct(sampled, [i for i in indices for _ in range(samples)]))
        counts = hits.reshape(num_problems, samples).sum(1)
        for k in ks:
            if k <= samples:
                metrics[f"pass@{k}"] = float(np.mean([pass_at_k(samples, int(c), k)
                                                      for c in counts]))
    return metrics


def _generate_counted(policy: Policy, prompts: Sequence[str], sampling: SamplingConfig,
                      prefixes: Sequence[str], bar: Any) -> list[Any]:
    """`policy.generate`, called in chunks of the backend's own generation batch so that the
    progress bar advances per batch: the batches, and so the random draws, are the ones a
    single call makes. A backend without a batch size (vLLM schedules its own) gets one call."""
    if not prompts:
        return []
    chunk = getattr(getattr(policy, "backend", None), "batch_size", None) or len(prompts)
    out: list[Any] = []
    for start in range(0, len(prompts), chunk):
        batch = policy.generate(prompts[start:start + chunk], sampling,
                                prefixes[start:start + chunk])
        out += batch
        bar.update(len(batch))
    return out


RUN_FILES = ("metrics.jsonl", "summary.json", "agent")
"""Files whose presence makes a directory a run's (see `holds_run`)."""


def holds_run(directory: str | Path) -> bool:
    """Whether `directory` holds a run's files (metrics.jsonl, summary.json or a saved agent):
    a new run may not write there."""
    return any((Path(directory) / name).exists() for name in RUN_FILES)


def fresh_run_dir(base: str | Path) -> Path:
    """`base`, or when it holds a run the first free `BASE-2`, `BASE-3`, ...: the directory of
    a new run that keeps earlier runs of the same command beside it."""
    base = Path(base)
    path, number = base, 1
    while holds_run(path):
        number += 1
        path = base.with_name(f"{base.name}-{number}")
    return path


class RunExistsError(ValueError):
    """A new run was pointed at a directory that holds another run. One line with the fix."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped `learn` after a complete step; the agent was saved first.

    Attributes:
        step: the agent's `num_steps` when it stopped.
        checkpoint: where the agent was saved (None without an output directory).
    """

    def __init__(self, step: int, checkpoint: Path | None) -> None:
        where = f"agent saved to {checkpoint}" if checkpoint else \
            "nothing saved (no output_dir)"
        super().__init__(f"training interrupted at step {step}; {where}")
        self.step = step
        self.checkpoint = checkpoint


class MetricsLogger:
    """Writes one record per `log` call to `metrics.jsonl` (flushed at once, so a crashed run
    keeps its history) and, on `close`, `metrics.csv` and `curves.png` (titled `title`).
    Mirrors scalars to TensorBoard when the `tensorboard` package is installed.

    `continue_from=None` starts a new run: a directory that already `holds_run` raises
    `RunExistsError`. `continue_from=step` continues the run in `out_dir` from `step`: records
    after `step` (from a continuation whose checkpoint was never saved) are dropped, so that
    no step is logged twice.
    """

    def __init__(self, out_dir: str | Path | None, tensorboard: bool = True, *,
                 continue_from: int | None = None, title: str = "") -> None:
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.title = title
        self.records: list[dict[str, Any]] = []
        self._jsonl = None
        self._tb = None
        if self.out_dir is not None:
            path = self.out_dir / "metrics.jsonl"
            if continue_from is None and holds_run(self.out_dir):
                raise RunExistsError(
                    f"{self.out_dir} holds another run's files; give a new output directory, "
                    "or load that run's agent (its agent/ checkpoint) to continue it")
            if continue_from is not None and path.exists():
                _truncate_after(path, continue_from)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._jsonl = open(path, "a", encoding="utf-8")  # noqa: SIM115
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    # purge_step hides events after the resumed step from earlier writers
                    self._tb = SummaryWriter(str(self.out_dir / "tensorboard"),
                                             purge_step=continue_from)
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
            plot_curves(records, self.out_dir / "curves.png", self.title)
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _truncate_after(path: Path, step: int) -> None:
    """Drop the records of `path` after `step` (replacing the file atomically), with a warning
    that says how many."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    if len(kept) == len(lines):
        return
    warnings.warn(f"{path}: dropped {len(lines) - len(kept)} records after step {step}, "
                  "logged by a continuation of this run that was not saved", stacklevel=3)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    os.replace(tmp, path)


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


def plot_curves(records: Sequence[dict[str, Any]], path: str | Path, title: str = ""
                ) -> Path | None:
    """Draw every known metric against the step into one PNG under `title`; None if nothing
    to draw."""
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
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


class _StopOnInterrupt:
    """While active (in the main thread), the first Ctrl-C (SIGINT) only sets `requested`, so
    that training stops after a complete step; a second one interrupts at once. A process that
    ignores SIGINT keeps ignoring it."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not signal.SIG_IGN:
                self._previous = previous if previous is not None else signal.SIG_DFL
                signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)
        from tqdm.auto import tqdm

        tqdm.write("interrupt: stopping after this step and saving the agent (Ctrl-C again "
                   "to quit at once without saving)", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class RunBookkeeping:
    """What every agent shares around its training loop: seeding the training env's problem
    draws once, recording held-out evaluations in `eval_history` (with their `step`), the
    random states an exact resume needs, and the run directory `config.output_dir` (metrics,
    curves and the checkpoint `agent/`, saved every `config.save_every` counts, at the end of
    `learn` and on Ctrl-C).

    The agent provides `env`, `eval_env`, `config` (with `seed`, `output_dir`, `eval_every`,
    `greedy_eval_every` and `save_every`), `num_steps`, `eval_history`, `_env_seeded`,
    `save(path)` and `evaluate(samples=None, progress_bar=False)` returning a dict of held-out
    metrics (`samples=0`: greedy accuracy only).
    """

    env: Any
    eval_env: Any
    config: Any
    num_steps: int
    eval_history: list[dict[str, float]]
    _env_seeded: bool
    evaluate: Callable[..., dict[str, float]]
    save: Callable[[str | Path], Path]

    @property
    def checkpoint_dir(self) -> Path | None:
        """Where `learn` saves the agent: `output_dir/agent` (None without an output_dir)."""
        out = self.config.output_dir
        return Path(out) / "agent" if out is not None else None

    def _training_loop(self, iterations: int, step: Callable[[], dict[str, Any]], desc: str,
                       progress: Callable[[dict[str, Any]], dict[str, Any]],
                       counter: Callable[[], int],
                       callback: Callable[[Any, dict[str, Any]], Any] | None,
                       progress_bar: bool) -> None:
        """The loop every agent's `learn` runs: held-out evaluation before and after (and
        every `config.eval_every` counts of `counter()`, with greedy-only ones every
        `config.greedy_eval_every`), `step()` per iteration, metrics to `config.output_dir`,
        `progress(metrics)` on the progress bar, and a `callback(agent, metrics)` that stops
        training by returning False.

        With an output_dir the agent is saved to `checkpoint_dir` every `config.save_every`
        counts and at the end. Ctrl-C stops after the current step, saves, and raises
        `TrainingInterrupted`. A new agent (no step, no evaluation yet) refuses an output_dir
        that holds another run (`RunExistsError`); an agent with steps continues the run there.
        """
        from tqdm.auto import tqdm

        c = self.config
        fresh = self.num_steps == 0 and not self.eval_history
        logger = MetricsLogger(c.output_dir, continue_from=None if fresh else self.num_steps,
                               title=self._run_title())
        with _StopOnInterrupt() as stop:
            try:
                if self.eval_env is not None and not self._evaluated_now():
                    logger.log(self.num_steps, self._evaluate(progress_bar))
                bar = tqdm(range(iterations), desc=desc, disable=not progress_bar)
                for i in bar:
                    if stop.requested:
                        break
                    metrics = step()
                    count, last = counter(), i == iterations - 1
                    if self.eval_env is not None and c.eval_every and count % c.eval_every == 0:
                        metrics.update(self._evaluate(progress_bar))
                    elif (self.eval_env is not None and c.greedy_eval_every and not last
                          and count % c.greedy_eval_every == 0):
                        metrics.update(self._evaluate(progress_bar, greedy_only=True))
                    logger.log(self.num_steps, metrics)
                    bar.set_postfix(**progress(metrics))
                    if c.save_every and count % c.save_every == 0 and not last:
                        self._save_to_run()
                    if callback is not None and callback(self, metrics) is False:
                        break
                if stop.requested:
                    raise TrainingInterrupted(self.num_steps, self._save_to_run())
                if self.eval_env is not None and not self._evaluated_now():
                    logger.log(self.num_steps, self._evaluate(progress_bar))
                self._save_to_run()
            finally:
                logger.close()

    def _save_to_run(self) -> Path | None:
        """Save the agent to `checkpoint_dir` (atomically); None without an output_dir."""
        path = self.checkpoint_dir
        return self.save(path) if path is not None else None

    def _run_title(self) -> str:
        """Title of the curves: run name, agent class and env id."""
        record = self._env_record()
        env = record["id"] if record else type(self.env.unwrapped).__name__
        name = Path(self.config.output_dir).name if self.config.output_dir else "run"
        return f"{name}: {type(self).__name__} on {env}"

    def _env_record(self) -> dict[str, Any] | None:
        """The training env as `{"id", "kwargs"}` (the kwargs given to `gym.make` besides the
        registered ones), or None when it was not made by id or its kwargs are not JSON."""
        import gymnasium as gym

        spec = getattr(self.env.unwrapped, "spec", None)
        if spec is None:
            return None
        try:
            registered = gym.spec(spec.id).kwargs
        except gym.error.Error:
            registered = {}
        kwargs = {k: v for k, v in spec.kwargs.items()
                  if k not in registered or registered[k] != v}
        try:
            json.dumps(kwargs)
        except (TypeError, ValueError):
            return None
        return {"id": spec.id, "kwargs": kwargs}

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

    def _evaluate(self, progress_bar: bool = False, greedy_only: bool = False
                  ) -> dict[str, float]:
        """A held-out evaluation as `eval/...` metrics. A full one is recorded in
        `eval_history`; a `greedy_only` one (accuracy without pass@k) only in the metrics."""
        result = self.evaluate(samples=0 if greedy_only else None, progress_bar=progress_bar)
        if not greedy_only:
            self.eval_history.append({"step": self.num_steps, **result})
        if progress_bar:
            from tqdm.auto import tqdm

            tqdm.write(f"step {self.num_steps} held-out: " + "  ".join(
                f"{k} {v:.3f}" for k, v in result.items()))
        return {f"eval/{k}": v for k, v in result.items()}
