"""Sparse-to-sparse training: weight masks (Static, RigL, MagRan) for any model's network."""

from .masks import WeightMasks, count_flops, make_masks, prunable_weights, weight_report

__all__ = ["WeightMasks", "count_flops", "make_masks", "prunable_weights", "weight_report"]
