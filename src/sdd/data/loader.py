"""Shuffled minibatches of rows: kept on the accelerator when they fit, streamed otherwise.

:class:`RowBatches` serves dense float32 minibatches of the rows of a cells x genes
matrix (or of any array with samples first) in shuffled epochs. Where the rows live:

* ``"device"``: the whole matrix is copied to the accelerator once, as CSR (values,
  column indices, row pointers: memory grows with the non-zeros, the matrix is never
  densified) or as a dense tensor for dense input; a minibatch is gathered and
  densified there, with no host round trip and no synchronisation.
* ``"host"``: the rows stay in host memory or on disk (anndata backed mode). Each read
  fetches the rows of several minibatches at once (sorted indices, which backed HDF5
  files read much faster than row by row), and sparse minibatches travel as CSR pieces
  in pinned memory and are densified on the accelerator. On an accelerator a background
  thread reads ahead while the model trains.

Every storage serves the same rows in the same order for the same ``random_state``.
"""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["RowBatches", "MinibatchSampler", "rows_dense", "is_in_memory", "STORAGES"]

STORAGES = ("device", "host")


def is_in_memory(matrix: Any) -> bool:
    """Whether ``matrix`` is an in-memory NumPy array or SciPy sparse matrix (not backed)."""
    return isinstance(matrix, np.ndarray | sp.spmatrix | sp.sparray)


