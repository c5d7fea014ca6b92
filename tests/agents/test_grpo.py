"""The GRPO agent: a short learn run, exact resume, dynamic sampling and masking."""

import json

import pytest
import torch

from rlvr_gym.agents.grpo import GRPO, GRPOConfig
from rlvr_gym.envs.registry import make_task_env
from rlvr_gym.types import Status, Verdict


class FirstCharIsDigit:
    """Scripted verifier the random micro model can satisfy about one time in ten, so that
    groups have reward variance and updates move the weights."""

    def verify(self, response, problem):
        ok = response[:1].isdigit()
        return Verdict(Status.CORRECT if ok else Status.INCORRECT, float(ok))


def env_with(verifier):
    return make_task_env("arithmetic", prompt="{question}\n", verifier=verifier,
                         operators="+", max_operands=2)


def small_config(**overrides):
    values = dict(prompts_per_step=4, group_size=4, max_new_tokens=6, lr=1e-2,
                  micro_batch_size=6, eval_problems=4, eval_samples=2, eval_k=(1, 2),
                  device="cpu", seed=3, warmup_steps=0)
    return GRPOConfig(**{**values, **overrides})


def weights(agent):
    return [p.detach().clone() for p in agent.policy.model.parameters()]


def test_short_learn_run_logs_metrics_and_writes_files(micro_model_dir, make_env, tmp_path):
    agent = GRPO(micro_model_dir, env_with(FirstCharIsDigit()),
                 small_config(output_dir=str(tmp_path)), eval_env=make_env(seed=1))
    seen = []
    agent.learn(2, callback=lambda a, m: seen.append(m), progress_bar=False)
    assert agent.num_steps == 2
    for key in ("reward", "accuracy", "eff_rate", "entropy", "response_length",
                "clip_frac_low", "clip_frac_high", "grad_norm", "gen_tokens_per_s",
                "update_tokens_per_s"):
        assert key in seen[0], key
    assert [e["step"] for e in agent.eval_history] == [0, 2]
    assert {"accuracy", "pass@1", "pass@2"} <= set(agent.eval_history[0])
    assert {"metrics.jsonl", "metrics.csv", "curves.png"} <= {p.name for p in tmp_path.iterdir()}


def test_callback_returning_false_stops(micro_model_dir):
    agent = GRPO(micro_model_dir, env_with(FirstCharIsDigit()), small_config())
    agent.learn(5, callback=lambda a, m: False, progress_bar=False)
    assert agent.num_steps == 1


def test_reward_rises_on_a_learnable_signal(micro_model_dir):
    agent = GRPO(micro_model_dir, env_with(FirstCharIsDigit()),
                 small_config(prompts_per_step=8, lr=3e-2, loss_type="dapo"))
    rewards = []
    agent.learn(12, callback=lambda a, m: rewards.append(m["reward"]), progress_bar=False)
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.2


@pytest.mark.parametrize("overrides", [
    {},
    {"num_iterations": 2, "num_minibatches": 2, "beta": 0.1, "loss_type": "dr_grpo"},
    {"warmup_steps": 2, "decay_steps": 6},
])
def test_save_load_resumes_exactly(micro_model_dir, tmp_path, overrides):
    straight = GRPO(micro_model_dir, env_with(FirstCharIsDigit()), small_config(**overrides))
    start = weights(straight)
    straight.learn(4, progress_bar=False)

    first = GRPO(micro_model_dir, env_with(FirstCharIsDigit()), small_config(**overrides))
    first.learn(2, progress_bar=False)
    first.save(tmp_path / "ckpt")
    resumed = GRPO.load(tmp_path / "ckpt", env_with(FirstCharIsDigit()))
    assert resumed.num_steps == 2
    resumed.learn(2, progress_bar=False)

    assert any(not torch.equal(a, b) for a, b in zip(start, weights(straight), strict=True))
    for a, b in zip(weights(straight), weights(resumed), strict=True):
        assert torch.equal(a, b)
    saved = json.loads((tmp_path / "ckpt" / "agent.json").read_text())
    assert saved["config"]["lr"] == 1e-2


def test_later_minibatches_use_the_sampling_policy_in_the_ratio(micro_model_dir):
    agent = GRPO(micro_model_dir, env_with(FirstCharIsDigit()),
                 small_config(num_minibatches=2, lr=5e-2, prompts_per_step=8))
    metrics = agent.train_step()
    # the first mini-batch's update moves the policy, so the second one's ratios differ from 1
    assert metrics["ratio"] != pytest.approx(1.0, abs=1e-6)


