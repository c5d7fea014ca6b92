"""Fully sharded data parallelism (FSDP2, `torch.distributed.fsdp.fully_shard`) for the torchrun
learner (docs/scaling_out.md): with `fsdp=True` each rank holds a 1/N shard of the policy's
weights, gradients and optimiser state, for models that do not fit one device.

Every forward pass of a sharded model is a collective (the layer's weights are all-gathered
for it), so every rank must run the same passes: generation keeps the ranks in step
(transformers' `synced_gpus`), the update pads each rank to the largest micro-batch count of
the step with `PolicyGradient._idle_pass`, and every rank evaluates. Gradients are
reduce-scattered as a SUM (the losses are normalised by the step's global totals, as in the
data-parallel learner).
Checkpoints hold full weights and optimiser state in the single-process format.
"""

from __future__ import annotations

from typing import Any

import torch


def shard(model: torch.nn.Module) -> None:
    """Shard `model` in place over the ranks of the started process group: each decoder block
    (the classes a Hugging Face model names in `_no_split_modules`), then the root. Gradients
    are summed over the ranks, not averaged. The root reshards after its forward too, so that
    between passes the registered parameters are always the shards the optimiser holds."""
    from torch.distributed.fsdp import FSDPModule, fully_shard

    blocks = set(getattr(model, "_no_split_modules", None) or ())
    for module in list(model.modules()):
        if module is not model and type(module).__name__ in blocks:
            fully_shard(module)
    fully_shard(model, reshard_after_forward=True)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)  # gloo has no PREMUL_SUM


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole of a sharded (DTensor) tensor, gathered (a collective); a plain one as it is."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def _options(**extra: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **extra)


def _names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The parameter names of `optimizer`'s parameters in its own order (the integer ids of
    `optimizer.state_dict()`)."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The full state dict of a sharded `model` on the CPU of rank 0 (empty on the other ranks).
    Every rank must call it (it gathers the shards)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state: dict[str, Any] = get_model_state_dict(model, options=_options(cpu_offload=True))
    return state


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer
                         ) -> dict[str, Any]:
    """The optimiser state of a sharded `model` gathered on the CPU of rank 0, in the format of
    `optimizer.state_dict()` in one process (parameters by integer id), so that one process
    loads it (empty on the other ranks). Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    names = _names(model, optimizer)
    full: Any = get_optimizer_state_dict(
        model, optimizer, options=_options(cpu_offload=True))
    if not full:
        return {}
    index = {name: i for i, name in enumerate(names)}
    return {"state": {index[name]: value for name, value in full["state"].items()},
            "param_groups": [{**group, "params": [index[n] for n in group["params"]]}
                             for group in full["param_groups"]]}


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                         state: dict[str, Any]) -> None:
    """Load `state` (the format of `optimizer.state_dict()` in one process, e.g. from
    `full_optimizer_state`) into the optimiser of a sharded `model`: each rank keeps its shard.
    Every rank must call it, each with the whole state."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    names = _names(model, optimizer)
    by_name: Any = {"state": {names[i]: value for i, value in state["state"].items()},
                    "param_groups": [{**group, "params": [names[i] for i in group["params"]]}
                                     for group in state["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, by_name, options=_options())


class FullStateSaver:
    """What a checkpoint saves for a sharded model: `save_pretrained(path)` writes the model's
    gathered `state_dict` (from `full_model_state`) in the Hugging Face format one process
    writes."""

    def __init__(self, model: Any, state_dict: dict[str, torch.Tensor]) -> None:
        self.model = model
        self.state_dict = state_dict

    def save_pretrained(self, path: Any) -> None:
        self.model.save_pretrained(path, state_dict=self.state_dict)
