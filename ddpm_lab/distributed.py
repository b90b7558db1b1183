"""DistributedDataParallel plumbing for ``torchrun --nproc_per_node=N`` (one process per GPU).

torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (and the rendezvous address); a plain
``python`` run sets none of them and everything here is a no-op (world size 1, rank 0).
The backend is NCCL on CUDA and gloo on the CPU (what the tests use, over loopback).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine,
    the ``device`` it trains on, and whether this call created the process group (``owns_group``)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        """True when training runs on more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files, logs and shows progress bars."""
        return self.rank == 0


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def setup_distributed(device: torch.device | str) -> DistInfo:
    """Join the process group when launched by torchrun, else describe a single process.

    With CUDA, process ``LOCAL_RANK`` uses ``cuda:LOCAL_RANK`` (a ``device`` of ``"cuda"`` without an
    index is mapped there); on the CPU every process uses the CPU.

    :param device: the requested device.
    :return: a :class:`DistInfo`; if a process group already exists it is reused.
    """
    device = torch.device(device)
    world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else env_world_size()
    if world_size <= 1:
        return DistInfo(device=device)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed support")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                    device=device, owns_group=owns)


def cleanup_distributed(info: DistInfo | None = None) -> None:
    """Destroy the process group (only the one ``info`` created, or any when ``info`` is None)."""
    if dist.is_available() and dist.is_initialized() and (info is None or info.owns_group):
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of ``value`` over all processes (a copy; ``value`` itself when not distributed)."""
    if not info.enabled:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op when not distributed)."""
    if info.enabled:
        dist.barrier()
