"""Image arrays: checks, class labels and the per-channel intensity scaler."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .scaling import Scaler

__all__ = ["TRANSFORMS", "ImageScaler", "check_images", "check_labels"]

TRANSFORMS = ("none", "log1p")


def check_images(
    images: Any, *, where: str = "images", chunk: int = 4096
) -> tuple[np.ndarray, bool]:
    """Return ``(array of shape (N, C, H, W), had_channel_axis)`` after checking the values.

    Accepts numpy arrays (or anything ``np.asarray`` takes, including CPU torch tensors) of
    shape ``(N, H, W)`` or ``(N, C, H, W)`` with finite, non-negative, real values. A
    numpy input is not copied (a 3-D one is viewed with a channel axis).
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if not isinstance(images, np.ndarray):
        try:
            images = np.asarray(images)
        except (ValueError, TypeError) as err:
            raise TypeError(
                f"{where} must be an array, got {type(images).__name__}: {err}"
            ) from err
    dtype = images.dtype
    if not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)) or np.issubdtype(
        dtype, np.complexfloating
    ):
        raise TypeError(f"{where} must hold real numbers, got dtype {dtype}.")
    if images.ndim not in (3, 4):
        raise ValueError(
            f"{where} must have shape (N, H, W) or (N, C, H, W), got shape {images.shape}."
        )
    if min(images.shape) == 0:
        raise ValueError(f"{where} is empty: shape {images.shape}.")
    had_channel_axis = images.ndim == 4
    if not had_channel_axis:
        images = images[:, None]
    if np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.signedinteger):
        for start in range(0, images.shape[0], chunk):
            block = images[start : start + chunk]
            if np.issubdtype(dtype, np.floating) and not np.all(np.isfinite(block)):
                raise ValueError(f"{where} contains NaN or infinite values.")
            if block.min() < 0:
                raise ValueError(
                    f"{where} contains negative values (min {block.min():.4g}); SDD models "
                    "non-negative intensities such as pixel values or energies."
                )
    return images, had_channel_axis


def _python_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def check_labels(labels: Any, n: int, *, where: str = "labels") -> tuple[np.ndarray, list]:
    """Return ``(codes, categories)`` for ``n`` class labels (integers, booleans or strings)."""
    values = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if values.ndim != 1 or values.shape[0] != n:
        raise ValueError(
            f"{where} must be a 1-D array with one label per image ({n}), got shape {values.shape}."
        )
    if values.dtype.kind == "O":
        if not all(isinstance(v, str) for v in values):
            raise TypeError(f"{where} must be integers or strings; got mixed or missing values.")
        values = values.astype(str)
    if values.dtype.kind not in "iubU":
        raise TypeError(
            f"{where} must be integers or strings, got dtype {values.dtype} "
            "(cast float class labels with .astype(int))."
        )
    categories, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), [_python_scalar(c) for c in categories]


class ImageScaler:
    """Per-channel map of non-negative intensities onto [-1, 1], zero to -1.

    ``z = 2 f(x) / m_c - 1`` with ``f`` the identity or ``log1p`` and ``m_c`` the largest
    training value of ``f(x)`` in channel ``c`` (1 for an all-zero channel). The inverse
    maps -1 back to exactly 0.
    """

    def __init__(self, scale: np.ndarray, transform: str = "none") -> None:
        if transform not in TRANSFORMS:
            raise ValueError(
                f"Unknown intensity_transform {transform!r}; choose one of {TRANSFORMS}."
            )
        self.transform_name = transform
        self._scaler = Scaler(np.asarray(scale, dtype=np.float32).reshape(-1, 1, 1))

    @property
    def scale(self) -> np.ndarray:
        """Per-channel scale ``m_c``, shape ``(C,)``."""
        return self._scaler.scale.ravel()

    @classmethod
    def fit(cls, images: np.ndarray, transform: str = "none", chunk: int = 4096) -> ImageScaler:
        """Fit on ``(N, C, H, W)`` images, chunk by chunk."""
        scale = np.zeros(images.shape[1], dtype=np.float64)
        for start in range(0, images.shape[0], chunk):
            block = np.asarray(images[start : start + chunk], dtype=np.float64)
            if transform == "log1p":
                block = np.log1p(block)
            scale = np.maximum(scale, block.max(axis=(0, 2, 3)))
        return cls(scale, transform)

    def transform(self, x: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        if self.transform_name == "log1p":
            x = torch.log1p(x, out=out) if out is not None else torch.log1p(x)
        return self._scaler.transform(x, out=out)

    @property
    def maximum(self) -> np.ndarray:
        """The fitted per-channel maximum intensity, shape ``(C,)``, in data units."""
        scale = self._scaler.gene_max.ravel()
        return np.expm1(scale) if self.transform_name == "log1p" else scale

    def out_of_range(self, x: torch.Tensor) -> torch.Tensor:
        """Per channel: whether any intensity is negative, NaN or above the fitted maximum
        (see :meth:`Scaler.out_of_range`)."""
        if self.transform_name == "log1p":
            x = torch.where(x < 0, x, torch.log1p(x.clamp_min(0)))  # negatives stay negative
        return self._scaler.out_of_range(x)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        y = self._scaler.inverse(z)
        return torch.expm1(y) if self.transform_name == "log1p" else y
