"""MRT: Meta Reinforcement Fine-Tuning (Qu et al., arXiv 2503.07572; docs/algorithms.md, MRT).
A response is a sequence of episodes (attempts, re-checks). MRT measures how well it spends
tokens with a *meta-prover*: the same policy forced to answer after a prefix, whose success
probability J gives the progress of an episode (Def. 6.1) and the regret of a response
(Def. 4.1). This module holds the meta-prover (`MetaProver`), the agent (`MRT`), test-time
budget forcing (`budget_forcing`) and the regret of a policy (`regret_traces`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from rlvr_gym.agents.core import check_choice, check_minimum
from rlvr_gym.agents.grpo import AdvantageMode, GRPOConfig, PolicyGradient
from rlvr_gym.agents.policy import Generation, Policy, SamplingConfig
from rlvr_gym.agents.rollout import Group, Rollout, Scored, collect, draw, score
from rlvr_gym.types import Problem, split_prefix
from rlvr_gym.verifiers.extract import last_boxed
from rlvr_gym.wrappers.budget import (
    DEFAULT_MARKERS,
    cumulative_regret,
    normalized_regret,
    split_episodes,
)

Variant = Literal["termination", "progress"]

#: Forced-termination suffix for models that answer with `\boxed{}` right after their work
#: (the bundled tiny model). The paper's suffix for R1-style models closes the thinking block:
#: "Time is up.\n\nGiven the time I've spent ... </think>\n\n**Step-by-Step ...".
DEFAULT_TERMINATION_SUFFIX = "\n\\boxed{"


class MetaProver:
    """J(prefix), a `rlvr_gym.wrappers.ProgressEstimator`: the share of K forced answers after
    `prefix` that `env` judges correct. For each prefix the policy continues `prompt + prefix
    + suffix` K times (the suffix forces an answer) and `env` judges each whole response
    `prefix + suffix + answer` (a prefix that already holds an answer, as it is): its
    verdict's score counts (without a verdict, the reward); unusable verdicts are left out,
    and a prefix with none usable gets NaN, never 0. `no_answer_rate` is the share of forced
    answers in the last `estimate` call whose verdict extracted no answer.

    `prefix` is the whole response so far, so `env` must judge a response in one `step`,
    with no response prefix of its own and no step per episode: a `ReasoningEnv` fits. It
    is reset and stepped for every answer: no episode may be in progress on it meanwhile.
    """

    def __init__(self, policy: Policy, env: Any, suffix: str = DEFAULT_TERMINATION_SUFFIX,
                 samples: int = 4, max_new_tokens: int = 16, temperature: float = 1.0) -> None:
        if samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        self.policy = policy
        self.env = env
        self.suffix = suffix
        self.samples = samples
        self.sampling = SamplingConfig(temperature, 1.0, max_new_tokens)
        self.no_answer_rate = 0.0

    def __call__(self, problem: Problem, prompt: str, prefix: str) -> float:
        return self.estimate([problem], [prompt], [prefix])[0]

    def estimate(self, problems: Sequence[Problem], prompts: Sequence[str],
                 prefixes: Sequence[str]) -> list[float]:
        """J for many (problem, prompt, prefix) triples, in one batch of generation and one of
        scoring."""
        if not len(problems) == len(prompts) == len(prefixes):
            raise ValueError("problems, prompts and prefixes must have the same length")
        answered = [i for i, prefix in enumerate(prefixes) if last_boxed(prefix) is not None]
        forced = sorted(set(range(len(prefixes))) - set(answered))
        k = self.samples
        gens = self.policy.generate(
            [prompts[i] for i in forced for _ in range(k)], self.sampling,
            [prefixes[i] + self.suffix for i in forced for _ in range(k)]) if forced else []
        scored = score(self.env, [problems[i] for i in answered]
                       + [problems[i] for i in forced for _ in range(k)],
                       [prefixes[i] for i in answered] + [g.response for g in gens])
        values = [float("nan")] * len(prefixes)
        for n, i in enumerate(answered):
            values[i] = _mean_score(scored[n:n + 1])
        answers = scored[len(answered):]
        for n, i in enumerate(forced):
            values[i] = _mean_score(answers[n * k:(n + 1) * k])
        self.no_answer_rate = sum(s.verdict is not None and s.verdict.extracted is None
                                  for s in answers) / max(len(answers), 1)
        return values


def _mean_score(scored: Sequence[Scored]) -> float:
    """Mean verdict score (the reward without a verdict) of the usable ones; NaN if none."""
    scores = [s.verdict.score if s.verdict is not None else s.reward for s in scored if s.usable]
    return float(np.mean(scores)) if scores else float("nan")


@dataclass
class MRTConfig(GRPOConfig):
    """GRPO's fields plus MRT's."""

    advantage: AdvantageMode = "none"
    """'none' uses the training signal as the advantage (required by 'termination': group
    centring would cancel J(c)); 'group' or 'mean' normalise the 'progress' variant's R."""
    variant: Variant = "termination"
    """'termination': A = r - J(c), the official RL README's termination-reward baseline;
    'progress': R = r + alpha (J after the first new episode - J(c)), Eq. 2's dense bonus
    over a stale prefix (docs/algorithms.md, MRT)."""
    alpha: float = 1.0
    """Weight of the progress bonus in 'progress' (v0.1 MRT-online: 1.0; sweep 0.1-1)."""
    termination_suffix: str = DEFAULT_TERMINATION_SUFFIX
    """Text appended to a prefix to force an answer (the meta-prover's prompt)."""
    termination_samples: int = 4
    """K forced answers per prefix for J (paper: 8)."""
    termination_max_tokens: int = 16
    """Most tokens of one forced answer."""
    termination_temperature: float = 1.0
    """Sampling temperature of forced answers (paper: 0.6-0.7)."""
    markers: tuple[str, ...] = DEFAULT_MARKERS
    """Words that, after a blank line, open a new episode (segmentation of prefixes)."""
    max_prefix_episodes: int = 0
    """Cap on the random episode count of the stale prefix (0: no cap)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self, "variant", get_args(Variant))
        if self.variant == "termination" and self.advantage != "none":
            raise ValueError("variant='termination' needs advantage='none': A = r - J(c) is "
                             "the advantage, and group centring would cancel J(c)")
        check_minimum(self, ("termination_samples", "termination_max_tokens"))
        check_minimum(self, ("max_prefix_episodes",), 0, " (0: no cap)")
        self.markers = tuple(self.markers)


class MRT(PolicyGradient):
    """GRPO's loss on continuations of stale prefixes with MRT's progress-based training
    signal: `MRT(policy, env, config, eval_env).learn(total_steps)` (arguments: `Trainer`).
    Per problem and step: one trace of the policy before the update ("stale"), cut after a
    random number of episodes into the prefix c; J(c) from the meta-prover; G continuations
    of c sharing `max_new_tokens` with it, trained on the continuation only, with the
    `variant`'s signal in `Group.rewards`. Forced answers are judged on `env.unwrapped`, out
    of sight of the training env's wrappers (they are not rollouts)."""

    config: MRTConfig
    config_class = MRTConfig

    def __init__(self, policy: Policy | str | Path, env: Any, config: MRTConfig | None = None,
                 eval_env: Any = None) -> None:
        super().__init__(policy, env, config, eval_env)
        c = self.config
        self.meta_prover = MetaProver(self.policy, env.unwrapped, c.termination_suffix,
                                      c.termination_samples, c.termination_max_tokens,
                                      c.termination_temperature)

    def collect(self) -> Rollout:
        """`prompts_per_step` groups (refilled with dynamic sampling) whose `stats` are those
        of the last sampling round: mean J(c), episodes in c, outcome reward, forced answers
        without an answer, progress of the first new episode ('progress')."""
        c = self.config
        rounds: list[dict[str, float]] = []

        def sample(num_problems: int) -> tuple[list[Group], int]:
            groups, tokens, stats = self.sample_stale(num_problems)
            rounds.append(stats)
            return groups, tokens

        rollout = collect(sample, self.prompts_per_rank, c.dynamic_sampling, c.max_sampling_rounds)
        rollout.stats = rounds[-1]
        return rollout

    def sample_stale(self, num_problems: int) -> tuple[list[Group], int, dict[str, float]]:
        """Groups of continuations of stale prefixes of `num_problems` problems drawn by the
        env, the generated tokens (stale traces included) and the round's statistics."""
        c = self.config
        self._seed_env()
        heads = draw(self.env, num_problems)
        split = [split_prefix(obs, info) for obs, info in heads]
        prompts = [p for p, _ in split]
        given = [x for _, x in split]
        problems = [info["problem"] for _, info in heads]

        stale = self.policy.generate(prompts, c.sampling(), given)
        own_prefixes, counts = [], []
        for g in stale:
            episodes = split_episodes(g.text, c.markers)
            limit = max(len(episodes), 1)
            if c.max_prefix_episodes:
                limit = min(limit, c.max_prefix_episodes + 1)
            j = int(np.random.randint(limit))  # global RNG: saved and restored by `save`
            own_prefixes.append("".join(episodes[:j]))
            counts.append(j)
        prefixes = [x + own for x, own in zip(given, own_prefixes, strict=True)]
        j_prefix = np.array(self.meta_prover.estimate(problems, prompts, prefixes))
        no_answer = [self.meta_prover.no_answer_rate]

        G = c.group_size
        own_tokens = [len(self.policy.encode(own)) for own in own_prefixes]
        gens = generate_within(self.policy, [p for p in prompts for _ in range(G)],
                               [x for x in prefixes for _ in range(G)],
                               [c.max_new_tokens - n for n in own_tokens for _ in range(G)],
                               c.sampling())
        scored = score(self.env, [info["problem_id"] for _, info in heads for _ in range(G)],
                       [own_prefixes[n // G] + g.text for n, g in enumerate(gens)],
                       [given[n // G] for n in range(len(gens))])

        outcome = np.array([s.reward for s in scored]).reshape(num_problems, G)
        progress = np.full((num_problems, G), np.nan)
        if c.variant == "termination":
            signal = termination_signal(outcome, j_prefix)
        else:
            firsts = [prefixes[n // G] + (split_episodes(g.text, c.markers) or [""])[0]
                      for n, g in enumerate(gens)]
            j_first = np.array(self.meta_prover.estimate(
                [problems[n // G] for n in range(len(gens))], [g.prompt for g in gens],
                firsts)).reshape(num_problems, G)
            no_answer.append(self.meta_prover.no_answer_rate)
            progress = j_first - j_prefix[:, None]
            signal = progress_signal(outcome, j_prefix, j_first, c.alpha)
        usable = [s.usable and bool(np.isfinite(x))
                  for s, x in zip(scored, signal.flatten(), strict=True)]
        rewards = np.nan_to_num(signal).tolist()

        groups = [Group(info["problem_id"], gens[k * G:(k + 1) * G], rewards[k],
                        usable[k * G:(k + 1) * G], [s.correct for s in scored[k * G:(k + 1) * G]])
                  for k, (_, info) in enumerate(heads)]
        finite_j = j_prefix[~np.isnan(j_prefix)]
        stats = {
            "J_prefix": float(np.mean(finite_j)) if len(finite_j) else float("nan"),
            "prefix_episodes": float(np.mean(counts)),
            "outcome_reward": float(np.mean(outcome)),
            "forced_no_answer": float(np.mean(no_answer)),
            **({"first_episode_progress": float(np.nanmean(progress))}
               if not np.all(np.isnan(progress)) else {}),
        }
        return groups, sum(len(g.completion_ids) for g in stale + gens), stats


def termination_signal(outcomes: np.ndarray, j_prefix: np.ndarray) -> np.ndarray:
    """MRT's termination-baseline advantage A_i = r_i - J(c) (docs/algorithms.md, MRT), from
    the rewards `outcomes` [groups, G] of the continuations of each group's prefix c and the
    meta-prover's `j_prefix` [groups]. NaN in J(c) propagates (mask those samples)."""
    return np.asarray(outcomes, dtype=float) - np.asarray(j_prefix, dtype=float)[:, None]


def progress_signal(outcomes: np.ndarray, j_prefix: np.ndarray, j_first: np.ndarray,
                    alpha: float) -> np.ndarray:
    """MRT's dense + outcome reward R_i = r_i + alpha (J(c + y_i^(1)) - J(c)) (Eq. 2 with the
    progress of Def. 6.1 for the first new episode over a stale prefix; docs/algorithms.md,
    MRT). Shapes: `outcomes` and `j_first` [groups, G], `j_prefix` [groups]."""
    progress = np.asarray(j_first, dtype=float) - np.asarray(j_prefix, dtype=float)[:, None]
    return np.asarray(outcomes, dtype=float) + alpha * progress


def generate_within(policy: Policy, prompts: Sequence[str], prefixes: Sequence[str],
                    rooms: Sequence[int], sampling: SamplingConfig) -> list[Generation]:
    """One completion per (prompt, prefix), in order, the i-th of at most `rooms[i]` new tokens
    (at least 1; `sampling.max_new_tokens` is ignored). Completions with the same room share a
    `generate` call, so that none runs past its prompt + prefix + room: a budget shared by a
    prefix and its continuation stays inside the model's context."""
    out: dict[int, Generation] = {}
    for room in sorted(set(rooms), reverse=True):
        which = [i for i, r in enumerate(rooms) if r == room]
        out.update(zip(which, policy.generate([prompts[i] for i in which],
                                              replace(sampling, max_new_tokens=max(room, 1)),
                                              [prefixes[i] for i in which]), strict=True))
    return [out[i] for i in range(len(prompts))]


@dataclass(frozen=True)
class ForcedResponse:
    """A response produced under budget forcing."""

    text: str
    """The whole response (generated text and the appended markers)."""
    tokens: int
    """Tokens of the response: generated ones plus those of the markers."""
    extensions: int
    """How many times the marker was appended."""


def budget_forcing(policy: Policy, prompts: Sequence[str], budget_tokens: int,
                   sampling: SamplingConfig, marker: str = "\n\nWait,",
                   max_extensions: int = 2) -> list[ForcedResponse]:
    """Generate within `budget_tokens`; when a response stops without an answer, append
    `marker` and let it continue, at most `max_extensions` times (budget forcing, s1, arXiv
    2501.19393, as MRT extrapolates past its training budget). A response is final when it
    holds an answer, has used the budget (markers count), has no room for the marker and one
    more token, or has used its extensions. `sampling.max_new_tokens` is ignored."""
    if budget_tokens < 1 or max_extensions < 0:
        raise ValueError("need budget_tokens >= 1 and max_extensions >= 0")
    marker_tokens = len(policy.encode(marker))
    texts = [""] * len(prompts)
    tokens = [0] * len(prompts)
    extensions = [0] * len(prompts)
    active = list(range(len(prompts)))
    while active:
        gens = generate_within(policy, [prompts[i] for i in active], [texts[i] for i in active],
                               [budget_tokens - tokens[i] for i in active], sampling)
        still = []
        for i, g in zip(active, gens, strict=True):
            texts[i] += g.text
            tokens[i] += len(g.completion_ids)
            stopped_early = g.finish_reason == "stop" and last_boxed(texts[i]) is None
            if (stopped_early and extensions[i] < max_extensions
                    and tokens[i] + marker_tokens < budget_tokens):
                texts[i] += marker
                tokens[i] += marker_tokens
                extensions[i] += 1
                still.append(i)
        active = still
    return [ForcedResponse(t, n, e) for t, n, e in zip(texts, tokens, extensions, strict=True)]


@dataclass(frozen=True)
class RegretTrace:
    """One sampled response as MRT's analysis sees it: J after every episode."""

    index: int
    """Problem index in the env."""
    response: str
    tokens: list[int]
    """Tokens of the response up to the end of each episode (non-decreasing)."""
    j_values: list[float]
    """Meta-prover J after each episode; the last is the whole response's."""
    correct: bool
    """Whether the whole response is judged correct by the env."""


def regret_traces(policy: Policy, env: Any, meta_prover: MetaProver, num_problems: int,
                  budget_tokens: int, temperature: float = 1.0,
                  markers: Sequence[str] = DEFAULT_MARKERS,
                  stop: tuple[str, ...] = ()) -> list[RegretTrace]:
    """Sample one response per problem 0..num_problems-1 (pinned by index) within
    `budget_tokens`, cut it into episodes and evaluate J after each (one batched meta-prover
    call) and the whole response's correctness; tokens are counted after a wrapper's prefix."""
    heads = [env.reset(options={"index": i}) for i in range(num_problems)]
    split = [split_prefix(obs, info) for obs, info in heads]
    prompts = [p for p, _ in split]
    given = [x for _, x in split]
    gens = policy.generate(prompts, SamplingConfig(temperature, 1.0, budget_tokens, stop), given)
    cuts = [[given[k] + "".join(episodes[:n + 1]) for n in range(len(episodes))]
            for k, episodes in enumerate(split_episodes(g.text, markers) or [""] for g in gens)]
    js = meta_prover.estimate([info["problem"] for (_, info), c in zip(heads, cuts, strict=True)
                               for _ in c],
                              [p for p, c in zip(prompts, cuts, strict=True) for _ in c],
                              [x for c in cuts for x in c])
    scored = score(env, [info["problem_id"] for _, info in heads], [g.text for g in gens], given)
    traces, at = [], 0
    for k, (g, partial) in enumerate(zip(gens, cuts, strict=True)):
        base = len(policy.encode(given[k]))
        tokens = [len(policy.encode(p)) - base for p in partial]
        traces.append(RegretTrace(k, g.text, tokens, js[at:at + len(partial)], scored[k].correct))
        at += len(partial)
    return traces


def summarize_regret(traces: Sequence[RegretTrace], budget_tokens: float) -> dict[str, float]:
    """Means over traces: `normalized_regret` at `budget_tokens` (area form, J from (0, 0)),
    `cumulative_regret` (Def. 4.1, comparator 1), `episodes`, `tokens` and `accuracy`; traces
    whose J has a NaN (no usable verdict) are skipped and counted in `skipped`."""
    kept = [t for t in traces if not any(np.isnan(t.j_values))]
    if not kept:
        raise ValueError("no trace with usable verdicts; check the verifier")
    return {
        "normalized_regret": float(np.mean([normalized_regret(t.tokens, t.j_values,
                                                              budget_tokens) for t in kept])),
        "cumulative_regret": float(np.mean([cumulative_regret(t.j_values) for t in kept])),
        "episodes": float(np.mean([len(t.j_values) for t in kept])),
        "tokens": float(np.mean([t.tokens[-1] for t in kept])),
        "accuracy": float(np.mean([t.correct for t in kept])),
        "skipped": float(len(traces) - len(kept)),
    }
