"""Denoising networks: ``forward(x_t, t, self_cond, cond=None) -> x0_hat``."""

from .embeddings import LabelEmbedding, TimeEmbedding, sinusoidal_embedding
from .mlp import SkipMLP

__all__ = ["SkipMLP", "TimeEmbedding", "LabelEmbedding", "sinusoidal_embedding"]
