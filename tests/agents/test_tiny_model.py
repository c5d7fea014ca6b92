"""The bundled tiny models: loadable offline with the Auto classes, small, recording the task
and config that made them, and rebuilt deterministically by their training script."""

import json
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlvr_gym  # noqa: F401  (registers the env ids)
from rlvr_gym.agents.tiny import (
    BUNDLED_MODELS,
    CHAIN_ENV_ID,
    CHAIN_ENV_KWARGS,
    COUNTDOWN_ENV_ID,
    COUNTDOWN_ENV_KWARGS,
    COUNTDOWN_MODEL_DIR,
    DEFAULT_ENV_ID,
    DEFAULT_ENV_KWARGS,
    TINY_CHAIN_MODEL_DIR,
    TINY_MODEL_DIR,
    PretrainConfig,
    _examples,
    build_char_tokenizer,
    pretrain,
)

SAMPLE_TEXT = {
    "tiny": "Compute 12 + 345.\n12 + 345 = 357\n\\boxed{357}",
    "tiny-chain": "Compute 6 - 3 + 1 + 8.\n6 - 3 = 3\n3 + 1 = 4\n4 + 8 = 12\n\\boxed{12}",
    "tiny-countdown": "Using the numbers 8, 6, 5, each exactly once, and + -, make 19.\n"
                      "8 - 6 = 2\n2 + 5 = 7, not 19.\n\nWait\n6 + 5 = 11\n11 + 8 = 19\n"
                      "\\boxed{6 + 5 + 8}",
}


@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_bundled_model_loads_with_auto_classes_offline(name):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = BUNDLED_MODELS[name].directory
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)
    assert sum(p.numel() for p in model.parameters()) <= 1_000_000
    text = SAMPLE_TEXT[name]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # one token per character
    assert tokenizer.decode(ids) == text
    assert model.config.eos_token_id == tokenizer.eos_token_id


@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_bundled_model_is_small_enough_to_ship(name):
    directory = BUNDLED_MODELS[name].directory
    total = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    assert total <= 4 * 1024 * 1024


@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_bundled_model_records_the_config_that_rebuilds_it(name):
    bundled = BUNDLED_MODELS[name]
    summary = json.loads((bundled.directory / "pretrain_summary.json").read_text())
    # The summary's config round-trips to the one `rlvr-gym pretrain --preset NAME` uses
    # (the first model's summary predates the task fields: their defaults are its task).
    assert PretrainConfig(**summary["config"]) == bundled.pretrain
    assert bundled.pretrain.env_id == bundled.env_id
    assert dict(bundled.pretrain.env_kwargs) == bundled.env_kwargs
    assert summary["config"]["steps"] == summary["history"][-1]["step"]
    assert 0.2 <= summary["history"][-1]["accuracy"] <= 0.65  # moderate: room for RL


def test_the_models_and_their_tasks():
    assert BUNDLED_MODELS["tiny"].directory == TINY_MODEL_DIR
    assert BUNDLED_MODELS["tiny"].pretrain == PretrainConfig()
    assert (BUNDLED_MODELS["tiny"].env_id, BUNDLED_MODELS["tiny"].env_kwargs) == (
        DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS)
    chain, countdown = BUNDLED_MODELS["tiny-chain"], BUNDLED_MODELS["tiny-countdown"]
    assert chain.directory == TINY_CHAIN_MODEL_DIR
    assert (chain.env_id, chain.env_kwargs) == (CHAIN_ENV_ID, CHAIN_ENV_KWARGS)
    assert countdown.directory == COUNTDOWN_MODEL_DIR
    assert (countdown.env_id, countdown.env_kwargs) == (COUNTDOWN_ENV_ID, COUNTDOWN_ENV_KWARGS)
    for model in (chain, countdown):
        # The generation budget holds the longest solution plus the end-of-text token, and
        # the context holds the longest prompt as well.
        env = gym.make(model.env_id, seed=0, **model.env_kwargs)
        problems = [env.unwrapped.source[i] for i in range(2000)]
        longest = max(len(p.solution) for p in problems)
        assert longest + 1 <= model.max_new_tokens == model.pretrain.eval_max_new_tokens
        prompt = max(len(env.unwrapped.prompt_format.render(p.question)) for p in problems)
        assert prompt + model.max_new_tokens <= model.pretrain.n_positions


