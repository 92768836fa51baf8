"""Calibration of generated cells as value objects: the training targets and the fitted maps.

- :class:`DetectionTargets`: what the training cells show, fitted once when the model is
  created: each gene's detection rate, its non-zero value quantiles, and the same per
  group of labels for a conditional model.
- :class:`Calibration`: what :meth:`sdd.SDD.calibrate` fits on a sample of generated cells
  and every later :meth:`~sdd.SDD.generate` applies, on the sampler's output tensor:

  1. **which genes a cell expresses**: each gene ``g`` gets an offset ``t_g`` on its
     sparsity-bit value ``s_cg``; with ``per_cell`` (the default) each new cell
     ``c`` expresses exactly its drawn depth ``d_c`` (the detected genes of a random
     training cell with the same labels, :class:`~sdd.model._depth.DepthCondition`):
     the ``d_c`` genes of largest ``s_cg - t_g``. The offsets ``t_g`` are fitted so that
     each gene is also detected as often as in the training cells: two-way matching
     of row sums (depths) and column sums (detection rates), alternating between the
     per-cell cut-offs and the per-gene offsets (Sinkhorn-style, on hard counts).
     Without ``per_cell`` a bit is on where ``s_cg > t_g`` (per-gene thresholds only);
  2. **how much**: each gene's expressed values are moved ``value_weight`` of the way
     from their quantiles in the calibration sample to the training quantiles; with
     ``match_totals`` each cell's values are then scaled to the total of the training
     cell its depth was drawn from.

Both are post-hoc steps that copy training statistics (the depth and total of each
cell, the detection rates, the value quantiles): they make these columns right by construction,
so they are no evidence that the network learned them. Which genes a cell expresses,
and how the genes co-vary, still come from the network.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ..data.detection import nonzero_counts, nonzero_counts_by_group
from ..data.marginals import map_quantiles, mappable, nonzero_quantiles
from ..diffusion import sparsity

__all__ = ["DetectionTargets", "Calibration", "check_weight", "cell_cutoffs", "two_way_offsets"]

MIN_GROUP_CELLS = 50  # fewer training or calibration cells: a group uses the global offsets
GROUP_LEVELS = 21  # quantile levels of a group's value map (the global map has 101)
MAX_GROUP_VALUES = 2**25  # larger tables (groups x genes x levels): no per-group value maps
TWO_WAY_ITERATIONS = 20
NEVER = -1e4  # score of an entry that decodes to 0 whatever its bit (sparsity bits lie in [-1, 1])


def check_weight(value: Any) -> float:
    """``value`` as a weight in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"value_weight must be a number in [0, 1], got {value!r}.")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"value_weight must be in [0, 1], got {value}.")
    return float(value)


def _group_quantiles(
    matrix: Any, member: np.ndarray, usable: np.ndarray, counts: np.ndarray | None = None
) -> np.ndarray:
    """Non-zero quantiles per group of rows, ``(n_groups, n_genes, GROUP_LEVELS)``; NaN for
    groups that are not ``usable``."""
    out = np.full((len(usable), matrix.shape[1], GROUP_LEVELS), np.nan, dtype=np.float32)
    for g in np.flatnonzero(usable):
        out[g] = nonzero_quantiles(
            matrix, GROUP_LEVELS, rows=member == g,
            per_column=None if counts is None else counts[g],
        )  # fmt: skip
    return out


