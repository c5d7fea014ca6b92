"""IB-TPO: tree rollouts (token accounting, leaf count, branching choice), the spreading of
step advantages over tokens, a short learn run, resume and the CLI."""

import json
import math
from dataclasses import fields

import pytest
import torch

from rlvr_gym.agents.ibtpo import (
    IBTPO,
    IBTPOConfig,
    TreeSampler,
    spread_step_advantages,
    tree_metrics,
)
from rlvr_gym.agents.policy import GenerationBackend, Policy, SamplingConfig
from rlvr_gym.agents.rollout import score
from rlvr_gym.agents.tree import RolloutTree, Step, step_probability
from rlvr_gym.envs.registry import make_task_env
from rlvr_gym.types import Status, Verdict


class TwoLines(GenerationBackend):
    """Scripted sampler: every continuation is "d\\ne" + EOS with digits d, e drawn from 1-2
    by torch's RNG (two steps of 2 tokens each); records the contexts it was given."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.contexts = []

    def generate(self, contexts, sampling):
        out = []
        for context in contexts:
            self.contexts.append(list(context))
            d, e = (int(x) for x in torch.randint(1, 3, (2,)))
            ids = self.tokenizer(f"{d}\n{e}", add_special_tokens=False)["input_ids"]
            out.append((ids + [self.tokenizer.eos_token_id], "stop"))
        return out

    def sync_weights(self):
        pass


class EndsInOne:
    """Scripted verifier: correct when the response ends in "1"; records what it judged."""

    def __init__(self):
        self.responses = []

    def verify(self, response, problem):
        self.responses.append(response)
        ok = response.endswith("1")
        return Verdict(Status.CORRECT if ok else Status.INCORRECT, float(ok))


def scripted(micro_model_dir):
    policy = Policy.from_pretrained(micro_model_dir, device="cpu")
    policy.backend = TwoLines(policy.tokenizer)
    verifier = EndsInOne()
    env = make_task_env("arithmetic", prompt="{question}\n", verifier=verifier, operators="+",
                        max_operands=2)
    return policy, env, verifier


def heads(env, n):
    env.reset(seed=0)
    return [env.reset() for _ in range(n)]


@pytest.mark.parametrize("strategy", ["ib", "entropy", "random"])
def test_tree_rollouts_count_tokens_once_and_grow_g_leaves(micro_model_dir, strategy):
    torch.manual_seed(0)
    policy, env, verifier = scripted(micro_model_dir)
    sampler = TreeSampler(policy, env, SamplingConfig(max_new_tokens=64), initial_samples=3,
                          rounds=4, top_k=2, branches=2, strategy=strategy)
    trees = sampler.sample(heads(env, 3))
    g = 3 + (4 - 1) * 2 * 2
    assert sampler.trajectories_per_tree == g
    assert [len(t.leaves) for t in trees] == [g] * 3
    assert [len(t.tree.trajectories) for t in trees] == [g] * 3
    for t in trees:
        # Every continuation generated exactly 4 tokens; a branch's prefix is context only.
        assert t.tree.generated_tokens == 4 * g
        paths = sum(len(leaf.generation.completion_ids) for leaf in t.leaves)
        own = [c for c in policy.backend.contexts if c[:len(t.prompt_ids)] == t.prompt_ids]
        prefix_tokens = sum(len(c) - len(t.prompt_ids) for c in own)
        assert paths == t.tree.generated_tokens + prefix_tokens
        for i, leaf in enumerate(t.leaves):
            ids = leaf.generation.completion_ids
            node_ids = [i for n in leaf.trajectory.nodes for i in n.step.token_ids]
            assert node_ids == ids and leaf.generation.prompt_ids == t.prompt_ids
            # A leaf records where it left the shared prefix and what it generated after it.
            shared = leaf.trajectory.nodes[:leaf.branch_depth]
            assert leaf.new_tokens == 4
            assert len(ids) == sum(len(n.step.token_ids) for n in shared) + leaf.new_tokens
            assert leaf.branch_depth == 0 or i >= 3  # the B0 = 3 first leaves start at the root
        assert sum(leaf.new_tokens for leaf in t.leaves) == t.tree.generated_tokens
    assert any(leaf.branch_depth > 0 for t in trees for leaf in t.leaves)
    # the env judged each full response (node prefix + new text) once
    assert sorted(verifier.responses) == sorted(leaf.generation.response for t in trees
                                                for leaf in t.leaves)
    assert any(len(c) > len(t.prompt_ids) for t in trees for c in policy.backend.contexts)


def test_each_round_scores_its_leaves_in_one_batch(micro_model_dir, monkeypatch):
    import rlvr_gym.agents.ibtpo as ibtpo

    batches = []

    def counted(env, problems, actions, prefixes=None):
        batches.append(len(actions))
        return score(env, problems, actions, prefixes)

    monkeypatch.setattr(ibtpo, "score", counted)
    torch.manual_seed(0)
    policy, env, _ = scripted(micro_model_dir)
    TreeSampler(policy, env, SamplingConfig(max_new_tokens=8), initial_samples=3, rounds=4,
                top_k=2, branches=1, strategy="random").sample(heads(env, 2))
    assert batches == [2 * 3, 2 * 2, 2 * 2, 2 * 2]


def test_a_root_to_leaf_response_keeps_the_token_budget_of_a_sample(micro_model_dir):
    torch.manual_seed(0)
    policy, env, _ = scripted(micro_model_dir)
    # Each continuation is "d\ne" + EOS (4 tokens): a branch below the first step ("d\n",
    # 2 tokens) may only add 3 more under a budget of 5.
    trees = TreeSampler(policy, env, SamplingConfig(max_new_tokens=5), initial_samples=2,
                        rounds=6, strategy="random").sample(heads(env, 4))
    leaves = [leaf for t in trees for leaf in t.leaves]
    assert all(len(leaf.generation.completion_ids) <= 5 for leaf in leaves)
    deep = [leaf for leaf in leaves if leaf.branch_depth == 1]
    assert deep and all(leaf.new_tokens == 3 and leaf.generation.finish_reason == "length"
                        for leaf in deep)
    assert all(leaf.new_tokens == 4 for leaf in leaves if leaf.branch_depth == 0)
    assert sum(t.tree.generated_tokens for t in trees) == sum(leaf.new_tokens for leaf in leaves)


def test_independent_sampling_is_a_one_round_tree(micro_model_dir):
    torch.manual_seed(0)
    policy, env, _ = scripted(micro_model_dir)
    trees = TreeSampler(policy, env, SamplingConfig(max_new_tokens=8), initial_samples=5,
                        rounds=1).sample(heads(env, 2))
    metrics = tree_metrics(trees, beta=5)
    assert metrics["generated_tokens_per_problem"] == 20
    assert metrics["trajectories_per_1k_tokens"] == pytest.approx(1000 * 5 / 20)
    assert len(policy.backend.contexts) == 10


def step(name, *probs):
    return Step(name, tuple(hash((name, i)) % 1000 for i in range(len(probs))),
                tuple(math.log(p) for p in probs))


def hand_built_tree():
    """The tree of test_tree.py: IB-Score root -0.16, A +0.3; mean child surprisal root
    (2 log 2 - log .4) / 3 = .767, A (-log .8 - log .2) / 2 = .916."""
    t = RolloutTree()
    a = t.add(t.root, [step("A", 0.5, 0.5), step("B1", 0.8)], reward=1.0).nodes[0]
    t.add(a, [step("B2", 0.2)], reward=0.0)
    t.add(t.root, [step("C", 0.4)], reward=0.0)
    return t, a


@pytest.mark.parametrize("strategy", ["ib", "entropy"])
def test_branching_picks_the_top_scoring_node(strategy):
    tree, a = hand_built_tree()
    sampler = TreeSampler(None, None, SamplingConfig(), top_k=1, strategy=strategy)
    assert sampler.select(tree) == [a]
    sampler.top_k = 5  # more than there are candidates: all of them, best first
    assert sampler.select(tree) == [a, tree.root]


def test_ib_branching_follows_the_score_not_the_order():
    # Both continuations under A succeed: A is settled, IB-Score 3 (-.3 * .8 - .3 * .2) = -.9,
    # while the root (A .833/.625 - 1.2 = 2/15 twice, C .25/.625 - 1.2 = -.8) scores
    # 2 (2 * 2/15 * .5 - .8 * .4) = -.373, so the root is branched now.
    tree = RolloutTree()
    a = tree.add(tree.root, [step("A", 0.5, 0.5), step("B1", 0.8)], reward=1.0).nodes[0]
    tree.add(a, [step("B2", 0.2)], reward=1.0)
    tree.add(tree.root, [step("C", 0.4)], reward=0.0)
    assert tree.ib_score(a, 5) == pytest.approx(-0.9)
    assert tree.ib_score(tree.root, 5) == pytest.approx(2 * (2 * 2 / 15 * 0.5 - 0.8 * 0.4))
    sampler = TreeSampler(None, None, SamplingConfig(), top_k=1, strategy="ib")
    assert sampler.select(tree) == [tree.root]


def test_random_branching_picks_distinct_nodes():
    tree, _ = hand_built_tree()
    sampler = TreeSampler(None, None, SamplingConfig(), top_k=2, strategy="random")
    torch.manual_seed(0)
    chosen = sampler.select(tree)
    assert len(chosen) == 2 and set(chosen) == set(tree.branchable())


def test_step_advantages_are_spread_over_each_steps_tokens():
    out = spread_step_advantages([[2, 1], [3]], [[0.5, -1.0], [2.0]], starts=[3, 1], width=7)
    assert out.tolist() == [[0, 0, 0, 0.5, 0.5, -1.0, 0],
                            [0, 2.0, 2.0, 2.0, 0, 0, 0]]
    with pytest.raises(ValueError, match="steps but"):
        spread_step_advantages([[2]], [[0.5, 1.0]], starts=[0], width=4)


def small_config(**overrides):
    values = dict(prompts_per_step=3, initial_samples=2, rounds=3, top_k=1, branches=2,
                  max_new_tokens=8, lr=1e-2, micro_batch_size=8, eval_problems=3,
                  eval_samples=2, eval_k=(1, 2), device="cpu", seed=3)
    return IBTPOConfig(**{**values, **overrides})


def test_collect_carries_each_leafs_step_advantages_and_the_tree_monitors(micro_model_dir):
    torch.manual_seed(0)
    policy, env, _ = scripted(micro_model_dir)
    agent = IBTPO(policy, env, small_config())
    rollout = agent.collect()
    advantages = rollout.advantages
    gens = [g for group in rollout.groups for g in group.generations]
    batch = policy.batch(gens)
    assert advantages.shape == batch.completion_mask.shape
    assert torch.all(advantages[batch.completion_mask == 0] == 0)
    row = 0
    for t in rollout.trees:
        expected = t.tree.step_advantages(5.0, 0.1)
        for leaf, per_step in zip(t.leaves, expected, strict=True):
            start = len(leaf.generation.prompt_ids) - 1
            tokens = [a for n, adv in zip(leaf.trajectory.nodes, per_step, strict=True)
                      for a in [adv] * len(n.step.token_ids)]
            assert advantages[row, start:start + len(tokens)].tolist() == pytest.approx(tokens)
            row += 1
    # pi_ref came from the frozen reference: every node on a path has its confidence
    assert all(n.ref_confidence is not None for t in rollout.trees for n in t.tree.nodes()
               if n.step is not None)
    monitors = tree_metrics(rollout.trees, 5.0)
    assert rollout.stats == {k: v for k, v in monitors.items()
                             if k not in ("eff_rate", "accuracy")}
    assert rollout.generated_tokens == sum(t.tree.generated_tokens for t in rollout.trees)


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_without_reference_confidence_pi_ref_is_the_sampling_policys(micro_model_dir, beta):
    torch.manual_seed(0)
    policy, env, _ = scripted(micro_model_dir)
    agent = IBTPO(policy, env, small_config(reference_confidence=False, beta=beta))
    # The frozen copy is kept only for the KL term.
    assert (agent.reference is not None) == (beta != 0)
    rollout = agent.collect()
    assert all(n.ref_confidence is None for t in rollout.trees for n in t.tree.nodes())
    assert IBTPO(policy, env, small_config()).reference is not None


def test_product_step_probability_reaches_the_trees_and_pi_ref(micro_model_dir):
    torch.manual_seed(0)
    policy, env, _ = scripted(micro_model_dir)
    agent = IBTPO(policy, env, small_config(step_probability="product"))
    rollout = agent.collect()
    nodes = [n for t in rollout.trees for n in t.tree.nodes() if n.step is not None]
    assert all(t.tree.step_probability == "product" for t in rollout.trees)
    # Before any update the reference is the sampling policy: pi_ref(s) = pi(s) = prod p.
    assert [n.ref_confidence for n in nodes] == pytest.approx(
        [math.exp(sum(n.step.logprobs)) for n in nodes], rel=1e-4)
    assert any(len(n.step.logprobs) > 1 and n.ref_confidence < step_probability(
        n.step.logprobs, "mean") for n in nodes)


def test_short_learn_run_updates_and_logs_tree_monitors(micro_model_dir, make_env, tmp_path):
    torch.manual_seed(0)
    policy, env, _ = scripted(micro_model_dir)
    agent = IBTPO(policy, env, small_config(output_dir=str(tmp_path)), eval_env=make_env(1))
    before = [p.detach().clone() for p in agent.policy.model.parameters()]
    seen = []
    agent.learn(2, callback=lambda a, m: seen.append(m), progress_bar=False)
    assert agent.num_steps == 2 and [e["step"] for e in agent.eval_history] == [0, 2]
    for key in ("reward", "eff_rate", "eta_cov", "trajectories_per_1k_tokens",
                "generated_tokens_per_problem", "grad_norm", "loss"):
        assert key in seen[0], key
    assert seen[0]["trained_sequences"] == 3 * (2 + 2 * 2)
    after = list(agent.policy.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert (tmp_path / "metrics.jsonl").exists()


def test_save_load_resumes_exactly(micro_model_dir, tmp_path):
    def agent():
        policy, env, _ = scripted(micro_model_dir)
        return IBTPO(policy, env, small_config(strategy="random"))

    straight = agent()
    straight.learn(2, progress_bar=False)
    first = agent()
    first.learn(1, progress_bar=False)
    first.save(tmp_path / "ckpt")
    policy, env, _ = scripted(micro_model_dir)
    resumed = IBTPO.load(tmp_path / "ckpt", env)
    assert isinstance(resumed.config, IBTPOConfig) and resumed.config.strategy == "random"
    resumed.policy.backend = TwoLines(resumed.policy.tokenizer)
    resumed.sampler.policy = resumed.policy
    resumed.learn(1, progress_bar=False)
    for a, b in zip(straight.policy.model.parameters(), resumed.policy.model.parameters(),
                    strict=True):
        assert torch.equal(a, b)


def test_config_derives_g_and_documents_every_field():
    config = IBTPOConfig()
    assert (config.initial_samples, config.rounds, config.top_k, config.branches) == (4, 9, 1, 1)
    assert config.group_size == config.trajectories_per_tree == 12
    helps = IBTPOConfig.field_help()
    assert all(helps.get(f.name) for f in fields(IBTPOConfig))
    with pytest.raises(ValueError, match="strategy"):
        IBTPOConfig(strategy="widest")
    with pytest.raises(ValueError, match="dynamic_sampling"):
        IBTPOConfig(dynamic_sampling=True)
    with pytest.raises(ValueError, match="group_size is derived"):
        IBTPOConfig(group_size=5)
    with pytest.raises(ValueError, match="step_probability"):
        IBTPOConfig(step_probability="sum")


def test_cli_trains_ibtpo(tmp_path, capsys):
    from rlvr_gym.cli import main

    out = tmp_path / "run"
    assert main(["train", "--agent", "ibtpo", "--output", str(out), "--steps", "1",
                 "--no-progress", "--threads", "1", "--set", "prompts_per_step=2",
                 "--set", "initial_samples=2", "--set", "rounds=2", "--set", "max_new_tokens=8",
                 "--set", "eval_problems=2", "--set", "eval_samples=0"]) == 0
    assert "held-out after:" in capsys.readouterr().out
    saved = json.loads((out / "agent" / "agent.json").read_text())
    assert saved["agent"] == "IBTPO" and saved["config"]["rounds"] == 2
