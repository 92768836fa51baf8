"""``sdd.pl.evaluation``: one figure of an evaluation table, generated vs its floor."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["evaluation"]


def evaluation(
    table: pd.DataFrame,
    *,
    group: str | None = None,
    ax: Any = None,
    show: bool | None = None,
    save: str | None = None,
    return_fig: bool = False,
) -> Any:
    """Dot plot of each metric: generated (``value``) next to the real-vs-real ``floor``.

    Parameters
    ----------
    table
        Output of :func:`sdd.tl.evaluate` with ``floor=True`` (columns ``group``,
        ``metric``, ``value``, ``floor``).
    group
        Only rows of this group (default: all rows, labelled ``group: metric``).
    ax
        Matplotlib Axes to draw on (default: a new figure).
    show
        Call ``plt.show()`` (default: when no ``ax`` was given and nothing is saved).
    save
        Path to save the figure to (written to a temporary name, then renamed).
    return_fig
        Return the Figure instead of the Axes.

    Returns
    -------
    The Axes (or the Figure with ``return_fig``); ``None`` when shown.

    Examples
    --------
    >>> import sdd
    >>> table = sdd.tl.evaluate(real, generated, floor=True)  # doctest: +SKIP
    >>> sdd.pl.evaluation(table, group="all")  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}.")
    missing = {"group", "metric", "value", "floor"} - set(table.columns)
    if missing:
        raise ValueError(
            f"table lacks columns {sorted(missing)}; use sdd.tl.evaluate(..., floor=True)."
        )
    rows = table if group is None else table[table["group"] == group]
    if rows.empty:
        raise ValueError(f"no rows for group {group!r} (groups: {table['group'].unique()[:5]}).")
    names = rows["metric"] if group is not None else rows["group"] + ": " + rows["metric"]
    new_figure = ax is None
    if new_figure:
        _, ax = plt.subplots(figsize=(6, 0.3 * len(rows) + 1))
    fig = ax.figure
    pos = np.arange(len(rows))[::-1]
    # each metric on its own scale: values divided by the largest magnitude of the pair
    scale = np.maximum(np.abs(rows[["value", "floor"]]).max(axis=1).to_numpy(), 1e-12)
    ax.hlines(pos, rows["floor"] / scale, rows["value"] / scale, color="0.8")
    ax.scatter(rows["floor"] / scale, pos, color="0.4", label="real vs real (floor)")
    ax.scatter(rows["value"] / scale, pos, color="C3", label="generated")
    for p, v, f in zip(pos, rows["value"], rows["floor"], strict=True):
        ax.annotate(
            f"{v:.3g} / {f:.3g}",
            (1.02, p),
            xycoords=("axes fraction", "data"),
            va="center",
            fontsize=7,
        )
    ax.set_yticks(pos, names.tolist())
    ax.set_xlabel("value / max(|value|, |floor|)")
    ax.legend(loc="lower left", fontsize=7)
    if save is not None:
        path = Path(save)
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        fig.savefig(tmp, bbox_inches="tight")
        os.replace(tmp, path)
    if show or (show is None and save is None and new_figure):
        plt.show()
        return None
    return fig if return_fig else ax
