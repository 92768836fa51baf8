"""Sparse Data Diffusion: diffusion models that generate exact zeros.

Subpackages and the model classes are imported on first use (PEP 562), so that
``import sdd`` and ``sdd --help`` do not wait for torch, scanpy or scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._execution import Execution
from ._settings import settings
from ._version import __version__

if TYPE_CHECKING:
    from . import datasets, diffusion, metrics, nn, pl, tl
    from .model import SDD, SDDBlackout, SDDImage

__all__ = [
    "Execution",
    "SDD",
    "SDDBlackout",
    "SDDImage",
    "datasets",
    "diffusion",
    "metrics",
    "nn",
    "pl",
    "settings",
    "tl",
    "__version__",
]

_SUBPACKAGES = frozenset({"datasets", "diffusion", "metrics", "nn", "pl", "tl"})
_MODEL_CLASSES = frozenset({"SDD", "SDDBlackout", "SDDImage"})


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    if name in _MODEL_CLASSES:
        return getattr(importlib.import_module(".model", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
