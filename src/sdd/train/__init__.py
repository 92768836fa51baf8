"""Training: the optimisation loop, EMA of weights, device choice, data and multi-device."""

from ..data import RowBatches  # noqa: F401  (kept for sdd.train.RowBatches)
from ..sparse import WeightMasks, count_flops  # noqa: F401
from ._device import resolve_device, resolve_devices, resolve_fast
from ._distributed import distributed_info, init_distributed, is_main_process, shard
from ._ema import EMA
from ._generate import autocast_denoise, sample_split
from ._loop import train_denoiser

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
