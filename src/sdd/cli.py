"""Command line interface: ``sdd fit | generate | evaluate | info | demo``.

Examples
--------
Train on the log1p-normalised expression in ``data.h5ad``, generate cells in the
training label mix and compare them with the real ones::

    sdd fit data.h5ad --labels-key cell_type --max-steps 10000 --out model_dir
    sdd generate model_dir -n 10000 -o generated.h5ad
    sdd evaluate data.h5ad generated.h5ad --labels-key cell_type

``sdd fit --model blackout`` trains :class:`~sdd.SDDBlackout` on raw counts and
``sdd fit images.npz --model image`` trains :class:`~sdd.SDDImage` on an array of images
(``.npz``/HDF5, ``.npy`` or idx files).

The command line is a thin layer over the Python API: every model option's default is
read from the signature of the model class's ``__init__``, ``train`` or ``generate``
(so ``sdd`` and Python agree), and ``--model-arg KEY=VALUE`` passes any other
constructor option. Every command prints a one-line message and exits with a non-zero
status on bad input.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .io.atomic import atomic_path, check_output_path, write_csv, write_h5ad

__all__ = ["main", "build_parser"]

#: Exit status for bad input (a file that does not exist, an unknown layer, ...).
EXIT_BAD_INPUT = 1
#: Exit status after Ctrl-C.
EXIT_INTERRUPTED = 130

#: ``--model`` of ``sdd fit``: the model classes by their command-line name.
_KINDS = {"sdd": "SDD", "blackout": "SDDBlackout", "image": "SDDImage"}

# Options that set a model's argument: dest -> (flag, method, parameter, help, argparse
# keywords). Their defaults come from the method's signature (parameter None: its first).
_Option = tuple[str, str, "str | None", str, dict]
_FIT_OPTIONS: dict[str, _Option] = {
    "max_steps": ("--max-steps", "train", "max_steps", "optimiser steps", {"type": int}),
    "batch_size": ("--batch-size", "train", "batch_size", "examples per step (auto: the recipe's)", {"type": int}),
    "lr": ("--lr", "train", "lr", "Adam learning rate (auto: the recipe's)", {"type": float}),
    "ema_decay": ("--ema-decay", "train", "ema_decay", "EMA decay of the weights", {"type": float}),
    "validation_size": ("--validation-size", "train", "validation_size", "fraction of cells (images) held out for a validation loss (auto: no split)", {"type": float}),
    "validation_every": ("--validation-every", "train", "validation_every", "steps between validation losses (auto: an epoch, at most 50 per run)", {"type": int}),
    "early_stopping": ("--early-stopping", "train", "early_stopping", "stop when the validation loss stops improving", {"action": argparse.BooleanOptionalAction}),
    "early_stopping_patience": ("--early-stopping-patience", "train", "early_stopping_patience", "validation losses without improvement before stopping", {"type": int}),
    "recipe": ("--recipe", "__init__", "recipe", "paper (the SDD paper's network, lr, batch) or cpu (smaller, cheaper per step)", {"choices": ["paper", "cpu"]}),
    "lr_schedule": ("--lr-schedule", "train", "lr_schedule", "constant, or cosine decay after a warm-up", {"choices": ["constant", "cosine"]}),
    "warmup_steps": ("--warmup-steps", "train", "warmup_steps", "warm-up steps of the cosine schedule", {"type": int}),
    "hidden": ("--hidden", "__init__", "hidden", "MLP encoder widths (auto: the recipe's)", {"type": int, "nargs": "+"}),
    "emb_dim": ("--emb-dim", "__init__", "emb_dim", "time/label embedding size (auto: from the U-Net width)", {"type": int}),
    "sparsity_bits": ("--sparsity-bits", "__init__", "sparsity_bits", "model the zero pattern (off: the plain baseline)", {"action": argparse.BooleanOptionalAction}),
    "seed": ("--seed", "train", "random_state", "random seed of weights, batches and noise (auto: 0)", {"type": int}),
    "accelerator": ("--accelerator", "execution", "accelerator", "auto, cpu, cuda or mps", {}),
}  # fmt: skip
_GENERATE_OPTIONS: dict[str, _Option] = {
    "n": ("-n", "generate", None, "number of cells or images (auto: the training mix's size, or 10000)", {"type": int}),
    "sampler": ("--sampler", "generate", "sampler", "sampler (auto: the one a calibrated model was calibrated with, else ddpm)", {"choices": ["ddpm", "ddim", "dpm++2m"]}),
    "n_steps": ("--n-steps", "generate", "n_steps", "reverse steps (auto: sdd the calibration's, else 250; blackout every observation time)", {"type": int}),
    "seed": ("--seed", "generate", "random_state", "random seed", {"type": int}),
    "guidance_scale": ("--guidance-scale", "generate", "guidance_scale", "classifier-free guidance weight", {"type": float}),
    "batch_size": ("--batch-size", "generate", "batch_size", "examples sampled at once", {"type": int}),
    "store_dense": ("--dense", "generate", "store_dense", "also write the dense and sb_logits values", {"action": argparse.BooleanOptionalAction}),
    "accelerator": ("--accelerator", "execution", "accelerator", "auto, cpu, cuda or mps", {}),
}  # fmt: skip
_EVALUATE_OPTIONS: dict[str, _Option] = {
    "n_cells": ("--n-cells", "evaluate", "n_cells", "subsample each set to this size", {"type": int}),
    "seed": ("--seed", "evaluate", "random_state", "random seed", {"type": int}),
}  # fmt: skip
_MISSING = inspect.Parameter.empty


# ------------------------------------------------------------------------ defaults
def _model_class(name: str) -> type:
    """A model class by its class name (``"SDD"``) or ``--model`` name (``"sdd"``)."""
    import sdd

    return getattr(sdd, _KINDS.get(name, name))


def _target(cls: Any, method: str) -> Callable:
    return cls if method == "evaluate" else getattr(cls, method)


def _parameter(cls: Any, method: str, name: str | None) -> inspect.Parameter | None:
    """The parameter ``name`` of ``cls.method`` (following ``**kwargs`` up the classes);
    ``method="execution"``: of :class:`sdd.Execution`, which every model takes."""
    if method == "execution":
        from ._execution import Execution

        return inspect.signature(Execution).parameters.get(name)
    if method == "__init__" and name is not None:  # an option inside a dict argument
        for options in getattr(cls, "_grouped_args", {}).values():
            if name in options:
                kind = inspect.Parameter.KEYWORD_ONLY
                return inspect.Parameter(name, kind, default=options[name])
    owners = [cls] if method == "evaluate" else [c for c in cls.__mro__ if method in vars(c)]
    for owner in owners:
        params = inspect.signature(_target(owner, method)).parameters
        named = [p for p in params.values() if p.name != "self"]
        if name is None:
            return named[0]
        if name in params:
            return params[name]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in named):
            return None
    return None


def _option_defaults(cls: Any, options: dict[str, _Option]) -> dict[str, Any]:
    """The default of every option in ``options`` that ``cls`` takes, from its signatures.

    ``cls`` is a model class (``options`` about ``__init__``, ``train``, ``generate``) or
    :func:`sdd.tl.evaluate`.
    """
    out = {}
    for dest, (_, method, name, *_) in options.items():
        param = _parameter(cls, method, name)
        if param is not None and param.default is not _MISSING:
            out[dest] = param.default
    return out


def _method_kwargs(
    args: argparse.Namespace, cls: Any, method: str, options: dict[str, _Option]
) -> dict[str, Any]:
    """``{parameter: value}`` of the options for ``cls.method``; an option given for a
    model that does not take it is an error."""
    out = {}
    for dest, (flag, target, name, *_) in options.items():
        if target != method:
            continue
        value = getattr(args, dest)
        param = _parameter(cls, method, name)
        if param is None:
            if value is not None:
                what = getattr(cls, "__name__", "this")
                raise CLIError(f"{flag} does not apply to {what} models.")
            continue
        out[param.name] = tuple(value) if isinstance(value, list) else value
    return out


def _execution(args: argparse.Namespace, cls: Any, options: dict[str, _Option]) -> Any:
    """The :class:`sdd.Execution` of the execution options given (progress bars unless
    ``--quiet``)."""
    from ._execution import Execution

    given = {
        k: v for k, v in _method_kwargs(args, cls, "execution", options).items() if v is not None
    }
    return Execution(progress=not args.quiet, **given)


def _default_help(options: dict[str, _Option], dest: str) -> str:
    """``(default: ...)`` of an option, per model where the models differ."""
    values = {}
    for kind in _KINDS:
        defaults = _option_defaults(_model_class(kind), options)
        if dest in defaults:
            values[kind] = defaults[dest]
    if len({repr(v) for v in values.values()}) == 1:
        return f" (default: {_show(next(iter(values.values())))})"
    return " (default: " + ", ".join(f"{k} {_show(v)}" for k, v in values.items()) + ")"


def _show(value: Any) -> str:
    if isinstance(value, tuple | list):
        return " ".join(map(str, value))
    if isinstance(value, bool):
        return "on" if value else "off"
    return "auto" if value is None else str(value)


def _model_args(items: Sequence[str] | None, cls: type) -> dict[str, Any]:
    """``--model-arg KEY=VALUE`` as constructor keywords (values via ``ast.literal_eval``)."""
    import sdd

    params = inspect.signature(cls.__init__).parameters.values()
    grouped = getattr(cls, "_grouped_args", {})
    known = [
        p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in grouped
    ]
    known += [option for options in grouped.values() for option in options]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):  # weight-mask options
        masks = inspect.signature(sdd.sparse.masks.make_masks).parameters.values()
        known += [p.name for p in masks if p.kind is inspect.Parameter.KEYWORD_ONLY]
        known.remove("random_state")
    own = {name: flag for flag, method, name, *_ in _FIT_OPTIONS.values() if method == "__init__"}
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CLIError(f"--model-arg takes KEY=VALUE, got {item!r}.")
        if key in own:
            raise CLIError(f"set {key!r} with {own[key]}, not --model-arg.")
        if key not in known:
            raise CLIError(
                f"unknown --model-arg {key!r} for {cls.__name__}; known: {', '.join(known)}."
            )
        if key in out:
            raise CLIError(f"--model-arg {key!r} is given twice.")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            out[key] = text  # a bare word, e.g. intensity_transform=log1p
    return out


# ------------------------------------------------------------------------ helpers
def _warning_printer(command: str):
    """Print warnings as one line, ``sdd COMMAND: warning: ...``."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = str(message).strip().splitlines()
        print(f"sdd {command}: warning: {text[0] if text else category.__name__}", file=sys.stderr)

    return show


