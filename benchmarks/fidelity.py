"""Fidelity harness: real-vs-real floor, scVI, the plain baseline and SDD recipes, side by side.

For each data set (raw counts in ``$SDD_SHARED_DATA/scrna/NAME.h5ad``; default
``../shared/data``): the paper's preprocessing (genes in >= 3 cells, cells with >= 10
genes, ``normalize_total`` 1e4, ``log1p``, ``--genes`` highly variable genes), at most
``--max-cells`` cells drawn at random, then one random split into a training half and a
held-out half (the same split and seeds for every row). Every generator trains on the
training half; every row is scored against the held-out half by
``sdd.tl.evaluate(held_out, generated, floor=True)``, which splits the held-out half
again into A and B and reports each metric for generated-vs-B next to A-vs-B: the
real-vs-real **floor** (same sample sizes, same metric code).

Rows
----
- ``floor``: held-out half A vs half B (what a perfect generator would score).
- ``scVI``: scvi-tools' ``SCVI`` with its defaults (ZINB, 10 latent dimensions, its
  default epochs) on the training half's raw counts; new cells: latent drawn from the
  prior N(0, I), library size of a random training cell, counts sampled from the ZINB
  likelihood, then ``normalize_total`` 1e4 + ``log1p`` like the real data.
- ``baseline``: plain Gaussian diffusion without sparsity bits (``sparsity_bits=False``),
  with the network and optimiser of ``--baseline-recipe``.
- SDD recipes (``RECIPES`` below), each trained ``--steps`` steps on the CPU.

Columns: sparsity gap (generated minus real zero fraction, percentage points), SCC / PCC
of gene means, per-gene zero-fraction MAE (pp), MMD² and scaled iLISI on a 50-PC joint
PCA, real-vs-generated AUC of logistic regression, random forest and kNN (0.5 = cannot
tell), train and generate seconds.

    python benchmarks/fidelity.py --datasets pbmc4k_top2000 --rows floor sdd small small-fill
    python benchmarks/fidelity.py --datasets cbmc_top2000 mouse_bladder_top2000 kang_pbmc_ctrl \\
        --rows floor scvi baseline paper default --steps 3000
    python benchmarks/fidelity.py --datasets pbmc4k_top2000 --rows floor default \
        --value-weights 0 0.25 0.5 0.75 1      # one model, several value calibrations
    python benchmarks/fidelity.py --steps 50 --max-cells 400 --sampling-steps 10   # smoke

Tuning happens on ``pbmc4k_top2000`` (also used by a test); the README reports the
others, which no test and no tuning run reads.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import TUNING_SETS, cached_scvi, load, split

import sdd

#: name -> (SDD constructor options, train options). "default" is the package's defaults,
#: fitted as ``sdd.tl.fit`` does (train, then ``calibrate``); ``"calibrate": True`` (or a
#: dict of ``calibrate`` arguments) in the train options calibrates after training (its
#: time counts as training time); ``"sampler"`` there is the sampler of ``generate``
#: (default: the calibration's, as in ``SDD.generate``).
RECIPES: dict[str, tuple[dict, dict]] = {
    "default": ({}, {"calibrate": True}),
    # the default until this release: the paper's zero encoding, calibration and
    # generation with DDIM-250 on 2,000 cells
    "previous-default": (
        {"zero_fill": "min"},
        {"calibrate": {"n_cells": 2000, "sampler": "ddim", "n_steps": 250}},
    ),
    "default-bits": ({}, {"calibrate": {"value_weight": 0.0}}),
    # conditional on the data set's cell types (``setup_anndata(labels_key=)``), generated
    # in the training composition (``generate``'s default for a conditional model)
    "default-labels": ({}, {"labels_key": "cell_type", "calibrate": True}),
    # the default before per-cell depths: per-gene thresholds only (cells keep the
    # network's depth), and the same model with no calibration at all
    "default-genes": ({}, {"calibrate": {"per_cell": False}}),
    "default-nototals": ({}, {"calibrate": {"match_totals": False}}),
    # the value half of a zero holds the gene's mean expressed value ("how much, if
    # expressed"), so bits the calibration turns on decode to a plausible value
    "default-fill": ({"zero_fill": "nonzero_mean"}, {"calibrate": True}),
    "default-fill-ddim50": (
        {"zero_fill": "nonzero_mean"},
        {"calibrate": {"sampler": "ddim", "n_steps": 50}, "n_steps": 50},
    ),
    "default-fill-ddim25": (
        {"zero_fill": "nonzero_mean"},
        {"calibrate": {"sampler": "ddim", "n_steps": 25}, "n_steps": 25},
    ),
    "uncalibrated": ({}, {}),
    # few-step samplers: calibrate and generate with DPM-Solver++(2M) in 10 / 25 steps
    "default-dpm10": ({}, {"calibrate": {"sampler": "dpm++2m", "n_steps": 10}, "n_steps": 10}),
    "default-dpm25": ({}, {"calibrate": {"sampler": "dpm++2m", "n_steps": 25}, "n_steps": 25}),
    "default-ddim50": ({}, {"calibrate": {"sampler": "ddim", "n_steps": 50}, "n_steps": 50}),
    "default-ddim25": ({}, {"calibrate": {"sampler": "ddim", "n_steps": 25}, "n_steps": 25}),
    "default-values1": ({}, {"calibrate": {"value_weight": 1.0}}),
    # the previous default: calibrate and generate with DDPM-250, half the value map
    "default-ddpm": ({}, {"calibrate": {"sampler": "ddpm", "value_weight": 0.5}}),
    "default-ddim": ({}, {"calibrate": {"sampler": "ddim", "value_weight": 0.5}}),
    # = "default" since DDIM with value_weight 0.75 became the calibration's default
    "default-ddim75": ({}, {"calibrate": {"sampler": "ddim", "value_weight": 0.75}}),
    "paper": (
        {"hidden": (1024, 512, 256), "zero_fill": "min", "depth_bins": 0},
        {"lr": 2e-4, "batch_size": 256},
    ),
    "paper-depth": ({"depth_bins": 8}, {}),
    "paper-cal": ({"depth_bins": 0}, {"calibrate": True}),
    "small": (
        {"hidden": (256, 128, 64), "depth_bins": 0, "zero_fill": "min"},
        {"lr": 1e-3, "batch_size": 128},
    ),
    "small-fill": (
        {"hidden": (256, 128, 64), "depth_bins": 0, "zero_fill": "nonzero_mean"},
        {"lr": 1e-3, "batch_size": 128},
    ),
    "paper-fill": (
        {"hidden": (1024, 512, 256), "depth_bins": 0, "zero_fill": "nonzero_mean"},
        {"lr": 2e-4, "batch_size": 256},
    ),
    "small-lr2": ({"hidden": (256, 128, 64), "depth_bins": 0}, {"lr": 2e-3, "batch_size": 128}),
    "mid": ({"hidden": (512, 256, 128), "depth_bins": 0}, {"lr": 1e-3, "batch_size": 128}),
    "small-v": (
        {"hidden": (256, 128, 64), "depth_bins": 0, "prediction": "v"},
        {"lr": 1e-3, "batch_size": 128},
    ),
    "mid-v": (
        {"hidden": (512, 256, 128), "depth_bins": 0, "prediction": "v"},
        {"lr": 1e-3, "batch_size": 128},
    ),
    "mid-vd": (
        {"hidden": (512, 256, 128), "depth_bins": 0, "prediction": "v-data"},
        {"lr": 1e-3, "batch_size": 128},
    ),
    "mid-cos": (
        {"hidden": (512, 256, 128), "depth_bins": 0},
        {"lr": 2e-3, "batch_size": 128, "lr_schedule": "cosine", "warmup_steps": 200},
    ),
    "mid-cos1": (
        {"hidden": (512, 256, 128), "depth_bins": 0},
        {"lr": 1e-3, "batch_size": 128, "lr_schedule": "cosine", "warmup_steps": 200},
    ),
    "mid-cos-nosc": (
        {"hidden": (512, 256, 128), "depth_bins": 0, "self_condition": False},
        {"lr": 2e-3, "batch_size": 128, "lr_schedule": "cosine", "warmup_steps": 200},
    ),
    "paper-v": (
        {"hidden": (1024, 512, 256), "depth_bins": 0, "prediction": "v"},
        {"lr": 2e-4, "batch_size": 256},
    ),
    "mid-fill": (
        {"hidden": (512, 256, 128), "depth_bins": 0, "zero_fill": "nonzero_mean"},
        {"lr": 5e-4, "batch_size": 128},
    ),
}

COLUMNS = {
    "gap_pp": "sparsity gap (pp)",
    "SCC": "SCC",
    "zero_fraction_mae": "zero-frac MAE (pp)",
    "gene_corr": "gene-gene corr",
    "AUC_logistic": "AUC logistic",
    "AUC_rf": "AUC RF (50 PCs)",
    "AUC": "AUC kNN",
    "LISI": "iLISI",
    "detected_w1": "detected W1",
    "total_w1": "total W1",
    "below_real_p1": "% < real p1",
    "AUC_rf_qc": "AUC RF (QC)",
}
"""Table columns: gene-level, then structure, then cell-level (sdd.tl.evaluate's names)."""

BEST = {
    "gap_pp": "0", "SCC": "1", "zero_fraction_mae": "0", "gene_corr": "1",
    "AUC_logistic": "0.5", "AUC_rf": "0.5", "AUC": "0.5", "LISI": "1", "detected_w1": "0",
    "total_w1": "0", "below_real_p1": "1", "AUC_rf_qc": "0.5",
}  # fmt: skip


def run_sdd(train, n_cells, recipe, args, *, bits=True):
    """Train one SDD model; yield ``(row suffix, cells, train s, generate s)``: one row, or
    with ``--value-weights`` one per weight (recalibrated each time) for calibrated
    recipes."""
    init, fit = RECIPES[recipe]
    init, fit = {**init, "sparsity_bits": bits}, dict(fit)
    train, labelled = with_labels(train, fit.pop("labels_key", None))
    calibrate = fit.pop("calibrate", False) if bits else False
    sampler = {"sampler": fit.pop("sampler")} if "sampler" in fit else {}
    sampler["n_steps"] = fit.pop("n_steps", args.sampling_steps)
    if not bits:
        init.pop("zero_fill", None)
    name = recipe if labelled else training_name(recipe, init, fit)
    model, trained = trained_model(train, init, fit, name if bits else f"{name}-nobits", args)
    options = calibrate if isinstance(calibrate, dict) else {}
    sweep = [(f" value_weight={w:g}", {**options, "value_weight": w}) for w in args.value_weights]
    for suffix, calibration in sweep if calibrate and sweep else [("", options)]:
        t0 = time.perf_counter()
        if calibrate:
            model.calibrate(
                execution=sdd.Execution(progress=False, accelerator=args.accelerator), **calibration
            )
        calibrated = time.perf_counter() - t0
        t0 = time.perf_counter()
        gen = model.generate(
            n_cells, random_state=args.seed, execution=sdd.Execution(progress=False, accelerator=args.accelerator),
            **sampler,
        )  # fmt: skip
        yield suffix, gen, trained + calibrated, time.perf_counter() - t0


def with_labels(train, labels_key: str | None):
    """``(data, conditional?)``: a copy of ``train`` set up with ``labels_key`` when one is
    given (the other rows keep the unconditional setup)."""
    if labels_key is None:
        return train, False
    if labels_key not in train.obs:
        raise SystemExit(f"this data set has no obs[{labels_key!r}] for a conditional row")
    train = train.copy()
    train.obs[labels_key] = train.obs[labels_key].astype(str).astype("category")
    sdd.SDD.setup_anndata(train, labels_key=labels_key)
    return train, True


def training_name(recipe: str, init: dict, fit: dict) -> str:
    """The first recipe that trains the same network the same way (recipes that differ only
    in calibration or sampling share one trained model under ``--model-dir``)."""
    for name, (other_init, other_fit) in RECIPES.items():
        other_fit = {
            k: v for k, v in other_fit.items() if k not in ("calibrate", "sampler", "n_steps")
        }
        if {**other_init, "sparsity_bits": init["sparsity_bits"]} == init and other_fit == fit:
            return name
    return recipe


def trained_model(train, init, fit, name, args):
    """A trained SDD model and its training seconds; with ``--model-dir``, saved there after
    training and loaded instead of trained when a model of the same data set, recipe,
    steps and seed is there already (so that several decodings of one model are compared
    without training it again)."""
    path = None
    if args.model_dir is not None:
        path = Path(args.model_dir) / f"{args.dataset}-{name}-{args.steps}-seed{args.seed}"
        seconds = path.with_name(path.name + ".train_seconds")
        if seconds.exists():
            return sdd.SDD.load(path, train), float(seconds.read_text())
    torch.manual_seed(args.seed)  # the network's initial weights
    model = sdd.SDD(train, **init)
    t0 = time.perf_counter()
    model.train(
        args.steps,
        random_state=args.seed,
        execution=sdd.Execution(progress=False, accelerator=args.accelerator),
        **fit,
    )
    trained = time.perf_counter() - t0
    if path is not None:
        model.save(path, overwrite=True)
        seconds.write_text(f"{trained:.1f}")
    return model, trained


def score(held_out, gen, seed) -> dict:
    table = sdd.tl.evaluate(held_out, gen, floor=True, random_state=seed)
    table = table[table["group"] == "all"].set_index("metric")
    out = {}
    for col in ("value", "floor"):
        v = table[col].to_dict()
        v["gap_pp"] = 100 * (v["sparsity_generated"] - v["sparsity_real"])
        out[col] = v
    return out


def fmt(v: float, key: str) -> str:
    if key == "gap_pp":
        return f"{v:+.2f}"
    if key == "below_real_p1":
        return f"{100 * v:.1f}"
    if key in ("zero_fraction_mae", "detected_w1", "total_w1"):
        return f"{v:.2f}"
    return f"{v:.3f}"


def print_table(name: str, rows: dict, timings: dict) -> None:
    print(f"\n### {name}\n")
    head = " | ".join(COLUMNS.values())
    print(f"| row | {head} | train (s) | generate (s) |")
    print("|---" + "|---:" * (len(COLUMNS) + 2) + "|")
    best = " | ".join(BEST[k] for k in COLUMNS)
    print(f"| *best* | {best} | | |")
    for row, values in rows.items():
        cells = " | ".join(fmt(values.get(k, np.nan), k) for k in COLUMNS)
        t = timings.get(row, (None, None))
        ts = " | ".join("" if x is None else f"{x:.0f}" for x in t)
        print(f"| {row} | {cells} | {ts} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["pbmc4k_top2000"])
    p.add_argument(
        "--rows", nargs="+", default=["floor", "scvi", "baseline", "paper", "default"],
        help=f"floor, scvi, baseline and recipes {list(RECIPES)}",
    )  # fmt: skip
    p.add_argument(
        "--baseline-recipe", default="default", help="network and optimiser of the baseline row"
    )
    p.add_argument("--genes", type=int, default=1000)
    p.add_argument("--max-cells", type=int, default=3000)
    p.add_argument("--steps", type=int, default=3000, help="SDD training steps per row")
    p.add_argument("--sampling-steps", type=int, default=None, help="default: the model's")
    p.add_argument("--scvi-epochs", type=int, default=None, help="default: scVI's default")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--accelerator", default="cpu", help="for SDD rows: cpu, cuda or auto")
    p.add_argument(
        "--value-weights", nargs="+", type=float, default=[],
        help="calibrated recipes: one row per calibrate(value_weight=) from the same model",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--train-only", action="store_true",
        help="with --model-dir: train and save the rows' models (and scVI's cells), no scores",
    )  # fmt: skip
    p.add_argument(
        "--model-dir", default=None,
        help="save trained SDD models here and reuse them on later runs (same data, recipe, "
        "steps, seed)",
    )  # fmt: skip
    p.add_argument("--csv", default=None, help="append every row to this CSV file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = set(args.rows) - {"floor", "scvi", "baseline", *RECIPES}
    if unknown:
        raise SystemExit(f"unknown rows {sorted(unknown)}")
    steps = args.sampling_steps or "the model's (calibrated: the calibration's; else DDPM-250)"
    print(
        f"steps {args.steps}, sampling steps {steps} (calibrated rows: the "
        f"calibration's sampler, others DDPM), genes {args.genes}, "
        f"max cells {args.max_cells}, seed {args.seed}, torch threads {torch.get_num_threads()}"
    )
    records = []
    for name in args.datasets:
        adata = load(name, args.genes, args.max_cells, args.seed)
        train, held_out = split(adata, args.seed)
        args.dataset = name
        sdd.SDD.setup_anndata(train)
        n = held_out.n_obs
        role = "tuning set" if name in TUNING_SETS else "held out from tuning"
        print(
            f"{name} ({role}): {adata.n_obs} cells x {adata.n_vars} genes, train {train.n_obs}, "
            f"held-out {n} ({sdd.metrics.zero_fraction(held_out.X):.2%} zeros)", flush=True
        )  # fmt: skip
        rows, timings = {}, {}
        if args.train_only:
            for row in args.rows:
                if row == "scvi":
                    cached_scvi(train, n, args)
                elif row in RECIPES:
                    init, fit = RECIPES[row]
                    fit = {
                        k: v for k, v in fit.items() if k not in ("calibrate", "sampler", "n_steps")
                    }
                    data, labelled = with_labels(train, fit.pop("labels_key", None))
                    init = {**init, "sparsity_bits": True}
                    name = row if labelled else training_name(row, init, fit)
                    trained_model(data, init, fit, name, args)
                print(f"  {row}: trained", flush=True)
            continue
        for row in args.rows:
            if row == "floor":
                continue
            if row == "scvi":
                runs = [("", *cached_scvi(train, n, args))]
            elif row == "baseline":
                runs = run_sdd(train, n, args.baseline_recipe, args, bits=False)
            else:
                runs = run_sdd(train, n, row, args)
            for suffix, gen, tr, ge in runs:
                s = score(held_out, gen, args.seed)
                label = row + suffix
                rows.setdefault("floor (real vs real)", s["floor"])
                rows[label], timings[label] = s["value"], (tr, ge)
                print(f"  {label}: train {tr:.0f} s, generate {ge:.0f} s", flush=True)
                records.append(
                    {"dataset": name, "row": label, **s["value"], "train_s": tr, "gen_s": ge}
                )
        if "floor" in args.rows and "floor (real vs real)" in rows:
            records.append({"dataset": name, "row": "floor", **rows["floor (real vs real)"]})
        else:
            rows.pop("floor (real vs real)", None)
        rows = dict(sorted(rows.items(), key=lambda kv: not kv[0].startswith("floor")))
        print_table(name, rows, timings)
        if args.csv:
            frame = pd.DataFrame(records)
            header = not Path(args.csv).exists()
            frame.to_csv(args.csv, mode="a", header=header, index=False)
            records = []


if __name__ == "__main__":
    main()
