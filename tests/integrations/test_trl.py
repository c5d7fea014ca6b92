"""`rlvr_gym.integrations.trl`: the prompt dataset, the reward function (unusable verdicts ->
None, which TRL masks) and the position-id fix for left-padded GPT-2-style models."""

from __future__ import annotations

import sys

import gymnasium as gym
import pytest
import torch

import rlvr_gym  # noqa: F401  (registers the ids)
from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, TINY_MODEL_DIR
from rlvr_gym.integrations.trl import position_ids_from_mask, prompt_dataset, reward_function
from rlvr_gym.types import RESPONSE_PREFIX_KEY, Status, Verdict

pytest.importorskip("trl", reason='TRL is not installed: pip install "rlvr-gym[trl]"')


class Prefixed(gym.Wrapper):
    """Starts every response with given text, as SEELE's hints do."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs + "Let", {**info, RESPONSE_PREFIX_KEY: "Let"}


@pytest.fixture
def env():
    env = gym.make(DEFAULT_ENV_ID, seed=0, **DEFAULT_ENV_KWARGS)
    yield env
    env.close()


def test_prompt_dataset_holds_the_envs_observations_and_problem_ids(env):
    data = prompt_dataset(env, size=5, start=10)
    assert data.column_names == ["prompt", "problem_id"] and len(data) == 5
    for k, row in enumerate(data):
        obs, info = env.reset(options={"index": 10 + k})
        assert (row["prompt"], row["problem_id"]) == (obs, info["problem_id"])
    small = gym.make("rlvr/MathDataset-v0")  # a file of 12 problems: all of them by default
    assert len(prompt_dataset(small)) == len(small.unwrapped.source) == 12


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "the env has 1000000 problems; pass size=N"),
    ({"size": 3, "start": 999_999}, "outside the env's 0..999999"),
    ({"size": 0}, "choose start and size within them"),
])
def test_prompt_dataset_refuses_a_range_it_cannot_give(env, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prompt_dataset(env, **kwargs)


def test_prompt_dataset_refuses_an_env_that_starts_the_response(env):
    with pytest.raises(ValueError, match="starts the response"):
        prompt_dataset(Prefixed(env), size=2)


def test_prompt_dataset_without_datasets_names_the_install_command(env, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r'pip install "rlvr-gym\[trl\]"'):
        prompt_dataset(env, size=2)


def test_reward_function_scores_through_the_env(env):
    data = prompt_dataset(env, size=3)
    solutions = [env.reset(options={"problem_id": i})[1]["solution"] for i in data["problem_id"]]
    reward = reward_function(env, name="addition")
    completions = [solutions[0], "\\boxed{-1}", [{"role": "assistant", "content": solutions[2]}]]
    assert reward(prompts=data["prompt"], completions=completions,
                  problem_id=data["problem_id"], trainer_state=None) == [1.0, 0.0, 1.0]
    assert reward.__name__ == "addition"
    with pytest.raises(ValueError, match="no problem_id column"):
        reward(prompts=data["prompt"], completions=completions)


class CorrectOrFailing:
    """Judges a response correct or fails on it, by the parity of its characters' codes."""

    def verify(self, response, problem):
        if sum(map(ord, response)) % 2:
            return Verdict(Status.ERROR, 0.0, None, "worker crashed")
        return Verdict(Status.CORRECT, 1.0)


def test_an_unusable_verdict_is_none_and_trl_masks_it(tmp_path):
    """Every usable reward is 1, so only the masked samples could make the advantages differ:
    with them masked the update is zero (scored 0 instead, they would move the model)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    env = gym.make(DEFAULT_ENV_ID, seed=0, verifier=CorrectOrFailing(), **DEFAULT_ENV_KWARGS)
    data = prompt_dataset(env, size=8)
    reward, seen = reward_function(env), []

    def recording(**kwargs):
        seen.extend(reward(**kwargs))
        return seen[-len(kwargs["completions"]):]

    recording.__name__ = "rlvr_reward"
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = GRPOTrainer(
        model=model, processing_class=AutoTokenizer.from_pretrained(TINY_MODEL_DIR),
        reward_funcs=recording, train_dataset=data,
        args=GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=16,
                        num_generations=8, max_completion_length=8, learning_rate=1e-2,
                        logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
                        bf16=False))
    trainer.train()
    assert None in seen and 1.0 in seen and set(seen) <= {None, 1.0}
    logged = next(h for h in trainer.state.log_history if "reward" in h)
    assert (logged["reward"], logged["grad_norm"]) == (1.0, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def left_padded(model, rows, pad):
    """Logits of `rows` (lists of token ids) in one left-padded batch, each row's own part."""
    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    return [logits[i, width - len(r):] for i, r in enumerate(rows)]


def test_position_ids_from_mask_scores_left_padded_rows_as_unpadded():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR).eval()
    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL_DIR)
    rows = [tokenizer(text)["input_ids"] for text in ("Compute 12 + 345.\n", "Compute 1 + 2.\n")]
    with torch.no_grad():
        alone = [model(input_ids=torch.tensor([r])).logits[0] for r in rows]
    shifted = left_padded(model, rows, tokenizer.pad_token_id)
    assert not torch.allclose(shifted[1], alone[1], atol=1e-4)  # what TRL's scoring sees
    handle = position_ids_from_mask(model)
    fixed = left_padded(model, rows, tokenizer.pad_token_id)
    for got, want in zip(fixed, alone, strict=True):
        assert torch.allclose(got, want, atol=1e-5)
    positions = torch.arange(len(rows[1]))[None] + 3  # a caller's own position ids stay
    with torch.no_grad():
        own = model(input_ids=torch.tensor([rows[1]]), position_ids=positions).logits[0]
    assert not torch.allclose(own, alone[1], atol=1e-4)
    handle.remove()
    assert not torch.allclose(left_padded(model, rows, tokenizer.pad_token_id)[1], alone[1],
                              atol=1e-4)
