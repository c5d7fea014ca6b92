"""SEELE's hint scaffolding (arXiv 2509.06923; docs/algorithms.md, SEELE): reveal a prefix of
the reference solution as the start of the response, with its length chosen per problem so that
rollout accuracy sits near a target (0.5, where a policy-gradient step gains most).

The accuracy-vs-hint-ratio curve of each problem is modelled by a 3-parameter logistic Item
Response Theory curve

    f(p) = b + (1 - b) / (1 + exp(-k (p + mu)))

fitted by least squares to the (ratio, accuracy) pairs seen so far and inverted at the target.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal, SupportsFloat

import gymnasium as gym
import numpy as np
from scipy.optimize import least_squares

# Bounds of the fit. k: the paper's fitted slopes lie in [4.5, 50] with 50 looking like a cap;
# mu: the midpoint -mu of a useful curve lies in [0, 1], with room either side; b: a guessing
# floor below 1.
K_BOUNDS = (0.5, 50.0)
MU_BOUNDS = (-1.5, 0.5)
B_BOUNDS = (0.0, 0.99)

MAX_DIFFICULTY_FEATURE = 10.0  # HintController's observation bound


@dataclass(frozen=True)
class IRTCurve:
    """A fitted 3PL curve `f(p) = b + (1 - b) / (1 + exp(-k (p + mu)))`."""

    k: float
    mu: float
    b: float

    def __call__(self, p: float | np.ndarray) -> float | np.ndarray:
        return self.b + (1.0 - self.b) / (1.0 + np.exp(-self.k * (np.asarray(p) + self.mu)))

    def inverse(self, target: float) -> float:
        """The hint ratio whose predicted accuracy is `target`, clipped to [0, 1]:
        p* = -mu - ln((1 - a*) / (a* - b)) / k; 0 when even no hint reaches the target."""
        if not 0.0 < target < 1.0:
            raise ValueError(f"target accuracy must lie strictly between 0 and 1, got {target}")
        if self.b >= target:
            return 0.0
        p = -self.mu - math.log((1.0 - target) / (target - self.b)) / self.k
        return float(min(1.0, max(0.0, p)))


def fit_irt(points: list[tuple[float, float]], add_margins: bool = True) -> IRTCurve:
    """Least-squares 3PL fit (scipy's trust-region-reflective, as LMFIT's TRF in the paper).

    `points` are (hint ratio, accuracy) pairs; pairs with the same ratio are averaged first.
    With `add_margins`, (0, 0) and (1, 1) are added where those ratios were not tried, which
    keeps early fits of one or two points sensible. Raises ValueError when the fit fails.
    """
    by_ratio: dict[float, list[float]] = defaultdict(list)
    for p, acc in points:
        if not (0.0 <= p <= 1.0 and 0.0 <= acc <= 1.0):
            raise ValueError(f"hint ratio and accuracy must lie in [0, 1], got ({p}, {acc})")
        by_ratio[round(float(p), 9)].append(float(acc))
    if add_margins:
        by_ratio.setdefault(0.0, [0.0])
        by_ratio.setdefault(1.0, [1.0])
    if len(by_ratio) < 2:
        raise ValueError("a 3PL fit needs points at two or more hint ratios")
    ps = np.array(sorted(by_ratio))
    accs = np.array([np.mean(by_ratio[p]) for p in ps])

    def residuals(phi: np.ndarray) -> np.ndarray:
        return IRTCurve(*phi)(ps) - accs

    def jacobian(phi: np.ndarray) -> np.ndarray:
        k, mu, b = phi
        s = 1.0 / (1.0 + np.exp(-k * (ps + mu)))
        slope = (1.0 - b) * s * (1.0 - s)
        return np.stack([slope * (ps + mu), slope * k, 1.0 - s], axis=1)

    lower, upper = zip(K_BOUNDS, MU_BOUNDS, B_BOUNDS, strict=True)
    # Analytic Jacobian and an evaluation cap: SEELE fits every problem every round, and
    # few-point fits are ill-conditioned, so finite differences ran to ~70 iterations.
    result = least_squares(residuals, x0=np.array([8.0, -0.5, 0.05]), jac=jacobian,
                           bounds=(lower, upper), method="trf", max_nfev=100)
    if result.status < 0 or not np.all(np.isfinite(result.x)):
        raise ValueError(f"3PL fit did not converge: {result.message}")
    return IRTCurve(*map(float, result.x))


Unit = Literal["steps", "tokens", "chars"]


def solution_units(solution: str, unit: Unit, tokenizer: Any = None) -> list[str]:
    """The reference solution cut into the units a hint ratio counts: lines (each with its
    line break), tokens (decoded one by one), or characters. Joined they give the solution."""
    if unit == "steps":
        return solution.splitlines(keepends=True)
    if unit == "chars":
        return list(solution)
    if unit == "tokens":
        if tokenizer is None:
            raise ValueError("unit='tokens' needs a tokenizer (any object with encode/decode)")
        ids = tokenizer.encode(solution, add_special_tokens=False) if _is_hf(tokenizer) \
            else tokenizer.encode(solution)
        return [tokenizer.decode([i]) for i in ids]
    raise ValueError(f"unit must be 'steps', 'tokens' or 'chars', got {unit!r}")


def _is_hf(tokenizer: Any) -> bool:
    return hasattr(tokenizer, "eos_token_id")


def hint_text(units: list[str], ratio: float, snap_to_steps: bool = False) -> str:
    """The first round(ratio * len(units)) units; with `snap_to_steps`, cut back to the last
    line break inside that prefix so the hint never ends mid-step."""
    text = "".join(units[: round(ratio * len(units))])
    if snap_to_steps and text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return text


@dataclass
class _ProblemState:
    stored_ratio: float | None = None  # ratio predicted at the end of the last visit
    ratio: float | None = None  # ratio of the round in progress
    round: int = 0  # rounds completed in the current training step
    results: list[tuple[float, float]] | None = None  # (ratio, reward) of this step
    in_round: int = 0  # results recorded in the round in progress


class HintScaffold(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds a prefix of the reference solution as the start of the response.

    Contract:
        - `reset` picks the hint ratio p of the problem and returns the prompt followed by the
          hint. `info["prompt"]` stays the bare prompt; `info["hint"]` (also as
          `info["response_prefix"]`, the key agents read), `info["hint_ratio"]` and
          `info["hint_round"]` (1-based) are added so agents can mask hint tokens from the
          RL loss.
        - The action is the *continuation* after the hint; `step` sends hint + continuation
          to the inner env and records (p, reward) for the problem. A result whose verdict
          is unusable (verifier error or timeout) counts toward the round but not the fit.
        - Rounds (SEELE Algorithm 1): a ratio is used for `samples_per_round` results, then the
          3PL curve is refitted on this training step's results and inverted at
          `target_accuracy`. Round 1 uses the ratio stored from the problem's last visit
          (cold start: (|y|-1)/|y|, nearly the whole solution). After `rounds` rounds the
          predicted ratio is stored and the problem's results are cleared.
        - If a fit fails the ratio moves halfway toward 1 (accuracy below target) or 0 (above).

    Args:
        env: a text env whose `info` has `problem_id` and `solution`.
        target_accuracy: the accuracy a*, 0.5 by default.
        rounds: rounds per problem per training step (m = 4 in the paper).
        samples_per_round: rollouts per round (n = 8 in the paper).
        unit: what the ratio counts: "steps" (solution lines), "tokens" or "chars".
        tokenizer: needed for unit="tokens".
        snap_to_steps: cut token/char hints back to a line break.
    """

    def __init__(self, env: gym.Env, target_accuracy: float = 0.5, rounds: int = 4,
                 samples_per_round: int = 8, unit: Unit = "steps", tokenizer: Any = None,
                 snap_to_steps: bool = False) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, target_accuracy=target_accuracy, rounds=rounds,
            samples_per_round=samples_per_round, unit=unit, tokenizer=tokenizer,
            snap_to_steps=snap_to_steps)
        super().__init__(env)
        if not 0.0 < target_accuracy < 1.0:
            raise ValueError(f"target_accuracy must lie strictly between 0 and 1, "
                             f"got {target_accuracy}")
        if rounds < 1 or samples_per_round < 1:
            raise ValueError("rounds and samples_per_round must be at least 1")
        if unit == "tokens" and tokenizer is None:
            raise ValueError("unit='tokens' needs a tokenizer")
        self.target_accuracy = target_accuracy
        self.rounds = rounds
        self.samples_per_round = samples_per_round
        self.unit: Unit = unit
        self.tokenizer = tokenizer
        self.snap_to_steps = snap_to_steps
        self._problems: dict[str, _ProblemState] = defaultdict(_ProblemState)
        self._episode: tuple[str, float, str] | None = None  # problem id, ratio, hint

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[str, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        units = solution_units(info["solution"], self.unit, self.tokenizer)
        state = self._problems[info["problem_id"]]
        if state.ratio is None:
            state.ratio = self._next_ratio(state, len(units))
        hint = hint_text(units, state.ratio, self.snap_to_steps)
        self._episode = (info["problem_id"], state.ratio, hint)
        info = {**info, "hint": hint, "response_prefix": hint, "hint_ratio": state.ratio,
                "hint_round": state.round + 1}
        return obs + hint, info

    def step(self, action: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._episode is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        problem_id, ratio, hint = self._episode
        # a non-str action goes on as it is, for the env to refuse (str() would hide the bug)
        obs, reward, terminated, truncated, info = self.env.step(
            hint + action if isinstance(action, str) else action)
        verdict = info.get("verdict")
        self._record(problem_id, ratio, float(reward), verdict is None or verdict.usable)
        info = {**info, "hint": hint, "hint_ratio": ratio}
        if terminated or truncated:
            self._episode = None
        return obs, reward, terminated, truncated, info

    def _next_ratio(self, state: _ProblemState, n_units: int) -> float:
        if not state.results:  # round 1 of a visit
            if state.stored_ratio is not None:
                return state.stored_ratio
            return (n_units - 1) / n_units if n_units > 1 else 0.0
        try:
            return fit_irt(state.results).inverse(self.target_accuracy)
        except ValueError:
            last_ratio = state.results[-1][0]
            accuracy = float(np.mean([r for p, r in state.results if p == last_ratio]))
            return (last_ratio + 1.0) / 2 if accuracy < self.target_accuracy else last_ratio / 2

    def _record(self, problem_id: str, ratio: float, reward: float, usable: bool) -> None:
        """Count a result toward the round; fit only on usable ones (a verifier failure
        says nothing about p, but the agent did spend the sample)."""
        state = self._problems[problem_id]
        if usable:
            state.results = (state.results or []) + [(ratio, reward)]
        state.in_round += 1
        if state.in_round < self.samples_per_round:
            return
        state.in_round, state.round, state.ratio = 0, state.round + 1, None
        if state.round >= self.rounds:  # this training step is over for the problem
            if state.results:  # else keep the stored ratio: nothing was learnt about p
                state.stored_ratio = self._next_ratio(state, n_units=0)
            state.results, state.round = None, 0

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: per-problem ratios, rounds and results."""
        return {pid: vars(s).copy() for pid, s in self._problems.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._problems = defaultdict(_ProblemState,
                                     {pid: _ProblemState(**s) for pid, s in state.items()})


class HintController(gym.Env[np.ndarray, np.int64]):
    """Curriculum as a classic RL problem: an agent (e.g. SB3 PPO) picks the hint level for each
    problem from numeric features, and an answerer (an LLM policy, or any function from prompt
    text to continuation) solves the hinted problem inside the env.

    Observation (`Box`, float32): [difficulty * difficulty_scale (clipped to 10), recent
    success rate at each hint level (exponential moving average, starting at 0.5)]. Action:
    `Discrete(len(levels))`, the index of the hint ratio. Reward: 1 for a verified correct
    answer, minus `hint_cost * ratio`, so the best policy gives the shortest hint that still
    works. An episode is `problems_per_episode` problems, then `truncated` (a time limit).

    Args:
        env: a text env whose `info` has `solution` and `difficulty`.
        answer: maps the prompt with the hint appended to the continuation after the hint.
        levels: the hint ratios to choose from.
        problems_per_episode: problems per episode.
        hint_cost: reward subtracted per unit of hint ratio.
        difficulty_scale: multiplies the source's difficulty into the observation.
        smoothing: weight of the newest result in the success averages.
        unit: what the ratio counts ("steps", "tokens" or "chars").
        tokenizer: needed for unit="tokens".
    """

    metadata = {"render_modes": []}

    def __init__(self, env: gym.Env, answer: Any, levels: tuple[float, ...] = (0.0, 0.25, 0.5,
                 0.75, 1.0), problems_per_episode: int = 16, hint_cost: float = 0.5,
                 difficulty_scale: float = 0.1, smoothing: float = 0.2, unit: Unit = "steps",
                 tokenizer: Any = None) -> None:
        if not levels or any(not 0.0 <= p <= 1.0 for p in levels):
            raise ValueError(f"levels must be hint ratios in [0, 1], got {levels}")
        if problems_per_episode < 1:
            raise ValueError("problems_per_episode must be at least 1")
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"smoothing must lie in (0, 1], got {smoothing}")
        if not callable(answer):
            raise ValueError("answer must be a function from prompt text to a continuation")
        self.env = env
        self.answer = answer
        self.levels = tuple(levels)
        self.problems_per_episode = problems_per_episode
        self.hint_cost = hint_cost
        self.difficulty_scale = difficulty_scale
        self.smoothing = smoothing
        self.unit: Unit = unit
        self.tokenizer = tokenizer
        high = np.array([MAX_DIFFICULTY_FEATURE] + [1.0] * len(levels), dtype=np.float32)
        self.observation_space = gym.spaces.Box(np.zeros_like(high), high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(levels))
        self._success = np.full(len(levels), 0.5)
        self._count = 0
        self._obs_text = ""
        self._info: dict[str, Any] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        inner_seed = None if seed is None else int(self.np_random.integers(2**31))
        self._success = np.full(len(self.levels), 0.5)
        self._count = 0
        self._obs_text, self._info = self.env.reset(seed=inner_seed, options=options)
        return self._observation(), {"problem_id": self._info["problem_id"]}

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        level = int(action)
        if not 0 <= level < len(self.levels):
            raise ValueError(f"action {level} outside Discrete({len(self.levels)})")
        ratio = self.levels[level]
        units = solution_units(self._info["solution"], self.unit, self.tokenizer)
        hint = hint_text(units, ratio)
        continuation = str(self.answer(self._obs_text + hint))
        _, score, _, _, step_info = self.env.step(hint + continuation)
        correct = bool(step_info["verdict"].correct)
        self._success[level] += self.smoothing * (float(correct) - self._success[level])
        self._count += 1
        info = {"problem_id": self._info["problem_id"], "hint_ratio": ratio, "correct": correct,
                "verdict": step_info["verdict"]}
        truncated = self._count >= self.problems_per_episode
        if not truncated:
            self._obs_text, self._info = self.env.reset()
        return self._observation(), float(correct) - self.hint_cost * ratio, False, truncated, info

    def _observation(self) -> np.ndarray:
        difficulty = min(float(self._info["difficulty"]) * self.difficulty_scale,
                         MAX_DIFFICULTY_FEATURE)
        return np.concatenate([[difficulty], self._success]).astype(np.float32)

    def close(self) -> None:
        self.env.close()
