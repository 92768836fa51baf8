"""The diffusion engine: tensors in, tensors out; no AnnData and no network code."""

from . import blackout, sparsity
from .guidance import classifier_free_guidance, label_dropout
from .loss import diffusion_loss
from .process import BlackoutDiffusion, DiffusionProcess, GaussianDiffusion
from .samplers import SAMPLERS, sample
from .schedule import CosineSchedule

__all__ = [
    "BlackoutDiffusion",
    "CosineSchedule",
    "DiffusionProcess",
    "GaussianDiffusion",
    "SAMPLERS",
    "blackout",
    "classifier_free_guidance",
    "diffusion_loss",
    "label_dropout",
    "sample",
    "sparsity",
]
