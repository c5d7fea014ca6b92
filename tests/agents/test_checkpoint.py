"""Atomic, checked checkpoints: a save killed at any point leaves the previous checkpoint
loadable and the resume exact; mixed, truncated, garbage or missing parts fail at load with
one line naming the file."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlvr_gym.agents import checkpoint as ckpt_module
from rlvr_gym.agents.checkpoint import MANIFEST_FILE, CheckpointError
from rlvr_gym.agents.grpo import GRPO, GRPOConfig
from rlvr_gym.agents.seele import SEELE, SEELEConfig, hinted_env
from rlvr_gym.envs.registry import make_task_env
from rlvr_gym.types import Status, Verdict

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


class FirstCharIsDigit:
    def verify(self, response, problem):
        ok = response[:1].isdigit()
        return Verdict(Status.CORRECT if ok else Status.INCORRECT, float(ok))


def make_env():
    return make_task_env("arithmetic", prompt="{question}\n", verifier=FirstCharIsDigit(),
                         operators="+", max_operands=2)


def config(**overrides):
    values = dict(prompts_per_step=4, group_size=4, max_new_tokens=6, lr=1e-2,
                  micro_batch_size=6, device="cpu", seed=3, warmup_steps=0, beta=0.1)
    return GRPOConfig(**{**values, **overrides})


def weights(agent):
    return [p.detach().clone() for p in agent.policy.model.parameters()]


@pytest.fixture
def saved(micro_model_dir, tmp_path):
    """Checkpoints of one run at step 2 (`a`) and step 3 (`b`)."""
    agent = GRPO(micro_model_dir, make_env(), config())
    agent.learn(2, progress_bar=False)
    agent.save(tmp_path / "a")
    agent.learn(1, progress_bar=False)
    agent.save(tmp_path / "b")
    return tmp_path / "a", tmp_path / "b"


# A child process: resume the checkpoint, train one more step, and save over it with SIGKILL
# arriving at KILL_AT (after the weights were written, or right after the swap).
CHILD = """
import os, signal, sys
import torch
sys.path.insert(0, {here!r})
torch.set_num_threads(1)
from test_checkpoint import make_env
from rlvr_gym.agents import checkpoint
from rlvr_gym.agents.grpo import GRPO

