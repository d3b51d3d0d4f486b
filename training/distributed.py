"""Data-parallel plumbing for the outer loop: the process group, gradient averaging, decisions all ranks share."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def dist_setup() -> tuple[int, int]:
    """(rank, world size); joins the gloo group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank() if world > 1 else 0), world


def all_reduce_grads(params: list[torch.Tensor], world: int) -> None:
    """Average gradients over ranks (a parameter without a gradient counts as zero)."""
    if world == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= world


def any_rank(flag: bool, world: int) -> bool:
    """True on every rank when it is true on any: one rank's time limit stops all of them at the same step."""
    if world == 1:
        return flag
    t = torch.tensor([1 if flag else 0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather(obj: Any, world: int) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank (e.g. each rank's RNG state for a checkpoint)."""
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()
