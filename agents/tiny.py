"""The bundled tiny model: a character-level GPT-2 (about 0.84M parameters) trained here by
supervised learning on the project's own procedural task (the default one), so that the main
job runs on a laptop CPU with no download.

It is deliberately under-trained: starting accuracy on the default task is moderate, which
leaves RL room to show. Rebuild it with `rlvr-gym pretrain` (deterministic for a given thread
count; the committed files came from the defaults of `PretrainConfig`).
"""

from __future__ import annotations

import json
import string
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlvr_gym.agents.policy import Generation, Policy, cross_entropy_on

TINY_MODEL_DIR = Path(str(resources.files("rlvr_gym") / "data" / "tiny-model"))
"""Directory of the bundled model; `Policy.from_pretrained(TINY_MODEL_DIR)` loads it."""

DEFAULT_ENV_ID = "rlvr/Arithmetic-v0"
DEFAULT_ENV_KWARGS: dict[str, Any] = {
    "min_digits": 2, "max_digits": 3, "min_operands": 2, "max_operands": 2, "operators": "+",
    "prompt": "{question}\n",
}
"""The default task of the main job: 2-3 digit addition with a short prompt that suits a
character model. Train on dataset `seed=0`, evaluate held-out on `seed=1`."""

SPECIAL_TOKENS = {"pad": "<|pad|>", "eos": "<|endoftext|>", "unk": "<|unk|>"}


def build_char_tokenizer() -> Any:
    """One token per printable ASCII character plus pad / end-of-text / unknown, as a fast
    tokenizer that `AutoTokenizer.from_pretrained(dir)` reloads offline."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([SPECIAL_TOKENS["pad"], SPECIAL_TOKENS["eos"],
                                         SPECIAL_TOKENS["unk"], *sorted(string.printable)])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk"]))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()  # join characters back without separators
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=SPECIAL_TOKENS["eos"], bos_token=SPECIAL_TOKENS["eos"],
        pad_token=SPECIAL_TOKENS["pad"], unk_token=SPECIAL_TOKENS["unk"])


@dataclass(frozen=True)
class PretrainConfig:
    """Supervised pre-training of the tiny model (defaults made the committed model)."""

    steps: int = 1000
    """Optimiser steps; the default stops while held-out greedy accuracy is moderate (37.5%;
    it is 67% at step 1200), leaving RL room to show."""
    batch_size: int = 64
    """Examples per step."""
    lr: float = 1e-3
    """AdamW learning rate, constant after warm-up (so the first n steps of a longer run equal
    a run of n steps)."""
    warmup_steps: int = 100
    """Linear warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    n_layer: int = 4
    """Transformer blocks."""
    n_embd: int = 128
    """Width of the residual stream."""
    n_head: int = 4
    """Attention heads."""
    n_positions: int = 256
    """Longest sequence (prompt + response) in tokens."""
    seed: int = 0
    """Seed of weights, data order and problem draws."""
    num_threads: int = 1
    """torch CPU threads; results are bit-identical only for the same thread count. One
    thread is also the fastest on a busy 2-core machine (OpenMP threads spin on each other)."""
    eval_every: int = 100
    """Print held-out greedy accuracy on the default task this often (0: never)."""
    snapshot_every: int = 0
    """Also save the model to `<out_dir>/step-<n>` this often (0: never); with the constant
    learning rate a snapshot equals a run with `steps=n`, which helps choose `steps`."""


def _examples(rng: np.random.Generator, n: int, tokenizer: Any) -> list[Generation]:
    """n (prompt, reference solution) pairs of the default task's training split (seed 0)."""
    from rlvr_gym.envs.registry import make_source

    template = DEFAULT_ENV_KWARGS["prompt"]
    source = make_source("arithmetic", seed=0,
                         **{k: v for k, v in DEFAULT_ENV_KWARGS.items() if k != "prompt"})
    out = []
    for _ in range(n):
        problem = source[int(rng.integers(len(source)))]
        prompt = template.format(question=problem.question)
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        target = tokenizer(problem.solution, add_special_tokens=False)["input_ids"]
        out.append(Generation(prompt, "", problem.solution, ids, [],
                              target + [tokenizer.eos_token_id], "stop"))
    return out


def pretrain(config: PretrainConfig, out_dir: str | Path, progress_bar: bool = True
             ) -> dict[str, Any]:
    """Train the tiny model from scratch and save model + tokenizer to `out_dir`.

    Loss: cross-entropy on the solution tokens (and the end-of-text token) only.
    Returns a summary with the final held-out greedy accuracy and the wall time.
    """
    import gymnasium as gym
    from tqdm.auto import tqdm
    from transformers import GPT2Config, GPT2LMHeadModel

    import rlvr_gym  # noqa: F401  (registers the env ids)
    from rlvr_gym.agents.monitors import evaluate

    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    tokenizer = build_char_tokenizer()
    model_config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=config.n_positions, n_embd=config.n_embd,
        n_layer=config.n_layer, n_head=config.n_head, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    policy = Policy(GPT2LMHeadModel(model_config), tokenizer)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / config.warmup_steps))
    eval_env = gym.make(DEFAULT_ENV_ID, seed=1, **DEFAULT_ENV_KWARGS)
    start = time.perf_counter()
    history = []
    bar = tqdm(range(1, config.steps + 1), desc="pretrain", disable=not progress_bar)
    for step in bar:
        batch = policy.batch(_examples(rng, config.batch_size, tokenizer))
        loss = cross_entropy_on(policy, batch, batch.completion_mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if config.eval_every and (step % config.eval_every == 0 or step == config.steps):
            acc = evaluate(policy, eval_env, num_problems=200, samples=0,
                           max_new_tokens=32)["accuracy"]
            history.append({"step": step, "loss": loss.item(), "accuracy": acc,
                            "seconds": time.perf_counter() - start})
            bar.write(f"step {step}: loss {loss.item():.4f} held-out greedy accuracy {acc:.3f}")
        if config.snapshot_every and step % config.snapshot_every == 0:
            _save(policy, Path(out_dir) / f"step-{step}")
    out_dir = Path(out_dir)
    _save(policy, out_dir)
    summary = {"config": asdict(config), "parameters": sum(
        p.numel() for p in policy.model.parameters()), "history": history,
        "wall_seconds": time.perf_counter() - start, "torch": torch.__version__}
    (out_dir / "pretrain_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _save(policy: Policy, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    policy.model.save_pretrained(out_dir)
    policy.tokenizer.save_pretrained(out_dir)
    _make_tokenizer_config_portable(out_dir)


def _make_tokenizer_config_portable(out_dir: Path) -> None:
    """transformers 5 records its own backend class name, which 4.x cannot resolve;
    `PreTrainedTokenizerFast` loads the same tokenizer.json in both."""
    path = out_dir / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config.pop("backend", None)
    config["model_max_length"] = json.loads((out_dir / "config.json").read_text())["n_positions"]
    path.write_text(json.dumps(config, indent=2) + "\n")
