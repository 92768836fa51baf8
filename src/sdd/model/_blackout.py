"""`SDDBlackout`: Blackout Diffusion on raw counts (AnnData) and integer images (arrays)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from anndata import AnnData

from .._execution import Execution, as_execution, execution_keywords
from ..data.arrays import array_to_anndata
from ..data.counts import check_integer_counts, gene_mean
from ..data.registry import Setup
from ..data.scaling import gene_max
from ..diffusion import BlackoutDiffusion, blackout
from ..train._generate import check_output_memory
from ._cells import AUTO, AnnDataModel
from ._schema import BLACKOUT_ARGS

__all__ = ["SDDBlackout"]


class _Counts:
    """The identity "scaler": Blackout's network input scaling lives in its process."""

    keeps_zeros = True  # the counts are their own non-zero mask: the loader builds none

    @staticmethod
    def transform(x, *, out=None):
        return x if out is None or out is x else out.copy_(x)

    @staticmethod
    def out_of_range(x: torch.Tensor) -> torch.Tensor:
        """Per gene: whether any count is negative, NaN or infinite (data changed after
        setup; the loader checks every minibatch, so the loss need not). Two reductions
        over the minibatch: NaN propagates into both, infinities reach one of them."""
        high, low = x.amax(0), x.amin(0)
        return ~(low.ge(0) & high.isfinite())


class SDDBlackout(AnnDataModel):
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
    _arg_rules = BLACKOUT_ARGS
    _arrays_hint = "SDDBlackout.from_array"

    def __init__(
        self,
        adata: AnnData,
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
        **sparse: Any,
    ) -> None:
        self._capture_init_args(locals())
        self._use_anndata(adata)
        self.gene_max_ = gene_max(self._matrix).astype(np.float32)
        self.gene_mean_ = gene_mean(self._matrix).astype(np.float32)
        self._finish_init()

    scaler_ = _Counts()

    _check_data = staticmethod(check_integer_counts)
    _kind = "Blackout Diffusion on counts"

    def _make_process(self) -> BlackoutDiffusion:
        a = self.init_args_
        return BlackoutDiffusion(
            blackout.BlackoutSchedule(a["n_times"], a["t_end"]),
            torch.as_tensor(self.gene_max_), torch.as_tensor(self.gene_mean_),
            weighting=a["weighting"], parameterization=a["parameterization"],
        )  # fmt: skip

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = "counts",
        labels_key: str | None = None,
        categorical_covariate_keys: Sequence[str] | None = None,
    ) -> None:
        """Register the raw counts and annotations (``adata.uns["sdd_setup"]["SDDBlackout"]``).

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
        _, setup = cls._setup_values(adata, layer, labels_key, categorical_covariate_keys)
        Setup.register(adata, cls._model_class, {**setup, "image_shape": None})

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
        adata = array_to_anndata(images, labels)
        cls.setup_anndata(adata, layer=None, labels_key=None if labels is None else "label")
        setup = Setup.of(adata, cls._model_class)
        shape = [int(s) for s in np.shape(images)[1:]]
        Setup.register(adata, cls._model_class, {**setup.args, "image_shape": shape})
        return cls(adata, **kwargs)

    @execution_keywords("accelerator", "device", "fast", "progress")
    def generate(
        self,
        n_cells: int | None = None,
        *,
        n_steps: int | None = None,
        method: Literal["binomial", "poisson"] = "binomial",
        rounding: Literal["stochastic", "nearest"] = "stochastic",
        clip: bool = True,
        batch_size: int = 2048,
        labels: Mapping[str, Any] | Any = AUTO,
        guidance_scale: float = 0.0,
        random_state: int = 0,
        use_ema: bool = True,
        execution: Execution | None = None,
    ) -> AnnData:
        """Generate cells (integer counts with exact zeros) from the empty state.

        Parameters
        ----------
        n_cells
            Number of cells. ``None``: the length of per-cell ``labels``, the training
            composition with ``labels="training"``, otherwise 10,000.
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
            Condition on labels (a value or per-cell array for ``labels_key``, a dict
            ``{obs key: values}``, ``"training"`` for the training composition, the
            default ``"auto"`` (that composition for a conditional model) or ``None``
            (unconditional), as in :meth:`sdd.SDD.generate`) with classifier-free
            guidance weight ``w``.
        random_state
            Seed; the same seed, model and settings give identical cells on the CPU.
        use_ema
            Sample with the EMA weights.
        execution
            Device, bf16 fast path and progress bar (:class:`sdd.Execution`; ``None``:
            its defaults). ``fast=True`` also works on the CPU here (bf16 autocast);
            ``device`` may list several GPUs (or be ``"all"``) to split each batch.

        Returns
        -------
        AnnData with ``X`` (CSR float32 integer counts, exact zeros), ``layers["counts"]``
        (the same counts), ``layers["sparsity_bits"]`` (``X != 0``), ``obs["source"]``,
        requested labels in ``obs``, the training genes as ``var`` and the settings in
        ``uns["sdd"]``.
        """
        execution = as_execution(execution, training=False)
        self._require_trained()
        n_cells, codes, label_values = self._generation_labels(n_cells, labels)
        check_output_memory(n_cells, 24 * self.n_genes, "cells")
        parts = [
            sp.csr_matrix(x.cpu().numpy())
            for _, _, x in self._sample_batches(
                n_cells, codes=codes, batch_size=batch_size, guidance_scale=guidance_scale,
                random_state=random_state, use_ema=use_ema, execution=execution, n_steps=n_steps, method=method,
                rounding=rounding, clip=clip,
            )
        ]  # fmt: skip
        X = sp.vstack(parts, format="csr")
        out = self._cells(
            X, layers={}, labels=label_values,
            uns=self._provenance(
                process="blackout", sampler=method, rounding=rounding,
                n_steps=self.schedule.n_times if n_steps is None else int(n_steps), clip=clip,
                random_state=random_state, guidance_scale=guidance_scale, use_ema=use_ema,
                layer=self.setup_args_["layer"] or "X",
            ),
        )  # fmt: skip
        out.layers["counts"] = out.X.copy()
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

    # -------------------------------------------------------------- checkpoints
    def _data_state(self) -> dict[str, Any]:
        return {
            **super()._data_state(),
            "gene_max": torch.as_tensor(self.gene_max_),
            "gene_mean": torch.as_tensor(self.gene_mean_),
        }

    def _restore_data(self, state, config) -> None:
        super()._restore_data(state, config)
        self.gene_max_ = state["gene_max"].numpy().astype(np.float32)
        self.gene_mean_ = state["gene_mean"].numpy().astype(np.float32)
        self._check_per_gene(gene_max=self.gene_max_, gene_mean=self.gene_mean_)
