"""Choosing torch devices from an ``accelerator`` string, and whether to use the fast path."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
FAST_ENV = "SDD_FAST"

DeviceSpec = int | str | torch.device | Sequence[int | str | torch.device] | None


def _accelerator(accelerator: str) -> str:
    if accelerator not in ACCELERATORS:
        raise ValueError(f"Unknown accelerator {accelerator!r}; choose one of {ACCELERATORS}.")
    if accelerator == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if accelerator == "gpu":
        return "cuda"
    return accelerator


def _one_device(kind: str, device: int | str | torch.device | None) -> torch.device:
    if isinstance(device, torch.device):
        if device.type != kind:
            raise ValueError(f"device {device} does not match accelerator {kind!r}.")
        return device
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("accelerator='cuda' was requested but CUDA is not available.")
        if device in (None, "auto"):
            index = 0
        elif isinstance(device, str) and device.startswith("cuda"):
            index = torch.device(device).index or 0
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
    """All devices named by ``device``: a GPU index, ``"0,1"``, a list of indices, or ``None``.

    Parameters
    ----------
    accelerator
        ``"auto"``, ``"cpu"``, ``"cuda"``/``"gpu"`` or ``"mps"``.
    device
        GPU index (``0``), a comma-separated string (``"0,1"``), a sequence of indices,
        ``"all"`` (every visible GPU) or ``None`` (the first GPU). Ignored on CPU and MPS.

    Examples
    --------
    >>> resolve_devices("cpu")
    [device(type='cpu')]
    """
    kind = _accelerator(accelerator)
    if kind != "cuda":
        return [torch.device(kind)]
    if device == "all":
        if not torch.cuda.is_available():
            raise ValueError("accelerator='cuda' was requested but CUDA is not available.")
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
