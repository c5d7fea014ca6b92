"""The data-parallel learner (rlvr_gym.distributed.data_parallel): 2 gloo processes started by
torchrun take the optimiser step one process takes on the same global batch; the CLI trains,
logs once, saves once and resumes exactly under torchrun; agents that cannot split over ranks
are refused before any process group starts."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from rlvr_gym.agents import SEELE, BSTaR, SEELEConfig
from rlvr_gym.agents.seele import hinted_env
from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, TINY_MODEL_DIR
from rlvr_gym.distributed.data_parallel import World, merge_metrics

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_take_the_step_one_process_takes_on_the_same_batch(tmp_path):
    from benchmarks.data_parallel import SETTINGS, step_difference

    differences = step_difference(tmp_path, free_port())
    assert all(differences[f"{name} stepped parameters"][0] == 0 for name in SETTINGS)
    # Nothing to train on any rank: no gradient anywhere, and AdamW leaves every parameter and
    # its moments alone, as in one process (a gradient of zeros would still move them).
    idle = "no row to train (advantages all 0)"
    assert differences[f"{idle} stepped parameters"][2] == 0
    assert differences[idle][0] == 0 and differences[f"{idle} gradient"][2] == 0
    for name in (name for name in SETTINGS if name != idle):
        param, ranks, _ = differences[name]
        grad, grad_ranks, grad_size = differences[f"{name} gradient"]
        assert grad_size > 1e-3  # the step moved the weights
        assert ranks == 0 and grad_ranks == 0  # both ranks hold the same weights
        # The summed gradient is the one-process gradient up to float32 rounding; AdamW's
        # first step (about lr = 2e-4 per element) keeps the weights within a quarter of it.
        assert grad <= 1e-6 * grad_size * 100 and param <= 5e-5, (name, differences)
    # A rank without groups takes part and adds nothing: bit-identical.
    assert differences["dr_grpo, all groups on rank 0"][0] == 0


def torchrun(*args: str, port: int) -> subprocess.CompletedProcess:
    from benchmarks.data_parallel import launch

    done = subprocess.run(launch(["rlvr_gym.cli", *args], 2, port), capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


SMALL = ["--no-progress", "--threads", "1", "--set", "prompts_per_step=4", "--set",
         "group_size=4", "--set", "eval_problems=4", "--set", "eval_samples=0", "--set",
         "max_new_tokens=12", "--set", "device=cpu"]


def test_torchrun_trains_logs_once_and_resumes_exactly(tmp_path):
    port = free_port()
    straight, split = tmp_path / "straight", tmp_path / "split"
    done = torchrun("train", "--steps", "3", "--output", str(straight), *SMALL, port=port)
    assert done.stdout.count("held-out accuracy") == 1  # rank 0 reports, rank 1 is quiet
    summary = json.loads((straight / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["num_steps"] == 3
    records = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().split("\n")
               if line]
    trained = [r for r in records if "groups_trained" in r]
    assert [r["step"] for r in trained] == [1, 2, 3]
    # Each rank trains on its share (4 problems / 2 ranks): the merged count is all of them.
    assert all(r["groups_trained"] == 4 for r in trained)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["straight"]  # no second run dir

    torchrun("train", "--steps", "2", "--output", str(split), *SMALL, port=port)
    state = torch.load(split / "agent" / "state.pt", weights_only=False)
    assert len(state["rank_random_states"]) == 2
    assert not torch.equal(state["rank_random_states"][0]["torch_rng"],
                           state["rank_random_states"][1]["torch_rng"])
    torchrun("train", "--resume", str(split / "agent"), "--steps", "1", *SMALL, port=port)
    assert json.loads((split / "summary.json").read_text())["num_steps"] == 3
    steps = [json.loads(line)["step"] for line in (split / "metrics.jsonl").read_text().split("\n")
             if line and "groups_trained" in line]
    assert steps == [1, 2, 3]  # resumed in place, continuing the run's own records

    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(straight / "agent" / "policy")
    b = AutoModelForCausalLM.from_pretrained(split / "agent" / "policy")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_world_reads_torchrun_variables_and_refuses_bad_ones(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert World.from_env() == World(0, 1, 0) and not World.from_env().distributed
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="RANK=5 and WORLD_SIZE=4 are inconsistent.*torchrun"):
        World.from_env()
    world = World(rank=1, size=4)
    assert world.seed(0) != World(0, 4).seed(0) and World(0, 4).seed(7) == 7
    assert world.share(32, "prompts_per_step") == 8
    with pytest.raises(ValueError, match="prompts_per_step=6 does not split over 4 ranks"):
        world.share(6, "prompts_per_step")


def test_merged_metrics_sum_counts_and_average_the_rest():
    merged = merge_metrics([{"reward": 0.5, "groups_trained": 2, "note": "a"},
                            {"reward": 1.0, "groups_trained": 3, "skipped_update": 1}])
    assert merged == {"reward": 0.75, "groups_trained": 5, "note": "a", "skipped_update": 1}


def test_agents_that_cannot_split_over_ranks_are_refused_before_any_process_group(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    env = gym.make(DEFAULT_ENV_ID, seed=0, **DEFAULT_ENV_KWARGS)
    with pytest.raises(ValueError, match="BSTaR does not train on several ranks"):
        BSTaR(TINY_MODEL_DIR, env)
    config = SEELEConfig(device="cpu", hint_unit="chars")
    with pytest.raises(ValueError, match="HintScaffold wrapper keeps state.*one process"):
        SEELE(TINY_MODEL_DIR, hinted_env(env, config), config)
    assert not torch.distributed.is_initialized()
