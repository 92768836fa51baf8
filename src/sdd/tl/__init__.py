"""scanpy-style functions: ``fit``, ``generate``, ``evaluate``."""

from ._fit import fit, generate

__all__ = ["fit", "generate"]
