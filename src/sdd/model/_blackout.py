"""`SDDBlackout`: Blackout Diffusion on raw counts (AnnData) and integer images (arrays)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData
from torch.nn.functional import softplus
from tqdm.auto import tqdm

from .._version import __version__
from ..data import RowBatches, check_matrix, gene_max, get_matrix, matrix_name
from ..diffusion import blackout
from ..nn import SkipMLP
from ..sparse import make_masks, weight_report
from ..train import EMA, resolve_device
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

__all__ = ["SDDBlackout"]

SETUP_KEY = "sdd_blackout_setup"


def check_integer_counts(matrix, *, where: str = "data", chunk_rows: int = 4096) -> None:
    """Raise unless ``matrix`` holds finite, non-negative whole numbers (checked in chunks)."""
    check_matrix(matrix, where=where, chunk_rows=chunk_rows)
    chunks = (
        [matrix.data]
        if sp.issparse(matrix)
        else (matrix[i : i + chunk_rows] for i in range(0, matrix.shape[0], chunk_rows))
    )
    for chunk in chunks:
        values = chunk.data if sp.issparse(chunk) else np.asarray(chunk)
        if values.size and not np.array_equal(values, np.round(values)):
            bad = values[values != np.round(values)].ravel()[0]
            raise ValueError(
                f"{where} must hold integer counts (found {bad!r}); Blackout Diffusion models raw "
                "counts, e.g. layer='counts', not normalised or log-transformed values."
            )


def _gene_mean(matrix, chunk_rows: int = 4096) -> np.ndarray:
    total = np.zeros(matrix.shape[1], dtype=np.float64)
    for start in range(0, matrix.shape[0], chunk_rows):
        block = matrix[start : start + chunk_rows]
        total += np.asarray(block.sum(axis=0), dtype=np.float64).ravel()
    return total / matrix.shape[0]


class SDDBlackout(ModelBase):
    """Blackout Diffusion (Santos et al., ICML 2023) for counts: generation from empty cells.

    The forward process kills every unit of every count independently, ``x_t ~
    Binomial(x_0, exp(-t))``, until the cell is empty; the network (the scDiffusion MLP)
    learns the number of missing units ``E[x_0 - x_t | x_t]`` with the paper's exact
    Poisson-type loss; sampling starts from all zeros and adds births with the binomial
    bridge between observation times (:mod:`sdd.diffusion.blackout`). Generated cells are
    non-negative integer counts, and zeros are exact by construction (no sparsity bits
    needed).

    Network input: ``2 log1p(x_t) / log1p(m_g) - 1`` per gene (``m_g`` the gene's largest
    training count); output: ``softplus(.) * (mean_g + 1e-3)`` missing units per gene.
    Generated counts are capped at ``m_g`` unless ``generate(clip=False)``.

    Parameters
    ----------
    adata
        Cells x genes raw counts, registered with :meth:`setup_anndata` (with defaults,
        ``layer="counts"`` if present, if not). For images use :meth:`from_array`.
    hidden, emb_dim, dropout
        MLP widths (decoder mirrors them), time/label embedding size, dropout.
    n_times, t_end
        Observation times of the death process (paper: 1000 times, ``t_end=15``).
    weighting
        Loss weights over times: ``"instantaneous"`` or ``"finite_time"`` (the paper's
        code) or ``"elbo"`` (see :meth:`~sdd.diffusion.blackout.BlackoutSchedule.loss_weights`).
    parameterization
        ``"death_scaled"``: missing units ``= (1 - p(t)) * softplus(net) * scale``, so the
        estimate vanishes at small ``t`` as the truth does; ``"direct"``: the paper's
        ``softplus(net) * scale``.
    condition_dropout
        Probability of dropping the label condition in training (classifier-free guidance).
    weight_sparsity
        Fraction of zero weights (0 = dense) trained sparse from the first step; see
        :class:`~sdd.train.WeightMasks`.
    sparse_method, sparse_update_interval, sparse_drop_fraction, dense_layers, sparse_distribution
        ``"static"``, ``"rigl"`` or ``"magran"``; steps between mask updates; initial
        drop fraction (cosine decay); layers kept dense; ``"uniform"`` or ``"erk"``.

    Examples
    --------
    >>> import sdd
    >>> sdd.SDDBlackout.setup_anndata(adata, layer="counts")  # doctest: +SKIP
    >>> model = sdd.SDDBlackout(adata, hidden=(256, 128))  # doctest: +SKIP
    >>> model.train(max_steps=2000)  # doctest: +SKIP
    >>> gen = model.generate(500, n_steps=200)  # doctest: +SKIP
    """

    _model_class = "SDDBlackout"

    def __init__(
        self,
        adata: AnnData | None = None,
        *,
        hidden: Sequence[int] = (1024, 512, 256),
        emb_dim: int = 128,
        dropout: float = 0.0,
        n_times: int = 1000,
        t_end: float = 15.0,
        weighting: Literal["instantaneous", "finite_time", "elbo"] = "instantaneous",
        parameterization: Literal["death_scaled", "direct"] = "death_scaled",
        condition_dropout: float = 0.1,
        weight_sparsity: float = 0.0,
        sparse_method: Literal["static", "rigl", "magran"] = "rigl",
        sparse_update_interval: int = 100,
        sparse_drop_fraction: float = 0.3,
        dense_layers: Sequence[str] = ("first", "last"),
        sparse_distribution: Literal["uniform", "erk"] = "uniform",
        _setup: dict | None = None,
        _var_names: Sequence[str] | None = None,
        _stats: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        if not 0.0 <= condition_dropout < 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1), got {condition_dropout}.")
        if parameterization not in ("death_scaled", "direct"):
            raise ValueError(
                f"parameterization must be 'death_scaled' or 'direct', got {parameterization!r}."
            )
        self.schedule = blackout.BlackoutSchedule(n_times, t_end)
        self.loss_weights_ = self.schedule.loss_weights(weighting).to(torch.float32)
        self.init_args_ = {
            "hidden": [int(h) for h in hidden],
            "emb_dim": int(emb_dim),
            "dropout": float(dropout),
            "n_times": int(n_times),
            "t_end": float(t_end),
            "weighting": weighting,
            "parameterization": parameterization,
            "condition_dropout": float(condition_dropout),
            "weight_sparsity": float(weight_sparsity),
            "sparse_method": sparse_method,
            "sparse_update_interval": int(sparse_update_interval),
            "sparse_drop_fraction": float(sparse_drop_fraction),
            "dense_layers": list(dense_layers),
            "sparse_distribution": sparse_distribution,
        }
        self.adata = adata
        if adata is not None:
            self._use_anndata(
                adata,
                SETUP_KEY,
                setup=lambda a: self.setup_anndata(
                    a, layer="counts" if "counts" in a.layers else None
                ),
                check=check_integer_counts,
                arrays="SDDBlackout.from_array",
            )
            self.gene_max_ = gene_max(self._matrix).astype(np.float32)
            self.gene_mean_ = _gene_mean(self._matrix).astype(np.float32)
        else:
            if _setup is None or _var_names is None or _stats is None:
                raise TypeError("SDDBlackout needs an AnnData (or use SDDBlackout.load).")
            self.setup_args_ = plain(_setup)
            self._matrix = None
            self.var_names_ = list(_var_names)
            self.gene_max_ = np.asarray(_stats["gene_max"], dtype=np.float32)
            self.gene_mean_ = np.asarray(_stats["gene_mean"], dtype=np.float32)
        self.n_genes = len(self.var_names_)
        n_categories = [len(c) for c in self.categories_.values()]
        self.module = SkipMLP(
            self.n_genes, hidden=hidden, emb_dim=emb_dim, n_categories=n_categories, dropout=dropout
        ).eval()
        self.ema_ = EMA(self.module)
        self.weight_masks_ = make_masks(
            self.module,
            self.ema_,
            weight_sparsity,
            sparse_method=sparse_method,
            sparse_update_interval=sparse_update_interval,
            sparse_drop_fraction=sparse_drop_fraction,
            dense_layers=dense_layers,
            sparse_distribution=sparse_distribution,
        )
        self.history_ = empty_history()
        self.is_trained_ = False

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = "counts",
        labels_key: str | None = None,
        categorical_covariate_keys: Sequence[str] | None = None,
    ) -> None:
        """Register the raw counts and annotations; stores ``adata.uns["sdd_blackout_setup"]``.

        Parameters
        ----------
        adata
            Cells x genes.
        layer
            Layer with raw counts (non-negative integers); ``None`` uses ``adata.X``.
        labels_key
            ``obs`` column with labels to condition on (optional).
        categorical_covariate_keys
            Further categorical ``obs`` columns to condition on.
        """
        matrix = get_matrix(adata, layer)
        check_integer_counts(matrix, where=matrix_name(layer))
        keys = [k for k in [labels_key, *(categorical_covariate_keys or [])] if k is not None]
        if len(set(keys)) != len(keys):
            raise ValueError(f"Conditioning keys must be distinct, got {keys}.")
        adata.uns[SETUP_KEY] = {
            "layer": layer,
            "labels_key": labels_key,
            "categorical_covariate_keys": list(categorical_covariate_keys or []),
            "categories": {key: obs_categories(adata, key) for key in keys},
            "image_shape": None,
        }

    @classmethod
    def from_array(
        cls, images: np.ndarray, labels: Sequence[Any] | np.ndarray | None = None, **kwargs: Any
    ) -> SDDBlackout:
        """Model for integer arrays such as images ``(N, H, W)`` or ``(N, C, H, W)``.

        Each example is flattened into a vector of "genes" ``px_0, px_1, ...``;
        :meth:`generate_images` returns arrays of the original shape.

        Parameters
        ----------
        images
            Non-negative integer values (e.g. 8-bit MNIST pixels), examples first.
        labels
            Optional class label per example, to condition on.
        **kwargs
            Passed to the constructor.

        Examples
        --------
        >>> imgs = np.random.default_rng(0).integers(0, 4, (20, 5, 5))
        >>> model = SDDBlackout.from_array(imgs, hidden=(16,), emb_dim=8, n_times=20)
        >>> model.setup_args_["image_shape"]
        [5, 5]
        """
        images = np.asarray(images)
        if images.ndim < 2 or images.shape[0] == 0:
            raise ValueError(f"images must have shape (N, ...) with N > 0, got {images.shape}.")
        flat = images.reshape(images.shape[0], -1)
        if not (np.issubdtype(flat.dtype, np.integer) or np.issubdtype(flat.dtype, np.floating)):
            raise TypeError(f"images must be numeric, got dtype {flat.dtype}.")
        adata = AnnData(sp.csr_matrix(flat.astype(np.float32)))
        adata.var_names = [f"px_{i}" for i in range(flat.shape[1])]
        adata.obs_names = [f"img_{i}" for i in range(flat.shape[0])]
        labels_key = None
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (flat.shape[0],):
                raise ValueError(f"labels must have one entry per image, got shape {labels.shape}.")
            adata.obs["label"] = pd.Categorical(labels.astype(str))
            labels_key = "label"
        cls.setup_anndata(adata, layer=None, labels_key=labels_key)
        adata.uns[SETUP_KEY]["image_shape"] = [int(s) for s in images.shape[1:]]
        return cls(adata, **kwargs)

    def view_anndata_setup(self) -> None:
        """Print what :meth:`setup_anndata` registered."""
        s = self.setup_args_
        print(f"layer: {s['layer'] or 'X'}")
        print(f"genes: {self.n_genes}")
        if s.get("image_shape"):
            print(f"image shape: {tuple(s['image_shape'])}")
        for key, cats in s["categories"].items():
            print(f"condition {key!r}: {len(cats)} categories")

    @property
    def categories_(self) -> dict[str, list[str]]:
        return self.setup_args_.get("categories", {})

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def weight_report(self, batch_size: int = 256) -> dict:
        """Non-zero parameters and FLOPs (per example forward, per training step).

        See :func:`sdd.train._sparse.weight_report`; dense models report ``"dense"``.
        """
        x = torch.zeros(1, self.n_genes)
        return weight_report(
            self.module, (x, torch.zeros(1), x), masks=self.weight_masks_, batch_size=batch_size
        )

    def _codes(self, adata: AnnData) -> np.ndarray | None:
        return obs_codes(adata, self.categories_)

    # ---------------------------------------------------------------- network
    def _make_births(
        self, net: torch.nn.Module, dev: torch.device
    ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]:
        """``births(x_t, index, codes)``: the network's estimate of ``x0 - x_t`` (>= 0)."""
        log_max = torch.log1p(torch.as_tensor(self.gene_max_, device=dev)).clamp_min(1e-6)
        scale = torch.as_tensor(self.gene_mean_, device=dev) + 1e-3
        survival = self.schedule.survival.to(dev, torch.float32)
        death_scaled = self.init_args_["parameterization"] == "death_scaled"

        def births(
            x_t: torch.Tensor, index: torch.Tensor, codes: torch.Tensor | None
        ) -> torch.Tensor:
            h = 2.0 * torch.log1p(x_t) / log_max - 1.0
            out = softplus(net(h, self.schedule.time_input(index), torch.zeros_like(h), codes))
            if death_scaled:  # E[x0 - x_t | x0] = (1 - p) x0: the network estimates ~x0
                out = out * (1.0 - survival[index])[:, None]
            return out * scale

        return births

    def _births_fn(
        self, net: torch.nn.Module, cond: torch.Tensor | None, guidance_scale: float, dev
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        births = classifier_free_guidance(self._make_births(net, dev), net, cond, guidance_scale)
        if cond is None or guidance_scale == 0:
            return births
        return lambda x, index: births(x, index).clamp_min(0.0)  # guidance can go negative

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
    ) -> SDDBlackout:
        """Train with the Blackout loss (Adam, EMA of weights, uniformly drawn times).

        Calling ``train`` again continues from the current weights (the optimizer state
        restarts). Sets ``history_`` and ``is_trained_``.

        Parameters
        ----------
        max_steps
            Optimiser steps.
        batch_size
            Cells per step.
        lr
            Adam learning rate.
        ema_decay
            Target EMA decay, reached after a warm-up.
        accelerator, device
            ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``; GPU index.
        random_state
            Seed for batch order, times and thinning.
        progress
            Show a progress bar.
        """
        if self._matrix is None:
            raise ValueError(
                "This model has no training data; load it with SDDBlackout.load(path, adata=...)."
            )
        if isinstance(max_steps, bool) or int(max_steps) < 1:
            raise ValueError(f"max_steps must be a positive integer, got {max_steps}.")
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}.")
        max_steps = int(max_steps)
        dev = resolve_device(accelerator, device)
        torch.manual_seed(random_state)
        generator = torch.Generator(dev).manual_seed(random_state)
        self.module.to(dev)
        self.ema_.model.to(dev)
        self.ema_.decay = float(ema_decay)
        batches = RowBatches(
            self._matrix,
            batch_size=batch_size,
            device=dev,
            codes=self._codes(self.adata),
            random_state=random_state,
        )
        drop_labels = label_dropout(
            self.module, self.init_args_["condition_dropout"], dev, generator
        )
        survival = self.schedule.survival.to(dev, torch.float32)
        weights = self.loss_weights_.to(dev)
        start = self._last_step()
        after_step = self._weight_mask_hook(start, max_steps)

        births = self._make_births(self.module, dev)
        optimizer = torch.optim.Adam(self.module.parameters(), lr=lr)
        self.module.train()
        losses = np.empty(max_steps, dtype=np.float64)
        bar = tqdm(range(max_steps), desc="Training", disable=not progress, unit="step")
        try:
            for i in bar:
                x0, codes = batches.next_batch()
                x0 = x0.to(dev, non_blocking=True)
                if codes is not None:
                    codes = codes.to(dev, non_blocking=True)
                codes = drop_labels(codes)
                k = torch.randint(
                    self.schedule.n_times, (x0.shape[0],), device=dev, generator=generator
                )
                x_t = blackout.q_sample(x0, survival[k][:, None], generator=generator)
                y = births(x_t, k, codes)
                loss = blackout.birth_loss(y, x0, x_t, weights[k])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if after_step is not None:
                    after_step(start + i + 1)
                self.ema_.update(self.module)
                losses[i] = loss.item()
                if not np.isfinite(losses[i]):
                    raise FloatingPointError(f"Training diverged: loss is {losses[i]} at step {i}.")
                if i % 50 == 0 or i == max_steps - 1:
                    bar.set_postfix(loss=f"{losses[max(0, i - 49) : i + 1].mean():.4f}")
        finally:
            self.module.eval().cpu()
            self.ema_.model.cpu()
        steps = np.arange(start + 1, start + max_steps + 1)
        history = pd.DataFrame(
            {"step": steps, "epoch": (steps - 1) // batches.steps_per_epoch, "loss": losses}
        )
        self._append_history(history)
        self.train_args_ = {
            "max_steps": max_steps,
            "batch_size": int(batch_size),
            "lr": float(lr),
            "ema_decay": float(ema_decay),
            "random_state": int(random_state),
        }
        self.is_trained_ = True
        return self

    # --------------------------------------------------------------- generate
    def _label_codes(self, labels: Any, n_cells: int) -> tuple[np.ndarray | None, dict]:
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
            bad = sorted(set(values) - set(lookup))
            if bad:
                raise ValueError(f"Unknown {key!r} label(s) {bad[:5]}; known labels: {cats}.")
            codes[:, k] = [lookup[v] for v in values]
            obs[key] = pd.Categorical(values, categories=cats)
        return codes, obs

    def generate(
        self,
        n_cells: int = 10_000,
        *,
        n_steps: int | None = None,
        method: Literal["binomial", "poisson"] = "binomial",
        rounding: Literal["stochastic", "nearest"] = "stochastic",
        clip: bool = True,
        batch_size: int = 2048,
        labels: Mapping[str, Any] | Any = None,
        guidance_scale: float = 0.0,
        random_state: int = 0,
        use_ema: bool = True,
        accelerator: str = "auto",
        device: int | str | None = None,
        progress: bool = True,
    ) -> AnnData:
        """Generate cells (integer counts with exact zeros) from the empty state.

        Parameters
        ----------
        n_cells
            Number of cells.
        n_steps
            Reverse steps (network calls); ``None`` visits all ``n_times`` observation
            times. The binomial bridge is exact between any two times, so fewer steps
            only coarsen the time grid.
        method
            ``"binomial"`` (binomial bridge, the paper's discrete-time reverse mapping)
            or ``"poisson"`` (tau-leaping).
        rounding
            How the estimated missing units become the bridge's integer ``n``:
            ``"stochastic"`` (unbiased) or ``"nearest"`` (the reference code; drops
            genes whose expected count stays below 0.5).
        clip
            Cap each gene at its largest training count.
        batch_size
            Cells sampled at once.
        labels, guidance_scale
            Condition on labels (a value or per-cell array for ``labels_key``, or a dict
            ``{obs key: values}``) with classifier-free guidance weight ``w``.
        random_state
            Seed; the same seed, model and settings give identical cells on the CPU.
        use_ema
            Sample with the EMA weights.
        progress
            Show a progress bar.

        Returns
        -------
        AnnData with ``X`` (CSR float32 integer counts, exact zeros), ``layers["counts"]``
        (the same counts), ``layers["sparsity_bits"]`` (``X != 0``), ``obs["generated"]``,
        requested labels in ``obs``, the training genes as ``var`` and the settings in
        ``uns["sdd"]``.
        """
        self._require_trained()
        if isinstance(n_cells, bool) or not isinstance(n_cells, int | np.integer) or n_cells <= 0:
            raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}.")
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
        if method not in blackout.BRIDGE_METHODS:
            raise ValueError(f"Unknown method {method!r}; choose one of {blackout.BRIDGE_METHODS}.")
        if rounding not in blackout.ROUNDINGS:
            raise ValueError(f"Unknown rounding {rounding!r}; choose one of {blackout.ROUNDINGS}.")
        self.schedule.step_indices(n_steps)  # validates n_steps
        n_cells = int(n_cells)
        codes, label_obs = self._label_codes(labels, n_cells)
        dev = resolve_device(accelerator, device)
        net = self._sampling_net(use_ema, dev)
        generator = torch.Generator(dev).manual_seed(int(random_state))
        max_value = torch.as_tensor(self.gene_max_, device=dev) if clip else None
        parts = []
        try:
            for start in range(0, n_cells, int(batch_size)):
                n = min(int(batch_size), n_cells - start)
                cond = (
                    None if codes is None else torch.as_tensor(codes[start : start + n], device=dev)
                )
                x = blackout.sample(
                    self._births_fn(net, cond, guidance_scale, dev),
                    (n, self.n_genes),
                    self.schedule,
                    n_steps=n_steps,
                    method=method,
                    rounding=rounding,
                    max_value=max_value,
                    generator=generator,
                    device=dev,
                    progress=progress,
                )
                parts.append(x.cpu().numpy())
        finally:
            net.cpu()
        X = sp.csr_matrix(np.concatenate(parts).astype(np.float32))
        X.eliminate_zeros()
        bits = X.copy()
        bits.data[:] = 1.0
        obs = pd.DataFrame({"generated": np.ones(n_cells, dtype=bool), **label_obs})
        obs.index = [f"generated_{i}" for i in range(n_cells)]
        out = AnnData(
            X=X,
            obs=obs,
            var=pd.DataFrame(index=pd.Index(self.var_names_)),
            layers={"counts": X.copy(), "sparsity_bits": bits},
        )
        out.uns["sdd"] = {
            "model": self._model_class,
            "version": __version__,
            "process": "blackout",
            "sampler": method,
            "rounding": rounding,
            "n_steps": self.schedule.n_times if n_steps is None else int(n_steps),
            "clip": bool(clip),
            "random_state": int(random_state),
            "guidance_scale": float(guidance_scale),
            "use_ema": bool(use_ema),
            "layer": self.setup_args_["layer"] or "X",
        }
        return out

    def generate_images(self, n_images: int = 16, **kwargs: Any) -> np.ndarray:
        """Generate integer arrays of the training shape (models from :meth:`from_array`).

        ``kwargs`` go to :meth:`generate`; returns an ``int64`` array
        ``(n_images, *image_shape)``.
        """
        shape = self.setup_args_.get("image_shape")
        if not shape:
            raise ValueError("This model was not built from arrays; use generate() instead.")
        gen = self.generate(n_images, **kwargs)
        return gen.X.toarray().astype(np.int64).reshape(n_images, *shape)

    # -------------------------------------------------------------- save/load
    def save(self, dir_path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save weights (``model.pt``, ``weights_only``-loadable) and ``config.json``."""
        state = self._checkpoint_state(
            gene_max=torch.as_tensor(self.gene_max_), gene_mean=torch.as_tensor(self.gene_mean_)
        )
        config = self._checkpoint_config(setup_args=self.setup_args_, var_names=self.var_names_)
        save_dir(dir_path, state, config, overwrite=overwrite)

    @classmethod
    def load(cls, dir_path: str | os.PathLike, adata: AnnData | None = None) -> SDDBlackout:
        """Load a model saved with :meth:`save`.

        Parameters
        ----------
        dir_path
            Directory written by :meth:`save`.
        adata
            Optional AnnData to continue training on (same genes, same order).
        """
        state, config = load_dir(dir_path, model_class=cls._model_class)
        try:
            stats = {"gene_max": state["gene_max"].numpy(), "gene_mean": state["gene_mean"].numpy()}
            check_saved_setup(list(config["var_names"]), dict(config["setup_args"]), stats)
            model = cls(
                None,
                **config["init_args"],
                _setup=dict(config["setup_args"]),
                _var_names=list(config["var_names"]),
                _stats=stats,
            )
            model._load_weights(state)
            model.history_ = history_from_state(state["history"])
            model._restore_training_state(state, config)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise ValueError(f"Corrupt model directory {dir_path}: {err}") from err
        if adata is not None:
            model._attach(adata)
        return model

    def _attach(self, adata: AnnData) -> None:
        genes = [str(v) for v in adata.var_names]
        if genes != self.var_names_:
            raise ValueError(
                f"Gene mismatch: the model was trained on {self.n_genes} genes in a given order; "
                f"adata has {len(genes)} genes that differ or are ordered differently."
            )
        matrix = get_matrix(adata, self.setup_args_["layer"])
        check_integer_counts(matrix, where="adata")
        obs_codes(adata, self.categories_)  # raises on missing columns or unknown labels
        adata.uns[SETUP_KEY] = dict(self.setup_args_)
        self.adata, self._matrix = adata, matrix

    def __repr__(self) -> str:
        a = self.init_args_
        sparse = (
            f", {a['sparse_method']} weights at {a['weight_sparsity']:.0%} sparsity"
            if self.weight_masks_ is not None
            else ""
        )
        what = (
            f"image {tuple(self.setup_args_['image_shape'])}"
            if self.setup_args_.get("image_shape")
            else f"{self.n_genes} genes"
        )
        return (
            f"SDDBlackout model (Blackout Diffusion on counts): {what}, MLP hidden "
            f"{tuple(a['hidden'])}, {self.n_params / 1e6:.2f}M parameters{sparse}, "
            f"{self._status()}; "
            f"layer={self.setup_args_['layer'] or 'X'!r}"
        )
