"""The bundled tiny model: loadable offline with the Auto classes, small, and rebuilt
deterministically by its training script."""

import json

import torch

from rlvr_gym.agents.tiny import TINY_MODEL_DIR, PretrainConfig, build_char_tokenizer, pretrain


def test_bundled_model_loads_with_auto_classes_offline():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL_DIR, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL_DIR, local_files_only=True)
    assert sum(p.numel() for p in model.parameters()) <= 1_000_000
    text = "Compute 12 + 345.\n12 + 345 = 357\n\\boxed{357}"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # one token per character
    assert tokenizer.decode(ids) == text
    assert model.config.eos_token_id == tokenizer.eos_token_id


def test_bundled_model_is_small_enough_to_ship():
    total = sum(p.stat().st_size for p in TINY_MODEL_DIR.iterdir() if p.is_file())
    assert total <= 10 * 1024 * 1024


def test_bundled_model_records_how_it_was_trained():
    summary = json.loads((TINY_MODEL_DIR / "pretrain_summary.json").read_text())
    assert summary["config"]["steps"] == summary["history"][-1]["step"]
    assert 0.3 <= summary["history"][-1]["accuracy"] <= 0.6


def test_char_tokenizer_maps_unknown_characters_to_unk():
    tokenizer = build_char_tokenizer()
    assert tokenizer("é", add_special_tokens=False)["input_ids"] == [tokenizer.unk_token_id]


def test_pretraining_is_deterministic(tmp_path):
    from dataclasses import replace

    from safetensors.torch import load_file

    config = PretrainConfig(steps=3, batch_size=4, n_layer=1, n_embd=16, n_head=2,
                            eval_every=0, warmup_steps=1)
    weights = {}
    for name, cfg in (("a", config), ("b", config), ("other", replace(config, seed=1))):
        pretrain(cfg, tmp_path / name, progress_bar=False)
        weights[name] = load_file(tmp_path / name / "model.safetensors")
    assert all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    assert not all(torch.equal(weights["a"][k], weights["other"][k]) for k in weights["a"])
