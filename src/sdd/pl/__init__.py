"""Plots returning matplotlib Axes (scanpy conventions: ``ax=``, ``show=``).

Single-cell data: :func:`umap` (joint embedding of real and generated cells),
:func:`sparsity` (per-cell sparsity histograms), :func:`sparsity_bits` (sparsity-bit
values before thresholding), :func:`gene_means` (per-gene mean scatter with SCC/PCC).

Images: :func:`images` (grid), :func:`mean_image` (pixel-wise mean, the paper's Fig. 7),
:func:`image_sparsity` (per-image sparsity histograms).
"""

from ._embedding import umap
from ._expression import gene_means
from ._images import image_sparsity, images, mean_image
from ._sparsity import sparsity, sparsity_bits
from ._summary import evaluation

__all__ = [
    "evaluation",
    "gene_means",
    "image_sparsity",
    "images",
    "mean_image",
    "sparsity",
    "sparsity_bits",
    "umap",
]