class CLIError(ValueError):
    """Bad command-line input, reported as one line."""


def _log(message: str, *, quiet: bool = False) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def _read_h5ad(path: str | Path, what: str = "data"):
    """Read an ``.h5ad`` file with errors that name the file."""
    import anndata as ad

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file {str(path)!r} does not exist.")
    if path.is_dir():
        raise CLIError(f"{what} path {str(path)!r} is a directory, expected an .h5ad file.")
    try:
        return ad.read_h5ad(path)
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise CLIError(f"cannot read {str(path)!r} as an .h5ad file: {err}") from err


def _check_output(path: str | Path, *, overwrite: bool, suffixes: Sequence[str]) -> Path:
    path = Path(os.path.expanduser(path))
    if path.suffix not in suffixes:
        raise CLIError(
            f"output {str(path)!r} must end in {' or '.join(suffixes)}, got {path.suffix!r}."
        )
    if path.exists() and not overwrite:
        raise CLIError(f"{str(path)!r} already exists; pass --overwrite to replace it.")
    try:
        return check_output_path(path, overwrite=True)  # a directory, a missing folder
    except OSError as err:
        raise CLIError(f"output {err}") from err


def _normalize(adata, layer: str | None):
    """``normalize_total(target_sum=1e4)`` then ``log1p`` on ``layer`` (or ``X``), in place."""
    import scanpy as sc

    if layer is not None and layer not in adata.layers:
        raise CLIError(f"layer {layer!r} not found (available: {list(adata.layers)}).")
    sc.pp.normalize_total(adata, target_sum=1e4, layer=layer)
    sc.pp.log1p(adata, layer=layer)


