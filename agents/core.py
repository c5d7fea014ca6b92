"""The trainer core: what every agent shares, so that an algorithm says only how it collects
and how it updates (docs/adding_an_agent.md, The trainer core): `TrainerConfig`, the common
fields, and `Trainer`, the base class of every agent.
"""

from __future__ import annotations

import ast
import copy
import inspect
import json
import math
import random
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from rlvr_gym.agents.checkpoint import (
    Checkpoint,
    CheckpointContent,
    CheckpointError,
    save_checkpoint,
)
from rlvr_gym.agents.monitors import MetricsLogger, TrainingInterrupted
from rlvr_gym.agents.policy import Policy, SamplingConfig, add_lora, as_policy, has_adapters
from rlvr_gym.distributed import data_parallel

ENV_STATE_FILE = "env_state.json"
"""Checkpoint file of the stateful wrappers of the training env (SEELE's hint ratios)."""


@dataclass
class TrainerConfig:
    """Fields every agent has, with defaults for the bundled tiny model on a CPU."""

    temperature: float = 1.0
    """Sampling temperature of the rollouts (papers: 0.6-1.0)."""
    top_p: float = 1.0
    """Nucleus sampling mass of the rollouts (1.0 recommended for RL)."""
    max_new_tokens: int = 40
    """Most generated tokens per response."""
    stop: tuple[str, ...] = ()
    """Extra stop strings (the end-of-sequence token always stops)."""
    lr: float = 2e-4
    """Peak AdamW learning rate. Tiny model: 2e-4 (5e-4 collapsed GRPO); 1B+ models: ~1e-6."""
    warmup_steps: int = 20
    """Optimiser steps of linear learning-rate warm-up (0: none)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_betas: tuple[float, float] = (0.9, 0.99)
    """AdamW betas."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables)."""
    micro_batch_size: int = 64
    """Sequences per forward/backward (gradients accumulate); lower it for large models."""
    eval_every: int = 0
    """Held-out evaluation every this many iterations (0: at the start and end of `learn`)."""
    greedy_eval_every: int = 0
    """Greedy held-out accuracy alone (a tenth of a full evaluation's cost) every this many
    iterations, for the curves between full evaluations (0: none)."""
    eval_problems: int = 200
    """Held-out problems per evaluation."""
    eval_samples: int = 8
    """Sampled responses per held-out problem (pass@k, monitors; 0: greedy accuracy only)."""
    seed: int = 0
    """Seeds torch, numpy, random and the env's problem draws."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ..."""
    dtype: str = "auto"
    """Compute dtype: 'auto' (bf16 autocast on a GPU that supports it, else fp32), 'float32'
    or 'bfloat16'. Weights and optimiser state stay fp32."""
    backend: str = "transformers"
    """Generation backend: 'transformers', 'vllm' (colocated, `pip install "rlvr-gym[vllm]"`)
    or 'auto' (vLLM on a CUDA GPU where it is installed, else transformers)."""
    output_dir: str | None = None
    """The run directory of metrics files and the saved agent `agent/` (None: nowhere)."""
    save_every: int = 25
    """Save the agent to `output_dir`/agent every this many iterations (0: only at the end)."""
    lora_rank: int = 0
    """Rank of the LoRA adapters trained in place of the weights (0: full fine-tuning; common:
    8-64; `pip install 'rlvr-gym[lora]'`). The reference model is then the base model with the
    adapters off, and the frozen weights are held in the compute dtype (bf16 on a GPU)."""
    lora_alpha: int = 32
    """LoRA scale numerator: the adapters' update is scaled by lora_alpha / lora_rank."""
    lora_target_modules: tuple[str, ...] = ()
    """Names of the modules given adapters, e.g. q_proj,v_proj (empty: every linear layer but
    the output head)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass instead of storing them (less memory, one
    more forward pass per update)."""
    fsdp: bool = False
    """Shard weights, gradients and optimiser state over the torchrun ranks (FSDP2), for models
    that do not fit one device (docs/scaling_out.md); needs torchrun with 2+ ranks."""
    wandb_project: str | None = None
    """Also log the metrics to this Weights & Biases project (`pip install "rlvr-gym[wandb]"`;
    WANDB_MODE=offline keeps the run on disk). None: no W&B."""

    def __post_init__(self) -> None:
        check_minimum(self, ("max_new_tokens", "micro_batch_size"))
        check_minimum(self, ("eval_every", "greedy_eval_every", "save_every", "warmup_steps",
                             "lora_rank"), 0, " (0 turns it off)")
        for name in ("lr", "temperature", "top_p"):
            if not getattr(self, name) >= 0:  # NaN too
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.top_p == 0:
            raise ValueError("top_p must be above 0 (1.0 keeps the whole distribution)")
        if self.lora_rank and self.backend != "transformers":
            raise ValueError(f"LoRA (lora_rank={self.lora_rank}) needs backend='transformers' "
                             f"(the {self.backend!r} backend would not see the adapters)")
        if self.fsdp and self.lora_rank:
            raise ValueError("fsdp=True does not shard LoRA adapters; set lora_rank=0 or "
                             "fsdp=False")
        if self.fsdp and self.backend != "transformers":
            raise ValueError(f"fsdp=True generates with the sharded model through transformers; "
                             f"set backend='transformers' (got {self.backend!r})")
        self.stop = tuple(self.stop)
        self.lora_target_modules = tuple(self.lora_target_modules)
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]

    def sampling(self, temperature: float | None = None) -> SamplingConfig:
        """Sampling settings at `temperature` (default: the config's)."""
        return SamplingConfig(self.temperature if temperature is None else temperature,
                              self.top_p, self.max_new_tokens, self.stop)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Field name -> its help line (the docstring under the field; a subclass's line
        replaces its base's), for CLIs."""
        help_: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            if klass is object or not is_dataclass(klass):
                continue
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
            body = tree.body[0].body  # type: ignore[attr-defined]
            for node, nxt in zip(body, body[1:], strict=False):
                if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                        and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)):
                    help_[node.target.id] = " ".join(str(nxt.value.value).split())
        return help_


