"""Gymnasium ids of rlvr-gym and how a task registers one.

Each task is one module that ends in a `register_task(...)` call; importing the module
registers the task. `import rlvr_gym` imports every module of `rlvr_gym.envs.tasks` (Gymnasium
1.x has no plugin discovery), and `gymnasium.make("rlvr_gym:rlvr/Arithmetic-v0")` does that
import itself. A task defined elsewhere is registered by importing its module (or with
`gymnasium.make("your.module:rlvr/YourTask-v0")`). See docs/adding_a_task.md.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym

if TYPE_CHECKING:
    from rlvr_gym.envs.sources import TaskSource
    from rlvr_gym.types import Verifier

#: kind -> the Gymnasium entry point of its ids. `math`: the answer is checked by the task's
#: verifier (default `MathVerifier`); `code`: the answer is a program, run against the problem's
#: tests by `CodeVerifier` (default), with the code prompt and multi-turn feedback.
ENTRY_POINTS = {"math": "rlvr_gym.envs.registry:make_task_env",
                "code": "rlvr_gym.envs.code_tasks:make_code_env"}


@dataclass(frozen=True)
class Task:
    """A registered task: how its id builds a source and which verifier judges it by default."""

    env_id: str
    kind: str
    """`math` or `code` (see `ENTRY_POINTS`)."""
    name: str
    """The entry point's `task` argument; unique within the kind."""
    source: Callable[..., TaskSource]
    """The source class (with `config`), or a callable taking the options as keywords."""
    config: type | None
    """Dataclass of the source's options, or None when `source` takes them itself."""
    verifier: Callable[[], Verifier] | None
    """Builds the default verifier; None: the kind's default."""
    description: str = ""
    """One line on what the task asks (what `rlvr-gym envs` prints beside the id)."""

    def make_source(self, **options: Any) -> TaskSource:
        """The source with these options (`gym.make` keywords that are not the env's own)."""
        if self.config is None:
            return self.source(**options)
        known = {f.name for f in fields(self.config)}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown {self.name} options {sorted(unknown)}; valid: "
                             f"{sorted(known)}")
        return self.source(self.config(**options))


#: env id -> Task, in registration order
TASKS: dict[str, Task] = {}
#: env id -> (entry point, default kwargs), in registration order (what `rlvr-gym envs` lists)
ENV_IDS: dict[str, tuple[str, dict]] = {}


def register_task(
    env_id: str,
    name: str,
    source: Callable[..., TaskSource],
    config: type | None = None,
    *,
    kind: str = "math",
    verifier: Callable[[], Verifier] | None = None,
    entry_point: str | None = None,
    description: str = "",
) -> Task:
    """Register `env_id` with Gymnasium as the task `name` of `kind`.

    Args:
        env_id: a new Gymnasium id, e.g. `rlvr/DigitSum-v0`.
        name: the task's name, unique within its kind; the id's `task` keyword.
        source: with `config`, the source class, built as `source(config(**options))`; else
            a callable that takes the options as keywords and returns the source.
        config: the dataclass of the options (`gym.make(env_id, max_digits=4)`); an unknown
            option is a ValueError that lists the valid ones.
        kind: `math` or `code` (see `ENTRY_POINTS`).
        verifier: builds the default verifier (e.g. a verifier class); `gym.make(...,
            verifier=...)` still overrides it.
        entry_point: `"module:function"` that builds the id's envs instead of the kind's
            (`ENTRY_POINTS`), for a task whose envs differ in more than their source: its own
            default prompt, or a `task` keyword of its own (`rlvr/ReasoningGym-v0`, where
            `task` names a reasoning-gym dataset and `name` is the default one). It receives
            `task=name` unless `gym.make` passes another `task`.
        description: one line on what the task asks, listed by `rlvr-gym envs`.

    Raises ValueError, saying what to change, when the id or the name is taken or the
    description is more than one line.
    """
    if kind not in ENTRY_POINTS:
        raise ValueError(f"kind must be one of {sorted(ENTRY_POINTS)}, got {kind!r}")
    if config is not None and not is_dataclass(config):
        raise ValueError(f"config must be a dataclass (its fields are the options), got "
                         f"{config!r}")
    if "\n" in description.strip():
        raise ValueError(f"description must be one line (`rlvr-gym envs` prints it beside the "
                         f"id), got {description!r}")
    if env_id in gym.registry:
        raise ValueError(f"{env_id} is already registered; give the new task another id "
                         "(or a new version, -v1)")
    taken = next((t.env_id for t in TASKS.values() if (t.kind, t.name) == (kind, name)), None)
    if taken:
        raise ValueError(f"the {kind} task name {name!r} is taken by {taken}; choose another")
    task = Task(env_id, kind, name, source, config, verifier, description.strip())
    TASKS[env_id] = task
    entry_point = entry_point or ENTRY_POINTS[kind]
    ENV_IDS[env_id] = (entry_point, {"task": name})
    gym.register(id=env_id, entry_point=entry_point, kwargs={"task": name})
    return task


def get_task(kind: str, name: str) -> Task:
    """The registered task `name` of `kind`; ValueError listing the names when none is."""
    for task in TASKS.values():
        if (task.kind, task.name) == (kind, name):
            return task
    names = sorted(t.name for t in TASKS.values() if t.kind == kind)
    raise ValueError(f"unknown {kind} task {name!r}; choose one of {names} (a task defined "
                     "outside rlvr_gym is registered when its module is imported)")


#: Built-in task modules listed first, in the order `rlvr-gym envs` has always shown them;
#: any other module of `rlvr_gym.envs.tasks` follows, by name.
_FIRST = ("arithmetic", "arithmetic_chain", "linear_equation", "fractions", "polynomial_roots",
          "countdown", "math_dataset", "code_problems", "code_dataset")


def register_envs() -> None:
    """Import every module of `rlvr_gym.envs.tasks`, which registers the built-in ids
    (idempotent: a module registers once, when first imported)."""
    package = importlib.import_module("rlvr_gym.envs.tasks")
    names = sorted(m.name for m in pkgutil.iter_modules(package.__path__))
    for name in sorted(names, key=lambda n: _FIRST.index(n) if n in _FIRST else len(_FIRST)):
        importlib.import_module(f"{package.__name__}.{name}")
