"""The SEELE agent: rounds, all-round advantages, the imitation term on hint tokens only,
monitors, save/load of the hint state and the command line."""

import json

import pytest
import torch

from rlvr_gym.agents.grpo import GRPO, GRPOConfig
from rlvr_gym.agents.policy import cross_entropy_on
from rlvr_gym.agents.seele import SEELE, HintedRollout, SEELEConfig
from rlvr_gym.cli import main
from rlvr_gym.envs.registry import make_task_env
from rlvr_gym.types import Status, Verdict
from rlvr_gym.wrappers.hints import HintScaffold


class KnowsTheSolution:
    """Scripted verifier: correct iff the response (hint + continuation) starts with all but
    the last character of the reference solution. The cold-start hint of round 1 is exactly
    that, so round 1 always succeeds; the random micro model cannot finish a shorter hint,
    so the later rounds fail."""

    def verify(self, response, problem):
        ok = response.startswith(problem.solution[:-1])
        return Verdict(Status.CORRECT if ok else Status.INCORRECT, float(ok))


def env_with(verifier):
    return make_task_env("arithmetic", prompt="{question}\n", verifier=verifier,
                         operators="+", min_operands=2, max_operands=2, max_digits=2)


def small_config(**overrides):
    values = dict(prompts_per_step=2, group_size=3, rounds=4, max_new_tokens=6, lr=1e-2,
                  micro_batch_size=8, eval_problems=3, eval_samples=2, eval_k=(1, 2),
                  device="cpu", seed=3, hint_unit="chars")
    return SEELEConfig(**{**values, **overrides})


def weights(agent):
    return [p.detach().clone() for p in agent.policy.model.parameters()]


def moved(before, agent):
    return any(not torch.equal(a, b) for a, b in zip(before, weights(agent), strict=True))


def test_a_step_samples_rounds_sequentially_with_refitted_hints(micro_model_dir):
    agent = SEELE(micro_model_dir, env_with(KnowsTheSolution()), small_config())
    rollout = agent.collect()
    assert isinstance(rollout, HintedRollout) and len(rollout.groups) == 2
    for group, rounds, ratios in zip(rollout.groups, rollout.rounds, rollout.ratios,
                                     strict=True):
        assert len(group.generations) == 4 * 3  # rounds x group_size in ONE group
        assert rounds == [r for r in range(4) for _ in range(3)]
        solution = agent.env.unwrapped.source[int(group.problem_id.split("/")[-1])].solution
        n = len(solution)
        assert ratios[0] == pytest.approx((n - 1) / n)  # cold start: all but one unit
        assert group.generations[0].prefix == solution[:-1]
        assert ratios[3] < ratios[0]  # round 1 was all right: the refit shortens the hint
        assert all(solution.startswith(gen.prefix) for gen in group.generations)
        assert group.rewards[:3] == [1.0] * 3 and group.rewards[3:] == [0.0] * 9


def test_advantages_are_centred_over_all_rounds_not_per_round(micro_model_dir):
    # Every round is uniform (round 1 right, rounds 2-4 wrong): per-round baselines would give
    # zero advantages and no gradient; SEELE's baseline over all rounds gives 1 - 1/4 and
    # -1/4, so the policy moves even without the imitation term.
    agent = SEELE(micro_model_dir, env_with(KnowsTheSolution()),
                  small_config(imitation_coef=0.0))
    before = weights(agent)
    metrics = agent.train_step()
    assert metrics["accuracy_round1"] == 1.0
    assert metrics["accuracy_round2"] == metrics["accuracy_round4"] == 0.0
    assert metrics["eff_rate"] == 1.0 and metrics["groups_trained"] == 2
    assert moved(before, agent)


def test_without_reward_variance_only_the_imitation_term_moves_the_policy(micro_model_dir,
                                                                          constant_verifier):
    env = env_with(constant_verifier(Status.INCORRECT))
    silent = SEELE(micro_model_dir, env, small_config(imitation_coef=0.0))
    before = weights(silent)
    silent.train_step()
    assert not moved(before, silent)

    imitating = SEELE(micro_model_dir, env_with(constant_verifier(Status.INCORRECT)),
                      small_config(imitation_coef=1.0))
    before = weights(imitating)
    metrics = imitating.train_step()
    assert moved(before, imitating) and metrics["hint_nll"] > 0


def test_the_imitation_term_is_gamma_times_hint_nll_over_n_and_L(micro_model_dir):
    agent = SEELE(micro_model_dir, env_with(KnowsTheSolution()),
                  small_config(imitation_coef=0.5, max_new_tokens=6))
    policy = agent.policy
    prompts = ["Compute 1 + 2.\n", "Compute 30 + 4.\n"]
    hints, texts = ["1 + 2 =", "30 + "], ["x 3", "4 = 34"]
    batch = policy.batch(policy.samples(prompts, texts, hints))
    logprobs, _ = policy.token_logprobs(batch)
    loss, stats = agent.extra_loss(batch, logprobs, total_sequences=2.0)

    hint_tokens = sum(len(h) for h in hints)  # one token per character
    expected = 0.5 * cross_entropy_on(policy, batch, batch.prefix_mask) * hint_tokens / (2 * 6)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert stats["hint_nll"] == pytest.approx(
        cross_entropy_on(policy, batch, batch.prefix_mask).item(), rel=1e-5)

    # Its gradient reaches only hint positions: the log-probs of prompt and generated tokens
    # get exactly zero gradient.
    logprobs.retain_grad()
    loss.backward()
    outside = (1 - batch.prefix_mask).bool()
    assert torch.all(logprobs.grad[outside] == 0)
    assert torch.all(logprobs.grad[batch.prefix_mask.bool()] < 0)


