"""Save and load, written once for every model: ``model.pt`` + ``config.json``.

``load`` rebuilds a model from ``init_args_`` and ``_restore_data`` and checks the saved
weights against the network the config describes before allocating anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Self

import torch

from .._version import __version__
from ..io.checkpoint import (
    check_state_shapes,
    history_from_state,
    history_to_state,
    load_dir,
    save_dir,
)
from ..train._device import resolve_device

SPARSE_OPTIONS = (
    "sparse_method",
    "sparse_update_interval",
    "sparse_drop_fraction",
    "dense_layers",
    "sparse_distribution",
)


class CheckpointMixin:
    """``save`` / ``load`` of :class:`~sdd.model.DiffusionModel`."""

    # ------------------------------------------------------------------ checkpoints
    def save(
        self, dir_path: str | os.PathLike, *, overwrite: bool = False, with_optimizer: bool = False
    ) -> None:
        """Save the model into a directory (``model.pt`` + ``config.json``), atomically.

        ``model.pt`` holds tensors only (``torch.load(weights_only=True)`` reads it). It
        keeps two copies of the network, on purpose: the trained weights (so that
        ``train`` continues exactly where it stopped) and their exponential moving
        average (what ``generate`` uses). A model directory therefore takes about 8 bytes
        per parameter (``model.n_params``), 16 with ``with_optimizer``, plus the training
        depths and calibration tables (a few bytes per cell and gene).

        Parameters
        ----------
        dir_path
            Directory to write (created; replaced only with ``overwrite=True``).
        overwrite
            Replace an existing model directory.
        with_optimizer
            Also store the training state (Adam moments, random-number state and the
            position in the batch stream), so that ``load(dir, data).train(n)``
            continues exactly as one longer run would.
        """
        state: dict[str, Any] = {
            "module": self.module.state_dict(),
            "ema": self.ema_.model.state_dict(),
            "ema_updates": int(self.ema_.n_updates),
            "ema_carry": float(self.ema_.carry),
            **self._data_state(),
            "history": history_to_state(self.history_),
        }
        if self.weight_masks_ is not None:
            state["weight_masks"] = self.weight_masks_.state_dict()
        if with_optimizer and self._train_state is not None:
            state["train_state"] = self._train_state
        if self.validation_indices_ is not None:  # the rows held out: never trained on
            state["validation_indices"] = torch.as_tensor(self.validation_indices_)
        config = {
            "sdd_version": __version__,
            "model_class": self._model_class,
            "init_args": self.init_args_,
            **self._data_config(),
            "is_trained": bool(self.is_trained_),
            "train_args": self.train_args_,
            "validation": self._validation,
        }
        save_dir(os.path.expanduser(dir_path), state, config, overwrite=overwrite)

    @classmethod
    def load(
        cls,
        dir_path: str | os.PathLike,
        *data: Any,
        accelerator: str = "cpu",
        device: int | str | None = None,
        **data_kwargs: Any,
    ) -> Self:
        """Load a model saved with :meth:`save`.

        Parameters
        ----------
        dir_path
            Directory written by :meth:`save`.
        *data, **data_kwargs
            Optional training data to continue training on, as the constructor takes it
            (``adata`` for :class:`~sdd.SDD` and :class:`~sdd.SDDBlackout`; ``images``
            and ``labels`` for :class:`~sdd.SDDImage`); it must match the saved model
            (same genes in the same order, or the same image shape).
        accelerator, device
            Where the network is placed (``"cpu"``, ``"auto"``, ``"cuda"``, ``"mps"``; a
            GPU index), as in scvi-tools' ``load``; see :attr:`device`.

        Examples
        --------
        >>> model = sdd.SDD.load("my_model")  # doctest: +SKIP
        >>> model = sdd.SDD.load("my_model", adata=adata, accelerator="auto").train(1_000)  # doctest: +SKIP
        """
        dev = resolve_device(accelerator, device)
        dir_path = os.path.expanduser(dir_path)
        state, config = load_dir(dir_path, model_class=cls._model_class)
        try:
            model = cls._from_checkpoint(state, config)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise ValueError(f"Corrupt model directory {dir_path}: {err}") from err
        if data or any(v is not None for v in data_kwargs.values()):
            model._attach(*data, **data_kwargs)
        model.module.to(dev)
        model.ema_.model.to(dev)
        return model

    @classmethod
    def _from_checkpoint(cls, state: Mapping[str, Any], config: Mapping[str, Any]) -> Self:
        model = cls.__new__(cls)
        init_args = dict(config["init_args"])
        names = cls._init_arg_names()
        unknown = sorted(set(init_args) - names - {"weight_sparsity", *SPARSE_OPTIONS})
        if unknown:
            raise ValueError(f"config.json has unknown init_args {unknown}.")
        model.init_args_ = init_args
        model._restore_data(state, config)
        model._check_init_args()
        model._check_network_shapes(state["module"])
        model._finish_init()
        model.module.load_state_dict(state["module"])
        model.ema_.model.load_state_dict(state["ema"])
        if model.weight_masks_ is not None:
            model.weight_masks_.load_state_dict(state["weight_masks"])
        model.ema_.n_updates = int(state.get("ema_updates", 0))
        model.ema_.carry = float(state.get("ema_carry", 1.0))  # files before EMA.every: 1
        if not 0.0 <= model.ema_.carry <= 1.0:
            raise ValueError(f"ema_carry must lie in [0, 1], got {model.ema_.carry}.")
        model.history_ = history_from_state(state["history"])
        model.is_trained_ = bool(config.get("is_trained", False))
        model.train_args_ = config.get("train_args") or None
        model._train_state = state.get("train_state")
        if "validation_indices" in state:
            model.validation_indices_ = state["validation_indices"].numpy().astype("int64")
            model._validation = dict(config["validation"])
        return model

    def _check_network_shapes(self, saved: Mapping[str, torch.Tensor]) -> None:
        """Compare the network the config describes with the saved weights, allocating nothing."""
        self.process = self._make_process()
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in self._build_network().state_dict().items()}
        check_state_shapes(expected, saved)
