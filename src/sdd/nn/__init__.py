"""Denoising networks: ``forward(x_t, t, self_cond, cond=None) -> x0_hat``."""

from .embeddings import LabelEmbedding, TimeEmbedding
from .mlp import SkipMLP
from .unet import PAPER_UNET, UNet

__all__ = [
    "SkipMLP",
    "UNet",
    "PAPER_UNET",
    "TimeEmbedding",
    "LabelEmbedding",
]
