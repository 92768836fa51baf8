"""Time and label embeddings shared by the denoisers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["sinusoidal_embedding", "TimeEmbedding", "LabelEmbedding"]


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style sinusoidal features of ``1000 t`` (``t`` in [0, 1])."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


class TimeEmbedding(nn.Module):
    """Sinusoidal features followed by a two-layer MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.dim))


class LabelEmbedding(nn.Module):
    """Sum of one learned embedding per categorical covariate.

    Covariate ``k`` with ``n_k`` categories has ``n_k + 1`` rows; the last row is the
    null token used for classifier-free guidance (condition dropped). Guidance drops the
    first ``n_guided`` covariates (all when ``None``); the rest (e.g. a cell's depth bin)
    are kept in its unconditional branch.
    """

    def __init__(self, n_categories: Sequence[int], dim: int, n_guided: int | None = None) -> None:
        super().__init__()
        self.n_categories = [int(n) for n in n_categories]
        self.n_guided = len(self.n_categories) if n_guided is None else int(n_guided)
        self.tables = nn.ModuleList(nn.Embedding(n + 1, dim) for n in self.n_categories)

    def null(self, batch: int, device: torch.device) -> torch.Tensor:
        """Codes meaning "no condition" for every covariate."""
        return torch.tensor(self.n_categories, device=device).expand(batch, -1)

    def unconditional(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes`` with the guided covariates replaced by their null tokens."""
        null = torch.tensor(self.n_categories[: self.n_guided], device=codes.device)
        return torch.cat([null.expand(codes.shape[0], -1), codes[:, self.n_guided :]], dim=1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return sum(table(codes[:, k]) for k, table in enumerate(self.tables))
