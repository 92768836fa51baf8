"""The scDiffusion MLP denoiser with skip connections."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .embeddings import LabelEmbedding, TimeEmbedding

__all__ = ["SkipMLP"]


CONDITIONINGS = ("shift", "adaln")


class _Block(nn.Module):
    """One cell block: Linear, the embedding, LayerNorm, SiLU.

    ``"shift"`` (scDiffusion's block) adds a projection of the embedding before the
    LayerNorm, which can normalise part of it away; ``"adaln"`` (adaptive LayerNorm) maps
    the embedding to a per-feature scale and shift applied after the LayerNorm, so the
    condition reaches every block's output unscaled. Its projection starts at zero: the
    block starts as an unconditioned one.
    """

    def __init__(
        self, d_in: int, d_out: int, d_emb: int, dropout: float, conditioning: str = "shift"
    ) -> None:
        super().__init__()
        self.adaptive = conditioning == "adaln"
        self.linear = nn.Linear(d_in, d_out)
        self.emb = nn.Linear(d_emb, 2 * d_out if self.adaptive else d_out)
        if self.adaptive:
            nn.init.zeros_(self.emb.weight)
            nn.init.zeros_(self.emb.bias)
        self.norm = nn.LayerNorm(d_out)
        self.act = nn.SiLU()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.adaptive:
            scale, shift = self.emb(emb).chunk(2, dim=1)
            h = torch.addcmul(shift, self.norm(self.linear(h)), 1 + scale)
        else:
            h = self.norm(self.linear(h) + self.emb(emb))
        return self.drop(self.act(h))


class SkipMLP(nn.Module):
    """MLP denoiser: encoder blocks, a mirrored decoder with additive skips, linear head.

    ``forward(x_t, t, self_cond, cond=None)`` returns the x0 estimate. The input is
    ``[x_t, self_cond]`` (so the first layer sees ``2 * dim`` features).

    Parameters
    ----------
    dim
        Size of one data vector (``2 * n_genes`` with sparsity bits).
    hidden
        Encoder widths, outermost first; the decoder mirrors them.
    emb_dim
        Size of the time (and label) embedding.
    n_categories
        Categories per conditioning covariate (empty for an unconditional model).
    n_guided
        How many of the covariates (the first ones) classifier-free guidance drops;
        ``None``: all.
    dropout
        Dropout after each block.
    conditioning
        How the embedding enters each block: ``"shift"`` (scDiffusion's: added before the
        LayerNorm) or ``"adaln"`` (a scale and shift after it).

    Examples
    --------
    >>> import torch
    >>> net = SkipMLP(6, hidden=(8, 4), emb_dim=4, conditioning="adaln")
    >>> net(torch.zeros(2, 6), torch.zeros(2), torch.zeros(2, 6)).shape
    torch.Size([2, 6])
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (1024, 512, 256),
        emb_dim: int = 128,
        n_categories: Sequence[int] = (),
        dropout: float = 0.0,
        n_guided: int | None = None,
        conditioning: str = "shift",
    ) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden]
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must be a non-empty list of positive widths, got {hidden}.")
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}.")
        self.dim = int(dim)
        self.time = TimeEmbedding(emb_dim)
        self.labels = LabelEmbedding(n_categories, emb_dim, n_guided) if len(n_categories) else None
        widths = [2 * self.dim, *hidden]
        self.down = nn.ModuleList(
            _Block(a, b, emb_dim, dropout, conditioning)
            for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        rev = hidden[::-1]
        self.up = nn.ModuleList(
            _Block(a, b, emb_dim, dropout, conditioning)
            for a, b in zip(rev[:-1], rev[1:], strict=True)
        )
        self.head = nn.Linear(hidden[0], self.dim)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        self_cond: torch.Tensor,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        emb = self.time(t)
        if self.labels is not None:
            codes = cond if cond is not None else self.labels.null(x_t.shape[0], x_t.device)
            emb = emb + self.labels(codes)
        h = torch.cat([x_t, self_cond], dim=1)
        skips = []
        for block in self.down:
            h = block(h, emb)
            skips.append(h)
        skips.pop()  # the bottleneck output feeds the decoder directly
        for block in self.up:
            h = block(h, emb) + skips.pop()
        return self.head(h)
