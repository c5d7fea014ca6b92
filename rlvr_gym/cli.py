"""The `rlvr-gym` command: train, eval, envs, verify, pretrain, demo.

    rlvr-gym train                          # GRPO on the bundled tiny model, default task
    rlvr-gym train --set lr=1e-4 --steps 50 --output runs/try
    rlvr-gym eval runs/try/agent            # pass@k of a checkpoint on the held-out split
    rlvr-gym envs                           # registered env ids
    rlvr-gym verify "... \\boxed{42}" --reference 42

Agents and wrappers are looked up in `AGENTS` and `WRAPPERS`; a new agent registers itself
with `register_agent("name", AgentClass, ConfigClass)` and is then `--agent name`.
"""

from __future__ import annotations

import argparse
import ast
import collections.abc
import contextlib
import dataclasses
import difflib
import importlib
import json
import os
import re
import sys
import time
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import rlvr_gym

Setup = Callable[[Any, Any, str], "tuple[Any, dict[str, Any]]"]
"""`setup(env, config, model_dir) -> (env, extra constructor arguments)`: what an agent needs
besides the standard arguments (SEELE: the env wrapped with hints; B-STaR: a step scorer)."""


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """How the CLI builds an agent: `agent_cls(policy, env, config, eval_env=..., **extra)`,
    a config dataclass whose fields `--set` overrides, `agent_cls.load(path, env, eval_env,
    **extra, **overrides)`, and an optional `setup` giving the env and `extra` (run for new
    and resumed runs alike)."""

    agent_cls: type[Any]
    config_cls: type
    setup: Setup | None = None


AGENTS: dict[str, AgentSpec] = {}
"""Agents selectable with `--agent`."""

WRAPPERS: dict[str, Callable[[Any], Any]] = {}
"""Env wrappers selectable with `--wrapper NAME`: a function from env to wrapped env."""


def register_agent(name: str, agent_cls: type, config_cls: type,
                   setup: Setup | None = None) -> None:
    AGENTS[name] = AgentSpec(agent_cls, config_cls, setup)


def register_wrapper(name: str, wrap: Callable[[Any], Any]) -> None:
    WRAPPERS[name] = wrap


def _register_builtin() -> None:
    from rlvr_gym.agents.bstar import BSTaR, BSTaRConfig
    from rlvr_gym.agents.grpo import GRPO, GRPOConfig
    from rlvr_gym.agents.ibtpo import IBTPO, IBTPOConfig
    from rlvr_gym.agents.mrt import MRT, MRTConfig
    from rlvr_gym.agents.seele import SEELE, SEELEConfig
    from rlvr_gym.wrappers.hints import HintScaffold

    register_agent("grpo", GRPO, GRPOConfig)
    register_agent("seele", SEELE, SEELEConfig, _seele_setup)
    register_agent("mrt", MRT, MRTConfig)
    register_agent("ibtpo", IBTPO, IBTPOConfig)
    register_agent("bstar", BSTaR, BSTaRConfig, _bstar_setup)
    register_wrapper("seele", HintScaffold)


def _seele_setup(env: Any, config: Any, model_dir: str) -> tuple[Any, dict[str, Any]]:
    """SEELE's hints: the env as given when it already gives them (`--wrapper seele`), else
    wrapped as the config says, counting tokens of the model's tokenizer."""
    import gymnasium as gym

    from rlvr_gym.agents.seele import hinted_env
    from rlvr_gym.wrappers.hints import HintScaffold

    inner = env
    while isinstance(inner, gym.Wrapper):
        if isinstance(inner, HintScaffold):
            return env, {}
        inner = inner.env
    return hinted_env(env, config, model_dir), {}


def _bstar_setup(env: Any, config: Any, model_dir: str) -> tuple[Any, dict[str, Any]]:
    """B-STaR's reward adds the arithmetic step score (noise 0.5, seeded by the run), the
    stand-in for the paper's process reward model."""
    from rlvr_gym.verifiers.steps import ArithmeticStepScorer

    return env, {"step_scorer": ArithmeticStepScorer(0.5, config.seed)}


# --- argument helpers ------------------------------------------------------------------------


