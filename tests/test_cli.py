"""The `rlvr-gym` command line, run in-process through `main(argv)`."""

import dataclasses
import importlib.util
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import rlvr_gym
from rlvr_gym.agents.grpo import GRPOConfig
from rlvr_gym.cli import check_env_id, config_overrides, main
from rlvr_gym.registration import TASKS

ROOT = Path(__file__).resolve().parents[1]

TINY_RUN = ["--steps", "1", "--no-progress", "--threads", "1",
            "--set", "prompts_per_step=2", "--set", "group_size=2",
            "--set", "eval_problems=3", "--set", "eval_samples=2", "--set", "eval_k=1,2",
            "--set", "warmup_steps=0"]


def test_envs_lists_every_registered_id_with_its_description(capsys):
    assert main(["envs"]) == 0
    lines = [line.split(None, 1) for line in capsys.readouterr().out.splitlines()]
    assert [line[0] for line in lines] == list(TASKS)
    assert lines[0] == ["rlvr/Arithmetic-v0",
                        "integer expressions; difficulty = digits and operands"]
    # the built-in ids (a fresh process: no task of the tests registered) each have their own
    builtin = subprocess.run([sys.executable, "-m", "rlvr_gym.cli", "envs"], check=True,
                             capture_output=True, text=True).stdout.splitlines()
    assert len(builtin) >= 9
    for line in builtin:
        env_id, description = line.split(None, 1)
        assert description == TASKS[env_id].description != ""


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"rlvr-gym {rlvr_gym.__version__}\n"


@pytest.mark.parametrize(("pair", "message"), [
    ("lr=abc", "GRPOConfig.lr takes a number (float), e.g. --set lr=0.0002 (the default)"),
    ("group_size=2.5", "GRPOConfig.group_size takes an integer (int), e.g. --set group_size=8"),
    ("dynamic_sampling=1", "GRPOConfig.dynamic_sampling takes true or false (bool)"),
    ("eval_k=1,x", "GRPOConfig.eval_k takes comma-separated integers (tuple[int, ...]), "
                   "e.g. --set eval_k=1,8"),
    ("adam_betas=0.9", "GRPOConfig.adam_betas takes 2 comma-separated numbers"),
    ("loss_type=ppo", "GRPOConfig.loss_type takes one of grpo, dr_grpo, dapo, bnpo"),
])
def test_a_set_value_of_the_wrong_type_names_the_field_and_its_type(pair, message):
    with pytest.raises(SystemExit) as refused:
        config_overrides(GRPOConfig, [pair])
    assert str(refused.value).startswith(f"error: --set {pair}: {message}")
    assert "\n" not in str(refused.value)


def test_set_values_take_the_type_of_their_field():
    values = config_overrides(GRPOConfig, ["lr=1", "eval_k=4", "adam_betas=(0.9, 0.95)",
                                           "output_dir=none", "backend=3"])
    assert values == {"lr": 1.0, "eval_k": (4,), "adam_betas": (0.9, 0.95),
                      "output_dir": None, "backend": "3"}
    assert isinstance(values["lr"], float)
    # every default, written as --set text, comes back as itself
    for field in dataclasses.fields(GRPOConfig):
        if field.default in (dataclasses.MISSING, None):
            continue
        text = ",".join(map(str, field.default)) if isinstance(field.default, tuple) \
            else str(field.default)
        assert config_overrides(GRPOConfig, [f"{field.name}={text}"]) == {
            field.name: field.default}, field.name


def test_a_wrong_set_value_fails_before_any_model_is_built(tmp_path):
    with pytest.raises(SystemExit, match="GRPOConfig.lr takes a number"):
        main(["train", "--set", "lr=abc", "--output", str(tmp_path / "run"), *TINY_RUN])
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit, match="^error: lr must be >= 0, got -1"):  # right type, refused
        main(["train", "--set", "lr=-1", "--output", str(tmp_path / "run"), *TINY_RUN])


@pytest.mark.parametrize(("command", "env_id", "hint"), [
    ("train", "Arithmetic-v0", "did you mean rlvr/Arithmetic-v0? "),
    ("train", "rlvr/Fraction-v0", "did you mean rlvr/Fractions-v0? "),
    ("pretrain", "countdown", "did you mean rlvr/Countdown-v0? "),
    ("train", "Nothing-v3", ""),
])
def test_an_unknown_env_id_suggests_the_rlvr_id_and_the_envs_command(command, env_id, hint,
                                                                     tmp_path):
    with pytest.raises(SystemExit) as refused:
        main([command, "--env", env_id, "--output", str(tmp_path / "out"), "--no-progress"])
    assert str(refused.value) == (f"error: unknown env id {env_id!r}; {hint}`rlvr-gym envs` "
                                  "lists the registered ids")
    # the ids it accepts: registered, unversioned (the latest version), module-prefixed
    for accepted in ("rlvr/Arithmetic-v0", "rlvr/Arithmetic", "rlvr_gym:rlvr/Countdown-v0"):
        check_env_id(accepted)


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


