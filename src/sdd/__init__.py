"""Sparse Data Diffusion: diffusion models that generate exact zeros."""

from . import datasets, diffusion, nn, tl  # noqa: E402
from ._settings import settings
from ._version import __version__
from .model import SDD, SDDBlackout, SDDImage  # noqa: E402

__all__ = [
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


def __getattr__(name: str):
    # `metrics` and `pl` load scipy.stats / scikit-learn / matplotlib: import on first use
    if name in ("metrics", "pl"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
