"""The bundled tiny models: character-level GPT-2s (about 0.84M parameters) trained here by
supervised learning on the project's own procedural tasks (`BUNDLED_MODELS`: `tiny` on 2-3
digit addition, `tiny-chain` on 3-5 step sums for step-level methods such as IB-TPO,
`tiny-countdown` on a search with re-checks for MRT), so that the agents run on a laptop CPU
with no download. All are deliberately under-trained, which leaves RL room to show;
`rlvr-gym pretrain [--preset NAME]` rebuilds them.
"""

from __future__ import annotations

import json
import string
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
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

TINY_CHAIN_MODEL_DIR = Path(str(resources.files("rlvr_gym") / "data" / "tiny-chain-model"))
"""Directory of the bundled model of the multi-step task `CHAIN_ENV_ID` / `CHAIN_ENV_KWARGS`."""

CHAIN_ENV_ID = "rlvr/Arithmetic-v0"
CHAIN_ENV_KWARGS: dict[str, Any] = {
    "min_digits": 1, "max_digits": 1, "min_operands": 4, "max_operands": 6, "operators": "+-",
    "prompt": "{question}\n",
}
"""The task of the chain model: "Compute 6 - 3 + 1 + 8." solved left to right, one operation
per line ("6 - 3 = 3\n3 + 1 = 4\n4 + 8 = 12\n\\boxed{12}"). Train on dataset `seed=0`,
evaluate held-out on `seed=1`; the longest solution is 66 tokens."""

COUNTDOWN_MODEL_DIR = Path(str(resources.files("rlvr_gym") / "data" / "tiny-countdown-model"))
"""Directory of the bundled model of the search task `COUNTDOWN_ENV_ID` / `COUNTDOWN_ENV_KWARGS`."""

COUNTDOWN_ENV_ID = "rlvr/Countdown-v0"
COUNTDOWN_ENV_KWARGS: dict[str, Any] = {
    "min_numbers": 3, "max_numbers": 3, "max_number": 9, "operators": "+-",
    "search_attempts": 3, "prompt": "{question}\n",
}
"""The task of the countdown model: "Using the numbers 8, 6, 5, each exactly once, and + -,
make 19." Finding an expression takes a search (a random attempt reaches the target about a
third of the time), checking one is two one-digit sums: the reference solutions show up to
three attempts, each worked out and rejected (", not 19."), separated by "\n\nWait\n",
then the one that reaches the target and its `\boxed{}` expression, so the model learns to
try, check and try again. The longest reference is 154 tokens."""

SERVED_ACTIVATION = "gelu_pytorch_tanh"
"""The activation a saved tiny model runs: the tanh-approximated GELU in one fused kernel.
It is the function of "gelu_new" (computed op by op), up to float rounding: the bundled
models' greedy outputs are identical with either (200 of 200 held-out prompts each), and
`make train` took 198 CPU s against 207-222 before the switch. Sampled runs differ from ones
made with "gelu_new", as any rounding change makes them."""

SPECIAL_TOKENS = {"pad": "<|pad|>", "eos": "<|endoftext|>", "unk": "<|unk|>"}


def build_char_tokenizer() -> Any:
    """One token per printable ASCII character plus pad / end-of-text / unknown (fast)."""
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
    """Optimiser steps; the default leaves held-out greedy accuracy moderate (37.5%)."""
    batch_size: int = 64
    """Examples per step."""
    lr: float = 1e-3
    """AdamW learning rate, constant after warm-up (a run's first n steps are a run of n)."""
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
    """torch CPU threads; results are bit-identical only for the same thread count."""
    eval_every: int = 100
    """Print held-out greedy accuracy on the task (200 problems) this often (0: never)."""
    snapshot_every: int = 0
    """Also save the model to `<out_dir>/step-<n>` this often (0: never): a run of n steps."""
    env_id: str = DEFAULT_ENV_ID
    """The task to learn (dataset seed 0; seed 1 is held out), with step-wise solutions."""
    env_kwargs: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_ENV_KWARGS))
    """Keyword arguments of `gym.make(env_id, ...)`; the model learns `prompt + solution`."""
    eval_max_new_tokens: int = 32
    """Token budget of the held-out greedy evaluation (room for the longest solution)."""
    activation: str = "gelu_new"
    """GELU implementation while training ("gelu_new" made the weights of `tiny` and
    `tiny-chain`). Every saved model runs `SERVED_ACTIVATION`, the same tanh-approximated
    function."""


@dataclass(frozen=True)
class BundledModel:
    """A model shipped in the package: where it lies, the task it learned and how it was made."""

    directory: Path
    """Load it with `Policy.from_pretrained(directory)`."""
    env_id: str
    """Its task's env id ..."""
    env_kwargs: dict[str, Any]
    """... and keyword arguments (dataset seed 0 trains, seed 1 is held out)."""
    max_new_tokens: int
    """A generation budget with room for the task's longest solution."""
    pretrain: PretrainConfig
    """The config that rebuilds it: `pretrain(model.pretrain, model.directory)`."""


BUNDLED_MODELS: dict[str, BundledModel] = {
    "tiny": BundledModel(TINY_MODEL_DIR, DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, 40, PretrainConfig()),
    "tiny-chain": BundledModel(
        TINY_CHAIN_MODEL_DIR, CHAIN_ENV_ID, CHAIN_ENV_KWARGS, 80,
        PretrainConfig(steps=800, env_id=CHAIN_ENV_ID, env_kwargs=CHAIN_ENV_KWARGS,
                       eval_max_new_tokens=80)),
    "tiny-countdown": BundledModel(
        COUNTDOWN_MODEL_DIR, COUNTDOWN_ENV_ID, COUNTDOWN_ENV_KWARGS, 160,
        PretrainConfig(steps=800, env_id=COUNTDOWN_ENV_ID, env_kwargs=COUNTDOWN_ENV_KWARGS,
                       eval_max_new_tokens=160, activation=SERVED_ACTIVATION)),
}
"""The bundled models by name (`rlvr-gym pretrain --preset NAME` rebuilds one)."""


