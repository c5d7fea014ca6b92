"""MRT: the meta-prover, the training signals, budget forcing, regret, the agent and the CLI."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlvr_gym.agents.grpo import group_advantages
from rlvr_gym.agents.mrt import (
    MRT,
    MetaProver,
    MRTConfig,
    budget_forcing,
    generate_within,
    progress_signal,
    regret_traces,
    summarize_regret,
    termination_signal,
)
from rlvr_gym.agents.policy import Generation, SamplingConfig
from rlvr_gym.agents.rollout import Group
from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, build_char_tokenizer
from rlvr_gym.cli import main
from rlvr_gym.verifiers.math import MathVerifier
from rlvr_gym.wrappers.budget import normalized_regret

SUFFIX = "\n\\boxed{"


class ScriptedPolicy:
    """Stands in for `Policy`: `respond(prompt, prefix)` -> (text, finish_reason); records
    every (prompt, prefix) it was asked to continue."""

    def __init__(self, respond):
        self.respond = respond
        self.tokenizer = build_char_tokenizer()
        self.calls: list[tuple[str, str]] = []

    def encode(self, text):
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, prompts, sampling, prefixes=None):
        prefixes = prefixes or [""] * len(prompts)
        out = []
        for prompt, prefix in zip(prompts, prefixes, strict=True):
            self.calls.append((prompt, prefix))
            text, reason = self.respond(prompt, prefix)
            ids = self.encode(text)[:sampling.max_new_tokens]
            text = self.tokenizer.decode(ids)
            if reason == "stop" and len(ids) < sampling.max_new_tokens:
                ids = ids + [self.tokenizer.eos_token_id]
            else:
                reason = "length"
            out.append(Generation(prompt, prefix, text, self.encode(prompt), self.encode(prefix),
                                  ids, reason))
        return out


def strict_env(seed: int = 1):
    """The default task verified on `\\boxed{}` only (an unclosed box is no answer)."""
    return gym.make(DEFAULT_ENV_ID, seed=seed, verifier=MathVerifier(last_number_fallback=False),
                    **DEFAULT_ENV_KWARGS)


class Recorder(gym.Wrapper):
    """Records every action `step` receives; `reward`/`drop_verdict` script what it returns."""

    def __init__(self, env, reward=None, drop_verdict=False):
        super().__init__(env)
        self.actions, self.reward, self.drop_verdict = [], reward, drop_verdict

    def step(self, action):
        self.actions.append(action)
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.drop_verdict:
            info = {k: v for k, v in info.items() if k != "verdict"}
        return (obs, reward if self.reward is None else self.reward, terminated, truncated,
                info)


@pytest.fixture
def problem(make_env):
    env = make_env(seed=1)
    _, info = env.reset(options={"index": 0})
    return info["problem"], info["prompt"]


def test_meta_prover_averages_verified_forced_answers(problem):
    prob, prompt = problem
    answers = iter([prob.answer, "0", prob.answer, "0"])  # 2 of 4 correct without "Wait"

    def respond(_prompt, prefix):
        return (f"{prob.answer}}}" if "Wait" in prefix else f"{next(answers)}}}"), "stop"

    policy = ScriptedPolicy(respond)
    env = Recorder(strict_env(), reward=-5.0)  # the verdict's score counts, not the reward
    prover = MetaProver(policy, env, SUFFIX, samples=4)
    j = prover.estimate([prob, prob], [prompt, prompt], ["1 + 1 = 3", "x\n\nWait, again"])
    assert j == [0.5, 1.0]
    assert all(prefix.endswith(SUFFIX) for _, prefix in policy.calls)  # forced, not sampled
    assert len(policy.calls) == 8 and prover.no_answer_rate == 0.0
    assert env.actions[0] == f"1 + 1 = 3{SUFFIX}{prob.answer}}}"  # whole responses, judged
    assert len(env.actions) == 8                                     # through the env


def test_meta_prover_falls_back_to_the_reward_without_a_verdict(problem):
    prob, prompt = problem
    policy = ScriptedPolicy(lambda *_: ("", "stop"))  # never an answer
    prover = MetaProver(policy, Recorder(strict_env(), reward=1.0, drop_verdict=True), SUFFIX,
                        samples=2)
    assert prover(prob, prompt, "") == 1.0
    assert prover.no_answer_rate == 0.0  # without a verdict nothing says the answer is missing


def test_meta_prover_scores_an_answered_prefix_without_sampling(problem, make_env):
    prob, prompt = problem
    policy = ScriptedPolicy(lambda *_: ("never used}", "stop"))
    env = Recorder(make_env())
    prover = MetaProver(policy, env, SUFFIX, samples=4)
    assert prover(prob, prompt, f"so \\boxed{{{prob.answer}}}") == 1.0
    assert prover(prob, prompt, "so \\boxed{-1}") == 0.0
    assert policy.calls == [] and env.actions == [f"so \\boxed{{{prob.answer}}}", "so \\boxed{-1}"]


def test_meta_prover_counts_forced_answers_without_an_answer(problem):
    prob, prompt = problem
    policy = ScriptedPolicy(lambda *_: ("", "stop"))  # the box is never closed
    prover = MetaProver(policy, strict_env(), SUFFIX, samples=2)
    assert prover(prob, prompt, "") == 0.0
    assert prover.no_answer_rate == 1.0


def test_termination_signal_is_outcome_minus_prefix_value_and_survives_advantage_none():
    outcomes = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    j_prefix = np.array([0.75, 0.25])
    signal = termination_signal(outcomes, j_prefix)
    expected = [[0.25, -0.75, 0.25, 0.25], [-0.25, -0.25, 0.75, -0.25]]
    assert signal.tolist() == expected
    advantages = group_advantages(torch.tensor(signal), torch.ones(2, 4, dtype=torch.bool),
                                  "none")
    assert advantages.tolist() == expected


def test_progress_signal_adds_alpha_times_first_episode_progress():
    outcomes = np.array([[1.0, 0.0]])
    j_first = np.array([[1.0, 0.5]])
    assert progress_signal(outcomes, np.array([0.25]), j_first, alpha=0.5).tolist() == [
        [1.0 + 0.5 * 0.75, 0.0 + 0.5 * 0.25]]


def test_termination_variant_refuses_group_centring():
    with pytest.raises(ValueError, match="advantage='none'"):
        MRTConfig(variant="termination", advantage="group")
    assert MRTConfig(variant="progress", advantage="group").advantage == "group"
    help_ = MRTConfig.field_help()
    assert "alpha" in help_ and "lr" in help_  # MRT's own fields and GRPO's


def test_generate_within_gives_each_completion_its_own_room_in_order():
    """A prefix and its continuation share a budget: the continuation of a long prefix gets
    less room, and no call asks for more than its prompts have left."""
    calls = []

    class Recording(ScriptedPolicy):
        def generate(self, prompts, sampling, prefixes=None):
            calls.append((list(prefixes), sampling.max_new_tokens))
            return super().generate(prompts, sampling, prefixes)

    policy = Recording(lambda prompt, prefix: (f"{prompt}" * 50, "length"))
    gens = generate_within(policy, ["a", "b", "c", "d"], ["", "long", "", "x"], [7, 3, 7, 0],
                           SamplingConfig(1.0, 1.0, 99))
    assert [g.text for g in gens] == ["a" * 7, "b" * 3, "c" * 7, "d"]  # in order, cut to room
    assert [g.prefix for g in gens] == ["", "long", "", "x"]
    assert calls == [(["", ""], 7), (["long"], 3), (["x"], 1)]  # one call per room, >= 1


def test_budget_forcing_appends_the_marker_up_to_n_times():
    policy = ScriptedPolicy(lambda *_: ("hmm", "stop"))  # stops, never answers
    [out] = budget_forcing(policy, ["1 + 1\n"], 100, SamplingConfig(), "\n\nWait,", 3)
    assert out.text == "hmm" + "\n\nWait,hmm" * 3
    assert out.extensions == 3
    assert out.tokens == 4 * (3 + 1) + 3 * len("\n\nWait,")  # text + EOS per call, markers


def test_budget_forcing_stops_at_an_answer_and_at_the_budget():
    answers = ScriptedPolicy(lambda _p, prefix: ("\\boxed{2}" if "Wait" in prefix else "hmm",
                                                 "stop"))
    [out] = budget_forcing(answers, ["1 + 1\n"], 100, SamplingConfig(), "\n\nWait,", 5)
    assert out.text == "hmm\n\nWait,\\boxed{2}" and out.extensions == 1
    tight = ScriptedPolicy(lambda *_: ("hmm", "stop"))
    [out] = budget_forcing(tight, ["1 + 1\n"], 20, SamplingConfig(), "\n\nWait,", 5)
    assert out.tokens <= 20 and out.extensions == 1  # a second marker would not fit


def test_regret_of_a_scripted_trace_matches_hand_computation(make_env):
    env = make_env(seed=1)
    _, info = env.reset(options={"index": 0})
    a, b = info["problem"].meta["expression"].split(" + ")
    c = info["answer"]
    first = f"{a} + {b} = {int(c) + 1}"
    second = f"\n\nWait, let me recheck.\n{a} + {b} = {c}\n\\boxed{{{c}}}"

    def respond(_prompt, prefix):
        if prefix.endswith(SUFFIX):  # the meta-prover copies the last attempt
            return f"{prefix.split(' = ')[-1].split(chr(10))[0]}}}", "stop"
        return first + second, "stop"

    policy = ScriptedPolicy(respond)
    prover = MetaProver(policy, env.unwrapped, SUFFIX, samples=2)
    [trace] = regret_traces(policy, env, prover, 1, budget_tokens=200)
    n1, n = len(first), len(first + second)
    assert trace.tokens == [n1, n] and trace.j_values == [0.0, 1.0] and trace.correct
    summary = summarize_regret([trace], 200)
    area = (n - n1) / 2 + (200 - n)
    assert summary["normalized_regret"] == pytest.approx(1 - area / 200)
    assert summary["normalized_regret"] == pytest.approx(normalized_regret([n1, n], [0, 1], 200))
    assert summary["cumulative_regret"] == pytest.approx(1.0)
    assert summary["episodes"] == 2 and summary["accuracy"] == 1.0


def _config(**kwargs):
    base = dict(prompts_per_step=2, group_size=2, max_new_tokens=12, termination_samples=2,
                termination_max_tokens=4, eval_problems=2, eval_samples=0, micro_batch_size=8)
    return MRTConfig(**{**base, **kwargs})


def test_groups_carry_outcome_minus_prefix_value(policy, make_env):
    env = Recorder(make_env())
    agent = MRT(policy, env, _config())

    class Half:
        no_answer_rate = 0.0

        def estimate(self, problems, prompts, prefixes):
            return [0.5] * len(prefixes)

    agent.meta_prover = Half()
    groups, tokens, stats = agent.sample_stale(2)
    for g in groups:
        outcomes = [float(c) for c in g.correct]
        assert g.rewards == pytest.approx([r - 0.5 for r in outcomes])
        assert all(len(gen.completion_ids) + len(policy.encode(gen.prefix)) <= 12
                   for gen in g.generations)
    assert tokens > 0 and stats["J_prefix"] == 0.5
    assert env.actions == [gen.prefix + gen.text for g in groups for gen in g.generations]


def test_meta_prover_answers_do_not_reach_the_training_wrappers(policy, make_env):
    env = Recorder(make_env())
    agent = MRT(policy, env, _config(variant="progress", advantage="group"))
    agent.sample_stale(2)
    assert len(env.actions) == 2 * 2  # the continuations; forced answers go to env.unwrapped
    assert agent.meta_prover.env is env.unwrapped


class GivePrefix(gym.Wrapper):
    """Gives the response prefix "7": the observation ends with it, the action continues it."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs + "7", {**info, "response_prefix": "7"}

    def step(self, action):
        return self.env.step("7" + action)


