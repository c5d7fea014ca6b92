"""`ReasoningEnv`: a task source and a verifier as a Gymnasium environment with text spaces.

One episode is one problem. The observation is the prompt text; the action is the model's
response text; the reward is the verifier's score. Single-turn (the default): answering
terminates the episode. Multi-turn (`max_attempts > 1`): a wrong answer is fed back and the
episode goes on; it is truncated when the attempts run out.
"""

from __future__ import annotations

import collections
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from rlvr_gym.envs.sources import TaskSource
from rlvr_gym.envs.spaces import PromptText
from rlvr_gym.types import Problem, Status, Verdict, Verifier

# Printable ASCII with whitespace, Latin-1 and Latin Extended-A/B, Greek, punctuation,
# super/subscripts, letterlike symbols, arrows, mathematical operators and technical symbols:
# what math and code text uses. (Gymnasium's `Text` default is letters and digits only.)
_RANGES = [(0x00A0, 0x0250), (0x0370, 0x0400), (0x2000, 0x2070), (0x2070, 0x20A0),
           (0x2100, 0x2150), (0x2190, 0x2200), (0x2200, 0x2300), (0x2300, 0x2400),
           (0x25A0, 0x2600), (0x27C0, 0x2800), (0x2980, 0x2B00)]
REPLACEMENT = "\ufffd"  # stands in for a character outside the charset in observations
CHARSET = frozenset(string.printable) | frozenset(
    chr(c) for lo, hi in _RANGES for c in range(lo, hi)) | {REPLACEMENT}

MAX_PROMPT_CHARS = 16_384
MAX_RESPONSE_CHARS = 32_768
"""Default `max_response_chars`: about 8k tokens of English or math text."""

DEFAULT_TEMPLATE = "{question}\nGive the final answer as \\boxed{{answer}}.\n"


@dataclass(frozen=True)
class PromptFormat:
    """How a question becomes the observation text.

    With a `tokenizer` that has a chat template, the rendered template is sent as the user
    message (after an optional system message) through `tokenizer.apply_chat_template(...,
    add_generation_prompt=True)`; otherwise the template's text itself is the prompt.
    """

    template: str = DEFAULT_TEMPLATE
    """Python format string with a `{question}` field."""
    system: str | None = None
    """Optional system message (chat templates only)."""
    tokenizer: Any = None
    """A Hugging Face tokenizer whose chat template to apply, or None for plain text."""

    def __post_init__(self) -> None:
        if "{question}" not in self.template:
            raise ValueError(f"prompt template must contain '{{question}}', got {self.template!r}")

    def render(self, question: str) -> str:
        text = self.template.format(question=question)
        if self.tokenizer is None or not getattr(self.tokenizer, "chat_template", None):
            return text
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": text}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=True)

    def as_template(self) -> str:
        """This format as a plain template string: the chat template rendered around the
        `{question}` field (other braces escaped). It renders the same prompts with no
        tokenizer, and fits a JSON record (a saved agent's env kwargs, which `rlvr-gym eval`
        and `train --resume` rebuild)."""
        marker = "\ue000question\ue000"  # private-use characters: in no chat template
        text = self.render(marker)
        if marker not in text:
            raise ValueError("the tokenizer's chat template does not keep the user message as "
                             "it is; pass PromptFormat(template, system, tokenizer) itself")
        return text.replace("{", "{{").replace("}", "}}").replace(marker, "{question}")


def default_feedback(verdict: Verdict) -> str:
    """What a multi-turn env shows after a wrong attempt."""
    return f"\nThat is {verdict.status.value.replace('_', ' ')}: {verdict.reason}. Try again.\n"


