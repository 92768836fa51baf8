"""The diffusion engine: tensors in, tensors out; no AnnData and no network code."""

from . import blackout, sparsity
from .loss import diffusion_loss
from .samplers import SAMPLERS, sample
from .schedule import CosineSchedule

__all__ = ["CosineSchedule", "diffusion_loss", "sample", "SAMPLERS", "sparsity", "blackout"]
