"""Choosing the torch device from an ``accelerator`` string."""

from __future__ import annotations

import torch

ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")


def resolve_device(accelerator: str = "auto", device: int | str | None = None) -> torch.device:
    """Map ``accelerator`` (``"auto"``, ``"cpu"``, ``"cuda"``/``"gpu"``, ``"mps"``) to a device."""
    if accelerator not in ACCELERATORS:
        raise ValueError(f"Unknown accelerator {accelerator!r}; choose one of {ACCELERATORS}.")
    if accelerator == "auto":
        if torch.cuda.is_available():
            accelerator = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            accelerator = "mps"
        else:
            accelerator = "cpu"
    if accelerator in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            raise ValueError("accelerator='cuda' was requested but CUDA is not available.")
        return torch.device("cuda", int(device) if device not in (None, "auto") else 0)
    return torch.device(accelerator)
