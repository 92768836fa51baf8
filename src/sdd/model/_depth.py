"""`DepthCondition`: each cell's depth (its number of detected genes) as a small value object.

Fitted on the training cells, it holds their depths, the quantile bins the network is
conditioned on (``SDD(depth_bins=)``; none when 0) and the training cells' label codes.
At generation it draws, for every new cell, the exact depth of a training cell with the
same requested labels: its bin conditions the network, and the depth itself is what the
calibration's per-cell offsets match (:class:`~sdd.model._calibration.Calibration`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from ..data.counts import sample_size_factors
from ..data.detection import bin_codes, check_depth_bins, depth_bins

__all__ = ["DepthCondition", "CellDraw"]


class CellDraw(NamedTuple):
    """What :meth:`DepthCondition.draw` gives each new cell (``None`` where unknown)."""

    depths: np.ndarray | None
    totals: np.ndarray | None
    bins: np.ndarray | None


@dataclass(frozen=True)
class DepthCondition:
    """Training depths, their quantile bins and the training label codes.

    Parameters
    ----------
    n_bins
        Quantile bins of the network's depth condition (0: the network is not conditioned
        on depth; the depths still serve the calibration).
    edges
        Inner bin edges (``n_bins - 1`` values; empty when ``n_bins`` is 0).
    depths
        Detected genes of every training cell (``None`` for a model saved before depths
        were kept: no per-cell calibration then).
    training_bins
        The bin of every training cell (kept for models saved without depths).
    totals
        Sum of every training cell's values (``None``: not kept; no total matching).
    label_codes
        Condition codes of the training cells (``None``: unconditional model).

    Examples
    --------
    >>> import numpy as np
    >>> depth = DepthCondition.fit(np.arange(1, 101), None, n_bins=4)
    >>> depth.bins(np.array([1, 100])).tolist()
    [0, 3]
    """

    n_bins: int
    edges: np.ndarray
    depths: np.ndarray | None
    training_bins: np.ndarray | None
    label_codes: np.ndarray | None
    totals: np.ndarray | None = None

    @classmethod
    def fit(
        cls,
        per_cell: np.ndarray,
        label_codes: np.ndarray | None,
        n_bins: int,
        totals: np.ndarray | None = None,
    ) -> DepthCondition:
        """From the training cells' detected genes (``per_cell``), label codes and
        (optionally) the sums of their values."""
        n_bins = check_depth_bins(n_bins)
        per_cell = np.asarray(per_cell, dtype=np.int64)
        edges = depth_bins(per_cell, n_bins) if n_bins else np.zeros(0)
        totals = None if totals is None else np.asarray(totals, dtype=np.float64)
        return cls(n_bins, edges, per_cell, bin_codes(per_cell, edges), label_codes, totals)

    @property
    def conditions(self) -> list[int]:
        """Sizes of the network's per-cell conditions: one covariate of ``n_bins`` values
        and a null token, or none."""
        return [self.n_bins] if self.n_bins else []

    def bins(self, per_cell: np.ndarray) -> np.ndarray:
        """The bin of each depth."""
        return bin_codes(per_cell, self.edges)

    def draw(
        self,
        codes: np.ndarray | None,
        n: int,
        categories: Mapping[str, list],
        rng: np.random.Generator,
    ) -> CellDraw:
        """Depths, totals and bins of ``n`` new cells, each those of one random training
        cell with the same requested labels (``codes``; all training cells when
        unconditional). Depths (totals) are ``None`` without training depths (totals),
        bins ``None`` without a depth condition."""
        pool = self.depths if self.depths is not None else self.training_bins
        if pool is None or (self.depths is None and not self.n_bins):
            return CellDraw(None, None, None)
        index = sample_size_factors(
            np.arange(len(pool), dtype=np.float64), self.label_codes, codes, n, categories,
            rng, what="depths",
        ).astype(np.int64)  # fmt: skip
        if self.depths is None:
            return CellDraw(None, None, self.training_bins[index])
        depths = self.depths[index]
        totals = None if self.totals is None else self.totals[index]
        return CellDraw(depths, totals, self.bins(depths) if self.n_bins else None)

    def condition(
        self,
        codes: np.ndarray | None,
        bins: np.ndarray | None,
        n: int,
        categories: Mapping[str, list],
    ) -> np.ndarray | None:
        """Condition codes with the depth bins appended (the null token where ``bins`` is
        ``None``, e.g. imputation); unchanged without a depth condition."""
        if not self.n_bins:
            return codes
        bins = np.full(n, self.n_bins) if bins is None else bins
        if codes is None:
            null = np.asarray([len(c) for c in categories.values()], dtype=np.int64)
            codes = np.tile(null, (n, 1))
        return np.hstack([codes, bins[:, None].astype(np.int64)])

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors for a checkpoint (the bin count is in the model's config)."""
        state = {"edges": torch.as_tensor(self.edges)}
        if self.depths is not None:
            state["depths"] = torch.as_tensor(self.depths)
        if self.training_bins is not None:
            state["codes"] = torch.as_tensor(self.training_bins)
        if self.label_codes is not None:
            state["label_codes"] = torch.as_tensor(self.label_codes)
        if self.totals is not None:
            state["totals"] = torch.as_tensor(self.totals)
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None, n_bins: int) -> DepthCondition:
        """From :meth:`state_dict` (or an older file's ``depth`` entry, without depths)."""
        state = state or {}
        edges = state.get("edges")
        edges = np.zeros(0) if edges is None else edges.numpy()
        if n_bins and len(edges) != n_bins - 1:
            raise ValueError(f"depth edges: {len(edges)} values for {n_bins} bins.")
        depths, bins, labels, totals = (
            state.get(k) for k in ("depths", "codes", "label_codes", "totals")
        )
        depths = None if depths is None else depths.numpy().astype(np.int64)
        bins = None if bins is None else bins.numpy().astype(np.int64)
        if n_bins and bins is None and depths is None:
            raise ValueError("A model with a depth condition was saved without its depths.")
        if totals is not None and (depths is None or len(totals) != len(depths)):
            raise ValueError("depth totals do not match the saved depths.")
        return cls(
            n_bins, edges, depths, bins, None if labels is None else labels.numpy(),
            None if totals is None else totals.numpy().astype(np.float64),
        )  # fmt: skip

    def with_depths(
        self, per_cell: np.ndarray, label_codes: np.ndarray | None, totals: np.ndarray | None
    ) -> DepthCondition:
        """The same bins with training depths (and totals) read from attached data."""
        per_cell = np.asarray(per_cell, dtype=np.int64)
        return DepthCondition(
            self.n_bins, self.edges, per_cell, self.bins(per_cell), label_codes, totals
        )
