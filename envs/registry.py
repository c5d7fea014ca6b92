"""Building envs by task name; `rlvr_gym.registration` maps the Gymnasium ids onto this."""

from __future__ import annotations

from dataclasses import fields
from importlib import resources
from typing import Any

from rlvr_gym.envs import sources
from rlvr_gym.envs.env import MAX_RESPONSE_CHARS, PromptFormat, ReasoningEnv
from rlvr_gym.envs.files import FileSource
from rlvr_gym.types import Verifier

#: task name -> (source class, config class)
PROCEDURAL = {
    "arithmetic": (sources.ArithmeticSource, sources.ArithmeticConfig),
    "chain": (sources.ChainSource, sources.ChainConfig),
    "linear": (sources.LinearEquationSource, sources.LinearEquationConfig),
    "fractions": (sources.FractionSource, sources.FractionConfig),
    "roots": (sources.PolynomialRootsSource, sources.PolynomialRootsConfig),
    "countdown": (sources.CountdownSource, sources.CountdownConfig),
}

SAMPLE_MATH = "sample_math.jsonl"


def default_verifier(task: str) -> Verifier:
    """The verifier a task uses unless the caller passes another."""
    if task == "countdown":
        from rlvr_gym.verifiers.countdown import CountdownVerifier

        return CountdownVerifier()
    from rlvr_gym.verifiers.math import MathVerifier

    return MathVerifier()


def make_source(task: str, **config: Any) -> sources.TaskSource:
    """A task source by name with config overrides, e.g. `make_source("chain", max_steps=8)`."""
    if task == "dataset":
        preset = config.pop("preset", "math")
        path = config.pop("path", None)
        if path is None:
            path = str(resources.files("rlvr_gym") / "data" / SAMPLE_MATH)
        return FileSource.from_preset(path, preset, **config)
    if task not in PROCEDURAL:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(PROCEDURAL)} or "
                         "'dataset'")
    source_cls, config_cls = PROCEDURAL[task]
    known = {f.name for f in fields(config_cls)}
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"unknown {task} options {sorted(unknown)}; valid: {sorted(known)}")
    return source_cls(config_cls(**config))


def make_task_env(
    task: str,
    prompt: PromptFormat | str | None = None,
    verifier: Verifier | None = None,
    max_attempts: int = 1,
    render_mode: str | None = None,
    max_response_chars: int = MAX_RESPONSE_CHARS,
    **config: Any,
) -> ReasoningEnv:
    """Entry point of the math ids: remaining keyword arguments configure the task source
    (for `rlvr/MathDataset-v0`: `path`, `preset` and `FileConfig` fields). The others are
    `ReasoningEnv`'s."""
    source = make_source(task, **config)
    charset = source.characters() if isinstance(source, sources.ListSource) else None
    return ReasoningEnv(source, verifier or default_verifier(task), prompt=prompt,
                        max_attempts=max_attempts, render_mode=render_mode, charset=charset,
                        max_response_chars=max_response_chars)