# ---------------------------------------------------------------------- targets
@dataclass(frozen=True)
class DetectionTargets:
    """The training cells' detection rates and value quantiles, overall and per label group.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 1.0], [2.0, 3.0], [0.0, 1.0], [1.0, 0.0]])
    >>> DetectionTargets.fit(X, None).detection_rate.tolist()
    [0.5, 0.75]
    """

    detection_rate: np.ndarray
    value_quantiles: np.ndarray | None = None
    group_codes: np.ndarray | None = None
    group_cells: np.ndarray | None = None
    group_rates: np.ndarray | None = None
    group_value_quantiles: np.ndarray | None = None

    @classmethod
    def fit(
        cls,
        matrix: Any,
        label_codes: np.ndarray | None,
        counts: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> DetectionTargets:
        """From the training matrix and the cells' condition codes (``None``: none);
        ``counts``: its non-zeros per row and per column, if already known (one pass
        over the matrix less)."""
        per_cell, per_gene = nonzero_counts(matrix) if counts is None else counts
        groups: dict[str, Any] = {}
        if label_codes is not None:
            codes, member, cells = np.unique(
                label_codes, axis=0, return_inverse=True, return_counts=True
            )
            counts = nonzero_counts_by_group(matrix, member.ravel(), len(codes))
            groups = {
                "group_codes": codes.astype(np.int64), "group_cells": cells.astype(np.int64),
                "group_rates": (counts / cells[:, None]).astype(np.float32),
            }  # fmt: skip
            if len(codes) * matrix.shape[1] * GROUP_LEVELS <= MAX_GROUP_VALUES:
                groups["group_value_quantiles"] = _group_quantiles(
                    matrix, member.ravel(), cells >= MIN_GROUP_CELLS, counts
                )
            else:
                warnings.warn(
                    f"{len(codes)} label groups x {matrix.shape[1]} genes: too many for value "
                    "maps per group; calibrate() will use one value map per gene.",
                    stacklevel=4,
                )
        return cls(
            detection_rate=per_gene / max(1, len(per_cell)),
            value_quantiles=nonzero_quantiles(matrix).astype(np.float32),
            **groups,
        )

    @property
    def n_groups(self) -> int:
        return 0 if self.group_codes is None else len(self.group_codes)

    def group_index(self, codes: np.ndarray | None) -> np.ndarray | None:
        """The label group of each cell's codes, ``-1`` where none matches (or ``None``)."""
        if codes is None or self.group_codes is None:
            return None
        lookup = {tuple(row): g for g, row in enumerate(self.group_codes.tolist())}
        return np.asarray([lookup.get(tuple(row), -1) for row in codes.tolist()], dtype=np.int64)

    def state_dict(self) -> dict[str, Any]:
        """Tensors for a checkpoint (the keys of earlier versions)."""
        state: dict[str, Any] = {"detection_rate": torch.as_tensor(self.detection_rate)}
        if self.value_quantiles is not None:
            state["value_quantiles"] = torch.as_tensor(self.value_quantiles)
        if self.group_codes is not None:
            state["group_detection"] = {
                "codes": torch.as_tensor(self.group_codes),
                "cells": torch.as_tensor(self.group_cells),
                "rates": torch.as_tensor(self.group_rates),
            }
        if self.group_value_quantiles is not None:
            state["group_value_quantiles"] = torch.as_tensor(self.group_value_quantiles)
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any], n_genes: int) -> DetectionTargets | None:
        """From :meth:`state_dict`, checked against ``n_genes``; ``None`` for a model saved
        before calibration existed."""
        rate = state.get("detection_rate")
        if rate is None:
            return None
        _check_shape("detection_rate", rate, (n_genes,))
        quantiles = state.get("value_quantiles")
        if quantiles is not None and (quantiles.ndim != 2 or quantiles.shape[0] != n_genes):
            raise ValueError(
                f"value_quantiles has shape {tuple(quantiles.shape)}, expected one row per gene."
            )
        groups = state.get("group_detection") or {}
        n_groups = len(groups["codes"]) if groups else None
        group_quantiles = state.get("group_value_quantiles")
        if group_quantiles is not None:
            _check_group_table("group_value_quantiles", group_quantiles, n_groups, n_genes)
        return cls(
            detection_rate=rate.numpy(),
            value_quantiles=_numpy(quantiles),
            group_codes=_numpy(groups.get("codes")),
            group_cells=_numpy(groups.get("cells")),
            group_rates=_numpy(groups.get("rates")),
            group_value_quantiles=_numpy(group_quantiles),
        )


