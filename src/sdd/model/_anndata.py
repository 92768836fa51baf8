"""`SDD`: Sparse Data Diffusion for cells x genes data in AnnData."""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData

from .._version import __version__
from ..data import (
    MinibatchSampler,
    Scaler,
    check_matrix,
    dense_rows,
    get_matrix,
    infer_target_sum,
    invert_log1p,
    largest_remainder,
    library_sizes,
    matrix_name,
    size_factors_from_counts,
)
from ..diffusion import SAMPLERS, CosineSchedule, sparsity
from ..nn import SkipMLP
from ..sparse import make_masks, weight_report
from ..train import EMA, resolve_device, train_denoiser
from ._base import (
    ModelBase,
    check_saved_setup,
    classifier_free_guidance,
    empty_history,
    history_from_state,
    label_dropout,
    obs_categories,
    obs_codes,
    plain,
)
from ._io import load_dir, save_dir

__all__ = ["SDD"]

SETUP_KEY = "sdd_setup"
TRAINING = "training"
"""``generate(labels=TRAINING)``: the training data's label composition."""
DEFAULT_N_CELLS = 10_000
SETUP_CHECK_ROWS = 2048  # cells checked by setup_anndata (the model checks all)


def _is_training(labels: Any) -> bool:
    return isinstance(labels, str) and labels == TRAINING


def _check_guidance(guidance_scale: Any) -> float:
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, int | float | np.number):
        raise TypeError(f"guidance_scale must be a number, got {guidance_scale!r}.")
    if not np.isfinite(guidance_scale):
        raise ValueError(f"guidance_scale must be finite, got {guidance_scale!r}.")
    return float(guidance_scale)