agent = GRPO.load({path!r}, make_env())
agent.learn(1, progress_bar=False)
if {kill_at!r} == "state":
    def save(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    torch.save = save
else:
    exchange = checkpoint._exchange
    def swap_then_die(a, b):
        exchange(a, b)
        os.kill(os.getpid(), signal.SIGKILL)
    checkpoint._exchange = swap_then_die
agent.save({path!r})
"""


@pytest.mark.parametrize("kill_at", ["state", "after_swap"])
def test_a_save_killed_midway_keeps_a_consistent_checkpoint_and_exact_resume(
        micro_model_dir, tmp_path, kill_at):
    straight = GRPO(micro_model_dir, make_env(), config())
    straight.learn(4, progress_bar=False)
    first = GRPO(micro_model_dir, make_env(), config())
    first.learn(2, progress_bar=False)
    path = tmp_path / "ckpt"
    first.save(path)

    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(here=str(HERE), path=str(path), kill_at=kill_at)],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    resumed = GRPO.load(path, make_env())
    # killed while writing: the step-2 checkpoint as it was; killed after the swap: step 3
    assert resumed.num_steps == (2 if kill_at == "state" else 3)
    resumed.learn(4 - resumed.num_steps, progress_bar=False)
    for a, b in zip(weights(straight), weights(resumed), strict=True):
        assert torch.equal(a, b)
    # the dead save's leftovers are gone once the path is saved again
    assert any(p.name.startswith(".ckpt.tmp-") for p in tmp_path.iterdir())
    resumed.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_a_save_that_raises_leaves_the_previous_checkpoint(saved, micro_model_dir,
                                                           monkeypatch):
    a, _ = saved
    agent = GRPO.load(a, make_env())
    agent.learn(1, progress_bar=False)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        agent.save(a)
    monkeypatch.undo()
    assert GRPO.load(a, make_env()).num_steps == 2
    assert sorted(p.name for p in a.parent.iterdir()) == ["a", "b"]


def test_without_an_atomic_exchange_the_save_still_replaces_and_recovery_is_named(
        saved, monkeypatch):
    a, b = saved
    monkeypatch.setattr(ckpt_module, "_exchange", lambda x, y: False)
    agent = GRPO.load(b, make_env())
    agent.save(a)
    assert GRPO.load(a, make_env()).num_steps == 3
    assert sorted(p.name for p in a.parent.iterdir()) == ["a", "b"]

    # interrupted between moving the old checkpoint aside and moving the new one in
    rename = os.rename

    def interrupted(src, dst):
        if ".a.old-" in str(dst):
            rename(src, dst)
            raise KeyboardInterrupt
        rename(src, dst)

    monkeypatch.setattr(os, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        agent.save(a)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match=r"previous checkpoint is intact at .*\.a\.old-"):
        GRPO.load(a, make_env())


def test_parts_from_another_save_are_refused_naming_the_file(saved):
    a, b = saved
    shutil.copy(b / "state.pt", a / "state.pt")
    with pytest.raises(CheckpointError, match=f"{a / 'state.pt'}.*(bytes|SHA-256)"):
        GRPO.load(a, make_env())


def test_step3_weights_with_step2_state_are_refused(saved):
    a, b = saved
    shutil.copy(b / "policy" / "model.safetensors", a / "policy" / "model.safetensors")
    with pytest.raises(CheckpointError, match=f"{a / 'policy' / 'model.safetensors'} differs"):
        GRPO.load(a, make_env())


def test_mismatched_steps_are_refused_even_without_a_manifest(saved):
    a, b = saved
    record = json.loads((a / "agent.json").read_text())
    (a / "agent.json").write_text(json.dumps({**record, "num_steps": 3}))
    with pytest.raises(CheckpointError, match=r"agent\.json says step 3 but checkpoint\.json "
                                              r"step 2"):
        GRPO.load(a, make_env())
    # an older checkpoint without a manifest: the step in state.pt is still checked
    (b / MANIFEST_FILE).unlink()
    shutil.copy(a / "state.pt", b / "state.pt")
    with pytest.warns(UserWarning, match="no checkpoint.json"), \
            pytest.raises(CheckpointError, match=f"{b / 'state.pt'} is from step 2 but .*"
                                                 "says step 3"):
        GRPO.load(b, make_env())


@pytest.mark.parametrize("manifest", [True, False])
def test_truncated_state_names_the_file(saved, manifest):
    a, _ = saved
    if not manifest:
        (a / MANIFEST_FILE).unlink()
    data = (a / "state.pt").read_bytes()
    (a / "state.pt").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning) if not manifest else contextlib.nullcontext(), \
            pytest.raises(CheckpointError, match=f"{a / 'state.pt'} .*truncated") as info:
        GRPO.load(a, make_env())
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["agent.json", MANIFEST_FILE])
def test_garbage_json_names_the_file(saved, name):
    a, _ = saved
    (a / name).write_bytes(b"\x00{not json")
    with pytest.raises(CheckpointError, match=f"{a / name} is not valid JSON") as info:
        GRPO.load(a, make_env())
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("part", ["state.pt", "agent.json", "policy/model.safetensors",
                                  "reference/config.json"])
def test_a_missing_part_names_the_file(saved, part):
    a, _ = saved
    (a / part).unlink()
    with pytest.raises(CheckpointError, match=f"{a / part} is missing"):
        GRPO.load(a, make_env())


def test_a_missing_directory_says_what_to_pass(tmp_path):
    with pytest.raises(CheckpointError, match="holds no saved agent.*save()"):
        GRPO.load(tmp_path / "nowhere", make_env())


def test_a_directory_that_is_not_a_checkpoint_is_never_replaced(micro_model_dir, tmp_path):
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    agent = GRPO(micro_model_dir, make_env(), config(beta=0.0))
    with pytest.raises(CheckpointError, match="not an agent checkpoint"):
        agent.save(tmp_path)
    assert (tmp_path / "metrics.jsonl").read_text() == "{}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


def test_seele_hint_state_is_part_of_the_checked_checkpoint(micro_model_dir, tmp_path):
    env = make_task_env("arithmetic", prompt="{question}\n", verifier=FirstCharIsDigit(),
                        operators="+", max_operands=2)
    seele_config = SEELEConfig(prompts_per_step=2, group_size=2, max_new_tokens=4,
                               device="cpu")
    env = hinted_env(env, seele_config, micro_model_dir)
    agent = SEELE(micro_model_dir, env, seele_config)
    agent.learn(1, progress_bar=False)
    agent.save(tmp_path / "s")
    manifest = json.loads((tmp_path / "s" / MANIFEST_FILE).read_text())
    assert "env_state.json" in manifest["files"]
    saved = json.loads((tmp_path / "s" / "env_state.json").read_text())
    assert saved == {"HintScaffold": json.loads(json.dumps(env.state_dict()))}
    (tmp_path / "s" / "env_state.json").unlink()
    with pytest.raises(CheckpointError,
                       match=f"{tmp_path / 's' / 'env_state.json'} is missing"):
        SEELE.load(tmp_path / "s", env)


def test_cli_resume_from_a_corrupt_checkpoint_is_one_line(saved, tmp_path):
    from rlvr_gym.cli import main

    a, _ = saved
    (a / "agent.json").write_text("{")
    with pytest.raises(SystemExit, match=f"error: --resume {a}: {a / 'agent.json'} is not "
                                         "valid JSON"):
        main(["train", "--resume", str(a), "--output", str(tmp_path / "more"), "--steps", "1",
              "--no-progress", "--threads", "1"])


def test_saving_through_a_symlink_replaces_its_target_and_keeps_the_link(saved, tmp_path):
    a, b = saved
    link = tmp_path / "latest"
    link.symlink_to(a, target_is_directory=True)
    GRPO.load(b, make_env()).save(link)
    assert link.is_symlink() and GRPO.load(a, make_env()).num_steps == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "latest"]
