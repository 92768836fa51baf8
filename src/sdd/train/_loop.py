"""The training loop: Adam, EMA, progress bar and loss history; plain, fast and distributed.

Two paths share one loop structure:

* **plain** (the default on CPU and MPS): float32, ``torch.optim.Adam``, the loss read
  back after every step. The reference path: results are reproducible on the CPU. On
  the CPU, Adam runs PyTorch's fused kernel (one pass over weights, gradients and both
  moments; torch >= 2.4) instead of the default single-tensor implementation, which
  makes about ten passes and allocates temporaries the size of each weight: at 5,000
  genes it took a third of the step (``benchmarks/curves.py``).
* **fast** (the default on CUDA): bf16 autocast, fused Adam, and the whole step (both
  forward passes, backward, optimiser step, EMA update, loss logging) captured in CUDA
  graphs, one with and one without self-conditioning, replayed every step. The step's
  random choices stay on the device and the loss is read back only every ``log_every``
  steps, so the host never waits for the GPU. Same objective and same update rule as
  the plain path; the results agree within bf16 tolerance, not bit for bit.

Under ``torch.distributed`` (``torchrun``), the denoiser is wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel` (gradients are averaged across
processes) and the fast path runs without CUDA graphs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from .._execution import (
    Execution,
    as_execution,
    execution_keywords,
    moved_keywords,
    option_dict,
)
from .._progress import tqdm
from ..diffusion import DiffusionProcess
from ._device import resolve_fast
from ._ema import EMA

BatchFn = Callable[[], tuple[torch.Tensor, torch.Tensor | None]]

__all__ = ["train_denoiser", "check_lr"]

#: Probability of a self-conditioning step (as in :func:`sdd.diffusion.diffusion_loss`).
SELF_CONDITION_PROB = 0.5
_WARMUP_STEPS = 3


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def check_lr(lr: float) -> float:
    """``lr`` as a float; ``ValueError`` unless it is a finite positive number."""
    if isinstance(lr, bool) or not isinstance(lr, int | float | np.number):
        raise TypeError(f"lr must be a number, got {lr!r}.")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite positive number, got {lr!r}.")
    return float(lr)


def _adam_options(device: torch.device, *, fast: bool, cuda_graph: bool = False) -> dict:
    """Keyword arguments of ``torch.optim.Adam`` for a training path on ``device``.

    The fast path uses the fused CUDA kernel (capturable inside CUDA graphs). On the
    CPU the plain path uses the fused CPU kernel where this torch has one (>= 2.4), else
    the multi-tensor ``foreach`` implementation, which gives the same numbers as the
    default single-tensor one; other devices keep torch's default.

    Examples
    --------
    >>> _adam_options(torch.device("cpu"), fast=False) in ({"fused": True}, {"foreach": True})
    True
    """
    if fast:
        return {"fused": True, "capturable": bool(cuda_graph)}
    if device.type != "cpu":
        return {}
    return {"fused": True} if _fused_adam_on_cpu() else {"foreach": True}


def _fused_adam_on_cpu() -> bool:
    """Whether this torch has the fused Adam kernel for CPU tensors."""
    try:
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], fused=True)
    except (RuntimeError, ValueError):
        return False
    return True


def _resolve_distributed(distributed: bool | None) -> bool:
    initialised = dist.is_available() and dist.is_initialized()
    if distributed is None:
        return initialised and dist.get_world_size() > 1
    if distributed and not initialised:
        raise ValueError(
            "distributed=True needs an initialised torch.distributed process group "
            "(launch with torchrun; see sdd.train.init_distributed)."
        )
    return bool(distributed)


def _branch_seed(generator: torch.Generator | None) -> int:
    """A seed drawn from ``generator`` (so a continued run does not repeat its coins)."""
    if generator is None:
        return int(torch.initial_seed()) % 2**63
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))


LOOP_OPTIONS = {
    "generator": None, "after_step": None, "lr_schedule": None, "cuda_graph": None,
    "log_every": 100,
}  # fmt: skip


@moved_keywords("loop_kwargs", frozenset(LOOP_OPTIONS))
@execution_keywords("fast", "distributed")
def train_denoiser(
    denoiser: nn.Module,
    ema: EMA,
    next_batch: BatchFn,
    process: DiffusionProcess,
    *,
    max_steps: int,
    steps_per_epoch: int,
    lr: float = 2e-4,
    optimizer_state: dict | None = None,
    start_step: int = 0,
    progress: bool | tqdm = True,
    execution: Execution | None = None,
    loop_kwargs: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Train ``denoiser`` for ``max_steps`` Adam steps on batches from ``next_batch``.

    Parameters
    ----------
    denoiser
        ``denoiser(x_t, t, self_cond, cond) -> x0_hat``, already on its device.
    ema
        EMA of the denoiser's weights, updated after every step.
    next_batch
        Returns ``(x0, cond or None)`` on the denoiser's device. On the fast path with
        CUDA graphs every batch must have the same shape (a batch of another shape is
        trained without the graph).
    process
        The diffusion process (:class:`~sdd.diffusion.DiffusionProcess`): its ``loss`` is
        minimised; with ``process.self_condition`` half of the steps self-condition.
    max_steps, steps_per_epoch
        Steps to run; steps per epoch (for the ``epoch`` column of the history).
    lr
        Adam learning rate (finite, positive).
    optimizer_state
        Adam state from an earlier call, to continue.
    start_step
        Steps done before (numbers the history and ``after_step`` calls).
    progress
        Show a progress bar; or a ``tqdm`` bar to advance by ``max_steps`` and leave
        open (one bar over several calls that continue each other).
    execution
        ``fast`` and ``distributed`` of an :class:`sdd.Execution` (the device is the
        denoiser's; the progress bar is ``progress``). ``fast``: bf16 autocast + fused
        Adam (+ CUDA graphs); ``None``: on CUDA devices (unless the environment variable
        ``SDD_FAST=0``), ``True`` requires CUDA. ``distributed``: wrap the denoiser in
        ``DistributedDataParallel``; ``None``: when a ``torch.distributed`` process
        group with more than one process is initialised. Every process must run the
        same number of steps; the returned history holds the loss averaged over
        processes.
    loop_kwargs
        More of the loop, each ``None`` by default:

        - ``generator``: random numbers of the plain path (times, noise,
          self-conditioning draws). The fast path draws times and noise from the
          device's default generator (seed it with ``torch.manual_seed``) and the
          self-conditioning choices from a host generator seeded from ``generator``;
        - ``after_step``: ``after_step(step)`` is called after each optimiser step and
          before the EMA update (e.g. to re-apply weight masks);
        - ``lr_schedule``: ``lr_schedule(step)``, the multiplier of ``lr`` for the
          optimiser step numbered ``step`` (1-based, as in the history), e.g. from
          :func:`lr_multiplier`; ``None``: constant ``lr``. On the fast path a schedule
          trains without CUDA graphs (the learning rate changes between steps);
        - ``cuda_graph``: capture the fast step in CUDA graphs; ``None``: on the fast
          path without ``torch.distributed``. If capture fails, training goes on
          without graphs (warning);
        - ``log_every`` (100): on the fast path, read the losses back (and check them
          for NaN) every this many steps; the plain path reads every step.

    Returns
    -------
    The loss history (one row per step: ``step``, ``epoch``, ``loss``) and the optimizer
    state (to continue training later).

    Raises
    ------
    FloatingPointError
        If a loss is NaN or infinite. On the plain path the check runs before the
        optimiser step, so the weights never take the bad step; the caller restores
        earlier weights (the model classes restore those from before the call).

    Examples
    --------
    >>> from sdd.diffusion import GaussianDiffusion
    >>> from sdd.nn import SkipMLP
    >>> net = SkipMLP(4, hidden=(8,), emb_dim=4)
    >>> batch = lambda: (torch.rand(16, 4) * 2 - 1, None)
    >>> history, _ = train_denoiser(
    ...     net, EMA(net), batch, GaussianDiffusion(), max_steps=3, steps_per_epoch=1,
    ...     progress=False,
    ... )
    >>> history["step"].tolist()
    [1, 2, 3]
    """
    loop = option_dict(loop_kwargs, LOOP_OPTIONS, "loop_kwargs")
    generator, after_step, lr_schedule = loop["generator"], loop["after_step"], loop["lr_schedule"]
    cuda_graph = loop["cuda_graph"]
    execution = as_execution(execution)
    max_steps = _check_positive_int(max_steps, "max_steps")
    log_every = _check_positive_int(loop["log_every"], "log_every")
    lr = check_lr(lr)
    params = list(denoiser.parameters())
    if not params:
        raise ValueError("The denoiser has no parameters to train.")
    device = params[0].device
    fast = resolve_fast(execution.fast, device)
    distributed = _resolve_distributed(execution.distributed)
    if cuda_graph is None:
        cuda_graph = fast and not distributed and lr_schedule is None
    elif cuda_graph and (not fast or distributed or lr_schedule is not None):
        raise ValueError(
            "cuda_graph=True needs the fast path (CUDA), no torch.distributed and no lr_schedule."
        )

    model: nn.Module = denoiser
    if distributed:
        model = _wrap_ddp(denoiser, ema, device)
    options = _adam_options(device, fast=fast, cuda_graph=bool(cuda_graph))
    optimizer = torch.optim.Adam(params, lr=lr, **options)
    if optimizer_state:
        optimizer.load_state_dict(optimizer_state)
        for group in optimizer.param_groups:  # keep this path's kernels
            group["fused"] = options.get("fused")
            group["capturable"] = bool(cuda_graph)
            group["foreach"] = options.get("foreach")
            group["lr"] = lr  # this call's learning rate, not the saved one
    denoiser.train()
    try:
        if fast:
            losses = _FastLoop(
                model, denoiser, ema, optimizer, process, next_batch,
                start_step=start_step, after_step=after_step, lr_at=_lr_setter(optimizer, lr, lr_schedule),
                cuda_graph=cuda_graph, seed=_branch_seed(generator), max_steps=max_steps,
            ).run(progress=progress, log_every=log_every)  # fmt: skip
        else:
            losses = _plain_loop(
                model, denoiser, ema, optimizer, process, next_batch,
                start_step=start_step, after_step=after_step, lr_at=_lr_setter(optimizer, lr, lr_schedule),
                generator=generator, max_steps=max_steps, progress=progress,
            )  # fmt: skip
    finally:
        denoiser.eval()
    if distributed:
        losses = _mean_over_ranks(losses, device)
    steps = np.arange(start_step + 1, start_step + max_steps + 1)
    history = pd.DataFrame(
        {"step": steps, "epoch": (steps - 1) // max(1, steps_per_epoch), "loss": losses}
    )
    return history, optimizer.state_dict()


# ------------------------------------------------------------------ helpers
def _wrap_ddp(denoiser: nn.Module, ema: EMA, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
    model = DistributedDataParallel(denoiser, device_ids=ids)  # broadcasts rank 0's weights
    with torch.no_grad():  # and the EMA starts from rank 0's too
        for tensor in [*ema.model.parameters(), *ema.model.buffers()]:
            dist.broadcast(tensor, src=0)
    return model


def _mean_over_ranks(losses: np.ndarray, device: torch.device) -> np.ndarray:
    backend = dist.get_backend()
    where = device if backend == "nccl" else torch.device("cpu")
    buf = torch.as_tensor(losses, dtype=torch.float64, device=where)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return (buf / dist.get_world_size()).cpu().numpy()


def _diverged(losses: np.ndarray, offset: int) -> None:
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        i = int(bad[0])
        raise FloatingPointError(f"Training diverged: loss is {losses[i]} at step {offset + i}.")


def _lr_setter(
    optimizer: torch.optim.Optimizer, lr: float, schedule: Callable[[int], float] | None
) -> Callable[[int], None] | None:
    if schedule is None:
        return None

    def set_lr(step: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr * schedule(step)

    return set_lr


def _progress_bar(progress: bool | tqdm, total: int) -> tuple[tqdm, bool]:
    """The bar to advance and whether it is this call's own (to close at the end)."""
    if isinstance(progress, tqdm):
        return progress, False
    return tqdm(total=total, desc="Training", disable=not progress, unit="step"), True


def _plain_loop(
    model, denoiser, ema, optimizer, process, next_batch, *,
    start_step, after_step, generator, max_steps, progress, lr_at=None,
) -> np.ndarray:  # fmt: skip
    losses = np.empty(max_steps, dtype=np.float64)
    bar, own = _progress_bar(progress, max_steps)
    try:
        for i in range(max_steps):
            x0, cond = next_batch()
            loss = process.loss(model, x0, cond, generator=generator)
            losses[i] = loss.item()
            _diverged(losses[i : i + 1], start_step + i + 1)  # before the step touches weights
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if lr_at is not None:
                lr_at(start_step + i + 1)
            optimizer.step()
            if after_step is not None:
                after_step(start_step + i + 1)
            ema.update(denoiser)
            bar.update(1)
            if i % 50 == 0 or i == max_steps - 1:
                bar.set_postfix(loss=f"{losses[max(0, i - 49) : i + 1].mean():.4f}")
    finally:
        if own:
            bar.close()
    return losses


class _FastLoop:
    """bf16 autocast + fused Adam, optionally replaying CUDA graphs of the whole step."""

    def __init__(
        self, model, denoiser, ema, optimizer, process, next_batch, *,
        start_step, after_step, cuda_graph, seed, max_steps, lr_at=None,
    ) -> None:  # fmt: skip
        self.model, self.denoiser, self.ema = model, denoiser, ema
        self.optimizer, self.process, self.next_batch = optimizer, process, next_batch
        self.self_condition = bool(getattr(process, "self_condition", False))
        self.start_step, self.after_step = start_step, after_step
        self.lr_at = lr_at  # set only without CUDA graphs (train_denoiser sees to it)
        self.cuda_graph = cuda_graph
        self.max_steps = max_steps
        self.device = next(denoiser.parameters()).device
        # the self-conditioning coin is tossed on the host: no device read-back
        self.branches = (
            np.random.default_rng(seed).random(max_steps) < SELF_CONDITION_PROB
            if self.self_condition
            else np.zeros(max_steps, dtype=bool)
        )
        self.losses = torch.zeros(max_steps, device=self.device)
        self.counter = torch.zeros((), dtype=torch.long, device=self.device)
        self.ema_count = torch.tensor(float(ema.n_updates), dtype=torch.float64, device=self.device)
        ema.carry = 1.0  # this path moves the average every step (EMA.update_on_device)
        self.ema_in_step = after_step is None
        self.graphs: dict[bool, torch.cuda.CUDAGraph] = {}
        self.static: tuple[torch.Tensor, torch.Tensor | None] | None = None
        for p in denoiser.parameters():  # gradients live at fixed addresses
            if p.requires_grad and p.grad is None:
                p.grad = torch.zeros_like(p)

    def _step(self, x0: torch.Tensor, cond: torch.Tensor | None, use_sc: bool) -> None:
        """One training step; returns nothing so that a graph capture keeps no outputs."""
        self.optimizer.zero_grad(set_to_none=False)
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            loss = self.process.loss(self.model, x0, cond, self_cond=use_sc)
        loss.backward()
        self.optimizer.step()
        if self.ema_in_step:
            self.ema.update_on_device(self.denoiser, self.ema_count)
        self.losses.index_copy_(0, self.counter.view(1), loss.detach().float().view(1))
        self.counter.add_(1)

    def _after(self, i: int) -> None:
        if self.after_step is not None:
            self.after_step(self.start_step + i + 1)
            self.ema.update(self.denoiser)  # after the hook, as on the plain path

    def _capture(self, x0: torch.Tensor, cond: torch.Tensor | None) -> None:
        static_x = x0.detach().clone()
        static_cond = None if cond is None else cond.detach().clone()
        graphs, pool = {}, None
        for variant in (True, False) if self.self_condition else (False,):
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
                self._step(static_x, static_cond, variant)
            pool = graph.pool()
            graphs[variant] = graph
        self.graphs, self.static = graphs, (static_x, static_cond)

    def _replay(self, x0: torch.Tensor, cond: torch.Tensor | None, use_sc: bool) -> bool:
        static_x, static_cond = self.static
        if x0.shape != static_x.shape or (cond is None) != (static_cond is None):
            return False
        if cond is not None and cond.shape != static_cond.shape:
            return False
        static_x.copy_(x0, non_blocking=True)
        if cond is not None:
            static_cond.copy_(cond, non_blocking=True)
        self.graphs[use_sc].replay()
        return True

    def run(self, *, progress: bool | tqdm, log_every: int) -> np.ndarray:
        n = self.max_steps
        out = np.empty(n, dtype=np.float64)
        bar, own = _progress_bar(progress, n)
        synced = 0
        warmup = min(_WARMUP_STEPS, n) if self.cuda_graph else 0
        try:
            if warmup:  # eager warm-up steps on a side stream, as CUDA graphs require
                stream = torch.cuda.Stream(self.device)
                stream.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(stream):
                    for i in range(warmup):
                        x0, cond = self.next_batch()
                        self._step(x0, cond, bool(self.branches[i]))
                        self._after(i)
                torch.cuda.current_stream(self.device).wait_stream(stream)
                # a labelled network without labels builds its null codes on the host
                unlabelled = getattr(self.denoiser, "labels", None) is not None and cond is None
                if warmup < n and not unlabelled:
                    try:
                        self._capture(x0, cond)
                    except Exception as err:  # noqa: BLE001 - any capture failure
                        warnings.warn(
                            f"CUDA graph capture failed ({type(err).__name__}: {err}); "
                            "training continues without CUDA graphs.",
                            RuntimeWarning,
                            stacklevel=3,
                        )
                        torch.cuda.synchronize(self.device)
                        self.graphs = {}
            for i in range(warmup, n):
                x0, cond = self.next_batch()
                use_sc = bool(self.branches[i])
                if self.lr_at is not None:  # no graphs then: the step runs eagerly
                    self.lr_at(self.start_step + i + 1)
                if not (self.graphs and self._replay(x0, cond, use_sc)):
                    self._step(x0, cond, use_sc)
                self._after(i)
                if (i + 1) % log_every == 0 or i == n - 1:
                    out[synced : i + 1] = self.losses[synced : i + 1].cpu().numpy()
                    _diverged(out[synced : i + 1], self.start_step + synced + 1)
                    bar.update(i + 1 - synced)
                    bar.set_postfix(loss=f"{out[max(0, i - 49) : i + 1].mean():.4f}")
                    synced = i + 1
            if synced < n:  # all steps were warm-up steps
                out[synced:] = self.losses[synced:].cpu().numpy()
                _diverged(out[synced:], self.start_step + synced + 1)
                bar.update(n - synced)
        finally:
            if own:
                bar.close()
            self.graphs = {}
            self.static = None
        if self.ema_in_step:
            self.ema.n_updates += n
        return out
