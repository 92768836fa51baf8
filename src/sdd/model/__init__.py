"""Model classes users touch."""

from ._anndata import SDD
from ._blackout import SDDBlackout
from ._image import GeneratedImages, SDDImage

__all__ = ["SDD", "SDDBlackout", "SDDImage", "GeneratedImages"]
