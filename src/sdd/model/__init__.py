"""Model classes users touch."""

from ..data.annotate import mark_source
from ._anndata import SDD
from ._base import DiffusionModel
from ._blackout import SDDBlackout
from ._cells import AnnDataModel
from ._image import GeneratedImages, SDDImage

__all__ = [
    "SDD",
    "SDDBlackout",
    "SDDImage",
    "GeneratedImages",
    "DiffusionModel",
    "AnnDataModel",
    "mark_source",
]
