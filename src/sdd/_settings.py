"""``sdd.settings``: package-wide options, like ``scanpy.settings``.

The one settings object of the package. It holds no state of its own: ``verbosity`` is
read from and written to the level of the ``"sdd"`` logger
(:func:`logging.getLogger` ``("sdd")``), so ``sdd.settings.verbosity = "debug"`` and
``logging.getLogger("sdd").setLevel(logging.DEBUG)`` are the same thing.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["LOGGER_NAME", "SDDSettings", "settings"]

LOGGER_NAME = "sdd"
HINT = 15  # scanpy's level between INFO and DEBUG
VERBOSITY_NAMES = ("error", "warning", "info", "hint", "debug")
VERBOSITY_LEVELS = (logging.ERROR, logging.WARNING, logging.INFO, HINT, logging.DEBUG)
DEFAULT_VERBOSITY = 2  # info, as scvi-tools: which model generate() used, what was registered


class _StderrHandler(logging.StreamHandler):
    """Writes ``sdd`` records to ``sys.stderr`` unless the application configured logging.

    When the root logger has handlers (``logging.basicConfig``, pytest's ``caplog``, a
    notebook's logging setup) the record propagates there instead, so it appears once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        self.stream = sys.stderr  # follow redirections (pytest capsys, contextlib)
        super().emit(record)


def _level(value: int | str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"verbosity must be an integer 0-4 or a name, got {value!r}.")
    if isinstance(value, str):
        name = value.lower()
        if name not in VERBOSITY_NAMES:
            raise ValueError(f"verbosity must be one of {list(VERBOSITY_NAMES)}, got {value!r}.")
        return VERBOSITY_LEVELS[VERBOSITY_NAMES.index(name)]
    if isinstance(value, int):
        if not 0 <= value <= 4:
            raise ValueError(f"verbosity must be in 0-4, got {value}.")
        return VERBOSITY_LEVELS[value]
    raise TypeError(
        f"verbosity must be an integer 0-4 or one of {list(VERBOSITY_NAMES)}, "
        f"got {type(value).__name__}."
    )


class SDDSettings:
    """Options of the ``sdd`` package (the object ``sdd.settings``).

    Attributes
    ----------
    verbosity
        How much the ``"sdd"`` logger reports, scanpy's levels: ``0`` / ``"error"``,
        ``1`` / ``"warning"``, ``2`` / ``"info"`` (default), ``3`` / ``"hint"``,
        ``4`` / ``"debug"``. Reading it gives the integer.

    Notes
    -----
    Messages go to standard error, or to the application's logging handlers when the
    root logger has any (then they propagate there and are written once). Warnings about
    the data (e.g. raw counts where log-normalised values are expected) are
    :mod:`warnings`, as in scanpy and scvi-tools, and are not affected by ``verbosity``.

    Examples
    --------
    >>> import sdd
    >>> sdd.settings.verbosity = "warning"
    >>> sdd.settings.verbosity
    1
    >>> with sdd.settings.override(verbosity=4):
    ...     sdd.settings.verbosity
    4
    >>> sdd.settings.verbosity = 2
    """

    @property
    def logger(self) -> logging.Logger:
        """The package's logger, ``logging.getLogger("sdd")``."""
        return logging.getLogger(LOGGER_NAME)

    @property
    def verbosity(self) -> int:
        level = self.logger.getEffectiveLevel()
        for verbosity, threshold in enumerate(VERBOSITY_LEVELS):
            if level >= threshold:
                return verbosity
        return len(VERBOSITY_LEVELS) - 1

    @verbosity.setter
    def verbosity(self, value: int | str) -> None:
        self.logger.setLevel(_level(value))

    @contextmanager
    def override(self, *, verbosity: int | str) -> Iterator[SDDSettings]:
        """Temporarily change ``verbosity`` inside a ``with`` block.

        Parameters
        ----------
        verbosity
            Level inside the block (restored afterwards, also on an exception).
        """
        level = _level(verbosity)
        before = self.logger.level
        self.logger.setLevel(level)
        try:
            yield self
        finally:
            self.logger.setLevel(before)

    def __repr__(self) -> str:
        return f"sdd.settings(verbosity={self.verbosity} ({VERBOSITY_NAMES[self.verbosity]!r}))"


def _configure_logger() -> None:
    """Once per process: the default level and the stderr handler (idempotent on reload)."""
    logger = logging.getLogger(LOGGER_NAME)
    if logger.level == logging.NOTSET:
        logger.setLevel(VERBOSITY_LEVELS[DEFAULT_VERBOSITY])
    if not any(type(h).__name__ == "_StderrHandler" for h in logger.handlers):
        logger.addHandler(_StderrHandler())


_configure_logger()
settings = SDDSettings()
