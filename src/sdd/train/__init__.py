"""Training: the optimisation loop, EMA of weights, device choice, data and multi-device."""

from ._batches import RowBatches
from ._device import resolve_device, resolve_devices, resolve_fast
from ._distributed import distributed_info, init_distributed, is_main_process, shard
from ._ema import EMA
from ._generate import autocast_denoise, sample_split
from ._loop import train_denoiser
from ._sparse import WeightMasks, count_flops

__all__ = [
    "EMA",
    "train_denoiser",
    "resolve_device",
    "resolve_devices",
    "resolve_fast",
    "RowBatches",
    "init_distributed",
    "distributed_info",
    "is_main_process",
    "shard",
    "sample_split",
    "autocast_denoise",
    "WeightMasks",
    "count_flops",
]
