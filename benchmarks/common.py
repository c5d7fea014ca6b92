"""What every benchmark records beside its figures: the machine and the code version."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"


def machine() -> str:
    """Cores, CPU model, torch (if installed) and Python versions, on one line."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    parts = [f"{os.cpu_count()} cores", cpu]
    if "torch" in sys.modules:
        parts.append(f"torch {sys.modules['torch'].__version__}")
    return ", ".join(parts + [f"Python {sys.version.split()[0]}"])


def provenance(command: str) -> list[str]:
    """Markdown lines naming the command, the machine, the commit and the time."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip() or "unknown"
    return [f"Command: `{command}`  ", f"Machine: {machine()}  ",
            f"Commit: {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"]
