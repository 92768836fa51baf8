"""The training loop: Adam, EMA, progress bar and loss history."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..diffusion import CosineSchedule, diffusion_loss
from ._ema import EMA

BatchFn = Callable[[], tuple[torch.Tensor, torch.Tensor | None]]


def train_denoiser(
    denoiser: nn.Module,
    ema: EMA,
    next_batch: BatchFn,
    schedule: CosineSchedule,
    *,
    max_steps: int,
    steps_per_epoch: int,
    lr: float = 2e-4,
    self_condition: bool = True,
    optimizer_state: dict | None = None,
    start_step: int = 0,
    generator: torch.Generator | None = None,
    after_step: Callable[[int], None] | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """Train ``denoiser`` for ``max_steps`` Adam steps on batches from ``next_batch``.

    Returns the loss history (one row per step: ``step``, ``epoch``, ``loss``) and the
    optimizer state (to continue training later). ``after_step(step)`` is called after
    each optimiser step and before the EMA update (e.g. to re-apply weight masks).
    """
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=lr)
    if optimizer_state:
        optimizer.load_state_dict(optimizer_state)
    denoiser.train()
    losses = np.empty(max_steps, dtype=np.float64)
    bar = tqdm(range(max_steps), desc="Training", disable=not progress, unit="step")
    for i in bar:
        x0, cond = next_batch()
        loss = diffusion_loss(
            denoiser, x0, schedule, cond=cond, self_condition=self_condition, generator=generator
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step(start_step + i + 1)
        ema.update(denoiser)
        losses[i] = loss.item()
        if not np.isfinite(losses[i]):
            raise FloatingPointError(f"Training diverged: loss is {losses[i]} at step {i}.")
        if i % 50 == 0 or i == max_steps - 1:
            bar.set_postfix(loss=f"{losses[max(0, i - 49) : i + 1].mean():.4f}")
    denoiser.eval()
    steps = np.arange(start_step + 1, start_step + max_steps + 1)
    history = pd.DataFrame(
        {"step": steps, "epoch": (steps - 1) // max(1, steps_per_epoch), "loss": losses}
    )
    return history, optimizer.state_dict()
