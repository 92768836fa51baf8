"""The diffusion engine: tensors in, tensors out; no AnnData and no network code."""

from .loss import diffusion_loss
from .process import BlackoutDiffusion, DiffusionProcess, GaussianDiffusion
from .samplers import sample
from .schedule import CosineSchedule

__all__ = [
    "BlackoutDiffusion",
    "CosineSchedule",
    "DiffusionProcess",
    "GaussianDiffusion",
    "diffusion_loss",
    "sample",
]