class ReasoningEnv(gym.Env[str, str]):
    """A reasoning task as a Gymnasium env.

    Contract:
        - `reset(seed=s)` draws a problem index with the env's own `np_random`: the same seed
          gives the same problem and prompt. `reset(options={"problem_id": id})`,
          `{"index": i}` or `{"problem": Problem}` pins a problem (GRPO groups).
        - `step(response)` accepts any string (garbage gets `no_answer`), verifies it and
          returns `(observation, reward, terminated, truncated, info)` with
          `reward = verdict.score`. A response longer than the action space's `max_length`
          (`max_response_chars`) is `incorrect` without being verified (usable: the model
          is penalised). An action that is not a `str` raises ValueError (a caller's
          error, e.g. token ids not decoded); stepping a finished episode raises
          `ResetNeeded`.
        - `info` always holds `problem` (the `Problem`), `problem_id`, `question`, `prompt`,
          `answer`, `solution`, `difficulty` and `attempt`; after a step also `verdict`.

    Args:
        source: the problems (see `rlvr_gym.envs.sources`).
        verifier: judges responses; see `rlvr_gym.types.Verifier`.
        prompt: a `PromptFormat`, a template string with `{question}`, or None for the default.
        max_attempts: 1 for single-turn; more to feed wrong answers back.
        feedback: text appended after a wrong attempt (multi-turn only).
        render_mode: None or "ansi".
        charset: characters of the text spaces (defaults to `CHARSET` plus the source's own).
        max_response_chars: the action space's `max_length`; longer responses are judged
            `incorrect` unread.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    action_space: spaces.Text
    observation_space: spaces.Text

    def __init__(
        self,
        source: TaskSource,
        verifier: Verifier,
        prompt: PromptFormat | str | None = None,
        max_attempts: int = 1,
        feedback: Callable[[Verdict], str] = default_feedback,
        render_mode: str | None = None,
        charset: Iterable[str] | None = None,
        max_response_chars: int = MAX_RESPONSE_CHARS,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        if len(source) == 0:
            raise ValueError("the task source has no problems")
        if isinstance(max_response_chars, bool) or not isinstance(max_response_chars, int) \
                or max_response_chars < 1:
            raise ValueError(f"max_response_chars must be a positive int, got "
                             f"{max_response_chars!r}")
        self.source = source
        self.verifier = verifier
        self.prompt_format = prompt if isinstance(prompt, PromptFormat) else PromptFormat(
            *(() if prompt is None else (prompt,)))
        self.max_attempts = max_attempts
        self.feedback = feedback
        self.render_mode = render_mode
        chars = CHARSET if charset is None else CHARSET | frozenset(charset)
        # A chat template adds its own markup: take its characters from a rendered probe.
        chars = chars | frozenset(self.prompt_format.render("?"))
        self._charset = chars
        text_charset = "".join(sorted(chars))
        self.observation_space = PromptText(MAX_PROMPT_CHARS, min_length=0,
                                            charset=text_charset)
        self.action_space = spaces.Text(max_response_chars, min_length=0, charset=text_charset)
        self.problem: Problem | None = None
        self._prompt = self._transcript = ""
        self._attempt = 0
        self._done = True
        self._last_verdict: Verdict | None = None
        self._ahead: dict[tuple[str, str], tuple[Verdict, int]] = {}
        """Verdicts of `verify_ahead` and how many steps each may still serve."""

    def verify_ahead(self, items: Sequence[tuple[str, str]]) -> int:
        """Verify many `(problem_id, response)` pairs at once, in parallel where the verifier
        can (one with `verify_batch`, such as the code sandbox pool), and keep the verdicts for
        the `step`s that send these responses: a batch of samples is then scored by the usual
        `reset`/`step` calls, every wrapper seeing every step, at the cost of one parallel
        verification. `response` is what this env's `step` receives (a wrapper's response
        prefix included). Each verdict serves as many `step`s as the pair occurs in `items`
        (identical pairs are verified once), and all are dropped at the next call; a response
        not verified ahead is verified in `step` as usual. Returns how many distinct pairs were
        verified ahead (0 for a verifier without `verify_batch`, which makes this a no-op)."""
        self._ahead = {}
        batch = getattr(self.verifier, "verify_batch", None)
        if not callable(batch):
            return 0
        limit = self.action_space.max_length
        uses = collections.Counter((str(pid), response) for pid, response in items
                                   if isinstance(response, str) and len(response) <= limit)
        pairs = []
        for key in uses:  # an id not in the source (a pinned `Problem`): left to `step`
            try:
                pairs.append((key, self.source[self.source.index_of(key[0])]))
            except KeyError:
                continue
        if not pairs:
            return 0
        try:
            verdicts = batch([response for (_, response), _ in pairs],
                             [problem for _, problem in pairs])
        except Exception:  # a verifier must not raise; `step` then verifies one by one
            return 0
        self._ahead = {key: (verdict, uses[key])
                       for (key, _), verdict in zip(pairs, verdicts, strict=True)}
        return len(pairs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self.problem = self._choose(options or {})
        self._prompt = self._transcript = self.prompt_format.render(self.problem.question)
        if len(self._transcript) > MAX_PROMPT_CHARS:
            raise ValueError(f"problem {self.problem.id!r} renders to a prompt of "
                             f"{len(self._transcript)} characters, over {MAX_PROMPT_CHARS}")
        self._attempt = 0
        self._done = False
        self._last_verdict = None
        return self._observation(), self._info()

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._done or self.problem is None:
            raise ResetNeeded("the episode has ended; call env.reset() before env.step()")
        if not isinstance(action, str):
            raise ValueError(f"the action must be the response text (a str), got "
                             f"{type(action).__name__}; decode bytes or token ids to text first")
        response = action
        verdict = self._verify(response)
        self._attempt += 1
        self._last_verdict = verdict
        terminated = verdict.correct or self.max_attempts == 1
        truncated = not terminated and self._attempt >= self.max_attempts
        # An over-long response is not held whole: the observation, the transcript's tail, is
        # the same with only the response's tail.
        self._transcript += response if len(response) <= self.action_space.max_length \
            else response[-MAX_PROMPT_CHARS:]
        if not (terminated or truncated):
            self._transcript += self.feedback(verdict)
        self._done = terminated or truncated
        info = self._info()
        info["verdict"] = verdict
        return self._observation(), verdict.score, terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        text = self._transcript
        if self._last_verdict is not None:
            v = self._last_verdict
            text += f"\n[{v.status.value} score={v.score:.2f}] {v.reason}"
        return text

    def close(self) -> None:
        close = getattr(self.verifier, "close", None)
        if callable(close):
            close()

    def _observation(self) -> str:
        """The transcript as an element of `observation_space`: model text may hold any
        character, so ones outside the charset become U+FFFD, and only the tail that fits
        is kept."""
        text = self._transcript[-MAX_PROMPT_CHARS:]
        if set(text) <= self._charset:
            return text
        return "".join(c if c in self._charset else REPLACEMENT for c in text)

    def _choose(self, options: dict[str, Any]) -> Problem:
        unknown = set(options) - {"problem_id", "index", "problem"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; use 'problem_id', "
                             "'index' or 'problem'")
        if "problem" in options:
            if not isinstance(options["problem"], Problem):
                raise ValueError("options['problem'] must be a rlvr_gym.Problem")
            return options["problem"]
        if "problem_id" in options:
            return self.source[self.source.index_of(str(options["problem_id"]))]
        if "index" in options:
            return self.source[int(options["index"])]
        return self.source[int(self.np_random.integers(len(self.source)))]

    def _verify(self, response: str) -> Verdict:
        assert self.problem is not None
        limit = self.action_space.max_length
        if len(response) > limit:  # the model's fault, judged without reading it
            return Verdict(Status.INCORRECT, 0.0, None, f"response longer than {limit} "
                           "characters (the action space's max_length; build the env with "
                           "a larger max_response_chars to allow more)", usable=True)
        key = (self.problem.id, response)
        if key in self._ahead:
            verdict, left = self._ahead.pop(key)
            if left > 1:
                self._ahead[key] = (verdict, left - 1)
            return verdict
        try:
            return self.verifier.verify(response, self.problem)
        except Exception as exc:  # a verifier must not raise; if it does, it is its error
            return Verdict(Status.ERROR, 0.0, None, f"verifier raised {type(exc).__name__}: {exc}")

    def _info(self) -> dict[str, Any]:
        p = self.problem
        assert p is not None
        return {"problem": p, "problem_id": p.id, "question": p.question,
                "prompt": self._prompt, "answer": p.answer,
                "solution": p.solution, "difficulty": p.difficulty, "attempt": self._attempt}
