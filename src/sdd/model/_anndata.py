"""`SDD`: Sparse Data Diffusion for cells x genes data in AnnData."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from anndata import AnnData

from ..data import (
    Scaler,
    check_matrix,
    dense_rows,
    get_matrix,
    invert_log1p,
    matrix_name,
    obs_codes,
    warn_if_raw_counts,
)
from ..data.counts import check_library_setup, sample_size_factors, training_size_factors
from ..data.impute import missing_entries
from ..data.validate import density, warn_all_zero
from ..diffusion import sparsity
from ..diffusion.guidance import check_guidance
from ..train import check_output_memory, decode_bits
from ._cells import TRAINING, AnnDataModel
from ._detection import DetectionMixin
from ._recipes import check_recipe

__all__ = ["SDD"]

SETUP_KEY = "sdd_setup"
SETUP_CHECK_ROWS = 2048  # cells checked by setup_anndata (the model checks all)


class SDD(DetectionMixin, AnnDataModel):
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

    Beyond the paper: a per-cell depth condition (``depth_bins``) and per-gene
    sparsity-bit thresholds matched to the training detection rates, per label group too,
    and per-gene maps of the expressed values towards the training ones (:meth:`calibrate`),
    conditional generation with classifier-free guidance (``labels_key`` in
    :meth:`setup_anndata`, ``labels`` and ``guidance_scale`` in :meth:`generate`), raw
    integer counts (``generate(counts=True)``) and imputation of missing genes
    (:meth:`impute`).

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata` (registered with defaults if not).
    sparsity_bits
        Model the zero pattern with sparsity bits. ``False`` gives the plain diffusion
        baseline of the paper's ablation (same network, no SB half).
    recipe
        ``"paper"`` (default): the SDD paper's network (1024, 512, 256), and ``train()``
        defaults Adam 2e-4, batch 256. ``"cpu"``: a smaller network (512, 256, 128) with
        Adam 1e-3 and batch 128, about 2.6 times cheaper per step; at 4,000 steps it lost
        to ``"paper"`` on held-out data (README, "Fidelity"), so it is not the default.
        Arguments given explicitly (``hidden`` here, ``lr`` and ``batch_size`` in
        :meth:`train`) override the recipe.
    hidden
        Encoder widths of the MLP (decoder mirrors them). ``None``: the recipe's.
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
    prediction
        What the network estimates: ``"x0"`` (the clean cell, the paper's), ``"v"``
        (``alpha eps - sigma x0``, Salimans & Ho 2022; at low noise the clean estimate is
        then mostly the noisy input itself) or ``"v-data"`` (v for the values, x0 for the
        bits); see :mod:`sdd.diffusion.loss`. Both alternatives measured worse (README).
    zero_fill
        Value-half encoding of a zero entry (with sparsity bits): ``"min"`` (-1, the
        paper's scaling) or ``"nonzero_mean"`` (the gene's mean non-zero value, so the
        value half learns "how much if expressed" and the bits alone decide the zeros;
        an entry whose bit is on decodes to at least the gene's smallest non-zero value).
    depth_bins
        Condition every cell on its depth, the number of genes it detects, in this many
        quantile bins of the training cells (an extra covariate of the label embedding;
        ``0``: off, the paper's model). At generation each cell's bin is drawn from
        training cells with the requested labels, so the joint distribution of depth and
        profile is learned instead of left to chance; guidance never acts on it.
        Measured together with :meth:`calibrate` in the README ("Fidelity").
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
    >>> model.train(max_steps=200).calibrate()  # doctest: +SKIP
    >>> gen = model.generate(500)  # doctest: +SKIP
    """

    _model_class = "SDD"
    _setup_key = SETUP_KEY

    def __init__(
        self,
        adata: AnnData,
        *,
        sparsity_bits: bool = True,
        recipe: Literal["paper", "cpu"] = "paper",
        hidden: Sequence[int] | None = None,
        emb_dim: int = 128,
        dropout: float = 0.0,
        self_condition: bool = True,
        condition_dropout: float = 0.1,
        logsnr_min: float = -15.0,
        logsnr_max: float = 15.0,
        prediction: Literal["x0", "v", "v-data"] = "x0",
        zero_fill: Literal["min", "nonzero_mean"] = "min",
        depth_bins: int = 8,
        weight_sparsity: float = 0.0,
        **sparse: Any,
    ) -> None:
        settings = check_recipe(recipe)
        if hidden is None:
            hidden = settings["hidden"]
        self._capture_init_args(locals())
        self._use_anndata(adata)
        if zero_fill != "min" and not sparsity_bits:
            raise ValueError(
                f"zero_fill={zero_fill!r} needs sparsity_bits=True: without the bits the "
                "value half alone encodes the zeros."
            )
        self.scaler_ = Scaler.fit(self._matrix, zero_fill=zero_fill)
        self.density_ = density(self._matrix)
        warn_all_zero(self.scaler_.gene_max, self.var_names_)
        self._fit_detection(self._matrix, obs_codes(adata, self.categories_))
        self._finish_init()
        # training size factors for generate(counts=True); fitted from adata, restored by load
        self.library_: dict[str, np.ndarray | None] | None = None
        library = training_size_factors(adata, self._matrix, self.setup_args_)
        if library is not None:
            factors, ok = library
            codes = obs_codes(adata, self.categories_)
            self.library_ = {"size_factors": factors, "codes": None if codes is None else codes[ok]}

    def _train_defaults(self) -> dict[str, Any]:
        recipe = check_recipe(self.init_args_.get("recipe", "paper"))  # older files: the paper's
        return {"lr": recipe["lr"], "batch_size": recipe["batch_size"]}

    def _encode(self, x, nonzero):
        if not self.init_args_["sparsity_bits"]:
            return x
        return sparsity.encode(self.scaler_.fill_zeros(x, nonzero), nonzero)

    _check_data = staticmethod(check_matrix)

    @property
    def _kind(self) -> str:
        return "sparsity bits" if self.init_args_["sparsity_bits"] else "plain diffusion baseline"

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
        matrix, setup = cls._setup_values(adata, layer, labels_key, categorical_covariate_keys)
        warn_if_raw_counts(matrix, where=matrix_name(layer))
        target_sum = check_library_setup(
            adata, matrix, layer=layer, counts_layer=counts_layer,
            library_size_key=library_size_key, target_sum=target_sum, n_rows=SETUP_CHECK_ROWS,
        )  # fmt: skip
        adata.uns[SETUP_KEY] = {
            **setup,
            "counts_layer": counts_layer,
            "library_size_key": library_size_key,
            "target_sum": target_sum,
        }

    @property
    def data_dim(self) -> int:
        """Length of the vector the diffusion runs on (2 x genes with sparsity bits)."""
        return self.n_genes * (2 if self.init_args_["sparsity_bits"] else 1)

    def generate(
        self,
        n_cells: int | None = None,
        *,
        sampler: Literal["ddpm", "ddim"] | None = None,
        n_steps: int | None = None,
        batch_size: int = 2048,
        labels: Mapping[str, Any] | Any = None,
        guidance_scale: float = 0.0,
        counts: bool = False,
        random_state: int = 0,
        use_ema: bool = True,
        store_dense: bool = False,
        calibrated: bool = True,
        accelerator: str = "auto",
        device: int | str | None = None,
        fast: bool | None = None,
        progress: bool = True,
    ) -> AnnData:
        """Generate cells.

        The default sampler is the one :meth:`calibrate` matched its thresholds on (DDIM
        with 250 steps by default, as :func:`sdd.tl.fit` calibrates); an uncalibrated
        model samples with DDPM and 250 steps: in the README's sparsity benchmark that
        stayed within 1.4 points of the real sparsity on three data sets without
        calibration, closer than the paper's 1000 steps after short training, while
        uncalibrated few-step DDIM overshoots the sparsity. Pass ``sampler="ddpm",
        n_steps=1000`` for the paper's setting.

        Parameters
        ----------
        n_cells
            Number of cells. ``None``: the length of per-cell ``labels``, the training
            composition with ``labels="training"``, otherwise 10,000.
        sampler
            ``"ddpm"`` (ancestral) or ``"ddim"`` (deterministic); ``None``: the
            calibration's (when ``calibrated`` and the model has a current calibration),
            else ``"ddpm"``.
        n_steps
            Reverse steps; ``None``: the calibration's, else 250.
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
        calibrated
            Threshold the sparsity bits at the per-gene thresholds of :meth:`calibrate`
            and map the expressed values onto the training quantiles, when the model has
            them (``False``, or an uncalibrated model: threshold 0 and raw values, the
            paper's).
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
        sampler, n_steps = self._sampler_settings(sampler, n_steps, calibrated)
        n_cells, codes, label_values = self._generation_labels(n_cells, labels)
        if counts and self.library_ is None:
            raise ValueError(
                "counts=True needs the training library sizes: set the model up with "
                "SDD.setup_anndata(adata, counts_layer=...) or library_size_key=... "
                "(on log1p-normalised data)."
            )
        sb = self.init_args_["sparsity_bits"]
        fill = self.density_ if self.density_ is not None else 1.0
        dense_bytes = 4 * self.n_genes * ((2 if sb else 1) if store_dense else 0)
        check_output_memory(n_cells, dense_bytes + 24 * self.n_genes * fill, "cells")
        guidance_scale = check_guidance(guidance_scale)
        thresholds, rows = self._thresholds(calibrated, codes)
        cond = self._with_depth(codes, n_cells, np.random.default_rng([random_state, 1]))
        parts: dict[str, list] = {"X": [], "dense": [], "sb_logits": []}
        for start, stop, z in self._sample_batches(
            n_cells, codes=cond, batch_size=batch_size,
            guidance_scale=0.0 if codes is None else guidance_scale,  # no labels: no guidance
            random_state=random_state, use_ema=use_ema, accelerator=accelerator, device=device,
            fast=fast, progress=progress, sampler=sampler, n_steps=n_steps,
        ):  # fmt: skip
            threshold = thresholds if rows is None else thresholds[rows[start:stop]]
            values, dense, logits = decode_bits(
                z, self.scaler_.inverse, bits=sb, dense=store_dense,
                threshold=torch.as_tensor(threshold, dtype=z.dtype, device=z.device),
            )  # fmt: skip
            values = self._map_values(
                values,
                not isinstance(thresholds, float),
                None if rows is None else rows[start:stop],
            )
            parts["X"].append(sp.csr_matrix(values))
            parts["dense"].append(dense)
            parts["sb_logits"].append(logits)
        layers = {
            key: np.concatenate(parts[key]).astype(np.float32)
            for key in ("dense", "sb_logits")
            if parts[key][0] is not None
        }
        out = self._cells(
            sp.vstack(parts["X"], format="csr"), layers=layers, labels=label_values,
            uns=self._provenance(
                sparsity_bits=sb, sampler=sampler, n_steps=n_steps, random_state=random_state,
                guidance_scale=guidance_scale, use_ema=use_ema,
                layer=self.setup_args_["layer"] or "X", counts=counts,
                calibrated=not isinstance(thresholds, float),
            ),
        )  # fmt: skip
        if counts:
            factors = sample_size_factors(
                self.library_["size_factors"], self.library_["codes"], codes, n_cells,
                self.categories_, np.random.default_rng(random_state),
            )  # fmt: skip
            out.layers["counts"] = invert_log1p(out.X, factors)
            out.obs["size_factor"] = factors
            out.obs["total_counts"] = np.asarray(out.layers["counts"].sum(axis=1)).ravel()
        return out

    # ----------------------------------------------------------------- impute
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
            Sampler and reverse steps; ``None``: DDPM with 250 steps (imputation uses no
            calibrated thresholds).
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
        if isinstance(labels, str) and labels == TRAINING:
            raise ValueError(f"labels={TRAINING!r} is only available in generate().")
        sampler, n_steps = self._sampler_settings(sampler, n_steps, calibrated=False)
        layer = self.setup_args_["layer"]
        matrix = get_matrix(adata, layer)
        check_matrix(matrix, where=matrix_name(layer))
        columns, gene_missing, entries = missing_entries(self.var_names_, adata, mask)
        codes, _ = self._label_codes(labels, adata.n_obs)
        guidance_scale = check_guidance(guidance_scale)
        if codes is None:
            guidance_scale = 0.0  # no labels asked: nothing to guide
        codes = self._with_depth(codes, adata.n_obs, None)
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
            keep = torch.as_tensor(~missing, device=dev)
            z = self._encode(self.scaler_.transform(x), x != 0)
            return z, torch.cat([keep, keep], dim=1) if sb else keep

        parts, missing_parts = [], []
        for _, _, out in self._sample_batches(
            adata.n_obs, codes=codes, batch_size=batch_size, guidance_scale=guidance_scale,
            random_state=random_state, use_ema=use_ema, accelerator=accelerator, device=device,
            fast=fast, progress=progress, known=known, sampler=sampler, n_steps=n_steps,
        ):  # fmt: skip
            generated = decode_bits(out, self.scaler_.inverse, bits=sb)[0].astype(dtype)
            parts.append(sp.csr_matrix(np.where(batch["missing"], generated, batch["observed"])))
            missing_parts.append(sp.csr_matrix(batch["missing"]))
        imputed = sp.vstack(missing_parts, format="csr")
        return self._cells(
            sp.vstack(parts, format="csr"), obs=adata.obs.copy(), dtype=dtype,
            layers={"imputed": imputed},
            uns=self._provenance(
                imputed=True, n_imputed=int(imputed.nnz), sparsity_bits=sb, sampler=sampler,
                n_steps=n_steps, random_state=random_state, guidance_scale=guidance_scale,
                use_ema=use_ema, layer=layer or "X",
            ),
        )  # fmt: skip

    # -------------------------------------------------------------- checkpoints
    def _data_state(self) -> dict[str, Any]:
        state = {**super()._data_state(), "scale": torch.as_tensor(self.scaler_.gene_max)}
        if self.scaler_.fill is not None:
            state["fill"] = torch.as_tensor(self.scaler_.fill)
            state["floor"] = torch.as_tensor(self.scaler_.floor)
        if self.library_ is not None:
            state["library"] = {
                k: torch.as_tensor(v) for k, v in self.library_.items() if v is not None
            }
        return {**state, **self._detection_state()}

    def _data_config(self) -> dict[str, Any]:
        return {**super()._data_config(), "density": self.density_, **self._detection_config()}

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
        self.library_ = None
        if "library" in state:
            library = {k: v.numpy() for k, v in state["library"].items()}
            self.library_ = {"size_factors": library["size_factors"], "codes": library.get("codes")}
        self._restore_detection(state, config)
