"""Choosing torch devices from an ``accelerator`` string, and whether to use the fast path."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
FAST_ENV = "SDD_FAST"

DeviceSpec = int | str | torch.device | Sequence[int | str | torch.device] | None


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _accelerator(accelerator: str, what: str | None = None) -> str:
    """The device type ``accelerator`` names; raise if that hardware is not available.

    ``what`` names the request in the error (default: ``accelerator=...``).
    """
    if not isinstance(accelerator, str) or accelerator not in ACCELERATORS:
        raise ValueError(f"Unknown accelerator {accelerator!r}; choose one of {ACCELERATORS}.")
    if accelerator == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if _mps_available():
            return "mps"
        return "cpu"
    kind = "cuda" if accelerator == "gpu" else accelerator
    what = what or f"accelerator={accelerator!r}"
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"{what} was requested but CUDA is not available on this "
            "machine (no GPU, or torch built without CUDA); use accelerator='cpu' or 'auto' "
            "and device=None."
        )
    if kind == "mps" and not _mps_available():
        raise ValueError(
            f"{what} was requested but MPS (Apple GPU) is not available on this "
            "machine; use accelerator='cpu' or 'auto' and device=None."
        )
    return kind


def _named_kind(device: DeviceSpec) -> str | None:
    """The device type a ``device`` value names by itself (``"cuda:1"``, ``"mps"``, a
    ``torch.device``), or ``None`` for GPU indices and ``None``."""
    if isinstance(device, torch.device):
        return device.type
    if isinstance(device, str):
        base = device.strip().lower().split(":", 1)[0]
        if base in ("cpu", "cuda", "gpu", "mps"):
            return "cuda" if base == "gpu" else base
    return None


def _one_device(kind: str, device: int | str | torch.device | None) -> torch.device:
    if isinstance(device, torch.device):
        if device.type != kind:
            raise ValueError(f"device {device} does not match accelerator {kind!r}.")
        if kind != "cuda":
            return device
    if kind == "cuda":
        if device in (None, "auto"):
            index = 0
        elif isinstance(device, torch.device):
            index = device.index or 0
        elif isinstance(device, str) and device.strip().lower().startswith(("cuda", "gpu")):
            _, _, number = device.strip().partition(":")
            try:
                index = int(number) if number else 0
            except ValueError:
                raise ValueError(f"device must be a GPU index, got {device!r}.") from None
        else:
            try:
                index = int(device)
            except (TypeError, ValueError):
                raise ValueError(f"device must be a GPU index, got {device!r}.") from None
        if not 0 <= index < torch.cuda.device_count():
            raise ValueError(
                f"GPU index {index} is out of range: {torch.cuda.device_count()} GPU(s) visible."
            )
        return torch.device("cuda", index)
    return torch.device(kind)


def resolve_devices(accelerator: str = "auto", device: DeviceSpec = None) -> list[torch.device]:
    """All devices named by ``accelerator`` and ``device``; raise if they are not available.

    A request is never silently ignored: ``accelerator="cuda"`` or ``"mps"``, a
    ``device`` naming a GPU (``"cuda"``, ``"cuda:1"``, ``0``, ``"0,1"``, ``"all"``) or
    MPS, on a machine without that hardware raises ``ValueError``, as does a ``device``
    that contradicts ``accelerator`` (``accelerator="cpu", device="cuda"``).

    Parameters
    ----------
    accelerator
        ``"auto"``, ``"cpu"``, ``"cuda"``/``"gpu"`` or ``"mps"``.
    device
        ``None`` (the accelerator's first device), a GPU index (``0``), a comma-separated
        string (``"0,1"``), a sequence of indices, ``"all"`` (every visible GPU), or a
        device name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, a ``torch.device``),
        which with ``accelerator="auto"`` chooses the accelerator.

    Examples
    --------
    >>> resolve_devices("cpu")
    [device(type='cpu')]
    >>> resolve_devices("auto", "cpu")
    [device(type='cpu')]
    """
    named = _named_kind(device)
    if named is not None:
        if accelerator != "auto" and _accelerator_name(accelerator) != named:
            raise ValueError(
                f"device={device!r} does not match accelerator={accelerator!r}; "
                "leave one of them at its default."
            )
        kind = _accelerator(named, f"device={device!r}")
        return [_one_device(kind, device)]
    kind = _accelerator(accelerator)
    if kind != "cuda":
        if device is not None and not (isinstance(device, str) and device == "auto"):
            why = (
                "no CUDA GPU is available on this machine"
                if accelerator == "auto"
                else f"accelerator={accelerator!r}"
            )
            raise ValueError(f"device={device!r} names a GPU, but {why}; leave device=None.")
        return [torch.device(kind)]
    if device == "all":
        return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    if isinstance(device, str) and "," in device:
        device = [d.strip() for d in device.split(",") if d.strip()]
    if isinstance(device, Sequence) and not isinstance(device, str):
        if not device:
            raise ValueError("device is an empty list; name at least one GPU.")
        devices = [_one_device("cuda", d) for d in device]
        if len(set(devices)) != len(devices):
            raise ValueError(f"device lists the same GPU twice: {list(device)}.")
        return devices
    return [_one_device("cuda", device)]


def _accelerator_name(accelerator: str) -> str:
    if not isinstance(accelerator, str) or accelerator not in ACCELERATORS:
        raise ValueError(f"Unknown accelerator {accelerator!r}; choose one of {ACCELERATORS}.")
    return "cuda" if accelerator == "gpu" else accelerator


def resolve_device(accelerator: str = "auto", device: DeviceSpec = None) -> torch.device:
    """Map ``accelerator`` (``"auto"``, ``"cpu"``, ``"cuda"``/``"gpu"``, ``"mps"``) to a device.

    ``device`` is a GPU index; when it names several GPUs (see :func:`resolve_devices`)
    the first one is returned.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    return resolve_devices(accelerator, device)[0]


def resolve_fast(fast: bool | None, device: torch.device | str, *, allow_cpu: bool = False) -> bool:
    """Whether to use the fast path (bf16 autocast, fused Adam, CUDA graphs) on ``device``.

    ``None`` means: on CUDA devices, unless the environment variable ``SDD_FAST=0`` turns
    the fast path off everywhere (``SDD_FAST=1`` keeps the default). Training's fast path
    needs a CUDA device; asking for it elsewhere raises ``ValueError``. With
    ``allow_cpu=True`` (sampling, where the fast path is bf16 autocast alone) ``fast=True``
    is also accepted on the CPU, where bf16 matrix products are about twice as fast on
    processors with AVX-512 BF16 or AMX.

    Examples
    --------
    >>> resolve_fast(None, "cpu")
    False
    """
    device = torch.device(device)
    if fast is None:
        env = os.environ.get(FAST_ENV, "").strip().lower()
        if env in ("0", "false", "no", "off"):
            return False
        if env not in ("", "1", "true", "yes", "on"):
            raise ValueError(f"{FAST_ENV}={env!r} is not understood; use 0 or 1.")
        return device.type == "cuda"
    if not isinstance(fast, bool):
        raise TypeError(f"fast must be True, False or None, got {fast!r}.")
    if fast and device.type != "cuda" and not (allow_cpu and device.type == "cpu"):
        raise ValueError(
            f"fast=True needs a CUDA device (bf16 autocast, fused Adam, CUDA graphs); the "
            f"model is on {device}. Use fast=None or fast=False."
        )
    return fast
