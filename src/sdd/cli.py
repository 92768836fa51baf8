"""Command line interface: ``sdd fit | generate | evaluate | info | demo``.

Examples
--------
Train on the log1p-normalised expression in ``data.h5ad``, generate 10,000 cells and
compare them with the real ones::

    sdd fit data.h5ad --labels-key cell_type --max-steps 10000 --out model_dir
    sdd generate model_dir -n 10000 -o generated.h5ad
    sdd evaluate data.h5ad generated.h5ad --labels-key cell_type

Raw counts can be normalised on the fly with ``--normalize`` (``normalize_total`` to
10,000 counts per cell, then ``log1p``); pass it to ``fit`` and ``evaluate`` alike so the
real cells are compared in the units the model was trained on.

Every command prints a one-line message and exits with a non-zero status on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .io import atomic_path, check_output_path, write_csv, write_h5ad

__all__ = ["main", "build_parser"]

#: Exit status for bad input (a file that does not exist, an unknown layer, ...).
EXIT_BAD_INPUT = 1
#: Exit status after Ctrl-C.
EXIT_INTERRUPTED = 130

_MODEL_KINDS = {"sdd": "SDD", "blackout": "SDDBlackout"}


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
    if not isinstance(config, dict) or not isinstance(config.get("model_class"), str):
        raise CLIError(f"{config_file} does not name a model class.")
    return config["model_class"]


def _load_model(model_dir: str | Path):
    import sdd

    name = _model_class_of(model_dir)
    cls = getattr(sdd, name, None)
    if cls is None or not hasattr(cls, "load"):
        raise CLIError(f"{str(model_dir)!r} holds a {name!r} model, unknown to this sdd version.")
    return cls.load(model_dir)


def _parse_labels(items: Sequence[str] | None, model: Any) -> Any:
    """``--label VALUE`` (for ``labels_key``) or ``--label KEY=VALUE`` (any condition)."""
    if not items:
        return None
    categories = model.categories_
    if not categories:
        raise CLIError("--label was given but the model was trained without labels.")
    if isinstance(categories, list):  # SDDImage: one list of class labels
        if len(items) != 1:
            raise CLIError("image models take one --label value.")
        by_text = {str(c): c for c in categories}
        if items[0] not in by_text:
            raise CLIError(f"unknown label {items[0]!r}; known labels: {list(by_text)}.")
        return by_text[items[0]]
    labels: dict[str, str] = {}
    default_key = model.setup_args_.get("labels_key") or next(iter(categories))
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in categories:
            key, value = default_key, item
        if key in labels:
            raise CLIError(f"--label given twice for {key!r}.")
        if value not in categories[key]:
            raise CLIError(f"unknown {key!r} label {value!r}; known labels: {categories[key]}.")
        labels[key] = value
    return labels


def _format_table(table) -> str:
    import pandas as pd

    with pd.option_context("display.max_rows", None, "display.max_columns", None):
        return table.to_string(
            index=not isinstance(table.index, pd.RangeIndex),
            float_format=lambda v: f"{v:.4g}",
        )


# ------------------------------------------------------------------------ commands
def _cmd_fit(args: argparse.Namespace) -> int:
    import sdd

    if args.max_steps < 1:
        raise CLIError(f"--max-steps must be a positive integer, got {args.max_steps}.")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be a positive integer, got {args.batch_size}.")
    if args.hidden is not None and any(h < 1 for h in args.hidden):
        raise CLIError(f"--hidden widths must be positive, got {args.hidden}.")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CLIError(f"{str(out)!r} already exists; pass --overwrite to replace it.")
    adata = _read_h5ad(args.data)
    _log(f"read {args.data}: {adata.n_obs} cells x {adata.n_vars} genes", quiet=args.quiet)
    if args.normalize:
        if args.model == "blackout":
            raise CLIError("--normalize does not apply to --model blackout (it models raw counts).")
        if args.layer is not None and args.layer not in adata.layers:
            raise CLIError(f"layer {args.layer!r} not found (available: {list(adata.layers)}).")
        _normalize(adata, args.layer)
    cls = getattr(sdd, _MODEL_KINDS[args.model])
    cls.setup_anndata(
        adata,
        layer=args.layer,
        labels_key=args.labels_key,
        categorical_covariate_keys=args.covariate_keys,
    )
    model_kwargs: dict[str, Any] = {}
    if args.hidden is not None:
        model_kwargs["hidden"] = tuple(args.hidden)
    if args.emb_dim is not None:
        model_kwargs["emb_dim"] = args.emb_dim
    if args.model == "sdd":
        model_kwargs["sparsity_bits"] = not args.no_sparsity_bits
    elif args.no_sparsity_bits:
        raise CLIError("--no-sparsity-bits only applies to --model sdd.")
    model = cls(adata, **model_kwargs)
    _log(repr(model), quiet=args.quiet)
    start = time.perf_counter()
    model.train(
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        accelerator=args.accelerator,
        random_state=args.seed,
        progress=not args.quiet,
    )
    model.save(out, overwrite=args.overwrite)
    final = float(model.history_["loss"].tail(100).mean())
    _log(
        f"trained {args.max_steps} steps in {time.perf_counter() - start:.1f} s "
        f"(final loss {final:.4g}); saved {out}",
        quiet=args.quiet,
    )
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    if args.n_cells < 1:
        raise CLIError(f"-n must be a positive integer, got {args.n_cells}.")
    if args.n_steps is not None and args.n_steps < 1:
        raise CLIError(f"--n-steps must be a positive integer, got {args.n_steps}.")
    kind = _model_class_of(args.model_dir)
    image = kind == "SDDImage"
    out = _check_output(
        args.output, overwrite=args.overwrite, suffixes=(".npz",) if image else (".h5ad",)
    )
    model = _load_model(args.model_dir)
    if not model.is_trained_:
        raise CLIError(f"the model in {args.model_dir!r} is not trained.")
    kwargs: dict[str, Any] = {
        "random_state": args.seed,
        "accelerator": args.accelerator,
        "progress": not args.quiet,
        "guidance_scale": args.guidance_scale,
        "labels": _parse_labels(args.label, model),
    }
    if args.batch_size is not None:
        kwargs["batch_size"] = args.batch_size
    if kind == "SDDBlackout":
        if args.sampler is not None:
            raise CLIError("--sampler does not apply to Blackout models (they use a bridge).")
        kwargs["n_steps"] = args.n_steps
    else:
        kwargs["sampler"] = args.sampler or "ddpm"
        kwargs["n_steps"] = args.n_steps if args.n_steps is not None else 250
        kwargs["store_dense"] = not args.no_dense
    start = time.perf_counter()
    result = model.generate(args.n_cells, **kwargs)
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
        zeros = 1.0 - float(result.sparsity_bits.mean())
    else:
        write_h5ad(result, out, overwrite=args.overwrite)
        zeros = 1.0 - result.X.nnz / (result.n_obs * result.n_vars)
    _log(
        f"generated {args.n_cells} {'images' if image else 'cells'} "
        f"({zeros:.2%} exact zeros) in {time.perf_counter() - start:.1f} s; wrote {out}",
        quiet=args.quiet,
    )
    return 0


def _basic_metrics(real, generated):
    """Per-gene-mean SCC/PCC and sparsity; used only when ``sdd.tl.evaluate`` is missing."""
    import numpy as np
    import pandas as pd
    from scipy.stats import pearsonr, spearmanr

    def means(x) -> np.ndarray:
        return np.asarray(x.mean(axis=0), dtype=np.float64).ravel()

    def zero_fraction(x) -> float:
        nnz = x.nnz if hasattr(x, "nnz") else np.count_nonzero(x)
        return 1.0 - nnz / (x.shape[0] * x.shape[1])

    a, b = means(real.X), means(generated.X)
    rows = [
        ("SCC", float(spearmanr(a, b)[0])),
        ("PCC", float(pearsonr(a, b)[0])),
        ("sparsity_real", zero_fraction(real.X)),
        ("sparsity_generated", zero_fraction(generated.X)),
    ]
    return pd.DataFrame(rows, columns=["metric", "value"])


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import sdd

    if args.n_cells is not None and args.n_cells < 1:
        raise CLIError(f"--n-cells must be a positive integer, got {args.n_cells}.")
    if args.csv is not None:
        _check_output(args.csv, overwrite=args.overwrite, suffixes=(".csv",))
    real = _read_h5ad(args.real, "real data")
    generated = _read_h5ad(args.generated, "generated data")
    if args.layer is not None and args.layer not in real.layers:
        raise CLIError(
            f"layer {args.layer!r} not found in {args.real!r} (available: {list(real.layers)})."
        )
    if args.normalize:
        _normalize(real, args.layer)
    if args.labels_key is not None:
        for name, data in (("real", real), ("generated", generated)):
            if args.labels_key not in data.obs:
                raise CLIError(
                    f"--labels-key {args.labels_key!r} is not an obs column of the {name} data "
                    f"(columns: {list(data.obs.columns)})."
                )
    genes_r, genes_g = set(map(str, real.var_names)), set(map(str, generated.var_names))
    if genes_r != genes_g:
        shared = genes_r & genes_g
        if not shared:
            raise CLIError("the real and generated data share no genes (var_names).")
        if not args.align_genes:
            raise CLIError(
                f"gene mismatch: real has {len(genes_r)} genes, generated {len(genes_g)}, "
                f"{len(shared)} shared; pass --align-genes to compare the shared ones."
            )
    evaluate = getattr(getattr(sdd, "tl", None), "evaluate", None)
    if evaluate is not None:
        kwargs: dict[str, Any] = {
            "labels_key": args.labels_key,
            "layer": args.layer,
            "align_genes": args.align_genes,
            "random_state": args.seed,
        }
        if args.n_cells is not None:
            kwargs["n_cells"] = args.n_cells
        table = evaluate(real, generated, **kwargs)
    else:  # pragma: no cover - older sdd without sdd.tl.evaluate
        _log("note: sdd.tl.evaluate is not available; printing basic metrics", quiet=args.quiet)
        if args.layer is not None:
            real.X = real.layers[args.layer]
        keep = [g for g in map(str, real.var_names) if g in genes_g]
        table = _basic_metrics(real[:, keep], generated[:, keep])
    print(_format_table(_wide(table)))
    if args.csv is not None:
        write_csv(table, args.csv, overwrite=args.overwrite, index=False)
        _log(f"wrote {args.csv} (one row per group and metric)", quiet=args.quiet)
    return 0


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
    model = _load_model(args.model_dir)
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


def build_parser() -> argparse.ArgumentParser:
    """The ``sdd`` argument parser (sub-commands ``fit``, ``generate``, ``evaluate``, ...)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="sdd",
        description="Sparse Data Diffusion: diffusion models that generate exact zeros.",
        epilog="Run `sdd COMMAND --help` for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"sdd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fmt = _DefaultsFormatter

    fit = sub.add_parser(
        "fit",
        help="train a model on an .h5ad file and save it",
        description="Train SDD on cells x genes in an .h5ad file and save the model directory "
        "(model.pt + config.json). Values must be non-negative (usually log1p-normalised "
        "expression; pass --normalize for raw counts).",
        formatter_class=fmt,
    )
    fit.add_argument("data", help="training data (.h5ad)")
    fit.add_argument("--out", "-o", required=True, help="model directory to write")
    fit.add_argument("--layer", default=None, help="layer to train on instead of X")
    fit.add_argument("--labels-key", default=None, help="obs column to condition on")
    fit.add_argument(
        "--covariate-keys", nargs="+", default=None, help="further categorical obs columns"
    )
    fit.add_argument(
        "--normalize",
        action="store_true",
        help="normalize_total(1e4) + log1p the data first (for raw counts)",
    )
    fit.add_argument(
        "--model",
        choices=sorted(_MODEL_KINDS),
        default="sdd",
        help="sdd: Gaussian diffusion with sparsity bits; blackout: count diffusion on raw "
        "integer counts",
    )
    fit.add_argument(
        "--no-sparsity-bits",
        action="store_true",
        help="train the plain diffusion baseline (no sparsity bits)",
    )
    fit.add_argument("--max-steps", type=int, default=10_000, help="optimiser steps")
    fit.add_argument("--batch-size", type=int, default=256, help="cells per step")
    fit.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate")
    fit.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=None,
        help="MLP encoder widths, e.g. --hidden 1024 512 256 (model default if omitted)",
    )
    fit.add_argument("--emb-dim", type=int, default=None, help="time/label embedding size")
    fit.add_argument("--seed", type=int, default=0, help="random seed")
    fit.add_argument(
        "--accelerator", default="auto", help="auto, cpu, cuda or mps (auto picks a GPU)"
    )
    fit.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    fit.add_argument("--quiet", "-q", action="store_true", help="no progress bars or messages")
    fit.set_defaults(func=_cmd_fit)

    gen = sub.add_parser(
        "generate",
        help="generate cells (or images) from a saved model",
        description="Generate from a model directory written by `sdd fit` (or model.save). "
        "Cell models write an .h5ad (X CSR with exact zeros, layers sparsity_bits/dense/"
        "sb_logits); image models write an .npz (images, sparsity_bits, ...).",
        formatter_class=fmt,
    )
    gen.add_argument("model_dir", help="saved model directory")
    gen.add_argument("-n", "--n-cells", type=int, default=10_000, help="number of cells")
    gen.add_argument("-o", "--output", required=True, help="output .h5ad (.npz for images)")
    gen.add_argument(
        "--sampler",
        choices=["ddpm", "ddim"],
        default=None,
        help="sampler (default ddpm; not for Blackout models)",
    )
    gen.add_argument(
        "--n-steps",
        type=int,
        default=None,
        help="reverse steps (default 250; all observation times for Blackout)",
    )
    gen.add_argument("--seed", type=int, default=0, help="random seed")
    gen.add_argument(
        "--label",
        action="append",
        default=None,
        metavar="[KEY=]VALUE",
        help="condition on a label (repeat for several covariates)",
    )
    gen.add_argument(
        "--guidance-scale", type=float, default=0.0, help="classifier-free guidance weight"
    )
    gen.add_argument("--batch-size", type=int, default=None, help="cells sampled at once")
    gen.add_argument(
        "--no-dense", action="store_true", help="skip the dense and sb_logits layers (smaller)"
    )
    gen.add_argument("--accelerator", default="auto", help="auto, cpu, cuda or mps")
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
    ev.add_argument("--n-cells", type=int, default=None, help="subsample each set to this size")
    ev.add_argument("--seed", type=int, default=0, help="random seed")
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
    return parser


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
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(None if argv is None else list(argv))
        if args.command == "demo":
            args.demo_args = extra
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exit_:  # --help, --version and usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(args.command)
            return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError, FloatingPointError, ImportError, MemoryError) as err:
        lines = str(err).strip().splitlines()
        message = lines[0] if lines else repr(err)
        print(f"sdd {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"sdd {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
