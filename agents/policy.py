"""The policy: a Hugging Face causal LM with its tokenizer, sampling through a backend, and the
log-probabilities every RL loss needs. Generated tokens are kept as ids, never re-tokenized from
text, so that importance ratios are computed on exactly the tokens and context that were sampled. A
*response prefix* (a SEELE hint, an MRT prefix, an IB-TPO branch point) is text the response starts
with that the policy did not generate: sampling continues from `prompt + prefix`, and `TokenBatch`
marks its tokens. Generation goes through a `GenerationBackend` that sees only token ids
(`TransformersBackend`, or the optional `rlvr_gym.agents.vllm_backend.VLLMBackend`).
"""

from __future__ import annotations

import abc
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample one batch of completions."""

    temperature: float = 1.0
    """Softmax temperature; 0 means greedy decoding. RL papers sample at 0.6-1.0."""
    top_p: float = 1.0
    """Nucleus sampling mass; 1.0 keeps the full distribution (what RL ratios assume)."""
    max_new_tokens: int = 64
    """Most tokens generated per completion (the prefix does not count)."""
    stop: tuple[str, ...] = ()
    """Strings that end a completion (kept in it); the model's end tokens always do."""

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Generation:
    """One sampled completion and everything a loss needs to score it again: the response is
    `prefix + text`, and only `completion_ids` were generated."""

    prompt: str
    prefix: str
    text: str
    prompt_ids: list[int]
    prefix_ids: list[int]
    completion_ids: list[int]
    finish_reason: FinishReason
    logprobs: list[float] | None = None
    """Each completion token's log-probability after temperature and top-p, as the backend
    computed it while sampling (vLLM; None from transformers); losses never use these."""

    @property
    def response(self) -> str:
        """What the env should receive: the given prefix followed by the generated text."""
        return self.prefix + self.text


class GenerationBackend(abc.ABC):
    """Samples continuations of token-id contexts: `generate(contexts, sampling)` returns, for
    each context, the generated ids cut just after the first end token (`end_ids`) or after
    the token that completes a stop string, and the reason it ended. Randomness comes from
    torch's global RNG (or the backend's own seeded state): seeding torch makes runs repeat."""

    @abc.abstractmethod
    def generate(self, contexts: Sequence[Sequence[int]], sampling: SamplingConfig
                 ) -> list[tuple[list[int], FinishReason]]: ...

    @abc.abstractmethod
    def sync_weights(self) -> None:
        """Called after every optimiser step; backends holding a weight copy refresh it."""

    def generate_with_logprobs(self, contexts: Sequence[Sequence[int]],
                               sampling: SamplingConfig
                               ) -> tuple[list[tuple[list[int], FinishReason]],
                                          list[list[float]] | None]:
        """`generate`, plus each generated token's sampling log-probability where the backend
        computes it while sampling (one list per context), else None (this default)."""
        return self.generate(contexts, sampling), None


@contextmanager
def _without_spurious_mask_warning() -> Iterator[None]:
    """Drops transformers' "passing in an `attention_mask`" warning during our `generate`: it
    fires on the pad tokens a finished row is fed, whose outputs `_cut` removes (left-padded
    batches give the same tokens as each prompt alone: tests/agents/test_policy.py)."""

    def quiet(record: logging.LogRecord) -> bool:
        return "passing in an `attention_mask`" not in record.getMessage()

    logger = logging.getLogger("transformers.modeling_utils")
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


