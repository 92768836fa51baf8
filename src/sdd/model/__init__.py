"""Model classes users touch."""

from ..data.annotate import mark_source
from ..data.generated import GeneratedImages
from ._anndata import SDD
from ._blackout import SDDBlackout
from ._calibration import Calibration, DetectionTargets
from ._depth import DepthCondition
from ._image import SDDImage

__all__ = [
    "SDD",
    "SDDBlackout",
    "SDDImage",
    "GeneratedImages",
    "Calibration",
    "DetectionTargets",
    "DepthCondition",
    "mark_source",
]
