"""Data-parallel training with ``torch.distributed`` (launched by ``torchrun``).

Every process (rank) holds a full copy of the model and of the data, trains on its own
share of each minibatch epoch, and :class:`~torch.nn.parallel.DistributedDataParallel`
averages the gradients, so the weights (and their EMA) stay identical on all ranks.
Launch a script that calls ``model.train()`` with, for two GPUs on one machine::

    torchrun --standalone --nproc_per_node=2 train_script.py

The process group is set up by :func:`init_distributed` (``SDD.train`` calls it when
``torchrun``'s environment variables are present): NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = [
    "init_distributed",
    "distributed_info",
    "is_main_process",
    "shard",
    "launched_by_torchrun",
]


def launched_by_torchrun() -> bool:
    """Whether ``torchrun`` (or another launcher) set ``WORLD_SIZE`` > 1 for this process."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ
    except ValueError:
        return False


def init_distributed(backend: str | None = None) -> bool:
    """Join the process group ``torchrun`` describes; return whether training is distributed.

    Does nothing (and returns ``True``) when the group is already initialised with more
    than one process, and returns ``False`` when the process was not launched by
    ``torchrun`` (single-process training).

    Parameters
    ----------
    backend
        ``"nccl"`` or ``"gloo"``; by default NCCL when CUDA is available, else gloo.

    Examples
    --------
    >>> init_distributed()  # a plain Python process
    False
    """
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return dist.get_world_size() > 1
    if not launched_by_torchrun():
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return dist.get_world_size() > 1


def distributed_info() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)``; ``(0, 1, 0)`` outside a process group.

    Examples
    --------
    >>> distributed_info()
    (0, 1, 0)
    """
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return dist.get_rank(), dist.get_world_size(), local
    return 0, 1, 0


def is_main_process() -> bool:
    """``True`` on rank 0 (or without a process group): save models and print here only.

    Examples
    --------
    >>> is_main_process()
    True
    """
    return distributed_info()[0] == 0


def shard(n: int, rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(start, count)`` of this rank's contiguous share of ``n`` items (for generation).

    The first ``n % world_size`` ranks get one item more.

    Examples
    --------
    >>> shard(10, rank=1, world_size=3)
    (4, 3)
    """
    r, w, _ = distributed_info()
    rank = r if rank is None else int(rank)
    world_size = w if world_size is None else int(world_size)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size}).")
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}.")
    base, extra = divmod(int(n), world_size)
    start = rank * base + min(rank, extra)
    return start, base + (1 if rank < extra else 0)


def join(
    accelerator: str, device: int | str | None, distributed: bool | None
) -> tuple[torch.device, int, int, bool]:
    """This process's device, rank and world size, and whether it trains data-parallel.

    ``distributed=None`` joins when ``torchrun`` started more than one process;
    ``True`` requires that (else a ValueError); ``False`` never joins. A CUDA process
    takes the GPU of its local rank.

    Examples
    --------
    >>> join("cpu", None, False)
    (device(type='cpu'), 0, 1, False)
    """
    from ._device import resolve_device

    if distributed not in (None, True, False):
        raise TypeError(f"distributed must be True, False or None, got {distributed!r}.")
    kind = resolve_device(accelerator).type
    joined = distributed is not False and init_distributed("nccl" if kind == "cuda" else "gloo")
    if distributed and not joined:
        raise ValueError(
            "distributed=True, but this process was not launched by torchrun with more "
            "than one process (see the README for the torchrun command)."
        )
    rank, world_size, local_rank = distributed_info() if joined else (0, 1, 0)
    if joined and kind == "cuda":
        device = local_rank  # one GPU per process
    return resolve_device(accelerator, device), rank, world_size, joined