def test_pretraining_examples_of_the_default_task_are_unchanged():
    """The examples the committed model learned from: drawn from the arithmetic source of
    dataset seed 0 and rendered with the '{question}\\n' template."""
    from rlvr_gym.envs.registry import make_source

    tokenizer = build_char_tokenizer()
    env = gym.make(DEFAULT_ENV_ID, seed=0, **DEFAULT_ENV_KWARGS)
    got = _examples(np.random.default_rng(0), 5, tokenizer, env)
    source = make_source("arithmetic", seed=0, **{k: v for k, v in DEFAULT_ENV_KWARGS.items()
                                                  if k != "prompt"})
    rng = np.random.default_rng(0)
    for example in got:
        problem = source[int(rng.integers(len(source)))]
        assert example.prompt == f"{problem.question}\n"
        assert example.text == problem.solution
        assert example.completion_ids[-1] == tokenizer.eos_token_id


def test_pretraining_examples_come_from_the_configured_task():
    tokenizer = build_char_tokenizer()
    env = gym.make(CHAIN_ENV_ID, seed=0, **CHAIN_ENV_KWARGS)
    for example in _examples(np.random.default_rng(0), 20, tokenizer, env):
        terms = example.prompt.count(" + ") + example.prompt.count(" - ") + 1
        assert 4 <= terms <= 6 and example.prompt.endswith(".\n")
        assert example.text.count("\n") == terms - 1  # a line per operation, then \boxed{}
        assert len(example.prompt_ids) == len(example.prompt)


def test_char_tokenizer_maps_unknown_characters_to_unk():
    tokenizer = build_char_tokenizer()
    assert tokenizer("é", add_special_tokens=False)["input_ids"] == [tokenizer.unk_token_id]


def test_pretraining_is_deterministic(tmp_path):
    from safetensors.torch import load_file

    config = PretrainConfig(steps=3, batch_size=4, n_layer=1, n_embd=16, n_head=2,
                            eval_every=0, warmup_steps=1)
    weights = {}
    for name, cfg in (("a", config), ("b", config), ("other", replace(config, seed=1)),
                      ("chain", replace(config, env_id=CHAIN_ENV_ID,
                                        env_kwargs=CHAIN_ENV_KWARGS))):
        pretrain(cfg, tmp_path / name, progress_bar=False)
        weights[name] = load_file(tmp_path / name / "model.safetensors")
    assert all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    for other in ("other", "chain"):
        assert not all(torch.equal(weights["a"][k], weights[other][k]) for k in weights["a"])


@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_bundled_model_runs_the_fused_gelu_with_the_outputs_of_the_unfused_one(name):
    """The shipped weights were trained with "gelu_new"; the config runs the same tanh GELU
    fused. Greedy answers to held-out problems are the same under both."""
    from transformers.activations import ACT2FN

    from rlvr_gym.agents.policy import Policy, SamplingConfig
    from rlvr_gym.agents.tiny import SERVED_ACTIVATION

    bundled = BUNDLED_MODELS[name]
    config = json.loads((bundled.directory / "config.json").read_text())
    assert config["activation_function"] == SERVED_ACTIVATION == "gelu_pytorch_tanh"
    env = gym.make(bundled.env_id, seed=1, **bundled.env_kwargs)
    prompts = [env.reset(options={"index": i})[0] for i in range(24)]
    greedy = SamplingConfig(0.0, 1.0, bundled.max_new_tokens)
    texts = {}
    for activation in ("gelu_new", SERVED_ACTIVATION):
        policy = Policy.from_pretrained(bundled.directory, "cpu")
        policy.model.config.activation_function = activation
        for block in policy.model.transformer.h:  # the swap takes effect: "relu" changes 19/24
            block.mlp.act = ACT2FN[activation]
        texts[activation] = [g.text for g in policy.generate(prompts, greedy)]
    assert texts["gelu_new"] == texts[SERVED_ACTIVATION]
    assert sum("\\boxed{" in t for t in texts["gelu_new"]) >= 20  # real answers, not noise


def test_pretraining_saves_the_served_activation_whatever_it_trained_with(tmp_path):
    config = PretrainConfig(steps=1, batch_size=2, n_layer=1, n_embd=16, n_head=2,
                            eval_every=0, warmup_steps=1)
    for activation in ("gelu_new", "gelu_pytorch_tanh"):
        pretrain(replace(config, activation=activation), tmp_path / activation,
                 progress_bar=False)
        saved = json.loads((tmp_path / activation / "config.json").read_text())
        assert saved["activation_function"] == "gelu_pytorch_tanh"
