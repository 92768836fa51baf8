"""scanpy-style functions: ``fit``, ``generate``, ``evaluate``."""

from ._evaluate import evaluate
from ._fit import fit, generate

__all__ = ["evaluate", "fit", "generate"]
