"""What every benchmark records beside its figures: the machine and the code version."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

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
            f"Commit: {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"]
