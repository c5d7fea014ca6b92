"""TRL's `GRPOTrainer` on an rlvr-gym env's rewards (`pip install "rlvr-gym[trl]"`).

    env = gym.make("rlvr/Arithmetic-v0")
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=GRPOConfig(...),
                          train_dataset=prompt_dataset(env, size=1000),
                          reward_funcs=reward_function(env))

- `prompt_dataset`: a `datasets.Dataset` with TRL's `prompt` column (the env's observation,
  plain text: TRL's standard format) and `problem_id`, which TRL hands back to the reward
  function with every completion;
- `reward_function`: scores each completion through the env (the problem pinned by its id,
  then `step`) and returns the reward, or None where the verdict is not usable (the verifier
  failed: `error`, `timeout`). TRL leaves a None out of the group statistics and gives that
  completion advantage 0: the masking rlvr-gym's agents apply;
- `position_ids_from_mask`: TRL scores its left-padded prompt + completion batches passing
  only `input_ids` and `attention_mask`. A model with absolute position embeddings (GPT-2,
  the bundled tiny model) then puts a padded row's tokens at shifted positions: the
  log-probabilities TRL trains on are not those of the model that sampled (its `generate`
  derives positions from the mask). Rotary models (Llama, Qwen) are unaffected (attention
  sees relative positions). Calling `position_ids_from_mask(model)` before training makes
  the model derive them from the mask too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from rlvr_gym.integrations import indexed_prompts

INSTALL = 'pip install "rlvr-gym[trl]"'
"""Installs TRL and datasets."""

RewardFunction = Callable[..., list[float | None]]


def prompt_dataset(env: Any, size: int | None = None, start: int = 0) -> Any:
    """A `datasets.Dataset` of problems `start` .. `start + size - 1` of `env` with columns
    `prompt` (the observation) and `problem_id` (`size` None: all problems of a source of at
    most 100,000; see `rlvr_gym.integrations.indexed_prompts` for the errors)."""
    try:
        from datasets import Dataset
    except ImportError as exc:
        raise ImportError(f"prompt_dataset needs the datasets package: {INSTALL}") from exc
    rows = indexed_prompts(env, size, start)
    return Dataset.from_dict({"prompt": [p for p, _ in rows], "problem_id": [i for _, i in rows]})


def completion_text(completion: str | Sequence[dict[str, Any]]) -> str:
    """A TRL completion as text: a string as it is, a conversational one (a list of messages)
    as the content of its last message."""
    if isinstance(completion, str):
        return completion
    return str(completion[-1]["content"]) if completion else ""


def reward_function(env: Any, name: str = "rlvr_reward") -> RewardFunction:
    """A TRL reward function judging completions with `env`: the env's reward for each, or
    None where the verdict is not usable. It reads the `problem_id` column of a
    `prompt_dataset` of the same env (same task and options); TRL logs it under `name`."""
    from rlvr_gym.agents.rollout import score

    def reward(prompts: Sequence[Any], completions: Sequence[Any],
               problem_id: Sequence[str] | None = None, **_: Any) -> list[float | None]:
        if problem_id is None:
            raise ValueError("the dataset has no problem_id column; build it with "
                             "rlvr_gym.integrations.trl.prompt_dataset(env, ...)")
        scored = score(env, list(problem_id), [completion_text(c) for c in completions])
        return [s.reward if s.usable else None for s in scored]

    reward.__name__ = reward.__qualname__ = name
    return reward


def position_ids_from_mask(model: torch.nn.Module) -> torch.utils.hooks.RemovableHandle:
    """Make `model` derive its position ids from the attention mask (`cumsum - 1`, the rule of
    transformers' `generate`) whenever a call passes an `attention_mask` and no
    `position_ids`, so that a left-padded row is scored at the positions it was sampled at.
    Calls that pass position ids are untouched. Returns the hook's handle (`.remove()` undoes
    it)."""

    def hook(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
             ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        mask = kwargs.get("attention_mask")
        tokens = kwargs.get("input_ids", args[0] if args else None)
        if tokens is None:
            tokens = kwargs.get("inputs_embeds")
        if kwargs.get("position_ids") is None and mask is not None and mask.dim() == 2 \
                and tokens is not None:
            positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
            kwargs["position_ids"] = positions[:, -tokens.shape[1]:]
        return args, kwargs

    return model.register_forward_pre_hook(hook, with_kwargs=True)
