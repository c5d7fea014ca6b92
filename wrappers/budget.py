"""MRT's view of a response (arXiv 2503.07572; docs/algorithms.md, MRT): a sequence of episodes
under a token budget, each rewarded by the progress it makes toward a correct answer.

- `TokenBudget` makes one `step` per episode and enforces the budget.
- `ProgressReward` adds alpha * (J(after) - J(before)) per episode, J being the chance of
  answering correctly if forced to stop now (Def. 6.1), from any `ProgressEstimator` (the
  meta-prover in `rlvr_gym.agents` samples forced answers from the policy).
- `normalized_regret` and `cumulative_regret` measure how well a response spends its tokens
  (Def. 4.1 and the area-under-curve form of the official analysis code).
- `split_episodes` cuts a finished response into the same episodes `TokenBudget` steps through.
- `LengthPenalty` is the paper's length-penalty baseline: reward minus a cost per token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol, SupportsFloat

import gymnasium as gym
import numpy as np

from rlvr_gym.types import Problem
from rlvr_gym.verifiers.extract import last_boxed

#: Words that open a new attempt in a reasoning trace (MRT's segmentation markers).
DEFAULT_MARKERS = ("Wait", "But wait", "Alternatively", "Let me check", "Let me try again")


def _delimiter(markers: Sequence[str]) -> re.Pattern[str] | None:
    """Regex of the episode delimiters: a blank line followed by one of `markers`."""
    if not markers:
        return None
    return re.compile("|".join(re.escape(f"\n\n{m}") for m in markers))


def split_episodes(text: str, markers: Sequence[str] = DEFAULT_MARKERS) -> list[str]:
    """The episodes of a response: cut before every `"\\n\\n" + marker` after its start.

    The pieces concatenate back to `text`; each piece after the first starts with its
    delimiter (the marker opens the episode, as in `TokenBudget`). An empty text has no
    episodes.
    """
    if not text:
        return []
    pattern = _delimiter(markers)
    starts = [0] + ([m.start() for m in pattern.finditer(text) if m.start() > 0]
                    if pattern is not None else [])
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)], strict=True)]


def _encode(tokenizer: Any, text: str) -> list[int]:
    if hasattr(tokenizer, "eos_token_id"):  # Hugging Face: no BOS/EOS inside a response
        return list(tokenizer.encode(text, add_special_tokens=False))
    return list(tokenizer.encode(text))


class TokenBudget(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """One `step` per episode of the response, under a total token budget.

    Contract:
        - The observation is the prompt followed by every episode so far; the action is the
          next episode's text. An episode ends at the first `"\\n\\n" + marker` after its
          start (the marker opens the next episode) or after `episode_tokens` tokens; text
          past that point is dropped (`info["dropped_chars"]`), so agents should stop
          generating there (`stop_strings` lists the delimiters).
        - When the response holds an answer (`\\boxed{}` by default) the inner env verifies
          the whole response and its reward and `terminated` pass through.
        - When the budget is spent without an answer the inner env still verifies (a forced
          end) and the episode is `truncated`.
        - Otherwise the reward is 0 and the episode goes on.
        - `info` holds `episode_index`, `episode_tokens`, `total_tokens`, `budget_tokens`,
          `response` and `boundaries` (response length in characters after each episode).

    Args:
        env: a single-turn text env.
        tokenizer: counts tokens (Hugging Face tokenizer or anything with `encode`).
        budget_tokens: most tokens in the whole response.
        episode_tokens: most tokens in one episode (None: only delimiters end episodes).
        markers: words that, after a blank line, open a new episode.
    """

    def __init__(self, env: gym.Env, tokenizer: Any, budget_tokens: int,
                 episode_tokens: int | None = None,
                 markers: Sequence[str] = DEFAULT_MARKERS) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, tokenizer=tokenizer, budget_tokens=budget_tokens,
            episode_tokens=episode_tokens, markers=tuple(markers))
        super().__init__(env)
        if budget_tokens < 1:
            raise ValueError(f"budget_tokens must be at least 1, got {budget_tokens}")
        if episode_tokens is not None and episode_tokens < 1:
            raise ValueError(f"episode_tokens must be at least 1, got {episode_tokens}")
        self.tokenizer = tokenizer
        self.budget_tokens = budget_tokens
        self.episode_tokens = episode_tokens
        self.stop_strings = tuple(f"\n\n{m}" for m in markers)
        self._delimiter = _delimiter(markers)
        self._prompt = ""
        self._response = ""
        self._boundaries: list[int] = []
        self._tokens = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[str, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._prompt, self._response, self._boundaries, self._tokens = obs, "", [], 0
        return obs, {**info, **self._budget_info(0)}

    def step(self, action: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        episode = self._cut(str(action))
        ids = _encode(self.tokenizer, episode)
        room = self.budget_tokens - self._tokens
        if len(ids) > room:  # keep whole tokens that fit in the budget
            episode = self.tokenizer.decode(ids[:room])
            ids = ids[:room]
        dropped = len(str(action)) - len(episode)
        self._response += episode
        self._tokens += len(ids)
        self._boundaries.append(len(self._response))
        budget_info = {**self._budget_info(len(ids)), "dropped_chars": dropped}
        answered = last_boxed(self._response) is not None
        spent = self._tokens >= self.budget_tokens
        if not (answered or spent):
            return self._prompt + self._response, 0.0, False, False, budget_info
        obs, reward, terminated, truncated, info = self.env.step(self._response)
        truncated = truncated or (spent and not answered)
        return obs, reward, terminated and not truncated, truncated, {**info, **budget_info}

    def _cut(self, text: str) -> str:
        """The episode in `text`: up to the first delimiter after its start, then at most
        `episode_tokens` tokens."""
        if self._delimiter is not None:
            match = self._delimiter.search(text, 1)
            if match:
                text = text[: match.start()]
        if self.episode_tokens is not None:
            ids = _encode(self.tokenizer, text)
            if len(ids) > self.episode_tokens:
                text = self.tokenizer.decode(ids[: self.episode_tokens])
        return text

    def _budget_info(self, episode_tokens: int) -> dict[str, Any]:
        return {"episode_index": len(self._boundaries), "episode_tokens": episode_tokens,
                "total_tokens": self._tokens, "budget_tokens": self.budget_tokens,
                "response": self._response, "boundaries": list(self._boundaries)}


class ProgressEstimator(Protocol):
    """J(prefix): probability of a correct answer if the response were forced to end after
    `prefix` (the response so far, without the prompt)."""

    def __call__(self, problem: Problem, prompt: str, prefix: str) -> float: ...


class ProgressReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds MRT's dense progress bonus alpha * (J(after) - J(before)) to each episode's reward.

    Wrap a `TokenBudget` env. `info["progress"]` is J(after) - J(before) and `info["J"]` is
    J(after). On-policy the bonuses of one response telescope to
    alpha * (J(final prefix) - J(empty)); MRT's agents therefore take the prefix from a stale
    policy (see the agent variants in `rlvr_gym.agents`).
    """

    def __init__(self, env: gym.Env, estimator: ProgressEstimator, alpha: float = 1.0) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, estimator=estimator, alpha=alpha)
        super().__init__(env)
        self.estimator = estimator
        self.alpha = alpha
        self._problem: Problem | None = None
        self._prompt = ""
        self._j = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[str, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._problem, self._prompt = info["problem"], obs
        self._j = self.estimator(self._problem, obs, "")
        return obs, {**info, "J": self._j}

    def step(self, action: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._problem is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        j_after = self.estimator(self._problem, self._prompt, info["response"])
        progress = j_after - self._j
        self._j = j_after
        return (obs, float(reward) + self.alpha * progress, terminated, truncated,
                {**info, "progress": progress, "J": j_after})


def normalized_regret(tokens: Sequence[float], j_values: Sequence[float], budget: float) -> float:
    """1 - (1/C0) * integral of J over [0, C0] (MRT's normalized regret at budget C0).

    The curve starts at (0, 0), passes through (tokens[i], j_values[i]) at each episode
    boundary with linear interpolation, and holds its last value up to `budget`; points past
    the budget are cut at it. 0 means a correct answer from the first token on; 1 never.
    """
    if budget <= 0:
        raise ValueError(f"budget must be positive, got {budget}")
    if len(tokens) != len(j_values):
        raise ValueError("tokens and j_values must have the same length")
    xs = np.concatenate([[0.0], np.asarray(tokens, dtype=float)])
    ys = np.concatenate([[0.0], np.asarray(j_values, dtype=float)])
    if np.any(np.diff(xs) < 0):
        raise ValueError("token counts must be non-decreasing")
    grid = np.union1d(xs[xs < budget], [budget])
    curve = np.interp(grid, xs, ys)  # np.interp holds the last value past the end
    area = float(np.sum((curve[1:] + curve[:-1]) / 2 * np.diff(grid)))
    return 1.0 - area / budget


def cumulative_regret(j_values: Sequence[float], comparator: float = 1.0) -> float:
    """Def. 4.1 with a constant comparator: sum over episodes of comparator - J(prefix)."""
    return float(sum(comparator - j for j in j_values))


class LengthPenalty(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """GRPO's length-penalty baseline in MRT's Table 1: reward - coef * tokens / max_tokens.

    For a single-turn text env: the response's token count (capped at `max_tokens`) is charged
    on the step that verifies it, so a correct answer of n tokens earns
    1 - coef * n / max_tokens. `info["length_penalty"]` holds the charge and
    `info["response_tokens"]` the count. Correctness stays in `info["verdict"]`.
    """

    def __init__(self, env: gym.Env, tokenizer: Any, coef: float, max_tokens: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, tokenizer=tokenizer, coef=coef,
                                                 max_tokens=max_tokens)
        super().__init__(env)
        if coef < 0:
            raise ValueError(f"coef must be >= 0 (it is subtracted), got {coef}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        self.tokenizer = tokenizer
        self.coef = coef
        self.max_tokens = max_tokens

    def step(self, action: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        tokens = len(_encode(self.tokenizer, str(action)))
        penalty = self.coef * min(tokens, self.max_tokens) / self.max_tokens
        return (obs, float(reward) - penalty, terminated, truncated,
                {**info, "length_penalty": penalty, "response_tokens": tokens})
