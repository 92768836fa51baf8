"""`SDDImage`: Sparse Data Diffusion for image arrays (MNIST-like or calorimeter images)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch

from .._execution import Execution, as_execution, execution_keywords, moved_keywords
from ..data.generated import GeneratedImages
from ..data.images import TRANSFORMS, ImageScaler, check_images, check_labels
from ..data.registry import label_codes
from ..data.validate import check_int
from ..diffusion import sparsity
from ..nn.unet import UNet
from ..train._generate import check_output_memory, decode_bits
from ._base import DiffusionModel
from ._schema import IMAGE_ARGS

__all__ = ["SDDImage", "GeneratedImages"]

#: SDDImage(unet_kwargs=...) options and their defaults (a small U-Net for a CPU)
UNET_OPTIONS = {
    "base_channels": 32, "channel_mult": (1, 2, 2), "num_res_blocks": 2, "attention_stages": (),
    "num_heads": 4, "dropout": 0.0, "num_groups": 32, "emb_dim": None, "mid_attention": True,
    "scale_shift": False,
}  # fmt: skip


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
    unet_kwargs
        U-Net architecture, the options of :class:`sdd.nn.UNet` (``base_channels`` 32,
        ``channel_mult`` (1, 2, 2), ``num_res_blocks`` 2, ``attention_stages`` (),
        ``num_heads`` 4, ``dropout`` 0, ``num_groups`` 32, ``emb_dim`` None,
        ``mid_attention`` True, ``scale_shift`` False). The defaults are small enough for
        a CPU; the paper's setting is :data:`sdd.nn.PAPER_UNET`
        (``SDDImage(x, unet_kwargs=sdd.nn.PAPER_UNET)``).
    self_condition
        Train and sample with self-conditioning.
    condition_dropout
        Probability of dropping the label during training (classifier-free guidance);
        only used with ``labels``.
    intensity_transform
        ``"none"`` or ``"log1p"``, applied before the per-channel scaling.
    weight_sparsity
        Fraction of zero weights in the U-Net, trained sparse from the first step (see
        :class:`~sdd.sparse.WeightMasks`; sparse options as for :class:`sdd.SDD`).
    diffusion_kwargs
        ``logsnr_min`` and ``logsnr_max``: range of the cosine log-SNR schedule (-15, 15).

    Examples
    --------
    >>> import numpy as np, sdd
    >>> x = np.random.default_rng(0).poisson(0.3, size=(64, 12, 12)).astype("float32")
    >>> unet = {"base_channels": 8, "channel_mult": (1, 2), "num_res_blocks": 1}
    >>> model = sdd.SDDImage(x, unet_kwargs=unet)
    >>> quiet = sdd.Execution(progress=False)
    >>> model.train(max_steps=2, batch_size=16, execution=quiet)  # doctest: +ELLIPSIS
    SDDImage model (sparsity bits): 1x12x12 images, ...
    >>> out = model.generate(4, sampler="ddim", n_steps=3, execution=quiet)
    >>> out.images.shape, bool(np.all(out.images[~out.sparsity_bits] == 0))
    ((4, 12, 12), True)
    """

    _model_class = "SDDImage"
    _arg_rules = IMAGE_ARGS
    _grouped_args = {
        "unet_kwargs": UNET_OPTIONS,
        "diffusion_kwargs": {"logsnr_min": -15.0, "logsnr_max": 15.0},
    }
    _data_params = ("images", "labels")

    @moved_keywords("unet_kwargs", frozenset(UNET_OPTIONS))
    @moved_keywords("diffusion_kwargs", frozenset({"logsnr_min", "logsnr_max"}))
    def __init__(
        self,
        images: Any,
        labels: Any = None,
        *,
        sparsity_bits: bool = True,
        unet_kwargs: Mapping[str, Any] | None = None,
        self_condition: bool = True,
        condition_dropout: float = 0.1,
        intensity_transform: Literal["none", "log1p"] = "none",
        weight_sparsity: float = 0.0,
        diffusion_kwargs: Mapping[str, Any] | None = None,
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
            (self.data_channels, h, w), base_channels=a["base_channels"],
            channel_mult=a["channel_mult"], num_res_blocks=a["num_res_blocks"],
            attention_stages=a["attention_stages"], num_heads=a["num_heads"],
            dropout=a["dropout"], num_groups=a["num_groups"], emb_dim=a["emb_dim"],
            n_categories=[len(c) for c in self.categories_.values()],
            mid_attention=a["mid_attention"], scale_shift=a["scale_shift"],
        )  # fmt: skip

    def _training_data(self) -> tuple[Any, np.ndarray | None]:
        if self._images is None:
            raise ValueError(
                "This model has no training data; load it with SDDImage.load(path, images) "
                "to train it further."
            )
        return self._images, self._codes

    def _encode(self, x, nonzero, reuse=None):
        if not self.init_args_["sparsity_bits"]:
            return x
        return sparsity.encode(x, nonzero, dim=1, reuse=reuse)

    def _sample_shape(self) -> tuple[int, ...]:
        return (self.data_channels, *self.image_shape[1:])

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
    @execution_keywords("accelerator", "device", "fast", "progress")
    def generate(
        self,
        n_images: int = 64,
        *,
        sampler: Literal["ddpm", "ddim", "dpm++2m"] = "ddpm",
        n_steps: int = 1000,
        batch_size: int = 256,
        labels: Any = None,
        guidance_scale: float = 0.0,
        random_state: int = 0,
        use_ema: bool = True,
        store_dense: bool = True,
        execution: Execution | None = None,
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
        execution
            Device, bf16 fast path and progress bar (:class:`sdd.Execution`; ``None``:
            its defaults). ``fast=True`` also works on the CPU here (bf16 autocast);
            ``device`` may list several GPUs (or be ``"all"``) to split each batch.

        Returns
        -------
        :class:`GeneratedImages` with ``images`` (exact zeros), ``sparsity_bits``,
        ``dense``, ``sb_logits``, ``labels`` and ``settings``, in the training layout.
        """
        execution = as_execution(execution, training=False)
        self._require_trained()
        n_images = check_int(n_images, "n_images", 1)
        with_bits = self.init_args_["sparsity_bits"]
        pixels = int(np.prod(self.image_shape))
        check_output_memory(n_images, 4 * pixels * (3 if store_dense else 1) + pixels, "images")
        codes, values = label_codes(
            labels, self.categories_, n_images, default_key="label", unit="images"
        )
        parts: dict[str, list[np.ndarray]] = {"images": [], "dense": [], "sb_logits": []}
        for _, _, z in self._sample_batches(
            n_images, codes=codes, batch_size=batch_size, guidance_scale=guidance_scale,
            random_state=random_state, use_ema=use_ema, execution=execution, sampler=sampler, n_steps=n_steps,
        ):  # fmt: skip
            decoded = decode_bits(z, self._inverse, bits=with_bits, dense=store_dense)
            for key, value in zip(parts, decoded, strict=True):
                if value is not None:
                    parts[key].append(value)

        def join(key: str) -> np.ndarray | None:
            if not parts[key]:
                return None
            out = np.concatenate(parts[key]).astype(np.float32, copy=False)
            return out if self.data_args_["channel_axis"] else out[:, 0]

        images = join("images")
        settings = self._provenance(
            sparsity_bits=with_bits, sampler=sampler, n_steps=n_steps, random_state=random_state,
            guidance_scale=guidance_scale, use_ema=use_ema,
        )  # fmt: skip
        label_values = values.get("label")
        return GeneratedImages(
            images=images,
            sparsity_bits=images != 0,
            dense=join("dense"),
            sb_logits=join("sb_logits"),
            labels=None if label_values is None else np.asarray(label_values.tolist()),
            settings=settings,
        )

    def _inverse(self, values: torch.Tensor, nonzero: torch.Tensor | None = None) -> torch.Tensor:
        return self.scaler_.inverse(values)

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
        if self.categories_ and labels is None:
            raise ValueError("The model is conditional; pass labels= with the images.")
        if labels is not None and np.ndim(labels) != 1:
            raise ValueError(f"labels must be a 1-D array with one label per image ({len(array)}).")
        codes, _ = label_codes(labels, self.categories_, len(array), unit="images")
        self._images, self._codes = array, codes

    def _summary(self) -> tuple[str, str, str]:
        a = self.init_args_
        c, h, w = self.image_shape
        n_classes = len(self.categories_.get("label", []))
        tail = f", conditioned on {n_classes} classes" if n_classes else ""
        if a["intensity_transform"] != "none":
            tail += f", {a['intensity_transform']} intensities"
        return (
            "sparsity bits" if a["sparsity_bits"] else "plain diffusion baseline",
            f"{c}x{h}x{w} images, U-Net base {a['base_channels']}, mult "
            f"{tuple(a['channel_mult'])}, {a['num_res_blocks']} blocks/stage",
            tail,
        )