def _model_class_of(model_dir: str | Path) -> str:
    """The ``model_class`` recorded in a saved model directory's ``config.json``."""
    model_dir = Path(model_dir)
    config_file = model_dir / "config.json"
    if not model_dir.exists():
        raise FileNotFoundError(f"model directory {str(model_dir)!r} does not exist.")
    if not config_file.is_file():
        raise CLIError(
            f"{str(model_dir)!r} is not an sdd model directory (no config.json); "
            "create one with `sdd fit ... --out DIR`."
        )
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CLIError(f"corrupt {config_file}: {err}") from err
    name = config.get("model_class") if isinstance(config, dict) else None
    if not isinstance(name, str):
        raise CLIError(f"{config_file} does not name a model class.")
    if name not in _KINDS.values():
        raise CLIError(f"{str(model_dir)!r} holds a {name!r} model, unknown to this sdd version.")
    return name


def _format_table(table) -> str:
    import pandas as pd

    with pd.option_context("display.max_rows", None, "display.max_columns", None):
        return table.to_string(
            index=not isinstance(table.index, pd.RangeIndex),
            float_format=lambda v: f"{v:.4g}",
        )


def _read_array(path: Path, what: str):
    """An ``.npy`` file or an idx file (the MNIST format, gzip or not)."""
    import numpy as np

    from .datasets import read_idx

    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise CLIError(f"cannot read {what} {str(path)!r} as .npy: {err}") from err
    return read_idx(path)