def _examples(rng: np.random.Generator, n: int, tokenizer: Any, env: Any) -> list[Generation]:
    """n (prompt as the env renders it, reference solution) pairs drawn from `env`'s problems."""
    source, prompt_format = env.unwrapped.source, env.unwrapped.prompt_format
    out = []
    for _ in range(n):
        problem = source[int(rng.integers(len(source)))]
        prompt = prompt_format.render(problem.question)
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        target = tokenizer(problem.solution, add_special_tokens=False)["input_ids"]
        out.append(Generation(prompt, "", problem.solution, ids, [],
                              target + [tokenizer.eos_token_id], "stop"))
    return out


def pretrain(config: PretrainConfig, out_dir: str | Path, progress_bar: bool = True
             ) -> dict[str, Any]:
    """Train the tiny model from scratch on its solutions and save model + tokenizer to
    `out_dir`; returns a summary with the held-out greedy accuracy history, wall and CPU
    seconds."""
    import gymnasium as gym
    from tqdm.auto import tqdm
    from transformers import GPT2Config, GPT2LMHeadModel

    import rlvr_gym  # noqa: F401  (registers the env ids)
    from rlvr_gym.agents.rollout import evaluate

    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    tokenizer = build_char_tokenizer()
    model_config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=config.n_positions, n_embd=config.n_embd,
        n_layer=config.n_layer, n_head=config.n_head, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        activation_function=config.activation)
    policy = Policy(GPT2LMHeadModel(model_config), tokenizer)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / config.warmup_steps))
    train_env = gym.make(config.env_id, seed=0, **config.env_kwargs)
    eval_env = gym.make(config.env_id, seed=1, **config.env_kwargs)
    start, cpu_start = time.perf_counter(), time.process_time()
    history = []
    bar = tqdm(range(1, config.steps + 1), desc="pretrain", disable=not progress_bar)
    for step in bar:
        batch = policy.batch(_examples(rng, config.batch_size, tokenizer, train_env))
        loss = cross_entropy_on(policy, batch, batch.completion_mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if config.eval_every and (step % config.eval_every == 0 or step == config.steps):
            acc = evaluate(policy, eval_env, num_problems=200, samples=0,
                           max_new_tokens=config.eval_max_new_tokens)["accuracy"]
            history.append({"step": step, "loss": loss.item(), "accuracy": acc,
                            "seconds": time.perf_counter() - start})
            bar.write(f"step {step}: loss {loss.item():.4f} held-out greedy accuracy {acc:.3f}")
        if config.snapshot_every and step % config.snapshot_every == 0:
            _save(policy, Path(out_dir) / f"step-{step}")
    out_dir = Path(out_dir)
    _save(policy, out_dir)
    summary = {"config": asdict(config), "parameters": sum(
        p.numel() for p in policy.model.parameters()), "history": history,
        "wall_seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start, "torch": torch.__version__}
    (out_dir / "pretrain_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _save(policy: Policy, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    trained = policy.model.config.activation_function
    policy.model.config.activation_function = SERVED_ACTIVATION
    policy.model.save_pretrained(out_dir)
    policy.model.config.activation_function = trained
    policy.tokenizer.save_pretrained(out_dir)
    # transformers 5 records its own backend class name, which 4.x cannot resolve;
    # `PreTrainedTokenizerFast` loads the same tokenizer.json in both.
    path = out_dir / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config.pop("backend", None)
    config["model_max_length"] = json.loads((out_dir / "config.json").read_text())["n_positions"]
    path.write_text(json.dumps(config, indent=2) + "\n")


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
"""ChatML, the chat template of Qwen's instruct models (without tools)."""


def build_random_model(out_dir: str | Path, hidden_size: int = 32, layers: int = 2,
                       heads: int = 4, intermediate_size: int = 64, vocab_size: int = 400,
                       context: int = 512, seed: int = 0) -> Path:
    """Save to `out_dir` a randomly initialised (untrained) Qwen2-architecture model, to try
    the commands and measure memory with no download: a byte-level BPE tokenizer of at most
    `vocab_size` tokens trained by `tokenizers` on prompts and solutions of the math tasks,
    the ChatML template `CHATML`, end ids `<|endoftext|>` (the tokenizer's EOS) and
    `<|im_end|>` (the generation config's end of turn), no BOS, as in Qwen2.5-Instruct."""
    import gymnasium as gym
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    import rlvr_gym  # noqa: F401  (registers the env ids)

    text = []
    for env_id in ("rlvr/Arithmetic-v0", "rlvr/LinearEquation-v0", "rlvr/Fractions-v0",
                   "rlvr/Countdown-v0"):
        env: Any = gym.make(env_id, seed=0).unwrapped
        text += [env.prompt_format.render(p.question) + p.solution
                 for p in (env.source[i] for i in range(300))]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(text, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=specials[0],
                                        pad_token=specials[0], chat_template=CHATML,
                                        additional_special_tokens=specials[1:])
    end, end_of_turn = (core.token_to_id(t) for t in (specials[0], specials[2]))
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=core.get_vocab_size(), hidden_size=hidden_size, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads,
        intermediate_size=intermediate_size, max_position_embeddings=context,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=end, pad_token_id=end))
    model.generation_config.eos_token_id = [end_of_turn, end]
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
