"""Diffusion processes: one protocol, two implementations (Gaussian + sparsity bits, Blackout).

A process owns the math of one kind of diffusion: the training loss and the reverse-time
sampler. It knows nothing of AnnData, images or optimisers. The training loop
(:func:`sdd.train.train_denoiser`) calls :meth:`DiffusionProcess.loss`; batched generation
(:func:`sdd.train.sample_split`) calls :meth:`DiffusionProcess.denoiser` to wrap a network
(with classifier-free guidance) and :meth:`DiffusionProcess.sample` to run the sampler.

A network is called as ``net(x, t, self_cond, cond)`` (see :mod:`sdd.nn`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from torch.nn.functional import softplus

from . import blackout
from .guidance import classifier_free_guidance
from .loss import PREDICTIONS, diffusion_loss, to_x0
from .samplers import SAMPLERS, sample
from .schedule import CosineSchedule

__all__ = ["DiffusionProcess", "GaussianDiffusion", "BlackoutDiffusion"]


@runtime_checkable
class DiffusionProcess(Protocol):
    """What the training loop and the sampler need from a diffusion process.

    Attributes
    ----------
    self_condition
        Whether training tosses a self-conditioning coin per step (the fast training path
        tosses it on the host and passes ``self_cond=True/False`` to :meth:`loss`).
    """

    self_condition: bool

    def loss(
        self,
        net: Callable[..., torch.Tensor],
        x0: torch.Tensor,
        cond: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        self_cond: bool | None = None,
    ) -> torch.Tensor:
        """Scalar training loss of ``net`` on the clean batch ``x0``."""
        ...

    def denoiser(
        self, net: Callable[..., torch.Tensor], cond: torch.Tensor | None, guidance_scale: float
    ) -> Callable[..., torch.Tensor]:
        """The function the sampler calls, built from ``net`` (with guidance)."""
        ...

    def check_options(self, **options: Any) -> dict[str, Any]:
        """Validated sampler options (raise ``ValueError`` on bad ones)."""
        ...

    def n_evaluations(self, **options: Any) -> int:
        """Network evaluations per batch with these sampler options."""
        ...

    def sample(
        self,
        denoise: Callable[..., torch.Tensor],
        shape: tuple[int, ...],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        known: tuple[torch.Tensor, torch.Tensor] | None = None,
        step_callback: Callable[[], None] | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """Generate one batch of encoded data."""
        ...


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        try:
            ok = not isinstance(value, bool) and int(value) == value and value >= 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


class GaussianDiffusion:
    """Variance-preserving Gaussian diffusion with x0-prediction and self-conditioning.

    With sparsity bits the front end encodes ``[x, sb]`` (:mod:`sdd.diffusion.sparsity`);
    the process itself is the same with or without them.

    Parameters
    ----------
    schedule
        Noise schedule (default: cosine log-SNR from 15 to -15).
    self_condition
        Train and sample with self-conditioning (Chen et al., "Analog Bits").
    prediction
        What the network's output estimates: ``"x0"`` (the clean data, the paper's),
        ``"v"`` (``alpha eps - sigma x0``) or ``"v-data"`` (v for the data half, x0 for
        the sparsity bits); see :mod:`sdd.diffusion.loss`. The sampler
        always receives the clean estimate.

    Examples
    --------
    >>> from sdd.nn import SkipMLP
    >>> process = GaussianDiffusion()
    >>> net = SkipMLP(4, hidden=(8,), emb_dim=4)
    >>> float(process.loss(net, torch.zeros(2, 4))) >= 0
    True
    """

    def __init__(
        self,
        schedule: CosineSchedule | None = None,
        *,
        self_condition: bool = True,
        prediction: str = "x0",
    ) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"Unknown prediction {prediction!r}; choose one of {PREDICTIONS}.")
        self.schedule = schedule if schedule is not None else CosineSchedule()
        self.self_condition = bool(self_condition)
        self.prediction = prediction

    def loss(self, net, x0, cond=None, *, generator=None, self_cond=None) -> torch.Tensor:
        """x0-prediction L2 loss (:func:`~sdd.diffusion.diffusion_loss`).

        ``self_cond=None`` draws the self-conditioning coin from ``generator``;
        ``True``/``False`` forces the branch (no device read-back).
        """
        if self_cond is None:
            return diffusion_loss(
                net, x0, self.schedule, cond=cond, self_condition=self.self_condition,
                generator=generator, prediction=self.prediction,
            )  # fmt: skip
        return diffusion_loss(
            net, x0, self.schedule, cond=cond, self_condition=bool(self_cond) and self.self_condition,
            self_condition_prob=1.0, generator=generator, prediction=self.prediction,
        )  # fmt: skip

    def denoiser(self, net, cond, guidance_scale) -> Callable[..., torch.Tensor]:
        """``denoise(x_t, t, self_cond) -> x0_hat`` with classifier-free guidance."""
        if self.prediction == "x0":
            return classifier_free_guidance(net, net, cond, guidance_scale)

        def clean(x_t, t, self_cond, codes):
            alpha, sigma = (
                v.view(-1, *(1,) * (x_t.ndim - 1)) for v in self.schedule.alpha_sigma(t)
            )
            return to_x0(net(x_t, t, self_cond, codes), x_t, alpha, sigma, self.prediction)

        return classifier_free_guidance(clean, net, cond, guidance_scale)

    def check_options(self, *, sampler: str = "ddpm", n_steps: int = 250) -> dict[str, Any]:
        """``sampler`` in :data:`~sdd.diffusion.samplers.SAMPLERS` and a positive integer
        ``n_steps``."""
        if sampler not in SAMPLERS:
            raise ValueError(f"Unknown sampler {sampler!r}; choose one of {SAMPLERS}.")
        return {"sampler": sampler, "n_steps": _positive_int(n_steps, "n_steps")}

    def n_evaluations(self, *, sampler: str = "ddpm", n_steps: int = 250) -> int:
        return int(n_steps)

    def sample(
        self, denoise, shape, *, generator=None, device="cpu", known=None, step_callback=None,
        sampler: str = "ddpm", n_steps: int = 250,
    ) -> torch.Tensor:  # fmt: skip
        """DDPM or DDIM from pure noise (:func:`~sdd.diffusion.sample`)."""
        return sample(
            denoise, shape, self.schedule, sampler=sampler, n_steps=n_steps,
            self_condition=self.self_condition, known=known, generator=generator, device=device,
            step_callback=step_callback,
        )  # fmt: skip


class BlackoutDiffusion:
    """Blackout Diffusion on counts (:mod:`sdd.diffusion.blackout`) behind the same protocol.

    The network sees ``2 log1p(x_t) / log1p(m_g) - 1`` and its output becomes the
    estimate of the missing units ``softplus(out) * (mean_g + 1e-3)``, times ``1 - p(t)``
    with ``parameterization="death_scaled"``.

    Parameters
    ----------
    schedule
        Observation times of the death process.
    gene_max, gene_mean
        Per-feature largest and mean training count (input scaling, output scale, cap).
    weighting
        Loss weights over times (see :meth:`~sdd.diffusion.blackout.BlackoutSchedule.loss_weights`).
    parameterization
        ``"death_scaled"`` or ``"direct"`` (the paper's).
    """

    self_condition = False

    def __init__(
        self,
        schedule: blackout.BlackoutSchedule,
        gene_max: torch.Tensor,
        gene_mean: torch.Tensor,
        *,
        weighting: str = "instantaneous",
        parameterization: str = "death_scaled",
    ) -> None:
        if parameterization not in ("death_scaled", "direct"):
            raise ValueError(
                f"parameterization must be 'death_scaled' or 'direct', got {parameterization!r}."
            )
        self.schedule = schedule
        self.death_scaled = parameterization == "death_scaled"
        self._host = {
            # the input scaling 2 log1p(x) / log1p(m_g) - 1 as one factor per gene
            "two_over_log_max": 2.0
            / torch.log1p(torch.as_tensor(gene_max, dtype=torch.float32)).clamp_min(1e-6),
            "scale": torch.as_tensor(gene_mean, dtype=torch.float32) + 1e-3,
            "gene_max": torch.as_tensor(gene_max, dtype=torch.float32),
            "survival": schedule.survival.to(torch.float32),
            "weights": schedule.loss_weights(weighting).to(torch.float32),
        }
        self._cache: dict[tuple[str, str], torch.Tensor] = {}

    def _on(self, name: str, device: torch.device) -> torch.Tensor:
        key = (name, str(device))
        if key not in self._cache:
            self._cache[key] = self._host[name].to(device)
        return self._cache[key]

    def births(self, net, x_t: torch.Tensor, index: torch.Tensor, cond) -> torch.Tensor:
        """The network's estimate of the missing units ``x0 - x_t`` (non-negative)."""
        dev = x_t.device
        h = torch.log1p(x_t).mul_(self._on("two_over_log_max", dev)).sub_(1.0)
        out = softplus(net(h, self.schedule.time_input(index), torch.zeros_like(h), cond).float())
        if self.death_scaled:  # E[x0 - x_t | x0] = (1 - p) x0: the network estimates ~x0
            out = out * (1.0 - self._on("survival", dev)[index])[:, None]
        return out * self._on("scale", dev)

    def loss(self, net, x0, cond=None, *, generator=None, self_cond=None) -> torch.Tensor:
        """The Poisson-deviance birth loss at uniformly drawn observation times."""
        dev = x0.device
        k = torch.randint(self.schedule.n_times, (x0.shape[0],), device=dev, generator=generator)
        x_t = blackout.thin(x0, self._on("survival", dev)[k][:, None], generator=generator)
        return blackout.birth_loss(
            self.births(net, x_t, k, cond), x0, x_t, self._on("weights", dev)[k]
        )

    def denoiser(self, net, cond, guidance_scale) -> Callable[..., torch.Tensor]:
        """``births(x_t, index)`` with classifier-free guidance (clamped at 0)."""
        guided = classifier_free_guidance(
            lambda x, index, c: self.births(net, x, index, c), net, cond, guidance_scale
        )
        if cond is None or guidance_scale == 0:
            return guided
        return lambda x, index: guided(x, index).clamp_min(0.0)  # guidance can go negative

    def check_options(
        self, *, n_steps: int | None = None, method: str = "binomial",
        rounding: str = "stochastic", clip: bool = True,
    ) -> dict[str, Any]:  # fmt: skip
        """Bridge ``method``, ``rounding``, ``n_steps`` (``None``: all times) and ``clip``."""
        if method not in blackout.BRIDGE_METHODS:
            raise ValueError(f"Unknown method {method!r}; choose one of {blackout.BRIDGE_METHODS}.")
        if rounding not in blackout.ROUNDINGS:
            raise ValueError(f"Unknown rounding {rounding!r}; choose one of {blackout.ROUNDINGS}.")
        self.schedule.step_indices(n_steps)  # validates n_steps
        return {"n_steps": n_steps, "method": method, "rounding": rounding, "clip": bool(clip)}

    def n_evaluations(self, *, n_steps: int | None = None, **_: Any) -> int:
        return len(self.schedule.step_indices(n_steps))

    def sample(
        self, denoise, shape, *, generator=None, device="cpu", known=None, step_callback=None,
        n_steps: int | None = None, method: str = "binomial", rounding: str = "stochastic",
        clip: bool = True,
    ) -> torch.Tensor:  # fmt: skip
        """Births from the empty state with the binomial bridge (or tau-leaping)."""
        if known is not None:
            raise ValueError("Blackout Diffusion does not support inpainting (known=...).")
        dev = torch.device(device)
        return blackout.sample(
            denoise, shape, self.schedule, n_steps=n_steps, method=method, rounding=rounding,
            max_value=self._on("gene_max", dev) if clip else None, generator=generator,
            device=dev, step_callback=step_callback,
        )  # fmt: skip
