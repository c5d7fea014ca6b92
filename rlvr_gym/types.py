"""The types every part of rlvr-gym speaks: a `Problem`, a `Verdict` on an answer, a `Verifier`,
and the one rule between envs and agents about response prefixes (`split_prefix`)."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


class Status(str, enum.Enum):
    """Outcome of one verification.

    `error` and `timeout` mean the *verifier* (or the machine under it) failed, not the answer:
    agents must mask such samples out of the loss instead of scoring them as wrong.
    """

    CORRECT = "correct"
    INCORRECT = "incorrect"
    NO_ANSWER = "no_answer"
    ERROR = "error"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class Verdict:
    """The verifier's judgement of one response.

    Attributes:
        status: what happened (see `Status`).
        score: reward in [0, 1]; 1 only for `correct`. For code it is the fraction of tests passed.
        extracted: the answer text the verifier found in the response (None if none).
        reason: one human-readable line on why, e.g. "3/4 tests passed" or "no \\boxed{} found".
        elapsed_s: wall time the verification took.
        usable: whether the score says something about the answer, so that agents train on
            it. Defaults to False for `error` and `timeout` (the verifier failed) and True
            otherwise. A code verifier sets it True for a *program* that ran past its time
            limit: that is the program's fault, and masking it would let infinite loops
            escape the penalty.
    """

    status: Status
    score: float = 0.0
    extracted: str | None = None
    reason: str = ""
    elapsed_s: float = field(default=0.0, compare=False)  # equal verdicts may differ in timing
    usable: bool = None  # type: ignore[assignment]  # set from the status when not given

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        if self.usable is None:
            object.__setattr__(self, "usable",
                               self.status not in (Status.ERROR, Status.TIMEOUT))
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"Verdict.score must lie in [0, 1], got {self.score}")

    @property
    def correct(self) -> bool:
        """True when the answer was judged fully correct."""
        return self.status is Status.CORRECT



@dataclass(frozen=True)
class Problem:
    """One task instance, produced by a task source as a pure function of (config, seed, index).

    Attributes:
        id: stable identifier, unique within its source; `env.reset(options={"problem_id": id})`
            pins it.
        question: the task text shown to the model (without prompt formatting).
        answer: the reference final answer (math: LaTeX or plain text; code: empty if tests
            decide).
        solution: a step-wise reference solution, one step per line, ending in
            `\\boxed{answer}` for math. Used for hints (SEELE) and step trees (IB-TPO).
        kind: "math" or "code".
        tests: code tests (format decided by the code verifier); None for math.
        difficulty: a number that grows with difficulty (source-specific scale).
        meta: anything else the source or its verifier needs (e.g. Countdown numbers).
    """

    id: str
    question: str
    answer: str
    solution: str = ""
    kind: Literal["math", "code"] = "math"
    tests: Any = None
    difficulty: float = 0.0
    meta: Mapping[str, Any] = field(default_factory=dict)

    def steps(self, delimiter: str = "\n") -> list[str]:
        """The reference solution split into non-empty steps."""
        return [s for s in self.solution.split(delimiter) if s.strip()]


class Verifier(Protocol):
    """Anything that judges a response to a problem. Must never raise on a bad response: a
    malformed answer is a `no_answer`/`incorrect` verdict, a crash inside is an `error` verdict."""

    def verify(self, response: str, problem: Problem) -> Verdict: ...


def batch_problems(responses: Sequence[Any], problems: Sequence[Any]) -> list[Problem]:
    """The problem of each response of a `verify_batch(responses, problems)` call: `problems`
    holds one per response, or one shared by all. ValueError naming the fix for arguments a
    caller got wrong (never for model output)."""
    if len(problems) not in (1, len(responses)):
        raise ValueError(f"got {len(responses)} responses but {len(problems)} problems; give "
                         "one problem per response or a single shared problem")
    for response in responses:
        if not isinstance(response, str):
            raise ValueError(f"a response must be a str (the model's text), got "
                             f"{type(response).__name__}; decode tokens first")
    for problem in problems:
        if not isinstance(problem, Problem):
            raise ValueError(f"a problem must be a rlvr_gym.Problem, got "
                             f"{type(problem).__name__}")
    return list(problems) * len(responses) if len(problems) == 1 else list(problems)


RESPONSE_PREFIX_KEY = "response_prefix"
"""`info` key a wrapper sets when the response starts with given text (a SEELE hint, an MRT
prefix). The rule for every env and wrapper: the action continues the observation. A wrapper
that gives a prefix puts it at the end of the observation and under this key; the agent
continues from it, sends only what it generated, and masks the prefix out of the RL loss
(docs/env_agent_contract.md)."""


def split_prefix(observation: str, info: Mapping[str, Any]) -> tuple[str, str]:
    """(prompt, response prefix) of an observation: the prefix is `info[RESPONSE_PREFIX_KEY]`,
    which must end the observation."""
    prefix = info.get(RESPONSE_PREFIX_KEY, "")
    if not prefix:
        return observation, ""
    if not observation.endswith(prefix):
        raise ValueError(f"info[{RESPONSE_PREFIX_KEY!r}] must end the observation (the action "
                         "continues the observation); the wrapper that set it breaks that rule")
    return observation[: len(observation) - len(prefix)], prefix
