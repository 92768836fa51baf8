"""Reading a dense, sparse or backed matrix a block of rows at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["row_blocks"]


def row_blocks(matrix: Any, chunk_rows: int) -> Iterator[tuple[int, Any]]:
    """Yield ``(start, matrix[start : start + chunk_rows])`` over all rows, in order.

    Backed data (anndata ``backed="r"``, h5py) are never loaded whole.

    Examples
    --------
    >>> import numpy as np
    >>> [(start, block.shape) for start, block in row_blocks(np.zeros((5, 2)), 2)]
    [(0, (2, 2)), (2, (2, 2)), (4, (1, 2))]
    """
    for start in range(0, matrix.shape[0], chunk_rows):
        yield start, matrix[start : start + chunk_rows]
