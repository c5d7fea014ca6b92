"""Monitors shared by all agents: the statistics they log and the files a run writes
(`MetricsLogger`: metrics files, TensorBoard events when tensorboard is installed, the
optional Weights & Biases mirror). A run directory belongs to one run: a new agent refuses one
that holds another run's files (`holds_run`), and an agent loaded from a checkpoint continues
its run.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


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


RUN_FILES = ("metrics.jsonl", "summary.json", "agent")
"""Files whose presence makes a directory a run's (see `holds_run`)."""


def holds_run(directory: str | Path) -> bool:
    """Whether `directory` holds a run's files (`RUN_FILES`): a new run may not write there."""
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
    """Ctrl-C (SIGINT) stopped `learn` after a complete step, at `step`, and the agent was
    saved first to `checkpoint` (None without an output directory)."""

    def __init__(self, step: int, checkpoint: Path | None) -> None:
        where = f"agent saved to {checkpoint}" if checkpoint else \
            "nothing saved (no output_dir)"
        super().__init__(f"training interrupted at step {step}; {where}")
        self.step = step
        self.checkpoint = checkpoint


class MetricsLogger:
    """Writes one record per `log` call to `metrics.jsonl` (flushed at once, so a crashed run
    keeps its history) and, on `close`, `metrics.csv` and `curves.png` (titled `title`);
    mirrors the numbers to TensorBoard (`out_dir/tensorboard/`) when `tensorboard` is on and
    installed, and to the W&B project `wandb_project` when given (`start_wandb`, with
    `run_config` as the W&B run's config). `continue_from=None` starts a new run
    (`RunExistsError` for a directory that `holds_run`); `continue_from=step` continues the run
    in `out_dir`, dropping its records after `step` (logged by a continuation whose checkpoint
    was never saved)."""

    def __init__(self, out_dir: str | Path | None, tensorboard: bool = True, *,
                 continue_from: int | None = None, title: str = "",
                 wandb_project: str | None = None, run_config: Any = None) -> None:
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.title = title
        self.records: list[dict[str, Any]] = []
        self._jsonl = None
        self._tb = None
        self._wandb = None
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
        if wandb_project is not None:
            self._wandb = start_wandb(wandb_project, self.out_dir, title, run_config,
                                      continue_from)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        self.records.append(record)
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(record) + "\n")
            self._jsonl.flush()
        numbers = {k: v for k, v in record.items()
                   if k != "step" and isinstance(v, (int, float))}
        if self._tb is not None:
            for key, value in numbers.items():
                self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(numbers, step=step)

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
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


WANDB_ID_FILE = "wandb-run-id"
"""File of a run directory holding the id of its W&B run, which its continuations resume."""


def start_wandb(project: str, out_dir: Path | None, title: str, run_config: Any,
                continue_from: int | None) -> Any:
    """`wandb.init` of the W&B run mirroring a `MetricsLogger`: named after the run directory,
    `title` as its notes, `run_config` (a dataclass or dict) as its config; continuing a run
    (`continue_from`) resumes the W&B run whose id the directory keeps in `WANDB_ID_FILE`.
    Login, WANDB_MODE (offline: kept on disk for `wandb sync`), WANDB_DIR and WANDB_ENTITY are
    W&B's own settings. ImportError with the install command when wandb is missing."""
    try:
        import wandb
    except ImportError:
        raise ImportError('wandb_project needs the wandb package: pip install '
                          '"rlvr-gym[wandb]"') from None
    id_file = out_dir / WANDB_ID_FILE if out_dir is not None else None
    run_id = id_file.read_text(encoding="utf-8").strip() \
        if continue_from is not None and id_file is not None and id_file.exists() else None
    if dataclasses.is_dataclass(run_config) and not isinstance(run_config, type):
        run_config = dataclasses.asdict(run_config)
    run = wandb.init(project=project, id=run_id, resume="allow" if run_id else None,
                     name=out_dir.name if out_dir is not None else None,
                     notes=title or None, config=run_config)
    if id_file is not None:
        id_file.write_text(run.id + "\n", encoding="utf-8")
    return run


def _truncate_after(path: Path, step: int) -> None:
    """Drop the records of `path` after `step` (atomically), warning how many."""
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
