"""Metrics on arrays (dense or scipy sparse), independent of AnnData.

Single-cell fidelity, as in the SDD paper and scDiffusion: :func:`scc` / :func:`pcc` of
per-gene means, :func:`mmd` and :func:`lisi` on a :func:`joint_pca`, the zero pattern
(:func:`zero_fraction`, :func:`sparsity_metrics`) and a real-vs-generated
:func:`classifier_auc`; per-gene :func:`zero_fraction_mae`, :func:`gene_corr_similarity`,
:func:`mean_var_similarity`, per-cell QC (:func:`cell_qc`, :func:`cell_metrics`), per-group :func:`group_distances` (MMD, exact
:func:`wasserstein` W1/W2) and DE recovery (:func:`log_fold_change`, :func:`de_genes`,
:func:`de_recovery`). :func:`sdd.tl.evaluate` runs them all on two AnnData objects.

Images and calorimeter images: :func:`pixel_sparsity` / :func:`logit_sparsity` (the
paper's P-/L-sparsity), :func:`per_image_sparsity`, :func:`sparsity_histogram`,
:func:`frechet_distance`; :func:`image_pt`, :func:`image_mass` and
:func:`calorimeter_w1` (W1 of their distributions, per class).
"""

from ._calorimeter import calorimeter_w1, image_four_momentum, image_mass, image_pt, wasserstein_1d
from ._cells import QC_COLUMNS, cell_metrics, cell_qc
from ._classifier import classifier_auc
from ._de import de_genes, de_recovery, log_fold_change
from ._embedding import joint_pca
from ._expression import gene_means, pcc, scc
from ._images import (
    frechet_distance,
    logit_sparsity,
    per_image_sparsity,
    pixel_sparsity,
    sparsity_histogram,
)
from ._lisi import lisi
from ._mmd import mmd
from ._sparsity import cell_sparsity, gene_sparsity, sparsity_metrics, zero_fraction
from ._structure import gene_corr_similarity, mean_var_similarity, zero_fraction_mae
from ._wasserstein import group_distances, wasserstein

__all__ = [
    "QC_COLUMNS",
    "cell_metrics",
    "cell_qc",
    "calorimeter_w1",
    "cell_sparsity",
    "classifier_auc",
    "de_genes",
    "de_recovery",
    "frechet_distance",
    "gene_corr_similarity",
    "gene_means",
    "gene_sparsity",
    "group_distances",
    "image_four_momentum",
    "image_mass",
    "image_pt",
    "joint_pca",
    "lisi",
    "log_fold_change",
    "logit_sparsity",
    "mean_var_similarity",
    "mmd",
    "pcc",
    "per_image_sparsity",
    "pixel_sparsity",
    "scc",
    "sparsity_histogram",
    "sparsity_metrics",
    "wasserstein",
    "wasserstein_1d",
    "zero_fraction",
    "zero_fraction_mae",
]
