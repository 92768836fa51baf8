"""`SDD`: Sparse Data Diffusion for cells x genes data in AnnData."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData

from ..data import (
    Scaler,
    check_matrix,
    dense_rows,
    get_matrix,
    infer_target_sum,
    invert_log1p,
    largest_remainder,
    library_sizes,
    matrix_name,
    obs_categories,
    obs_codes,
    size_factors_from_counts,
)
from ..diffusion import GaussianDiffusion, sparsity
from ..nn import SkipMLP
from ._base import gaussian_process
from ._cells import AnnDataModel

__all__ = ["SDD"]

SETUP_KEY = "sdd_setup"
TRAINING = "training"
"""``generate(labels=TRAINING)``: the training data's label composition."""
DEFAULT_N_CELLS = 10_000
SETUP_CHECK_ROWS = 2048  # cells checked by setup_anndata (the model checks all)


def _density(matrix: Any) -> float | None:
    """Fraction of non-zero entries of a sparse matrix (``None`` for dense or backed data)."""
    if sp.issparse(matrix):
        return float(matrix.nnz) / max(1, matrix.shape[0] * matrix.shape[1])
    return None


def _warn_all_zero(gene_max: np.ndarray, var_names: Sequence[str]) -> None:
    empty = np.flatnonzero(np.asarray(gene_max) <= 0)
    if empty.size == len(gene_max):
        warnings.warn("The training matrix is all zeros: the model can only generate zeros.", stacklevel=3)
    elif empty.size:
        names = [var_names[i] for i in empty[:5]]
        warnings.warn(
            f"{empty.size} gene(s) are zero in every training cell (e.g. {names}); they are "
            "generated as exact zeros.",
            stacklevel=3,
        )


def _is_training(labels: Any) -> bool:
    return isinstance(labels, str) and labels == TRAINING


