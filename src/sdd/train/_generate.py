"""Sampling on one or several devices, with the fast (bf16) path on CUDA."""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..diffusion import DiffusionProcess, sparsity
from ._device import resolve_fast

DenoiseFn = Callable[..., torch.Tensor]

__all__ = ["autocast_denoise", "sample_split", "GraphedDenoise"]


def autocast_denoise(
    denoise: DenoiseFn, device: torch.device | str, *, cache_enabled: bool = True
) -> DenoiseFn:
    """``denoise`` run under bf16 autocast on ``device``, returning float32.

    The sampler's own arithmetic (noise, posterior means, clipping) stays in float32;
    only the network runs in bf16.

    Examples
    --------
    >>> f = autocast_denoise(lambda x, t, sc: x, "cpu")
    >>> f(torch.ones(1, 2), torch.zeros(1), torch.zeros(1, 2)).dtype
    torch.float32
    """
    kind = torch.device(device).type

    def wrapped(*inputs: torch.Tensor) -> torch.Tensor:
        with torch.autocast(kind, dtype=torch.bfloat16, cache_enabled=cache_enabled):
            return denoise(*inputs).float()

    return wrapped


class GraphedDenoise:
    """A denoiser call captured once in a CUDA graph and replayed at every sampling step.

    Sampling a batch calls the network hundreds of times with tensors of the same
    shapes; replaying one graph instead of launching each kernel takes the CPU out of
    the loop for batches of a few thousand rows. The first call warms up and captures
    the graph with that call's inputs; later calls copy their inputs into the static
    buffers and return the output as a fresh tensor. Same kernels, same numbers as the
    eager call.

    Parameters
    ----------
    denoise
        ``denoise(*inputs) -> estimate`` (no host synchronisation inside).
    device
        A CUDA device.
    """

    def __init__(self, denoise: DenoiseFn, device: torch.device) -> None:
        # the graph reads every tensor the call closes over (labels, null codes) by
        # address: keep them alive as long as the graph
        self.denoise, self.device = denoise, device
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager = False  # capture failed: run the call as it is

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> None:
        self.static = tuple(v.detach().clone() for v in inputs)
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream), torch.no_grad():  # warm-up, as graphs require
            for _ in range(2):
                self.denoise(*self.static)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.out = self.denoise(*self.static)
        self.graph = graph

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.eager:
            return self.denoise(*inputs)
        if self.graph is None:
            try:
                self._capture(inputs)
            except Exception:  # noqa: BLE001 - e.g. a host copy inside the network
                torch.cuda.synchronize(self.device)
                self.eager = True
                return self.denoise(*inputs)
        for static, value in zip(self.static, inputs, strict=True):
            static.copy_(value)
        self.graph.replay()
        return self.out.clone()


def _prepare(denoise: DenoiseFn, device: torch.device, fast: bool, graph: bool) -> DenoiseFn:
    """bf16 autocast on the fast path, replayed from a CUDA graph where it can be captured."""
    if not fast:
        return denoise
    if graph and device.type == "cuda":
        return GraphedDenoise(autocast_denoise(denoise, device, cache_enabled=False), device)
    return autocast_denoise(denoise, device)


def _chunks(n: int, k: int) -> list[tuple[int, int]]:
    base, extra = divmod(n, k)
    out, start = [], 0
    for i in range(k):
        size = base + (1 if i < extra else 0)
        out.append((start, size))
        start += size
    return [(s, m) for s, m in out if m > 0]


