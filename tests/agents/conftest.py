"""Fixtures for the agent tests: a randomly initialised micro GPT-2 with the bundled
character tokenizer (fast on a CPU), and the default task's envs."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import rlvr_gym  # noqa: F401  (registers the env ids)
from rlvr_gym.agents.policy import Policy
from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, build_char_tokenizer
from rlvr_gym.types import Status, Verdict


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def micro_model_dir(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tokenizer = build_char_tokenizer()
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=1,
                        n_head=2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("micro-model")
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def qwen_model_dir(tmp_path_factory):
    """A random micro Qwen2 with a BPE tokenizer, ChatML and two end ids (`build_random_model`)."""
    from rlvr_gym.agents.tiny import build_random_model

    return build_random_model(tmp_path_factory.mktemp("qwen-model"))


@pytest.fixture
def policy(micro_model_dir):
    return Policy.from_pretrained(micro_model_dir, device="cpu")


@pytest.fixture
def make_env():
    def make(seed: int = 0):
        return gym.make(DEFAULT_ENV_ID, seed=seed, **DEFAULT_ENV_KWARGS)

    return make


class ConstantVerifier:
    """Scripted verifier giving every response the same status (score 1 only if correct)."""

    def __init__(self, status: Status) -> None:
        self.status = status

    def verify(self, response: str, problem: object) -> Verdict:
        return Verdict(self.status, 1.0 if self.status == Status.CORRECT else 0.0)


@pytest.fixture
def constant_verifier():
    """`constant_verifier(Status.X)`: a verifier that judges every response X."""
    return ConstantVerifier
