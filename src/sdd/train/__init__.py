"""Training and generation for any model: one loop, one batched sampler, EMA, devices, DDP.

Generic over the diffusion process: :func:`train_denoiser` minimises ``process.loss`` and
:func:`sample_split` runs ``process.sample`` (see :mod:`sdd.diffusion.process`).
"""

from ._distributed import init_distributed, is_main_process, shard
from ._ema import EMA
from ._generate import sample_split
from ._loop import train_denoiser
from ._lr import lr_multiplier
from ._validation import validation_loss

__all__ = [
    "EMA",
    "init_distributed",
    "is_main_process",
    "lr_multiplier",
    "sample_split",
    "shard",
    "train_denoiser",
    "validation_loss",
]
