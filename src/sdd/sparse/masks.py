"""Sparse-to-sparse training: weight masks kept from the first step (Static, RigL, MagRan).

Following "Sparse-to-Sparse Training of Diffusion Models" (Oliveira, Mocanu & Leiva,
TMLR 2025), the denoiser's Linear/Conv weights are masked from initialisation on, at a
fixed sparsity, and the masks are either kept (**Static**) or periodically updated at
constant sparsity: drop the active weights of smallest magnitude, then regrow as many
inactive ones, chosen by largest gradient magnitude (**RigL**, Evci et al. 2020) or at
random (**MagRan**, as in SET). The fraction dropped decays with a cosine schedule and
updates stop at ``update_end`` (by default 75% of the planned steps). Regrown weights
start at zero. Biases, normalisation layers and embedding tables stay dense, and so do
the layers named in ``dense_layers`` (by default the first and the last layer).

Masks are simulated (masked dense tensors): call :meth:`WeightMasks.hook` and pass it
to :func:`~sdd.train.train_denoiser` as ``after_step``; it re-applies the masks to the
model and to its EMA after every optimiser step (so the EMA is exactly zero wherever the
model is masked) and updates them on schedule. The FLOPs in :meth:`WeightMasks.report`
are those a sparse kernel would need (2 x multiply-adds of the Linear/Conv layers, as in
the RigL and sparse-to-sparse papers), not PyTorch's run time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "WeightMasks",
    "make_masks",
    "weight_report",
    "prunable_weights",
    "count_flops",
    "SPARSE_METHODS",
    "DISTRIBUTIONS",
]

SPARSE_METHODS = ("static", "rigl", "magran")
DISTRIBUTIONS = ("uniform", "erk")
_PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_EMBEDDING_PREFIXES = ("time", "labels", "time_embed", "time_embedding", "label_emb", "emb")


def prunable_weights(module: nn.Module) -> dict[str, nn.Parameter]:
    """The weights of the module's Linear and Conv layers, by parameter name, in order."""
    out = {}
    for name, sub in module.named_modules():
        if isinstance(sub, _PRUNABLE):
            out[f"{name}.weight" if name else "weight"] = sub.weight
    return out


def _first_last(names: Sequence[str]) -> tuple[str, str]:
    """First and last layer of the data path: embeddings (time/labels) are skipped."""
    data_path = [n for n in names if n.split(".")[0] not in _EMBEDDING_PREFIXES] or list(names)
    return data_path[0], data_path[-1]


def _erk_densities(shapes: dict[str, torch.Size], density: float) -> dict[str, float]:
    """Erdos-Renyi-Kernel densities with the given overall density (capped at 1)."""
    dense: set[str] = set()
    total = sum(math.prod(s) for s in shapes.values())
    while True:
        budget = density * total - sum(math.prod(shapes[n]) for n in dense)
        raw = {n: sum(s) / math.prod(s) for n, s in shapes.items() if n not in dense}
        scale = budget / sum(raw[n] * math.prod(shapes[n]) for n in raw)
        over = {n for n in raw if raw[n] * scale > 1.0}
        if not over:
            return {n: (1.0 if n in dense else raw[n] * scale) for n in shapes}
        dense |= over


def count_flops(
    module: nn.Module, example_inputs: Sequence[Any], masks: dict[str, torch.Tensor] | None = None
) -> tuple[int, int]:
    """Dense and masked FLOPs (2 x multiply-adds of Linear/Conv layers) of one forward.

    Parameters
    ----------
    module
        The network.
    example_inputs
        Positional inputs for one forward call (their batch size is counted).
    masks
        Boolean masks by weight name; ``None`` counts the weights' non-zero entries.

    Returns
    -------
    ``(dense_flops, sparse_flops)`` for the whole batch of ``example_inputs``.
    """
    names = {id(sub): name for name, sub in module.named_modules() if isinstance(sub, _PRUNABLE)}
    totals = [0, 0]

    def hook(sub, _inputs, output):
        key = f"{names[id(sub)]}.weight" if names[id(sub)] else "weight"
        weight = sub.weight
        active = (
            int(masks[key].sum())
            if masks is not None and key in masks
            else int(torch.count_nonzero(weight))
        )
        if isinstance(sub, nn.Linear):
            positions = output.numel() // sub.out_features
        else:
            positions = output.numel() // sub.out_channels
        totals[0] += 2 * positions * weight.numel()
        totals[1] += 2 * positions * active

    handles = [
        sub.register_forward_hook(hook) for sub in module.modules() if isinstance(sub, _PRUNABLE)
    ]
    try:
        with torch.no_grad():
            module(*example_inputs)
    finally:
        for h in handles:
            h.remove()
    return totals[0], totals[1]


