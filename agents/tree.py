"""The prefix tree of reasoning steps behind IB-TPO (docs/algorithms.md, IB-TPO): success
estimates, generated tokens, the IB-Score that chooses where to branch, and step-level
advantages. A node is one reasoning step (the text between two delimiters) with the tokens the
policy generated for it; paths that share a prefix share its nodes and count its tokens once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Step:
    """One generated step: its text, token ids and the sampling policy's token log-probs."""

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.token_ids) != len(self.logprobs):
            raise ValueError("a step needs one log-probability per token")


STEP_PROBABILITIES: tuple[str, ...] = ("mean", "product")


def check_step_probability(how: str) -> None:
    """ValueError unless `how` names a way to read a step's probability."""
    if how not in STEP_PROBABILITIES:
        raise ValueError(f"step_probability must be one of {STEP_PROBABILITIES} ('mean': "
                         f"length-normalised, for steps of any length), got {how!r}")


def step_probability(logprobs: Sequence[float], how: str = "mean") -> float:
    """pi(s | prefix) of a step from its tokens' log-probabilities: 'mean' exp(mean log p),
    'product' exp(sum log p); 1.0 for a step without tokens."""
    check_step_probability(how)
    if not len(logprobs):
        return 1.0
    total = float(sum(logprobs))
    return math.exp(total / len(logprobs) if how == "mean" else total)


@dataclass(eq=False)
class Node:
    """A step in the tree. The root holds no step (it is the question)."""

    step: Step | None
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    visits: int = 0  # trajectories through this node
    correct: float = 0.0  # summed rewards of those trajectories
    ref_confidence: float | None = None  # the reference policy's probability of the step

    @property
    def depth(self) -> int:
        return 0 if self.parent is None else self.parent.depth + 1

    def prefix(self) -> list[Node]:
        """Nodes from the first step down to this one (the root excluded)."""
        path, node = [], self
        while node.parent is not None:
            path.append(node)
            node = node.parent
        return path[::-1]

    def text(self) -> str:
        """The response text up to and including this step."""
        return "".join(n.step.text for n in self.prefix() if n.step is not None)

    def success(self, smoothed: bool = True) -> float:
        """Share of correct trajectories through this node (Laplace-smoothed by default)."""
        if smoothed:
            return (self.correct + 0.5) / (self.visits + 1)
        return self.correct / self.visits if self.visits else 0.0


@dataclass
class Trajectory:
    """A root-to-leaf path: its nodes and its outcome reward."""

    nodes: list[Node]
    reward: float

    def text(self) -> str:
        return self.nodes[-1].text() if self.nodes else ""


