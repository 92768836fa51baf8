"""scanpy-style functions: ``fit``, ``generate``, ``evaluate``."""

from ._evaluate import evaluate, paired_matrices
from ._fit import FittedModels, fit, fitted, generate

__all__ = ["FittedModels", "evaluate", "fit", "fitted", "generate", "paired_matrices"]
