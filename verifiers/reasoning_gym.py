"""Judging answers to reasoning-gym problems with reasoning-gym's own `score_answer`.

reasoning-gym (`pip install "rlvr-gym[reasoning-gym]"`) generates 100+ kinds of reasoning
problems and scores an answer to each with its dataset's `score_answer(answer, entry)`. This
verifier finds the answer in a response and hands it to that function, so a reward here is
the reward reasoning-gym gives. Problems come from `rlvr/ReasoningGym-v0`
(`rlvr_gym.envs.tasks.reasoning_gym`), which keeps in `Problem.meta` what scoring needs: the
dataset's name (`task`), the options it was built with and the entry itself.

The answer is, in order: the content of the last `<answer>...</answer>` (reasoning-gym's own
format, found by its `extract_answer`), else of the last `\\boxed{}`; a response with neither
is `no_answer` and `score_answer` is not called (some datasets give a small format credit even
to an empty answer).
"""

from __future__ import annotations

import math
import time
from typing import Any

from rlvr_gym.types import Problem, Status, Verdict
from rlvr_gym.verifiers.extract import TAIL_CHARS, last_boxed

INSTALL = 'pip install "rlvr-gym[reasoning-gym]"'
"""The command that installs reasoning-gym, named by every error about its absence."""


def import_reasoning_gym() -> Any:
    """The `reasoning_gym` module; ImportError naming the install command when absent."""
    try:
        import reasoning_gym
    except ImportError as exc:
        raise ImportError(f"reasoning-gym tasks need the reasoning-gym package: {INSTALL}"
                          ) from exc
    return reasoning_gym


def find_answer(response: str) -> str | None:
    """The answer in `response` (its last `TAIL_CHARS` characters): the last
    `<answer>...</answer>`, else the last `\\boxed{}`, stripped; None when there is neither."""
    from reasoning_gym.utils import extract_answer

    tail = response[-TAIL_CHARS:]
    found = extract_answer(tail)
    if found is None:
        found = last_boxed(tail)
    return None if found is None else found.strip()


class ReasoningGymVerifier:
    """Scores the answer of a response with the problem's reasoning-gym dataset.

    The score is `score_answer`'s, in [0, 1]: `correct` at 1, else `incorrect` with whatever
    partial credit the dataset gives. A `score_answer` that raises on the answer rejects it
    (`incorrect`, score 0, usable: a malformed answer is the answer's fault); `error` (masked)
    only when the problem is not a reasoning-gym problem or its dataset cannot be built.
    The datasets are built once per (task, options) and kept.
    """

    def __init__(self) -> None:
        self._datasets: dict[str, Any] = {}

    def verify(self, response: str, problem: Problem) -> Verdict:
        start = time.perf_counter()

        def verdict(status: Status, reason: str, score: float = 0.0,
                    extracted: str | None = None) -> Verdict:
            return Verdict(status, score, extracted, reason, time.perf_counter() - start)

        meta = problem.meta
        if not {"task", "options", "entry"} <= set(meta):
            return verdict(Status.ERROR, f"problem {problem.id!r} is not a reasoning-gym problem "
                           "(its meta lacks task, options and entry); make it with "
                           "rlvr/ReasoningGym-v0")
        try:
            dataset = self._dataset(meta["task"], meta["options"])
        except Exception as exc:
            return verdict(Status.ERROR, f"cannot build reasoning-gym dataset {meta['task']!r}: "
                           f"{type(exc).__name__}: {exc}")
        answer = find_answer(response)
        if answer is None:
            return verdict(Status.NO_ANSWER, "no <answer>...</answer> or \\boxed{} found")
        try:
            score = float(dataset.score_answer(answer, meta["entry"]))
        except Exception as exc:
            return verdict(Status.INCORRECT, f"{meta['task']} score_answer rejected the answer "
                           f"({type(exc).__name__}: {exc})", 0.0, answer)
        if not math.isfinite(score):
            return verdict(Status.ERROR, f"{meta['task']} score_answer returned {score}")
        score = min(max(score, 0.0), 1.0)
        if score >= 1.0:
            return verdict(Status.CORRECT, f"{meta['task']} score_answer: 1.0", 1.0, answer)
        return verdict(Status.INCORRECT, f"{meta['task']} score_answer: {score:g}", score,
                       answer)

    def _dataset(self, task: str, options: dict[str, Any]) -> Any:
        key = repr((task, sorted(options.items())))
        if key not in self._datasets:
            self._datasets[key] = import_reasoning_gym().create_dataset(task, **options)
        return self._datasets[key]
