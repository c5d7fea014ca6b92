"""The data-parallel learner on torch.distributed (docs/scaling_out.md): `torchrun
--nproc_per_node N -m rlvr_gym.cli train ...` starts N ranks; each rank samples and scores its
share of a step's prompts, the gradients of the ranks are summed with `all_reduce` before the
optimiser step (every rank then holds the same weights), and rank 0 evaluates, logs and saves.

The loss of each rank is normalised by the totals of the whole step (sequences, tokens), so
that the summed gradient is the gradient a single process computes on the whole batch. The
gradients are all-reduced once per optimiser step, as DDP does, but without DDP's module
wrapper: DDP syncs inside `backward`, so every rank would need the same number of backward
passes, and ranks here skip the micro-batches whose advantages are all zero (a different
number on each rank).

gloo on a CPU, NCCL on GPUs. A process not started by torchrun (no WORLD_SIZE) is a world of
one, and nothing here changes what it does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch

T = TypeVar("T")

RANK_SEED_STRIDE = 10_007
"""Rank r seeds torch, numpy, random and its env with `seed + r * RANK_SEED_STRIDE` (rank 0
with `seed`, as a single process), so that ranks sample different problems and responses."""


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a torchrun job."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> World:
        """The world torchrun describes in RANK, WORLD_SIZE and LOCAL_RANK (a world of one
        without them); ValueError for inconsistent values."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
        if size < 1 or not 0 <= rank < size:
            raise ValueError(f"RANK={rank} and WORLD_SIZE={size} are inconsistent; start the "
                             "job with torchrun, which sets both")
        return cls(rank, size, local)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Whether this rank evaluates, logs and saves (rank 0)."""
        return self.rank == 0

    def seed(self, seed: int) -> int:
        """This rank's seed of the run seed `seed`."""
        return seed + self.rank * RANK_SEED_STRIDE

    def share(self, total: int, what: str) -> int:
        """This rank's part of `total` items of a step (`what` names the config field);
        ValueError unless the ranks can split it evenly."""
        if total % self.size:
            raise ValueError(f"{what}={total} does not split over {self.size} ranks; make it a "
                             f"multiple of the number of processes (--nproc_per_node x --nnodes)")
        return total // self.size


def start(device: str) -> tuple[World, str]:
    """The world of this process, its process group started (once) when torchrun launched
    several ranks, and the device the rank uses for `device` ('auto', 'cpu', 'cuda', ...):
    gloo on a CPU; on GPUs NCCL, and each rank takes the GPU of its local rank, made the only
    visible one (`CUDA_VISIBLE_DEVICES`) so that a colocated vLLM engine uses it too."""
    world = World.from_env()
    if not world.distributed:
        return world, device
    import torch.distributed as dist

    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        if len(ids) > 1:
            if world.local_rank >= len(ids):
                raise ValueError(f"local rank {world.local_rank} has no GPU: {len(ids)} visible; "
                                 "start at most one process per GPU (--nproc_per_node)")
            os.environ["CUDA_VISIBLE_DEVICES"] = ids[world.local_rank]
        device = "cuda:0"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=30))
    return world, device


def _dist() -> Any:
    import torch.distributed as dist

    return dist


def all_sum(values: Iterable[float]) -> list[float]:
    """The sums over the ranks of `values` (the same count on every rank)."""
    return _all_reduce(values, _dist().ReduceOp.SUM)


def all_max(values: Iterable[float]) -> list[float]:
    """The maxima over the ranks of `values` (the same count on every rank)."""
    return _all_reduce(values, _dist().ReduceOp.MAX)


def _all_reduce(values: Iterable[float], op: Any) -> list[float]:
    tensor = torch.tensor(list(values), dtype=torch.float64)
    _dist().all_reduce(tensor, op=op)
    return tensor.tolist()


def all_reduce_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace the gradient of every trainable parameter by its sum over the ranks (a rank that
    ran no backward pass adds zeros), in one collective over a flat buffer. A parameter that no
    rank has a gradient for keeps None, so that the optimiser leaves it (and its moments) as
    one process would."""
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    present = torch.tensor([float(p.grad is not None) for p in params], dtype=grads[0].dtype)
    flat = torch.cat([g.reshape(-1) for g in grads] + [present])
    _dist().all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n
    for p, anywhere in zip(params, flat[offset:].tolist(), strict=True):
        if not anywhere:
            p.grad = None


def gather(obj: T) -> list[T]:
    """`obj` of every rank, in rank order (any picklable object)."""
    out: list[Any] = [None] * _dist().get_world_size()
    _dist().all_gather_object(out, obj)
    return out


def broadcast(obj: T) -> T:
    """Rank 0's `obj` on every rank."""
    box = [obj]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def merge_metrics(per_rank: list[dict[str, Any]]) -> dict[str, Any]:
    """One step's metrics from those of every rank: counts (ints) summed, other numbers
    averaged, over the ranks that report the key; non-numbers from the first that has one."""
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for metrics in per_rank for k in metrics):
        values = [m[key] for m in per_rank if key in m]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            merged[key] = sum(values)
        elif all(isinstance(v, int | float) for v in values):
            merged[key] = sum(values) / len(values)
        else:
            merged[key] = values[0]
    return merged