class TransformersBackend(GenerationBackend):
    """Batched sampling with `model.generate` (KV cache), left-padded contexts. Every sampling
    knob is passed explicitly, so a model's own `generation_config.json` (top_k=50,
    repetition penalties, ...) never changes what an RL ratio assumes."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 256,
                 compute_dtype: torch.dtype = torch.float32) -> None:
        self.model = unwrapped(model)  # generates with its adapters, under its own config
        self.tokenizer = tokenizer
        self.end_ids = end_ids(model, tokenizer)
        self.batch_size = batch_size
        self.compute_dtype = compute_dtype
        self.synced_gpus = False
        """Keep generating until every rank's batch has finished (transformers' `synced_gpus`):
        set for a model sharded over the ranks (FSDP), whose every forward pass is a
        collective; every rank must then make the same `generate` calls."""

    def sync_weights(self) -> None:
        """Nothing to do: generation runs on the very model being trained."""

    @torch.no_grad()
    def generate(self, contexts: Sequence[Sequence[int]], sampling: SamplingConfig
                 ) -> list[tuple[list[int], FinishReason]]:
        results: list[tuple[list[int], FinishReason]] = []
        for start in range(0, len(contexts), self.batch_size):
            results += self._generate_batch(contexts[start:start + self.batch_size], sampling)
        return results

    def _generate_batch(self, contexts: Sequence[Sequence[int]], sampling: SamplingConfig
                        ) -> list[tuple[list[int], FinishReason]]:
        from transformers import GenerationConfig

        tok = self.tokenizer
        width = max(len(c) for c in contexts)
        device = self.model.device
        ids = torch.full((len(contexts), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, c in enumerate(contexts):
            ids[i, width - len(c):] = torch.tensor(c, dtype=torch.long)
            mask[i, width - len(c):] = 1
        sample_kwargs = ({"do_sample": False} if sampling.greedy else
                         {"do_sample": True, "temperature": sampling.temperature,
                          "top_p": sampling.top_p, "top_k": 0})
        config = GenerationConfig(
            max_new_tokens=sampling.max_new_tokens, pad_token_id=tok.pad_token_id,
            eos_token_id=self.end_ids, stop_strings=list(sampling.stop) or None,
            **sample_kwargs)
        # transformers fills every knob left unset from the model's own generation_config
        # (e.g. Qwen's repetition_penalty=1.05, top_k=20): swap in ours for the call.
        shipped = self.model.generation_config
        self.model.generation_config = config
        try:
            with autocast(device, self.compute_dtype), _without_spurious_mask_warning():
                out = self.model.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device),
                    generation_config=config, tokenizer=tok if sampling.stop else None,
                    **({"synced_gpus": True} if self.synced_gpus else {}))
        finally:
            self.model.generation_config = shipped
        return [self._cut(row[width:].tolist(), sampling.stop) for row in out.cpu()]

    def _cut(self, ids: list[int], stop: tuple[str, ...]) -> tuple[list[int], FinishReason]:
        """Trim the padding `generate` appends after a row has finished."""
        end = next((i + 1 for i, t in enumerate(ids) if t in self.end_ids), len(ids))
        if stop:
            # Containing a stop string is monotone in the prefix length: binary search for
            # the shortest prefix that contains one.
            def has_stop(n: int) -> bool:
                text = self.tokenizer.decode(ids[:n], skip_special_tokens=True)
                return any(s in text for s in stop)

            if has_stop(end):
                lo, hi = 1, end
                while lo < hi:
                    mid = (lo + hi) // 2
                    lo, hi = (lo, mid) if has_stop(mid) else (mid + 1, hi)
                return ids[:lo], "stop"
        return ids[:end], "stop" if set(ids[:end]) & set(self.end_ids) else "length"


def end_ids(model: Any, tokenizer: Any) -> list[int]:
    """The ids that end a completion: the tokenizer's end-of-sequence token, then those of the
    model's `generation_config.eos_token_id` (an id or a list: chat models add an end-of-turn
    token such as `<|im_end|>` or `<|eot_id|>`)."""
    config = getattr(unwrapped(model), "generation_config", None)
    shipped = getattr(config, "eos_token_id", None)
    shipped = [] if shipped is None else [shipped] if isinstance(shipped, int) else shipped
    return list(dict.fromkeys([tokenizer.eos_token_id, *shipped]))


def unwrapped(model: Any) -> Any:
    """The transformers model inside a peft `PeftModel` (which holds its adapter layers), else
    `model` itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def has_adapters(model: Any) -> bool:
    """Whether `model` is a peft model, whose adapters `disable_adapter()` turns off."""
    return callable(getattr(model, "disable_adapter", None))


