"""Building the env of a registered task (see `rlvr_gym.registration`): the entry point of the
math ids, and the part every entry point shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlvr_gym.envs.env import MAX_RESPONSE_CHARS, PromptFormat, ReasoningEnv
from rlvr_gym.envs.sources import TaskSource
from rlvr_gym.registration import get_task
from rlvr_gym.types import Verifier
from rlvr_gym.verifiers.math import MathVerifier


def make_source(task: str, kind: str = "math", **config: Any) -> TaskSource:
    """A registered task's source with option overrides, e.g. `make_source("chain",
    max_steps=8)` or `make_source("dataset", kind="code", preset="apps", path=...)`."""
    return get_task(kind, task).make_source(**config)


def task_env(kind: str, task: str, verifier: Verifier | None,
             default_verifier: Callable[[], Verifier], config: dict[str, Any],
             prompt: PromptFormat | str | None = None, default_prompt: str | None = None,
             **env_options: Any) -> ReasoningEnv:
    """A `ReasoningEnv` over the source of the registered task `task` of `kind`, built with
    `config`. The verifier is `verifier`, else the task's own, else `default_verifier()`; the
    prompt is `prompt`, else the template the source names as its `template` attribute (a
    code source in completion mode: the question alone), else `default_prompt` (None:
    `ReasoningEnv`'s default); the text spaces admit the characters of the source's
    `characters()` where it has one; `env_options` are `ReasoningEnv`'s."""
    registered = get_task(kind, task)
    source = registered.make_source(**config)
    if verifier is None:
        verifier = (registered.verifier or default_verifier)()
    if prompt is None:
        prompt = getattr(source, "template", None) or default_prompt
    characters = getattr(source, "characters", None)  # a list: its questions' characters
    charset = characters() if callable(characters) else None
    return ReasoningEnv(source, verifier, prompt=prompt, charset=charset, **env_options)


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
    `ReasoningEnv`'s; the default verifier is the task's, else `MathVerifier`."""
    return task_env("math", task, verifier, MathVerifier, config, prompt=prompt,
                    max_attempts=max_attempts, render_mode=render_mode,
                    max_response_chars=max_response_chars)
