"""Model classes users touch."""

from ..data.annotate import mark_source
from ..data.generated import GeneratedImages
from ._anndata import SDD
from ._base import DiffusionModel
from ._blackout import SDDBlackout
from ._calibration import Calibration, DetectionTargets
from ._cells import AnnDataModel
from ._depth import CellDraw, DepthCondition
from ._image import SDDImage

__all__ = [
    "SDD",
    "SDDBlackout",
    "SDDImage",
    "GeneratedImages",
    "DiffusionModel",
    "AnnDataModel",
    "mark_source",
    "Calibration",
    "DetectionTargets",
    "DepthCondition",
    "CellDraw",
]
