"""What every benchmark records beside its figures: the machine and the code version."""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

RESULTS_DIR = Path(__file__).parent / "results"


def machine(packages: tuple[str, ...] = ()) -> str:
    """Cores, CPU model, Python, torch and its GPU (if imported), the named packages' versions."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    parts = [f"{os.cpu_count()} cores", cpu, f"Python {sys.version.split()[0]}"]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        parts.append(f"torch {torch.__version__}")
        if torch.cuda.is_available():
            parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    for name in packages:
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} not installed")
    return ", ".join(parts)


def provenance(command: str, packages: tuple[str, ...] = ()) -> list[str]:
    """Markdown lines naming the command, the machine, the commit and the time."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip() or "unknown"
    return [f"Command: `{command}`  ", f"Machine: {machine(packages)}  ",
            f"Commit: {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  "]


MIN_SEEDS_FOR_A_CLAIM = 5
"""Fewer paired seeds than this never make a difference "reproduced" (or "not reproduced")."""


@dataclass(frozen=True)
class Paired:
    """Method minus baseline over paired seeds (same seed, same data order and problems)."""

    diffs: tuple[float, ...]
    """Per-seed differences, in the order of the seeds."""
    mean: float
    """Mean difference."""
    se: float
    """Standard error of the mean difference (sample std / sqrt(n)); nan below 2 seeds."""
    low: float
    """Lower end of the two-sided 95% confidence interval (Student t, n - 1 d.o.f.)."""
    high: float
    """Upper end of that interval."""
    p: float
    """Two-sided p-value of the paired t-test (nan below 2 seeds or with all diffs equal)."""

    def text(self, scale: float = 1.0, unit: str = "", pairs: str = "seeds") -> str:
        """'+3.2 (SE 1.1, 95% CI -0.4..+6.8, paired t-test p = 0.041, 5 seeds)'; `scale`
        multiplies every figure (100 turns accuracies into points); `pairs` names what was
        paired."""
        digits = 2 if scale == 1 else 1

        def f(v: float, signed: bool = True) -> str:
            return "n/a" if math.isnan(v) else f"{v * scale:{'+' if signed else ''}.{digits}f}"
        p = "n/a" if math.isnan(self.p) else f"{self.p:.3f}"
        return (f"{f(self.mean)}{unit} (SE {f(self.se, False)}, 95% CI {f(self.low)}.."
                f"{f(self.high)}, paired t-test p = {p}, {len(self.diffs)} {pairs})")


def paired(method: list[float], baseline: list[float]) -> Paired:
    """Paired comparison of per-seed figures (`method[i]` and `baseline[i]` share seed i)."""
    from scipy import stats

    if len(method) != len(baseline) or not method:
        raise ValueError(f"paired() needs per-seed figures of equal, non-zero length; got "
                         f"{len(method)} and {len(baseline)}: run both arms on the same seeds")
    d = np.asarray(method, float) - np.asarray(baseline, float)
    n, mean = len(d), float(d.mean())
    if n < 2:
        return Paired(tuple(d.tolist()), mean, math.nan, math.nan, math.nan, math.nan)
    se = float(d.std(ddof=1) / math.sqrt(n))
    half = float(stats.t.ppf(0.975, n - 1)) * se
    p = float(stats.ttest_rel(method, baseline).pvalue) if se > 0 else math.nan
    return Paired(tuple(d.tolist()), mean, se, mean - half, mean + half, p)


def _too_few(diff: Paired) -> str | None:
    n = len(diff.diffs)
    return (f"too few seeds to judge ({n} < {MIN_SEEDS_FOR_A_CLAIM})"
            if n < MIN_SEEDS_FOR_A_CLAIM else None)


def _line(effect: str, word: str, cause: str) -> str:
    return f"- {effect}: {word}" + (f"; {cause}" if cause else "") + "."


def verdict(effect: str, diff: Paired, higher_is_paper: bool = True, cause: str = "") -> str:
    """One line: the effect, then reproduced / same direction, not separated / not reproduced
    (or too few seeds to say), judged by the 95% interval against the paper's direction."""
    toward = diff.mean if higher_is_paper else -diff.mean
    if (word := _too_few(diff)) is None:
        if (diff.low > 0) if higher_is_paper else (diff.high < 0):
            word = "**reproduced**"
        elif toward > 0:
            word = "**same direction, not separated**"
        else:
            word = "**not reproduced**"
    return _line(effect, word, cause)


def level_verdict(effect: str, diff: Paired, tolerance: float, cause: str = "") -> str:
    """The verdict line of an effect that is a level, not a difference: `diff` is the
    measure minus the paper's level, reproduced when its whole 95% interval lies within
    +-`tolerance`; same direction, not separated when only its mean does."""
    if (word := _too_few(diff)) is None:
        if diff.low > -tolerance and diff.high < tolerance:
            word = "**reproduced**"
        elif abs(diff.mean) < tolerance:
            word = "**same direction, not separated**"
        else:
            word = "**not reproduced**"
    return _line(effect, word, cause)


def seeds_line(seeds: list[int]) -> str:
    """The line a report records its seeds on (read back by `check_report`)."""
    return f"Seeds: {', '.join(str(s) for s in seeds)}  "


def check_report(path: str | Path, seeds: list[int], default: Path) -> None:
    """Refuse, before any work, to overwrite the recorded table `default` with fewer seeds
    than it holds (a quick look must not replace a multi-seed record)."""
    path = Path(path)
    if path.resolve() != default.resolve() or not path.exists():
        return
    recorded = re.search(r"^Seeds: ([\d, ]+)", path.read_text(), re.M)
    count = len(recorded.group(1).split(",")) if recorded else 0
    if len(seeds) < count:
        raise SystemExit(
            f"error: {path} records {count} seeds and this run has "
            f"{len(seeds)}; pass --report <another file> (or all the seeds) so the recorded "
            "table is not replaced by a smaller one")