def test_a_prefix_the_env_gives_is_generated_from_and_judged_once(policy, make_env):
    env = Recorder(GivePrefix(make_env()))
    agent = MRT(policy, env, _config())
    judged = agent.meta_prover.env = Recorder(env.unwrapped)
    groups, _, _ = agent.sample_stale(2)
    gens = [gen for g in groups for gen in g.generations]
    assert all(gen.prefix.startswith("7") for gen in gens)
    assert env.actions == [gen.prefix[1:] + gen.text for gen in gens]  # the wrapper adds "7"
    prefixes = {gen.prefix for gen in gens}  # c, whole: the meta-prover's env adds nothing
    assert judged.actions and all(any(a.startswith(c + SUFFIX) for c in prefixes)
                                  for a in judged.actions)


def test_rollout_stats_are_the_last_sampling_rounds(policy, make_env):
    agent = MRT(policy, make_env(), _config(dynamic_sampling=True, max_sampling_rounds=3))
    rounds = iter(range(3))

    def same_rewards(n):  # every group is dropped by dynamic sampling, so 3 rounds run
        r = next(rounds)
        return [Group("p", [], [0.0, 0.0], [True, True], [False, False])] * n, n, {"J": r}

    agent.sample_stale = same_rewards
    rollout = agent.collect()
    assert rollout.groups == [] and len(rollout.sampled_groups) == 3 * 2
    assert rollout.stats == {"J": 2}