def sample_split(
    net: nn.Module,
    process: DiffusionProcess,
    shape: tuple[int, ...],
    *,
    devices: Sequence[torch.device],
    cond: torch.Tensor | None = None,
    guidance_scale: float = 0.0,
    known: tuple[torch.Tensor, torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    fast: bool | None = None,
    cuda_graph: bool | None = None,
    step_callback: Callable[[], None] | None = None,
    **options: Any,
) -> torch.Tensor:
    """Run ``process.sample`` for one batch, split row-wise across devices.

    With one device this is ``process.sample(process.denoiser(net, cond, w), shape,
    ...)`` with the given ``generator`` (bf16 autocast around the network on the fast
    path, replayed from a CUDA graph on CUDA). With
    several, ``net`` is copied to each device, each takes an equal share of the rows
    with its own generator (seeded from draws of ``generator``, so the result is
    reproducible for a given device list), and the devices run concurrently in threads.

    Parameters
    ----------
    net
        The denoising network (on ``devices[0]``, or anywhere for several devices).
    process
        The diffusion process (:class:`~sdd.diffusion.DiffusionProcess`).
    shape
        Shape of the whole batch, rows first.
    devices
        Devices to run on (see :func:`~sdd.train.resolve_devices`).
    cond
        Per-row conditioning codes (split with the rows) or ``None``.
    guidance_scale
        Classifier-free guidance weight (see :func:`~sdd.diffusion.classifier_free_guidance`).
    known
        Optional ``(values, mask)`` for inpainting (split with the rows).
    generator
        Random number generator on ``devices[0]``.
    fast
        bf16 autocast around the network; ``None``: on CUDA (see
        :func:`~sdd.train.resolve_fast`). ``True`` is allowed on the CPU too.
    cuda_graph
        On the fast path, replay the network from a CUDA graph (:class:`GraphedDenoise`);
        ``None``: yes. If the capture fails, the network runs eagerly.
    step_callback
        Called after every network evaluation (of the first device).
    **options
        Sampler options of the process (e.g. ``sampler``, ``n_steps``).

    Returns
    -------
    The final x0 estimates, on ``devices[0]``.

    Examples
    --------
    >>> from sdd.diffusion import GaussianDiffusion
    >>> from sdd.nn import SkipMLP
    >>> z = sample_split(
    ...     SkipMLP(2, hidden=(4,), emb_dim=4), GaussianDiffusion(), (3, 2),
    ...     devices=[torch.device("cpu")], n_steps=2,
    ... )
    >>> tuple(z.shape)
    (3, 2)
    """
    devices = [torch.device(d) for d in devices]
    if not devices:
        raise ValueError("devices is empty; name at least one device.")
    fasts = [resolve_fast(fast, d, allow_cpu=True) for d in devices]
    graph = True if cuda_graph is None else bool(cuda_graph)
    if getattr(net, "labels", None) is not None and cond is None:
        graph = False  # the network builds its null labels on the host at every call
    if len(devices) == 1:
        dev = devices[0]
        denoise = _prepare(process.denoiser(net, cond, guidance_scale), dev, fasts[0], graph)
        return process.sample(
            denoise, tuple(shape), known=known, generator=generator, device=dev,
            step_callback=step_callback, **options,
        )  # fmt: skip

    parts = _chunks(shape[0], len(devices))
    seed_device = generator.device if generator is not None else torch.device("cpu")
    seeds = torch.randint(0, 2**62, (len(parts),), generator=generator, device=seed_device).tolist()
    results: list[torch.Tensor | None] = [None] * len(parts)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        start, size = parts[k]
        dev = devices[k]
        try:
            with torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext():
                replica = net if _on(net, dev) else copy.deepcopy(net).to(dev)
                rows = slice(start, start + size)
                c = None if cond is None else cond[rows].to(dev)
                denoise = _prepare(
                    process.denoiser(replica, c, guidance_scale), dev, fasts[k], graph
                )
                kn = None
                if known is not None:
                    kn = (known[0][rows].to(dev), known[1][rows].to(dev))
                gen = torch.Generator(dev).manual_seed(int(seeds[k]))
                results[k] = process.sample(
                    denoise, (size, *shape[1:]), known=kn, generator=gen, device=dev,
                    step_callback=step_callback if k == 0 else None, **options,
                )  # fmt: skip
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(parts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return torch.cat([r.to(devices[0]) for r in results])


def _on(net: nn.Module, device: torch.device) -> bool:
    p = next(net.parameters(), None)
    return p is None or p.device == device


def available_memory() -> int | None:
    """Bytes of memory available to this process (Linux ``MemAvailable``), else ``None``."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_output_memory(n: int, bytes_per_row: float, what: str = "rows") -> None:
    """Raise a ValueError when ``n`` generated rows would not fit in the memory available.

    Examples
    --------
    >>> check_output_memory(10, 4.0, "cells")
    """
    need = float(n) * bytes_per_row
    free = available_memory()
    if free is not None and need > 0.8 * free:
        raise ValueError(
            f"Generating {n:,} {what} needs about {need / 2**30:.1f} GiB, but only "
            f"{free / 2**30:.1f} GiB of memory is available. Generate fewer {what} per call "
            "(e.g. in a loop, writing each result), or pass store_dense=False."
        )


def decode_bits(
    z: torch.Tensor,
    inverse: Callable[..., torch.Tensor],
    *,
    bits: bool,
    dense: bool = False,
    threshold: torch.Tensor | float = 0.0,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Values (exact zeros), dense values and SB logits of a sampled batch, as NumPy.

    ``z`` holds data and sparsity bits along dim 1 when ``bits``; ``inverse(values,
    nonzero=None)`` maps the data back to training units (``nonzero``: the thresholded
    bits, for scalers that floor expressed entries). Dense values and logits are ``None``
    unless ``dense`` (logits also without ``bits``). A bit is on where its analog value
    is ``> threshold`` (a number, one threshold per feature, or a row of thresholds per
    example).
    """
    if not bits:
        values = inverse(z).cpu().numpy()
        return values, (values.copy() if dense else None), None
    masked, raw, nonzero = sparsity.decode(z, zero_value=-1.0, threshold=threshold)
    values = inverse(masked, nonzero).cpu().numpy()
    if not dense:
        return values, None, None
    return values, inverse(raw).cpu().numpy(), sparsity.split(z)[1].cpu().numpy()