def select_dtype(device_type: str, bf16_supported: bool, requested: str = "auto"
                 ) -> torch.dtype:
    """The compute dtype: bf16 on a GPU that supports it when `requested="auto"`, else fp32.
    bf16 is used through autocast, weights and optimiser state stay fp32 (an update of lr=1e-6
    would be rounded away on bf16 weights); no fp16: RL gradients underflow in it unscaled."""
    if requested == "auto":
        return torch.bfloat16 if device_type == "cuda" and bf16_supported else torch.float32
    choices = {"float32": torch.float32, "fp32": torch.float32,
               "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if requested not in choices:
        raise ValueError(f"dtype must be 'auto', 'float32' or 'bfloat16', got {requested!r}")
    return choices[requested]


def autocast(device: torch.device, dtype: torch.dtype) -> Any:
    """Mixed-precision context for forward passes; a no-op for fp32."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def select_device(requested: str = "auto") -> torch.device:
    """`auto` picks CUDA when available, else the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


@dataclass
class TokenBatch:
    """Prompt + prefix + completion sequences, right-padded: `input_ids` and `attention_mask`
    [B, L], and masks [B, L-1] aligned with `input_ids[:, 1:]` as `Policy.token_logprobs` is:
    `completion_mask` marks generated tokens (the RL loss), `prefix_mask` the response prefix
    (never in the RL loss; SEELE's imitation term uses it)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    prefix_mask: torch.Tensor

    def to(self, device: torch.device) -> TokenBatch:
        return TokenBatch(*(t.to(device) for t in (self.input_ids, self.attention_mask,
                                                   self.completion_mask, self.prefix_mask)))

    def rows(self, index: torch.Tensor | Sequence[int]) -> TokenBatch:
        """The selected rows, cut to the longest of them (padding of other rows dropped)."""
        index = torch.as_tensor(index, dtype=torch.long)
        width = int(self.attention_mask[index].sum(1).max())
        return TokenBatch(self.input_ids[index, :width], self.attention_mask[index, :width],
                          self.completion_mask[index, :width - 1],
                          self.prefix_mask[index, :width - 1])

    def __len__(self) -> int:
        return self.input_ids.shape[0]


@dataclass
class Policy:
    """A causal LM, its tokenizer and a generation backend; `Policy.from_pretrained(path)`
    loads a local Hugging Face model directory (`rlvr_gym.agents.tiny.TINY_MODEL_DIR`: the
    bundled one). The model stays in eval mode (dropout off) also while training, so that the
    sampling, old-policy and training passes give the same log-probabilities. A prompt starts
    with the BOS token where the tokenizer adds one (Llama's do, GPT-2's and Qwen's do not);
    generation stops at any of `end_ids`, and refuses a prompt whose tokens plus
    `max_new_tokens` exceed the model's context (`context_length`)."""

    model: Any
    tokenizer: Any
    backend: GenerationBackend = None  # type: ignore[assignment]  # set in __post_init__ if None
    compute_dtype: torch.dtype = torch.float32
    """dtype of forward passes (autocast); weights stay in their own (fp32) dtype."""
    end_ids: list[int] = field(init=False)
    """Token ids that end a completion (see `end_ids`); the first is the tokenizer's EOS."""
    bos_id: int | None = field(init=False)
    """The BOS token id a prompt starts with, None when the tokenizer adds none."""

    def __post_init__(self) -> None:
        if self.tokenizer.pad_token_id is None:
            # Many causal LMs ship without a pad token; the EOS token is the usual stand-in
            # and is safe here because padding is always masked.
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos_token; set one (tokenizer.eos_token = "
                             "...) so that completions can end")
        self.model.eval()
        self.end_ids = end_ids(self.model, self.tokenizer)
        bos = self.tokenizer.bos_token_id
        self.bos_id = bos if bos is not None and self.tokenizer("1")["input_ids"][:1] == [bos] \
            else None
        if self.backend is None:
            self.backend = TransformersBackend(self.model, self.tokenizer,
                                               compute_dtype=self.compute_dtype)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str = "auto",
                        dtype: str = "auto", generation_batch_size: int = 256,
                        backend: str = "transformers", frozen: bool = False) -> Policy:
        """Load a local model directory (never downloads), or a directory of LoRA adapters
        (`adapter_config.json`, as an agent with `lora_rank` saves its policy) over the base
        model it names, adapters trainable. Weights are fp32, except frozen ones (`frozen`,
        or a base under adapters), kept in the compute dtype: bf16 on a GPU, where only
        trained weights need fp32 (`select_dtype`). `backend` as in `use_backend`."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(path)
        adapters = path / "adapter_config.json"
        base = Path(json.loads(adapters.read_text())["base_model_name_or_path"]) \
            if adapters.is_file() else path
        if not (base / "config.json").exists():
            raise FileNotFoundError(
                f"{base} is not a Hugging Face model directory (no config.json); " + (
                    f"it is the base model of the LoRA adapters in {path}: put it back, or "
                    f"name its new place in {adapters}'s base_model_name_or_path"
                    if base != path else "pass a local model path or omit the option to use "
                    "the bundled tiny model"))
        dev = select_device(device)
        bf16 = dev.type == "cuda" and torch.cuda.is_bf16_supported()
        compute = select_dtype(dev.type, bf16, dtype)
        # An absolute name: the adapters an agent saves record it as their base model's place.
        model: Any = AutoModelForCausalLM.from_pretrained(
            base.resolve(), dtype=compute if frozen or base != path else torch.float32,
            local_files_only=True)
        if base != path:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, path, is_trainable=True)
        model = model.to(dev)
        tokenizer = AutoTokenizer.from_pretrained(
            path if (path / "tokenizer_config.json").is_file() else base, local_files_only=True)
        hf = TransformersBackend(model, tokenizer, generation_batch_size, compute)
        return use_backend(cls(model, tokenizer, hf, compute), backend)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def context_length(self) -> int | None:
        """Most tokens the model attends to (`max_position_embeddings`), None if unknown."""
        return getattr(self.model.config, "max_position_embeddings", None)

    def encode(self, text: str) -> list[int]:
        """Token ids of text, without special tokens."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_prompt(self, text: str) -> list[int]:
        """Token ids of a prompt: `encode`, after `bos_id` unless the text starts with it (a
        chat template that writes its BOS)."""
        ids = self.encode(text)
        return ids if self.bos_id is None or ids[:1] == [self.bos_id] else [self.bos_id, *ids]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated token ids, without end tokens and special tokens."""
        return self.tokenizer.decode([t for t in ids if t not in self.end_ids],
                                     skip_special_tokens=True)

    def check_length(self, tokens: int, what: str) -> None:
        """ValueError when `tokens` exceed `context_length`; `what` says what they are."""
        limit = self.context_length
        if limit is not None and tokens > limit:
            raise ValueError(f"{what} is {tokens} tokens, over the model's context of {limit} "
                             "(max_position_embeddings): shorten the prompt (a shorter template "
                             "or system message) or lower max_new_tokens")

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig,
                 prefixes: Sequence[str] | None = None) -> list[Generation]:
        """Sample one completion per prompt, each continuing from its response prefix."""
        prefixes = list(prefixes) if prefixes is not None else [""] * len(prompts)
        if len(prefixes) != len(prompts):
            raise ValueError(f"got {len(prompts)} prompts but {len(prefixes)} prefixes")
        prompt_ids = {p: self.encode_prompt(p) for p in set(prompts)}
        prefix_ids = {x: self.encode(x) for x in set(prefixes)}
        contexts = [prompt_ids[p] + prefix_ids[x] for p, x in zip(prompts, prefixes, strict=True)]
        self.check_length(max(map(len, contexts), default=0) + sampling.max_new_tokens,
                          "the longest prompt (with its response prefix) plus max_new_tokens")
        outputs, logprobs = self.backend.generate_with_logprobs(contexts, sampling)
        return [Generation(prompt=p, prefix=x, text=self.decode(out), prompt_ids=prompt_ids[p],
                           prefix_ids=prefix_ids[x], completion_ids=out, finish_reason=reason,
                           logprobs=lp)
                for p, x, (out, reason), lp in zip(prompts, prefixes, outputs,
                                                   logprobs if logprobs else [None] * len(outputs),
                                                   strict=True)]

    def samples(self, prompts: Sequence[str], completions: Sequence[str],
                prefixes: Sequence[str] | None = None) -> list[Generation]:
        """Given (not sampled) texts as `Generation`s, to score them with `token_logprobs` or
        train on them (reference solutions, selected samples); completions end with EOS."""
        prefixes = list(prefixes) if prefixes is not None else [""] * len(prompts)
        return [Generation(p, x, c, self.encode_prompt(p), self.encode(x),
                           self.encode(c) + self.end_ids[:1], "stop")
                for p, c, x in zip(prompts, completions, prefixes, strict=True)]

    def batch(self, generations: Sequence[Generation]) -> TokenBatch:
        """Right-padded training batch of prompt + prefix + completion (see `TokenBatch`)."""
        rows = [g.prompt_ids + g.prefix_ids + g.completion_ids for g in generations]
        width = max(len(r) for r in rows)
        self.check_length(width, "the longest training sequence")
        n = len(rows)
        input_ids = torch.full((n, width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        completion = torch.zeros((n, width - 1))
        prefix = torch.zeros((n, width - 1))
        for i, (g, row) in enumerate(zip(generations, rows, strict=True)):
            input_ids[i, :len(row)] = torch.tensor(row)
            attention[i, :len(row)] = 1
            # Target position t predicts token t+1: shift every span left by one.
            p0 = len(g.prompt_ids) - 1
            c0 = p0 + len(g.prefix_ids)
            prefix[i, p0:c0] = 1
            completion[i, c0:c0 + len(g.completion_ids)] = 1
        return TokenBatch(input_ids, attention, completion, prefix)

    def token_logprobs(self, batch: TokenBatch, temperature: float = 1.0,
                       with_entropy: bool = False
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """log pi(token_t+1 | tokens_<=t) for every target position, shape [B, L-1], and
        optionally the entropy of each predictive distribution (same shape, no gradient),
        at the sampling temperature (0 is treated as 1), the distribution samples came from."""
        logits = self.logits(batch)
        if temperature > 0 and temperature != 1.0:
            logits = logits / temperature
        logp = logits.log_softmax(dim=-1)
        token_logp = logp.gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
        entropy = None
        if with_entropy:
            with torch.no_grad():
                entropy = -(logp.exp() * logp).sum(-1)
        return token_logp, entropy

    def logits(self, batch: TokenBatch) -> torch.Tensor:
        """fp32 logits [B, L-1, V] of every target position of `batch` (on the policy's
        device), in the compute dtype. Under gradient (`enable_gradient_checkpointing`)
        checkpointed layers recompute their activations in the backward pass: transformers
        checkpoints only layers in training mode, so each one's own flag is set for the call
        (their sub-modules, dropout included, stay in eval mode)."""
        batch = batch.to(self.device)
        layers = [m for m in self.model.modules() if vars(m).get("gradient_checkpointing")] \
            if torch.is_grad_enabled() else []
        for layer in layers:
            layer.training = True
        try:
            with autocast(self.device, self.compute_dtype):
                return self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                  use_cache=False).logits[:, :-1].float()
        finally:
            for layer in layers:
                layer.training = False

    def enable_gradient_checkpointing(self) -> None:
        """Keep only each layer's input for the backward pass and recompute the rest there:
        activation memory falls from all layers' to about one layer's, for one more forward
        pass per update (transformers' activation checkpointing, non-reentrant)."""
        model = unwrapped(self.model)
        enable = getattr(model, "activation_checkpointing_enable", None) \
            or model.gradient_checkpointing_enable  # transformers < 5
        enable({"use_reentrant": False})


def as_policy(policy: Policy | str | os.PathLike, device: str = "auto", dtype: str = "auto",
              backend: str = "transformers", frozen: bool = False) -> Policy:
    """A given `Policy`, moved to `device`, or one loaded from a local model directory (its
    weights in the compute dtype when `frozen`); with the generation backend `backend` (see
    `use_backend`)."""
    if isinstance(policy, Policy):
        policy.model.to(select_device(device))
        return use_backend(policy, backend)
    return Policy.from_pretrained(policy, device, dtype, backend=backend, frozen=frozen)


def add_lora(policy: Policy, rank: int, alpha: int,
             target_modules: Sequence[str] = ()) -> Policy:
    """`policy` with its weights frozen and LoRA adapters of `rank` (scale `alpha / rank`) on
    `target_modules` (default: every linear layer but the output head) trained instead,
    through peft (`pip install 'rlvr-gym[lora]'`); docs/algorithms.md, LoRA. A policy that has
    adapters (loaded from a LoRA checkpoint) keeps them. The generation backend keeps the
    model it has, which now holds the adapter layers."""
    if has_adapters(policy.model):
        return policy
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ImportError("LoRA (lora_rank > 0) needs peft: pip install 'rlvr-gym[lora]'"
                          ) from None
    from transformers.pytorch_utils import Conv1D

    config = LoraConfig(r=rank, lora_alpha=alpha, task_type="CAUSAL_LM",
                        target_modules=list(target_modules) or "all-linear",
                        fan_in_fan_out=any(isinstance(m, Conv1D) for m in policy.model.modules()))
    policy.model = get_peft_model(policy.model, config)
    return policy


def use_backend(policy: Policy, backend: str = "transformers") -> Policy:
    """`policy` generating through `backend`: 'transformers' keeps the backend it has, 'vllm'
    gives it a `VLLMBackend` unless it has one (`ImportError` naming the install command when
    vllm is missing), 'auto' is 'vllm' on a CUDA GPU where vllm imports, else 'transformers'."""
    from rlvr_gym.agents import vllm_backend

    if vllm_backend.resolve_backend(backend, policy.device) == "vllm" \
            and not isinstance(policy.backend, vllm_backend.VLLMBackend):
        policy.backend = vllm_backend.VLLMBackend(policy.model, policy.tokenizer,
                                                  compute_dtype=policy.compute_dtype)
    return policy


def cross_entropy_on(policy: Policy, batch: TokenBatch, mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the tokens under `mask` (supervised fine-tuning loss:
    B-STaR's SFT steps, SEELE's imitation term, the tiny model's pre-training)."""
    batch = batch.to(policy.device)
    logits = policy.logits(batch)
    nll = F.cross_entropy(logits.transpose(1, 2), batch.input_ids[:, 1:], reduction="none")
    mask = mask.to(nll.device)
    return (nll * mask).sum() / mask.sum().clamp(min=1)
