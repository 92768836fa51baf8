"""Recipes: a network width and the optimiser settings measured to go with it.

``"cpu"`` is the default of :class:`~sdd.SDD`: chosen with ``benchmarks/fidelity.py`` on
the tuning data set at a CPU budget of a few thousand steps (README, "Fidelity"), where
it beat the paper's settings. ``"paper"`` is the SDD paper's: a wider network, Adam 2e-4
and batch 256, meant for ~300k steps on a GPU.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RECIPES", "check_recipe"]

RECIPES: dict[str, dict[str, Any]] = {
    "cpu": {"hidden": (512, 256, 128), "lr": 1e-3, "batch_size": 128},
    "paper": {"hidden": (1024, 512, 256), "lr": 2e-4, "batch_size": 256},
}


def check_recipe(recipe: str) -> dict[str, Any]:
    """The settings of ``recipe``; ``ValueError`` naming the choices otherwise."""
    if not isinstance(recipe, str) or recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}; choose one of {tuple(RECIPES)}.")
    return RECIPES[recipe]
