"""Plots in scanpy's conventions.

Every function takes ``ax=`` (draw into given Axes), ``show=None`` (shown when it draws a
new figure that it neither returns nor saves; then it returns ``None``), ``save=`` (a file
path, written atomically), ``return_fig=`` (return the Figure) and keyword arguments
passed to the scanpy / matplotlib call underneath.

Single-cell data: :func:`umap` (a stored joint embedding of real and generated cells, from
:func:`sdd.tl.joint_embedding`),
:func:`sparsity` (per-cell sparsity histograms), :func:`sparsity_bits` (sparsity-bit
values before thresholding), :func:`gene_means` (per-gene mean scatter with SCC/PCC),
:func:`qc_violin` (per-cell QC violins, real next to generated, per cell type).

Images: :func:`images` (grid), :func:`mean_image` (pixel-wise mean, the paper's Fig. 7),
:func:`image_sparsity` (per-image sparsity histograms).
"""

from ._embedding import category_palette, umap
from ._expression import gene_means
from ._images import image_sparsity, images, mean_image
from ._qc import qc_violin
from ._sparsity import sparsity, sparsity_bits
from ._summary import evaluation

__all__ = [
    "category_palette",
    "evaluation",
    "gene_means",
    "image_sparsity",
    "images",
    "mean_image",
    "qc_violin",
    "sparsity",
    "sparsity_bits",
    "umap",
]