class WithoutSkipping(GRPO):
    """An `extra_loss` (here one that adds nothing) makes the agent train every row, zero
    advantage or not."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra_loss = lambda batch, logprobs, total_sequences: None


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_rows_without_advantage_are_skipped_without_changing_the_update(micro_model_dir,
                                                                        loss_type):
    config = small_config(prompts_per_step=8, loss_type=loss_type)
    skipping = GRPO(micro_model_dir, env_with(FirstCharIsDigit()), config)
    first = skipping.train_step()
    training_all = WithoutSkipping(micro_model_dir, env_with(FirstCharIsDigit()), config)
    second = training_all.train_step()
    assert first["reward"] == second["reward"]  # the same samples
    assert 0 < first["trained_sequences"] < second["trained_sequences"] == 32
    for a, b in zip(weights(skipping), weights(training_all), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_learning_rate_warms_up_then_decays_linearly(micro_model_dir):
    agent = GRPO(micro_model_dir, env_with(FirstCharIsDigit()),
                 small_config(lr=1e-2, warmup_steps=4))
    seen = []
    agent.learn(5, callback=lambda a, m: seen.append(m["lr"]), progress_bar=False)
    assert seen == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2])
    decaying = GRPO(micro_model_dir, env_with(FirstCharIsDigit()),
                    small_config(lr=1e-2, warmup_steps=2, decay_steps=6))
    assert [decaying.learning_rate(s) for s in range(7)] == pytest.approx(
        [5e-3, 1e-2, 1e-2, 7.5e-3, 5e-3, 2.5e-3, 0.0])


@pytest.mark.parametrize("values", [{"warmup_steps": -1}, {"warmup_steps": 5, "decay_steps": 5}])
def test_schedule_config_is_checked(values):
    with pytest.raises(ValueError, match="steps"):
        small_config(**values)


def test_dynamic_sampling_drops_groups_without_variance(micro_model_dir, constant_verifier):
    agent = GRPO(micro_model_dir, env_with(constant_verifier(Status.CORRECT)),
                 small_config(dynamic_sampling=True, max_sampling_rounds=2))
    before = weights(agent)
    metrics = agent.train_step()
    assert metrics["groups_trained"] == 0 and metrics["skipped_update"] == 1
    assert metrics["eff_rate"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, weights(agent), strict=True))


@pytest.mark.parametrize("status", [Status.ERROR, Status.TIMEOUT])
def test_verifier_failures_are_masked_out(micro_model_dir, status, constant_verifier):
    agent = GRPO(micro_model_dir, env_with(constant_verifier(status)),
                 small_config(advantage="none", lr=1.0))
    before = weights(agent)
    metrics = agent.train_step()
    assert metrics["masked_samples"] == 16 and metrics["trained_sequences"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, weights(agent), strict=True))


def test_predict_is_greedy_and_deterministic(micro_model_dir):
    agent = GRPO(micro_model_dir, env_with(FirstCharIsDigit()), small_config())
    response, state = agent.predict("Compute 1 + 2.\n")
    assert state is None and response == agent.predict("Compute 1 + 2.\n")[0]
    assert isinstance(agent.predict(["a\n", "b\n"])[0], list)


def test_config_help_lines_exist_for_every_field():
    helps = GRPOConfig.field_help()
    from dataclasses import fields

    assert all(helps.get(f.name) for f in fields(GRPOConfig))


def test_config_rejects_unknown_modes():
    with pytest.raises(ValueError, match="loss_type"):
        GRPOConfig(loss_type="mean")


@pytest.mark.parametrize("field, value", [("lr", -1e-4), ("lr", float("nan")),
                                          ("temperature", -1.0), ("top_p", 0.0)])
def test_config_names_a_negative_or_empty_sampling_or_learning_rate(field, value):
    # caught by the config with the field's name, not later inside torch's optimiser
    with pytest.raises(ValueError, match=f"^{field} must be"):
        GRPOConfig(**{field: value})
    assert GRPOConfig(temperature=0.0, lr=0.0).temperature == 0.0  # greedy, frozen: allowed


class Recording:
    """Scripted verifier that records what the env was asked to judge."""

    def __init__(self):
        self.responses = []

    def verify(self, response, problem):
        self.responses.append(response)
        return Verdict(Status.INCORRECT, 0.0)


def test_a_response_prefix_is_continued_masked_and_not_sent_twice(micro_model_dir):
    from rlvr_gym.wrappers.hints import HintScaffold

    recording = Recording()
    env = HintScaffold(env_with(recording), samples_per_round=4)
    agent = GRPO(micro_model_dir, env, small_config(prompts_per_step=2))
    groups, _ = agent.sample_groups(2)
    for group in groups:
        for gen in group.generations:
            assert gen.prefix and gen.prefix_ids  # the hint, given not generated
            assert not gen.prompt.endswith(gen.prefix)  # split off the observation
    sent = recording.responses
    assert len(sent) == 8
    hints = [gen.prefix for g in groups for gen in g.generations]
    texts = [gen.text for g in groups for gen in g.generations]
    assert sent == [h + t for h, t in zip(hints, texts, strict=True)]  # hint once, then text
    batch = agent.policy.batch([gen for g in groups for gen in g.generations])
    assert torch.all(batch.prefix_mask * batch.completion_mask == 0)
    assert batch.prefix_mask.sum() == sum(len(gen.prefix_ids) for g in groups
                                          for gen in g.generations)


# --- the run directory -----------------------------------------------------------------------


def logged_steps(run):
    """Steps of the training records (those with a reward) in a run's metrics.jsonl."""
    return [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "reward" in r]


