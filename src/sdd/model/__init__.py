"""Model classes users touch."""

from ._anndata import SDD

__all__ = ["SDD"]