def readme_block(heading):
    """The first fenced block of the README section `heading`."""
    section = (ROOT / "README.md").read_text().split(f"\n## {heading}\n")[1].split("\n## ")[0]
    return section.split("```\n")[1]


def test_the_logging_commands_of_the_readme(tmp_path, monkeypatch, wandb_offline):
    """Each command of the README's Logging block, the training ones on a tiny budget, in a
    directory that is also WANDB_DIR (so that W&B's files are the `./wandb` of the block)."""
    monkeypatch.chdir(tmp_path / "wandb-dir")
    commands = [shlex.split(line, comments=True) for line in readme_block("Logging").splitlines()]
    trained = []
    for words in commands:
        while "=" in words[0]:  # VAR=value before the command
            monkeypatch.setenv(*words.pop(0).split("=", 1))
        if words[:2] == ["rlvr-gym", "train"]:
            assert main([*words[1:], *TINY_RUN]) == 0
            trained.append(sorted(Path("runs").iterdir())[-1])
        elif words[0] == "tensorboard" and importlib.util.find_spec("tensorboard"):
            logdir = Path(words[words.index("--logdir") + 1])
            assert sorted(logdir.glob("*/tensorboard/events.out.tfevents.*"))
        elif words[:2] == ["wandb", "sync"]:
            assert [p.name for p in Path().glob(words[2])] == [r["dir"] for r in wandb_offline()]
    assert [run.name for run in trained] == ["grpo-Arithmetic-v0-seed0",
                                             "grpo-Arithmetic-v0-seed0-2"]
    (run,) = wandb_offline()  # the second command only
    assert (run["project"], run["name"]) == ("rlvr-gym", trained[1].name)
    assert run["config"]["lr"] == GRPOConfig.lr and run["config"]["group_size"] == 2

    def by_step(rows, step_key):
        merged = {}
        for row in rows:
            merged.setdefault(row[step_key], {}).update(
                {k: v for k, v in row.items()
                 if not k.startswith("_") and k != "step" and isinstance(v, (int, float))})
        return merged

    logged = [json.loads(line) for line in (trained[1] / "metrics.jsonl").read_text().splitlines()]
    assert by_step(run["history"], "_step") == by_step(logged, "step")
    assert set(by_step(logged, "step")) == {0, 1} and "reward" in by_step(logged, "step")[1]


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


# --- runs that never mix ---------------------------------------------------------------------

TIMING = ("step_seconds", "update_seconds", "update_tokens_per_s", "gen_tokens_per_s")


