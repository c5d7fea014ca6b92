"""IB-TPO: tree rollouts branched where the IB-Score is highest, trained with step-level
advantages through the shared GRPO loss (arXiv 2605.28109; docs/algorithms.md, IB-TPO): the
config, the tree sampler (the paper's IBTree) and its monitors, then the agent `IBTPO`; the
tree itself, the IB-Score and the step advantages are in `rlvr_gym.agents.tree`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlvr_gym.agents.core import check_choice, check_minimum
from rlvr_gym.agents.grpo import GRPOConfig, PolicyGradient
from rlvr_gym.agents.monitors import eff_rate
from rlvr_gym.agents.policy import Generation, Policy, SamplingConfig
from rlvr_gym.agents.rollout import Group, Head, Rollout, draw, score
from rlvr_gym.agents.tree import (
    Node,
    RolloutTree,
    Trajectory,
    check_step_probability,
    split_steps,
    step_probability,
)
from rlvr_gym.types import split_prefix

STRATEGIES: tuple[str, ...] = ("ib", "random", "entropy")


@dataclass
class IBTPOConfig(GRPOConfig):
    """GRPO's fields plus IB-TPO's; `group_size` is derived: the G leaves of a tree."""

    prompts_per_step: int = 32
    """Problems (trees) per training step; a tree of 12 leaves costs the tokens of 8 samples
    in the paper (Table 3), of 8-12 here (benchmarks/results/ibtpo_branching*.md)."""
    initial_samples: int = 4
    """B0: independent samples from the root of each tree (paper: 4)."""
    rounds: int = 9
    """L: the initial round plus L - 1 branching rounds (paper: 9)."""
    top_k: int = 1
    """K: nodes branched per round (paper: 1)."""
    branches: int = 1
    """B: continuations sampled from each chosen node (paper: 1)."""
    strategy: str = "ib"
    """Where to branch: 'ib' (highest IB-Score), 'entropy' (highest mean token
    surprisal of the node's children, the TreeRL/EPTree baseline) or 'random'."""
    ib_beta: float = 5.0
    """beta of the IB-Score and of A_IB (paper: 5); not the KL weight, which is `beta`."""
    lam: float = 0.1
    """lambda in A = A_GL + lambda A_IB (paper: 0.1; 0.5 collapsed training)."""
    delimiter: str = "\n"
    """Text that ends a reasoning step (paper: '\\n\\n'; the tasks here put one step per
    line). '=', the benchmarks' choice, lets a branch resample only an operation's result."""
    step_probability: str = "mean"
    """How pi(s | v) of a step is read from its token log-probs: 'mean', exp(mean log p), for
    steps of any length, or 'product', the paper's exp(sum log p), for steps of a few tokens."""
    reference_confidence: bool = True
    """Take pi_ref(s) of A_IB from a frozen copy of the initial policy (paper); False uses the
    sampling policy's own step confidence (saves a model copy and a forward pass)."""

    def __post_init__(self) -> None:
        check_minimum(self, ("initial_samples", "rounds", "top_k", "branches"))
        check_choice(self, "strategy", STRATEGIES)
        if self.ib_beta <= 0:
            raise ValueError(f"ib_beta must be positive (the paper uses 5), got {self.ib_beta}")
        if not self.delimiter:
            raise ValueError("delimiter must be a non-empty string, e.g. '\\n'")
        check_step_probability(self.step_probability)
        if self.dynamic_sampling:
            raise ValueError("IB-TPO trains on every tree (a tree whose leaves all agree still "
                             "has a local advantage A_IB); set dynamic_sampling=False")
        if self.advantage != "group":
            raise ValueError("IB-TPO's global advantage is std-normalised (docs/algorithms.md, "
                             "IB-TPO); keep advantage='group'")
        if self.trajectories_per_tree < 2:
            raise ValueError("a tree needs at least 2 leaves for a global advantage; raise "
                             "initial_samples or rounds")
        if self.group_size not in (GRPOConfig.group_size, self.trajectories_per_tree):
            raise ValueError(f"group_size is derived in IB-TPO (G = B0 + (L - 1) K B = "
                             f"{self.trajectories_per_tree}); set initial_samples, rounds, "
                             "top_k and branches instead")
        self.group_size = self.trajectories_per_tree
        super().__post_init__()

    @property
    def trajectories_per_tree(self) -> int:
        """G = B0 + (L - 1) K B."""
        return self.initial_samples + (self.rounds - 1) * self.top_k * self.branches

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {**super().field_help(),
                "group_size": "Derived, not set: the G = B0 + (L - 1) K B leaves of a tree."}


@dataclass
class Leaf:
    """One root-to-leaf response: the whole path as a `Generation` (prefix = the env's
    response prefix, completion = every step's tokens), its verdict and tree path."""

    generation: Generation
    reward: float
    usable: bool
    correct: bool
    trajectory: Trajectory | None
    """The path in the tree; None for an unusable verdict (kept out of the tree's estimates
    and masked out of the loss)."""
    branch_depth: int = 0
    """Steps of the shared prefix this leaf continued (0: an independent sample)."""
    new_tokens: int = 0
    """Tokens generated for this leaf (its continuation after the shared prefix)."""


@dataclass
class ProblemTree:
    """The rollout tree of one problem and its leaves in sampling order."""

    problem_id: str
    prompt: str
    prefix: str
    prompt_ids: list[int]
    prefix_ids: list[int]
    tree: RolloutTree = field(default_factory=RolloutTree)
    leaves: list[Leaf] = field(default_factory=list)


class TreeSampler:
    """Grows one `RolloutTree` per problem (the paper's IBTree; docs/algorithms.md, IB-TPO): B0
    independent samples from the root, then L - 1 rounds that each continue the top-K branchable
    nodes by the strategy B times, to the end of the response. With `rounds=1` it is plain
    independent sampling, the baseline of the branching benchmark. A continuation is sampled from
    the token ids of `prompt + response prefix + node prefix`: shared prefixes are never
    regenerated, and their tokens count once in `RolloutTree.generated_tokens`. `sampling` holds the
    token budget of a whole root-to-leaf response; the keyword arguments are `IBTPOConfig`'s fields
    (`beta` is its `ib_beta`)."""

    def __init__(self, policy: Policy, env: Any, sampling: SamplingConfig, *,
                 initial_samples: int = 4, rounds: int = 9, top_k: int = 1, branches: int = 1,
                 strategy: str = "ib", beta: float = 5.0, delimiter: str = "\n",
                 step_probability: str = "mean", micro_batch_size: int = 64) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        check_step_probability(step_probability)
        if min(initial_samples, rounds, top_k, branches) < 1:
            raise ValueError("initial_samples, rounds, top_k and branches must be >= 1")
        self.policy, self.env, self.sampling = policy, env, sampling
        self.initial_samples, self.rounds = initial_samples, rounds
        self.top_k, self.branches = top_k, branches
        self.strategy, self.beta, self.delimiter = strategy, beta, delimiter
        self.step_probability = step_probability
        self.micro_batch_size = micro_batch_size

    @property
    def trajectories_per_tree(self) -> int:
        return self.initial_samples + (self.rounds - 1) * self.top_k * self.branches

    def sample(self, heads: Sequence[Head]) -> list[ProblemTree]:
        """Trees for the problems of `heads`, the `(observation, info)` pairs of `env.reset`,
        grown together (one batched generation call per round). Randomness (sampling, random
        branching, tie-breaking) comes from torch's global RNG."""
        trees = []
        for observation, info in heads:
            prompt, prefix = split_prefix(observation, info)
            trees.append(ProblemTree(str(info["problem_id"]), prompt, prefix,
                                     self.policy.encode_prompt(prompt), self.policy.encode(prefix),
                                     RolloutTree(self.step_probability)))
        self._expand([(t, t.tree.root) for t in trees for _ in range(self.initial_samples)])
        for _ in range(self.rounds - 1):
            self._expand([(t, node) for t in trees for node in self.select(t.tree)
                          for _ in range(self.branches)])
        return trees

    def select(self, tree: RolloutTree) -> list[Node]:
        """The top-K branchable nodes by the strategy (ties broken at random)."""
        candidates = tree.branchable()
        k = min(self.top_k, len(candidates))
        if self.strategy == "random":
            return [candidates[int(i)] for i in torch.randperm(len(candidates))[:k]]
        if self.strategy == "ib":
            scores = [tree.ib_score(v, self.beta) for v in candidates]
        else:
            scores = [tree.entropy_score(v) for v in candidates]
        tie_break = torch.rand(len(candidates)).numpy()
        order = np.lexsort((tie_break, -np.asarray(scores)))
        return [candidates[int(i)] for i in order[:k]]

    def _expand(self, requests: Sequence[tuple[ProblemTree, Node]]) -> None:
        """Sample one continuation per (tree, node) to the end of the response, score them all
        through the env in one batch and add each to its tree."""
        if not requests:
            return
        tok = self.policy.tokenizer
        node_ids = [[t for n in node.prefix() for t in n.step.token_ids]  # type: ignore[union-attr]
                    for _, node in requests]
        contexts = [t.prompt_ids + t.prefix_ids + ids
                    for (t, _), ids in zip(requests, node_ids, strict=True)]
        outputs = self.policy.backend.generate(contexts, self.sampling)
        gens = []
        for (t, node), ids, (out, reason) in zip(requests, node_ids, outputs, strict=True):
            # A root-to-leaf response gets max_new_tokens: a continuation keeps what its
            # node's prefix left (sampled with the full budget, then cut).
            room = self.sampling.max_new_tokens - len(ids)
            if len(out) > room:
                out, reason = out[:room], "length"
            gens.append(Generation(t.prompt, t.prefix + node.text(), self.policy.decode(out),
                                   t.prompt_ids, t.prefix_ids + ids, out, reason))
        logprobs = generated_logprobs(self.policy, gens, self.sampling.temperature or 1.0,
                                      self.micro_batch_size)
        responses = [node.text() + gen.text for (_, node), gen in zip(requests, gens, strict=True)]
        scored = score(self.env, [t.problem_id for t, _ in requests], responses,
                       [t.prefix for t, _ in requests])
        for (t, node), ids, gen, lp, response, s in zip(requests, node_ids, gens, logprobs,
                                                        responses, scored, strict=True):
            trajectory = None
            if s.usable and gen.completion_ids:
                steps = split_steps(gen.completion_ids, lp,
                                    lambda i: tok.decode(i, skip_special_tokens=True),
                                    self.delimiter)
                trajectory = t.tree.add(node, steps, s.reward)
            else:
                t.tree.generated_tokens += len(gen.completion_ids)
            path = Generation(t.prompt, t.prefix, response, t.prompt_ids, t.prefix_ids,
                              ids + gen.completion_ids, gen.finish_reason)
            t.leaves.append(Leaf(path, s.reward, trajectory is not None, s.correct, trajectory,
                                 node.depth, len(gen.completion_ids)))


@torch.no_grad()
def generated_logprobs(policy: Policy, generations: Sequence[Generation], temperature: float,
                       micro_batch_size: int = 64) -> list[list[float]]:
    """Each generation's completion-token log-probs under `policy` at `temperature`."""
    out: list[list[float]] = []
    for i in range(0, len(generations), micro_batch_size):
        chunk = generations[i:i + micro_batch_size]
        batch = policy.batch(chunk)
        logp, _ = policy.token_logprobs(batch, temperature)
        logp = logp.float().cpu()
        for row, g in enumerate(chunk):
            start = len(g.prompt_ids) + len(g.prefix_ids) - 1
            out.append(logp[row, start:start + len(g.completion_ids)].tolist())
    return out


def tree_metrics(trees: Sequence[ProblemTree], beta: float) -> dict[str, float]:
    """Monitors of a batch of trees: `eff_rate` (share of trees whose leaf rewards differ),
    leaf `accuracy`, `eta_cov` (mean of `RolloutTree.eta_covariance`),
    `generated_tokens_per_problem` (shared prefixes once) and `trajectories_per_1k_tokens`."""
    tokens = sum(t.tree.generated_tokens for t in trees)
    leaves = sum(len(t.leaves) for t in trees)
    return {
        "eff_rate": eff_rate([leaf.reward for leaf in t.leaves if leaf.usable] for t in trees),
        "accuracy": float(np.mean([leaf.correct for t in trees for leaf in t.leaves])),
        "eta_cov": float(np.mean([t.tree.eta_covariance(beta) for t in trees])),
        "generated_tokens_per_problem": tokens / max(len(trees), 1),
        "trajectories_per_1k_tokens": 1000.0 * leaves / max(tokens, 1),
    }


def spread_step_advantages(step_lengths: Sequence[Sequence[int]],
                           step_advantages: Sequence[Sequence[float]],
                           starts: Sequence[int], width: int) -> torch.Tensor:
    """Per-token advantages [B, width]: row i holds step j's advantage on that step's
    `step_lengths[i][j]` tokens, starting at column `starts[i]` (where row i's completion
    begins in the target-aligned layout of `Policy.batch`); zero elsewhere."""
    out = torch.zeros(len(step_lengths), width)
    for i, (lengths, advantages) in enumerate(zip(step_lengths, step_advantages, strict=True)):
        if len(lengths) != len(advantages):
            raise ValueError(f"row {i}: {len(lengths)} steps but {len(advantages)} advantages")
        col = starts[i]
        for n, a in zip(lengths, advantages, strict=True):
            out[i, col:col + n] = a
            col += n
        if col > width:
            raise ValueError(f"row {i} needs {col} columns, more than width {width}")
    return out


@dataclass
class TreeRollout(Rollout):
    """A rollout whose groups are the leaves of `trees` (one group per tree)."""

    trees: list[ProblemTree] = field(default_factory=list)


class IBTPO(PolicyGradient):
    """The GRPO objective on IB-guided rollout trees with step-level advantages:
    `IBTPO(policy, env, config, eval_env).learn(steps)` (arguments: `Trainer`). Each step
    grows `prompts_per_step` trees and trains on every root-to-leaf path, each token with the
    advantage A = A_GL + lambda A_IB of its step (`RolloutTree.step_advantages`)."""

    config_class = IBTPOConfig
    config: IBTPOConfig

    def __init__(self, policy: Policy | str | Path, env: Any, config: IBTPOConfig | None = None,
                 eval_env: Any = None) -> None:
        super().__init__(policy, env, config, eval_env)
        c = self.config
        self.sampler = TreeSampler(
            self.policy, env, c.sampling(), initial_samples=c.initial_samples,
            rounds=c.rounds, top_k=c.top_k, branches=c.branches, strategy=c.strategy,
            beta=c.ib_beta, delimiter=c.delimiter, step_probability=c.step_probability,
            micro_batch_size=c.micro_batch_size)

    def _needs_reference(self) -> bool:
        return self.config.beta != 0.0 or self.config.reference_confidence

    def collect(self) -> TreeRollout:
        """Grow `prompts_per_step` trees, one group of G leaves each, with the step advantages
        of their paths (`token_advantages`) and the `tree_metrics` not among the step's own."""
        start = time.perf_counter()
        self._seed_env()
        trees = self.sampler.sample(draw(self.env, self.prompts_per_rank))
        groups = [Group(t.problem_id, [leaf.generation for leaf in t.leaves],
                        [leaf.reward for leaf in t.leaves], [leaf.usable for leaf in t.leaves],
                        [leaf.correct for leaf in t.leaves]) for t in trees]
        seconds = time.perf_counter() - start
        stats = {k: v for k, v in tree_metrics(trees, self.config.ib_beta).items()
                 if k not in ("eff_rate", "accuracy")}
        return TreeRollout(groups=groups, sampled_groups=groups,
                           generated_tokens=sum(t.tree.generated_tokens for t in trees),
                           seconds=seconds, advantages=self.token_advantages(trees),
                           stats=stats, trees=trees)

    def token_advantages(self, trees: Sequence[ProblemTree]) -> torch.Tensor:
        """[B, L-1] advantages of every leaf's path in group order, aligned with `Policy.batch`
        of the leaves' generations (zero outside generated tokens and on unusable leaves),
        after setting `Node.ref_confidence` from the reference with `reference_confidence`."""
        c = self.config
        if c.reference_confidence:
            self._set_reference_confidence([leaf for t in trees for leaf in t.leaves])
        lengths: list[list[int]] = []
        values: list[list[float]] = []
        starts: list[int] = []
        width = 0
        for t in trees:
            per_path = dict(zip(map(id, t.tree.trajectories),
                                t.tree.step_advantages(c.ib_beta, c.lam, c.std_eps), strict=True))
            for leaf in t.leaves:
                g = leaf.generation
                starts.append(len(g.prompt_ids) + len(g.prefix_ids) - 1)
                width = max(width, starts[-1] + len(g.completion_ids))
                nodes = leaf.trajectory.nodes if leaf.trajectory is not None else []
                lengths.append([len(n.step.token_ids) for n in nodes if n.step is not None])
                values.append(per_path[id(leaf.trajectory)] if nodes else [])
        return spread_step_advantages(lengths, values, starts, width)

    def _set_reference_confidence(self, leaves: Sequence[Leaf]) -> None:
        """pi_ref(s) of every node on the leaves' paths from the reference model's token
        log-probabilities, once per node (a node shared by several paths has one context)."""
        todo = [leaf for leaf in leaves if leaf.trajectory is not None
                and any(n.ref_confidence is None for n in leaf.trajectory.nodes)]
        if not todo:
            return
        with self.reference_model() as reference:
            ref_policy = Policy(reference, self.policy.tokenizer, self.policy.backend,
                                self.policy.compute_dtype)
            logprobs = generated_logprobs(ref_policy, [leaf.generation for leaf in todo],
                                          self.config.temperature or 1.0,
                                          self.config.micro_batch_size)
        for leaf, lp in zip(todo, logprobs, strict=True):
            col = 0
            for node in leaf.trajectory.nodes:  # type: ignore[union-attr]
                n = len(node.step.token_ids)  # type: ignore[union-attr]
                if node.ref_confidence is None:
                    node.ref_confidence = step_probability(lp[col:col + n],
                                                           self.config.step_probability)
                col += n
