"""scanpy-style training and generation: ``sdd.tl.fit`` and ``sdd.tl.generate``."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from anndata import AnnData

from .._execution import Execution, as_execution, execution_keywords, moved_keywords, option_dict
from ..data.validate import check_seed
from ..model import SDD

logger = logging.getLogger("sdd")


class FittedModels:
    """The registry of models trained by :func:`fit`, available as ``sdd.tl.fitted``.

    :func:`generate` without ``model=`` uses the last one and logs which it is; this is
    the package's only remembered model state, and it is explicit: inspect it with
    ``sdd.tl.fitted.last`` or empty it with ``sdd.tl.fitted.clear()``.

    Examples
    --------
    >>> sdd.tl.fitted.last is None or hasattr(sdd.tl.fitted.last, "generate")  # doctest: +SKIP
    True
    """

    def __init__(self) -> None:
        self._entries: list[tuple[SDD, str]] = []

    def add(self, model: SDD, description: str) -> None:
        """Remember ``model`` (trained on the data ``description`` names)."""
        self._entries.append((model, description))

    @property
    def last(self) -> SDD | None:
        """The model the last :func:`fit` returned (``None`` before any)."""
        return self._entries[-1][0] if self._entries else None

    def describe_last(self) -> str:
        return self._entries[-1][1] if self._entries else ""

    def clear(self) -> None:
        """Forget every remembered model."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


fitted = FittedModels()


#: tl.fit(setup_kwargs=...) and (train_kwargs=...) options; None: SDD's own default
SETUP_OPTIONS = dict.fromkeys(("counts_layer", "library_size_key", "target_sum"))
TRAIN_OPTIONS = dict.fromkeys((
    "batch_size", "lr", "ema_decay", "lr_schedule", "warmup_steps", "validation_size",
    "validation_every", "early_stopping", "early_stopping_patience",
))  # fmt: skip


