"""`SDDImage`: Sparse Data Diffusion for image arrays (MNIST-like or calorimeter images)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ..data import Scaler, label_codes
from ..diffusion import CosineSchedule, GaussianDiffusion, sparsity
from ..nn.unet import UNet
from ._base import DiffusionModel

__all__ = ["SDDImage", "GeneratedImages"]

TRANSFORMS = ("none", "log1p")


# ---------------------------------------------------------------------- input checks
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


# ---------------------------------------------------------------------- scaling
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

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return self._scaler.transform(torch.log1p(x) if self.transform_name == "log1p" else x)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        y = self._scaler.inverse(z)
        return torch.expm1(y) if self.transform_name == "log1p" else y


# ---------------------------------------------------------------------- output
@dataclass(frozen=True, repr=False, eq=False)
class GeneratedImages:
    """Images generated by :class:`SDDImage`.

    All arrays share the layout of the training images: ``(n, H, W)`` if the model was
    trained on ``(N, H, W)`` arrays, ``(n, C, H, W)`` otherwise. Values are in the
    training units (e.g. 0-255 for MNIST, GeV for calorimeter images).

    Attributes
    ----------
    images
        float32 images with exact zeros: the dense values masked by the thresholded
        sparsity bits.
    sparsity_bits
        bool, ``True`` where a pixel is non-zero; equals ``images != 0``. (A pixel whose SB
        is on but whose dense value was clipped to the bottom of the range is 0 in
        ``images`` and ``False`` here; ``sb_logits > 0`` has the raw SB decisions.)
    dense
        float32 values before masking (``None`` when ``store_dense=False``). For the
        plain baseline these equal ``images``.
    sb_logits
        float32 analog sparsity bits in [-1, 1] before thresholding at 0 (``None`` for the
        plain baseline or with ``store_dense=False``).
    labels
        The class label of each image when generated conditionally, else ``None``.
    settings
        The generation settings (sampler, steps, seed, ...).
    """

    images: np.ndarray
    sparsity_bits: np.ndarray
    dense: np.ndarray | None = None
    sb_logits: np.ndarray | None = None
    labels: np.ndarray | None = None
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        zeros = 1.0 - float(self.sparsity_bits.mean())
        extra = [k for k in ("dense", "sb_logits", "labels") if getattr(self, k) is not None]
        return (
            f"GeneratedImages: {len(self)} images of shape {self.images.shape[1:]}, "
            f"{zeros:.2%} exact zeros; arrays: images, sparsity_bits"
            + "".join(f", {k}" for k in extra)
        )


# ---------------------------------------------------------------------- model
class SDDImage(DiffusionModel):
    """Sparse Data Diffusion model for images (Ostheimer et al., SDD).

    Each image (non-negative intensities, shape ``(C, H, W)``) is scaled per channel to
    [-1, 1] (zero maps to -1) and stacked with its sparsity bits ``sb = 1[x != 0]`` as
    ``C`` extra channels of analog bits in {-1, +1}. A continuous-time Gaussian
    diffusion with a cosine log-SNR schedule is trained on the ``2 C`` channels with
    x0-prediction, L2 loss and self-conditioning, using a DDPM U-Net
    (:class:`sdd.nn.UNet`). Sampling thresholds the SB channels at 0 and masks the data
    channels, so generated zeros are exact.

    Scaling: with ``f`` the identity (``intensity_transform="none"``) or ``log1p`` and
    ``m_c`` the largest training value of ``f(x)`` in channel ``c``, values map to
    ``2 f(x) / m_c - 1``; generated values are clipped to [-1, 1] and mapped back, so
    they lie in the training range. ``log1p`` suits heavy-tailed intensities such as
    calorimeter energies.

    Parameters
    ----------
    images
        Training images, ``(N, H, W)`` or ``(N, C, H, W)``, finite and non-negative
        (any real dtype; uint8 stays uint8 in memory, batches are converted).
    labels
        Optional class label per image (integers or strings) to condition on.
    sparsity_bits
        Model the zero pattern with sparsity bits. ``False`` gives the plain diffusion
        baseline (same U-Net with ``C`` instead of ``2 C`` channels).
    base_channels, channel_mult, num_res_blocks, attention_stages, num_heads, dropout, num_groups, emb_dim, mid_attention, scale_shift
        U-Net architecture, see :class:`sdd.nn.UNet`. The defaults are small enough for a
        CPU; the paper's setting is :data:`sdd.nn.PAPER_UNET` (``SDDImage(x,
        **sdd.nn.PAPER_UNET)``).
    self_condition
        Train and sample with self-conditioning.
    condition_dropout
        Probability of dropping the label during training (classifier-free guidance);
        only used with ``labels``.
    intensity_transform
        ``"none"`` or ``"log1p"``, applied before the per-channel scaling.
    logsnr_min, logsnr_max
        Range of the cosine log-SNR schedule.

    Examples
    --------
    >>> import numpy as np, sdd
    >>> x = np.random.default_rng(0).poisson(0.3, size=(64, 12, 12)).astype("float32")
    >>> model = sdd.SDDImage(x, base_channels=8, channel_mult=(1, 2), num_res_blocks=1)
    >>> model.train(max_steps=2, batch_size=16, progress=False)  # doctest: +ELLIPSIS
    SDDImage model (sparsity bits): 1x12x12 images, ...
    >>> out = model.generate(4, sampler="ddim", n_steps=3, progress=False)
    >>> out.images.shape, bool(np.all(out.images[~out.sparsity_bits] == 0))
    ((4, 12, 12), True)
    """

    _model_class = "SDDImage"
    _data_params = ("images", "labels")

    def __init__(
        self,
        images: Any,
        labels: Any = None,
        *,
        sparsity_bits: bool = True,
        base_channels: int = 32,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 2,
        attention_stages: Sequence[int] = (),
        num_heads: int = 4,
        dropout: float = 0.0,
        num_groups: int = 32,
        emb_dim: int | None = None,
        mid_attention: bool = True,
        scale_shift: bool = False,
        self_condition: bool = True,
        condition_dropout: float = 0.1,
        intensity_transform: Literal["none", "log1p"] = "none",
        logsnr_min: float = -15.0,
        logsnr_max: float = 15.0,
        weight_sparsity: float = 0.0,
        **sparse: Any,
    ) -> None:
        self._capture_init_args(locals())
        self._images, channel_axis = check_images(images)
        codes, categories = (
            (None, None) if labels is None else check_labels(labels, len(self._images))
        )
        self._codes = None if codes is None else codes[:, None]
        self.data_args_ = {
            "image_shape": [int(s) for s in self._images.shape[1:]],
            "channel_axis": bool(channel_axis),
            "categories": categories,
            "n_train": int(self._images.shape[0]),
        }
        self.scaler_ = ImageScaler.fit(self._images, intensity_transform)
        self._finish_init()

    def _check_init_args(self) -> None:
        super()._check_init_args()
        transform = self.init_args_["intensity_transform"]
        if transform not in TRANSFORMS:
            raise ValueError(
                f"Unknown intensity_transform {transform!r}; choose one of {TRANSFORMS}."
            )

    def _build_network(self) -> UNet:
        a = self.init_args_
        _, h, w = self.image_shape
        return UNet(
            self.data_channels, (h, w), base_channels=a["base_channels"],
            channel_mult=a["channel_mult"], num_res_blocks=a["num_res_blocks"],
            attention_stages=a["attention_stages"], num_heads=a["num_heads"],
            dropout=a["dropout"], num_groups=a["num_groups"], emb_dim=a["emb_dim"],
            n_categories=[len(c) for c in self.categories_.values()],
            mid_attention=a["mid_attention"], scale_shift=a["scale_shift"],
        )  # fmt: skip

    def _make_process(self) -> GaussianDiffusion:
        a = self.init_args_
        schedule = CosineSchedule(a["logsnr_min"], a["logsnr_max"])
        return GaussianDiffusion(schedule, self_condition=a["self_condition"])

    @property
    def schedule(self) -> CosineSchedule:
        """The noise schedule of the process."""
        return self.process.schedule

    def _training_data(self) -> tuple[Any, np.ndarray | None]:
        if self._images is None:
            raise ValueError(
                "This model has no training data; load it with SDDImage.load(path, images) "
                "to train it further."
            )
        return self._images, self._codes

    def _encode(self, x, nonzero):
        return sparsity.encode(x, nonzero, dim=1) if self.init_args_["sparsity_bits"] else x

    def _sample_shape(self) -> tuple[int, ...]:
        return (self.data_channels, *self.image_shape[1:])

    def _example_inputs(self):
        x = torch.zeros(1, *self._sample_shape())
        return (x, torch.zeros(1), x)

    # ------------------------------------------------------------------ properties
    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one training image."""
        c, h, w = self.data_args_["image_shape"]
        return int(c), int(h), int(w)

    @property
    def categories_(self) -> dict[str, list]:
        """Class labels the model was trained with, as ``{"label": [...]}`` (empty if
        unconditional)."""
        cats = self.data_args_.get("categories")
        return {"label": list(cats)} if cats else {}

    @property
    def data_channels(self) -> int:
        """Channels of the diffused tensor (``2 C`` with sparsity bits, else ``C``)."""
        return self.image_shape[0] * (2 if self.init_args_["sparsity_bits"] else 1)


    # ------------------------------------------------------------------ train
    def train(self, max_steps: int = 10_000, *, batch_size: int = 128, **kwargs: Any) -> SDDImage:
        """Train the U-Net; see :meth:`DiffusionModel.train <sdd.model.DiffusionModel.train>`
        for every option (``lr``, ``ema_decay``, ``fast``, ``distributed``, ...).

        Examples
        --------
        >>> model.train(max_steps=2_000, batch_size=128)  # doctest: +SKIP
        """
        return super().train(max_steps, batch_size=batch_size, **kwargs)

    # --------------------------------------------------------------- generate
    def generate(
        self,
        n_images: int = 64,
        *,
        sampler: Literal["ddpm", "ddim"] = "ddpm",
        n_steps: int = 1000,
        batch_size: int = 256,
        labels: Any = None,
        guidance_scale: float = 0.0,
        random_state: int = 0,
        use_ema: bool = True,
        store_dense: bool = True,
        accelerator: str = "auto",
        device: int | str | None = None,
        fast: bool | None = None,
        progress: bool = True,
    ) -> GeneratedImages:
        """Generate images.

        Parameters
        ----------
        n_images
            Number of images.
        sampler
            ``"ddpm"`` (ancestral) or ``"ddim"`` (deterministic).
        n_steps
            Reverse steps (paper: 1000 DDPM steps).
        batch_size
            Images sampled at once.
        labels
            Class label for all images, or one per image; unconditional when ``None``.
        guidance_scale
            Classifier-free guidance weight ``w``: ``x0 = (1 + w) x0_cond - w x0_uncond``;
            ``0`` is plain conditional sampling.
        random_state
            Seed; the same seed, model and settings give identical images on the CPU.
        use_ema
            Sample with the EMA weights (recommended).
        store_dense
            Also return ``dense`` and ``sb_logits``.
        accelerator, device
            Where to sample, as in :meth:`train`; ``device="all"`` splits each batch
            across every GPU.
        fast
            Run the network in bf16 (autocast; CUDA graphs on CUDA): ``None`` on CUDA only.
        progress
            Show a progress bar.

        Returns
        -------
        :class:`GeneratedImages` with ``images`` (exact zeros), ``sparsity_bits``,
        ``dense``, ``sb_logits``, ``labels`` and ``settings``, in the training layout.
        """
        self._require_trained()
        if isinstance(n_images, bool) or not isinstance(n_images, int | np.integer) or n_images <= 0:
            raise ValueError(f"n_images must be a positive integer, got {n_images!r}.")
        n_images = int(n_images)
        with_bits = self.init_args_["sparsity_bits"]
        pixels = int(np.prod(self.image_shape))
        self._check_output_size(n_images, 4 * pixels * (3 if store_dense else 1) + pixels, "images")
        codes, values = label_codes(labels, self.categories_, n_images, default_key="label")
        parts: dict[str, list[np.ndarray]] = {"images": [], "dense": [], "sb_logits": []}
        for _, _, z in self._sample_batches(
            n_images, codes=codes, batch_size=batch_size, guidance_scale=guidance_scale,
            random_state=random_state, use_ema=use_ema, accelerator=accelerator, device=device,
            fast=fast, progress=progress, sampler=sampler, n_steps=n_steps,
        ):  # fmt: skip
            if with_bits:
                masked, dense, _ = sparsity.decode(z, dim=1, zero_value=-1.0)
                if store_dense:
                    parts["sb_logits"].append(sparsity.split(z, dim=1)[1].cpu().numpy())
                    parts["dense"].append(self.scaler_.inverse(dense).cpu().numpy())
            else:
                masked = z
            parts["images"].append(self.scaler_.inverse(masked).cpu().numpy())

        def join(key: str) -> np.ndarray | None:
            if not parts[key]:
                return None
            out = np.concatenate(parts[key]).astype(np.float32, copy=False)
            return out if self.data_args_["channel_axis"] else out[:, 0]

        images = join("images")
        dense = join("dense") if with_bits else (images.copy() if store_dense else None)
        settings = self._provenance(
            sparsity_bits=with_bits, sampler=sampler, n_steps=n_steps, random_state=random_state,
            guidance_scale=guidance_scale, use_ema=use_ema,
        )  # fmt: skip
        label_values = values.get("label")
        return GeneratedImages(
            images=images,
            sparsity_bits=images != 0,
            dense=dense,
            sb_logits=join("sb_logits"),
            labels=None if label_values is None else np.asarray(label_values.tolist()),
            settings=settings,
        )

    # -------------------------------------------------------------- checkpoints
    def _data_state(self) -> dict[str, Any]:
        return {"scale": torch.as_tensor(self.scaler_.scale)}

    def _data_config(self) -> dict[str, Any]:
        return {"data_args": self.data_args_}

    def _restore_data(self, state, config) -> None:
        self.data_args_ = dict(config["data_args"])
        if len(self.data_args_["image_shape"]) != 3:
            raise ValueError(f"image_shape {self.data_args_['image_shape']} is not (C, H, W).")
        scale = state["scale"].numpy()
        if scale.shape != (self.image_shape[0],):
            raise ValueError(f"scale has shape {scale.shape}, expected ({self.image_shape[0]},).")
        self.scaler_ = ImageScaler(scale, self.init_args_.get("intensity_transform", "none"))
        self._images, self._codes = None, None

    def _attach(self, images: Any, labels: Any = None) -> None:
        array, _ = check_images(images)
        if tuple(array.shape[1:]) != self.image_shape:
            raise ValueError(
                f"Image shape mismatch: the model was trained on (C, H, W) = {self.image_shape}, "
                f"got {tuple(array.shape[1:])}."
            )
        codes = None
        if self.categories_:
            if labels is None:
                raise ValueError("The model is conditional; pass labels= with the images.")
            values = np.asarray(
                labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels
            )
            if values.shape != (len(array),):
                raise ValueError(
                    f"labels must be a 1-D array with one label per image ({len(array)}), "
                    f"got shape {values.shape}."
                )
            codes, _ = label_codes(values, self.categories_, len(array))
        elif labels is not None:
            raise ValueError("labels were given but the model was trained without labels.")
        self._images, self._codes = array, codes

    def __repr__(self) -> str:
        a = self.init_args_
        kind = "sparsity bits" if a["sparsity_bits"] else "plain diffusion baseline"
        cond = f", conditioned on {len(self.categories_)} classes" if self.categories_ else ""
        c, h, w = self.image_shape
        transform = (
            ""
            if a["intensity_transform"] == "none"
            else f", {a['intensity_transform']} intensities"
        )
        return (
            f"SDDImage model ({kind}): {c}x{h}x{w} images, U-Net base {a['base_channels']}, "
            f"mult {tuple(a['channel_mult'])}, {a['num_res_blocks']} blocks/stage, "
            f"{self.n_params / 1e6:.2f}M parameters, {self._status()}{cond}{transform}"
        )
