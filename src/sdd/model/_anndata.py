"""`SDD`: Sparse Data Diffusion for cells x genes data in AnnData."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData

from .. import __version__
from ..diffusion import SAMPLERS, CosineSchedule, sparsity
from ..nn import SkipMLP
from ..train import EMA, resolve_device, train_denoiser
from ..train._sparse import make_masks, weight_report
from ._data import MinibatchSampler, Scaler
from ._io import load_dir, save_dir
from ._validate import check_matrix, get_matrix

__all__ = ["SDD"]

SETUP_KEY = "sdd_setup"


def _categories(adata: AnnData, key: str) -> list[str]:
    if key not in adata.obs:
        raise ValueError(
            f"Column {key!r} not found in adata.obs (columns: {list(adata.obs.columns)})."
        )
    column = adata.obs[key]
    if column.isna().any():
        raise ValueError(f"adata.obs[{key!r}] has missing values.")
    cats = (
        column.cat.categories
        if isinstance(column.dtype, pd.CategoricalDtype)
        else np.unique(column)
    )
    return [str(c) for c in cats]


class SDD:
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
            if SETUP_KEY not in adata.uns:
                self.setup_anndata(adata)
            self.setup_args_ = dict(adata.uns[SETUP_KEY])
            self._matrix = get_matrix(adata, self.setup_args_["layer"])
            self.var_names_ = [str(v) for v in adata.var_names]
            self.scaler_ = Scaler.fit(self._matrix)
        else:
            if _setup is None or _var_names is None or _scale is None:
                raise TypeError("SDD needs an AnnData (or use SDD.load for a saved model).")
            self.setup_args_ = dict(_setup)
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
        self.history_ = pd.DataFrame(columns=["step", "epoch", "loss"])
        self.is_trained_ = False

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = None,
        labels_key: str | None = None,
        categorical_covariate_keys: Sequence[str] | None = None,
    ) -> None:
        """Register which data and annotations the model uses.

        Checks the data (numeric, finite, non-negative, not empty) and stores the
        choices in ``adata.uns["sdd_setup"]``.

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
        """
        matrix = get_matrix(adata, layer)
        check_matrix(matrix, where=f"adata.{'X' if layer is None else f'layers[{layer!r}]'}")
        keys = [k for k in [labels_key, *(categorical_covariate_keys or [])] if k is not None]
        if len(set(keys)) != len(keys):
            raise ValueError(f"Conditioning keys must be distinct, got {keys}.")
        categories = {key: _categories(adata, key) for key in keys}
        adata.uns[SETUP_KEY] = {
            "layer": layer,
            "labels_key": labels_key,
            "categorical_covariate_keys": list(categorical_covariate_keys or []),
            "categories": categories,
        }

    def view_anndata_setup(self) -> None:
        """Print what :meth:`setup_anndata` registered."""
        s = self.setup_args_
        print(f"layer: {s['layer'] or 'X'}")
        print(f"genes: {self.n_genes}")
        for key, cats in s["categories"].items():
            print(f"condition {key!r}: {len(cats)} categories")

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
        if not self.categories_:
            return None
        columns = []
        for key, cats in self.categories_.items():
            lookup = {c: i for i, c in enumerate(cats)}
            columns.append([lookup[str(v)] for v in adata.obs[key]])
        return np.asarray(columns, dtype=np.int64).T

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
        drop = self.init_args_["condition_dropout"]
        null = None
        if self.module.labels is not None:
            null = torch.tensor(self.module.labels.n_categories, device=dev)

        def next_batch():
            x, nonzero, codes = batches()
            z = sparsity.encode(x, nonzero) if self.init_args_["sparsity_bits"] else x
            if codes is not None and drop > 0:
                dropped = torch.rand(codes.shape, device=dev, generator=generator) < drop
                codes = torch.where(dropped, null.expand_as(codes), codes)
            return z, codes

        start = int(self.history_["step"].max()) if len(self.history_) else 0
        after_step = None
        if self.weight_masks_ is not None:
            self.weight_masks_.plan(start, int(max_steps))
            after_step = self.weight_masks_.hook(self.module, self.ema_)
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
        self.history_ = (
            history
            if not len(self.history_)
            else pd.concat([self.history_, history], ignore_index=True)
        )
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
            raise ValueError("labels were given but the model was set up without labels_key.")
        if not isinstance(labels, Mapping):
            labels = {self.setup_args_["labels_key"] or next(iter(self.categories_)): labels}
        unknown_keys = set(labels) - set(self.categories_)
        if unknown_keys:
            raise ValueError(
                f"Unknown condition key(s) {sorted(unknown_keys)}; known: {list(self.categories_)}."
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
                raise ValueError(f"Unknown {key!r} label(s) {bad[:5]}; known labels: {cats}.")
            codes[:, k] = [lookup[v] for v in values]
            obs[key] = pd.Categorical(values, categories=cats)
        return codes, obs

    def generate(
        self,
        n_cells: int = 10_000,
        *,
        sampler: Literal["ddpm", "ddim"] = "ddpm",
        n_steps: int = 1000,
        batch_size: int = 2048,
        labels: Mapping[str, Any] | Any = None,
        guidance_scale: float = 0.0,
        random_state: int = 0,
        use_ema: bool = True,
        store_dense: bool = True,
        accelerator: str = "auto",
        device: int | str | None = None,
        progress: bool = True,
    ) -> AnnData:
        """Generate cells.

        The defaults (DDPM, 1000 steps) follow the paper; few-step DDIM is much faster
        but tends to overshoot the sparsity (see the README's benchmark table).

        Parameters
        ----------
        n_cells
            Number of cells.
        sampler
            ``"ddpm"`` (ancestral) or ``"ddim"`` (deterministic).
        n_steps
            Reverse steps.
        batch_size
            Cells sampled at once.
        labels
            Condition on labels: a value or per-cell array for ``labels_key``, or a dict
            ``{obs key: value or array}``. Unconditional when ``None``.
        guidance_scale
            Classifier-free guidance weight ``w``: ``x0 = (1 + w) x0_cond - w x0_uncond``;
            ``0`` is plain conditional sampling.
        random_state
            Seed; the same seed, model and settings give identical cells on the CPU.
        use_ema
            Sample with the EMA weights (recommended).
        store_dense
            Also store ``layers["dense"]`` and ``layers["sb_logits"]`` (dense arrays).
        progress
            Show a progress bar.

        Returns
        -------
        AnnData with ``X`` (CSR float32, exact zeros), ``layers["sparsity_bits"]``
        (1 where the cell expresses the gene: equals ``X != 0``), ``layers["dense"]``
        (values before masking), ``layers["sb_logits"]`` (analog SB values in [-1, 1]
        before thresholding at 0; only with sparsity bits), ``obs["generated"]``,
        requested labels in ``obs``, and the settings in ``uns["sdd"]``.
        """
        if not self.is_trained_:
            raise ValueError("The model is not trained yet; call model.train() first.")
        if isinstance(n_cells, bool) or not isinstance(n_cells, int | np.integer) or n_cells <= 0:
            raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}.")
        if sampler not in SAMPLERS:
            raise ValueError(f"Unknown sampler {sampler!r}; choose one of {SAMPLERS}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
        codes, label_obs = self._label_codes(labels, int(n_cells))
        dev = resolve_device(accelerator, device)
        net = (self.ema_.model if use_ema else self.module).to(dev).eval()
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
                    fast=None,
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
        }
        return out

    def _denoise_fn(self, net, cond: torch.Tensor | None, guidance_scale: float):
        if cond is None or guidance_scale == 0:
            return lambda x, t, sc: net(x, t, sc, cond)
        null = net.labels.null(cond.shape[0], cond.device)
        w = float(guidance_scale)

        def guided(x, t, sc):
            both = net(
                torch.cat([x, x]), torch.cat([t, t]), torch.cat([sc, sc]), torch.cat([cond, null])
            )
            x_cond, x_uncond = both.chunk(2)
            return (1 + w) * x_cond - w * x_uncond

        return guided

    # -------------------------------------------------------------- save/load
    def save(self, dir_path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save weights (``model.pt``, ``weights_only``-loadable) and ``config.json`` atomically."""
        history = {
            c: torch.as_tensor(self.history_[c].to_numpy(dtype=np.float64))
            for c in ("step", "epoch", "loss")
        }
        state = {
            "module": self.module.state_dict(),
            "ema": self.ema_.model.state_dict(),
            "ema_updates": int(self.ema_.n_updates),
            "scale": torch.as_tensor(self.scaler_.scale),
            "history": history,
        }
        if self.weight_masks_ is not None:
            state["weight_masks"] = self.weight_masks_.state_dict()
        config = {
            "sdd_version": __version__,
            "model_class": self._model_class,
            "init_args": self.init_args_,
            "setup_args": self.setup_args_,
            "var_names": self.var_names_,
            "is_trained": bool(self.is_trained_),
            "train_args": getattr(self, "train_args_", None),
        }
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
            model = cls(
                None,
                **config["init_args"],
                _setup=setup,
                _var_names=var_names,
                _scale=state["scale"].numpy(),
            )
            model.module.load_state_dict(state["module"])
            model.ema_.model.load_state_dict(state["ema"])
            if model.weight_masks_ is not None:
                model.weight_masks_.load_state_dict(state["weight_masks"])
        except (KeyError, TypeError, RuntimeError, AttributeError) as err:
            raise ValueError(f"Corrupt model directory {dir_path}: {err}") from err
        model.ema_.n_updates = int(state.get("ema_updates", 0))
        model.history_ = pd.DataFrame({k: v.numpy() for k, v in state["history"].items()})
        model.history_[["step", "epoch"]] = model.history_[["step", "epoch"]].astype(np.int64)
        model.is_trained_ = bool(config.get("is_trained", False))
        if config.get("train_args"):
            model.train_args_ = config["train_args"]
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
        for key, cats in self.categories_.items():
            if key not in adata.obs:
                raise ValueError(
                    f"adata.obs lacks the condition column {key!r} the model was trained with."
                )
            unknown = set(map(str, adata.obs[key].unique())) - set(cats)
            if unknown:
                raise ValueError(
                    f"adata.obs[{key!r}] has labels unknown to the model: {sorted(unknown)[:5]}."
                )
        adata.uns[SETUP_KEY] = dict(self.setup_args_)
        self.adata, self._matrix = adata, matrix

    def __repr__(self) -> str:
        a = self.init_args_
        kind = "sparsity bits" if a["sparsity_bits"] else "plain diffusion baseline"
        steps = int(self.history_["step"].max()) if len(self.history_) else 0
        status = f"trained for {steps} steps" if self.is_trained_ else "not trained"
        cond = f", conditioned on {list(self.categories_)}" if self.categories_ else ""
        return (
            f"SDD model ({kind}): {self.n_genes} genes, MLP hidden {tuple(a['hidden'])}, "
            f"{self.n_params / 1e6:.2f}M parameters, {status}{cond}; "
            f"layer={self.setup_args_['layer'] or 'X'!r}"
        )