@moved_keywords("setup_kwargs", frozenset(SETUP_OPTIONS))
@moved_keywords(
    "train_kwargs", frozenset({"batch_size", "lr", "validation_size", "early_stopping"})
)
@execution_keywords("accelerator", "progress")
def fit(
    adata: AnnData,
    *,
    layer: str | None = None,
    labels_key: str | None = None,
    categorical_covariate_keys: Sequence[str] | None = None,
    recipe: str = "paper",
    sparsity_bits: bool = True,
    max_steps: int = 10_000,
    calibrate: bool = True,
    random_state: int = 0,
    setup_kwargs: Mapping[str, Any] | None = None,
    train_kwargs: Mapping[str, Any] | None = None,
    execution: Execution | None = None,
    **model_kwargs: Any,
) -> SDD:
    """Train an :class:`~sdd.SDD` model on ``adata`` and remember it for :func:`generate`.

    Registers ``adata`` as :meth:`sdd.SDD.setup_anndata` does (``adata.uns["sdd_setup"]``,
    its only change to ``adata``); the model, training and calibration parameters are
    on the returned model (``setup_args_``, ``init_args_``, ``train_args_``,
    ``calibration_.settings``) and travel with it when it is saved.

    Parameters
    ----------
    adata
        Cells x genes, non-negative (usually log1p-normalised).
    layer
        Layer to train on instead of ``adata.X``.
    labels_key, categorical_covariate_keys
        ``obs`` columns to condition on (optional). Pass the cell types when the data
        have them: generation then follows the training composition and each new cell
        draws its depth from a training cell of its type, which made the cells harder
        to tell from real ones on the tuning set (docs: *Whole cells*).
    recipe
        ``"paper"`` (the SDD paper's network and optimiser settings) or ``"cpu"`` (a
        smaller, cheaper network); see :class:`~sdd.SDD`. It also sets the training's
        ``batch_size`` and ``lr`` unless ``train_kwargs`` does.
    sparsity_bits
        ``False`` trains the plain diffusion baseline.
    max_steps
        Optimiser steps (:meth:`sdd.SDD.train`).
    calibrate
        After training, fit the calibration (:meth:`sdd.SDD.calibrate` with its
        defaults; only with sparsity bits): every generated cell gets the depth of a
        training cell with the same labels, every gene the training detection rate,
        and expressed values move three quarters of the way onto the training
        quantiles. These copy training statistics into the output.
    random_state
        Seed of the initial weights and of training: the same seed and data give the
        same model.
    setup_kwargs
        More of :meth:`sdd.SDD.setup_anndata`: ``counts_layer``, ``library_size_key``,
        ``target_sum`` (where the training library sizes come from, for
        ``generate(counts=True)``).
    train_kwargs
        More of :meth:`sdd.SDD.train`: ``batch_size``, ``lr``, ``validation_size`` (hold
        that fraction of the cells out and record a ``validation_loss`` in
        ``model.history``), ``early_stopping``, ``ema_decay``, ...
    execution
        Device, fast path and progress bar of training and calibration
        (:class:`sdd.Execution`).
    **model_kwargs
        Architecture arguments of :class:`~sdd.SDD` (``hidden``, ``emb_dim``, ...).

    Returns
    -------
    The trained model.

    Examples
    --------
    >>> import scanpy as sc, sdd
    >>> adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    >>> model = sdd.tl.fit(adata, max_steps=500, train_kwargs={"batch_size": 256})  # doctest: +SKIP
    >>> gen = sdd.tl.generate(n_cells=1000)  # doctest: +SKIP
    """
    setup = {
        k: v
        for k, v in option_dict(setup_kwargs, SETUP_OPTIONS, "setup_kwargs").items()
        if v is not None
    }
    train = {
        k: v
        for k, v in option_dict(train_kwargs, TRAIN_OPTIONS, "train_kwargs").items()
        if v is not None
    }
    execution = as_execution(execution)
    SDD.setup_anndata(
        adata,
        layer=layer,
        labels_key=labels_key,
        categorical_covariate_keys=categorical_covariate_keys,
        **setup,
    )
    random_state = check_seed(random_state)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG untouched
        torch.manual_seed(random_state)
        model = SDD(adata, sparsity_bits=sparsity_bits, recipe=recipe, **model_kwargs)
    start = time.perf_counter()
    model.train(max_steps=max_steps, random_state=random_state, execution=execution, **train)
    logger.info(
        "trained %d steps in %.1f s", model.train_args_["max_steps"], time.perf_counter() - start
    )
    if calibrate and sparsity_bits:
        start = time.perf_counter()
        model.calibrate(execution=execution.replace(data_on_device=None, distributed=None))
        logger.info(
            "calibrated in %.1f s (a step of its own: SDD.calibrate)", time.perf_counter() - start
        )
    fitted.add(model, f"fit #{len(fitted) + 1} on {adata.n_obs} cells x {adata.n_vars} genes")
    return model


def generate(n_cells: int | None = None, *, model: SDD | None = None, **kwargs: Any) -> AnnData:
    """Generate cells from ``model`` or, by default, the model last trained by :func:`fit`.

    Parameters
    ----------
    n_cells
        Number of cells; ``None``: 10,000, the length of per-cell ``labels``, or the
        training composition with ``labels="training"`` (see :meth:`sdd.SDD.generate`).
    model
        A trained model; defaults to the last one :func:`fit` returned.
    **kwargs
        Passed to :meth:`sdd.SDD.generate` (``sampler``, ``n_steps``, ``labels``,
        ``guidance_scale``, ``counts``, ...).

    Returns
    -------
    AnnData of generated cells (see :meth:`sdd.SDD.generate`).
    """
    if model is None:
        model = fitted.last
        if model is None:
            raise ValueError("No model: call sdd.tl.fit(adata) first or pass model=.")
        if len(fitted) > 1:
            warnings.warn(
                f"sdd.tl.generate: {len(fitted)} models were fitted in this session; using "
                f"the last one ({fitted.describe_last()}). Pass model= to choose.",
                UserWarning,
                stacklevel=2,
            )
        else:
            logger.info("sdd.tl.generate: using the model of %s", fitted.describe_last())
    if n_cells is None:  # the model's own default
        return model.generate(**kwargs)
    return model.generate(n_cells, **kwargs)