def check_minimum(config: Any, names: Sequence[str], minimum: float = 1, note: str = "") -> None:
    """ValueError naming the first field of `names` whose value in `config` is below `minimum`
    (`note` says what a value at the minimum means)."""
    for name in names:
        if getattr(config, name) < minimum:
            raise ValueError(f"{name} must be at least {minimum}{note}, got "
                             f"{getattr(config, name)}")


def check_choice(config: Any, name: str, choices: Sequence[str]) -> None:
    """ValueError unless the field `name` of `config` is one of `choices`."""
    if getattr(config, name) not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got "
                         f"{getattr(config, name)!r}")


TrainerT = TypeVar("TrainerT", bound="Trainer")
Callback = Callable[[Any, dict[str, Any]], "bool | None"]


class Trainer:
    """The base of every agent: `Agent(policy, env, config, eval_env).learn(total_steps)`.

    Args:
        policy: a `Policy`, or a path of a local Hugging Face model directory.
        env: the training env (a `ReasoningEnv`, possibly wrapped; docs/env_agent_contract.md).
        config: the agent's config (an instance of its `config_class`).
        eval_env: optional held-out env (e.g. the same task with dataset `seed=1`).

    A subclass implements `train_step` and `_held_out` (docs/adding_an_agent.md).

    Started by torchrun with several ranks (docs/scaling_out.md), each rank is an agent on its
    own share of every step (seeded `seed + rank * RANK_SEED_STRIDE`); rank 0 evaluates, logs
    and saves, the others keep the same weights.
    """

    config_class: ClassVar[type[TrainerConfig]] = TrainerConfig
    """The config dataclass of this agent (`load` rebuilds it from agent.json)."""
    config: TrainerConfig
    data_parallel: ClassVar[bool] = False
    """Whether the agent can train on several ranks (its update sums the ranks' gradients)."""
    shards: ClassVar[bool] = False
    """Whether the agent can train with `fsdp=True` (every rank runs the same forward passes of
    the sharded model)."""

    def __init__(self, policy: Policy | str | Path, env: Any,
                 config: TrainerConfig | None = None, eval_env: Any = None) -> None:
        config = config if config is not None else self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got "
                            f"{type(config).__name__}; build one with "
                            f"{self.config_class.__name__}(**fields)")
        self.config = config
        self.world = data_parallel.World.from_env()
        """This process's rank among the torchrun ranks (a world of one otherwise)."""
        if self.world.distributed:
            self._check_data_parallel(env)
        if config.fsdp:
            self._check_fsdp()
        _, device = data_parallel.start(config.device)
        seed = self.world.seed(config.seed)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.policy = as_policy(policy, device, config.dtype, config.backend,
                                frozen=config.lora_rank > 0)
        if config.lora_rank:
            add_lora(self.policy, config.lora_rank, config.lora_alpha, config.lora_target_modules)
        if config.gradient_checkpointing:
            self.policy.enable_gradient_checkpointing()
        self.env = env
        self.eval_env = eval_env
        self.reference: torch.nn.Module | None = None
        """Frozen copy of the initial model, kept when the agent needs one (not with LoRA:
        see `reference_model`)."""
        if self._needs_reference() and not has_adapters(self.policy.model):
            self.reference = copy.deepcopy(self.policy.model).eval().requires_grad_(False)
        if config.fsdp:
            self._shard()
        self.optimizer = torch.optim.AdamW(
            [p for p in self.policy.model.parameters() if p.requires_grad], lr=config.lr,
            betas=config.adam_betas, weight_decay=config.weight_decay)
        self.num_steps = 0
        """Steps of the training budget used."""
        self.eval_history: list[dict[str, float]] = []
        """Held-out results of `learn`, each with its `step`."""
        self._env_seeded = False

    def _check_data_parallel(self, env: Any) -> None:
        """ValueError when this agent or `env` cannot train on several ranks."""
        name = type(self).__name__
        if not self.data_parallel:
            raise ValueError(f"{name} does not train on several ranks; run it in one process "
                             "(without torchrun)")
        wrappers = _stateful_wrappers(env)
        if wrappers:
            raise ValueError(f"the env's {', '.join(wrappers)} wrapper keeps state that each "
                             f"rank would change on its own; train {name} with it in one process")

    def _check_fsdp(self) -> None:
        """ValueError when `fsdp=True` cannot work here: a world of one, or an agent whose ranks
        would run different numbers of forward passes (a subclass checks its own config)."""
        name = type(self).__name__
        if not self.world.distributed:
            raise ValueError("fsdp=True shards the model over torchrun ranks, but this process "
                             "is alone: launch it with torchrun --nproc_per_node N (N >= 2), or "
                             "set fsdp=False (e.g. to load an FSDP checkpoint in one process)")
        if not self.shards:
            raise ValueError(f"{name} does not train with fsdp=True (its ranks would run "
                             "different forward passes of the sharded model); set fsdp=False")

    def _shard(self) -> None:
        """Shard the policy over the ranks (FSDP2); generation then keeps the ranks in step."""
        from rlvr_gym.agents.policy import TransformersBackend
        from rlvr_gym.distributed import fsdp

        backend = self.policy.backend
        if not isinstance(backend, TransformersBackend):
            raise ValueError(f"fsdp=True generates through transformers; the policy's "
                             f"{type(backend).__name__} cannot run a sharded model")
        fsdp.shard(self.policy.model)
        backend.synced_gpus = True

    def train_step(self) -> dict[str, Any]:
        """One iteration: sample through the env, update the policy, advance `num_steps` by
        `steps_per_iteration`; returns the iteration's metrics."""
        raise NotImplementedError(f"{type(self).__name__} must implement train_step")

    @property
    def steps_per_iteration(self) -> int:
        """Steps of the `learn` budget one `train_step` uses."""
        return 1

    def _progress(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """What the progress bar shows after an iteration."""
        return {k: f"{metrics[k]:.2f}" for k in ("reward", "eff_rate") if k in metrics}

    def _description(self) -> str:
        return type(self).__name__

    def _needs_reference(self) -> bool:
        """Whether the agent uses `reference_model` (a frozen copy is kept in `reference`)."""
        return False

    @contextmanager
    def reference_model(self) -> Iterator[torch.nn.Module]:
        """The reference policy's model (pi_ref): the frozen copy of the initial model, or with
        LoRA the policy's own model with its adapters off, the base model (no second copy;
        docs/algorithms.md, LoRA)."""
        if self.reference is not None:
            yield self.reference
        else:
            with self.policy.model.disable_adapter():
                yield self.policy.model

    def _predict_temperature(self) -> float:
        """Sampling temperature of `predict(deterministic=False)`."""
        return self.config.temperature

    def _extra_state(self) -> dict[str, Any]:
        """State of the subclass that `save` writes to state.pt besides the core's."""
        return {}

    def _restore_extra_state(self, state: dict[str, Any]) -> None:
        """Inverse of `_extra_state` (`state` is the whole state.pt)."""

    def _held_out(self, env: Any, samples: int, progress_bar: bool) -> dict[str, float]:
        """The held-out metrics of `evaluate` (called on evaluate's fixed random stream)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _held_out")

    def learn(self: TrainerT, total_steps: int, callback: Callback | None = None,
              progress_bar: bool = True) -> TrainerT:
        """Run ceil(total_steps / steps_per_iteration) more iterations; `callback(agent,
        metrics)` runs after each, and returning False stops. Metrics go to `config.output_dir`
        (`MetricsLogger`; a new agent refuses one that holds another run), and the agent to its
        `agent/` every `config.save_every` iterations and at the end. Ctrl-C stops after the
        current iteration, saves, and raises `TrainingInterrupted`. With several ranks, each
        iteration's metrics are those of all ranks (`merge_metrics`), and only rank 0
        evaluates, logs and writes; every rank stops when one is interrupted or told to. With
        `fsdp=True` every rank evaluates (the sharded model's passes are collectives), each
        with the same results, and needs an `eval_env` when one has."""
        from tqdm.auto import tqdm

        c, main = self.config, self.world.main
        iterations = math.ceil(total_steps / self.steps_per_iteration)
        fresh = self.num_steps == 0 and not self.eval_history
        logger = MetricsLogger(c.output_dir if main else None,
                               continue_from=None if fresh else self.num_steps,
                               title=self._run_title(),
                               wandb_project=c.wandb_project if main else None, run_config=c)
        evaluates = self.eval_env is not None and (main or c.fsdp)
        if c.fsdp and data_parallel.all_sum([float(self.eval_env is not None)])[0] \
                not in (0, self.world.size):
            raise ValueError("with fsdp=True every rank evaluates: give every rank an eval_env "
                             "(or none)")
        progress_bar = progress_bar and main
        with _StopOnInterrupt() as stop:
            try:
                if evaluates and not self._evaluated_now():
                    logger.log(self.num_steps, self._evaluate(progress_bar))
                bar = tqdm(range(iterations), desc=self._description(),
                           disable=not progress_bar)
                for i in bar:
                    if self._any_rank(stop.requested):
                        break
                    metrics = self.train_step()
                    if self.world.distributed:
                        metrics = data_parallel.merge_metrics(data_parallel.gather(metrics))
                    count, last = self.num_steps // self.steps_per_iteration, i == iterations - 1
                    if evaluates and c.eval_every and count % c.eval_every == 0:
                        metrics.update(self._evaluate(progress_bar))
                    elif (evaluates and c.greedy_eval_every and not last
                          and count % c.greedy_eval_every == 0):
                        metrics.update(self._evaluate(progress_bar, greedy_only=True))
                    logger.log(self.num_steps, metrics)
                    bar.set_postfix(**self._progress(metrics))
                    if c.save_every and count % c.save_every == 0 and not last:
                        self._save_to_run()
                    if self._any_rank(callback is not None and callback(self, metrics) is False):
                        break
                if self._any_rank(stop.requested):
                    raise TrainingInterrupted(self.num_steps, self._save_to_run())
                if evaluates and not self._evaluated_now():
                    logger.log(self.num_steps, self._evaluate(progress_bar))
                self._save_to_run()
            finally:
                logger.close()
        return self

    def _any_rank(self, flag: bool) -> bool:
        """Whether `flag` holds on any rank (every rank must ask together)."""
        if not self.world.distributed:
            return flag
        return data_parallel.all_sum([float(flag)])[0] > 0

    def evaluate(self, env: Any = None, samples: int | None = None,
                 progress_bar: bool = False) -> dict[str, float]:
        """Held-out metrics on `env` (default: `eval_env`): greedy accuracy, and pass@k or the
        agent's monitors of `samples` (default `config.eval_samples`; 0: none) sampled
        responses per problem. Runs on its own random stream: it never changes training. With
        `fsdp=True` every rank must call it (the sharded model's passes are collectives)."""
        env = env if env is not None else self.eval_env
        if env is None:
            raise ValueError(f"no env to evaluate on: pass one or give {type(self).__name__} "
                             "an eval_env")
        devices = [self.policy.device] if self.policy.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.config.seed + 1_000_003)
            return self._held_out(env, self.config.eval_samples if samples is None else samples,
                                  progress_bar)

    def predict(self, observation: str | Sequence[str], deterministic: bool = True,
                response_prefix: str = "") -> tuple[str | list[str], None]:
        """Respond to one observation (or a list): greedy when `deterministic`, else sampled
        at `_predict_temperature()`. Returns `(response, None)` like stable-baselines3 (no
        recurrent state)."""
        single = isinstance(observation, str)
        prompts = [observation] if isinstance(observation, str) else list(observation)
        sampling = self.config.sampling(0.0 if deterministic else self._predict_temperature())
        gens = self.policy.generate(prompts, sampling, [response_prefix] * len(prompts))
        responses = [g.response for g in gens]
        return (responses[0] if single else responses), None

    @property
    def checkpoint_dir(self) -> Path | None:
        """Where `learn` saves the agent: `output_dir/agent` (None without an output_dir)."""
        out = self.config.output_dir
        return Path(out) / "agent" if out is not None else None

    def save(self, path: str | Path) -> Path:
        """Save everything an exact resume needs: weights (and the reference), optimiser
        state, step, config, the random states of torch, numpy, random and the env, the state
        of the env's stateful wrappers, and the agent's own state. Atomic: an interrupted save
        leaves the previous checkpoint at `path` intact. With several ranks every rank calls it:
        rank 0 writes, with the random states of every rank. With `fsdp=True` the weights and
        optimiser state are gathered and written whole, as one process writes them."""
        random_state = self._random_state()
        model: Any = self.policy.model
        optimizer_state: dict[str, Any] = {}
        if self.world.distributed:
            random_state["rank_random_states"] = data_parallel.gather(dict(random_state))
        if self.config.fsdp:  # every rank gathers; rank 0 writes the single-process format
            from rlvr_gym.distributed import fsdp

            model = fsdp.FullStateSaver(model, fsdp.full_model_state(model))
            optimizer_state = fsdp.full_optimizer_state(self.policy.model, self.optimizer)
        if not self.world.main:
            return Path(path)
        if not self.config.fsdp:
            optimizer_state = self.optimizer.state_dict()
        models: dict[str, list[Any]] = {"policy": [model, self.policy.tokenizer]}
        if self.reference is not None:
            models["reference"] = [self.reference]
        wrappers = _stateful_wrappers(self.env)
        return save_checkpoint(path, CheckpointContent(
            agent=type(self).__name__, step=self.num_steps, config=self.config,
            state={"optimizer": optimizer_state, "eval_history": self.eval_history,
                   **random_state, **self._extra_state()},
            models=models, env=self._env_record(),
            files={ENV_STATE_FILE: {name: w.state_dict() for name, w in wrappers.items()}}
            if wrappers else {}))

    @classmethod
    def load(cls: type[TrainerT], path: str | Path, env: Any, eval_env: Any = None,
             **overrides: Any) -> TrainerT:
        """Restore an agent saved with `save`; `learn` then continues exactly where it stopped.
        `env` must be wrapped as the saved one was (a stateful wrapper's state is restored).
        `overrides` replace config fields (e.g. `device="cpu"`). Raises `CheckpointError` for
        a missing, corrupt or inconsistent part. A checkpoint saved with `fsdp=True` holds
        whole weights: load it in one process with `fsdp=False`, or under torchrun, sharded
        again."""
        checkpoint = Checkpoint(path)
        config = checkpoint.config(cls.config_class, overrides)
        state = checkpoint.state("optimizer", "eval_history")
        agent = cls(checkpoint.policy(config.device, config.dtype), env, config, eval_env)
        wrappers = _stateful_wrappers(agent.env)
        if wrappers:
            saved = checkpoint.json_file(
                ENV_STATE_FILE, f"{checkpoint.path} was saved without the env's "
                f"{', '.join(wrappers)} wrapper; load it with the env it was trained on")
            for name, wrapper in wrappers.items():
                if name not in saved:
                    raise CheckpointError(f"{checkpoint.path / ENV_STATE_FILE} has no state of "
                                          f"the env's {name} wrapper; load it with the env it "
                                          "was trained on")
                wrapper.load_state_dict(saved[name])
        reference = checkpoint.model_dir("reference")
        if agent.reference is not None and reference is not None:
            from transformers import AutoModelForCausalLM

            agent.reference = AutoModelForCausalLM.from_pretrained(
                reference, dtype=agent.policy.model.dtype, local_files_only=True
            ).to(agent.policy.device).eval().requires_grad_(False)  # type: ignore[arg-type]
        if config.fsdp:  # each rank keeps its shard of the whole saved state
            from rlvr_gym.distributed import fsdp

            fsdp.load_optimizer_state(agent.policy.model, agent.optimizer, state["optimizer"])
        else:
            agent.optimizer.load_state_dict(state["optimizer"])
        agent.num_steps = checkpoint.step
        agent.eval_history = state["eval_history"]
        agent._restore_random_state(state)
        agent._restore_extra_state(state)
        return agent

    def _save_to_run(self) -> Path | None:
        path = self.checkpoint_dir
        return self.save(path) if path is not None else None

    def _run_title(self) -> str:
        record = self._env_record()
        env = record["id"] if record else type(self.env.unwrapped).__name__
        name = Path(self.config.output_dir).name if self.config.output_dir else "run"
        return f"{name}: {type(self).__name__} on {env}"

    def _env_record(self) -> dict[str, Any] | None:
        """The training env as `{"id", "kwargs"}` (the kwargs given to `gym.make` besides the
        registered ones), or None when it was not made by id or its kwargs are not JSON."""
        import gymnasium as gym

        spec = getattr(self.env.unwrapped, "spec", None)
        if spec is None:
            return None
        try:
            registered = gym.spec(spec.id).kwargs
        except gym.error.Error:
            registered = {}
        kwargs = {k: v for k, v in spec.kwargs.items()
                  if k not in registered or registered[k] != v}
        try:
            json.dumps(kwargs)
        except (TypeError, ValueError):
            return None
        return {"id": spec.id, "kwargs": kwargs}

    def _random_state(self) -> dict[str, Any]:
        """The random states of torch (and CUDA), numpy, `random` and the env's problem draws."""
        return {"torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy_rng": np.random.get_state(), "python_rng": random.getstate(),
                "env_rng": self.env.unwrapped.np_random.bit_generator.state
                if self._env_seeded else None}

    def _restore_random_state(self, state: dict[str, Any]) -> None:
        """Inverse of `_random_state` (extra keys in `state` are ignored). A checkpoint of
        several ranks gives each rank its own states; a rank it has none for (more ranks than
        were saved) keeps the fresh seeding of its rank."""
        ranks = state.get("rank_random_states")
        if ranks is not None:
            if self.world.rank >= len(ranks):
                return
            state = ranks[self.world.rank]
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        if state["env_rng"] is not None:
            self._seed_env()
            self.env.unwrapped.np_random.bit_generator.state = state["env_rng"]

    def _seed_env(self) -> None:
        """Seed the training env's problem draws with `config.seed`, once."""
        if not self._env_seeded:
            self.env.reset(seed=self.world.seed(self.config.seed))
            self._env_seeded = True

    def _evaluated_now(self) -> bool:
        return bool(self.eval_history) and self.eval_history[-1]["step"] == self.num_steps

    def _evaluate(self, progress_bar: bool = False, greedy_only: bool = False
                  ) -> dict[str, float]:
        """A held-out evaluation as `eval/...` metrics. A full one is recorded in
        `eval_history`; a `greedy_only` one (accuracy without sampling) only in the metrics."""
        result = self.evaluate(samples=0 if greedy_only else None, progress_bar=progress_bar)
        if not greedy_only:
            self.eval_history.append({"step": self.num_steps, **result})
        if progress_bar:
            from tqdm.auto import tqdm

            tqdm.write(f"step {self.num_steps} held-out: " + "  ".join(
                f"{k} {v:.3f}" for k, v in result.items()))
        return {f"eval/{k}": v for k, v in result.items()}


class Mean:
    """Weighted running means of named statistics."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def add(self, values: dict[str, float], weight: float) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * weight
            self.weights[k] = self.weights.get(k, 0.0) + weight

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.weights[k] for k in self.sums if self.weights[k] > 0}


def _stateful_wrappers(env: Any) -> dict[str, Any]:
    """The wrappers of `env` with a `state_dict` to save and restore, by class name."""
    import gymnasium as gym

    found = {}
    while isinstance(env, gym.Wrapper):
        if all(callable(getattr(env, name, None)) for name in ("state_dict", "load_state_dict")):
            found[type(env).__name__] = env
        env = env.env
    return found


class _StopOnInterrupt:
    """While active (in the main thread), the first Ctrl-C (SIGINT) only sets `requested`, so
    that training stops after a complete iteration; a second one interrupts at once. A process
    that ignores SIGINT keeps ignoring it."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not signal.SIG_IGN:
                self._previous = previous if previous is not None else signal.SIG_DFL
                signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)
        from tqdm.auto import tqdm

        tqdm.write("interrupt: stopping after this step and saving the agent (Ctrl-C again "
                   "to quit at once without saving)", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
