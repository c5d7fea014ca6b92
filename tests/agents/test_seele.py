"""The SEELE agent: rounds, all-round advantages, the imitation term on hint tokens only,
monitors, the hint state in the checkpoint, envs without hints or with other rounds, and the
command line."""

import json

import pytest
import torch

from rlvr_gym.agents.grpo import GRPO, GRPOConfig
from rlvr_gym.agents.policy import cross_entropy_on
from rlvr_gym.agents.seele import SEELE, SEELEConfig, hinted_env
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


def seele(model_dir, env, config):
    """SEELE on `env` wrapped in the scaffold `config` asks for."""
    return SEELE(model_dir, hinted_env(env, config), config)


def weights(agent):
    return [p.detach().clone() for p in agent.policy.model.parameters()]


def moved(before, agent):
    return any(not torch.equal(a, b) for a, b in zip(before, weights(agent), strict=True))


def test_a_step_samples_rounds_sequentially_with_refitted_hints(micro_model_dir):
    agent = seele(micro_model_dir, env_with(KnowsTheSolution()), small_config())
    rollout = agent.collect()
    assert len(rollout.groups) == 2
    cold_start = []
    for group in rollout.groups:
        assert len(group.generations) == 4 * 3  # rounds x group_size in ONE group
        hints = [gen.prefix for gen in group.generations]
        assert all(hints[r * 3:(r + 1) * 3] == [hints[r * 3]] * 3 for r in range(4))
        solution = agent.env.unwrapped.source[int(group.problem_id.split("/")[-1])].solution
        assert hints[0] == solution[:-1]  # cold start: all but one unit
        cold_start.append((len(solution) - 1) / len(solution))
        assert len(hints[9]) < len(hints[0])  # round 1 was all right: the refit shortens it
        assert all(solution.startswith(hint) for hint in hints)
        assert group.rewards[:3] == [1.0] * 3 and group.rewards[3:] == [0.0] * 9
    assert rollout.stats["hint_ratio_round1"] == pytest.approx(sum(cold_start) / 2)
    assert rollout.stats["hint_ratio_round4"] < rollout.stats["hint_ratio_round1"]
    assert rollout.stats["accuracy_round1"] == 1.0 and rollout.stats["accuracy_round2"] == 0.0


def test_advantages_are_centred_over_all_rounds_not_per_round(micro_model_dir):
    # Every round is uniform (round 1 right, rounds 2-4 wrong): per-round baselines would give
    # zero advantages and no gradient; SEELE's baseline over all rounds gives 1 - 1/4 and
    # -1/4, so the policy moves even without the imitation term.
    agent = seele(micro_model_dir, env_with(KnowsTheSolution()),
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
    silent = seele(micro_model_dir, env, small_config(imitation_coef=0.0))
    before = weights(silent)
    silent.train_step()
    assert not moved(before, silent)

    imitating = seele(micro_model_dir, env_with(constant_verifier(Status.INCORRECT)),
                      small_config(imitation_coef=1.0))
    before = weights(imitating)
    metrics = imitating.train_step()
    assert moved(before, imitating) and metrics["hint_nll"] > 0


def test_the_imitation_term_is_gamma_times_hint_nll_over_n_and_L(micro_model_dir):
    agent = seele(micro_model_dir, env_with(KnowsTheSolution()),
                  small_config(imitation_coef=0.5, max_new_tokens=6))
    assert agent.extra_loss == agent.imitation_loss
    policy = agent.policy
    prompts = ["Compute 1 + 2.\n", "Compute 30 + 4.\n"]
    hints, texts = ["1 + 2 =", "30 + "], ["x 3", "4 = 34"]
    batch = policy.batch(policy.samples(prompts, texts, hints))
    logprobs, _ = policy.token_logprobs(batch)
    loss, stats = agent.imitation_loss(batch, logprobs, total_sequences=2.0)

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
    agent = seele(micro_model_dir, env_with(KnowsTheSolution()),
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
        return seele(micro_model_dir, env_with(KnowsTheSolution()), small_config())

    straight = make()
    straight.learn(2, progress_bar=False)

    first = make()
    first.learn(1, progress_bar=False)
    first.save(tmp_path / "ckpt")
    stored = json.loads((tmp_path / "ckpt" / "env_state.json").read_text())["HintScaffold"]
    assert any(s["stored_ratio"] is not None for s in stored.values())
    resumed = SEELE.load(tmp_path / "ckpt", hinted_env(env_with(KnowsTheSolution()),
                                                       small_config()))
    assert isinstance(resumed.config, SEELEConfig) and resumed.config.rounds == 4
    assert resumed.env.state_dict() == first.env.state_dict()
    resumed.learn(1, progress_bar=False)

    for a, b in zip(weights(straight), weights(resumed), strict=True):
        assert torch.equal(a, b)
    assert resumed.env.state_dict() == straight.env.state_dict()


def test_hinted_env_builds_the_scaffold_of_the_config(micro_model_dir):
    config = small_config(hint_unit="tokens", target_accuracy=0.25, snap_to_steps=True)
    scaffold = hinted_env(env_with(KnowsTheSolution()), config, micro_model_dir)
    assert (scaffold.target_accuracy, scaffold.rounds, scaffold.samples_per_round,
            scaffold.unit, scaffold.snap_to_steps) == (0.25, 4, 3, "tokens", True)
    _, info = scaffold.reset(seed=0)
    assert info["solution"].startswith(info["hint"]) and info["hint_ratio"] > 0.5


def test_an_env_without_hints_or_with_other_rounds_is_refused(micro_model_dir):
    plain = SEELE(micro_model_dir, env_with(KnowsTheSolution()), small_config())
    with pytest.raises(ValueError, match="gives no hints.*hinted_env"):
        plain.collect()
    # a scaffold of 8 samples per round where the config samples rounds of 3
    other = SEELE(micro_model_dir, HintScaffold(env_with(KnowsTheSolution())), small_config())
    with pytest.raises(RuntimeError, match="in hint round 1 where SEELE expected 2"):
        other.collect()


def test_verifier_failures_still_close_the_round(micro_model_dir, constant_verifier):
    agent = seele(micro_model_dir, env_with(constant_verifier(Status.ERROR)), small_config())
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
    assert "HintScaffold" in json.loads((saved / "env_state.json").read_text())
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
