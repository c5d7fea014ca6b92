"""LoRA through peft, gradient checkpointing and bf16: only adapters train, the reference
policy is the base model with the adapters off (no copy), a LoRA agent saves its adapters and
resumes exactly, checkpointing recomputes without changing the gradients."""

import json

import pytest
import torch

from rlvr_gym.agents.grpo import GRPO, GRPOConfig
from rlvr_gym.agents.ibtpo import IBTPO, IBTPOConfig
from rlvr_gym.agents.policy import Policy
from rlvr_gym.envs.registry import make_task_env
from rlvr_gym.types import Status, Verdict

pytest.importorskip("peft", reason="pip install 'rlvr-gym[lora]'")


class FirstCharIsDigit:
    """A reward the random micro model earns about one time in ten (groups vary)."""

    def verify(self, response, problem):
        ok = response[:1].isdigit()
        return Verdict(Status.CORRECT if ok else Status.INCORRECT, float(ok))


class OddLength:
    """A reward any random model earns about half the time."""

    def verify(self, response, problem):
        return Verdict(Status.CORRECT if len(response) % 2 else Status.INCORRECT,
                       float(len(response) % 2))


def env(verifier=None):
    return make_task_env("arithmetic", prompt="{question}\n",
                         verifier=verifier or FirstCharIsDigit(), operators="+", max_operands=2)


def config(**overrides):
    values = dict(prompts_per_step=4, group_size=4, max_new_tokens=6, lr=5e-2,
                  micro_batch_size=6, device="cpu", seed=3, warmup_steps=0, lora_rank=4,
                  lora_alpha=8)
    return GRPOConfig(**{**values, **overrides})


def named(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_lora_trains_only_the_adapters(micro_model_dir):
    agent = GRPO(micro_model_dir, env(), config())
    trained = {n for n, p in agent.policy.model.named_parameters() if p.requires_grad}
    assert trained and all(".lora_A." in n or ".lora_B." in n for n in trained)
    optimised = {id(p) for group in agent.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in agent.policy.model.parameters() if p.requires_grad}
    before = named(agent.policy.model)
    agent.learn(3, progress_bar=False)
    after = named(agent.policy.model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and changed <= trained


def logprobs(model, policy, batch):
    return Policy(model, policy.tokenizer).token_logprobs(batch)[0].detach()


@pytest.mark.parametrize("agent_cls, config_cls", [(GRPO, GRPOConfig), (IBTPO, IBTPOConfig)])
def test_the_reference_is_the_base_model_with_the_adapters_off(micro_model_dir, agent_cls,
                                                               config_cls):
    values = dict(lora_rank=4, lora_alpha=8, beta=0.1, device="cpu", max_new_tokens=6)
    agent = agent_cls(micro_model_dir, env(), config_cls(**values))
    assert agent._needs_reference() and agent.reference is None  # no second copy
    for name, p in agent.policy.model.named_parameters():
        if ".lora_B." in name:
            torch.nn.init.normal_(p)  # adapters that change the output
    policy = agent.policy
    batch = policy.batch(policy.samples(["12+30=", "5+5="], ["42", "10"]))
    base = Policy.from_pretrained(micro_model_dir, device="cpu").model
    with agent.reference_model() as reference:
        assert torch.equal(logprobs(reference, policy, batch), logprobs(base, policy, batch))
    assert not torch.allclose(logprobs(policy.model, policy, batch),
                              logprobs(base, policy, batch))  # adapters on again


def test_a_lora_step_with_the_kl_term_runs_against_the_base_model(micro_model_dir):
    agent = GRPO(micro_model_dir, env(), config(beta=0.1))
    agent.learn(2, progress_bar=False)
    metrics = agent.train_step()
    assert metrics["kl"] > 0  # the adapters moved away from the base model


def test_a_lora_agent_saves_its_adapters_and_resumes_exactly(micro_model_dir, tmp_path):
    straight = GRPO(micro_model_dir, env(), config(beta=0.1))
    straight.learn(4, progress_bar=False)

    first = GRPO(micro_model_dir, env(), config(beta=0.1))
    first.learn(2, progress_bar=False)
    first.save(tmp_path / "ckpt")
    files = {p.name for p in (tmp_path / "ckpt" / "policy").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    assert "model.safetensors" not in files and not (tmp_path / "ckpt" / "reference").exists()
    resumed = GRPO.load(tmp_path / "ckpt", env())
    assert resumed.num_steps == 2 and resumed.reference is None
    resumed.learn(2, progress_bar=False)
    a, b = named(straight.policy.model), named(resumed.policy.model)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def test_a_lora_checkpoint_names_its_missing_base_model(micro_model_dir, tmp_path):
    agent = GRPO(micro_model_dir, env(), config())
    agent.save(tmp_path / "ckpt")
    adapters = tmp_path / "ckpt" / "policy" / "adapter_config.json"
    record = json.loads(adapters.read_text())
    record["base_model_name_or_path"] = str(tmp_path / "gone")
    adapters.write_text(json.dumps(record))
    with pytest.raises(FileNotFoundError, match="base model of the LoRA adapters"):
        Policy.from_pretrained(tmp_path / "ckpt" / "policy", device="cpu")


def test_gradient_checkpointing_recomputes_with_the_same_gradients(qwen_model_dir):
    grads = []
    for checkpointing in (False, True):
        policy = Policy.from_pretrained(qwen_model_dir, device="cpu")
        calls = []
        if checkpointing:
            policy.enable_gradient_checkpointing()
            for layer in policy.model.model.layers:
                run = layer._gradient_checkpointing_func
                layer._gradient_checkpointing_func = \
                    lambda *a, run=run, calls=calls, **k: calls.append(1) or run(*a, **k)
        batch = policy.batch(policy.samples(["Compute 1 + 2."], ["3"]))
        policy.token_logprobs(batch)[0].sum().backward()
        grads.append([p.grad.clone() for p in policy.model.parameters()])
        assert len(calls) == (policy.model.config.num_hidden_layers if checkpointing else 0)
        assert not policy.model.training  # dropout stays off
        with torch.no_grad():
            policy.token_logprobs(batch)
        assert len(calls) == (2 if checkpointing else 0)  # not without gradients
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_lora_with_checkpointing_and_bf16_trains_adapters_in_fp32(qwen_model_dir):
    agent = GRPO(qwen_model_dir, env(OddLength()),
                 config(dtype="bfloat16", gradient_checkpointing=True))
    dtypes = {n: p.dtype for n, p in agent.policy.model.named_parameters()}
    assert {d for n, d in dtypes.items() if ".lora_" in n} == {torch.float32}
    assert {d for n, d in dtypes.items() if ".lora_" not in n} == {torch.bfloat16}
    assert agent.policy.compute_dtype == torch.bfloat16
    before = named(agent.policy.model)
    agent.learn(2, progress_bar=False)
    after = named(agent.policy.model)
    assert any(not torch.equal(before[n], after[n]) for n in before if ".lora_" in n)


def test_lora_config_is_checked():
    with pytest.raises(ValueError, match="lora_rank must be at least 0"):
        GRPOConfig(lora_rank=-1)
    with pytest.raises(ValueError, match="needs backend='transformers'"):
        GRPOConfig(lora_rank=8, backend="vllm")