class SDD(ModelBase):
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

    def __init__(
        self,
        adata: AnnData | None = None,
        *,
        sparsity_bits: bool = True,
        hidden: Sequence[int] = (1024, 512, 256),
        emb_dim: int = 128,
        dropout: float = 0.0,
        self_condition: bool = True,
        condition_dropout: float = 0.1,
        logsnr_min: float = -15.0,
        logsnr_max: float = 15.0,
        weight_sparsity: float = 0.0,
        sparse_method: str = "rigl",
        sparse_update_interval: int = 100,
        sparse_drop_fraction: float = 0.3,
        dense_layers: Sequence[str] = ("first", "last"),
        sparse_distribution: str = "uniform",
        _setup: dict | None = None,
        _var_names: Sequence[str] | None = None,
        _scale: np.ndarray | None = None,
    ) -> None:
        if not 0.0 <= condition_dropout < 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1), got {condition_dropout}.")
        self.init_args_ = {
            "sparsity_bits": bool(sparsity_bits),
            "hidden": [int(h) for h in hidden],
            "emb_dim": int(emb_dim),
            "dropout": float(dropout),
            "self_condition": bool(self_condition),
            "condition_dropout": float(condition_dropout),
            "logsnr_min": float(logsnr_min),
            "logsnr_max": float(logsnr_max),
        }
        sparse_args = {
            "sparse_method": sparse_method,
            "sparse_update_interval": int(sparse_update_interval),
            "sparse_drop_fraction": float(sparse_drop_fraction),
            "dense_layers": list(dense_layers),
            "sparse_distribution": sparse_distribution,
        }
        if weight_sparsity:  # recorded only for sparse models
            self.init_args_.update(weight_sparsity=float(weight_sparsity), **sparse_args)
        self.adata = adata
        if adata is not None:
            self._use_anndata(
                adata,
                SETUP_KEY,
                setup=self.setup_anndata,
                check=check_matrix,
                arrays="sdd.SDDImage",
            )
            self.scaler_ = Scaler.fit(self._matrix)
        else:
            if _setup is None or _var_names is None or _scale is None:
                raise TypeError("SDD needs an AnnData (or use SDD.load for a saved model).")
            self.setup_args_ = plain(_setup)
            self._matrix = None
            self.var_names_ = list(_var_names)
            self.scaler_ = Scaler(_scale)
        self.schedule = CosineSchedule(logsnr_min, logsnr_max)
        self.n_genes = len(self.var_names_)
        n_categories = [len(c) for c in self.categories_.values()]
        self.module = SkipMLP(
            self.data_dim,
            hidden=hidden,
            emb_dim=emb_dim,
            n_categories=n_categories,
            dropout=dropout,
        ).eval()
        self.ema_ = EMA(self.module)
        self.weight_masks_ = make_masks(self.module, self.ema_, weight_sparsity, **sparse_args)
        self.history_ = empty_history()
        self.is_trained_ = False
        # training label composition and size factors (see generate(labels="training",
        # counts=True)); fitted here from adata, restored by load
        self.composition_: dict[str, np.ndarray] | None = None
        self.library_: dict[str, np.ndarray | None] | None = None
        if adata is not None:
            self._fit_training_stats(adata)

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

    def view_anndata_setup(self) -> None:
        """Print what :meth:`setup_anndata` registered."""
        s = self.setup_args_
        print(f"layer: {s['layer'] or 'X'}")
        print(f"genes: {self.n_genes}")
        for key, cats in s["categories"].items():
            print(f"condition {key!r}: {len(cats)} categories")
        if s.get("counts_layer"):
            print(f"library sizes: from counts layer {s['counts_layer']!r}")
        elif s.get("library_size_key"):
            print(
                f"library sizes: adata.obs[{s['library_size_key']!r}], "
                f"target_sum {s['target_sum']:.6g}"
            )

    @property
    def categories_(self) -> dict[str, list[str]]:
        return self.setup_args_.get("categories", {})

    @property
    def data_dim(self) -> int:
        """Length of the vector the diffusion runs on (2 x genes with sparsity bits)."""
        return self.n_genes * (2 if self.init_args_["sparsity_bits"] else 1)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def weight_report(self, batch_size: int = 256) -> dict:
        """Non-zero parameters and FLOPs (see :func:`sdd.train._sparse.weight_report`)."""
        x = torch.zeros(1, self.data_dim)
        return weight_report(
            self.module, (x, torch.zeros(1), x), masks=self.weight_masks_, batch_size=batch_size
        )

    def _codes(self, adata: AnnData) -> np.ndarray | None:
        return obs_codes(adata, self.categories_)

    def _fit_training_stats(self, adata: AnnData) -> None:
        """Label composition and per-cell size factors of the training data."""
        codes = self._codes(adata)
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

    # ------------------------------------------------------------------ train
    def train(
        self,
        max_steps: int = 10_000,
        *,
        batch_size: int = 256,
        lr: float = 2e-4,
        ema_decay: float = 0.9999,
        accelerator: str = "auto",
        device: int | str | None = None,
        random_state: int = 0,
        progress: bool = True,
        fast: bool | None = None,
        data_on_device: bool | None = None,
        distributed: bool | None = None,
    ) -> SDD:
        """Train the denoiser (Adam, EMA of weights, x0-prediction L2 loss).

        Calling ``train`` again continues from the current weights (the optimizer
        state restarts). Sets ``history_`` (loss per step, with epoch) and
        ``is_trained_``.

        Parameters
        ----------
        max_steps
            Optimiser steps (the paper trains 300k steps on a GPU).
        batch_size
            Cells per step (paper: 256).
        lr
            Adam learning rate (paper: 2e-4).
        ema_decay
            Target EMA decay (paper: 0.9999), reached after a warm-up.
        accelerator
            ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
        device
            GPU index when several are present.
        random_state
            Seed for initial batch order, times and noise.
        progress
            Show a progress bar.
        fast
            GPU fast path: bf16 autocast, fused Adam and CUDA graphs of the whole step,
            losses read back every 100 steps. ``None``: on CUDA (unless the environment
            variable ``SDD_FAST=0``); ``False``: the float32 path, as on the CPU.
        data_on_device
            Keep the whole (sparse) matrix on the GPU: ``None`` when it fits in half the
            free GPU memory; otherwise minibatches are read (ahead, in a thread) from
            host memory or a backed file (``anndata.read_h5ad(path, backed="r")``) and
            densified on the GPU one batch at a time.
        distributed
            Data-parallel training over the processes started by ``torchrun`` (each
            process trains on its share of every epoch, gradients are averaged, weights
            stay identical; each process uses the GPU ``LOCAL_RANK`` and ``batch_size``
            cells per step, so the global batch is ``batch_size`` x processes). ``None``:
            when launched by ``torchrun`` with more than one process. Save the model on
            rank 0 only (``sdd.train.is_main_process()``).
        """
        if self._matrix is None:
            raise ValueError(
                "This model has no training data; load it with SDD.load(path, adata=...)."
            )
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be a positive integer, got {max_steps}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}.")
        from ..train import distributed_info, init_distributed, resolve_fast

        if distributed not in (None, True, False):
            raise TypeError(f"distributed must be True, False or None, got {distributed!r}.")
        kind = resolve_device(accelerator).type
        is_distributed = distributed is not False and init_distributed(
            "nccl" if kind == "cuda" else "gloo"
        )
        if distributed and not is_distributed:
            raise ValueError(
                "distributed=True, but this process was not launched by torchrun with more "
                "than one process (see the README for the torchrun command)."
            )
        rank, world_size, local_rank = distributed_info() if is_distributed else (0, 1, 0)
        if is_distributed and kind == "cuda":
            device = local_rank  # one GPU per process
        dev = resolve_device(accelerator, device)
        torch.manual_seed(random_state + rank)
        generator = torch.Generator(dev).manual_seed(random_state + rank)
        self.module.to(dev)
        self.ema_.model.to(dev)
        if self.ema_.decay != ema_decay:
            self.ema_.decay = float(ema_decay)
        batches = MinibatchSampler(
            self._matrix,
            self.scaler_,
            batch_size=batch_size,
            device=dev,
            codes=self._codes(self.adata),
            random_state=random_state,
            data_on_device=data_on_device,
            rank=rank,
            world_size=world_size,
        )
        drop_labels = label_dropout(
            self.module, self.init_args_["condition_dropout"], dev, generator
        )

        def next_batch():
            x, nonzero, codes = batches()
            z = sparsity.encode(x, nonzero) if self.init_args_["sparsity_bits"] else x
            return z, drop_labels(codes)

        start = self._last_step()
        after_step = self._weight_mask_hook(start, int(max_steps))
        try:
            history, _ = train_denoiser(
                self.module,
                self.ema_,
                next_batch,
                self.schedule,
                max_steps=int(max_steps),
                steps_per_epoch=batches.steps_per_epoch,
                lr=lr,
                self_condition=self.init_args_["self_condition"],
                start_step=start,
                generator=generator,
                after_step=after_step,
                progress=progress and rank == 0,
                fast=fast,
                distributed=is_distributed,
            )
        finally:
            batches.close()
            self.module.cpu()
            self.ema_.model.cpu()
        self._append_history(history)
        self.train_args_ = {
            "max_steps": int(max_steps),
            "batch_size": int(batch_size),
            "lr": float(lr),
            "ema_decay": float(ema_decay),
            "random_state": int(random_state),
            "fast": resolve_fast(fast, dev),
            "world_size": int(world_size),
        }
        self.is_trained_ = True
        return self

    # --------------------------------------------------------------- generate
    def _label_codes(
        self, labels: Mapping[str, Any] | Any, n_cells: int
    ) -> tuple[np.ndarray | None, dict]:
        """Codes (n_cells, n_covariates) with the null token where no label was asked for."""
        if labels is None:
            return None, {}
        if not self.categories_:
            raise ValueError(
                "labels were given but the model was set up without labels_key or "
                "categorical_covariate_keys."
            )
        if _is_training(labels):
            raise ValueError(f"labels={TRAINING!r} is only available in generate().")
        if not isinstance(labels, Mapping):
            labels = {self._default_key: labels}
        unknown_keys = sorted(str(k) for k in set(labels) - set(self.categories_))
        if unknown_keys:
            raise ValueError(
                f"Unknown condition key(s) {unknown_keys}; known: {list(self.categories_)}."
            )
        codes = np.tile(np.asarray([len(c) for c in self.categories_.values()]), (n_cells, 1))
        obs = {}
        for k, (key, cats) in enumerate(self.categories_.items()):
            if key not in labels:
                continue
            values = np.asarray(labels[key], dtype=object).astype(str)
            values = np.broadcast_to(values, (n_cells,)) if values.ndim == 0 else values
            if values.shape != (n_cells,):
                raise ValueError(f"labels[{key!r}] has {values.size} entries for {n_cells} cells.")
            lookup = {c: i for i, c in enumerate(cats)}
            bad = sorted(str(v) for v in set(values) - set(lookup))
            if bad:
                raise ValueError(
                    f"Unknown {key!r} label(s) {bad[:5]}; known labels: {[str(c) for c in cats]}."
                )
            codes[:, k] = [lookup[v] for v in values]
            obs[key] = pd.Categorical(values, categories=cats)
        return codes, obs

    @property
    def _default_key(self) -> str:
        """The condition a bare label value or array refers to."""
        return self.setup_args_["labels_key"] or next(iter(self.categories_))

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
        key = self._default_key
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
        store_dense: bool = True,
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
            Seed; the same seed, model and settings give identical cells on the CPU.
        use_ema
            Sample with the EMA weights (recommended).
        store_dense
            Also store ``layers["dense"]`` and ``layers["sb_logits"]`` (dense arrays).
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
        before thresholding at 0; only with sparsity bits), ``obs["generated"]``,
        requested labels in ``obs``, and the settings in ``uns["sdd"]``. With ``counts``:
        ``layers["counts"]`` (CSR float32 holding integers, non-zero exactly where ``X``
        is), ``obs["size_factor"]`` (the drawn ``s``) and ``obs["total_counts"]``.
        """
        self._require_trained()
        if _is_training(labels):
            labels, n_cells = self._training_labels(n_cells), None
        n_cells = self._resolve_n_cells(n_cells, labels)
        if sampler not in SAMPLERS:
            raise ValueError(f"Unknown sampler {sampler!r}; choose one of {SAMPLERS}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
        guidance_scale = _check_guidance(guidance_scale)
        if counts and self.library_ is None:
            raise ValueError(
                "counts=True needs the training library sizes: set the model up with "
                "SDD.setup_anndata(adata, counts_layer=...) or library_size_key=... "
                "(on log1p-normalised data)."
            )
        codes, label_obs = self._label_codes(labels, n_cells)
        dev = resolve_device(accelerator, device)
        net = self._sampling_net(use_ema, dev)
        generator = torch.Generator(dev).manual_seed(int(random_state))
        sb = self.init_args_["sparsity_bits"]
        parts: dict[str, list[np.ndarray]] = {"X": [], "dense": [], "sb_logits": []}
        try:
            for start in range(0, n_cells, int(batch_size)):
                n = min(int(batch_size), n_cells - start)
                cond = (
                    None if codes is None else torch.as_tensor(codes[start : start + n], device=dev)
                )
                from ..train import resolve_devices, sample_split

                # bf16 network on CUDA (SDD_FAST=0 turns it off); device=[0, 1] splits rows
                z = sample_split(
                    net,
                    lambda m, c: self._denoise_fn(m, c, guidance_scale),
                    (n, self.data_dim),
                    self.schedule,
                    devices=resolve_devices(accelerator, device),
                    cond=cond,
                    generator=generator,
                    fast=fast,
                    sampler=sampler,
                    n_steps=n_steps,
                    self_condition=self.init_args_["self_condition"],
                    progress=progress,
                )
                if sb:
                    masked, dense, _ = sparsity.decode(z, zero_value=-1.0)
                    parts["sb_logits"].append(sparsity.split(z)[1].cpu().numpy())
                else:
                    masked = dense = z
                parts["X"].append(self.scaler_.inverse(masked).cpu().numpy())
                if store_dense:
                    parts["dense"].append(self.scaler_.inverse(dense).cpu().numpy())
        finally:
            net.cpu()
        values = np.concatenate(parts["X"]).astype(np.float32)
        X = sp.csr_matrix(values)
        X.eliminate_zeros()
        bits = X.copy()
        bits.data[:] = 1.0
        layers = {"sparsity_bits": bits}
        if store_dense:
            layers["dense"] = np.concatenate(parts["dense"]).astype(np.float32)
            if sb:
                layers["sb_logits"] = np.concatenate(parts["sb_logits"]).astype(np.float32)
        obs = pd.DataFrame({"generated": np.ones(n_cells, dtype=bool), **label_obs})
        obs.index = [f"generated_{i}" for i in range(n_cells)]
        if counts:
            factors = self._sample_size_factors(codes, n_cells, np.random.default_rng(random_state))
            layers["counts"] = invert_log1p(X, factors)
            obs["size_factor"] = factors
            obs["total_counts"] = np.asarray(layers["counts"].sum(axis=1)).ravel()
        out = AnnData(
            X=X, obs=obs, var=pd.DataFrame(index=pd.Index(self.var_names_)), layers=layers
        )
        out.uns["sdd"] = {
            "model": self._model_class,
            "version": __version__,
            "sparsity_bits": sb,
            "sampler": sampler,
            "n_steps": int(n_steps),
            "random_state": int(random_state),
            "guidance_scale": float(guidance_scale),
            "use_ema": bool(use_ema),
            "layer": self.setup_args_["layer"] or "X",
            "counts": bool(counts),
        }
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
        defaults = inspect.signature(type(self).generate).parameters
        sampler = defaults["sampler"].default if sampler is None else sampler
        n_steps = defaults["n_steps"].default if n_steps is None else n_steps
        if sampler not in SAMPLERS:
            raise ValueError(f"Unknown sampler {sampler!r}; choose one of {SAMPLERS}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
        guidance_scale = _check_guidance(guidance_scale)
        layer = self.setup_args_["layer"]
        matrix = get_matrix(adata, layer)
        where = matrix_name(layer)
        check_matrix(matrix, where=where)
        columns, gene_missing, entries = self._missing_genes(adata, mask)
        n_obs = adata.n_obs
        codes, _ = self._label_codes(labels, n_obs)
        dtype = np.result_type(matrix.dtype, np.float32)
        from ..train import resolve_devices, sample_split

        devices = resolve_devices(accelerator, device)
        dev = torch.device(devices[0])
        net = self._sampling_net(use_ema, dev)
        generator = torch.Generator(dev).manual_seed(int(random_state))
        sb = self.init_args_["sparsity_bits"]
        parts, missing_parts = [], []
        try:
            for start in range(0, n_obs, int(batch_size)):
                stop = min(start + int(batch_size), n_obs)
                observed = np.zeros((stop - start, self.n_genes), dtype=dtype)
                observed[:, columns] = dense_rows(matrix, start, stop)
                missing = np.broadcast_to(gene_missing, observed.shape).copy()
                if entries is not None:
                    missing[:, columns] |= entries[start:stop].toarray()
                x = torch.as_tensor(observed.astype(np.float32), device=dev)
                z = self.scaler_.transform(x)
                keep = torch.as_tensor(~missing, device=dev)
                if sb:
                    z, keep = sparsity.encode(z, x != 0), torch.cat([keep, keep], dim=1)
                cond = None if codes is None else torch.as_tensor(codes[start:stop], device=dev)
                out = sample_split(
                    net,
                    lambda m, c: self._denoise_fn(m, c, guidance_scale),
                    (stop - start, self.data_dim),
                    self.schedule,
                    devices=devices,
                    cond=cond,
                    known=(z, keep),
                    generator=generator,
                    fast=fast,
                    sampler=sampler,
                    n_steps=n_steps,
                    self_condition=self.init_args_["self_condition"],
                    progress=progress,
                )
                masked = sparsity.decode(out, zero_value=-1.0)[0] if sb else out
                generated = self.scaler_.inverse(masked).cpu().numpy().astype(dtype)
                parts.append(sp.csr_matrix(np.where(missing, generated, observed)))
                missing_parts.append(sp.csr_matrix(missing))
        finally:
            net.cpu()
        X = sp.vstack(parts, format="csr")
        X.eliminate_zeros()
        bits = X.copy()
        bits.data = np.ones_like(bits.data, dtype=np.float32)
        result = AnnData(
            X=X,
            obs=adata.obs.copy(),
            var=pd.DataFrame(index=pd.Index(self.var_names_)),
            layers={
                "imputed": sp.vstack(missing_parts, format="csr"),
                "sparsity_bits": bits.astype(np.float32),
            },
        )
        result.uns["sdd"] = {
            "model": self._model_class,
            "version": __version__,
            "imputed": True,
            "n_imputed": int(result.layers["imputed"].nnz),
            "sparsity_bits": sb,
            "sampler": sampler,
            "n_steps": int(n_steps),
            "random_state": int(random_state),
            "guidance_scale": guidance_scale,
            "use_ema": bool(use_ema),
            "layer": layer or "X",
        }
        return result

    def _denoise_fn(self, net, cond: torch.Tensor | None, guidance_scale: float):
        """``denoise(x, t, self_cond)`` for the sampler, with classifier-free guidance."""
        return classifier_free_guidance(net, net, cond, guidance_scale)

    # -------------------------------------------------------------- save/load
    def save(self, dir_path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save weights (``model.pt``, ``weights_only``-loadable) and ``config.json`` atomically."""
        state = self._checkpoint_state(scale=torch.as_tensor(self.scaler_.scale))
        if self.composition_ is not None:
            state["composition"] = {k: torch.as_tensor(v) for k, v in self.composition_.items()}
        if self.library_ is not None:
            state["library"] = {
                k: torch.as_tensor(v) for k, v in self.library_.items() if v is not None
            }
        config = self._checkpoint_config(setup_args=self.setup_args_, var_names=self.var_names_)
        save_dir(dir_path, state, config, overwrite=overwrite)

    @classmethod
    def load(cls, dir_path: str | os.PathLike, adata: AnnData | None = None) -> SDD:
        """Load a model saved with :meth:`save`.

        Parameters
        ----------
        dir_path
            Directory written by :meth:`save`.
        adata
            Optional AnnData to continue training on; its genes must be the saved
            model's genes in the same order.
        """
        state, config = load_dir(dir_path, model_class=cls._model_class)
        try:
            var_names = list(config["var_names"])
            setup = dict(config["setup_args"])
            check_saved_setup(var_names, setup, {"scale": state["scale"]})
            model = cls(
                None,
                **config["init_args"],
                _setup=setup,
                _var_names=var_names,
                _scale=state["scale"].numpy(),
            )
            model._load_weights(state)
            model._restore_training_state(state, config)
            if "composition" in state:
                model.composition_ = {k: v.numpy() for k, v in state["composition"].items()}
            if "library" in state:
                library = {k: v.numpy() for k, v in state["library"].items()}
                model.library_ = {
                    "size_factors": library["size_factors"],
                    "codes": library.get("codes"),
                }
            model.history_ = history_from_state(state["history"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise ValueError(f"Corrupt model directory {dir_path}: {err}") from err
        if adata is not None:
            model._attach(adata)
        return model

    def _attach(self, adata: AnnData) -> None:
        genes = [str(v) for v in adata.var_names]
        if genes != self.var_names_:
            missing = len(set(self.var_names_) - set(genes))
            extra = len(set(genes) - set(self.var_names_))
            raise ValueError(
                f"Gene mismatch: the model was trained on {self.n_genes} genes, adata has "
                f"{len(genes)} ({missing} missing, {extra} unexpected"
                f"{', same genes in a different order' if not missing and not extra else ''})."
            )
        layer = self.setup_args_["layer"]
        matrix = get_matrix(adata, layer)
        check_matrix(matrix, where="adata")
        obs_codes(adata, self.categories_)  # raises on missing columns or unknown labels
        adata.uns[SETUP_KEY] = dict(self.setup_args_)
        self.adata, self._matrix = adata, matrix

    def __repr__(self) -> str:
        a = self.init_args_
        kind = "sparsity bits" if a["sparsity_bits"] else "plain diffusion baseline"
        cond = f", conditioned on {list(self.categories_)}" if self.categories_ else ""
        return (
            f"SDD model ({kind}): {self.n_genes} genes, MLP hidden {tuple(a['hidden'])}, "
            f"{self.n_params / 1e6:.2f}M parameters, {self._status()}{cond}; "
            f"layer={self.setup_args_['layer'] or 'X'!r}"
        )
