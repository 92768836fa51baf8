"""scanpy-style functions: ``fit``, ``generate``, ``evaluate``, ``joint_embedding``."""

from ._embedding import joint_embedding
from ._evaluate import evaluate, paired_matrices
from ._fit import FittedModels, fit, fitted, generate

__all__ = [
    "FittedModels",
    "evaluate",
    "fit",
    "fitted",
    "generate",
    "joint_embedding",
    "paired_matrices",
]