@pytest.mark.parametrize("variant,advantage", [("termination", "none"), ("progress", "group")])
def test_short_learn_run_then_save_and_load(policy, make_env, tmp_path, variant, advantage):
    agent = MRT(policy, make_env(), _config(variant=variant, advantage=advantage),
                eval_env=make_env(seed=1))
    metrics = []
    agent.learn(2, callback=lambda _agent, m: metrics.append(m), progress_bar=False)
    assert agent.num_steps == 2 and len(agent.eval_history) == 2
    assert {"J_prefix", "prefix_episodes", "outcome_reward", "loss"} <= set(metrics[-1])
    if variant == "progress":
        assert "first_episode_progress" in metrics[-1]
    loaded = MRT.load(agent.save(tmp_path / "agent"), make_env())
    assert isinstance(loaded.config, MRTConfig) and loaded.config.variant == variant
    assert loaded.num_steps == 2


def test_cli_train_mrt_and_eval_regret(micro_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--agent", "mrt", "--model", str(micro_model_dir), "--steps", "1",
                 "--output", str(out), "--no-progress", "--threads", "1",
                 "--set", "prompts_per_step=2", "--set", "group_size=2",
                 "--set", "max_new_tokens=8", "--set", "eval_problems=2",
                 "--set", "eval_samples=0", "--set", "termination_samples=2"]) == 0
    assert json.loads((out / "agent" / "agent.json").read_text())["agent"] == "MRT"
    capsys.readouterr()
    assert main(["eval", str(out / "agent"), "--problems", "3", "--samples", "2", "--k", "1",
                 "--max-new-tokens", "8", "--regret-budget", "16", "--regret-samples", "2",
                 "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["regret/normalized_regret"] <= 1.0
    assert report["regret/cumulative_regret"] >= 0.0 and report["regret/episodes"] >= 1
