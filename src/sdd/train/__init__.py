"""Training and generation for any model: one loop, one batched sampler, EMA, devices, DDP.

Generic over the diffusion process: :func:`train_denoiser` minimises ``process.loss`` and
:func:`sample_split` runs ``process.sample`` (see :mod:`sdd.diffusion.process`).
"""

from ._device import resolve_device, resolve_devices, resolve_fast
from ._distributed import distributed_info, init_distributed, is_main_process, shard
from ._distributed import join as join_distributed
from ._ema import EMA
from ._generate import (
    GraphedDenoise,
    autocast_denoise,
    check_output_memory,
    decode_bits,
    sample_split,
)
from ._loop import check_lr, train_denoiser
from ._lr import LR_SCHEDULES, lr_multiplier
from ._rollback import Snapshot, check_finite
from ._validation import (
    EarlyStopping,
    ProgressBar,
    check_validation_options,
    check_validation_size,
    default_validation_every,
    held_out_rows,
    split_rows,
    train_validated,
    validation_loss,
)

__all__ = [
    "EMA",
    "EarlyStopping",
    "ProgressBar",
    "GraphedDenoise",
    "Snapshot",
    "autocast_denoise",
    "check_finite",
    "check_output_memory",
    "check_validation_options",
    "check_validation_size",
    "decode_bits",
    "default_validation_every",
    "check_lr",
    "distributed_info",
    "held_out_rows",
    "init_distributed",
    "is_main_process",
    "join_distributed",
    "LR_SCHEDULES",
    "lr_multiplier",
    "resolve_device",
    "resolve_devices",
    "resolve_fast",
    "sample_split",
    "shard",
    "split_rows",
    "train_denoiser",
    "train_validated",
    "validation_loss",
]