class WeightMasks:
    """Fixed-sparsity weight masks for a network, with Static, RigL or MagRan updates.

    Parameters
    ----------
    module
        The network to sparsify (its Linear/Conv weights are masked at once).
    sparsity
        Fraction of zero weights in the masked layers, in [0, 1).
    method
        ``"static"`` (masks never change), ``"rigl"`` (drop by magnitude, regrow by
        gradient magnitude) or ``"magran"`` (drop by magnitude, regrow at random).
    update_interval
        Steps between mask updates (``"rigl"``/``"magran"``).
    drop_fraction
        Fraction of each layer's active weights dropped (and regrown) at the first
        update; decays to 0 with a cosine schedule at ``update_end``.
    update_end
        Last step with mask updates. ``None``: set by :meth:`plan` (75% of the planned
        steps); without :meth:`plan`, updates never stop and the fraction stays constant.
    dense_layers
        Layers kept dense: ``"first"``, ``"last"`` (the data path's first and last layer,
        embeddings excluded) and/or weight or module names such as ``"head"``.
    distribution
        ``"uniform"`` (every masked layer at ``sparsity``) or ``"erk"``
        (Erdos-Renyi-Kernel: larger layers sparser, same total).
    random_state
        Seed of the initial masks and of MagRan's regrowth.

    Examples
    --------
    >>> from sdd.nn import SkipMLP
    >>> net = SkipMLP(8, hidden=(32, 16), emb_dim=8)
    >>> masks = WeightMasks(net, 0.9, method="rigl", update_interval=10)
    >>> round(masks.sparsity, 2)
    0.9
    """

    def __init__(
        self,
        module: nn.Module,
        sparsity: float = 0.9,
        *,
        method: str = "static",
        update_interval: int = 100,
        drop_fraction: float = 0.3,
        update_end: int | None = None,
        dense_layers: Sequence[str] = ("first", "last"),
        distribution: str = "uniform",
        random_state: int = 0,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}.")
        if isinstance(sparsity, bool) or not isinstance(sparsity, int | float):
            raise TypeError(f"sparsity must be a number, got {sparsity!r}.")
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}.")
        if method not in SPARSE_METHODS:
            raise ValueError(f"Unknown sparse method {method!r}; choose one of {SPARSE_METHODS}.")
        if (
            isinstance(update_interval, bool)
            or int(update_interval) != update_interval
            or update_interval < 1
        ):
            raise ValueError(
                f"update_interval must be a positive integer, got {update_interval!r}."
            )
        if not 0.0 <= drop_fraction <= 1.0:
            raise ValueError(f"drop_fraction must be in [0, 1], got {drop_fraction!r}.")
        if update_end is not None and int(update_end) < 0:
            raise ValueError(f"update_end must be a non-negative step, got {update_end!r}.")
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"Unknown distribution {distribution!r}; choose one of {DISTRIBUTIONS}."
            )
        if isinstance(dense_layers, str):
            dense_layers = (dense_layers,)
        self.target_sparsity = float(sparsity)
        self.method = method
        self.update_interval = int(update_interval)
        self.drop_fraction = float(drop_fraction)
        self.update_end = None if update_end is None else int(update_end)
        self._explicit_end = update_end is not None
        self.distribution = distribution
        self.dense_layers = [str(d) for d in dense_layers]
        self.random_state = int(random_state)
        self.generator = torch.Generator().manual_seed(self.random_state)
        self.n_updates = 0
        self.last_update_step: int | None = None

        weights = prunable_weights(module)
        if not weights:
            raise ValueError("The module has no Linear or Conv layers to sparsify.")
        keep_dense = self._resolve_dense(list(weights))
        shapes = {n: w.shape for n, w in weights.items() if n not in keep_dense}
        if not shapes:
            raise ValueError("Every prunable layer is in dense_layers; nothing to sparsify.")
        density = 1.0 - self.target_sparsity
        if distribution == "uniform":
            densities = dict.fromkeys(shapes, density)
        else:
            densities = _erk_densities(shapes, density)
        self.masks: dict[str, torch.Tensor] = {}
        for name, shape in shapes.items():
            numel = math.prod(shape)
            n_active = max(1, round(densities[name] * numel))
            flat = torch.zeros(numel, dtype=torch.bool)
            flat[torch.randperm(numel, generator=self.generator)[:n_active]] = True
            self.masks[name] = flat.view(shape)
        self.apply_(module)

    # ----------------------------------------------------------------- basics
    def _resolve_dense(self, names: list[str]) -> set[str]:
        first, last = _first_last(names)
        out = set()
        for entry in self.dense_layers:
            if entry == "first":
                out.add(first)
            elif entry == "last":
                out.add(last)
            elif entry in names:
                out.add(entry)
            elif f"{entry}.weight" in names:
                out.add(f"{entry}.weight")
            else:
                raise ValueError(
                    f"dense_layers entry {entry!r} is not 'first', 'last' or a Linear/Conv "
                    f"layer of the module (layers: {names})."
                )
        return out

    @property
    def n_masked_weights(self) -> int:
        """Number of weights in the masked layers."""
        return sum(m.numel() for m in self.masks.values())

    @property
    def n_active(self) -> int:
        """Number of active (unmasked) weights in the masked layers."""
        return sum(int(m.sum()) for m in self.masks.values())

    @property
    def sparsity(self) -> float:
        """Actual fraction of masked-out weights in the masked layers."""
        return 1.0 - self.n_active / self.n_masked_weights

    def _weights(self, module: nn.Module) -> dict[str, torch.Tensor]:
        weights = prunable_weights(module)
        missing = set(self.masks) - set(weights)
        if missing:
            raise ValueError(f"The module lacks the masked layers {sorted(missing)}.")
        for name, mask in self.masks.items():
            if weights[name].shape != mask.shape:
                raise ValueError(
                    f"Mask {name!r} has shape {tuple(mask.shape)}, the module's weight "
                    f"{tuple(weights[name].shape)}."
                )
        return weights

    @torch.no_grad()
    def apply_(self, *modules: nn.Module) -> None:
        """Zero the masked-out weights of each module (same architecture) in place."""
        for module in modules:
            weights = self._weights(module)
            for name, mask in list(self.masks.items()):
                w = weights[name]
                if mask.device != w.device:  # keep the masks where the weights live
                    mask = self.masks[name] = mask.to(w.device)
                w.mul_(mask)

    def is_applied(self, module: nn.Module) -> bool:
        """Whether every masked-out weight of ``module`` is exactly zero."""
        weights = self._weights(module)
        return all(
            not bool(weights[n].detach()[~m.to(weights[n].device)].any())
            for n, m in self.masks.items()
        )

    # --------------------------------------------------------------- schedule
    def plan(self, start_step: int, max_steps: int, end_fraction: float = 0.75) -> None:
        """Set ``update_end`` for a run of ``max_steps`` from ``start_step`` (unless given)."""
        if not self._explicit_end:
            self.update_end = int(start_step + end_fraction * max_steps)

    def drop_fraction_at(self, step: int) -> float:
        """Cosine-decayed drop fraction at ``step`` (0 after ``update_end``)."""
        if self.update_end is None:
            return self.drop_fraction
        if step >= self.update_end or self.update_end <= 0:
            return 0.0
        return 0.5 * self.drop_fraction * (1.0 + math.cos(math.pi * step / self.update_end))

    def update_due(self, step: int) -> bool:
        """Whether the masks are updated after optimiser step ``step``."""
        return (
            self.method != "static"
            and step > 0
            and step % self.update_interval == 0
            and (self.update_end is None or step < self.update_end)
        )

    # ---------------------------------------------------------------- updates
    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> int:
        """Drop and regrow weights in every masked layer; return how many moved.

        RigL reads the gradients left in ``.grad`` by the last backward pass (dense:
        the masked weights are zero but their gradients are not). Regrown weights are
        set to zero. Each layer keeps its number of active weights.
        """
        fraction = self.drop_fraction_at(step)
        weights = self._weights(module)
        moved = 0
        for name, mask in self.masks.items():
            w = weights[name]
            flat_mask = mask.view(-1)
            n_active = int(flat_mask.sum())
            n_inactive = flat_mask.numel() - n_active
            k = min(int(fraction * n_active), n_inactive)
            if k == 0:
                continue
            flat_mask = flat_mask.to(w.device)
            magnitude = w.detach().abs().view(-1).float()
            drop_score = torch.where(flat_mask, magnitude, torch.full_like(magnitude, math.inf))
            dropped = torch.topk(drop_score, k, largest=False).indices
            if self.method == "rigl":
                grad = w.grad
                if grad is None:
                    raise ValueError(
                        f"RigL needs gradients, but {name!r} has none; call the hook after "
                        "backward() and the optimiser step."
                    )
                grow_score = grad.detach().abs().view(-1).float()
            else:
                grow_score = torch.rand(flat_mask.numel(), generator=self.generator).to(w.device)
            grow_score = torch.where(flat_mask, torch.full_like(grow_score, -math.inf), grow_score)
            grown = torch.topk(grow_score, k, largest=True).indices
            new = flat_mask.clone()
            new[dropped] = False
            new[grown] = True
            self.masks[name] = new.view(mask.shape)
            w.view(-1)[grown] = 0.0
            moved += k
        self.n_updates += 1
        self.last_update_step = int(step)
        return moved

    def after_step(self, module: nn.Module, step: int, ema_model: nn.Module | None = None) -> None:
        """Update the masks if due, then zero the masked weights of the model and EMA."""
        if self.update_due(step):
            self.update(module, step)
        self.apply_(module)
        if ema_model is not None:
            self.apply_(ema_model)

    def hook(self, module: nn.Module, ema: Any | None = None) -> Callable[[int], None]:
        """An ``after_step(step)`` callable for :func:`~sdd.train.train_denoiser`.

        Parameters
        ----------
        module
            The trained network.
        ema
            The :class:`~sdd.train.EMA` (or its ``model``) to keep masked as well; the
            EMA update that follows then leaves masked-out weights at exactly zero.
        """
        ema_model = getattr(ema, "model", ema)

        def after_step(step: int) -> None:
            self.after_step(module, step, ema_model)

        return after_step

    # ---------------------------------------------------------------- reports
    def report(
        self, module: nn.Module, example_inputs: Sequence[Any], *, batch_size: int = 1
    ) -> dict:
        """Parameter counts and FLOPs of the masked network; see :func:`weight_report`."""
        return weight_report(module, example_inputs, masks=self, batch_size=batch_size)

    # ------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        """Masks and update state: tensors and plain values (``weights_only``-loadable)."""
        return {
            "masks": {n: m.detach().cpu().clone() for n, m in self.masks.items()},
            "n_updates": int(self.n_updates),
            "update_end": -1 if self.update_end is None else int(self.update_end),
            "last_update_step": -1 if self.last_update_step is None else int(self.last_update_step),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output (masks must match the layers and shapes)."""
        try:
            masks = state["masks"]
            if set(masks) != set(self.masks):
                raise ValueError(
                    f"Saved masks cover {sorted(masks)}, this model masks {sorted(self.masks)}."
                )
            for name, mask in masks.items():
                if mask.shape != self.masks[name].shape or mask.dtype != torch.bool:
                    raise ValueError(f"Saved mask {name!r} has the wrong shape or dtype.")
            self.masks = {n: m.clone() for n, m in masks.items()}
            self.n_updates = int(state["n_updates"])
            end = int(state["update_end"])
            self.update_end = None if end < 0 else end
            last = int(state["last_update_step"])
            self.last_update_step = None if last < 0 else last
            self.generator.set_state(state["generator"])
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"Corrupt weight-mask state: {err}") from err

    def __repr__(self) -> str:
        return (
            f"WeightMasks(method={self.method!r}, sparsity={self.sparsity:.3f} over "
            f"{len(self.masks)} layers, update_interval={self.update_interval}, "
            f"drop_fraction={self.drop_fraction}, distribution={self.distribution!r})"
        )


def weight_report(
    module: nn.Module,
    example_inputs: Sequence[Any],
    *,
    masks: WeightMasks | None = None,
    batch_size: int = 1,
) -> dict:
    """Parameter counts and FLOPs of a (possibly masked) network.

    Parameters
    ----------
    module
        The network.
    example_inputs
        Inputs for one forward call with a batch of one example.
    masks
        The network's :class:`WeightMasks`, or ``None`` for a dense network.
    batch_size
        Batch size of a training step.

    Returns
    -------
    dict with ``method`` (``"dense"`` without masks), ``n_params``, ``n_params_nonzero``
    (all parameters minus masked-out weights), ``sparsity_masked_layers``,
    ``sparsity_overall``, ``flops_forward`` and ``flops_forward_dense`` (one example),
    ``flops_train_step`` and ``flops_train_step_dense`` (forward + backward = 3 forwards
    per example; RigL adds one dense gradient per ``update_interval`` steps, as in
    Evci et al.). FLOPs are 2 x multiply-adds of the Linear/Conv layers only.

    Examples
    --------
    >>> from sdd.nn import SkipMLP
    >>> net = SkipMLP(4, hidden=(8,), emb_dim=4)
    >>> x = torch.zeros(1, 4)
    >>> weight_report(net, (x, torch.zeros(1), x))["method"]
    'dense'
    """
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    n_params = sum(p.numel() for p in module.parameters())
    masked_out = 0 if masks is None else masks.n_masked_weights - masks.n_active
    dense, sparse = count_flops(module, example_inputs, None if masks is None else masks.masks)
    if masks is None:
        sparse = dense
    train = 3.0 * sparse
    if masks is not None and masks.method == "rigl":
        dt = masks.update_interval
        train = (3.0 * sparse * dt + 2.0 * sparse + dense) / (dt + 1)
    return {
        "method": "dense" if masks is None else masks.method,
        "n_params": int(n_params),
        "n_params_nonzero": int(n_params - masked_out),
        "sparsity_masked_layers": 0.0 if masks is None else masks.sparsity,
        "sparsity_overall": masked_out / n_params,
        "flops_forward": int(sparse),
        "flops_forward_dense": int(dense),
        "flops_train_step": float(train * batch_size),
        "flops_train_step_dense": float(3.0 * dense * batch_size),
    }


def make_masks(
    module: nn.Module,
    ema: Any | None,
    weight_sparsity: float,
    *,
    sparse_method: str = "rigl",
    sparse_update_interval: int = 100,
    sparse_drop_fraction: float = 0.3,
    dense_layers: Sequence[str] = ("first", "last"),
    sparse_distribution: str = "uniform",
    random_state: int = 0,
) -> WeightMasks | None:
    """Masks for a model's network and its EMA, or ``None`` when ``weight_sparsity`` is 0.

    The keyword names match the model classes' constructor options
    (``SDD(adata, weight_sparsity=0.9, sparse_method="rigl", ...)``).
    """
    if isinstance(weight_sparsity, bool) or not isinstance(weight_sparsity, int | float):
        raise TypeError(f"weight_sparsity must be a number, got {weight_sparsity!r}.")
    if weight_sparsity == 0:
        if sparse_method not in SPARSE_METHODS:
            raise ValueError(
                f"Unknown sparse method {sparse_method!r}; choose one of {SPARSE_METHODS}."
            )
        return None
    masks = WeightMasks(
        module,
        weight_sparsity,
        method=sparse_method,
        update_interval=sparse_update_interval,
        drop_fraction=sparse_drop_fraction,
        dense_layers=dense_layers,
        distribution=sparse_distribution,
        random_state=random_state,
    )
    ema_model = getattr(ema, "model", ema)
    if ema_model is not None:
        masks.apply_(ema_model)
    return masks