def _read_images(args: argparse.Namespace):
    """Images (and labels) for ``--model image``: ``.npz``/HDF5, ``.npy`` or idx files."""
    from .datasets import read_calorimeter

    path = Path(args.data)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist.")
    if path.suffix == ".h5ad":
        raise CLIError("--model image reads images (.npz, HDF5, .npy or idx), not .h5ad.")
    if path.suffix in (".npz", ".h5", ".hdf5"):
        if args.labels_file is not None:
            raise CLIError(
                "--labels-file is for .npy and idx images; name the array with --labels-key."
            )
        data = read_calorimeter(path, images_key=args.images_key, labels_key=args.labels_key)
        return data.images, data.labels
    if args.labels_key is not None:
        raise CLIError("--labels-key names an array in .npz/HDF5 images; use --labels-file.")
    images = _read_array(path, "images")
    labels = None if args.labels_file is None else _read_array(Path(args.labels_file), "labels")
    return images, labels


def _read_cells(args: argparse.Namespace, cls: type):
    """The AnnData of ``sdd fit``, registered with the model's ``setup_anndata``."""
    if args.images_key != "images" or args.labels_file is not None:
        raise CLIError("--images-key and --labels-file are for --model image.")
    adata = _read_h5ad(args.data)
    _log(f"read {args.data}: {adata.n_obs} cells x {adata.n_vars} genes", quiet=args.quiet)
    if args.layer is not None and args.layer not in adata.layers:
        raise CLIError(f"layer {args.layer!r} not found (available: {list(adata.layers)}).")
    layer = args.layer if args.layer is not None else cls.default_layer(adata)
    if args.normalize:
        if args.model == "blackout":
            raise CLIError("--normalize does not apply to --model blackout (it models raw counts).")
        _normalize(adata, layer)
    cls.setup_anndata(
        adata,
        layer=layer,
        labels_key=args.labels_key,
        categorical_covariate_keys=args.covariate_keys,
    )
    return adata


def _labels(items: Sequence[str] | None, model: Any) -> Any:
    """``--label VALUE`` (the first condition) or ``--label KEY=VALUE``; the model checks them.

    Without ``--label`` a model that knows its training label mix generates in that mix.
    """
    categories = model.categories_
    if not items:
        return "training" if getattr(model, "composition_", None) is not None else None
    if not categories:
        raise CLIError("--label was given but the model was trained without labels.")
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in categories:
            key, value = next(iter(categories)), item
        if key in labels:
            raise CLIError(f"--label given twice for {key!r}.")
        labels[key] = value
    return labels


