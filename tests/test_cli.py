"""The `rlvr-gym` command line, run in-process through `main(argv)`."""

import json

import pytest

from rlvr_gym.agents.grpo import GRPOConfig
from rlvr_gym.cli import config_overrides, main

TINY_RUN = ["--steps", "1", "--no-progress", "--threads", "1",
            "--set", "prompts_per_step=2", "--set", "group_size=2",
            "--set", "eval_problems=3", "--set", "eval_samples=2", "--set", "eval_k=1,2",
            "--set", "warmup_steps=0"]


def test_envs_lists_every_registered_id(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "rlvr/Arithmetic-v0" in out and "rlvr/Countdown-v0" in out


def test_verify_exit_status_says_whether_the_answer_is_right(capsys):
    assert main(["verify", "so \\boxed{42}", "--reference", "42"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "correct"
    assert main(["verify", "so \\boxed{41}", "--reference", "42"]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "incorrect"


def test_train_then_eval_then_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--output", str(out), *TINY_RUN]) == 0
    printed = capsys.readouterr().out
    assert "held-out before:" in printed and "held-out after:" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 1 and 0.0 <= summary["after"]["accuracy"] <= 1.0
    assert summary["cpu_seconds"] > 0 and summary["torch_threads"] == 1
    assert (out / "curves.png").exists() and (out / "agent" / "agent.json").exists()
    # the learning rate decays to 0 where the run ends
    saved = json.loads((out / "agent" / "agent.json").read_text())
    assert saved["config"]["decay_steps"] == 1

    assert main(["eval", str(out / "agent"), "--problems", "3", "--samples", "2",
                 "--k", "1", "2", "--threads", "1"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"accuracy", "pass@1", "pass@2"} <= set(metrics)

    assert main(["train", "--resume", str(out / "agent"), "--output", str(tmp_path / "more"),
                 *TINY_RUN]) == 0
    resumed = json.loads((tmp_path / "more" / "agent" / "agent.json").read_text())
    assert resumed["num_steps"] == 2 and resumed["config"]["decay_steps"] == 2


def test_set_output_dir_is_the_run_directory(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--set", f"output_dir={out}", *TINY_RUN]) == 0
    assert (out / "summary.json").exists() and (out / "agent" / "agent.json").exists()
    assert (out / "metrics.jsonl").exists()
    with pytest.raises(SystemExit, match="give the run directory once"):
        main(["train", "--output", str(tmp_path / "a"), "--set", f"output_dir={out}",
              *TINY_RUN])


def test_set_parses_types_and_rejects_unknown_fields():
    values = config_overrides(GRPOConfig, ["lr=1e-4", "dynamic_sampling=true", "eval_k=1,4",
                                           "loss_type=dapo"])
    assert values == {"lr": 1e-4, "dynamic_sampling": True, "eval_k": (1, 4),
                      "loss_type": "dapo"}
    with pytest.raises(SystemExit, match="no field 'learning_rate'"):
        config_overrides(GRPOConfig, ["learning_rate=1"])


def test_help_config_lists_fields_with_help(capsys):
    assert main(["train", "--help-config"]) == 0
    out = capsys.readouterr().out
    assert "epsilon_high" in out and "clip-higher" in out


def test_unknown_wrapper_says_what_is_available():
    with pytest.raises(SystemExit, match="unknown wrapper"):
        main(["train", "--wrapper", "nope", *TINY_RUN])


MICRO_PRETRAIN = ["--no-progress", "--set", "steps=1", "--set", "batch_size=2",
                  "--set", "n_layer=1", "--set", "n_embd=16", "--set", "n_head=2",
                  "--set", "eval_every=0", "--set", "warmup_steps=1"]


def test_pretrain_learns_the_task_given_by_env_and_env_args(tmp_path, capsys):
    out = tmp_path / "chain"
    assert main(["pretrain", "--env", "rlvr/ArithmeticChain-v0", "--env-arg", "max_steps=3",
                 "--output", str(out), *MICRO_PRETRAIN]) == 0
    config = json.loads((out / "pretrain_summary.json").read_text())["config"]
    assert config["env_id"] == "rlvr/ArithmeticChain-v0"
    assert config["env_kwargs"] == {"max_steps": 3}  # another env starts from its defaults


def test_pretrain_preset_env_args_change_the_presets_task(tmp_path):
    from rlvr_gym.agents.tiny import CHAIN_ENV_ID, CHAIN_ENV_KWARGS

    out = tmp_path / "shorter"
    assert main(["pretrain", "--preset", "tiny-chain", "--env-arg", "max_operands=4",
                 "--output", str(out), *MICRO_PRETRAIN]) == 0
    config = json.loads((out / "pretrain_summary.json").read_text())["config"]
    assert config["env_id"] == CHAIN_ENV_ID
    assert config["env_kwargs"] == {**CHAIN_ENV_KWARGS, "max_operands": 4}
    assert config["eval_max_new_tokens"] == 80 and config["n_layer"] == 1


def test_pretrain_refuses_to_overwrite_a_bundled_model_with_another_task():
    with pytest.raises(SystemExit, match="--output"):
        main(["pretrain", "--env-arg", "max_digits=4", *MICRO_PRETRAIN])
    with pytest.raises(SystemExit, match="unknown preset 'huge'"):
        main(["pretrain", "--preset", "huge", *MICRO_PRETRAIN])
    with pytest.raises(SystemExit, match="dataset seed 0"):
        main(["pretrain", "--env-arg", "seed=3", "--output", "unused", *MICRO_PRETRAIN])


def test_pretrain_help_config_shows_the_default_task(capsys):
    assert main(["pretrain", "--help-config"]) == 0
    out = capsys.readouterr().out
    assert "env_id = 'rlvr/Arithmetic-v0'" in out and "'min_digits': 2" in out
