"""Sparse Data Diffusion: diffusion models that generate exact zeros."""

__version__ = "0.1.0"

from . import diffusion, nn, tl  # noqa: E402
from .model import SDD  # noqa: E402

__all__ = ["SDD", "diffusion", "nn", "tl", "__version__"]