class RolloutTree:
    """Trajectories of one question, sharing prefixes. Build it with `add(parent, steps,
    reward)`: `steps` continue the response after `parent` (the root for an independent
    sample), and the reward propagates to every ancestor. `step_probability` is how eta2 and
    pi_ref of a step are read from its token log-probabilities (`step_probability`)."""

    def __init__(self, step_probability: str = "mean") -> None:
        check_step_probability(step_probability)
        self.step_probability = step_probability
        self.root = Node(step=None)
        self.trajectories: list[Trajectory] = []
        self.generated_tokens = 0

    def add(self, parent: Node, steps: Sequence[Step], reward: float) -> Trajectory:
        if not 0.0 <= reward <= 1.0:
            raise ValueError(f"reward must lie in [0, 1], got {reward}")
        if not steps:
            raise ValueError("a continuation needs at least one step")
        path = parent.prefix()
        node = parent
        for step in steps:
            same = next((c for c in node.children if c.step is not None
                         and c.step.token_ids == step.token_ids), None)
            if same is None:
                same = Node(step=step, parent=node)
                node.children.append(same)
            node = same
            path.append(node)
        # Tokens generated for this continuation, even where they repeat a sibling's text.
        self.generated_tokens += sum(len(s.token_ids) for s in steps)
        ancestor: Node | None = node
        while ancestor is not None:
            ancestor.visits += 1
            ancestor.correct += reward
            ancestor = ancestor.parent
        trajectory = Trajectory(path, reward)
        self.trajectories.append(trajectory)
        return trajectory

    def nodes(self) -> Iterator[Node]:
        """All nodes, root first, depth-first."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def branchable(self) -> list[Node]:
        """Nodes a new branch may start from: the root and every node with children (a leaf
        holds the final answer line, so branching there would only re-answer)."""
        return [n for n in self.nodes() if n.children]

    def eta(self, node: Node, beta: float) -> tuple[float, float]:
        """(eta1, eta2) of a non-root node: information gain p(s)/p(parent) - (1 + 1/beta) and
        the policy's confidence in the step (docs/algorithms.md, IB-TPO)."""
        assert node.parent is not None and node.step is not None
        gain = node.success() / node.parent.success() - (1.0 + 1.0 / beta)
        return gain, step_probability(node.step.logprobs, self.step_probability)

    def ib_score(self, node: Node, beta: float) -> float:
        """IB-Score(v) = (1 + beta) / B * sum_b eta1(s_b) eta2(s_b) over v's children, each
        weighted by its visits (docs/algorithms.md, IB-TPO)."""
        _check_beta(beta)
        total = sum(c.visits for c in node.children)
        if total == 0:
            raise ValueError("IB-Score needs a node with visited children")
        weighted = sum(c.visits * math.prod(self.eta(c, beta)) for c in node.children)
        return (1.0 + beta) / total * weighted

    def entropy_score(self, node: Node) -> float:
        """Mean per-token surprisal of the steps under `node`, the entropy baseline's score."""
        tokens = [lp for c in node.children if c.step for lp in c.step.logprobs]
        return -float(np.mean(tokens)) if tokens else 0.0

    def eta_covariance(self, beta: float) -> float:
        """Visit-weighted Cov(eta1, eta2) over all steps of the tree: positive when the policy
        is more confident in steps that raise the chance of a correct answer."""
        pairs = [(*self.eta(n, beta), n.visits) for n in self.nodes() if n.parent is not None]
        if len(pairs) < 2:
            return 0.0
        e1, e2, w = (np.array(x, dtype=float) for x in zip(*pairs, strict=True))
        m1, m2 = np.average(e1, weights=w), np.average(e2, weights=w)
        return float(np.average((e1 - m1) * (e2 - m2), weights=w))

    def step_advantages(self, beta: float, lam: float, eps: float = 1e-4
                        ) -> list[list[float]]:
        """Per trajectory, the advantage A(s) = A_GL(s) + lam * A_IB(s) of each of its steps
        (docs/algorithms.md, IB-TPO), pi_ref(s) of A_IB being the node's `ref_confidence`, or
        where it was not set the sampling policy's step probability (`eta`)."""
        _check_beta(beta)
        rewards = np.array([t.reward for t in self.trajectories], dtype=float)
        scale = (rewards.std(ddof=1) if len(rewards) > 1 else 0.0) + eps
        root_p = self.root.success(smoothed=False)
        out = []
        for trajectory in self.trajectories:
            advantages = []
            for node in trajectory.nodes:
                a_gl = (node.success(smoothed=False) - root_p) / scale
                gain, confidence = self.eta(node, beta)
                ref = confidence if node.ref_confidence is None else node.ref_confidence
                advantages.append(a_gl + lam * gain * ref)
            out.append(advantages)
        return out


def _check_beta(beta: float) -> None:
    if beta <= 0:
        raise ValueError(f"beta must be positive (the paper uses 5), got {beta}")


def split_steps(token_ids: Sequence[int], logprobs: Sequence[float],
                text_of: Callable[[list[int]], str], delimiter: str = "\n") -> list[Step]:
    """Cut a generated response into steps at the token boundary where the step's decoded
    text (`text_of(ids)`) first contains `delimiter`, which stays with the step it ends. Every
    token belongs to exactly one step; a token straddling the delimiter (BPE's "\n\nThe")
    ends its step."""
    if len(token_ids) != len(logprobs):
        raise ValueError("token_ids and logprobs must have the same length")
    if not delimiter:
        raise ValueError("delimiter must be a non-empty string")
    steps, start = [], 0
    for end in range(1, len(token_ids) + 1):
        ids = [int(t) for t in token_ids[start:end]]
        text = text_of(ids)
        if delimiter in text or end == len(token_ids):
            steps.append(Step(text, tuple(ids), tuple(float(x) for x in logprobs[start:end])))
            start = end
    return steps