def test_metrics_report_rounds_target_hint_ratio_and_eff_rate(micro_model_dir, tmp_path):
    agent = SEELE(micro_model_dir, env_with(KnowsTheSolution()),
                  small_config(output_dir=str(tmp_path)))
    agent.learn(2, progress_bar=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text()
               .splitlines()]
    steps = [r for r in records if "reward" in r]
    assert len(steps) == 2
    for key in ("eff_rate", "hint_ratio", "hint_tokens", "target_accuracy", "hint_nll",
                *(f"accuracy_round{r}" for r in range(1, 5)),
                *(f"hint_ratio_round{r}" for r in range(1, 5))):
        assert key in steps[0], key
    assert steps[0]["target_accuracy"] == 0.5
    assert 0.0 < steps[0]["hint_ratio"] < 1.0


def test_save_load_restores_the_hint_state_and_resumes_exactly(micro_model_dir, tmp_path):
    def make():
        return SEELE(micro_model_dir, env_with(KnowsTheSolution()), small_config())

    straight = make()
    straight.learn(2, progress_bar=False)

    first = make()
    first.learn(1, progress_bar=False)
    first.save(tmp_path / "ckpt")
    stored = json.loads((tmp_path / "ckpt" / "hints.json").read_text())
    assert any(s["stored_ratio"] is not None for s in stored.values())
    resumed = SEELE.load(tmp_path / "ckpt", env_with(KnowsTheSolution()))
    assert isinstance(resumed.config, SEELEConfig) and resumed.config.rounds == 4
    assert resumed.scaffold.state_dict() == first.scaffold.state_dict()
    resumed.learn(1, progress_bar=False)

    for a, b in zip(weights(straight), weights(resumed), strict=True):
        assert torch.equal(a, b)
    assert resumed.scaffold.state_dict() == straight.scaffold.state_dict()


def test_a_given_scaffold_is_used_and_must_agree_with_the_config(micro_model_dir):
    wrapped = HintScaffold(env_with(KnowsTheSolution()), rounds=4, samples_per_round=3)
    agent = SEELE(micro_model_dir, wrapped, small_config())
    assert agent.scaffold is wrapped and agent.env is wrapped
    with pytest.raises(ValueError, match="pass the unwrapped env"):
        SEELE(micro_model_dir, HintScaffold(env_with(KnowsTheSolution())), small_config())


def test_verifier_failures_still_close_the_round(micro_model_dir, constant_verifier):
    agent = SEELE(micro_model_dir, env_with(constant_verifier(Status.ERROR)), small_config())
    metrics = agent.train_step()  # would raise if a round never completed
    assert metrics["masked_samples"] == 2 * 4 * 3 and metrics["trained_sequences"] == 0


def test_config_validates_and_documents_every_field():
    from dataclasses import fields

    helps = SEELEConfig.field_help()
    assert all(helps.get(f.name) for f in fields(SEELEConfig))
    assert "Dr. GRPO" in helps["advantage"] and "clip-higher" in helps["epsilon_high"]
    with pytest.raises(ValueError, match="dynamic_sampling=False"):
        SEELEConfig(dynamic_sampling=True)
    with pytest.raises(ValueError, match="target_accuracy"):
        SEELEConfig(target_accuracy=1.0)
    with pytest.raises(TypeError, match="SEELEConfig"):
        SEELE("unused", env_with(KnowsTheSolution()), GRPOConfig())


TINY_RUN = ["--steps", "1", "--no-progress", "--threads", "1",
            "--set", "prompts_per_step=2", "--set", "group_size=2", "--set", "rounds=2",
            "--set", "max_new_tokens=8", "--set", "eval_problems=3", "--set", "eval_samples=2",
            "--set", "eval_k=1,2"]


def test_cli_trains_seele_and_resumes_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--agent", "seele", "--output", str(out), *TINY_RUN]) == 0
    assert "held-out after:" in capsys.readouterr().out
    saved = out / "agent"
    assert json.loads((saved / "agent.json").read_text())["agent"] == "SEELE"
    assert (saved / "hints.json").exists()
    assert main(["train", "--agent", "seele", "--resume", str(saved), "--output",
                 str(tmp_path / "more"), *TINY_RUN]) == 0
    records = [json.loads(line) for line in
               (tmp_path / "more" / "metrics.jsonl").read_text().splitlines()]
    step = next(r for r in records if "reward" in r)
    assert step["step"] == 2 and "accuracy_round2" in step and "hint_ratio" in step


def test_cli_wrapper_gives_any_agent_hints(tmp_path, capsys):
    out = tmp_path / "wrapped"
    args = ["train", "--wrapper", "seele", "--output", str(out), "--steps", "1",
            "--no-progress", "--threads", "1", "--set", "prompts_per_step=2",
            "--set", "group_size=8", "--set", "max_new_tokens=4", "--set", "eval_problems=2",
            "--set", "eval_samples=0"]
    assert main(args) == 0
    assert json.loads((out / "agent" / "agent.json").read_text())["agent"] == "GRPO"


def test_grpo_load_still_builds_a_grpo_config(micro_model_dir, tmp_path):
    agent = GRPO(micro_model_dir, env_with(KnowsTheSolution()),
                 GRPOConfig(prompts_per_step=2, group_size=2, max_new_tokens=4, device="cpu"))
    agent.save(tmp_path / "g")
    assert type(GRPO.load(tmp_path / "g", env_with(KnowsTheSolution())).config) is GRPOConfig
