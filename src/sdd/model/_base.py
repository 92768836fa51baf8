"""`DiffusionModel`: train and generate written once for every model (save/load: the mixin).

A model supplies its network and process (``_build_network``, ``_make_process``), its data
(``_training_data``, ``scaler_``, ``_encode``, ``_sample_shape``), its checkpoint state
(``_data_state``, ``_data_config``, ``_restore_data``, ``_attach``), ``_summary`` and its
public ``generate``. Here: config captured from the constructor signature, the one
training loop (:func:`sdd.train.train_denoiser`) with rollback and resume, and the one
batched sampler (:func:`sdd.train.sample_split`) with one progress bar.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from .._execution import Execution, as_execution, execution_keywords, option_dict
from .._progress import tqdm
from .._version import __version__
from ..data.loader import MinibatchSampler
from ..data.registry import label_codes, plain
from ..data.validate import check_int, check_seed, check_unit_interval
from ..diffusion import CosineSchedule, GaussianDiffusion
from ..diffusion.guidance import check_guidance, label_dropout
from ..io.checkpoint import to_cpu
from ..sparse.masks import make_masks, weight_report
from ..train import EMA, lr_multiplier, sample_split, train_denoiser, validation_loss
from ..train._device import resolve_devices, resolve_fast
from ..train._distributed import join as join_distributed
from ..train._loop import check_lr
from ..train._rollback import Snapshot, check_finite
from ..train._validation import (
    check_validation_options,
    default_validation_every,
    held_out_rows,
    train_validated,
)
from ._checkpoint import SPARSE_OPTIONS, CheckpointMixin
from ._schema import MODEL_ARGS, Arg, check_args

logger = logging.getLogger("sdd")

HISTORY_COLUMNS = ("step", "epoch", "loss")
DIVERGED = 10.0  # a final loss this many times the first one (or 1): training diverged
EMA_EVERY = 4  # steps between moves of the averaged weights (EMA: decays compounded)


def _warn_if_diverged(history: pd.DataFrame) -> None:
    """Warn when the loss ended far above where it started (an lr too large)."""
    losses = history["loss"].to_numpy(dtype=float)
    if len(losses) < 20:
        return
    tenth = max(1, len(losses) // 10)
    first, last = np.nanmean(losses[:tenth]), np.nanmean(losses[-tenth:])
    if not last <= DIVERGED * min(first, 1.0):  # data lie in [-1, 1]: a sane loss is O(1)
        warnings.warn(
            f"Training diverged: the loss rose from {first:.3g} to {last:.3g}; the model is "
            "unlikely to generate anything useful. Train again with a smaller lr.",
            UserWarning,
            stacklevel=3,
        )


class DiffusionModel(CheckpointMixin):
    """Base class of :class:`~sdd.SDD`, :class:`~sdd.SDDImage` and :class:`~sdd.SDDBlackout`.

    Attributes set by every model: ``init_args_`` (the constructor's configuration),
    ``module`` (the network), ``ema_`` (:class:`~sdd.train.EMA`), ``process``,
    ``weight_masks_`` (or ``None``), ``history_`` (loss per step), ``is_trained_``,
    ``train_args_``, ``validation_indices_`` (rows held out by ``train(validation_size=)``,
    or ``None``). ``history`` and ``is_trained`` are aliases, as in scvi-tools.
    """

    _model_class = "DiffusionModel"
    #: rules of the model's own constructor arguments, beside the shared ``MODEL_ARGS``
    _arg_rules: Mapping[str, Arg] = {}
    #: constructor options taken as one dict argument each, ``{argument: {option:
    #: default}}``; ``init_args_`` (and config.json) keep them flat, as before
    _grouped_args: Mapping[str, Mapping[str, Any]] = {}
    _data_params: tuple[str, ...] = ()
    _unit = "rows"

    # ------------------------------------------------------------------ construction
    def _capture_init_args(self, arguments: Mapping[str, Any]) -> None:
        """``init_args_`` from the constructor's arguments (data parameters left out)."""
        signature = inspect.signature(type(self).__init__)
        args: dict[str, Any] = {}
        for name, param in signature.parameters.items():
            if name == "self" or name in self._data_params:
                continue
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                args.update(arguments.get(name, {}))
            elif name in self._grouped_args:
                args.update(option_dict(arguments[name], self._grouped_args[name], name))
            else:
                args[name] = arguments[name]
        unknown = sorted(set(args) - self._init_arg_names() - set(SPARSE_OPTIONS))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got unexpected keyword argument(s) {unknown}."
            )
        if not args.get("weight_sparsity"):  # sparse options are recorded for sparse models
            for key in ("weight_sparsity", *SPARSE_OPTIONS):
                args.pop(key, None)
        self.init_args_ = plain(args)

    @classmethod
    def _init_arg_names(cls) -> set[str]:
        """Names ``init_args_`` may hold: constructor arguments, grouped options flat."""
        names = set(inspect.signature(cls.__init__).parameters) - set(cls._grouped_args)
        return names | {option for group in cls._grouped_args.values() for option in group}

    @classmethod
    def nest_init_args(cls, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor keywords from flat options (``{"emb_dim": 64}`` becomes
        ``{"unet_kwargs": {"emb_dim": 64}}`` for a model that groups it), as the command
        line and ``init_args_`` name them."""
        out: dict[str, Any] = {}
        for key, value in flat.items():
            group = next((g for g, opts in cls._grouped_args.items() if key in opts), None)
            if group is None:
                out[key] = value
            else:
                out.setdefault(group, {})[key] = value
        return out

    def _finish_init(self) -> None:
        """Build process, network, EMA and weight masks from ``init_args_`` and the data."""
        self._check_init_args()
        self.process = self._make_process()
        self.module = self._build_network().eval()
        self.ema_ = EMA(self.module, every=EMA_EVERY)
        sparse = {k: self.init_args_[k] for k in SPARSE_OPTIONS if k in self.init_args_}
        self.weight_masks_ = make_masks(
            self.module, self.ema_, self.init_args_.get("weight_sparsity", 0.0), **sparse
        )
        self.history_ = pd.DataFrame(columns=list(HISTORY_COLUMNS))  # step, epoch, loss
        self.is_trained_ = False
        self.train_args_: dict | None = None
        self._train_state: dict | None = None
        self.validation_indices_: np.ndarray | None = None
        self._validation: dict[str, Any] | None = None  # validation_size, n_rows

    def _check_init_args(self) -> None:
        """Raise on bad constructor arguments: the shared schema (:mod:`._schema`) here,
        models add theirs. Runs on creation and on load (a tampered config.json too)."""
        rules = {**MODEL_ARGS, **self._arg_rules}
        checked = check_args(self.init_args_, rules)
        for name, rule in rules.items():  # sequences stay lists, as config.json has them
            if rule.kind == "ints" and checked.get(name) is not None:
                checked[name] = list(checked[name])
        self.init_args_ = checked

    def _train_defaults(self) -> dict[str, Any]:
        """``lr`` and ``batch_size`` of ``train()`` when not given (the paper's)."""
        return {"lr": 2e-4, "batch_size": 256}

    # hooks every model supplies
    def _build_network(self) -> torch.nn.Module:
        raise NotImplementedError

    def _make_process(self) -> Any:
        """The Gaussian (+ sparsity bits) process of ``logsnr_min/max``, ``self_condition``,
        ``prediction``."""
        a = self.init_args_
        schedule = CosineSchedule(a["logsnr_min"], a["logsnr_max"])
        return GaussianDiffusion(
            schedule, self_condition=a["self_condition"], prediction=a.get("prediction", "x0")
        )

    def _training_data(self) -> tuple[Any, np.ndarray | None]:
        raise NotImplementedError

    def _encode(
        self, x: torch.Tensor, nonzero: torch.Tensor | None, reuse: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The network's input from scaled data and its non-zero mask (``reuse``: an
        earlier result whose memory may be taken, see :func:`sdd.diffusion.sparsity.encode`)."""
        return x

    def _example_inputs(self) -> tuple[torch.Tensor, ...]:
        x = torch.zeros(1, *self._sample_shape())
        return (x, torch.zeros(1), x)

    def _data_state(self) -> dict[str, Any]:
        return {}

    def _data_config(self) -> dict[str, Any]:
        return {}

    def _restore_data(self, state: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _attach(self, *data: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ properties
    @property
    def categories_(self) -> dict[str, list]:
        """Known labels per condition key (empty for an unconditional model)."""
        return self.setup_args_.get("categories", {})

    @property
    def schedule(self) -> Any:
        """The noise schedule (Gaussian) or observation times (Blackout) of the process."""
        return self.process.schedule

    @property
    def history(self) -> pd.DataFrame:
        """Loss per training step (alias of ``history_``)."""
        return self.history_

    @property
    def is_trained(self) -> bool:
        """Whether the model has been trained (alias of ``is_trained_``)."""
        return self.is_trained_

    @property
    def device(self) -> torch.device:
        """Where the network lives between calls: the CPU, unless ``load(accelerator=)``
        put it elsewhere. ``train`` and ``generate`` run on their own ``accelerator`` and
        leave it here."""
        return next(self.module.parameters()).device

    @property
    def n_params(self) -> int:
        """Number of network parameters."""
        return sum(p.numel() for p in self.module.parameters())

    def weight_report(self, batch_size: int = 256) -> dict:
        """Non-zero parameters and FLOPs per example and per training step.

        See :func:`sdd.sparse.weight_report`; dense models report ``"dense"``.
        """
        inputs = tuple(x.to(self.device) for x in self._example_inputs())
        return weight_report(self.module, inputs, masks=self.weight_masks_, batch_size=batch_size)

    def _summary(self) -> tuple[str, str, str]:
        """The kind of model, its data and network, and a tail, for ``repr``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        kind, what, tail = self._summary()
        masks = self.weight_masks_
        sparse = (
            ""
            if masks is None
            else f", {masks.method} weights at {self.init_args_['weight_sparsity']:.0%} sparsity"
        )
        return (
            f"{self._model_class} model ({kind}): {what}, {self.n_params / 1e6:.2f}M parameters"
            f"{sparse}, {self._status()}{tail}"
        )

    def _last_step(self) -> int:
        return int(self.history_["step"].max()) if len(self.history_) else 0

    def _status(self) -> str:
        return f"trained for {self._last_step()} steps" if self.is_trained_ else "not trained"

    def _default_key(self) -> str | None:
        return self.setup_args_.get("labels_key") or next(iter(self.categories_), None)

    def _label_codes(self, labels: Any, n: int) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
        return label_codes(
            labels, self.categories_, n, default_key=self._default_key(), unit=self._unit
        )

    # ------------------------------------------------------------------ training
    @execution_keywords(
        "accelerator", "device", "progress", "fast", "data_on_device", "distributed"
    )
    def train(
        self,
        max_steps: int = 10_000,
        *,
        batch_size: int | None = None,
        lr: float | None = None,
        ema_decay: float = 0.9999,
        lr_schedule: str = "constant",
        warmup_steps: int = 0,
        validation_size: float | None = None,
        validation_every: int | None = None,
        early_stopping: bool = False,
        early_stopping_patience: int = 5,
        random_state: int | None = None,
        execution: Execution | None = None,
    ) -> DiffusionModel:
        """Train the network (Adam, EMA of weights, the process's loss).

        A second call continues the first: the batch stream, the random numbers and the
        Adam state go on where they stopped, so ``train(10); train(10)`` equals
        ``train(20)`` (bit for bit on the CPU, for dense networks). Pass
        ``random_state`` to restart the stream from that seed. If training fails (a NaN
        or infinite loss, non-finite weights, Ctrl-C or any error), the model is
        restored to its state before the call and the error is raised.

        ``validation_size`` holds rows out once per model (``validation_indices_``, saved
        with it; later calls never train on them), as in scvi-tools. Every
        ``validation_every`` steps and at the end, the process's loss on them (EMA
        weights, eval mode, the same times and noise each time) goes into the
        ``validation_loss`` column of :attr:`history` (NaN on other steps); see
        :func:`sdd.train.train_validated`.

        Parameters
        ----------
        max_steps
            Optimiser steps (the paper trains 300k steps on a GPU).
        batch_size
            Examples per step. ``None``: the model's (SDD: its recipe's, 128 for
            ``"cpu"``, 256 for ``"paper"``; Blackout: 256; images: 128).
        lr
            Adam learning rate. ``None``: the model's (SDD: its recipe's, 1e-3 for
            ``"cpu"``, 2e-4 for ``"paper"``; Blackout and images: 2e-4).
        ema_decay
            Target EMA decay in [0, 1) (paper: 0.9999), reached after a warm-up.
        validation_size
            Fraction of the rows (cells, images) held out of training, in (0, 1);
            ``None``: no split (unless the model already has one: it is kept). The
            split is drawn on the first call and fixed for the model; another value
            later is an error, and so is a first split for a model already trained
            without one (all its rows were trained on).
        validation_every
            Steps between evaluations of the validation loss; ``None``: one epoch of
            the training rows, but at most 50 evaluations per call (every
            ``max_steps // 50`` steps). Needs a validation split.
        early_stopping
            Stop when the validation loss has not improved (by more than 0.1%) for
            ``early_stopping_patience`` evaluations in a row. Needs a validation split.
        early_stopping_patience
            Evaluations without improvement before stopping (counted within the call).
        lr_schedule
            ``"constant"`` (the paper's) or ``"cosine"``: linear warm-up over
            ``warmup_steps``, then cosine decay to 0 at the last step of this call.
        warmup_steps
            Warm-up steps of the ``"cosine"`` schedule.
        random_state
            Seed of batch order, times and noise; ``None``: 0 for the first call, the
            continued stream for later ones.
        execution
            Device, fast path, progress bar, data placement and data parallelism
            (:class:`sdd.Execution`; ``None``: its defaults). Save on rank 0 only
            (``sdd.train.is_main_process()``) when training with ``torchrun``.

        Returns
        -------
        The model itself.
        """
        ex = as_execution(execution)
        matrix, codes = self._training_data()
        home = self.device  # where the network goes back to afterwards
        max_steps = check_int(max_steps, "max_steps", 1)
        recipe = self._train_defaults()
        batch_size = check_int(recipe["batch_size"] if batch_size is None else batch_size, "batch_size", 1)  # fmt: skip
        lr = check_lr(recipe["lr"] if lr is None else lr)
        ema_decay = check_unit_interval(ema_decay, "ema_decay")
        if random_state is not None:
            random_state = check_seed(random_state)
        validation_size, validation_every, patience = check_validation_options(
            validation_size, validation_every, early_stopping, early_stopping_patience
        )
        dev, rank, world_size, is_distributed = join_distributed(
            ex.accelerator, ex.device, ex.distributed
        )
        resume = self._train_state if random_state is None else None
        seed = resume["seed"] if resume else (random_state or 0)
        held_out = held_out_rows(
            self.validation_indices_, self._validation, int(matrix.shape[0]), validation_size,
            seed=seed, trained=self.is_trained_, early_stopping=early_stopping,
            validation_every=validation_every,
        )  # fmt: skip
        generator = torch.Generator(dev)
        if resume and resume.get("device_type") == dev.type:
            generator.set_state(resume["generator"])
        else:
            generator.manual_seed(seed + rank)
            torch.manual_seed(seed + rank)
        start_batch = resume["batches"] if resume else 0
        snapshot = Snapshot(self.module, self.ema_, self.weight_masks_)
        rows = None if held_out is None else np.setdiff1d(np.arange(matrix.shape[0]), held_out)
        batches = MinibatchSampler(
            matrix, self.scaler_, batch_size=batch_size, device=dev, codes=codes,
            random_state=seed, start_batch=start_batch, data_on_device=ex.data_on_device,
            rank=rank, world_size=world_size, rows=rows,
            feature_names=getattr(self, "var_names_", None),
        )  # fmt: skip
        self.module.to(dev)
        self.ema_.model.to(dev)
        self.ema_.decay = ema_decay
        drop = label_dropout(
            self.module, self.init_args_.get("condition_dropout", 0.0), dev, generator
        )

        buffer: list[torch.Tensor | None] = [None]  # the last minibatch's memory, reused

        def next_batch() -> tuple[torch.Tensor, torch.Tensor | None]:
            x, nonzero, batch_codes = batches()
            buffer[0] = self._encode(x, nonzero, reuse=buffer[0])
            return buffer[0], drop(batch_codes)

        start = self._last_step()
        masks = self.weight_masks_
        if masks is not None:
            masks.plan(start, max_steps)
        options = {
            "steps_per_epoch": batches.steps_per_epoch, "lr": lr,
            "execution": ex.replace(distributed=is_distributed),
            "loop_kwargs": {
                "generator": generator,
                "lr_schedule": lr_multiplier(lr_schedule, start=start, total=max_steps, warmup=warmup_steps),
                "after_step": None if masks is None else masks.hook(self.module, self.ema_),
            },
        }  # fmt: skip
        optimizer_state = resume["optimizer"] if resume else None
        every = validation_every or default_validation_every(batches.steps_per_epoch, max_steps)
        show = ex.progress and rank == 0
        try:
            if held_out is None:  # one call: the stream of a model without validation
                history, optimizer_state = train_denoiser(
                    self.module, self.ema_, next_batch, self.process, max_steps=max_steps,
                    optimizer_state=optimizer_state, start_step=start,
                    progress=show, **options,
                )  # fmt: skip
                steps = max_steps
            else:  # chunks of `every` steps, each continuing the last; evaluations between

                def chunk(n: int, done: int, state: dict | None, bar: Any) -> Any:
                    return train_denoiser(
                        self.module, self.ema_, next_batch, self.process, max_steps=n,
                        optimizer_state=state, start_step=start + done, progress=bar, **options,
                    )  # fmt: skip

                def evaluate() -> float:  # on the held-out rows, read and encoded as in training
                    read = (batches(held_out[i : i + batch_size]) for i in range(0, len(held_out), batch_size))  # fmt: skip
                    encoded = ((self._encode(x, nonzero), c) for x, nonzero, c in read)
                    return validation_loss(self.ema_.model, self.process, encoded, distributed=is_distributed)  # fmt: skip

                history, optimizer_state, steps = train_validated(
                    chunk, evaluate, max_steps=max_steps, every=every, optimizer_state=optimizer_state,
                    patience=patience if early_stopping else None, progress=show,
                )  # fmt: skip
            check_finite(self.module, self.ema_.model)
            batches.check_range()  # data changed after setup (read back at the end on GPUs)
        except BaseException as err:
            snapshot.restore()
            if isinstance(err, FloatingPointError):
                raise FloatingPointError(
                    f"{err} The model was restored to its state before this train() call; "
                    "try a smaller lr."
                ) from err
            raise
        finally:
            batches.close()
            self.module.to(home)
            self.ema_.model.to(home)
        _warn_if_diverged(history)
        self.history_ = (
            history
            if not len(self.history_)
            else pd.concat([self.history_, history], ignore_index=True)
        )
        self._train_state = {
            "seed": int(seed),
            "batches": int(start_batch + steps),
            "generator": generator.get_state().cpu(),
            "optimizer": to_cpu(optimizer_state),
            "device_type": dev.type,
        }
        self.train_args_ = {
            "max_steps": max_steps, "batch_size": batch_size, "lr": lr, "ema_decay": ema_decay,
            "lr_schedule": lr_schedule, "warmup_steps": int(warmup_steps),
            "random_state": int(seed), "fast": resolve_fast(ex.fast, dev), "world_size": int(world_size),
        }  # fmt: skip
        if held_out is not None:
            self.validation_indices_ = held_out
            size = validation_size or self._validation["validation_size"]
            self._validation = {"validation_size": float(size), "n_rows": int(matrix.shape[0])}
            self.train_args_.update(
                validation_size=self._validation["validation_size"], n_validation=len(held_out),
                validation_every=int(every), early_stopping=bool(early_stopping),
                early_stopping_patience=patience, steps_trained=int(steps),
            )  # fmt: skip
        self.is_trained_ = True
        return self

    # --------------------------------------------------------------- generation
    def _require_trained(self) -> None:
        if not self.is_trained_:
            raise ValueError("The model is not trained yet; call model.train() first.")

    def _sample_batches(
        self,
        n: int,
        *,
        codes: np.ndarray | None,
        batch_size: int,
        guidance_scale: float,
        random_state: int,
        use_ema: bool,
        execution: Execution,
        known: Callable[[int, int, torch.device], tuple[torch.Tensor, torch.Tensor]] | None = None,
        **options: Any,
    ) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Yield ``(start, stop, encoded batch)`` for rows ``0..n``, batch by batch.

        One progress bar spans all batches. ``known(start, stop, device)`` gives the
        ``(values, mask)`` of inpainting per batch.
        """
        self._require_trained()
        batch_size = check_int(batch_size, "batch_size", 1)
        random_state = check_seed(random_state)
        guidance_scale = check_guidance(guidance_scale)
        options = self.process.check_options(**options)
        devices = resolve_devices(execution.accelerator, execution.device)
        dev = devices[0]
        home = self.device
        net = (self.ema_.model if use_ema else self.module).to(dev).eval()
        generator = torch.Generator(dev).manual_seed(random_state)
        n_batches = -(-n // batch_size)
        bar = tqdm(
            total=n_batches * self.process.n_evaluations(**options),
            desc=f"Generating {n:,}", disable=not execution.progress, unit="step",
        )  # fmt: skip
        try:
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                cond = None if codes is None else torch.as_tensor(codes[start:stop], device=dev)
                z = sample_split(
                    net, self.process, (stop - start, *self._sample_shape()), devices=devices,
                    cond=cond, guidance_scale=guidance_scale, generator=generator, fast=execution.fast,
                    known=None if known is None else known(start, stop, dev),
                    step_callback=bar.update, **options,
                )  # fmt: skip
                yield start, stop, z
        finally:
            bar.close()
            net.to(home)

    def _sample_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _provenance(self, **settings: Any) -> dict[str, Any]:
        """``uns["sdd"]`` / ``settings`` of a generated result."""
        return {"model": self._model_class, "version": __version__, **plain(settings)}
