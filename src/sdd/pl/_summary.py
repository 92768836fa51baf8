"""``sdd.pl.evaluation``: one figure of an evaluation table, generated vs its floor."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from ._utils import check_options, finish, new_axes

__all__ = ["evaluation"]


def evaluation(
    table: pd.DataFrame,
    *,
    group: str | None = None,
    ax: Any = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
    **kwargs: Any,
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
        Axes to draw into; a new figure when ``None``.
    show
        Show the figure; ``None``: when a new figure is drawn and it is neither returned
        nor saved. Nothing is returned when shown.
    save
        File path to write the figure to (format from the suffix, PNG by default),
        atomically (a temporary name, then a rename).
    return_fig
        Return the Figure instead of the Axes.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.scatter` of both point sets (e.g. ``s``).

    Returns
    -------
    The Axes (or the Figure with ``return_fig``); ``None`` when shown.

    Examples
    --------
    >>> import sdd
    >>> table = sdd.tl.evaluate(real, generated, floor=True)  # doctest: +SKIP
    >>> sdd.pl.evaluation(table, group="all")  # doctest: +SKIP
    """
    save_path = check_options(show=show, save=save, return_fig=return_fig)
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
    if "best" in rows.columns:  # which way is better, as in the table
        names = names + " (best " + rows["best"].astype(str) + ")"
    new_figure = ax is None
    ax = new_axes(ax, figsize=(6, 0.3 * len(rows) + 1))
    pos = np.arange(len(rows))[::-1]
    # each metric on its own scale: values divided by the largest magnitude of the pair
    scale = np.maximum(np.abs(rows[["value", "floor"]]).max(axis=1).to_numpy(), 1e-12)
    ax.hlines(pos, rows["floor"] / scale, rows["value"] / scale, color="0.8")
    ax.scatter(
        rows["floor"] / scale, pos, **{"color": "0.4", "label": "real vs real (floor)", **kwargs}
    )
    ax.scatter(rows["value"] / scale, pos, **{"color": "C3", "label": "generated", **kwargs})
    for p, v, f in zip(pos, rows["value"], rows["floor"], strict=True):
        ax.annotate(
            f"{v:.3g} / {f:.3g}",
            (1.02, p),
            xycoords=("axes fraction", "data"),
            va="center",
            fontsize=7,
        )
    ax.set_yticks(pos, names.tolist())
    ax.set_xlabel("value / max(|value|, |floor|): each metric on its own scale")
    ax.legend(loc="lower left", fontsize=7)
    return finish(ax, new_figure=new_figure, show=show, save=save_path, return_fig=return_fig)
