"""Sparse-to-sparse training: weight masks (Static, RigL, MagRan) for any model's network."""

from .masks import WeightMasks

__all__ = [
    "WeightMasks",
]
