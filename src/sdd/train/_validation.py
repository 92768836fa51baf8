"""Held-out validation for any model: the split, the validation loss and early stopping.

Kept out of the training loop (:func:`~sdd.train.train_denoiser` knows nothing of it):
a model trains in chunks of ``validation_every`` steps, each continuing the one before,
and evaluates :func:`validation_loss` between them (see :meth:`sdd.model.DiffusionModel.train`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from .._progress import tqdm
from ..data.validate import check_int
from ..diffusion import DiffusionProcess

__all__ = [
    "EarlyStopping",
    "ProgressBar",
    "check_validation_options",
    "check_validation_size",
    "default_validation_every",
    "held_out_rows",
    "split_rows",
    "train_validated",
    "validation_loss",
]

logger = logging.getLogger("sdd")

#: ``train_chunk(n_steps, steps_done, optimizer_state, bar) -> (history, optimizer_state)``
ChunkFn = Callable[[int, int, "dict | None", tqdm], tuple[pd.DataFrame, dict]]

#: Seed of the times and noise of every evaluation: each sees the same draws.
VALIDATION_SEED = 0
#: Early stopping: an evaluation improves on the best one if it is lower by more than
#: this fraction of the best (relative ``min_delta``).
MIN_DELTA = 1e-3
#: Default ``validation_every``: one epoch, but at most this many evaluations per call.
MAX_EVALUATIONS = 50
# the split's own random stream (never the training stream): rng([seed, _SPLIT_STREAM])
_SPLIT_STREAM = 0x5DD


def check_validation_size(value: Any) -> float | None:
    """``validation_size`` as a float in (0, 1), or ``None``.

    Examples
    --------
    >>> check_validation_size(0.1), check_validation_size(None)
    (0.1, None)
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"validation_size must be a number in (0, 1) or None, got {value!r}.")
    if not (np.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(
            f"validation_size must be in (0, 1) (the fraction of rows held out), got {value!r}."
        )
    return float(value)


def check_validation_options(
    validation_size: Any, validation_every: Any, early_stopping: Any, patience: Any
) -> tuple[float | None, int | None, int]:
    """The checked ``validation_size``, ``validation_every`` and ``early_stopping_patience``
    of ``train`` (``TypeError``/``ValueError`` naming the argument)."""
    validation_size = check_validation_size(validation_size)
    if validation_every is not None:
        validation_every = check_int(validation_every, "validation_every", 1)
    if not isinstance(early_stopping, bool | np.bool_):
        raise TypeError(f"early_stopping must be True or False, got {early_stopping!r}.")
    return validation_size, validation_every, check_int(patience, "early_stopping_patience", 1)


def held_out_rows(
    indices: np.ndarray | None,
    known: dict[str, Any] | None,
    n_rows: int,
    validation_size: float | None,
    *,
    seed: int,
    trained: bool,
    early_stopping: bool = False,
    validation_every: int | None = None,
) -> np.ndarray | None:
    """The rows a ``train`` call holds out: the model's split, a new one, or ``None``.

    Parameters
    ----------
    indices, known
        The model's split (``validation_indices_``) and its ``validation_size`` and
        ``n_rows``; ``None`` if it has none.
    n_rows
        Rows of the training data.
    validation_size
        This call's (checked) ``validation_size``.
    seed
        Seed of a new split.
    trained
        Whether the model was trained before (without a split, a new one is refused).
    early_stopping, validation_every
        Options that need a split (``ValueError`` without one).
    """
    if indices is None:
        if validation_size is None:
            needed = "early_stopping" if early_stopping else "validation_every"
            if early_stopping or validation_every is not None:
                raise ValueError(
                    f"{needed} needs a validation split: pass validation_size (e.g. 0.1)."
                )
            return None
        if trained:
            raise ValueError(
                f"validation_size={validation_size}: this model was trained without a "
                "validation split, so every row has been trained on; hold rows out from "
                "the first train() call of a new model."
            )
        return split_rows(n_rows, validation_size, seed)
    known = known or {}
    if known.get("n_rows") != n_rows:
        raise ValueError(
            f"The model's validation split was drawn from {known.get('n_rows')} rows, but "
            f"the training data has {n_rows}; train on the data the model was trained on."
        )
    if validation_size is not None and validation_size != known.get("validation_size"):
        raise ValueError(
            f"validation_size={validation_size}: this model's validation split "
            f"(validation_size={known.get('validation_size')}) is fixed; omit validation_size "
            "to keep it, or train a new model."
        )
    return indices


def default_validation_every(steps_per_epoch: int, max_steps: int) -> int:
    """Steps between evaluations when ``validation_every=None``: one epoch, but at most
    :data:`MAX_EVALUATIONS` evaluations in a call of ``max_steps`` steps.

    Examples
    --------
    >>> default_validation_every(4, 100), default_validation_every(4, 10_000)
    (4, 200)
    """
    return max(1, int(steps_per_epoch), -(-int(max_steps) // MAX_EVALUATIONS))


def split_rows(n: int, validation_size: float, seed: int) -> np.ndarray:
    """The sorted indices of the ``floor(validation_size * n)`` rows held out (at least one).

    A seeded permutation of ``range(n)`` from its own stream, so the split is the same
    for the same ``seed`` and never moves the training random numbers.

    Examples
    --------
    >>> split_rows(10, 0.2, seed=0).tolist() == split_rows(10, 0.2, seed=0).tolist()
    True
    >>> len(split_rows(10, 0.25, seed=0))
    2
    """
    n_val = max(1, int(math.floor(validation_size * n)))
    if n - n_val < 1:
        raise ValueError(
            f"validation_size={validation_size} leaves no training rows out of {n}; "
            "use a smaller validation_size or more data."
        )
    order = np.random.default_rng([int(seed), _SPLIT_STREAM]).permutation(n)
    return np.sort(order[:n_val]).astype(np.int64)


@torch.no_grad()
def validation_loss(
    net: nn.Module,
    process: DiffusionProcess,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]],
    *,
    seed: int = VALIDATION_SEED,
    distributed: bool = False,
) -> float:
    """``process.loss`` of ``net`` averaged over the rows of ``batches`` (eval mode, no grad).

    The times, noise and self-conditioning coins come from a generator seeded with
    ``seed`` afresh on every call, so successive evaluations of a changing network see
    the same draws and are comparable.

    Parameters
    ----------
    net
        The network to evaluate (usually the EMA's), on its device.
    process
        The diffusion process whose ``loss`` is averaged.
    batches
        ``(x0, cond or None)`` batches on ``net``'s device, encoded like training batches.
    seed
        Seed of the evaluation's random numbers.
    distributed
        Under ``torch.distributed``: every process takes rank 0's value, so that all
        stop at the same step.

    Returns
    -------
    The mean loss per row.

    Examples
    --------
    >>> from sdd.diffusion import GaussianDiffusion
    >>> from sdd.nn import SkipMLP
    >>> net, x = SkipMLP(4, hidden=(8,), emb_dim=4), torch.rand(6, 4) * 2 - 1
    >>> a = validation_loss(net, GaussianDiffusion(), [(x[:4], None), (x[4:], None)])
    >>> a == validation_loss(net, GaussianDiffusion(), [(x[:4], None), (x[4:], None)])
    True
    """
    device = next(net.parameters()).device
    generator = torch.Generator(device).manual_seed(int(seed))
    training = net.training
    net.eval()
    total, count = 0.0, 0
    try:
        for x0, cond in batches:
            loss = process.loss(net, x0, cond, generator=generator)
            total += float(loss) * x0.shape[0]
            count += x0.shape[0]
    finally:
        net.train(training)
    if count == 0:
        raise ValueError("No validation rows to evaluate.")
    value = total / count
    if distributed and dist.is_available() and dist.is_initialized():
        where = device if dist.get_backend() == "nccl" else torch.device("cpu")
        buf = torch.tensor([value], dtype=torch.float64, device=where)
        dist.broadcast(buf, src=0)
        value = float(buf.item())
    return value


class EarlyStopping:
    """Stop after ``patience`` evaluations without a relative improvement of ``min_delta``.

    An evaluation improves if it is below ``best - min_delta * |best|``.

    Examples
    --------
    >>> stop = EarlyStopping(patience=2)
    >>> [stop.update(v) for v in (1.0, 0.5, 0.5, 0.4999)]
    [False, False, False, True]
    >>> stop.best, stop.wait
    (0.5, 2)
    """

    def __init__(self, patience: int, min_delta: float = MIN_DELTA) -> None:
        self.patience, self.min_delta = int(patience), float(min_delta)
        self.best = math.inf
        self.wait = 0

    def update(self, value: float) -> bool:
        """Record one evaluation; return whether to stop."""
        if value < self.best - self.min_delta * abs(self.best) or math.isinf(self.best):
            self.best, self.wait = float(value), 0
        else:
            self.wait += 1
        return self.wait >= self.patience


class ProgressBar(tqdm):
    """A ``tqdm`` bar that keeps ``extra`` entries (e.g. the validation loss) in its
    postfix when the training loop sets its own."""

    extra: dict[str, str]

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        """Set the postfix to the given entries followed by :attr:`extra`."""
        entries = {**dict(ordered_dict or {}), **kwargs, **getattr(self, "extra", {})}
        super().set_postfix(entries, refresh=refresh)


def train_validated(
    train_chunk: ChunkFn,
    evaluate: Callable[[], float],
    *,
    max_steps: int,
    every: int,
    optimizer_state: dict | None = None,
    patience: int | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict | None, int]:
    """Train in chunks of ``every`` steps and evaluate after each (and at the end).

    Each chunk continues the one before (optimiser state, step count; the caller's
    batch stream and generator go on by themselves), so without early stopping the
    weights and losses are those of one call of ``max_steps`` steps (bit for bit on the
    CPU).

    Parameters
    ----------
    train_chunk
        ``train_chunk(n_steps, steps_done, optimizer_state, bar)``: train ``n_steps``
        more steps, advancing ``bar``; returns their history and the optimiser state.
    evaluate
        The validation loss of the current weights.
    max_steps, every
        Steps in all; steps between evaluations.
    optimizer_state
        Adam state to continue from.
    patience
        Stop after this many evaluations in a row without a relative improvement of
        :data:`MIN_DELTA` (``None``: never stop early); the stop is logged (INFO) on
        the ``"sdd"`` logger. The evaluation at the end of the last chunk never stops.
    progress
        Show one progress bar over all chunks, with the last validation loss.

    Returns
    -------
    The history of the steps run, with a ``validation_loss`` column (NaN on steps
    without an evaluation), the optimiser state and the number of steps run.
    """
    stopper = None if patience is None else EarlyStopping(patience)
    parts: list[pd.DataFrame] = []
    done = 0
    bar = ProgressBar(total=max_steps, desc="Training", disable=not progress, unit="step")
    bar.extra = {}
    try:
        while done < max_steps:
            n = min(every, max_steps - done)
            part, optimizer_state = train_chunk(n, done, optimizer_state, bar)
            done += n
            value = evaluate()
            column = np.full(len(part), np.nan)
            column[-1] = value
            parts.append(part.assign(validation_loss=column))
            bar.extra = {"val_loss": f"{value:.4f}"}
            bar.set_postfix(loss=f"{part['loss'].tail(50).mean():.4f}")
            if stopper is not None and stopper.update(value) and done < max_steps:
                step = int(part["step"].iloc[-1])
                logger.info(
                    "Early stopping at step %d (%d of %d steps of this call): the validation "
                    "loss did not improve by more than %g of its best, %.6g, in %d evaluations.",
                    step, done, max_steps, MIN_DELTA, stopper.best, stopper.wait,
                )  # fmt: skip
                break
    finally:
        bar.close()
    return pd.concat(parts, ignore_index=True), optimizer_state, done
