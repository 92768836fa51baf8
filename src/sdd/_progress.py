"""The progress bar of every long loop: tqdm's notebook widget where ipywidgets is installed,
the text bar otherwise (``tqdm.auto`` would warn "IProgress not found" in such a notebook),
redrawn at most once a second so that a notebook's stored output stays small."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

if find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm as _tqdm
else:
    from tqdm.std import tqdm as _tqdm

__all__ = ["tqdm"]


class tqdm(_tqdm):  # noqa: N801 (tqdm's own name)
    """:class:`tqdm.tqdm` (or its notebook widget) with ``mininterval=1`` by default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("mininterval", 1.0)
        super().__init__(*args, **kwargs)
