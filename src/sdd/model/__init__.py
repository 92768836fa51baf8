"""Model classes users touch."""

from ..data.generated import GeneratedImages
from ._anndata import SDD
from ._blackout import SDDBlackout
from ._calibration import Calibration, DetectionTargets
from ._depth import CellDraw, DepthCondition
from ._image import SDDImage

__all__ = [
    "SDD",
    "SDDBlackout",
    "SDDImage",
    "GeneratedImages",
    "Calibration",
    "DetectionTargets",
    "DepthCondition",
    "CellDraw",
]