# ------------------------------------------------------------------------ commands
def _cmd_fit(args: argparse.Namespace) -> int:
    import torch

    cls = _model_class(args.model)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CLIError(f"{str(out)!r} already exists; pass --overwrite to replace it.")
    try:  # before training: a model that cannot be saved is not trained
        from .io.checkpoint import check_save_path

        check_save_path(out, overwrite=args.overwrite)
    except (OSError, ValueError) as err:
        raise CLIError(f"cannot save the model to {str(out)!r}: {err}") from err
    init = _method_kwargs(args, cls, "__init__", _FIT_OPTIONS)
    init = cls.nest_init_args({**init, **_model_args(args.model_arg, cls)})
    train = _method_kwargs(args, cls, "train", _FIT_OPTIONS)
    execution = _execution(args, cls, _FIT_OPTIONS)
    if args.model == "image":
        if args.layer or args.covariate_keys or args.normalize:
            raise CLIError("--layer, --covariate-keys and --normalize are for .h5ad data.")
        data = _read_images(args)
        _log(
            f"read {args.data}: {len(data[0])} images of shape {data[0].shape[1:]}",
            quiet=args.quiet,
        )
    else:
        data = (_read_cells(args, cls),)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG untouched
        torch.manual_seed(train["random_state"] or 0)
        model = cls(*data, **init)
    _log(repr(model), quiet=args.quiet)
    start = time.perf_counter()
    model.train(**train, execution=execution)
    final = float(model.history_["loss"].tail(100).mean())
    steps = model.train_args_.get("steps_trained", model.train_args_["max_steps"])
    validation = model.history_.get("validation_loss")
    held_out = (
        f", validation loss {validation.dropna().iloc[-1]:.4g}" if validation is not None else ""
    )
    _log(
        f"trained {steps} steps in {time.perf_counter() - start:.1f} s "
        f"(final loss {final:.4g}{held_out})",
        quiet=args.quiet,
    )
    if getattr(model, "calibrate", None) and model.init_args_["sparsity_bits"] and not args.no_calibrate:  # fmt: skip
        start = time.perf_counter()
        model.calibrate(execution=execution)
        settings = model.calibration_.settings
        _log(
            f"calibrated on {settings['n_cells']} generated cells ({settings['sampler']}, "
            f"{settings['n_steps']} steps) in {time.perf_counter() - start:.1f} s",
            quiet=args.quiet,
        )
    model.save(out, overwrite=args.overwrite)
    _log(f"saved {out}", quiet=args.quiet)
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    name = _model_class_of(args.model_dir)
    image = name == "SDDImage"
    out = _check_output(
        args.output, overwrite=args.overwrite, suffixes=(".npz",) if image else (".h5ad",)
    )
    cls = _model_class(name)
    kwargs = _method_kwargs(args, cls, "generate", _GENERATE_OPTIONS)
    model = cls.load(args.model_dir)
    if not model.is_trained_:
        raise CLIError(f"the model in {args.model_dir!r} is not trained.")
    kwargs["labels"] = _labels(args.label, model)
    start = time.perf_counter()
    result = model.generate(**kwargs, execution=_execution(args, cls, _GENERATE_OPTIONS))
    out.parent.mkdir(parents=True, exist_ok=True)
    if image:
        import numpy as np

        arrays = {"images": result.images, "sparsity_bits": result.sparsity_bits}
        for key in ("dense", "sb_logits", "labels"):
            if getattr(result, key) is not None:
                arrays[key] = np.asarray(getattr(result, key))
        with atomic_path(out, overwrite=args.overwrite) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
        n, zeros = len(result), 1.0 - float(result.sparsity_bits.mean())
    else:
        write_h5ad(result, out, overwrite=args.overwrite)
        n, zeros = result.n_obs, 1.0 - result.X.nnz / (result.n_obs * result.n_vars)
    _log(
        f"generated {n} {'images' if image else 'cells'} ({zeros:.2%} exact zeros"
        f"{', in the training label mix' if kwargs['labels'] == 'training' else ''}) in "
        f"{time.perf_counter() - start:.1f} s; wrote {out}",
        quiet=args.quiet,
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .tl import evaluate

    if args.csv is not None:
        _check_output(args.csv, overwrite=args.overwrite, suffixes=(".csv",))
    real = _read_h5ad(args.real, "real data")
    generated = _read_h5ad(args.generated, "generated data")
    if args.normalize:
        _normalize(real, args.layer)
    try:  # sdd.tl.evaluate checks genes, layer and labels; its message, with flag names
        table = evaluate(
            real,
            generated,
            labels_key=args.labels_key,
            layer=args.layer,
            align_genes=args.align_genes,
            **_method_kwargs(args, evaluate, "evaluate", _EVALUATE_OPTIONS),
        )
    except (TypeError, ValueError) as err:
        raise CLIError(_with_flags(str(err))) from err
    print(_format_table(_wide(table)))
    if args.csv is not None:
        write_csv(table, args.csv, overwrite=args.overwrite, index=False)
        _log(f"wrote {args.csv} (one row per group and metric)", quiet=args.quiet)
    return 0


#: Python argument names in messages of the API, as the command line spells them.
_FLAGS = {
    r"\balign_genes=True\b": "--align-genes",
    r"\blabels_key\b": "--labels-key",
    r"\bn_cells\b": "--n-cells",
}


def _with_flags(message: str) -> str:
    """An API error message with its argument names written as command-line flags."""
    import re

    for pattern, flag in _FLAGS.items():
        message = re.sub(pattern, flag, message)
    return message


def _wide(table):
    """Tidy ``(group, metric, value, ...)`` rows as one row per group, one column per metric."""
    if not {"metric", "value"} <= set(table.columns):
        return table
    index = "group" if "group" in table.columns else None
    if index is None:
        return table.set_index("metric")[["value"]].T.rename(index={"value": "all"})
    metrics = list(dict.fromkeys(table["metric"]))
    groups = list(dict.fromkeys(table[index]))
    wide = table.pivot(index=index, columns="metric", values="value")
    wide = wide.loc[groups, metrics]
    wide.columns.name = None
    return wide


def _cmd_info(args: argparse.Namespace) -> int:
    model = _model_class(_model_class_of(args.model_dir)).load(args.model_dir)
    print(repr(model))
    setup = getattr(model, "setup_args_", None)
    if setup:
        print(f"setup: {json.dumps(setup, default=str)[:2000]}")
    train_args = getattr(model, "train_args_", None)
    if train_args:
        print(f"training: {json.dumps(train_args, default=str)}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    try:
        demo.main(list(args.demo_args))
    except SystemExit as exit_:  # the demo's own --help or usage error
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    return 0


# ------------------------------------------------------------------------ parser
class _DefaultsFormatter(argparse.HelpFormatter):
    """Show ``(default: ...)`` only for options whose default is a real value."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "%(default)" not in text
            and action.default is not None
            and action.default is not False
            and action.default is not argparse.SUPPRESS
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


# ------------------------------------------------------------------------ parser
def _model_options(
    sub: argparse.ArgumentParser, options: dict[str, _Option], *, show_defaults: bool
) -> None:
    """The options of ``options``; their defaults (listed in the help with
    ``show_defaults``) are the model's."""
    for dest, (flag, _, _, text, kwargs) in options.items():
        flags = [flag, "--n-cells"] if flag == "-n" else [flag]
        help = text + (_default_help(options, dest) if show_defaults else "")
        sub.add_argument(*flags, dest=dest, default=None, help=help, **kwargs)


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (with where to look), not argparse's full usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(
    kind: str | None = None, *, commands: Collection[str] | None = None
) -> argparse.ArgumentParser:
    """The ``sdd`` argument parser (sub-commands ``fit``, ``generate``, ``evaluate``, ...).

    Parameters
    ----------
    kind
        A model (``"sdd"``, ``"blackout"``, ``"image"``, or a class name such as
        ``"SDDImage"``): the model options of ``fit`` and ``generate`` default to that
        model's own defaults, read from the signatures of its ``__init__``, ``train`` and
        ``generate``. ``None``: they default to ``None`` (each model's own, listed in the
        help).
    commands
        The sub-commands whose option defaults are read from the models' signatures
        and :func:`sdd.tl.evaluate` (which imports torch and scanpy); ``None``: all.
        The command line passes only the command it runs, so that ``sdd --help``
        starts without importing torch.

    Examples
    --------
    >>> build_parser("image").parse_args(["fit", "x.npz", "-o", "m"]).batch_size
    128
    """
    from . import __version__

    parser = _OneLineParser(
        prog="sdd",
        description="Sparse Data Diffusion: diffusion models that generate exact zeros.",
        epilog="Run `sdd COMMAND --help` for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"sdd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fmt = _DefaultsFormatter

    fit = sub.add_parser(
        "fit",
        help="train a model on an .h5ad file (or images) and save it",
        description="Train a model and save the model directory (model.pt + config.json). "
        "--model sdd (default) learns non-negative values, usually log1p-normalised "
        "expression (pass --normalize for raw counts); --model blackout learns raw integer "
        "counts; --model image learns images from .npz/HDF5 (array --images-key, labels "
        "--labels-key), .npy or idx files (labels --labels-file). Model options default to "
        "the Python defaults of the model; --model-arg KEY=VALUE sets any other "
        "constructor option.",
        formatter_class=fmt,
    )
    fit.add_argument("data", help="training data (.h5ad; for --model image .npz, .npy or idx)")
    fit.add_argument("--out", "-o", required=True, help="model directory to write")
    fit.add_argument(
        "--model",
        choices=list(_KINDS),
        default="sdd",
        help="sdd: Gaussian diffusion with sparsity bits; blackout: count diffusion on raw "
        "integer counts; image: SDDImage (U-Net)",
    )
    fit.add_argument(
        "--layer",
        default=None,
        help="layer to train on (default: X; for blackout the 'counts' layer when present)",
    )
    fit.add_argument(
        "--labels-key", default=None, help="obs column (or .npz array) to condition on"
    )
    fit.add_argument(
        "--covariate-keys", nargs="+", default=None, help="further categorical obs columns"
    )
    fit.add_argument(
        "--normalize",
        action="store_true",
        help="normalize_total(1e4) + log1p the data first (for raw counts)",
    )
    fit.add_argument("--images-key", default="images", help="image array of an .npz/HDF5 file")
    fit.add_argument("--labels-file", default=None, help="labels of .npy or idx images")
    _model_options(fit, _FIT_OPTIONS, show_defaults=commands is None or "fit" in commands)
    fit.add_argument(
        "--model-arg",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="any other constructor option, e.g. --model-arg dropout=0.1 (repeatable; "
        "VALUE is a Python literal or a bare word)",
    )
    fit.add_argument(
        "--no-calibrate", action="store_true",
        help="--model sdd: skip matching each gene's detection rate and values after "
        "training (SDD.calibrate)",
    )  # fmt: skip
    fit.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    fit.add_argument("--quiet", "-q", action="store_true", help="no progress bars or messages")
    fit.set_defaults(func=_cmd_fit)

    gen = sub.add_parser(
        "generate",
        help="generate cells (or images) from a saved model",
        description="Generate from a model directory written by `sdd fit` (or model.save). "
        "Cell models write an .h5ad (X CSR with exact zeros, layers sparsity_bits and, "
        "with --dense, dense/sb_logits); image models write an .npz (images, "
        "sparsity_bits, ...). A conditional cell model generates in its training label "
        "mix unless --label is given. Options default to the model's generate() defaults.",
        formatter_class=fmt,
    )
    gen.add_argument("model_dir", help="saved model directory")
    gen.add_argument("-o", "--output", required=True, help="output .h5ad (.npz for images)")
    gen.add_argument(
        "--label",
        action="append",
        default=None,
        metavar="[KEY=]VALUE",
        help="condition on a label (repeat for several covariates)",
    )
    _model_options(gen, _GENERATE_OPTIONS, show_defaults=commands is None or "generate" in commands)
    gen.add_argument("--overwrite", action="store_true", help="replace an existing output")
    gen.add_argument("--quiet", "-q", action="store_true", help="no progress bars or messages")
    gen.set_defaults(func=_cmd_generate)

    ev = sub.add_parser(
        "evaluate",
        help="compare generated with real cells and print the metric table",
        description="Compare generated with real cells (sdd.tl.evaluate: SCC/PCC of gene "
        "means, MMD, LISI, sparsity, real-vs-generated AUC) and print the metric table.",
        formatter_class=fmt,
    )
    ev.add_argument("real", help="real data (.h5ad), in the units the model was trained on")
    ev.add_argument("generated", help="generated data (.h5ad)")
    ev.add_argument("--labels-key", default=None, help="obs column: also report per label")
    ev.add_argument("--layer", default=None, help="layer of the real data to use instead of X")
    ev.add_argument(
        "--normalize",
        action="store_true",
        help="normalize_total(1e4) + log1p the real data first (as with `sdd fit --normalize`)",
    )
    ev.add_argument("--align-genes", action="store_true", help="compare only the shared genes")
    _model_options(ev, _EVALUATE_OPTIONS, show_defaults=False)
    if commands is None or "evaluate" in commands:
        from .tl import evaluate

        ev.set_defaults(**_option_defaults(evaluate, _EVALUATE_OPTIONS))
    ev.add_argument("--csv", default=None, help="also write the table to this .csv")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing --csv")
    ev.add_argument("--quiet", "-q", action="store_true", help="no messages besides the table")
    ev.set_defaults(func=_cmd_evaluate)

    info = sub.add_parser(
        "info", help="describe a saved model", description="Print a saved model's summary."
    )
    info.add_argument("model_dir", help="saved model directory")
    info.set_defaults(func=_cmd_info)

    demo = sub.add_parser(
        "demo",
        add_help=False,  # --help and all other options go to the demo itself
        help="fit SDD on scanpy's pbmc68k_reduced and generate cells "
        "(`sdd demo --help` lists its options)",
    )
    demo.set_defaults(func=_cmd_demo)
    if kind is not None:
        cls = _model_class(kind)
        fit.set_defaults(**_option_defaults(cls, _FIT_OPTIONS))
        gen.set_defaults(**_option_defaults(cls, _GENERATE_OPTIONS))
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (its first argument not starting with ``-``)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sdd`` command line and return its exit status.

    Parameters
    ----------
    argv
        Arguments without the program name; ``None`` reads ``sys.argv[1:]``.

    Returns
    -------
    ``0`` on success, ``1`` on bad input (with a one-line message on stderr), ``2`` on a
    usage error, ``130`` after Ctrl-C.

    Examples
    --------
    >>> from sdd.cli import main
    >>> main(["fit", "data.h5ad", "--max-steps", "200", "--out", "model"])  # doctest: +SKIP
    0
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(commands={_command(argv)} - {None})
    try:
        args, extra = parser.parse_known_args(argv)
        if args.command == "demo":
            args.demo_args = extra
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exit_:  # --help, --version and usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(args.command)
            kind = {"fit": lambda: args.model, "generate": lambda: _model_class_of(args.model_dir)}
            if args.command in kind:  # again, with the model's own defaults
                args = build_parser(kind[args.command]()).parse_args(argv)
            return int(args.func(args) or 0)
    except Exception as err:  # one line for bad input and for anything else (a CUDA error)
        lines = str(err).strip().splitlines()
        message = lines[0] if lines else repr(err)
        known = (ValueError, TypeError, OSError, FloatingPointError, ImportError, MemoryError)
        if not isinstance(err, known):
            message = f"{type(err).__name__}: {message}"
        print(f"sdd {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"sdd {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
