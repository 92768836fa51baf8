"""``sdd.Execution``: where and how a long call runs, in one frozen options object.

Training, generation, imputation and calibration take the same execution options
(device, fast path, progress bar, data placement, data parallelism). They live here once
and are passed as ``execution=`` instead of being repeated on every method. The object is
immutable, so one instance can be shared by many calls; :meth:`Execution.replace` makes a
changed copy. The keywords of the previous release (``accelerator=``, ``progress=``, ...)
still work for one release, with a :class:`FutureWarning` (:func:`execution_keywords`;
:func:`moved_keywords` does the same for options that moved into a dict argument).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = [
    "Execution", "QUIET", "as_execution", "execution_keywords", "moved_keywords", "option_dict",
]  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])
ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
TRAINING_ONLY = ("data_on_device", "distributed")


@dataclasses.dataclass(frozen=True)
class Execution:
    """Where and how a long call runs: device, fast path and progress bar.

    Passed as ``execution=`` to ``train``, ``generate``, ``impute`` and ``calibrate`` of
    every model and to :func:`sdd.tl.fit`. Frozen: share one instance between calls and
    derive variants with :meth:`replace`.

    Parameters
    ----------
    accelerator
        ``"auto"`` (CUDA, then MPS, then the CPU), ``"cpu"``, ``"cuda"`` (or ``"gpu"``)
        or ``"mps"``.
    device
        GPU index (or ``"cuda:1"``) when several are present; generation also takes a
        list of GPUs and splits the cells between them.
    fast
        GPU fast path: bf16 autocast, fused Adam and CUDA graphs of the whole training
        step. ``None``: on CUDA (unless the environment variable ``SDD_FAST=0``);
        ``False``: the float32 path, as on the CPU.
    progress
        Show a progress bar.
    data_on_device
        Training only: keep the whole (sparse) matrix on the GPU. ``None``: when it fits
        in half the free GPU memory.
    distributed
        Training only: data-parallel training over the processes started by
        ``torchrun``. ``None``: when launched by ``torchrun`` with more than one process.

    Examples
    --------
    >>> import sdd
    >>> quiet = sdd.Execution(progress=False)
    >>> quiet.replace(accelerator="cpu")
    Execution(accelerator='cpu', device=None, fast=None, progress=False, data_on_device=None, distributed=None)
    """

    accelerator: str = "auto"
    device: int | str | list | None = None
    fast: bool | None = None
    progress: bool = True
    data_on_device: bool | None = None
    distributed: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.accelerator, str) or self.accelerator not in ACCELERATORS:
            raise ValueError(
                f"accelerator must be one of {list(ACCELERATORS)}, got {self.accelerator!r}."
            )
        if not isinstance(self.progress, bool):
            raise TypeError(f"progress must be True or False, got {self.progress!r}.")
        for name in ("fast", *TRAINING_ONLY):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise TypeError(f"{name} must be True, False or None, got {value!r}.")
        if isinstance(self.device, bool) or not (
            self.device is None or isinstance(self.device, int | str | list | tuple)
        ):
            raise TypeError(
                f"device must be a GPU index, a device name or a list of them, got {self.device!r}."
            )

    def replace(self, **changes: Any) -> Execution:
        """A copy with ``changes`` applied (the original is unchanged).

        Examples
        --------
        >>> Execution().replace(progress=False).progress
        False
        """
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"Execution has no option {unknown[0]!r}.")
        return dataclasses.replace(self, **changes)


#: No progress bar, everything else default (scripts, tests, notebooks run in CI).
QUIET = Execution(progress=False)


def as_execution(execution: Execution | None, *, training: bool = True) -> Execution:
    """``execution``, or the default :class:`Execution` for ``None``; raise ``TypeError``
    for anything else and ``ValueError`` for training-only options outside training."""
    if execution is None:
        return Execution()
    if not isinstance(execution, Execution):
        raise TypeError(
            f"execution must be an sdd.Execution (or None), got {type(execution).__name__}."
        )
    if not training:
        for name in TRAINING_ONLY:
            if getattr(execution, name) is not None:
                raise ValueError(f"execution.{name} applies to training only; leave it None here.")
    return execution


def execution_keywords(*names: str) -> Callable[[F], F]:
    """Accept the execution options ``names`` as keywords, as the previous release did,
    with a ``FutureWarning`` naming the ``execution=`` equivalent.

    The wrapped function takes ``execution: Execution | None``; an explicit
    ``execution=`` and old keywords combine (the keywords win).
    """
    fields = {f.name for f in dataclasses.fields(Execution)}
    if not set(names) <= fields:
        raise ValueError(f"not execution options: {sorted(set(names) - fields)}")

    def merge(base: Any, old: dict[str, Any]) -> Execution:
        return (Execution() if base is None else as_execution(base)).replace(**old)

    return moved_keywords("execution", names, merge, "sdd.Execution")


def moved_keywords(
    target: str,
    names: tuple[str, ...] | frozenset[str],
    merge: Callable[[Any, dict[str, Any]], Any] | None = None,
    spelling: str = "",
) -> Callable[[F], F]:
    """Accept keywords ``names`` that moved into the argument ``target`` (a dict of
    options unless ``merge`` says how to combine), with a ``FutureWarning`` that shows
    the new spelling; they work for one more release."""

    def into_dict(base: Any, old: dict[str, Any]) -> dict[str, Any]:
        return {**(base or {}), **old}

    merge = merge or into_dict

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            old = {name: kwargs.pop(name) for name in names if name in kwargs}
            if old:
                given = ", ".join(f"{k}={v!r}" for k, v in old.items())
                new = (
                    f"{spelling}({given})"
                    if spelling
                    else "{" + ", ".join(f"{k!r}: {v!r}" for k, v in old.items()) + "}"
                )
                warnings.warn(
                    f"{func.__qualname__}({given}) is deprecated and will be removed in the "
                    f"next release; pass {target}={new}.",
                    FutureWarning,
                    stacklevel=2,
                )
                kwargs[target] = merge(kwargs.get(target), old)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def option_dict(
    value: Mapping[str, Any] | None, defaults: Mapping[str, Any], name: str
) -> dict[str, Any]:
    """The options of the dict argument ``name`` (``train_kwargs=``, ``unet_kwargs=``,
    ...): ``defaults`` updated by ``value``; a ``TypeError`` naming ``name`` for anything
    but a dict of known options."""
    if value is None:
        return dict(defaults)
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict of options, got {type(value).__name__}.")
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise TypeError(
            f"{name} has unknown option {unknown[0]!r}; choose from {sorted(defaults)}."
        )
    return {**defaults, **value}
