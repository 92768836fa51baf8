"""Readers for image data: idx(.gz) files (MNIST, Fashion-MNIST) and calorimeter images.

The readers only read local files; nothing is downloaded.
"""

from ._calorimeter import CalorimeterImages, read_calorimeter
from ._idx import read_idx, read_mnist

__all__ = ["read_idx", "read_mnist", "read_calorimeter", "CalorimeterImages"]