def _literal(text: str) -> Any:
    """`3` -> 3, `1e-4` -> 0.0001, `true` -> True, `none` -> None, anything else stays text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _split_pair(pair: str, what: str) -> tuple[str, str]:
    """`"a=1"` -> `("a", "1")`; SystemExit naming `what` (the option) without a `=`."""
    if "=" not in pair:
        raise SystemExit(f"error: {what} expects KEY=VALUE, got {pair!r}")
    key, value = pair.split("=", 1)
    return key.strip(), value


def parse_pairs(pairs: Sequence[str], what: str) -> dict[str, Any]:
    """`["a=1", "b=x"]` -> `{"a": 1, "b": "x"}`."""
    return {key: _literal(value) for key, value in (_split_pair(p, what) for p in pairs)}


def _typed(text: str, hint: Any) -> Any:
    """`text` as a value of the type `hint` (a config field's annotation); ValueError when it
    is not one. Comma lists are tuples, `none` is None for an optional field, a field of
    another type takes what `_literal` makes of the text."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if text.strip().lower() in ("none", "null") and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            with contextlib.suppress(ValueError):
                return _typed(text, option)
        raise ValueError(text)
    if origin is typing.Literal:
        match = [a for a in args if str(a) == text.strip()]
        if not match:
            raise ValueError(text)
        return match[0]
    if origin is tuple:
        items = [t for t in text.strip().strip("()[]").split(",") if t.strip()]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(t, args[0]) for t in items)
        if len(items) != len(args):
            raise ValueError(text)
        return tuple(_typed(t, a) for t, a in zip(items, args, strict=True))
    if hint is bool:
        if text.strip().lower() not in ("true", "false"):
            raise ValueError(text)
        return text.strip().lower() == "true"
    if hint in (int, float):
        return hint(text.strip())
    if hint is str:
        return text
    if origin in (dict, collections.abc.Mapping):
        value = _literal(text)
        if not isinstance(value, dict):
            raise ValueError(text)
        return value
    return _literal(text)


_KINDS = {bool: ("true or false", "true/false values"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), str: ("text", "texts")}


def _describe(hint: Any) -> str:
    """What `_typed` accepts for `hint`, for error messages: `a number (float)`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join([_describe(a) for a in args if a is not type(None)]
                           + ["none"] * (type(None) in args))
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (dict, collections.abc.Mapping):
        return "a dict, e.g. \"{'max_digits': 4}\""
    if origin is tuple:
        variable = len(args) == 2 and args[1] is Ellipsis
        items = {args[0]} if variable else set(args)
        plural = _KINDS[next(iter(items))][1] if len(items) == 1 and items <= set(_KINDS) \
            else "values"
        count = "" if variable else f"{len(args)} "
        return f"{count}comma-separated {plural} ({_annotation(hint)})"
    if hint in _KINDS:
        return f"{_KINDS[hint][0]} ({hint.__name__})"
    return _annotation(hint)


def _annotation(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _example(field: dataclasses.Field) -> str:
    """`--set` text of the field's default, for error messages; empty without one."""
    if field.default is dataclasses.MISSING or field.default is None:
        return ""
    default = field.default
    text = ",".join(map(str, default)) if isinstance(default, tuple) \
        else str(default).lower() if isinstance(default, bool) else str(default)
    return f", e.g. --set {field.name}={text} (the default)"


def config_overrides(config_cls: type, pairs: Sequence[str]) -> dict[str, Any]:
    """`--set` pairs parsed by the type of the config field each names (comma lists become
    tuples); SystemExit with one line naming the field and its type when a value is not of
    that type, or naming `--help-config` when there is no such field."""
    hints = typing.get_type_hints(config_cls)
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    values = {}
    for key, text in (_split_pair(p, "--set") for p in pairs):
        if key not in fields:
            raise SystemExit(f"error: {config_cls.__name__} has no field {key!r}; see "
                             "`rlvr-gym train --help-config` for the list")
        hint = hints.get(key, Any)
        try:
            values[key] = _typed(text, hint)
        except ValueError:
            raise SystemExit(f"error: --set {key}={text}: {config_cls.__name__}.{key} takes "
                             f"{_describe(hint)}{_example(fields[key])}") from None
    return values


def config_help(config_cls: type) -> str:
    helps = config_cls.field_help() if hasattr(config_cls, "field_help") else {}
    lines = [f"{config_cls.__name__} fields (override with --set NAME=VALUE):"]
    for f in dataclasses.fields(config_cls):
        default = (f.default if f.default is not dataclasses.MISSING else f.default_factory()
                   if f.default_factory is not dataclasses.MISSING else "(required)")
        lines.append(f"  {f.name} = {default!r}\n      {helps.get(f.name, '')}")
    return "\n".join(lines)