class SDD(AnnDataModel):
    """Sparse Data Diffusion model for single-cell expression (Ostheimer et al., 2025, arXiv:2502.02448).

    Each cell ``x`` (genes, non-negative) is scaled per gene to [-1, 1] and concatenated
    with its sparsity bits ``sb = 1[x != 0]`` as analog bits in {-1, +1}. A
    continuous-time Gaussian diffusion with a cosine log-SNR schedule is trained on
    ``[x, sb]`` with x0-prediction, L2 loss and self-conditioning, using the scDiffusion
    MLP with skip connections. Sampling thresholds the SB half at 0 and outputs
    ``x_hat * sb``, so generated zeros are exact.

    Data scaling: for gene ``g`` with largest training value ``m_g``, values map to
    ``2 x / m_g - 1``; generated values are clipped to [-1, 1] and mapped back, so they
    lie in ``[0, m_g]`` in the units the model was trained on (usually log1p-normalised
    expression).

    Beyond the paper: conditional generation with classifier-free guidance
    (``labels_key`` in :meth:`setup_anndata`, ``labels`` and ``guidance_scale`` in
    :meth:`generate`), raw integer counts (``generate(counts=True)``) and imputation of
    missing genes (:meth:`impute`).

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata` (registered with defaults if not).
    sparsity_bits
        Model the zero pattern with sparsity bits. ``False`` gives the plain diffusion
        baseline of the paper's ablation (same network, no SB half).
    hidden
        Encoder widths of the MLP (decoder mirrors them).
    emb_dim
        Time/label embedding size.
    dropout
        Dropout in the MLP blocks.
    self_condition
        Train and sample with self-conditioning.
    condition_dropout
        Probability of dropping the label condition during training (classifier-free
        guidance); only used with ``labels_key``.
    logsnr_min, logsnr_max
        Range of the cosine log-SNR schedule.
    zero_fill
        Value-half encoding of a zero entry (with sparsity bits): ``"min"`` (-1, the
        paper's scaling) or ``"nonzero_mean"`` (the gene's mean non-zero value, so the
        value half learns "how much if expressed" and the bits alone decide the zeros;
        an entry whose bit is on decodes to at least the gene's smallest non-zero value).
    weight_sparsity
        Fraction of zero weights in the MLP (0 = dense), trained sparse from the first
        step (sparse-to-sparse training); see :class:`~sdd.train.WeightMasks`.
    sparse_method, sparse_update_interval, sparse_drop_fraction, dense_layers, sparse_distribution
        ``"static"``, ``"rigl"`` or ``"magran"``; steps between mask updates; initial
        drop fraction (cosine decay); layers kept dense; ``"uniform"`` or ``"erk"``.

    Examples
    --------
    >>> import scanpy as sc, sdd
    >>> adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> sdd.SDD.setup_anndata(adata)
    >>> model = sdd.SDD(adata, hidden=(256, 128))
    >>> model.train(max_steps=200)  # doctest: +SKIP
    >>> gen = model.generate(500, sampler="ddim", n_steps=50)  # doctest: +SKIP
    """

    _model_class = "SDD"
    _setup_key = SETUP_KEY

    def __init__(
        self,
        adata: AnnData,
        *,
        sparsity_bits: bool = True,
        hidden: Sequence[int] = (1024, 512, 256),
        emb_dim: int = 128,
        dropout: float = 0.0,
        self_condition: bool = True,
        condition_dropout: float = 0.1,
        logsnr_min: float = -15.0,
        logsnr_max: float = 15.0,
        zero_fill: Literal["min", "nonzero_mean"] = "min",
        weight_sparsity: float = 0.0,
        **sparse: Any,
    ) -> None:
        self._capture_init_args(locals())
        self._use_anndata(adata, self.setup_anndata)
        if zero_fill != "min" and not sparsity_bits:
            raise ValueError(
                f"zero_fill={zero_fill!r} needs sparsity_bits=True: without the bits the "
                "value half alone encodes the zeros."
            )
        self.scaler_ = Scaler.fit(self._matrix, zero_fill=zero_fill)
        self.density_ = _density(self._matrix)
        _warn_all_zero(self.scaler_.gene_max, self.var_names_)
        self._finish_init()
        # training label composition and size factors (see generate(labels="training",
        # counts=True)); fitted here from adata, restored by load
        self.composition_: dict[str, np.ndarray] | None = None
        self.library_: dict[str, np.ndarray | None] | None = None
        self._fit_training_stats(adata)

    def _build_network(self) -> SkipMLP:
        a = self.init_args_
        return SkipMLP(
            self.data_dim, hidden=a["hidden"], emb_dim=a["emb_dim"], dropout=a["dropout"],
            n_categories=[len(c) for c in self.categories_.values()],
        )  # fmt: skip

    def _make_process(self) -> GaussianDiffusion:
        return gaussian_process(self.init_args_)

    def _encode(self, x, nonzero):
        if not self.init_args_["sparsity_bits"]:
            return x
        return sparsity.encode(self.scaler_.fill_zeros(x, nonzero), nonzero)

    def _sample_shape(self) -> tuple[int, ...]:
        return (self.data_dim,)

    def _example_inputs(self):
        x = torch.zeros(1, self.data_dim)
        return (x, torch.zeros(1), x)

    def _check_data(self, matrix, *, where: str) -> None:
        check_matrix(matrix, where=where)

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = None,
        labels_key: str | None = None,
        categorical_covariate_keys: Sequence[str] | None = None,
        *,
        counts_layer: str | None = None,
        library_size_key: str | None = None,
        target_sum: float | None = None,
    ) -> None:
        """Register which data and annotations the model uses.

        Checks the data (numeric, finite, non-negative, not empty) and stores the
        choices in ``adata.uns["sdd_setup"]``.

        To generate raw integer counts (``generate(counts=True)``) the model needs the
        training cells' library sizes, from one of two sources:

        - ``counts_layer``: a layer of raw integer counts of the same cells and genes.
          The training values must be ``x = log1p(counts / s)`` with one factor ``s`` per
          cell, as ``sc.pp.normalize_total`` (``s = library size / target_sum``) followed
          by ``sc.pp.log1p`` give; ``s = counts / expm1(x)`` is read off every cell. This
          also works when genes were subset after normalising (highly variable genes).
        - ``library_size_key``: an ``obs`` column with the library sizes
          ``normalize_total`` used, with ``target_sum`` (inferred when ``None`` as the
          per-cell sum of ``expm1(x)``, which must then be the same for all cells, i.e.
          all normalised genes are present).

        Data that are not log1p-normalised counts in this sense raise a ValueError (checked
        here on the first 2,048 cells, and on all cells when the model is created).

        Parameters
        ----------
        adata
            Cells x genes. Values are usually log1p-normalised expression; the model
            learns whatever non-negative values it is given.
        layer
            Layer to use instead of ``adata.X``.
        labels_key
            Column of ``adata.obs`` with cell labels to condition on (optional).
        categorical_covariate_keys
            Further categorical ``obs`` columns to condition on.
        counts_layer
            Layer of raw integer counts, for counts output (see above).
        library_size_key
            ``obs`` column of library sizes, for counts output (see above).
        target_sum
            ``target_sum`` given to ``sc.pp.normalize_total``; only with
            ``library_size_key``.
        """
        matrix = get_matrix(adata, layer)
        check_matrix(matrix, where=matrix_name(layer))
        keys = [k for k in [labels_key, *(categorical_covariate_keys or [])] if k is not None]
        if len(set(keys)) != len(keys):
            raise ValueError(f"Conditioning keys must be distinct, got {keys}.")
        categories = {key: obs_categories(adata, key) for key in keys}
        if counts_layer is not None and library_size_key is not None:
            raise ValueError("Pass counts_layer or library_size_key, not both.")
        if target_sum is not None:
            if library_size_key is None:
                raise ValueError("target_sum is only used together with library_size_key.")
            if isinstance(target_sum, bool) or not np.isfinite(target_sum) or target_sum <= 0:
                raise ValueError(f"target_sum must be a positive number, got {target_sum!r}.")
            target_sum = float(target_sum)
        if counts_layer is not None:
            if counts_layer == layer:
                raise ValueError(
                    f"counts_layer={counts_layer!r} is the layer the model learns; the model "
                    "learns log1p-normalised values (layer=) and reads raw counts from "
                    "counts_layer."
                )
            counts = get_matrix(adata, counts_layer)
            check_matrix(counts, where=f"adata.layers[{counts_layer!r}]")
            names = [str(v) for v in adata.obs_names]
            size_factors_from_counts(matrix, counts, names, n_rows=SETUP_CHECK_ROWS)
        if library_size_key is not None:
            library_sizes(adata, library_size_key)
            if target_sum is None:
                target_sum = infer_target_sum(matrix)
        adata.uns[SETUP_KEY] = {
            "layer": layer,
            "labels_key": labels_key,
            "categorical_covariate_keys": list(categorical_covariate_keys or []),
            "categories": categories,
            "counts_layer": counts_layer,
            "library_size_key": library_size_key,
            "target_sum": target_sum,
        }

    @property
    def data_dim(self) -> int:
        """Length of the vector the diffusion runs on (2 x genes with sparsity bits)."""
        return self.n_genes * (2 if self.init_args_["sparsity_bits"] else 1)

    def _fit_training_stats(self, adata: AnnData) -> None:
        """Label composition and per-cell size factors of the training data."""
        codes = obs_codes(adata, self.categories_)
        if codes is not None:
            unique, counts = np.unique(codes, axis=0, return_counts=True)
            self.composition_ = {"codes": unique.astype(np.int64), "counts": counts}
        s = self.setup_args_
        if s.get("counts_layer"):
            names = [str(v) for v in adata.obs_names]
            counts_matrix = get_matrix(adata, s["counts_layer"])
            factors = size_factors_from_counts(self._matrix, counts_matrix, names)
        elif s.get("library_size_key"):
            factors = library_sizes(adata, s["library_size_key"]) / float(s["target_sum"])
        else:
            return
        ok = np.isfinite(factors) & (factors > 0)
        if not ok.any():
            raise ValueError("No training cell has counts; cannot learn library sizes.")
        self.library_ = {
            "size_factors": factors[ok].astype(np.float64),
            "codes": None if codes is None else codes[ok],
        }

    @staticmethod
    def _check_n_cells(n_cells: Any) -> int:
        if isinstance(n_cells, bool) or not isinstance(n_cells, int | np.integer) or n_cells <= 0:
            raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}.")
        return int(n_cells)

    def _resolve_n_cells(self, n_cells: int | None, labels: Any) -> int:
        """``n_cells``, or the length of per-cell labels, or the default."""
        if n_cells is None:
            values = labels.values() if isinstance(labels, Mapping) else [labels]
            lengths = {len(v) for v in values if v is not None and np.ndim(v) > 0}
            if len(lengths) > 1:
                raise ValueError(f"Per-cell label arrays differ in length: {sorted(lengths)}.")
            n_cells = lengths.pop() if lengths else DEFAULT_N_CELLS
        return self._check_n_cells(n_cells)

    def _training_labels(self, n_cells: int | None) -> dict[str, np.ndarray]:
        """Per-cell labels in the training data's composition, grouped by label."""
        if self.composition_ is None:
            raise ValueError(
                f"labels={TRAINING!r} needs a model set up with labels_key or "
                "categorical_covariate_keys."
            )
        key = self._default_key()
        if TRAINING in self.categories_[key]:
            raise ValueError(
                f"labels={TRAINING!r} is ambiguous: {key!r} has a label named {TRAINING!r}. "
                f"Pass labels={{{key!r}: {TRAINING!r}}} to generate cells of that label."
            )
        counts = self.composition_["counts"]
        if n_cells is not None:
            counts = largest_remainder(counts.astype(np.float64), self._check_n_cells(n_cells))
        codes = np.repeat(self.composition_["codes"], counts, axis=0)
        return {
            key: np.asarray(cats, dtype=object)[codes[:, k]]
            for k, (key, cats) in enumerate(self.categories_.items())
        }

    def _sample_size_factors(
        self, codes: np.ndarray | None, n_cells: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Size factors drawn (with replacement) from training cells with the same conditions."""
        factors, pool_codes = self.library_["size_factors"], self.library_["codes"]
        if codes is None or pool_codes is None:
            return rng.choice(factors, size=n_cells)
        null = np.asarray([len(c) for c in self.categories_.values()])
        out = np.empty(n_cells)
        unique, inverse = np.unique(codes, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).ravel()
        for j, row in enumerate(unique):
            given = row != null
            pool = np.all(pool_codes[:, given] == row[given], axis=1)
            if not pool.any():
                asked = {
                    key: cats[c]
                    for (key, cats), c, g in zip(self.categories_.items(), row, given, strict=True)
                    if g
                }
                warnings.warn(
                    f"No training cell has the conditions {asked}; their library sizes are "
                    "drawn from all training cells.",
                    stacklevel=3,
                )
                pool[:] = True
            cells = inverse == j
            out[cells] = rng.choice(factors[pool], size=int(cells.sum()))
        return out

    def generate(
        self,
        n_cells: int | None = None,
        *,
        sampler: Literal["ddpm", "ddim"] = "ddpm",
        n_steps: int = 250,
        batch_size: int = 2048,
        labels: Mapping[str, Any] | Any = None,
        guidance_scale: float = 0.0,
        counts: bool = False,
        random_state: int = 0,
        use_ema: bool = True,
        store_dense: bool = False,
        accelerator: str = "auto",
        device: int | str | None = None,
        fast: bool | None = None,
        progress: bool = True,
    ) -> AnnData:
        """Generate cells.

        The default sampler is DDPM with 250 steps: in the README's sparsity benchmark it
        stayed within 1.4 points of the real sparsity on three data sets, closer than the
        paper's 1000 steps after short training; few-step DDIM is much faster but
        overshoots the sparsity. Pass ``n_steps=1000`` for the paper's setting.

        Parameters
        ----------
        n_cells
            Number of cells. ``None``: the length of per-cell ``labels``, the training
            composition with ``labels="training"``, otherwise 10,000.
        sampler
            ``"ddpm"`` (ancestral) or ``"ddim"`` (deterministic).
        n_steps
            Reverse steps.
        batch_size
            Cells sampled at once.
        labels
            Condition on labels: a value or per-cell array for ``labels_key``, or a dict
            ``{obs key: value or array}`` (conditions left out are unconditional).
            ``"training"``: as many cells per label (per combination of all conditions)
            as the training data had, grouped by label; with ``n_cells``, that many cells
            in the same proportions (largest-remainder rounding). Unconditional when
            ``None``.
        guidance_scale
            Classifier-free guidance weight ``w``: ``x0 = (1 + w) x0_cond - w x0_uncond``
            (the network runs twice per step); ``0`` is plain conditional sampling, and
            ``w`` has no effect without ``labels``.
        counts
            Also return raw integer counts in ``layers["counts"]`` (the model must be set
            up with ``counts_layer`` or ``library_size_key``; see
            :meth:`setup_anndata`). Each cell gets a size factor ``s = library size /
            target_sum`` drawn with replacement from the training cells with the same
            requested labels (all training cells when unconditional), and
            ``counts = max(1, round(expm1(x) * s))`` where ``X`` is non-zero, 0 elsewhere.
            So counts are zero exactly where ``X`` (and ``layers["sparsity_bits"]``) is
            zero; the ``max(1, .)`` keeps rounding from adding zeros. Modelled: the
            expression profile, its zero pattern, and the per-label library-size
            distribution. Not modelled: the dependence of library size on the profile
            within a label (drawn independently), and count noise (Poisson or negative
            binomial sampling) on top of the rounded expected counts; counts over the
            modelled genes do not sum to the library size when genes were subset after
            normalising.
        random_state
            Seed: the same seed, model and settings give identical cells (values, zero
            pattern, labels) on the CPU; ``obs_names`` differ per call (``gen-<run>-<i>``)
            so that runs concatenate without clashes.
        use_ema
            Sample with the EMA weights (recommended).
        store_dense
            Also store ``layers["dense"]`` and ``layers["sb_logits"]`` (dense arrays: 1.1 GB
            for 10,000 cells x 14,000 genes, so off by default).
        fast
            Run the network in bf16 (autocast): ``None`` on CUDA only (``SDD_FAST=0``
            turns it off), ``True`` also on the CPU (about 1.8x faster there; see the
            README's speed table), ``False`` float32.
        progress
            Show a progress bar.

        Returns
        -------
        AnnData with ``X`` (CSR float32, exact zeros), ``layers["sparsity_bits"]``
        (1 where the cell expresses the gene: equals ``X != 0``), ``layers["dense"]``
        (values before masking), ``layers["sb_logits"]`` (analog SB values in [-1, 1]
        before thresholding at 0; only with sparsity bits), ``obs["source"]``
        (categorical, ``"generated"``), requested labels in ``obs``, the training ``var``
        columns, ``uns["log1p"]`` when the training data had it, and the settings in
        ``uns["sdd"]``. With ``counts``:
        ``layers["counts"]`` (CSR float32 holding integers, non-zero exactly where ``X``
        is), ``obs["size_factor"]`` (the drawn ``s``) and ``obs["total_counts"]``.
        """
        self._require_trained()
        if _is_training(labels):
            labels, n_cells = self._training_labels(n_cells), None
        n_cells = self._resolve_n_cells(n_cells, labels)
        if counts and self.library_ is None:
            raise ValueError(
                "counts=True needs the training library sizes: set the model up with "
                "SDD.setup_anndata(adata, counts_layer=...) or library_size_key=... "
                "(on log1p-normalised data)."
            )
        sb = self.init_args_["sparsity_bits"]
        density = self.density_ if self.density_ is not None else 1.0
        dense_bytes = 4 * self.n_genes * ((2 if sb else 1) if store_dense else 0)
        self._check_output_size(n_cells, dense_bytes + 24 * self.n_genes * density, "cells")
        codes, label_values = self._label_codes(labels, n_cells)
        parts: dict[str, list] = {"X": [], "dense": [], "sb_logits": []}
        batches = self._sample_batches(
            n_cells, codes=codes, batch_size=batch_size, guidance_scale=guidance_scale,
            random_state=random_state, use_ema=use_ema, accelerator=accelerator, device=device,
            fast=fast, progress=progress, sampler=sampler, n_steps=n_steps,
        )  # fmt: skip
        for _, _, z in batches:
            if sb:
                masked, dense, bits = sparsity.decode(z, zero_value=-1.0)
                values = self.scaler_.inverse(masked, bits)
            else:
                dense = z
                values = self.scaler_.inverse(z)
            parts["X"].append(sp.csr_matrix(values.cpu().numpy()))
            if store_dense:
                parts["dense"].append(self.scaler_.inverse(dense).cpu().numpy())
                if sb:
                    parts["sb_logits"].append(sparsity.split(z)[1].cpu().numpy())
        X = sp.vstack(parts["X"], format="csr")
        layers: dict[str, Any] = {}
        if store_dense:
            layers["dense"] = np.concatenate(parts["dense"]).astype(np.float32)
            if sb:
                layers["sb_logits"] = np.concatenate(parts["sb_logits"]).astype(np.float32)
        out = self._cells(
            X, layers=layers, labels=label_values,
            uns=self._provenance(
                sparsity_bits=sb, sampler=sampler, n_steps=n_steps, random_state=random_state,
                guidance_scale=guidance_scale, use_ema=use_ema,
                layer=self.setup_args_["layer"] or "X", counts=counts,
            ),
        )  # fmt: skip
        if counts:
            factors = self._sample_size_factors(codes, n_cells, np.random.default_rng(random_state))
            out.layers["counts"] = invert_log1p(out.X, factors)
            out.obs["size_factor"] = factors
            out.obs["total_counts"] = np.asarray(out.layers["counts"].sum(axis=1)).ravel()
        return out

    # ----------------------------------------------------------------- impute
    def _missing_genes(
        self, adata: AnnData, mask: Any
    ) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix | None]:
        """Model column of each adata gene, genes missing for all cells, per-entry mask."""
        genes = [str(v) for v in adata.var_names]
        if len(set(genes)) != len(genes):
            raise ValueError("adata.var_names has duplicates; call .var_names_make_unique().")
        position = {g: i for i, g in enumerate(self.var_names_)}
        unknown = [g for g in genes if g not in position]
        if unknown:
            raise ValueError(
                f"adata has {len(unknown)} gene(s) the model was not trained on (e.g. "
                f"{unknown[:5]}); subset adata to the model's genes (model.var_names_)."
            )
        columns = np.asarray([position[g] for g in genes], dtype=np.int64)
        missing = np.ones(self.n_genes, dtype=bool)  # genes absent from adata
        missing[columns] = False
        entries = None
        if mask is None:
            pass
        elif isinstance(mask, str):
            raise TypeError("mask must be a list of gene names or a boolean array, not a string.")
        elif sp.issparse(mask) or (isinstance(mask, np.ndarray) and mask.dtype.kind == "b"):
            if mask.shape != adata.shape:
                raise ValueError(
                    f"mask has shape {tuple(mask.shape)}; expected adata's shape {adata.shape} "
                    "(cells x genes, True = missing)."
                )
            if mask.dtype.kind != "b":
                raise TypeError(f"mask must be boolean, got dtype {mask.dtype}.")
            entries = sp.csr_matrix(mask)
        elif isinstance(mask, np.ndarray) and mask.dtype.kind not in "UO":
            raise TypeError(
                f"mask must be boolean (True = missing), got dtype {mask.dtype}; "
                "use mask.astype(bool)."
            )
        elif isinstance(mask, Sequence | np.ndarray | pd.Index | pd.Series):
            names = [str(g) for g in mask]
            bad = [g for g in names if g not in position]
            if bad:
                raise ValueError(f"mask names gene(s) the model does not know: {bad[:5]}.")
            missing[[position[g] for g in names]] = True
        else:
            raise TypeError(
                "mask must be a list of gene names or a boolean (cells x genes) array, "
                f"got {type(mask).__name__}."
            )
        if not missing.any() and (entries is None or entries.nnz == 0):
            raise ValueError(
                "mask marks no entry as missing and adata has all genes: nothing to impute."
            )
        return columns, missing, entries

    def impute(
        self,
        adata: AnnData,
        mask: Sequence[str] | np.ndarray | sp.spmatrix | None = None,
        *,
        labels: Mapping[str, Any] | Any = None,
        guidance_scale: float = 0.0,
        sampler: Literal["ddpm", "ddim"] | None = None,
        n_steps: int | None = None,
        batch_size: int = 2048,
        random_state: int = 0,
        use_ema: bool = True,
        accelerator: str = "auto",
        device: int | str | None = None,
        fast: bool | None = None,
        progress: bool = True,
    ) -> AnnData:
        """Fill in missing genes (inpainting), conditioned on the observed genes.

        Runs the same reverse process as :meth:`generate`; after every step the
        observed coordinates, value half and sparsity-bit half alike, are replaced by
        the observed values noised to the current time (RePaint-style replacement
        without resampling), so the missing genes are generated consistently with the
        observed ones and the final output keeps the observed values.

        Parameters
        ----------
        adata
            Cells x genes in the units the model was trained on (its ``layer``). Its
            genes must be model genes (any order); model genes absent from ``adata`` are
            missing for every cell, e.g. genes dropped from a panel.
        mask
            Entries to treat as missing (``True`` = missing): a boolean array or sparse
            matrix of ``adata``'s shape, or a list of gene names missing for every cell.
            ``None``: only the absent genes.
        labels
            Condition on labels as in :meth:`generate` (e.g. ``adata.obs["cell_type"]``);
            per-cell arrays have one entry per cell of ``adata``.
        guidance_scale
            Classifier-free guidance weight, as in :meth:`generate`.
        sampler, n_steps
            Sampler and reverse steps; ``None``: the defaults of :meth:`generate`.
        batch_size, random_state, use_ema, accelerator, device, fast, progress
            As in :meth:`generate`.

        Returns
        -------
        AnnData with ``adata``'s ``obs`` and the model's genes in the model's order:
        ``X`` (CSR; observed entries equal the input exactly, in the input's float
        dtype; missing ones are generated, exactly 0 where the generated sparsity bit is
        off), ``layers["imputed"]`` (boolean CSR, True where generated),
        ``layers["sparsity_bits"]`` (1 where ``X`` is non-zero) and the settings in
        ``uns["sdd"]``.

        Examples
        --------
        >>> filled = model.impute(adata, ["CD3E", "MS4A1"])  # doctest: +SKIP
        """
        self._require_trained()
        if not isinstance(adata, AnnData):
            raise TypeError(f"adata must be an AnnData object, got {type(adata).__name__}.")
        if _is_training(labels):
            raise ValueError(f"labels={TRAINING!r} is only available in generate().")
        defaults = inspect.signature(type(self).generate).parameters
        sampler = defaults["sampler"].default if sampler is None else sampler
        n_steps = defaults["n_steps"].default if n_steps is None else n_steps
        layer = self.setup_args_["layer"]
        matrix = get_matrix(adata, layer)
        check_matrix(matrix, where=matrix_name(layer))
        columns, gene_missing, entries = self._missing_genes(adata, mask)
        codes, _ = self._label_codes(labels, adata.n_obs)
        dtype = np.result_type(matrix.dtype, np.float32)
        sb = self.init_args_["sparsity_bits"]
        batch: dict[str, np.ndarray] = {}

        def known(start: int, stop: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
            observed = np.zeros((stop - start, self.n_genes), dtype=dtype)
            observed[:, columns] = dense_rows(matrix, start, stop)
            missing = np.broadcast_to(gene_missing, observed.shape).copy()
            if entries is not None:
                missing[:, columns] |= entries[start:stop].toarray()
            batch.update(observed=observed, missing=missing)
            x = torch.as_tensor(observed.astype(np.float32), device=dev)
            z, keep = self.scaler_.transform(x), torch.as_tensor(~missing, device=dev)
            if sb:
                z = sparsity.encode(self.scaler_.fill_zeros(z, x != 0), x != 0)
                keep = torch.cat([keep, keep], dim=1)
            return z, keep

        parts, missing_parts = [], []
        for _, _, out in self._sample_batches(
            adata.n_obs, codes=codes, batch_size=batch_size, guidance_scale=guidance_scale,
            random_state=random_state, use_ema=use_ema, accelerator=accelerator, device=device,
            fast=fast, progress=progress, known=known, sampler=sampler, n_steps=n_steps,
        ):  # fmt: skip
            if sb:
                masked, _, bits = sparsity.decode(out, zero_value=-1.0)
                values = self.scaler_.inverse(masked, bits)
            else:
                values = self.scaler_.inverse(out)
            generated = values.cpu().numpy().astype(dtype)
            observed, missing = batch["observed"], batch["missing"]
            parts.append(sp.csr_matrix(np.where(missing, generated, observed)))
            missing_parts.append(sp.csr_matrix(missing))
        X = sp.vstack(parts, format="csr")
        X.eliminate_zeros()
        bits = X.copy()
        bits.data = np.ones_like(bits.data, dtype=np.float32)
        result = AnnData(
            X=X,
            obs=adata.obs.copy(),
            var=pd.DataFrame(self.var_, index=pd.Index(self.var_names_)),
            layers={
                "imputed": sp.vstack(missing_parts, format="csr"),
                "sparsity_bits": bits.astype(np.float32),
            },
        )
        result.uns["sdd"] = self._provenance(
            imputed=True, n_imputed=int(result.layers["imputed"].nnz), sparsity_bits=sb,
            sampler=sampler, n_steps=n_steps, random_state=random_state,
            guidance_scale=guidance_scale, use_ema=use_ema, layer=layer or "X",
        )  # fmt: skip
        return result

    # -------------------------------------------------------------- checkpoints
    def _data_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"scale": torch.as_tensor(self.scaler_.gene_max)}
        if self.scaler_.fill is not None:
            state["fill"] = torch.as_tensor(self.scaler_.fill)
            state["floor"] = torch.as_tensor(self.scaler_.floor)
        if self.composition_ is not None:
            state["composition"] = {k: torch.as_tensor(v) for k, v in self.composition_.items()}
        if self.library_ is not None:
            state["library"] = {
                k: torch.as_tensor(v) for k, v in self.library_.items() if v is not None
            }
        return state

    def _data_config(self) -> dict[str, Any]:
        return {**super()._data_config(), "density": self.density_}

    def _restore_data(self, state, config) -> None:
        super()._restore_data(state, config)
        scale = state["scale"].numpy()
        self._check_per_gene(scale=scale)
        fill, floor = state.get("fill"), state.get("floor")
        if fill is not None:
            fill, floor = fill.numpy(), floor.numpy()
            self._check_per_gene(fill=fill, floor=floor)
        self.scaler_ = Scaler(scale, fill, floor)
        self.density_ = config.get("density")
        self.composition_ = self.library_ = None
        if "composition" in state:
            self.composition_ = {k: v.numpy() for k, v in state["composition"].items()}
        if "library" in state:
            library = {k: v.numpy() for k, v in state["library"].items()}
            self.library_ = {"size_factors": library["size_factors"], "codes": library.get("codes")}

    def __repr__(self) -> str:
        a = self.init_args_
        kind = "sparsity bits" if a["sparsity_bits"] else "plain diffusion baseline"
        cond = f", conditioned on {list(self.categories_)}" if self.categories_ else ""
        return (
            f"SDD model ({kind}): {self.n_genes} genes, MLP hidden {tuple(a['hidden'])}, "
            f"{self.n_params / 1e6:.2f}M parameters, {self._status()}{cond}; "
            f"layer={self.setup_args_['layer'] or 'X'!r}"
        )