# ---------------------------------------------------------------------- two-way matching
def cell_cutoffs(scores: np.ndarray, depths: np.ndarray) -> np.ndarray:
    """Per row, a cut-off with exactly ``depths[i]`` of the row's scores above it (all of
    them when the row has fewer valid scores; invalid scores are :data:`NEVER`).

    Examples
    --------
    >>> cell_cutoffs(np.array([[0.1, 0.5, -0.2], [0.3, 0.2, 0.1]]), np.array([1, 2])).tolist()
    [0.3, 0.15000000000000002]
    """
    ordered = -np.sort(-scores, axis=1)
    n = scores.shape[1]
    d = np.clip(np.asarray(depths, dtype=np.int64), 0, n)
    rows = np.arange(len(scores))
    above = ordered[rows, np.clip(d - 1, 0, n - 1)]  # the smallest score that is on
    below = ordered[rows, np.clip(d, 0, n - 1)]  # the largest score that stays off
    cut = 0.5 * (above + below)
    cut = np.where(d >= n, ordered[:, -1] - 1.0, cut)
    cut = np.where(d <= 0, ordered[:, 0] + 1.0, cut)
    return np.maximum(cut, NEVER / 2)  # an invalid entry never turns on


def two_way_offsets(
    logits: np.ndarray, rates: np.ndarray, depths: np.ndarray, n_iter: int = TWO_WAY_ITERATIONS
) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene offsets ``t`` and per-cell cut-offs ``a`` such that ``logits - t > a`` turns
    on about ``rates[g]`` of each gene's rows and exactly ``depths[c]`` genes of each row.

    Alternates the two one-way solutions (each exact for its own margin): the gene
    offsets given the cut-offs (:func:`sdd.diffusion.sparsity.matching_thresholds`), then
    the cut-offs given the offsets (:func:`cell_cutoffs`).
    """
    cut = np.zeros(len(logits))
    offsets = np.zeros(logits.shape[1])
    for _ in range(n_iter):
        offsets = sparsity.matching_thresholds(logits - cut[:, None], rates)
        offsets = np.clip(offsets, NEVER / 4, -NEVER / 4)  # +-inf (rate 0 or 1) as finite
        cut = cell_cutoffs(logits - offsets, depths)
    return offsets, cut


# ---------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class Calibration:
    """Fitted per-gene offsets (overall and per label group) and value maps.

    ``settings`` records how it was fitted: ``step`` (the model's training step: it holds
    for those weights only), ``n_cells``, ``sampler``, ``n_steps``, ``random_state``,
    ``per_group``, ``per_cell`` and ``value_weight``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> cal = Calibration(thresholds=np.array([0.0, 0.5]), settings={"per_cell": True})
    >>> cal.bits(torch.tensor([[0.9, 0.8], [0.1, 0.9]]), None, np.array([1, 2])).tolist()
    [[True, False], [True, True]]
    """

    thresholds: np.ndarray
    group_thresholds: np.ndarray | None = None
    value_map: np.ndarray | None = None
    group_value_map: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        logits: np.ndarray,
        values: np.ndarray,
        targets: DetectionTargets,
        *,
        member: np.ndarray | None,
        depths: np.ndarray | None,
        value_weight: float,
        settings: Mapping[str, Any],
    ) -> Calibration:
        """Fit on a generated sample.

        Parameters
        ----------
        logits
            Sparsity-bit values of the sample, ``(cells, genes)``, :data:`NEVER` where the
            value decodes to 0 whatever the bit.
        values
            The sample's values where the bit would be on (training units).
        targets
            The training cells' rates and quantiles.
        member
            Label group of each sample cell (``-1``: none), or ``None`` for no per-group
            offsets.
        depths
            The depth drawn for each sample cell, or ``None`` for per-gene thresholds only.
        value_weight
            How far values move to the training quantiles (0: no value maps).
        settings
            Recorded in :attr:`settings`.
        """
        rates = targets.detection_rate
        if depths is None:
            thresholds = sparsity.matching_thresholds(logits, rates)
            cut = np.zeros(len(logits))
        else:
            thresholds, cut = two_way_offsets(logits, rates, depths)
        table = None
        if member is not None:
            table = np.tile(thresholds, (targets.n_groups, 1))
            for g in range(targets.n_groups):
                rows = member == g
                if targets.group_cells[g] >= MIN_GROUP_CELLS and rows.sum() >= MIN_GROUP_CELLS:
                    table[g] = sparsity.matching_thresholds(
                        logits[rows] - cut[rows, None], targets.group_rates[g]
                    )
            table = np.clip(table, NEVER / 4, -NEVER / 4).astype(np.float32)
        calibration = cls(
            thresholds=thresholds.astype(np.float32), group_thresholds=table,
            settings={
                **settings, "per_group": table is not None, "per_cell": depths is not None,
                "value_weight": value_weight,
            },
        )  # fmt: skip
        if not value_weight or targets.value_quantiles is None:
            return calibration
        rows = calibration.rows(member)
        on = calibration.bits(torch.as_tensor(logits), rows, depths).numpy()
        expressed = np.where(on, values, 0.0)
        value_map = nonzero_quantiles(expressed, targets.value_quantiles.shape[1])
        group_map = None
        if table is not None and targets.group_value_quantiles is not None:
            sizes = np.bincount(member[member >= 0], minlength=targets.n_groups)
            group_map = _group_quantiles(expressed, member, sizes >= MIN_GROUP_CELLS)
        return replace(
            calibration, value_map=value_map.astype(np.float32), group_value_map=group_map
        )

    def current(self, step: int) -> bool:
        """Whether it was fitted on the weights of training step ``step``."""
        return self.settings.get("step") == step

    def rows(self, member: np.ndarray | None) -> np.ndarray | None:
        """Each cell's row of the offset table (its group, or the global row last)."""
        if member is None or self.group_thresholds is None:
            return None
        return np.where(member < 0, len(self.group_thresholds), member)

    def bits(
        self, logits: torch.Tensor, rows: np.ndarray | None, depths: np.ndarray | None
    ) -> torch.Tensor:
        """Which entries are on: the ``depths[c]`` largest ``logits - t`` of each cell (per
        cell; entries at :data:`NEVER` stay off), else ``logits > t``."""
        scores = logits - self._gene_offsets(logits, rows)
        if depths is None or not self.settings.get("per_cell"):
            return scores > 0
        order = scores.argsort(dim=1, descending=True, stable=True)
        rank = torch.empty_like(order)
        positions = torch.arange(scores.shape[1], device=scores.device).expand_as(order)
        rank.scatter_(1, order, positions)
        wanted = torch.as_tensor(depths, device=scores.device)[:, None]
        return (rank < wanted) & (logits > NEVER / 2)

    def entry_thresholds(
        self, logits: torch.Tensor, rows: np.ndarray | None, depths: np.ndarray | None
    ) -> torch.Tensor:
        """The threshold each entry's sparsity bit was compared with (same shape as
        ``logits``): the gene's offset, plus with ``per_cell`` the cell's cut halfway
        between its last entry on and its first entry off, so that ``logits > threshold``
        are the entries :meth:`bits` turns on (up to ties)."""
        offsets = self._gene_offsets(logits, rows).expand_as(logits)
        if depths is None or not self.settings.get("per_cell"):
            return offsets.clone()
        ranked = (logits - offsets).sort(dim=1, descending=True).values
        padded = torch.cat([ranked[:, :1] + 1.0, ranked, ranked[:, -1:] - 1.0], dim=1)
        k = torch.as_tensor(depths, device=logits.device).clamp(0, logits.shape[1])[:, None]
        cut = (padded.gather(1, k) + padded.gather(1, k + 1)) / 2
        return offsets + cut

    def _gene_offsets(self, logits: torch.Tensor, rows: np.ndarray | None) -> torch.Tensor:
        """Each cell's row of per-gene offsets (its label group's, else the global one)."""
        table = torch.as_tensor(self.thresholds, device=logits.device, dtype=logits.dtype)
        if rows is None:
            return table[None]
        groups = torch.as_tensor(self.group_thresholds, device=logits.device).to(table)
        return torch.cat([groups, table[None]])[torch.as_tensor(rows, device=logits.device)]

    @staticmethod
    def match_totals(values: np.ndarray, totals: np.ndarray) -> np.ndarray:
        """Each row scaled so that it sums to ``totals`` (rows summing to 0 unchanged).

        Examples
        --------
        >>> Calibration.match_totals(np.array([[1.0, 3.0], [0.0, 0.0]]), np.array([2.0, 5.0])).tolist()
        [[0.5, 1.5], [0.0, 0.0]]
        """
        sums = values.sum(axis=1, dtype=np.float64)
        scale = np.divide(totals, sums, out=np.ones_like(sums), where=sums > 0)
        return (values * scale[:, None]).astype(values.dtype, copy=False)

    def map_values(
        self, values: np.ndarray, rows: np.ndarray | None, targets: DetectionTargets
    ) -> np.ndarray:
        """Expressed values carried towards the training quantiles: each cell of a
        calibrated label group by its group's map where the gene has one, all others by
        the global map."""
        if self.value_map is None or targets.value_quantiles is None:
            return values
        weight = self.settings.get("value_weight", 1.0)
        mapped = map_quantiles(values, self.value_map, targets.value_quantiles, weight)
        sources, goals = self.group_value_map, targets.group_value_quantiles
        if rows is None or sources is None or goals is None:
            return mapped
        for g in np.unique(rows[rows < len(sources)]):
            cells = np.flatnonzero(rows == g)
            genes = np.flatnonzero(mappable(sources[g], goals[g]))
            mapped[np.ix_(cells, genes)] = map_quantiles(
                values[np.ix_(cells, genes)], sources[g][genes], goals[g][genes], weight
            )
        return mapped

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors for a checkpoint (the keys of earlier versions)."""
        state = {"sb_thresholds": torch.as_tensor(self.thresholds)}
        for key, table in (
            ("group_thresholds", self.group_thresholds),
            ("value_map", self.value_map),
            ("group_value_map", self.group_value_map),
        ):
            if table is not None:
                state[key] = torch.as_tensor(table)
        return state

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        settings: Mapping[str, Any] | None,
        targets: DetectionTargets | None,
        n_genes: int,
    ) -> Calibration | None:
        """From :meth:`state_dict` and the saved settings, checked against the targets."""
        thresholds = state.get("sb_thresholds")
        if (thresholds is None) != (settings is None):
            raise ValueError("sb_thresholds and calibration must be saved together.")
        if thresholds is None:
            return None
        if targets is None:
            raise ValueError("sb_thresholds were saved without detection rates.")
        _check_shape("sb_thresholds", thresholds, (n_genes,))
        table = state.get("group_thresholds")
        if table is not None and tuple(table.shape) != (targets.n_groups, n_genes):
            raise ValueError("group_thresholds do not match the saved label groups.")
        value_map, group_map = state.get("value_map"), state.get("group_value_map")
        if value_map is not None and (
            targets.value_quantiles is None
            or tuple(value_map.shape) != targets.value_quantiles.shape
        ):
            raise ValueError("value_map does not match the saved value_quantiles.")
        if group_map is not None:
            _check_group_table("group_value_map", group_map, targets.n_groups or None, n_genes)
            if (
                targets.group_value_quantiles is None
                or tuple(group_map.shape) != targets.group_value_quantiles.shape
            ):
                raise ValueError("group_value_map does not match the saved group_value_quantiles.")
        return cls(
            thresholds=thresholds.numpy(), group_thresholds=_numpy(table),
            value_map=_numpy(value_map), group_value_map=_numpy(group_map),
            settings=dict(settings),
        )  # fmt: skip


def _numpy(value: Any) -> np.ndarray | None:
    return None if value is None else value.numpy()


def _check_shape(name: str, value: Any, shape: tuple[int, ...]) -> None:
    if tuple(value.shape) != shape:
        raise ValueError(
            f"{name} has shape {tuple(value.shape)}, expected {shape} (one value per gene)."
        )


def _check_group_table(name: str, table: Any, n_groups: int | None, n_genes: int) -> None:
    if table.ndim != 3 or tuple(table.shape[:2]) != (n_groups, n_genes) or table.shape[2] < 2:
        raise ValueError(
            f"{name} has shape {tuple(table.shape)}, expected one table per saved label "
            "group and one row per gene."
        )