def rows_dense(matrix: Any, index: np.ndarray) -> np.ndarray:
    """Dense float32 copy of the given rows (only these rows are densified).

    Parameters
    ----------
    matrix
        NumPy array, SciPy sparse matrix, or a backed dataset (anndata ``backed="r"``,
        h5py, zarr) that supports fancy indexing with sorted indices.
    index
        Row indices, in any order and possibly repeated.

    Examples
    --------
    >>> rows_dense(np.eye(3), np.array([2, 0])).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    if not is_in_memory(matrix):
        # backed datasets want sorted, unique indices
        unique, inverse = np.unique(index, return_inverse=True)
        block = matrix[unique]
        block = block.toarray() if sp.issparse(block) else np.asarray(block)
        return np.ascontiguousarray(block[inverse], dtype=np.float32)
    block = matrix[index]
    block = block.toarray() if sp.issparse(block) else np.asarray(block)
    return block.astype(np.float32, copy=False)


def _check_rows(rows: Any, n_rows: int) -> np.ndarray:
    """``rows`` as int64 indices: distinct, in ``[0, n_rows)``, at least one."""
    index = np.asarray(rows)
    if index.ndim != 1 or not (index.size == 0 or np.issubdtype(index.dtype, np.integer)):
        raise TypeError(f"rows must be a 1-D array of integer row indices, got {rows!r}.")
    if index.size == 0:
        raise ValueError("rows is empty: no rows to draw minibatches from.")
    if index.min() < 0 or index.max() >= n_rows:
        raise ValueError(f"rows must be in [0, {n_rows}), got {index.min()}..{index.max()}.")
    if np.unique(index).size != index.size:
        raise ValueError("rows has repeated indices.")
    return index.astype(np.int64)


def _sparse_like(matrix: Any) -> bool:
    """SciPy sparse, or a backed sparse dataset (anndata's have ``format`` "csr"/"csc")."""
    return sp.issparse(matrix) or getattr(matrix, "format", None) in ("csr", "csc")


def _nbytes_on_device(matrix: Any) -> int:
    if sp.issparse(matrix):
        return int(matrix.nnz) * 8 + (matrix.shape[0] + 1) * 8
    return int(np.prod(matrix.shape)) * 4


def _free_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return None


class RowBatches:
    """Shuffled epochs of dense float32 minibatches of rows, on ``device``.

    Epoch ``e`` is the permutation of the rows drawn by
    ``numpy.random.default_rng([random_state, e])``, cut into minibatches of
    ``batch_size``; the last, incomplete batch of an epoch is skipped. Batch ``k`` of the
    stream depends only on ``random_state`` and ``k``, so a run that starts at
    ``start_batch=k`` continues the stream exactly where an earlier one stopped. With ``world_size > 1`` (data-parallel
    training) every rank draws the same permutation and takes its own ``batch_size``
    rows of each global batch of ``batch_size * world_size`` rows. With ``rows`` (a
    subset, e.g. the training rows of a validation split) the epochs are permutations of
    those rows only: ``rows[permutation(len(rows))]``.

    Parameters
    ----------
    matrix
        Samples first: a NumPy array (any number of dimensions), a SciPy sparse matrix,
        or a backed 2-D dataset (anndata ``backed="r"`` ``X``, h5py, zarr).
    batch_size
        Rows per minibatch (capped at the rows available per rank).
    device
        Where minibatches are returned.
    codes
        Optional integer array (rows first) returned alongside each minibatch.
    random_state
        Seed of the epoch permutations.
    start_batch
        Batches of the stream already consumed (to resume a stream).
    data_on_device
        Keep the whole matrix on ``device``: ``None`` when it fits in
        ``memory_fraction`` of the free accelerator memory (in-memory data only),
        ``True`` always (error for backed data), ``False`` never. On the CPU ``None``
        leaves the data where it is.
    rank, world_size
        This process's rank and the number of processes in data-parallel training.
    rows
        Indices of the rows to draw minibatches from (distinct, in ``[0, n_rows)``);
        ``None``: all rows. Other rows are still readable with :meth:`rows_at`.
    fetch_rows
        Rows read at once from host or disk storage (several minibatches).
    prefetch
        Read ahead in a background thread (``None``: on accelerators).
    memory_fraction
        Share of the free accelerator memory the data may take with ``data_on_device=None``.

    Examples
    --------
    >>> batches = RowBatches(np.ones((10, 3)), batch_size=4, device=torch.device("cpu"))
    >>> x, codes = batches.next_batch()
    >>> tuple(x.shape), batches.steps_per_epoch
    ((4, 3), 2)
    """

    def __init__(
        self,
        matrix: Any,
        *,
        batch_size: int,
        device: torch.device | str,
        codes: np.ndarray | torch.Tensor | None = None,
        random_state: int = 0,
        start_batch: int = 0,
        data_on_device: bool | None = None,
        rank: int = 0,
        world_size: int = 1,
        rows: np.ndarray | Sequence[int] | None = None,
        fetch_rows: int = 4096,
        prefetch: bool | None = None,
        memory_fraction: float = 0.5,
    ) -> None:
        shape = getattr(matrix, "shape", None)
        if shape is None or len(shape) < 2:
            raise TypeError(f"Expected a matrix with samples first, got {type(matrix).__name__}.")
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if int(world_size) < 1 or not 0 <= int(rank) < int(world_size):
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size}).")
        if data_on_device not in (None, True, False):
            raise TypeError(f"data_on_device must be True, False or None, got {data_on_device!r}.")
        self.matrix = matrix
        self.n_rows = int(shape[0])
        self.rows = None if rows is None else _check_rows(rows, self.n_rows)
        self.n = self.n_rows if self.rows is None else len(self.rows)
        self.rank, self.world_size = int(rank), int(world_size)
        if self.n < self.world_size:
            raise ValueError(f"{self.n} rows cannot be shared by {self.world_size} processes.")
        self.batch_size = min(int(batch_size), self.n // self.world_size)
        self.device = torch.device(device)
        self.codes = None if codes is None else torch.as_tensor(np.asarray(codes), dtype=torch.long)
        if self.codes is not None and self.codes.shape[0] != self.n_rows:
            raise ValueError(f"codes has {self.codes.shape[0]} rows, the matrix {self.n_rows}.")
        self.seed = int(random_state)
        self._order = np.empty(0, dtype=np.int64)
        self._pos = 0
        self._epoch = 0
        if isinstance(start_batch, bool) or int(start_batch) != start_batch or start_batch < 0:
            raise ValueError(f"start_batch must be a non-negative integer, got {start_batch!r}.")
        if start_batch:
            epoch, within = divmod(int(start_batch), self.steps_per_epoch)
            self._order = self._permutation(epoch)
            self._epoch = epoch + 1
            self._pos = within * self.batch_size * self.world_size
        self._order_dev: torch.Tensor | None = None
        self._order_epoch = -1
        # several minibatches per read, but at most ~64 MiB of dense rows
        row_bytes = 4 * int(np.prod(shape[1:]))
        rows = int(fetch_rows)
        if not _sparse_like(matrix):
            rows = min(rows, max(1, 2**26 // row_bytes))
        self.fetch_batches = max(1, rows // self.batch_size)
        self.storage = self._choose_storage(data_on_device, float(memory_fraction))
        self._cuda = self.device.type == "cuda"
        self._on_device = False
        # host-read sparse rows travel as CSR and are densified on the device
        self._sparse_payload = self.device.type != "cpu"
        self._pending: collections.deque = collections.deque()
        self._ready: collections.deque = collections.deque()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        if prefetch is None:
            prefetch = self.device.type != "cpu"
        self.prefetch = bool(prefetch) and self.storage == "host"

    # -------------------------------------------------------------- storage
    def _choose_storage(self, data_on_device: bool | None, memory_fraction: float) -> str:
        if data_on_device is False or (self.device.type == "cpu" and not data_on_device):
            return "host"
        if not is_in_memory(self.matrix):
            if data_on_device:
                raise ValueError(
                    "data_on_device=True needs the matrix in memory; backed data is "
                    "streamed from disk (use data_on_device=None or False)."
                )
            return "host"
        if data_on_device:
            return "device"
        free = _free_memory(self.device)
        if free is None:  # MPS and others: no query; small data goes to the device
            return "device" if _nbytes_on_device(self.matrix) < 2**30 else "host"
        return "device" if _nbytes_on_device(self.matrix) <= memory_fraction * free else "host"

    def _to_device(self) -> None:
        """Copy the data to the device (on first use, so subclasses that never call
        :meth:`next_batch` never pay for it)."""
        self._on_device = True
        dev = self.device
        if sp.issparse(self.matrix):
            if self.matrix.ndim != 2:
                raise ValueError("Sparse data must be 2-D.")
            csr = sp.csr_matrix(self.matrix)
            if not csr.has_canonical_format:
                csr = csr.copy()
                csr.sum_duplicates()
            lengths = np.diff(csr.indptr)
            self._n_cols = csr.shape[1]
            self._max_nnz = max(1, int(lengths.max(initial=0)))
            values = csr.data.astype(np.float32, copy=False)
            cols = csr.indices.astype(np.int32, copy=False)
            if values.size == 0:  # keep the gathers in range
                values, cols = np.zeros(1, np.float32), np.zeros(1, np.int32)
            self._crow = torch.as_tensor(csr.indptr.astype(np.int64)).to(dev)
            self._col = torch.as_tensor(cols).to(dev)
            self._val = torch.as_tensor(values).to(dev)
            self._arange = torch.arange(self._max_nnz, device=dev)
            self._dense = None
        else:
            self._dense = torch.as_tensor(np.asarray(self.matrix), dtype=torch.float32).to(dev)
        self._codes_dev = None if self.codes is None else self.codes.to(dev)

    @property
    def device_bytes(self) -> int:
        """Bytes the data takes on the device (0 for host storage)."""
        if self.storage != "device" or not self._on_device:
            return 0
        if self._dense is not None:
            return self._dense.numel() * 4
        return sum(t.numel() * t.element_size() for t in (self._crow, self._col, self._val))

    # ----------------------------------------------------------------- order
    @property
    def steps_per_epoch(self) -> int:
        """Minibatches per epoch (per rank)."""
        return max(1, self.n // (self.batch_size * self.world_size))

    def _permutation(self, epoch: int) -> np.ndarray:
        order = np.random.default_rng([self.seed, int(epoch)]).permutation(self.n)
        return order if self.rows is None else self.rows[order]

    def _next_index(self) -> np.ndarray:
        """Row indices of this rank's next minibatch (host array)."""
        step = self.batch_size * self.world_size
        if self._pos + step > len(self._order):
            self._order = self._permutation(self._epoch)
            self._pos = 0
            self._epoch += 1
        start = self._pos + self.rank * self.batch_size
        index = self._order[start : start + self.batch_size]
        self._pos += step
        return index

    def _next_index_device(self) -> torch.Tensor:
        self._next_index()
        if self._order_epoch != self._epoch:
            order = torch.from_numpy(self._order)
            if self._cuda:
                order = order.pin_memory()
            self._order_dev = order.to(self.device, non_blocking=True)
            self._order_epoch = self._epoch
        start = self._pos - self.batch_size * self.world_size + self.rank * self.batch_size
        return self._order_dev[start : start + self.batch_size]

    # --------------------------------------------------------------- batches
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next minibatch ``(rows as dense float32, codes or None)`` on the device."""
        if self.storage == "device":
            if not self._on_device:
                self._to_device()
            index = self._next_index_device()
            codes = None if self._codes_dev is None else self._codes_dev[index]
            return self._gather_device(index), codes
        if self.device.type == "cpu" and is_in_memory(self.matrix):
            index = self._next_index()
            x = torch.from_numpy(rows_dense(self.matrix, index))
            return x, None if self.codes is None else self.codes[index]
        return self._from_payload(self._next_payload())

    def rows_at(
        self, index: np.ndarray | Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The given rows ``(dense float32, codes or None)`` on the device, in that order.

        Read from the same storage as the minibatches: any row of the matrix, not only
        ``rows`` (e.g. rows held out of training for validation). The stream of
        minibatches does not move.

        Examples
        --------
        >>> batches = RowBatches(np.eye(3), batch_size=2, device="cpu", rows=[0, 1])
        >>> batches.rows_at([2])[0].tolist()
        [[0.0, 0.0, 1.0]]
        """
        index = np.asarray(index, dtype=np.int64)
        if self.storage == "device":
            if not self._on_device:
                self._to_device()
            where = torch.as_tensor(index, device=self.device)
            codes = None if self._codes_dev is None else self._codes_dev[where]
            return self._gather_device(where), codes
        x = torch.from_numpy(rows_dense(self.matrix, index)).to(self.device, non_blocking=True)
        codes = None if self.codes is None else self.codes[index].to(self.device)
        return x, codes

    def _gather_device(self, index: torch.Tensor) -> torch.Tensor:
        if self._dense is not None:
            return self._dense.index_select(0, index)
        start = self._crow[index]
        length = self._crow[index + 1] - start
        valid = self._arange[None, :] < length[:, None]
        pos = torch.where(valid, start[:, None] + self._arange[None, :], 0)
        cols = torch.where(valid, self._col[pos].long(), self._n_cols)
        vals = torch.where(valid, self._val[pos], 0.0)
        out = torch.zeros((index.shape[0], self._n_cols + 1), device=self.device)
        out.scatter_(1, cols, vals)
        return out[:, : self._n_cols]

    # ------------------------------------------------------- host streaming
    def _plan(self) -> list[np.ndarray]:
        return [self._next_index() for _ in range(self.fetch_batches)]

    def _load(self, plan: list[np.ndarray]) -> list[dict]:
        """Read the rows of several minibatches at once; return one payload per batch."""
        union = np.unique(np.concatenate(plan))
        block = self.matrix[union]
        sparse = sp.issparse(block)
        if sparse:
            block = sp.csr_matrix(block)
        else:
            block = np.asarray(block)
        pin = self._cuda
        payloads = []
        for index in plan:
            pos = np.searchsorted(union, index)
            payload: dict = {"n": len(index)}
            if self.codes is not None:
                payload["codes"] = self.codes[index]
            if sparse and self._sparse_payload:
                sub = block[pos]
                sub.sum_duplicates()
                payload["shape"] = sub.shape
                payload["nnz"] = int(sub.nnz)
                payload["indptr"] = torch.from_numpy(sub.indptr.astype(np.int64))
                payload["indices"] = torch.from_numpy(sub.indices.astype(np.int64))
                payload["data"] = torch.from_numpy(sub.data.astype(np.float32))
            elif sparse:  # densified when used, one batch at a time
                payload["csr"] = block[pos]
            else:
                payload["dense"] = torch.from_numpy(np.ascontiguousarray(block[pos], np.float32))
            if pin:
                for key in ("codes", "indptr", "indices", "data", "dense"):
                    if key in payload:
                        payload[key] = payload[key].pin_memory()
            payloads.append(payload)
        return payloads

    def _next_payload(self) -> dict:
        if not self._ready:
            if self.prefetch:
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        1, thread_name_prefix="sdd-batches"
                    )
                while len(self._pending) < 2:
                    self._pending.append(self._pool.submit(self._load, self._plan()))
                self._ready.extend(self._pending.popleft().result())
                self._pending.append(self._pool.submit(self._load, self._plan()))
            else:
                self._ready.extend(self._load(self._plan()))
        return self._ready.popleft()

    def _from_payload(self, payload: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        dev = self.device
        codes = payload.get("codes")
        if codes is not None:
            codes = codes.to(dev, non_blocking=True)
        if "csr" in payload:
            x = torch.from_numpy(payload["csr"].toarray().astype(np.float32, copy=False))
            return x.to(dev, non_blocking=True), codes
        if "dense" in payload:
            return payload["dense"].to(dev, non_blocking=True), codes
        n, n_cols = payload["shape"]
        indptr = payload["indptr"].to(dev, non_blocking=True)
        cols = payload["indices"].to(dev, non_blocking=True)
        vals = payload["data"].to(dev, non_blocking=True)
        rows = torch.repeat_interleave(
            torch.arange(n, device=dev), indptr[1:] - indptr[:-1], output_size=payload["nnz"]
        )
        out = torch.zeros((n, n_cols), device=dev)
        out.index_put_((rows, cols), vals, accumulate=True)
        return out, codes

    def close(self) -> None:
        """Stop the read-ahead thread (also done when the object is garbage-collected)."""
        if self._pool is not None:
            for future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None
        self._pending.clear()
        self._ready.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __repr__(self) -> str:
        where = f"{self.storage} ({self.device})"
        mb = f", {self.device_bytes / 2**20:.1f} MiB on device" if self.storage == "device" else ""
        of = "" if self.rows is None else f" of {self.n_rows}"
        return (
            f"RowBatches({self.n} rows{of}, batch_size={self.batch_size}, storage={where}{mb}, "
            f"rank {self.rank}/{self.world_size})"
        )


class MinibatchSampler(RowBatches):
    """Shuffled epochs of minibatches, densified and scaled one batch at a time.

    A :class:`RowBatches` (data kept on the accelerator when it
    fits, streamed from host memory or a backed file otherwise) whose minibatches are
    scaled with ``scaler`` and returned with their non-zero mask.

    If the scaler has ``out_of_range`` (see :meth:`Scaler.out_of_range`), every
    minibatch is checked for values outside the range the scaler was fitted on (data
    changed in place after the model was set up), which scaling would clip silently:
    such a value raises ``ValueError`` naming the feature. The check is one comparison
    per minibatch; its result is read back on the first minibatch, every
    ``check_every`` minibatches (on accelerators 100, so it adds no synchronisation to
    the others) and by :meth:`check_range`, which a training loop calls at the end.

    Parameters
    ----------
    matrix
        Cells x genes: NumPy array, SciPy sparse matrix or anndata backed dataset.
    scaler
        Maps raw values to [-1, 1] (``transform``).
    batch_size, device, codes, random_state, start_batch, data_on_device, rank, world_size, rows, prefetch
        See :class:`RowBatches`.
    feature_names
        Gene names (axis 1) for the out-of-range error; ``None``: the index.
    check_every
        Read the out-of-range flag back every this many minibatches (``None``: every
        one on the CPU, where it costs nothing; every 100 on accelerators).

    Examples
    --------
    >>> from sdd.data.scaling import Scaler
    >>> x = np.array([[0.0, 2.0], [1.0, 0.0], [3.0, 1.0]])
    >>> batches = MinibatchSampler(x, Scaler.fit(x), batch_size=2, device=torch.device("cpu"))
    >>> z, nonzero, codes = batches()
    >>> tuple(z.shape), codes is None
    ((2, 2), True)
    """

    def __init__(
        self,
        matrix: Any,
        scaler: Any,
        *,
        batch_size: int,
        device: torch.device | str,
        codes: np.ndarray | None = None,
        random_state: int = 0,
        start_batch: int = 0,
        data_on_device: bool | None = None,
        rank: int = 0,
        world_size: int = 1,
        rows: np.ndarray | Sequence[int] | None = None,
        prefetch: bool | None = None,
        feature_names: Sequence[str] | None = None,
        check_every: int | None = None,
    ) -> None:
        super().__init__(
            matrix,
            batch_size=batch_size,
            device=device,
            codes=codes,
            random_state=random_state,
            start_batch=start_batch,
            data_on_device=data_on_device,
            rank=rank,
            world_size=world_size,
            rows=rows,
            prefetch=prefetch,
        )
        self.scaler = scaler
        # a scaler that keeps zeros at zero leaves the mask in the values themselves
        self._builds_mask = not getattr(scaler, "keeps_zeros", False)
        self.feature_names = None if feature_names is None else list(feature_names)
        if check_every is None:
            check_every = 1 if self.device.type == "cpu" else 100
        if isinstance(check_every, bool) or int(check_every) != check_every or check_every < 1:
            raise ValueError(f"check_every must be a positive integer, got {check_every!r}.")
        self.check_every = int(check_every)
        self._out_of_range: torch.Tensor | None = None
        self._calls = 0

    def __call__(
        self, index: np.ndarray | Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Return ``(scaled values, non-zero mask, condition codes or None)`` on the device.

        The mask is ``None`` when the scaler has ``keeps_zeros = True`` (its output is zero
        exactly where its input is, so the values are their own mask).

        ``index=None``: the next minibatch of the stream; otherwise the rows ``index``
        (:meth:`~RowBatches.rows_at`, e.g. held-out rows), prepared the same way.
        """
        x, codes = self.next_batch() if index is None else self.rows_at(index)
        x = x.to(self.device, non_blocking=True)
        if codes is not None:
            codes = codes.to(self.device, non_blocking=True)
        self._check_range(x)
        nonzero = x != 0 if self._builds_mask else None
        # the stream's rows are a fresh tensor: scaled in place, no allocation per step
        scaled = self.scaler.transform(x, out=x if index is None else None)
        return scaled, nonzero, codes

    def _check_range(self, x: torch.Tensor) -> None:
        check = getattr(self.scaler, "out_of_range", None)
        if check is None:
            return
        bad = check(x)
        self._out_of_range = bad if self._out_of_range is None else self._out_of_range | bad
        self._calls += 1
        if (self._calls - 1) % self.check_every:
            return  # read back on the first minibatch and every check_every-th
        self.check_range()

    def check_range(self) -> None:
        """Raise ``ValueError`` if any minibatch served so far had values outside the
        scaler's range (a host synchronisation on accelerators: call it at the end)."""
        if self._out_of_range is None or not bool(self._out_of_range.any()):
            return
        index = int(torch.nonzero(self._out_of_range)[0, 0])
        name = (
            f"gene {self.feature_names[index]!r}"
            if self.feature_names
            else f"feature {index} (axis 1: gene or image channel)"
        )
        upper = getattr(self.scaler, "maximum", None)
        limit = "" if upper is None else f" [0, {float(np.ravel(upper)[index]):.6g}]"
        raise ValueError(
            f"The training data changed after the model was set up: {name} has values "
            f"outside the range{limit} it had then (or NaN), which scaling would clip "
            "silently (data changed in place, or other data than the model was set up "
            "on). Set up the model again on the current data (a new model fits the new "
            "range), or restore the data."
        )
