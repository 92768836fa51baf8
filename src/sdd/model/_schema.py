"""One validation schema for the arguments of every model, checked on creation and on load.

Each constructor argument has one :class:`Arg` rule (type, range, choices); a model's
``init_args_`` go through :func:`check_args` when it is created, when
:func:`sdd.tl.fit` or the command line create it, and when :meth:`load` reads a
``config.json`` (so a tampered file meets the same checks). Errors are ``TypeError`` for
a wrong type and ``ValueError`` for a value out of range, each naming the argument.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Arg", "MODEL_ARGS", "check_args"]


@dataclass(frozen=True)
class Arg:
    """The rule of one argument.

    ``kind``: ``"bool"``, ``"int"``, ``"float"``, ``"choice"`` or ``"ints"`` (a non-empty
    sequence of integers); ``low`` / ``high`` bound numbers (and each of ``"ints"``),
    ``high_open`` excludes ``high``; ``choices`` for ``"choice"``.

    Examples
    --------
    >>> Arg("ints", low=1).check("hidden", (64, 32))
    (64, 32)
    """

    kind: str
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    choices: tuple = ()

    def _describe(self) -> str:
        if self.kind == "bool":
            return "True or False"
        if self.kind == "choice":
            return f"one of {list(self.choices)}"
        what = (
            "a sequence of integers"
            if self.kind == "ints"
            else f"a{'n' if self.kind == 'int' else ''} {self.kind}"
        )
        bounds = []
        if self.low is not None:
            bounds.append(f">= {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return what + (f" ({', '.join(bounds)})" if bounds else "")

    def _number(self, name: str, value: Any, integer: bool) -> int | float:
        kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise TypeError(f"{name} must be {self._describe()}, got {value!r}.")
        number = int(value) if integer else float(value)
        if (
            not math.isfinite(number)
            or (self.low is not None and number < self.low)
            or (
                self.high is not None
                and (number >= self.high if self.high_open else number > self.high)
            )
        ):
            raise ValueError(f"{name} must be {self._describe()}, got {value!r}.")
        return number

    def check(self, name: str, value: Any) -> Any:
        """``value`` if it follows the rule (ints as a tuple), else the error naming ``name``."""
        if self.kind == "bool":
            if not isinstance(value, bool | np.bool_):
                raise TypeError(f"{name} must be True or False, got {value!r}.")
            return bool(value)
        if self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise ValueError(f"{name} must be {self._describe()}, got {value!r}.")
            return value
        if self.kind == "ints":
            if isinstance(value, str | bytes) or not isinstance(value, list | tuple | np.ndarray):
                raise TypeError(f"{name} must be {self._describe()}, got {value!r}.")
            if len(value) == 0:
                raise ValueError(f"{name} must be {self._describe()}, got an empty sequence.")
            return tuple(self._number(name, v, True) for v in value)
        return self._number(name, value, self.kind == "int")


MODEL_ARGS: dict[str, Arg] = {
    "sparsity_bits": Arg("bool"),
    "recipe": Arg("choice", choices=("paper", "cpu")),
    "hidden": Arg("ints", low=1),
    "emb_dim": Arg("int", low=1),
    "dropout": Arg("float", low=0.0, high=1.0, high_open=True),
    "self_condition": Arg("bool"),
    "condition_dropout": Arg("float", low=0.0, high=1.0, high_open=True),
    "logsnr_min": Arg("float", low=-50.0, high=50.0),
    "logsnr_max": Arg("float", low=-50.0, high=50.0),
    "prediction": Arg("choice", choices=("x0", "v", "v-data")),
    "zero_fill": Arg("choice", choices=("min", "nonzero_mean")),
    "weight_sparsity": Arg("float", low=0.0, high=1.0, high_open=True),
}
"""Rules of the constructor arguments the models share."""

IMAGE_ARGS: dict[str, Arg] = {
    "base_channels": Arg("int", low=1),
    "channel_mult": Arg("ints", low=1),
    "num_res_blocks": Arg("int", low=1),
    "num_heads": Arg("int", low=1),
    "num_groups": Arg("int", low=1),
    "mid_attention": Arg("bool"),
    "scale_shift": Arg("bool"),
    "intensity_transform": Arg("choice", choices=("none", "log1p")),
}
"""Rules of :class:`~sdd.SDDImage`'s own constructor arguments."""

BLACKOUT_ARGS: dict[str, Arg] = {
    "n_times": Arg("int", low=1),
    "t_end": Arg("float", low=1e-6, high=1e6),
    "weighting": Arg("choice", choices=("instantaneous", "finite_time", "elbo")),
    "parameterization": Arg("choice", choices=("death_scaled", "direct")),
}
"""Rules of :class:`~sdd.SDDBlackout`'s own constructor arguments."""


def check_args(args: Mapping[str, Any], schema: Mapping[str, Arg] = MODEL_ARGS) -> dict[str, Any]:
    """The arguments with every one that has a rule checked (sequences as tuples).

    Examples
    --------
    >>> check_args({"emb_dim": 0})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: emb_dim must be an int (>= 1), got 0.
    """
    checked = dict(args)
    for name, rule in schema.items():
        if name in checked and checked[name] is not None:
            checked[name] = rule.check(name, checked[name])
    if "logsnr_min" in checked and "logsnr_max" in checked:
        if not checked["logsnr_min"] < checked["logsnr_max"]:
            raise ValueError(
                f"logsnr_min must be below logsnr_max, got {checked['logsnr_min']} and "
                f"{checked['logsnr_max']}."
            )
    return checked