def _setup_torch(threads: int | None) -> None:
    import torch
    from transformers.utils import logging

    # On a small shared CPU one thread is fastest: OpenMP threads spin waiting for each other.
    torch.set_num_threads(threads or max(1, min(4, (os.cpu_count() or 2) // 2)))
    logging.disable_progress_bar()  # weight-loading bars would bury the training output


def check_env_id(env_id: str) -> None:
    """SystemExit with one line naming the fix when `gym.make(env_id)` would not find the id:
    the registered id it most likely means (`rlvr/NAME` for a `NAME` given without the
    namespace) and `rlvr-gym envs`, which lists the ids. A `module:id` imports the module
    first, as `gym.make` does."""
    import gymnasium as gym
    from gymnasium.envs.registration import find_highest_version, parse_env_id

    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SystemExit(f"error: --env {env_id}: cannot import {module!r} ({exc}); the "
                             "part before ':' is the module that registers the id") from None
    with contextlib.suppress(gym.error.Error):
        namespace, base, version = parse_env_id(name)
        if name in gym.registry or (version is None
                                    and find_highest_version(namespace, base) is not None):
            return
    # Names compared without namespace and version; of ids sharing a name, the rlvr/ one.
    ids = {parse_env_id(registered)[1].lower(): registered
           for registered in sorted(gym.registry, key=lambda i: i.startswith("rlvr/"))}
    base = re.sub(r"-v\d+$", "", name.rsplit("/", 1)[-1]).lower()
    close = difflib.get_close_matches(base, list(ids), n=1)
    hint = f"did you mean {ids[close[0]]}? " if close else ""
    raise SystemExit(f"error: unknown env id {env_id!r}; {hint}`rlvr-gym envs` lists the "
                     "registered ids")


def make_envs(env_id: str | None, env_args: Sequence[str], wrapper: str | None = None,
              recorded: dict[str, Any] | None = None, prompt: PromptFor | None = None
              ) -> tuple[Any, Any, str, dict[str, Any]]:
    """Training env (dataset seed as given, default 0) and held-out env (dataset seed + 1).

    `env_id` (`--env`) picks the env with its own defaults; without it the `recorded` env of a
    checkpoint (`{"id", "kwargs"}`) is used, else the default task of the bundled model.
    `env_args` (`--env-arg`) change the kwargs of whichever is used. `prompt` (from
    `model_prompt`, for a model of your own) drops the bundled model's bare prompt of the
    default task and may set the `prompt` kwarg."""
    import gymnasium as gym

    from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS

    if env_id is not None:
        check_env_id(env_id)
        kwargs: dict[str, Any] = {}
    elif recorded is not None:
        env_id, kwargs = recorded["id"], dict(recorded["kwargs"])
    else:
        env_id, kwargs = DEFAULT_ENV_ID, dict(DEFAULT_ENV_KWARGS)
        if prompt is not None:
            del kwargs["prompt"]  # the env's own then asks for a \boxed{} answer
    kwargs.update(parse_pairs(env_args, "--env-arg"))
    templated = prompt(env_id, kwargs) if prompt is not None else None
    if templated is not None:
        kwargs["prompt"] = templated
    data_seed = int(kwargs.pop("seed", 0))
    try:
        env = gym.make(env_id, seed=data_seed, **kwargs)
        eval_env = gym.make(env_id, seed=data_seed + 1, **kwargs)
    except (TypeError, ValueError):
        # File datasets have no dataset seed: the held-out env is the same data.
        print(f"warning: {env_id} takes no dataset seed; evaluating on the training data",
              file=sys.stderr)
        env, eval_env = gym.make(env_id, **kwargs), gym.make(env_id, **kwargs)
    if wrapper is not None:
        if wrapper not in WRAPPERS:
            raise SystemExit(f"error: unknown wrapper {wrapper!r}; available: "
                             f"{sorted(WRAPPERS) or 'none registered'}")
        env = WRAPPERS[wrapper](env)
    return env, eval_env, env_id, {**kwargs, "seed": data_seed}


def distribute(args: argparse.Namespace, *envs: Any) -> None:
    """With `--ray-verifiers N`: one `RayVerifierPool` of N Ray actors (on the cluster of
    `--ray-address`, else RAY_ADDRESS, else a local Ray) verifies for all `envs`."""
    if args.ray_verifiers is None:
        if args.ray_address is not None:
            raise SystemExit("error: --ray-address needs --ray-verifiers N (the Ray actors "
                             "that verify on that cluster)")
        return
    if args.ray_verifiers < 1:
        raise SystemExit(f"error: --ray-verifiers must be at least 1, got {args.ray_verifiers}")
    from rlvr_gym.distributed.ray_verifier import RayVerifierPool, distribute_verification

    try:
        pool = RayVerifierPool(envs[0].unwrapped.verifier, args.ray_verifiers,
                               address=args.ray_address)
    except (ImportError, RuntimeError, ConnectionError) as exc:
        raise SystemExit(f"error: --ray-verifiers: {exc}") from None
    for env in envs:
        distribute_verification(env, pool)


def run_directory(explicit: str | None, default: Path, resumed: Path | None) -> Path:
    """The directory of this run; never one that holds another run's files.

    - resuming (`resumed`: the directory of the run the checkpoint belongs to, None when
      unknown): that directory, or `explicit` to continue in a new directory (a branch);
    - an `explicit` directory (`--output`) must not hold a run: it was named on purpose, so it
      is neither overwritten nor silently swapped for another; the error says how to continue
      it or where else to go;
    - the `default` name: when it holds an earlier run, the first free `NAME-2`, `NAME-3`, ...
      (rerunning a command, e.g. `make train`, keeps both runs side by side).
    """
    from rlvr_gym.agents.monitors import fresh_run_dir, holds_run

    if explicit is not None:
        path = Path(explicit)
        same = resumed is not None and path.resolve() == resumed.resolve()
        if holds_run(path) and not same:
            raise SystemExit(f"error: {path} already holds a run; continue it with --resume "
                             f"{path / 'agent'}, or give another --output")
        return path
    if resumed is not None:
        return resumed
    return fresh_run_dir(default)


def _resumed_run(checkpoint: Path, record: dict[str, Any]) -> Path | None:
    """The run directory a checkpoint belongs to: the one holding it (`RUN/agent`) when it
    is a run's, else the `output_dir` it was trained with; None when neither is known."""
    from rlvr_gym.agents.monitors import holds_run

    parent = checkpoint.resolve().parent
    if (parent / "metrics.jsonl").exists() or (parent / "summary.json").exists():
        return parent
    saved = record.get("config", {}).get("output_dir")
    return Path(saved) if saved and holds_run(saved) else None


def _agent_name(record: dict[str, Any]) -> str | None:
    """The `--agent` name of a saved agent's class, if registered."""
    return next((name for name, spec in AGENTS.items()
                 if spec.agent_cls.__name__ == record.get("agent")), None)


def _format_eval(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.3f}" for k, v in metrics.items())


# --- models of your own ----------------------------------------------------------------------

PromptFor = Callable[[str, dict[str, Any]], "str | None"]
"""`prompt(env_id, env_kwargs)`: the `prompt` env kwarg to use (None: the env's own)."""


def model_prompt(model: str | os.PathLike, chat_template: bool, system: str | None,
                 fixed: str | None = None) -> PromptFor | None:
    """How `make_envs` prompts `model` (a model directory): None for a bundled model, which
    the default task's bare prompt suits; for any other model a function
    giving the env's template (its `prompt` kwarg, else its own, which asks for a `\\boxed{}`
    answer), rendered into the model tokenizer's chat template after the `system` message when
    `chat_template` (`--chat-template`, `--system`), as a plain template string that the saved
    agent's env record keeps. `fixed` says why the prompt cannot change (a resumed run):
    then the options are refused and None returned."""
    from rlvr_gym.agents.tiny import BUNDLED_MODELS

    if fixed is not None:
        if chat_template or system is not None:
            raise SystemExit(f"error: --chat-template/--system: {fixed}")
        return None
    if system is not None and not chat_template:
        raise SystemExit("error: --system needs --chat-template (a plain prompt has no "
                         "system message)")
    bundled = {Path(m.directory).resolve() for m in BUNDLED_MODELS.values()}
    if Path(model).resolve() in bundled and not chat_template:
        return None
    if not chat_template:
        return lambda env_id, kwargs: None
    import gymnasium as gym
    from transformers import AutoTokenizer

    from rlvr_gym.envs import PromptFormat

    tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True)
    if not getattr(tokenizer, "chat_template", None):
        raise SystemExit(f"error: --chat-template: the tokenizer of {model} has no chat "
                         "template; drop the option to prompt with plain text")

    def prompt(env_id: str, kwargs: dict[str, Any]) -> str:
        template = kwargs.get("prompt")
        if template is None:
            env: Any = gym.make(env_id, **kwargs).unwrapped
            template = env.prompt_format.template
            env.close()
        return PromptFormat(template, system, tokenizer).as_template()

    return prompt


# --- commands --------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    record = None
    if args.resume:
        from rlvr_gym.agents.checkpoint import CheckpointError, read_record

        try:
            record = read_record(args.resume)
        except CheckpointError as exc:
            raise SystemExit(f"error: --resume {args.resume}: {exc}") from None
    agent_name = args.agent or (record and _agent_name(record)) or "grpo"
    spec = AGENTS[agent_name]
    if args.help_config:
        print(config_help(spec.config_cls))
        return 0
    _setup_torch(args.threads)
    import torch

    from rlvr_gym.agents.monitors import TrainingInterrupted
    from rlvr_gym.agents.tiny import TINY_MODEL_DIR

    prompt = model_prompt(args.model or TINY_MODEL_DIR, args.chat_template, args.system,
                          "a resumed run keeps the prompt it was trained with" if record else None)
    env, eval_env, env_id, env_kwargs = make_envs(
        args.env, args.env_arg, args.wrapper, record.get("env") if record else None, prompt)
    distribute(args, env, eval_env)
    overrides = config_overrides(spec.config_cls, args.set)
    # One run directory for metrics, the saved agent and the summary: --output, or the
    # config's output_dir given with --set.
    if args.output and overrides.get("output_dir", args.output) != args.output:
        raise SystemExit(f"error: --output {args.output} and --set output_dir="
                         f"{overrides['output_dir']} disagree: give the run directory once")
    resumed = None
    if record is not None:
        resumed = _resumed_run(Path(args.resume), record)
        if resumed is None and not (args.output or overrides.get("output_dir")):
            raise SystemExit(f"error: --resume {args.resume}: the checkpoint belongs to no "
                             "run directory; give one with --output")
    # Under torchrun (docs/scaling_out.md) rank 0 picks the run directory for every rank.
    from rlvr_gym.distributed import data_parallel

    try:
        world, _ = data_parallel.start(str(overrides.get("device", "auto")))
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    output = _on_main(world, lambda: run_directory(
        args.output or overrides.get("output_dir"),
        Path(f"runs/{agent_name}-{env_id.split('/')[-1]}-seed{args.seed}"), resumed))
    overrides["output_dir"] = str(output)
    start, start_cpu = time.perf_counter(), time.process_time()
    model_dir = str(Path(args.resume) / "policy" if args.resume else args.model or TINY_MODEL_DIR)
    known = {f.name for f in dataclasses.fields(spec.config_cls)}
    saved = {k: v for k, v in record.get("config", {}).items() if k in known} if record else {}
    from rlvr_gym.agents.checkpoint import CheckpointError

    try:
        config = spec.config_cls(**{"seed": args.seed, **saved, **overrides})
        env, extra = spec.setup(env, config, model_dir) if spec.setup is not None else (env, {})
        if args.resume:
            try:
                agent = spec.agent_cls.load(args.resume, env, eval_env, **extra, **overrides)
            except CheckpointError as exc:
                raise SystemExit(f"error: --resume {args.resume}: {exc}") from None
        else:
            agent = spec.agent_cls(model_dir, env, config, eval_env=eval_env, **extra)
    except ValueError as exc:  # a value of the right type that is refused, e.g. --set lr=-1
        raise SystemExit(f"error: {exc}") from None
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    if "decay_steps" in fields and "decay_steps" not in overrides:
        end = agent.num_steps + args.steps
        if end > agent.config.warmup_steps:
            agent.config.decay_steps = end  # the learning rate reaches 0 where this run ends
    if "greedy_eval_every" in fields and "greedy_eval_every" not in overrides \
            and record is None:
        # about ten held-out points per run on the curves (a step counts one, a B-STaR
        # iteration its steps_per_iteration); a resumed run keeps its own
        per_count = getattr(agent.config, "steps_per_iteration", 1)
        agent.config.greedy_eval_every = max(1, args.steps // per_count // 10)
    say = print if world.main else _quiet
    ranks = f" on {world.size} ranks" if world.distributed else ""
    say(f"training {agent_name} on {env_id} {json.dumps(env_kwargs)} for {args.steps} steps"
        f"{ranks}; model {args.model or 'bundled tiny model'}; output {output}")
    first_step = agent.num_steps
    try:
        agent.learn(args.steps, progress_bar=not args.no_progress)
    except TrainingInterrupted as stop:
        if not world.main:
            return 130
        resume = f"rlvr-gym train --resume {stop.checkpoint}" + (
            f" --wrapper {args.wrapper}" if args.wrapper else "")
        left = args.steps - (stop.step - first_step)
        print(f"interrupted at step {stop.step}: agent saved to {stop.checkpoint}; continue with "
              f"`{resume} --steps {left}`", file=sys.stderr)
        return 130
    if not world.main:
        return 0
    history = [{k: v for k, v in e.items() if k != "step"} for e in agent.eval_history
               if e["step"] >= first_step]
    before, after = history[0], history[-1]
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    print(f"held-out before: {_format_eval(before)}")
    print(f"held-out after:  {_format_eval(after)}")
    print(f"held-out accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f} "
          f"({100 * (after['accuracy'] - before['accuracy']):+.1f} points) in {seconds:.0f} s "
          f"({cpu_seconds:.0f} CPU s); agent saved to {agent.checkpoint_dir}, curves in "
          f"{output / 'curves.png'}")
    # CPU seconds of this process: with one torch thread, the wall time on an idle machine.
    summary = {"env_id": env_id, "env_kwargs": env_kwargs, "steps": args.steps,
               "num_steps": agent.num_steps,
               "before": before, "after": after, "wall_seconds": seconds,
               "cpu_seconds": cpu_seconds, "torch_threads": torch.get_num_threads(),
               "world_size": world.size}
    (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


T = TypeVar("T")


def _on_main(world: Any, decide: Callable[[], T]) -> T:
    """`decide()` on rank 0, its result (or its SystemExit) given to every rank."""
    if not world.distributed:
        return decide()
    from rlvr_gym.distributed import data_parallel

    outcome: Any = None
    if world.main:
        try:
            outcome = decide()
        except SystemExit as exc:
            outcome = exc
    outcome = data_parallel.broadcast(outcome)
    if isinstance(outcome, SystemExit):
        raise outcome
    return outcome


def _quiet(*args: Any, **kwargs: Any) -> None:
    """`print` of the ranks other than 0."""


def cmd_eval(args: argparse.Namespace) -> int:
    _setup_torch(args.threads)
    from rlvr_gym.agents.checkpoint import AGENT_FILE, Checkpoint, CheckpointError
    from rlvr_gym.agents.policy import Policy
    from rlvr_gym.agents.rollout import evaluate
    from rlvr_gym.agents.tiny import TINY_MODEL_DIR

    path = Path(args.checkpoint or TINY_MODEL_DIR)
    recorded = None
    if (path / AGENT_FILE).exists():  # an agent's checkpoint: its policy, checked
        try:
            checkpoint = Checkpoint(path)
            policy = checkpoint.policy(args.device, "auto")
        except CheckpointError as exc:
            raise SystemExit(f"error: {exc}") from None
        recorded = checkpoint.saved.get("env")
    else:
        policy = Policy.from_pretrained(path, args.device)
    prompt = model_prompt(
        path / "policy" if (path / AGENT_FILE).exists() else path, args.chat_template,
        args.system, "the agent is evaluated with the prompt it was trained with (--env "
        "evaluates on another env)" if recorded is not None and args.env is None else None)
    _, eval_env, env_id, env_kwargs = make_envs(args.env, args.env_arg, recorded=recorded,
                                                prompt=prompt)
    distribute(args, eval_env)
    if recorded is not None and args.env is None:
        print(f"evaluating on {env_id}, the env the agent was trained on (--env overrides)",
              file=sys.stderr)
    import torch

    torch.manual_seed(args.seed)
    metrics = evaluate(policy, eval_env, args.problems, args.samples, args.k, args.temperature,
                       args.max_new_tokens, progress_bar=not args.no_progress)
    if args.regret_budget is not None:
        from rlvr_gym.agents.mrt import MetaProver, regret_traces, summarize_regret

        prover = MetaProver(policy, eval_env.unwrapped, samples=args.regret_samples)
        traces = regret_traces(policy, eval_env, prover, args.problems, args.regret_budget,
                               args.temperature)
        metrics.update({f"regret/{k}": v for k, v in
                        summarize_regret(traces, args.regret_budget).items()})
    print(json.dumps({"checkpoint": str(path), "env_id": env_id, "env_kwargs": env_kwargs,
                      **metrics}, indent=2))
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    from rlvr_gym.registration import TASKS

    width = max(map(len, TASKS), default=0) + 2
    for env_id, task in TASKS.items():
        print(f"{env_id:<{width}}{task.description or f'{task.kind} task {task.name!r}'}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from rlvr_gym.verifiers.math import MathVerifier

    response = Path(args.response_file).read_text() if args.response_file else args.response
    if response is None:
        raise SystemExit("error: give a response as an argument or with --response-file")
    verdict = MathVerifier().verify(response, args.reference)
    print(json.dumps({"status": verdict.status.value, "score": verdict.score,
                      "extracted": verdict.extracted, "reason": verdict.reason}))
    return 0 if verdict.correct else 1


def cmd_pretrain(args: argparse.Namespace) -> int:
    from rlvr_gym.agents.tiny import BUNDLED_MODELS, PretrainConfig, pretrain

    if args.help_config:
        print(config_help(PretrainConfig))
        return 0
    if args.preset not in BUNDLED_MODELS:
        raise SystemExit(f"error: unknown preset {args.preset!r}; choose one of "
                         f"{sorted(BUNDLED_MODELS)}")
    bundled = BUNDLED_MODELS[args.preset]
    overrides = config_overrides(PretrainConfig, args.set)
    if args.env is not None or args.env_arg:
        if args.output is None:
            raise SystemExit("error: --env/--env-arg train a model of another task; give "
                             "--output so that the bundled model is not overwritten")
        kwargs = dict(bundled.env_kwargs) if args.env is None else {}
        kwargs.update(parse_pairs(args.env_arg, "--env-arg"))
        if "seed" in kwargs:
            raise SystemExit("error: pretraining uses dataset seed 0 and holds out seed 1; "
                             "drop --env-arg seed=...")
        if args.env is not None:
            check_env_id(args.env)
        overrides.update(env_id=args.env or bundled.env_id, env_kwargs=kwargs)
    _setup_torch(None)
    try:
        config = dataclasses.replace(bundled.pretrain, **overrides)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    summary = pretrain(config, args.output or bundled.directory,
                       progress_bar=not args.no_progress)
    print(f"{summary['parameters']} parameters, {summary['wall_seconds']:.0f} s "
          f"({summary['cpu_seconds']:.0f} CPU s), final held-out greedy accuracy "
          f"{summary['history'][-1]['accuracy'] if summary['history'] else 'n/a'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rlvr_gym import demo

    demo.main()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlvr-gym", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version",
                        version=f"rlvr-gym {rlvr_gym.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def env_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--env", help="env id (default: the env a saved agent was trained on, "
                       "else the bundled model's task, rlvr/Arithmetic-v0 with 2-3 digit "
                       "addition)")
        p.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE",
                       help="env/task option, e.g. --env-arg max_digits=4 (repeatable); "
                       "`seed` is the dataset seed, held-out uses seed+1")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        p.add_argument("--ray-verifiers", type=int, default=None, metavar="N",
                       help="verify on N Ray actors spread over a Ray cluster (needs "
                       'pip install "rlvr-gym[ray]"; same rewards as without)')
        p.add_argument("--ray-address", default=None, metavar="ADDR",
                       help="Ray cluster of --ray-verifiers, e.g. HEAD:6379 or auto (default: "
                       "the RAY_ADDRESS env var, else a local Ray on this machine)")

    def prompt_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--chat-template", action="store_true", help="prompt through the "
                       "model tokenizer's chat template, the env's prompt as the user message "
                       "(a model of your own gets the env's own prompt, which asks for a "
                       "\\boxed{} answer, not the bundled model's bare one)")
        p.add_argument("--system", default=None, metavar="TEXT",
                       help="system message of the chat template (needs --chat-template)")

    train = sub.add_parser("train", help="train an agent on an env")
    env_options(train)
    prompt_options(train)
    train.add_argument("--agent", default=None, choices=sorted(AGENTS),
                       help="agent (default: grpo, or with --resume the saved agent's)")
    train.add_argument("--wrapper", default=None, help="env wrapper registered in "
                       f"rlvr_gym.cli.WRAPPERS ({', '.join(sorted(WRAPPERS)) or 'none yet'})")
    train.add_argument("--model", default=None, help="local HF model directory "
                       "(default: the bundled tiny model)")
    train.add_argument("--steps", type=int, default=150, help=(
        "training steps (default 150); the learning rate warms up over the config's "
        "warmup_steps and decays linearly to 0 at the last step (--set decay_steps=0: "
        "constant)"))
    train.add_argument("--seed", type=int, default=0, help="run seed")
    train.add_argument("--output", default=None, help="run directory, which must not hold "
                       "another run (default runs/<agent>-<env>-seed<seed>, numbered -2, -3, "
                       "... when taken; with --resume: the resumed run's)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="config override, e.g. --set lr=1e-4 (see --help-config)")
    train.add_argument("--resume", default=None, metavar="RUN/agent",
                       help="continue a saved agent in its run directory, on its env "
                       "(--steps more steps)")
    train.add_argument("--help-config", action="store_true", help="list config fields and exit")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="held-out accuracy and pass@k of a checkpoint")
    ev.add_argument("checkpoint", nargs="?", default=None,
                    help="agent directory (from train; evaluated on the env it was trained "
                    "on unless --env is given) or model directory (default: bundled)")
    env_options(ev)
    prompt_options(ev)
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.add_argument("--problems", type=int, default=200, help="held-out problems")
    ev.add_argument("--samples", type=int, default=8, help="samples per problem for pass@k")
    ev.add_argument("--k", type=int, nargs="+", default=[1, 8], help="k values of pass@k")
    ev.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    ev.add_argument("--max-new-tokens", type=int, default=40, help="generation budget")
    ev.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ev.add_argument("--seed", type=int, default=0, help="sampling seed")
    ev.add_argument("--regret-budget", type=int, default=None, metavar="C0",
                    help="also sample one response per problem within C0 tokens and print "
                    "MRT's normalized regret at C0 and cumulative regret (J from the "
                    "meta-prover at each episode boundary)")
    ev.add_argument("--regret-samples", type=int, default=4,
                    help="forced answers per prefix for the meta-prover's J (default 4)")
    ev.set_defaults(func=cmd_eval)

    envs = sub.add_parser("envs", help="list the registered env ids, one line each")
    envs.set_defaults(func=cmd_envs)

    verify = sub.add_parser("verify", help="check a response against a reference answer "
                            "(exit status 0 when correct, 1 otherwise)")
    verify.add_argument("response", nargs="?", default=None, help="response text")
    verify.add_argument("--response-file", default=None, help="read the response from a file")
    verify.add_argument("--reference", required=True, help="reference answer, e.g. 42")
    verify.set_defaults(func=cmd_verify)

    pre = sub.add_parser("pretrain", help="rebuild a bundled tiny model (supervised), or train "
                         "one on another task")
    pre.add_argument("--preset", default="tiny",
                     help="bundled model to rebuild: tiny (the default task), tiny-chain "
                     "(4-6 term sums, multi-step solutions) or tiny-countdown (Countdown "
                     "searches with re-checks); --set, --env and --env-arg change its config")
    pre.add_argument("--env", default=None, help="env id of another task (needs --output)")
    pre.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE",
                     help="task option over the preset's, e.g. --env-arg max_operands=4 "
                     "(repeatable; needs --output)")
    pre.add_argument("--output", default=None, help="model directory (default: the preset's "
                     "bundled one)")
    pre.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="PretrainConfig override, e.g. --set steps=800")
    pre.add_argument("--help-config", action="store_true", help="list config fields and exit")
    pre.add_argument("--no-progress", action="store_true", help="no progress bar")
    pre.set_defaults(func=cmd_pretrain)

    demo = sub.add_parser("demo", help="scripted answers on every env")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _register_builtin()
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
