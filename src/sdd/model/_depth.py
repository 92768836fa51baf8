"""`DepthCondition`: each cell's depth (its number of detected genes) as a small value object.

Fitted on the training cells, it holds their depths, the quantile bins the network is
conditioned on (``SDD(depth_bins=)``; none when 0) and the training cells' label codes.
At generation it draws, for every new cell, the exact depth of a training cell with the
same requested labels: its bin conditions the network, and the depth itself is what the
calibration's per-cell offsets match (:class:`~sdd.model._calibration.Calibration`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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
    scale_bins: np.ndarray | None = None


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
    n_scale_bins, scale_edges
        Quantile bins of each cell's mean expressed value (its total over its depth), a
        second per-cell condition of the network (0: none). In log-normalised data the
        mean expressed value falls with depth (one count weighs more in a small cell);
        drawn from the same training cell as the depth, it tells the network the scale
        of the cell's values.

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
    n_scale_bins: int = 0
    scale_edges: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def fit(
        cls,
        per_cell: np.ndarray,
        label_codes: np.ndarray | None,
        n_bins: int,
        totals: np.ndarray | None = None,
        n_scale_bins: int = 0,
    ) -> DepthCondition:
        """From the training cells' detected genes (``per_cell``), label codes and
        (optionally) the sums of their values."""
        n_bins = check_depth_bins(n_bins)
        n_scale_bins = check_depth_bins(n_scale_bins, "scale_bins")
        if n_scale_bins and totals is None:
            raise ValueError("scale_bins needs the training cells' totals.")
        per_cell = np.asarray(per_cell, dtype=np.int64)
        edges = depth_bins(per_cell, n_bins) if n_bins else np.zeros(0)
        totals = None if totals is None else np.asarray(totals, dtype=np.float64)
        scale_edges = (
            depth_bins(mean_values(totals, per_cell), n_scale_bins) if n_scale_bins else np.zeros(0)
        )
        return cls(
            n_bins, edges, per_cell, bin_codes(per_cell, edges), label_codes, totals,
            n_scale_bins, scale_edges,
        )  # fmt: skip

    @property
    def conditions(self) -> list[int]:
        """Sizes of the network's per-cell conditions: one covariate of ``n_bins`` values
        (and one of ``n_scale_bins``), each with a null token, or none."""
        return [n for n in (self.n_bins, self.n_scale_bins) if n]

    def training_codes(self, per_cell: np.ndarray, totals: np.ndarray) -> np.ndarray | None:
        """The per-cell condition columns of cells with these depths and totals."""
        columns = []
        if self.n_bins:
            columns.append(self.bins(per_cell))
        if self.n_scale_bins:
            columns.append(bin_codes(mean_values(totals, per_cell), self.scale_edges))
        return np.stack(columns, axis=1) if columns else None

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
        scale = None
        if self.n_scale_bins:
            scale = bin_codes(mean_values(totals, depths), self.scale_edges)
        return CellDraw(depths, totals, self.bins(depths) if self.n_bins else None, scale)

    def condition(
        self,
        codes: np.ndarray | None,
        bins: np.ndarray | None,
        n: int,
        categories: Mapping[str, list],
        scale_bins: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """Condition codes with the depth (and scale) bins appended (the null token where
        they are ``None``, e.g. imputation); unchanged without a per-cell condition."""
        if not self.conditions:
            return codes
        if codes is None:
            null = np.asarray([len(c) for c in categories.values()], dtype=np.int64)
            codes = np.tile(null, (n, 1))
        columns = [codes]
        for size, given in ((self.n_bins, bins), (self.n_scale_bins, scale_bins)):
            if size:
                columns.append((np.full(n, size) if given is None else given)[:, None])
        return np.hstack(columns).astype(np.int64)

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
        if self.n_scale_bins:
            state["scale_edges"] = torch.as_tensor(self.scale_edges)
        return state

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any] | None, n_bins: int, n_scale_bins: int = 0
    ) -> DepthCondition:
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
        scale_edges = state.get("scale_edges")
        scale_edges = np.zeros(0) if scale_edges is None else scale_edges.numpy()
        if n_scale_bins and (len(scale_edges) != n_scale_bins - 1 or totals is None):
            raise ValueError(f"scale edges: {len(scale_edges)} values for {n_scale_bins} bins.")
        return cls(
            n_bins, edges, depths, bins, None if labels is None else labels.numpy(),
            None if totals is None else totals.numpy().astype(np.float64),
            n_scale_bins, scale_edges,
        )  # fmt: skip

    def with_depths(
        self, per_cell: np.ndarray, label_codes: np.ndarray | None, totals: np.ndarray | None
    ) -> DepthCondition:
        """The same bins with training depths (and totals) read from attached data."""
        per_cell = np.asarray(per_cell, dtype=np.int64)
        return replace(
            self, depths=per_cell, training_bins=self.bins(per_cell), label_codes=label_codes,
            totals=totals,
        )  # fmt: skip


def mean_values(totals: np.ndarray, depths: np.ndarray) -> np.ndarray:
    """Each cell's mean expressed value (its total over its detected genes; 0 when empty)."""
    return np.asarray(totals, dtype=np.float64) / np.maximum(np.asarray(depths), 1)
