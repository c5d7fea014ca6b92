"""FSDP for the torchrun learner (`fsdp=True`, rlvr_gym.distributed.fsdp): 2 sharded gloo ranks
take the optimiser step one process takes on the same global batch; the CLI trains, saves a
whole checkpoint that one process loads, and resumes exactly; what would make the ranks run
different forward passes is refused before any process group starts."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from rlvr_gym.agents import GRPO, IBTPO, MRT, GRPOConfig, IBTPOConfig, MRTConfig
from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, TINY_MODEL_DIR
from tests.distributed.test_data_parallel import SMALL, free_port, torchrun


def test_two_fsdp_ranks_take_the_step_one_process_takes_on_the_same_batch(tmp_path):
    from benchmarks.data_parallel import FSDP_SETTINGS, step_difference

    differences = step_difference(tmp_path, free_port(), fsdp=True)
    assert {f"{name}{part}" for name in FSDP_SETTINGS
            for part in ("", " gradient", " stepped parameters")} == set(differences)
    assert all(differences[f"{name} stepped parameters"][0] == 0 for name in FSDP_SETTINGS)
    for name in FSDP_SETTINGS:
        param, ranks, _ = differences[name]
        grad, grad_ranks, grad_size = differences[f"{name} gradient"]
        assert grad_size > 1e-3  # the step moved the weights
        assert ranks == 0 and grad_ranks == 0  # the gathered weights agree on both ranks
        # The summed gradient is the one-process gradient up to float32 rounding (FSDP sums,
        # not averages, the shards); AdamW's first step keeps the weights within a quarter of
        # lr = 2e-4 (tests/distributed/test_data_parallel.py argues it).
        assert grad <= 1e-6 * grad_size * 100 and param <= 5e-5, (name, differences)
    # Rank 1 holds no groups: it runs only padding passes (loss * 0), in the update and in the
    # old-log-prob pass of the second iteration, and adds nothing: bit-identical.
    uneven = "dr_grpo, 2 passes, all groups on rank 0"
    assert differences[uneven][0] == 0 and differences[f"{uneven} gradient"][0] == 0


def weights(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def test_torchrun_fsdp_trains_saves_whole_weights_and_resumes_exactly(tmp_path):
    port = free_port()
    straight, split, ddp = tmp_path / "straight", tmp_path / "split", tmp_path / "ddp"
    fsdp = [*SMALL, "--set", "eval_samples=2", "--set", "fsdp=true"]
    done = torchrun("train", "--steps", "3", "--output", str(straight), *fsdp, port=port)
    assert done.stdout.count("held-out accuracy") == 1  # both ranks evaluate, rank 0 reports
    records = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().split("\n")
               if line]
    assert [r["step"] for r in records if "groups_trained" in r] == [1, 2, 3]
    assert [r["step"] for r in records if "eval/pass@1" in r] == [0, 3]  # logged once each

    torchrun("train", "--steps", "2", "--output", str(split), *fsdp, port=port)
    torchrun("train", "--steps", "2", "--output", str(ddp), *SMALL, "--set", "eval_samples=2",
             port=port)
    saved, initial = weights(split / "agent" / "policy"), weights(TINY_MODEL_DIR)
    assert any(not torch.equal(x, initial[k]) for k, x in saved.items())  # it trained
    # The same steps as DDP, within lr (at most 2e-5 here): step 2 trains no row, where DDP's
    # zero gradients still make AdamW move by its momentum and one process (and FSDP) skip.
    for name, x in weights(ddp / "agent" / "policy").items():
        assert torch.allclose(saved[name], x, rtol=0, atol=1e-4), name

    # The whole checkpoint loads in one process (fsdp off), optimiser state included.
    env = gym.make(DEFAULT_ENV_ID, seed=0, **DEFAULT_ENV_KWARGS)
    one = GRPO.load(split / "agent", env, fsdp=False)
    assert one.num_steps == 2 and one.world.size == 1
    for name, x in one.policy.model.state_dict().items():
        assert torch.equal(x, saved[name]), name
    loaded = one.optimizer.state_dict()
    params = list(one.policy.model.parameters())
    assert loaded["param_groups"][0]["params"] == list(range(len(params)))
    for i, p in enumerate(params):  # whole moments, not one rank's shard
        assert loaded["state"][i]["exp_avg"].shape == p.shape, i
    assert max(float(s["exp_avg"].abs().max()) for s in loaded["state"].values()) > 0

    torchrun("train", "--resume", str(split / "agent"), "--steps", "1", *fsdp, port=port)
    assert json.loads((split / "summary.json").read_text())["num_steps"] == 3
    resumed = weights(split / "agent" / "policy")
    for name, x in weights(straight / "agent" / "policy").items():
        assert torch.equal(x, resumed[name]), name


@pytest.fixture
def two_ranks(monkeypatch):
    """This process as rank 0 of 2 (no process group is started by the refusals)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")


def env() -> gym.Env:
    return gym.make(DEFAULT_ENV_ID, seed=0, **DEFAULT_ENV_KWARGS)


def test_fsdp_in_one_process_is_refused_saying_to_launch_with_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="launch it with torchrun --nproc_per_node N .* or set "
                                         "fsdp=False"):
        GRPO(TINY_MODEL_DIR, env(), GRPOConfig(device="cpu", fsdp=True))
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize(("fields", "message"), [
    ({"dynamic_sampling": True}, "dynamic_sampling refills a different number of groups"),
    ({"beta": 0.04}, r"does not shard a reference model; set beta=0 \(got 0.04\)"),
    ({"backend": "vllm"}, "set backend='transformers' \\(got 'vllm'\\)"),
    ({"lora_rank": 8}, "does not shard LoRA adapters; set lora_rank=0"),
])
def test_fsdp_refuses_what_would_break_equal_forward_passes(fields, message):
    with pytest.raises(ValueError, match=message):
        GRPOConfig(fsdp=True, **fields)
    GRPOConfig(fsdp=False, **fields)  # each is fine without fsdp


@pytest.mark.usefixtures("two_ranks")
@pytest.mark.parametrize(("agent", "config"), [(MRT, MRTConfig), (IBTPO, IBTPOConfig)])
def test_agents_other_than_grpo_are_refused_with_fsdp_before_any_process_group(agent, config):
    with pytest.raises(ValueError, match=f"{agent.__name__} does not train with fsdp=True"):
        agent(TINY_MODEL_DIR, env(), config(device="cpu", fsdp=True))
    assert not torch.distributed.is_initialized()