def test_a_new_agent_refuses_a_directory_holding_another_run(micro_model_dir, tmp_path):
    from rlvr_gym.agents.monitors import RunExistsError

    GRPO(micro_model_dir, env_with(FirstCharIsDigit()),
         small_config(output_dir=str(tmp_path))).learn(1, progress_bar=False)
    metrics = (tmp_path / "metrics.jsonl").read_bytes()
    second = GRPO(micro_model_dir, env_with(FirstCharIsDigit()),
                  small_config(output_dir=str(tmp_path)))
    with pytest.raises(RunExistsError, match="holds another run's files; give a new output "
                       "directory, or load that run's agent"):
        second.learn(1, progress_bar=False)
    assert (tmp_path / "metrics.jsonl").read_bytes() == metrics


def test_learn_saves_the_agent_every_save_every_steps_and_at_the_end(micro_model_dir, tmp_path):
    saved_at = []

    def look(agent, metrics):
        record = tmp_path / "agent" / "agent.json"
        saved_at.append(json.loads(record.read_text())["num_steps"] if record.exists() else None)

    agent = GRPO(micro_model_dir, env_with(FirstCharIsDigit()),
                 small_config(output_dir=str(tmp_path), save_every=2))
    agent.learn(5, callback=look, progress_bar=False)
    assert saved_at == [None, 2, 2, 4, 4]
    assert GRPO.load(tmp_path / "agent", env_with(FirstCharIsDigit())).num_steps == 5


def test_a_loaded_agent_continues_its_run_without_logging_a_step_twice(micro_model_dir,
                                                                       tmp_path):
    """A run saved at step 1, continued to step 3 without saving, and resumed from step 1:
    the records of the lost steps 2-3 are replaced, not duplicated."""
    import shutil

    run = tmp_path / "run"
    agent = GRPO(micro_model_dir, env_with(FirstCharIsDigit()),
                 small_config(output_dir=str(run), save_every=0))
    agent.learn(1, progress_bar=False)
    shutil.copytree(run / "agent", tmp_path / "saved-at-1")
    agent.learn(2, progress_bar=False)
    assert logged_steps(run) == [1, 2, 3]
    shutil.rmtree(run / "agent")
    shutil.copytree(tmp_path / "saved-at-1", run / "agent")
    resumed = GRPO.load(run / "agent", env_with(FirstCharIsDigit()))
    with pytest.warns(UserWarning, match="dropped 2 records after step 1"):
        resumed.learn(2, progress_bar=False)
    assert logged_steps(run) == [1, 2, 3]
    assert (run / "metrics.csv").read_text().count("\n") == 1 + 3


def test_greedy_evaluations_add_held_out_points_between_full_ones(micro_model_dir, make_env,
                                                                   tmp_path):
    agent = GRPO(micro_model_dir, env_with(FirstCharIsDigit()),
                 small_config(output_dir=str(tmp_path), greedy_eval_every=1),
                 eval_env=make_env(seed=1))
    agent.learn(3, progress_bar=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    points = [(r["step"], "eval/pass@1" in r) for r in records if "eval/accuracy" in r]
    # full evaluations (with pass@k) at the start and end, greedy ones in between
    assert points == [(0, True), (1, False), (2, False), (3, True)]
    assert [e["step"] for e in agent.eval_history] == [0, 3]


def test_the_curves_are_titled_with_run_agent_and_env(micro_model_dir, make_env, tmp_path,
                                                      monkeypatch):
    from rlvr_gym.agents import monitors

    titles = []
    draw = monitors.plot_curves
    monkeypatch.setattr(monitors, "plot_curves",
                        lambda records, path, title="": titles.append(title) or
                        draw(records, path, title))
    run = tmp_path / "my-run"
    GRPO(micro_model_dir, make_env(seed=0), small_config(output_dir=str(run)),
         eval_env=make_env(seed=1)).learn(1, progress_bar=False)
    assert titles == ["my-run: GRPO on rlvr/Arithmetic-v0"]
    saved = json.loads((run / "agent" / "agent.json").read_text())
    assert saved["env"] == {"id": "rlvr/Arithmetic-v0", "kwargs": {
        "seed": 0, "min_digits": 2, "max_digits": 3, "min_operands": 2, "max_operands": 2,
        "operators": "+", "prompt": "{question}\n"}}
