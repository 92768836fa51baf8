"""DDPM-style U-Net denoiser for ``(C, H, W)`` inputs (Ho et al. 2020; Nichol & Dhariwal 2021)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .embeddings import LabelEmbedding, TimeEmbedding

__all__ = ["UNet", "PAPER_UNET"]

#: The SDD paper's U-Net for 28x28 and 32x32 images: base 256 channels, 3 stages,
#: 2 residual blocks per stage, attention at the second stage and in the bottleneck
#: (37.1M parameters for one image channel with sparsity bits). The paper states the
#: width, stages, blocks and size (~37M); the multipliers (1, 1, 1) are the ones that
#: give that size with this block design.
PAPER_UNET: dict = {
    "base_channels": 256,
    "channel_mult": (1, 1, 1),
    "num_res_blocks": 2,
    "attention_stages": (1,),
    "num_heads": 4,
    "dropout": 0.1,
}


def _groups(channels: int, num_groups: int) -> int:
    """Largest divisor of ``channels`` that is at most ``num_groups``."""
    for g in range(min(num_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int | float) and not isinstance(size, bool):
        size = (int(size), int(size))
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name} must be a positive int or a pair (H, W), got {size}.")
    return size


def _input_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    """``(channels, H, W)`` from ``shape``; a ``ValueError`` naming ``input_shape``."""
    if isinstance(shape, int | str | bytes) or not isinstance(shape, Sequence):
        raise TypeError(f"input_shape must be (channels, H, W), got {shape!r}.")
    dims = tuple(int(d) for d in shape)
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"input_shape must be three positive ints (channels, H, W), got {dims}.")
    return dims


def _accepts_channels_and_image_size(init: Callable[..., None]) -> Callable[..., None]:
    """``UNet(channels, image_size, ...)``, the previous release's form, as
    ``UNet((channels, H, W), ...)`` with a ``FutureWarning``."""

    @functools.wraps(init)
    def wrapper(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        old = "channels" in kwargs or "image_size" in kwargs
        old = old or (bool(args) and isinstance(args[0], int) and not isinstance(args[0], bool))
        if not old:
            return init(self, *args, **kwargs)
        positional = list(args)
        channels = kwargs.pop("channels") if "channels" in kwargs else positional.pop(0)
        size = kwargs.pop("image_size") if "image_size" in kwargs else positional.pop(0)
        if positional:
            raise TypeError("UNet takes input_shape and keyword options.")
        h, w = _pair(size, "image_size")
        warnings.warn(
            f"UNet(channels, image_size) is deprecated and will be removed in the next "
            f"release; pass UNet(({channels}, {h}, {w}), ...).",
            FutureWarning,
            stacklevel=2,
        )
        return init(self, (channels, h, w), **kwargs)

    return wrapper


class _ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, + embedding, GroupNorm -> SiLU -> dropout -> conv, + skip.

    The embedding is added to the features (Ho et al.) or, with ``scale_shift``, applied
    as a scale and shift after the second norm (Nichol & Dhariwal).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        emb_dim: int,
        dropout: float,
        num_groups: int,
        scale_shift: bool,
    ) -> None:
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = nn.GroupNorm(_groups(c_in, num_groups), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, (2 if scale_shift else 1) * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out, num_groups), c_out)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb(F.silu(emb))[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class _Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a residual."""

    def __init__(self, channels: int, num_heads: int, num_groups: int) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(
                f"Attention over {channels} channels needs num_heads dividing it, got {num_heads}."
            )
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(_groups(channels, num_groups), channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, h * w))
        q, k, v = (
            qkv.reshape(b, 3, self.num_heads, c // self.num_heads, h * w)
            .transpose(-1, -2)
            .unbind(1)
        )
        out = F.scaled_dot_product_attention(q, k, v)  # (b, heads, hw, c / heads)
        out = out.transpose(-1, -2).reshape(b, c, h * w)
        return x + self.proj(out).reshape(b, c, h, w)


class _Level(nn.Module):
    """Residual blocks (each optionally followed by attention) at one resolution."""

    def __init__(self, blocks: list[_ResBlock], attns: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attns = nn.ModuleList(attns)


class UNet(nn.Module):
    """DDPM U-Net: ``forward(x_t, t, self_cond, cond=None) -> x0_hat`` on ``(B, C, H, W)``.

    The network sees ``[x_t, self_cond]`` stacked along the channel axis (``2 * channels``
    input channels) and returns ``channels`` output channels. With sparsity bits the
    diffused tensor holds ``C`` data channels followed by ``C`` SB channels, so
    ``channels = 2 C``; only the first and the last convolution grow with it.

    Each stage has ``num_res_blocks`` residual blocks (group norm, SiLU, 3x3 convolutions,
    time and label embedding as scale and shift) and, except the last, a stride-2
    convolution; the decoder mirrors it with skip connections and nearest-neighbour
    upsampling to the skip's size, so odd sizes such as 7x7 work. The bottleneck has two
    residual blocks around self-attention.

    Parameters
    ----------
    input_shape
        ``(channels, H, W)`` of one diffused input (``channels = 2 C`` with sparsity
        bits); inputs of another shape are rejected. The form ``UNet(channels,
        image_size)`` of the previous release still works, with a ``FutureWarning``.
    base_channels
        Width of the first stage (paper: 256).
    channel_mult
        Width multiplier of each stage; its length is the number of stages
        (paper: ``(1, 2, 2)``).
    num_res_blocks
        Residual blocks per stage (paper: 2).
    attention_stages
        Indices of the stages with self-attention after each residual block. Stage ``s``
        works at resolution ``ceil(H / 2**s)``: for 28x28 images stage 0 is 28x28,
        stage 1 14x14, stage 2 7x7.
    num_heads
        Attention heads; must divide the width of every stage with attention.
    dropout
        Dropout inside the residual blocks.
    num_groups
        Group-norm groups (reduced to a divisor of the width where needed).
    emb_dim
        Size of the time (and label) embedding; default ``4 * base_channels``.
    n_categories
        Categories per conditioning covariate (empty for an unconditional model); each
        covariate gets a null token for classifier-free guidance.
    mid_attention
        Self-attention in the bottleneck.
    scale_shift
        Apply the embedding as scale and shift after the second group norm of each
        residual block (improved DDPM) instead of adding it (DDPM).

    Examples
    --------
    >>> import torch
    >>> from sdd.nn import UNet
    >>> net = UNet((2, 28, 28), base_channels=16, channel_mult=(1, 2))
    >>> x = torch.randn(4, 2, 28, 28)
    >>> net(x, torch.rand(4), torch.zeros_like(x)).shape
    torch.Size([4, 2, 28, 28])
    """

    @_accepts_channels_and_image_size
    def __init__(
        self,
        input_shape: Sequence[int],
        *,
        base_channels: int = 32,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 2,
        attention_stages: Sequence[int] = (),
        num_heads: int = 4,
        dropout: float = 0.0,
        num_groups: int = 32,
        emb_dim: int | None = None,
        n_categories: Sequence[int] = (),
        mid_attention: bool = True,
        scale_shift: bool = False,
    ) -> None:
        super().__init__()
        channels, *image_size = _input_shape(input_shape)
        channel_mult = [int(m) for m in channel_mult]
        attention_stages = sorted({int(s) for s in attention_stages})
        if int(channels) < 1:
            raise ValueError(f"channels must be a positive integer, got {channels}.")
        if int(base_channels) < 1:
            raise ValueError(f"base_channels must be a positive integer, got {base_channels}.")
        if not channel_mult or min(channel_mult) < 1:
            raise ValueError(
                f"channel_mult must be a non-empty list of positive ints, got {channel_mult}."
            )
        if int(num_res_blocks) < 1:
            raise ValueError(f"num_res_blocks must be a positive integer, got {num_res_blocks}.")
        if int(num_heads) < 1:
            raise ValueError(f"num_heads must be a positive integer, got {num_heads}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        bad = [s for s in attention_stages if not 0 <= s < len(channel_mult)]
        if bad:
            raise ValueError(
                f"attention_stages {bad} out of range for {len(channel_mult)} stages "
                f"(valid: 0..{len(channel_mult) - 1})."
            )
        self.channels = int(channels)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        base = int(base_channels)
        emb_dim = int(emb_dim) if emb_dim is not None else 4 * base
        heads, groups = int(num_heads), int(num_groups)

        self.time = TimeEmbedding(emb_dim)
        self.labels = LabelEmbedding(n_categories, emb_dim) if len(n_categories) else None
        self.input = nn.Conv2d(2 * self.channels, base, 3, padding=1)

        widths = [base * m for m in channel_mult]
        skip_widths = [base]
        ch = base
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for level, width in enumerate(widths):
            blocks, attns = [], []
            for _ in range(int(num_res_blocks)):
                blocks.append(_ResBlock(ch, width, emb_dim, dropout, groups, scale_shift))
                attns.append(
                    _Attention(width, heads, groups) if level in attention_stages else nn.Identity()
                )
                ch = width
                skip_widths.append(ch)
            self.down.append(_Level(blocks, attns))
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skip_widths.append(ch)

        self.mid1 = _ResBlock(ch, ch, emb_dim, dropout, groups, scale_shift)
        self.mid_attn = _Attention(ch, heads, groups) if mid_attention else nn.Identity()
        self.mid2 = _ResBlock(ch, ch, emb_dim, dropout, groups, scale_shift)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(widths))):
            width = widths[level]
            blocks, attns = [], []
            for _ in range(int(num_res_blocks) + 1):
                blocks.append(
                    _ResBlock(ch + skip_widths.pop(), width, emb_dim, dropout, groups, scale_shift)
                )
                attns.append(
                    _Attention(width, heads, groups) if level in attention_stages else nn.Identity()
                )
                ch = width
            self.up.append(_Level(blocks, attns))
            if level > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))

        self.out_norm = nn.GroupNorm(_groups(ch, groups), ch)
        self.out = _zero(nn.Conv2d(ch, self.channels, 3, padding=1))

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        self_cond: torch.Tensor,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return the x0 estimate for ``x_t`` at times ``t`` (shape ``(B,)``, in [0, 1])."""
        expected = (self.channels, *self.image_size)
        if x_t.ndim != 4 or tuple(x_t.shape[1:]) != expected:
            raise ValueError(
                f"UNet expects inputs of shape (B, {', '.join(map(str, expected))}), got {tuple(x_t.shape)}."
            )
        emb = self.time(t)
        if self.labels is not None:
            codes = cond if cond is not None else self.labels.null(x_t.shape[0], x_t.device)
            emb = emb + self.labels(codes)

        h = self.input(torch.cat([x_t, self_cond], dim=1))
        skips = [h]
        for level, stage in enumerate(self.down):
            for block, attn in zip(stage.blocks, stage.attns, strict=True):
                h = attn(block(h, emb))
                skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
                skips.append(h)

        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)

        for level, stage in enumerate(self.up):
            for block, attn in zip(stage.blocks, stage.attns, strict=True):
                h = attn(block(torch.cat([h, skips.pop()], dim=1), emb))
            if level < len(self.upsample):
                h = F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest")
                h = self.upsample[level](h)
        return self.out(F.silu(self.out_norm(h)))

    @property
    def n_params(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.parameters())
