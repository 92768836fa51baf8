"""Recipes: a network width and the optimiser settings measured to go with it.

``"paper"``, the default of :class:`~sdd.SDD`, is the SDD paper's: network (1024, 512,
256), Adam 2e-4, batch 256. ``"cpu"`` is a smaller network with a larger learning rate,
about 2.6 times cheaper per step; the best of the recipes tried on the tuning data set at
a CPU budget, it lost to ``"paper"`` at the same number of steps on held-out data
(docs/benchmarks), so it is an option, not the default.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RECIPES", "check_recipe"]

RECIPES: dict[str, dict[str, Any]] = {
    "paper": {"hidden": (1024, 512, 256), "lr": 2e-4, "batch_size": 256},
    "cpu": {"hidden": (512, 256, 128), "lr": 1e-3, "batch_size": 128},
}


def check_recipe(recipe: str) -> dict[str, Any]:
    """The settings of ``recipe``; ``ValueError`` naming the choices otherwise."""
    if not isinstance(recipe, str) or recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}; choose one of {tuple(RECIPES)}.")
    return RECIPES[recipe]