def training_records(run):
    """The training records of a run's metrics.jsonl (held-out and timing values left out)."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING and not k.startswith("eval/")}
            for r in records if "reward" in r]


def test_rerunning_the_default_command_starts_a_fresh_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY_RUN]) == 0
    first = tmp_path / "runs" / "grpo-Arithmetic-v0-seed0"
    kept = {name: (first / name).read_bytes() for name in ("metrics.jsonl", "summary.json")}
    capsys.readouterr()
    assert main(["train", *TINY_RUN]) == 0  # a second `make train`
    second = tmp_path / "runs" / "grpo-Arithmetic-v0-seed0-2"
    assert f"output {Path('runs/grpo-Arithmetic-v0-seed0-2')}" in capsys.readouterr().out
    assert {name: (first / name).read_bytes() for name in kept} == kept
    for run in (first, second):
        assert [r["step"] for r in training_records(run)] == [1]
        assert json.loads((run / "agent" / "agent.json").read_text())["num_steps"] == 1


def test_an_explicit_directory_holding_a_run_is_refused_with_the_fix(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--output", str(out), *TINY_RUN]) == 0
    metrics = (out / "metrics.jsonl").read_bytes()
    with pytest.raises(SystemExit, match=f"already holds a run; continue it with --resume "
                       f"{out / 'agent'}, or give another --output"):
        main(["train", "--output", str(out), *TINY_RUN])
    assert (out / "metrics.jsonl").read_bytes() == metrics


def test_resume_continues_in_place_and_reproduces_an_uninterrupted_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    constant = [*TINY_RUN, "--set", "decay_steps=0"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", "--output", str(straight), *constant, "--steps", "3"]) == 0
    assert main(["train", "--output", str(split), *constant, "--steps", "1"]) == 0
    assert main(["train", "--resume", str(split / "agent"), *constant, "--steps", "2"]) == 0
    assert not (tmp_path / "runs").exists()  # nothing went to the default directory
    assert training_records(split) == training_records(straight)
    assert [r["step"] for r in training_records(split)] == [1, 2, 3]
    weights = [(run / "agent" / "policy" / "model.safetensors").read_bytes()
               for run in (split, straight)]
    assert weights[0] == weights[1]
    saved = [json.loads((run / "agent" / "agent.json").read_text()) for run in (split, straight)]
    for run, record in zip((split, straight), saved, strict=True):
        assert record["config"].pop("output_dir") == str(run)
    assert saved[0] == saved[1]  # step, env and config
    after = [json.loads((run / "summary.json").read_text())["after"] for run in (split, straight)]
    assert after[0] == after[1]


def test_eval_and_resume_use_the_env_the_agent_was_trained_on(tmp_path, capsys):
    out = tmp_path / "chain"
    assert main(["train", "--output", str(out), "--env", "rlvr/ArithmeticChain-v0",
                 "--env-arg", "max_steps=3", "--env-arg", "seed=4", *TINY_RUN]) == 0
    capsys.readouterr()
    eval_args = ["--problems", "2", "--samples", "0", "--threads", "1", "--no-progress"]
    assert main(["eval", str(out / "agent"), *eval_args]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["env_id"] == "rlvr/ArithmeticChain-v0"
    assert shown["env_kwargs"] == {"max_steps": 3, "seed": 4}  # held out: dataset seed 5
    assert main(["eval", str(out / "agent"), "--env", "rlvr/Arithmetic-v0", *eval_args]) == 0
    assert json.loads(capsys.readouterr().out)["env_id"] == "rlvr/Arithmetic-v0"
    assert main(["train", "--resume", str(out / "agent"), *TINY_RUN]) == 0
    assert 'on rlvr/ArithmeticChain-v0 {"max_steps": 3, "seed": 4}' in capsys.readouterr().out


def test_ctrl_c_during_learn_saves_a_loadable_agent_and_says_how_to_resume(tmp_path):
    """SIGINT to a real `rlvr-gym train` process after its first step."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import gymnasium as gym

    from rlvr_gym.agents.grpo import GRPO
    from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS

    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlvr_gym.cli", "train", "--output", str(out), *TINY_RUN,
         "--steps", "500", "--set", "save_every=0", "--set", "greedy_eval_every=0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 180
        while not (out / "metrics.jsonl").exists() or '"reward"' not in \
                (out / "metrics.jsonl").read_text():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no training step within 180 s"
            time.sleep(0.2)
        assert not (out / "agent").exists()  # save_every=0: nothing saved before the interrupt
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    agent = GRPO.load(out / "agent", gym.make(DEFAULT_ENV_ID, seed=0, **DEFAULT_ENV_KWARGS))
    assert 1 <= agent.num_steps < 500
    assert training_records(out)[-1]["step"] == agent.num_steps
    message = stderr.strip().splitlines()[-1]
    assert message == (f"interrupted at step {agent.num_steps}: agent saved to {out / 'agent'}; "
                       f"continue with `rlvr-gym train --resume {out / 'agent'} --steps "
                       f"{500 - agent.num_steps}`")


SMALL = ["--no-progress", "--threads", "1", "--set", "eval_problems=3", "--set",
         "eval_samples=2", "--set", "warmup_steps=0"]


def test_seele_from_the_cli_gets_its_hints_and_resumes_them(tmp_path, capsys):
    out = tmp_path / "seele"
    run = ["--agent", "seele", "--steps", "1", *SMALL, "--set", "prompts_per_step=2",
           "--set", "group_size=2", "--set", "rounds=2", "--set", "eval_k=1,2"]
    assert main(["train", "--output", str(out), *run]) == 0
    hints = json.loads((out / "agent" / "env_state.json").read_text())["HintScaffold"]
    # the step's two problems, each with the ratio refitted for its next visit
    assert sum(state["stored_ratio"] is not None for state in hints.values()) == 2
    assert main(["train", "--resume", str(out / "agent"), *run]) == 0
    assert json.loads((out / "agent" / "agent.json").read_text())["num_steps"] == 2
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "hint_ratio" in m] == [1, 2]


def test_bstar_from_the_cli_uses_the_step_scorer(tmp_path):
    out = tmp_path / "bstar"
    assert main(["train", "--agent", "bstar", "--output", str(out), "--steps", "2", *SMALL,
                 "--set", "steps_per_iteration=2", "--set", "queries_per_iteration=2",
                 "--set", "samples_per_query=2", "--set", "search_queries=2",
                 "--set", "batch_size=2", "--set", "temperature_grid=1.0",
                 "--set", "threshold_grid=0.5"]) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    trained = [m for m in metrics if "threshold" in m]
    assert len(trained) == 1 and trained[0]["threshold"] == 0.5
    # rewards carry the (noisy) step score besides the 0/1 answer reward, so their mean is
    # not the accuracy as it would be with the answer reward alone
    assert trained[0]["reward"] != trained[0]["accuracy"]
