"""Fixtures shared by the env tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest

from rlvr_gym import registration

LOCAL_TASKS = Path(__file__).parent / "local_tasks"


@pytest.fixture(scope="module")
def local_tasks() -> Iterator[None]:
    """Put local_tasks/ on `sys.path`, so that `gym.make("digit_sum:rlvr/DigitSum-v0")`
    imports, and so registers, a task written in one file outside the package. Afterwards
    the registries are as they were, so that no other test module sees those tasks."""
    tables = (gym.registry, registration.TASKS, registration.ENV_IDS)
    saved = [dict(table) for table in tables]
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(LOCAL_TASKS))
        yield
    for table, before in zip(tables, saved, strict=True):
        table.clear()
        table.update(before)  # type: ignore[arg-type]
    for module in LOCAL_TASKS.glob("*.py"):
        sys.modules.pop(module.stem, None)
