"""Plumbing shared by the model classes :class:`~sdd.SDD`, :class:`~sdd.SDDImage` and
:class:`~sdd.SDDBlackout`.

- :class:`ModelBase`: training history, checkpoint state (weights, EMA, weight masks,
  history) and its restoration, and the checks every sampler starts with;
- :func:`classifier_free_guidance` and :func:`label_dropout`: conditioning in sampling
  and training;
- :func:`obs_categories` and :func:`obs_codes`: condition labels read from ``adata.obs``;
- :func:`plain`: setup arguments as plain Python values (after an h5ad round trip).

The class only holds private helpers; each model keeps its public methods and
properties, so they stay documented on the model's own page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from .._version import __version__
from ..data import check_var_names, get_matrix, matrix_name, obs_categories, obs_codes, plain  # noqa: F401

HISTORY_COLUMNS = ("step", "epoch", "loss")


# ---------------------------------------------------------------------- history
def empty_history() -> pd.DataFrame:
    """The ``history_`` of an untrained model: no rows, columns step, epoch, loss."""
    return pd.DataFrame(columns=list(HISTORY_COLUMNS))


def history_to_state(history: pd.DataFrame) -> dict[str, torch.Tensor]:
    """Columns of ``history`` as float64 tensors, as stored in ``model.pt``."""
    return {c: torch.as_tensor(history[c].to_numpy(dtype=np.float64)) for c in HISTORY_COLUMNS}


def history_from_state(tensors: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """Inverse of :func:`history_to_state` (integer step and epoch)."""
    history = pd.DataFrame({k: v.numpy() for k, v in tensors.items()})
    history[["step", "epoch"]] = history[["step", "epoch"]].astype(np.int64)
    return history


# ---------------------------------------------------------------------- conditioning
def classifier_free_guidance(
    fn: Callable[..., torch.Tensor],
    net: torch.nn.Module,
    cond: torch.Tensor | None,
    guidance_scale: float,
) -> Callable[..., torch.Tensor]:
    """``f(*inputs)``: ``fn(*inputs, cond)`` with classifier-free guidance weight ``w``.

    With ``cond`` and ``w != 0``, ``fn`` runs once on the inputs stacked twice, with the
    labels and with the null token of ``net.labels``, and ``f`` returns
    ``(1 + w) f_cond - w f_uncond``; otherwise plain ``fn(*inputs, cond)``.

    Parameters
    ----------
    fn
        Called as ``fn(*inputs, codes)``, batch first.
    net
        The network; its label embedding ``net.labels`` supplies the null token.
    cond
        Label codes ``(batch, n_covariates)``, or ``None`` for unconditional sampling.
    guidance_scale
        Guidance weight ``w``.

    Returns
    -------
    The (guided) function of the inputs.
    """
    if cond is None or guidance_scale == 0:
        return lambda *inputs: fn(*inputs, cond)
    null = net.labels.null(cond.shape[0], cond.device)
    w = float(guidance_scale)

    def guided(*inputs: torch.Tensor) -> torch.Tensor:
        both = fn(*(torch.cat([v, v]) for v in inputs), torch.cat([cond, null]))
        f_cond, f_uncond = both.chunk(2)
        return (1 + w) * f_cond - w * f_uncond

    return guided


def label_dropout(
    net: torch.nn.Module,
    p: float,
    device: torch.device,
    generator: torch.Generator,
) -> Callable[[torch.Tensor | None], torch.Tensor | None]:
    """``drop(codes)``: each label replaced by the null token with probability ``p``.

    Trains the unconditional model of classifier-free guidance alongside the
    conditional one. ``None`` codes, and any codes when ``p`` is 0, pass unchanged
    (and draw no random numbers).

    Parameters
    ----------
    net
        The network; ``net.labels.n_categories`` are the null tokens.
    p
        Drop probability.
    device, generator
        Where the codes live; the random generator of the training run.

    Returns
    -------
    The dropout function.
    """
    null = None
    if net.labels is not None:
        null = torch.tensor(net.labels.n_categories, device=device)

    def drop(codes: torch.Tensor | None) -> torch.Tensor | None:
        if codes is not None and p > 0:
            dropped = torch.rand(codes.shape, device=device, generator=generator) < p
            codes = torch.where(dropped, null.expand_as(codes), codes)
        return codes

    return drop


def check_saved_setup(
    var_names: list[str], setup: Mapping[str, Any], per_gene: Mapping[str, Any]
) -> None:
    """Raise ``ValueError`` if a loaded config/state pair is inconsistent."""
    if len(set(var_names)) != len(var_names):
        raise ValueError("var_names are not unique.")
    missing = [k for k in ("layer", "labels_key", "categories") if k not in setup]
    if missing:
        raise ValueError(f"setup_args lacks {missing}.")
    for name, values in per_gene.items():
        if tuple(values.shape) != (len(var_names),):
            raise ValueError(
                f"{name} has shape {tuple(values.shape)}, expected ({len(var_names)},) "
                "(one value per gene)."
            )


# ---------------------------------------------------------------------- models
class ModelBase:
    """Private helpers of the model classes (weights, EMA, history, checkpoints).

    A model sets ``module`` (the network, a :class:`torch.nn.Module`), ``ema_``
    (:class:`~sdd.train.EMA`), ``history_`` (:class:`pandas.DataFrame`), ``is_trained_``,
    ``init_args_`` and ``_model_class``, and optionally ``weight_masks_`` and
    ``train_args_``.
    """

    # no class-level annotations: autosummary would list them on the models' pages

    # ------------------------------------------------------------------ data
    def _use_anndata(
        self,
        adata: AnnData,
        setup_key: str,
        *,
        setup: Callable[[AnnData], None],
        check: Callable[..., None],
        arrays: str,
    ) -> None:
        """Set ``setup_args_``, ``_matrix`` and ``var_names_`` from ``adata``.

        Runs ``setup(adata)`` if ``adata`` is not registered yet; otherwise checks the data
        (``check(matrix, where=...)``) and the registered label columns again, since the
        AnnData may have changed after ``setup_anndata`` checked it.
        """
        if not isinstance(adata, AnnData):
            raise TypeError(
                f"Expected an AnnData object, got {type(adata).__name__}; for arrays use {arrays}."
            )
        registered = setup_key in adata.uns
        if not registered:
            setup(adata)
        self.setup_args_ = plain(adata.uns[setup_key])
        layer = self.setup_args_["layer"]
        self._matrix = get_matrix(adata, layer)
        if registered:
            check(self._matrix, where=matrix_name(layer))
            obs_codes(adata, self.setup_args_.get("categories", {}))
        self.var_names_ = check_var_names(adata)

    # ------------------------------------------------------------------ training
    def _last_step(self) -> int:
        """Optimiser steps trained so far (0 for an untrained model)."""
        return int(self.history_["step"].max()) if len(self.history_) else 0

    def _status(self) -> str:
        """``"trained for N steps"`` or ``"not trained"``, for ``__repr__``."""
        return f"trained for {self._last_step()} steps" if self.is_trained_ else "not trained"

    def _append_history(self, history: pd.DataFrame) -> None:
        """Add the rows of a training run to ``history_``."""
        self.history_ = (
            history
            if not len(self.history_)
            else pd.concat([self.history_, history], ignore_index=True)
        )

    def _weight_mask_hook(self, start: int, max_steps: int) -> Callable[[int], None] | None:
        """Plan the weight-mask updates of a run; the ``after_step`` hook (``None`` if dense)."""
        masks = getattr(self, "weight_masks_", None)
        if masks is None:
            return None
        masks.plan(start, max_steps)
        return masks.hook(self.module, self.ema_)

    # ------------------------------------------------------------------ sampling
    def _require_trained(self) -> None:
        if not self.is_trained_:
            raise ValueError("The model is not trained yet; call model.train() first.")

    def _sampling_net(self, use_ema: bool, device: torch.device) -> torch.nn.Module:
        """The EMA (or raw) network on ``device`` in eval mode; move it back with ``.cpu()``."""
        return (self.ema_.model if use_ema else self.module).to(device).eval()

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_state(self, **data: Any) -> dict[str, Any]:
        """``model.pt`` content: weights, EMA, ``data`` (e.g. scaling), history, masks."""
        state = {
            "module": self.module.state_dict(),
            "ema": self.ema_.model.state_dict(),
            "ema_updates": int(self.ema_.n_updates),
            **data,
            "history": history_to_state(self.history_),
        }
        masks = getattr(self, "weight_masks_", None)
        if masks is not None:
            state["weight_masks"] = masks.state_dict()
        return state

    def _checkpoint_config(self, **data: Any) -> dict[str, Any]:
        """``config.json`` content: version, class, init arguments, ``data``, training status."""
        return {
            "sdd_version": __version__,
            "model_class": self._model_class,
            "init_args": self.init_args_,
            **data,
            "is_trained": bool(self.is_trained_),
            "train_args": getattr(self, "train_args_", None),
        }

    def _load_weights(self, state: Mapping[str, Any]) -> None:
        """Load network, EMA and weight-mask state saved by :meth:`_checkpoint_state`."""
        self.module.load_state_dict(state["module"])
        self.ema_.model.load_state_dict(state["ema"])
        masks = getattr(self, "weight_masks_", None)
        if masks is not None:
            masks.load_state_dict(state["weight_masks"])

    def _restore_training_state(self, state: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        """EMA update count, ``is_trained_`` and ``train_args_`` of a loaded model."""
        self.ema_.n_updates = int(state.get("ema_updates", 0))
        self.is_trained_ = bool(config.get("is_trained", False))
        if config.get("train_args"):
            self.train_args_ = config["train_args"]
