"""Benchmark pages from benchmark output: no number in the docs is typed by hand.

Reads the CSV that ``fidelity.py --csv`` appends to (kept in ``docs/benchmarks/data/``
with the exact command that wrote it, in a ``.cmd`` file beside it) and writes

- ``docs/benchmarks/fidelity.md``: every data set and row, each table with its best
  values, the real-vs-real floor and scVI;
- the headline table of ``README.md`` (between ``<!-- headline:start -->`` and
  ``<!-- headline:end -->``): floor, scVI and the default on the held-out data sets;
- ``docs/benchmarks/ablations.md``: each other CSV of ``ABLATIONS`` (same columns, its
  own ``.cmd``), with the floor and default rows of the same data set beside it;
- ``docs/benchmarks/speed.md``: the printed tables of ``speed.py`` and ``fit_cost.py``
  kept in ``SPEED``, each with its ``.cmd``.

    python benchmarks/report.py            # rewrite both from docs/benchmarks/data/
    python benchmarks/report.py --check    # exit 1 if either is out of date (a test runs it)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "benchmarks" / "data"
PAGE = ROOT / "docs" / "benchmarks" / "fidelity.md"
ABLATION_PAGE = ROOT / "docs" / "benchmarks" / "ablations.md"
SPEED_PAGE = ROOT / "docs" / "benchmarks" / "speed.md"
SPEED = {  # script output (Markdown tables) in DATA: (title, what it measures)
    "speed_generate.txt": (
        "Generation: the default sampler against DDPM-250 and DDIM-250",
        "`benchmarks/speed.py --sections generate`: 10,000 cells of 1,000 genes with "
        "DDPM-250 (an uncalibrated model's sampler), DDIM-250 (the calibrated default "
        "before) and the default (`SDD.calibrate`'s sampler), side by side in one process, "
        "with the speed-up over DDIM-250; the default also for 100,000 cells and for the "
        "calibration's cells. Time does not depend on the weights (an untrained network "
        "of the default architecture).",
    ),
    "curves_train.txt": (
        "Training: the package against a bare torch loop",
        "`benchmarks/curves.py --sections train`: seconds per step of `model.train()` "
        "against the shortest torch loop of the same network (forward, loss, backward, "
        "fused Adam on one fixed batch: no loader, EMA or checks), alternating, medians "
        "over repeats; the steps of a repeat cover whole EMA windows (4 steps).",
    ),
    "curves_train_malloc.txt": (
        "Training against a bare loop, with glibc's mmap threshold raised",
        "The same command with `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` set "
        "(Linux, glibc): tensors of tens of MB then reuse freed heap memory instead of "
        "fresh pages from the kernel each step. Both loops get faster; the ratio is the "
        "question here, and it is noisy over three repeats.",
    ),
    "fit_cost.txt": (
        "A first `sdd.tl.fit`: training and calibration",
        "`benchmarks/fit_cost.py`: one `sdd.tl.fit(max_steps=300)` call on scanpy's "
        "bundled `pbmc68k_reduced`, its training and its calibration timed apart.",
    ),
}
ABLATIONS = {  # CSV in DATA: (title, what it asks)
    "steps.csv": (
        "Training steps: does realism keep improving?",
        "The same recipe trained 2,000 / 4,000 / 8,000 steps on the tuning set, each "
        "calibrated and scored as the default row.",
    ),
    "training_loop.csv": (
        "The training loop: EMA every 4th step and the minibatch buffer (tuning set)",
        "The default recipe trained again by the training loop that moves the EMA every "
        "4th step (the four steps' decays compounded) and encodes each minibatch into "
        "the previous one's buffer, against the default row trained by the loop before "
        "(EMA every step): same split, seeds, steps and calibration.",
    ),
    "samplers.csv": (
        "Few-step samplers (previous default model)",
        "The previous default model (`zero_fill='min'`), calibrated and sampled with "
        "DPM-Solver++(2M) in 25 or 10 steps, or DDIM in 50, against its DDIM-250 (the "
        "previous default row).",
    ),
    "zero_fill.csv": (
        "The value half of a zero entry",
        'The default recipe with `SDD(zero_fill="nonzero_mean")`: the value half of a '
        "zero holds the gene's mean expressed value instead of the bottom of the range, so "
        "it models *how much, if expressed* and bits that calibration turns on decode to "
        "a plausible value.",
    ),
    "conditioning.csv": (
        "Adaptive LayerNorm: a depth condition the network cannot normalise away",
        "The default recipe with adaptive LayerNorm blocks (`SDD(conditioning='adaln')` "
        "at commit e19df3a; removed from `SDD` again, `sdd.nn.SkipMLP` keeps it): the "
        "embedding of time, labels and depth bin scales and shifts every MLP block after "
        "its LayerNorm (zero-initialised) instead of being added before it (scDiffusion's block), trained and scored like the "
        "default row of the same run. Decided on the tuning set by a rule written before any "
        "score was seen (both forests lower, iLISI not lower by more than 0.02, SCC not lower "
        "by more than 0.005); the held-out model trained before the rule failed is reported.",
    ),
    "labels.csv": (
        "Conditional generation by cell type, when the data set has cell types",
        "The default recipe set up with the data set's cell types "
        "(`SDD.setup_anndata(adata, labels_key='cell_type')`), calibrated as `sdd.tl.fit` "
        "does and generated in the training composition (`generate`'s default for a "
        "conditional model); the label of each new cell also picks the training cell its "
        "depth is drawn from. Decided on the tuning set by a rule written before any score "
        "was seen, against the default retrained in the same run (*default, same run*): "
        "both forests lower, iLISI not lower by more than 0.02, SCC not lower by more "
        "than 0.005. Held-out rows (not measured yet): the conditional model with its floor "
        "and scVI of the same run.",
    ),
    "scale_condition.csv": (
        "A second per-cell condition (negative result)",
        "The network also conditioned on bins of each cell's mean expressed value "
        "(total over depth), drawn at generation with the depth from one training cell "
        "(`SDD(scale_bins=4)`, removed again).",
    ),
}
README = ROOT / "README.md"
START, END = "<!-- headline:start -->", "<!-- headline:end -->"
TUNING_SETS = ("pbmc4k_top2000",)

COLUMNS = {  # metric: (header, best, format)
    "gap_pp": ("sparsity gap (pp)", "0", "{:+.2f}"),
    "SCC": ("SCC", "1", "{:.3f}"),
    "zero_fraction_mae": ("zero-frac MAE (pp)", "0", "{:.2f}"),
    "gene_corr": ("gene-gene corr", "1", "{:.3f}"),
    "AUC_logistic": ("AUC logistic", "0.5", "{:.3f}"),
    "AUC_rf": ("AUC RF (50 PCs)", "0.5", "{:.3f}"),
    "AUC": ("AUC kNN", "0.5", "{:.3f}"),
    "LISI": ("iLISI", "1", "{:.3f}"),
    "detected_w1": ("detected genes W1", "0", "{:.1f}"),
    "total_w1": ("total W1", "0", "{:.1f}"),
    "below_real_p1": ("% cells < real p1", "1", "{:.1f}"),
    "AUC_rf_qc": ("AUC RF (3 QC numbers)", "0.5", "{:.3f}"),
}
HEADLINE = (
    "SCC",
    "zero_fraction_mae",
    "AUC_rf",
    "LISI",
    "detected_w1",
    "below_real_p1",
    "AUC_rf_qc",
)
ROW_NAMES = {
    "floor": "real vs real (floor)",
    "scvi": "scVI (defaults)",
    "default": "SDD (default)",
    "previous-default": "SDD, previous default (zero_fill='min', DDIM-250)",
    "default-genes": "SDD, per-gene thresholds only (previous default)",
    "uncalibrated": "SDD, no calibration (the network alone)",
    "default-scale4": "SDD + mean-value condition (scale_bins=4)",
    "default-dpm25": "SDD, DPM-Solver++ 25 steps",
    "default-dpm10": "SDD, DPM-Solver++ 10 steps",
    "default-ddim50": "SDD, DDIM 50 steps",
    "default-ddim25": "SDD, DDIM 25 steps",
    "default-fill": "SDD, zero_fill='nonzero_mean'",
    "default-adaln": "SDD, adaptive LayerNorm blocks",
    "default-labels": "SDD, conditioned on cell types (labels_key)",
    "default-fill-ddim50": "SDD, zero_fill='nonzero_mean', DDIM 50 steps",
    "default-fill-ddim25": "SDD, zero_fill='nonzero_mean', DDIM 25 steps",
    "default-ema4": "SDD default, trained with the EMA every 4th step",
    "ddim-25": "SDD default (DDIM-25)",
    "ddim-250": "SDD, DDIM-250",
}
NOISE = {  # benchmarks/samplers.py --csv: one row per sampler and seed; (title, text)
    "sampler_noise.csv": (
        "Sampling noise: few-step samplers against DDIM-250 (tuning set)",
        "One trained model of the default recipe, calibrated and sampled with each sampler "
        "and seed (how the seeds were used: the first line of the command below), scored "
        "against the same held-out half.",
    ),
    "sampler_noise_held_out.csv": (
        "The default sampler against DDIM-250 on the held-out sets",
        "The default model of each held-out set calibrated and sampled with DDIM-250 and "
        "with the default (DDIM-25), two seeds each, scored against the held-out half by "
        "the same call as the floor (real vs real) and scVI rows. The last line compares "
        "the default's mean with DDIM-250's: *better* (closer to the best value), *within "
        "noise* (farther by at most the two half-ranges together) or *worse*.",
    ),
    "calibration_cells.csv": (
        "Calibration cells: 1,500 against 2,000 (tuning set)",
        "The default model calibrated on 2,000 or 1,500 generated cells (DDIM-25), two "
        "seeds each: the choice of `calibrate()`'s default number of cells.",
    ),
}
DEFAULT_SAMPLER, REFERENCE_SAMPLER = "ddim-25", "ddim-250"  # SDD.calibrate's default; before
CALIBRATION = "calibration_cost.csv"  # benchmarks/calibration_cost.py --csv


def _frame(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame["gap_pp"] = 100 * (frame["sparsity_generated"] - frame["sparsity_real"])
    frame["below_real_p1"] = 100 * frame["below_real_p1"]
    return frame.drop_duplicates(["dataset", "row"], keep="last")


def _table(rows: pd.DataFrame, columns: list[str], names: dict[str, str]) -> list[str]:
    lines = ["| row | " + " | ".join(COLUMNS[c][0] for c in columns) + " |"]
    lines.append("|---" + "|---:" * len(columns) + "|")
    lines.append("| *best* | " + " | ".join(COLUMNS[c][1] for c in columns) + " |")
    first = ("floor", "scvi", "default", "previous-default")
    order = sorted(rows["row"], key=lambda r: (first.index(r) if r in first else len(first), r))
    for row in order:
        values = rows[rows["row"] == row].iloc[0]
        cells = [
            "" if pd.isna(values.get(c, np.nan)) else COLUMNS[c][2].format(values[c])
            for c in columns
        ]
        lines.append(f"| {names.get(row, row)} | " + " | ".join(cells) + " |")
    return lines


def page(frame: pd.DataFrame, command: str) -> str:
    lines = [
        "# Fidelity on held-out data",
        "",
        "Generated by `python benchmarks/report.py` from the output of:",
        "",
        "```text",
        command.strip(),
        "```",
        "",
        "Each data set: the paper's preprocessing (1000 highly variable genes), 3,000 cells "
        "split in two halves; every generator trains on one half and is scored against "
        "the other by `sdd.tl.evaluate(held_out, generated, floor=True)`, beside the floor "
        "(two halves of the held-out cells scored by the same code) and scVI trained on "
        "the same half. `pbmc4k_top2000` is the tuning set; the others are held out from "
        "every choice of settings.",
        "",
        "The default's calibration copies training statistics into the output (each "
        "cell's depth drawn from a training cell, each gene's detection rate, value "
        "quantiles): the columns it fixes by construction (`detected genes W1`, "
        "`% cells < real p1`, the zero fractions) show the feature, not what the network "
        "learned. The row *no calibration* is the network alone.",
    ]
    for dataset, rows in frame.groupby("dataset", sort=False):
        role = "tuning set" if dataset in TUNING_SETS else "held out"
        lines += ["", f"## {dataset} ({role})", ""]
        lines += _table(rows, list(COLUMNS), ROW_NAMES)
    return "\n".join(lines) + "\n"


def headline(frame: pd.DataFrame) -> str:
    held_out = frame[~frame["dataset"].isin(TUNING_SETS)]
    lines = []
    for dataset, rows in held_out.groupby("dataset", sort=False):
        sdd_row = "default" if (rows["row"] == "default").any() else "previous-default"
        rows = rows[rows["row"].isin(["floor", "scvi", sdd_row])]
        names = {k: f"{dataset}: {v}" for k, v in ROW_NAMES.items()}
        table = _table(rows, list(HEADLINE), names)
        lines += table if not lines else table[3:]
    return "\n".join(lines)


def _section(title: str, text: str, data: Path) -> list[str]:
    """A page section's head: title, what it measures and the command in ``data``'s
    ``.cmd`` file (the file that wrote ``data``)."""
    command = data.with_suffix(".cmd").read_text().strip()
    return ["", f"## {title}", "", text, "", "```text", command, "```"]


def ablations(frame: pd.DataFrame) -> str:
    lines = [
        "# Ablations",
        "",
        "Generated by `python benchmarks/report.py` from the CSV files named in each "
        "section (in `docs/benchmarks/data/`, each with the command that wrote it in a "
        "`.cmd` file beside it). The *floor*, *scVI* and *SDD (default)* rows are those of "
        "the same data set on the [fidelity page](fidelity.md).",
    ]
    for name, (title, text) in ABLATIONS.items():
        path = DATA / name
        if not path.exists():
            continue
        rows = _frame(path)
        lines += _section(title, text, path)
        for dataset, part in rows.groupby("dataset", sort=False):
            reference = frame[
                (frame["dataset"] == dataset)
                & frame["row"].isin(["floor", "scvi", "default", "previous-default"])
            ]
            lines += ["", f"### {dataset}", ""]
            lines += _table(pd.concat([reference, part]), list(COLUMNS), ROW_NAMES)
    for name, (title, text) in NOISE.items():
        if (DATA / name).exists():
            lines += noise(DATA / name, title, text)
    if (DATA / CALIBRATION).exists():
        lines += calibration(DATA / CALIBRATION)
    return "\n".join(lines) + "\n"


def calibration(path: Path) -> list[str]:
    """How many generated cells the calibration needs (``calibration_cost.py``)."""
    frame = pd.read_csv(path)
    first = frame.iloc[0]
    text = (
        "One trained model calibrated with each setting and compared with a reference "
        f"fit ({int(first['cells'])} cells, {first['sampler'].upper()}-{int(first['steps'])}, "
        "another seed): the per-gene offsets (mean absolute difference over the genes "
        "both fits can move, in units of the reference offsets' standard deviation) "
        "and the value map (mean absolute difference of the mapped quantiles, "
        "log-expression units). The first row is the reference setting with another "
        "seed: the noise."
    )  # fmt: skip
    lines = _section("Calibration: cells and sampler", text, path) + [
        "",
        "| cells | sampler | seconds | time vs reference | offsets | value map |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for _, r in frame.iterrows():
        lines.append(
            f"| {int(r['cells'])} | {r['sampler'].upper()}-{int(r['steps'])} | "
            f"{r['seconds']:.1f} | {r['time vs reference']:.2f} | {r['offsets']:.3f} | "
            f"{r['value map']:.3f} |"
        )
    return lines


def noise(path: Path, title: str, text: str) -> list[str]:
    """Mean and half-range over sampling seeds of each sampler (``samplers.py``)."""
    frame = pd.read_csv(path)
    frame = frame.assign(below_real_p1=100 * frame["below_real_p1"])
    columns = [c for c in COLUMNS if c in frame.columns]
    lines = _section(
        title,
        text + " Each cell: mean over the seeds ± half their range, the noise a difference "
        "between samplers must exceed; `generate s` is the time of the held-out number of "
        "cells on the same machine in the same run.",
        path,
    )
    for dataset, part in frame.groupby("dataset", sort=False):
        grouped = part.groupby("sampler", sort=False)
        seeds = ", ".join(str(s) for s in sorted(part["seed"].unique()))
        lines += ["", f"### {dataset} (seeds {seeds})", ""]
        lines.append(
            "| sampler | generate s | " + " | ".join(COLUMNS[c][0] for c in columns) + " |"
        )
        lines.append("|---|---:" + "|---:" * len(columns) + "|")
        lines.append("| *best* | | " + " | ".join(COLUMNS[c][1] for c in columns) + " |")
        for sampler, rows in grouped:
            seconds = rows["generate_s"].mean()
            cells = ["" if pd.isna(seconds) else f"{seconds:.1f}"]
            for c in columns:
                fmt = COLUMNS[c][2].replace("+", "")
                half = (rows[c].max() - rows[c].min()) / 2
                spread = f" ± {fmt.format(half)}" if len(rows) > 1 else ""
                cells.append(f"{fmt.format(rows[c].mean())}{spread}")
            lines.append(f"| {ROW_NAMES.get(sampler, sampler)} | " + " | ".join(cells) + " |")
        names = set(part["sampler"])
        if {DEFAULT_SAMPLER, REFERENCE_SAMPLER} <= names:
            verdicts = [verdict(part, c) for c in columns]
            lines.append(
                f"| {DEFAULT_SAMPLER} vs {REFERENCE_SAMPLER} | | " + " | ".join(verdicts) + " |"
            )
    return lines


def verdict(part: pd.DataFrame, column: str) -> str:
    """The default sampler's mean against the reference's: better, within noise or worse
    (distance to the column's best value; noise: the two half-ranges together)."""
    best = float(COLUMNS[column][1])
    stats = {}
    for name in (DEFAULT_SAMPLER, REFERENCE_SAMPLER):
        values = part.loc[part["sampler"] == name, column]
        stats[name] = (abs(values.mean() - best), (values.max() - values.min()) / 2)
    (gap, half), (ref_gap, ref_half) = stats[DEFAULT_SAMPLER], stats[REFERENCE_SAMPLER]
    if gap <= ref_gap:
        return "better"
    return "within noise" if gap - ref_gap <= half + ref_half else "**worse**"


def speed() -> str:
    """The speed page: each script output of ``SPEED`` with its command."""
    lines = [
        "# Speed",
        "",
        "Generated by `python benchmarks/report.py` from the printed output of the scripts "
        "(in `docs/benchmarks/data/`, each with its command and machine in a `.cmd` file "
        "beside it). Ratios are measured side by side in one run; absolute times depend "
        "on the machine and its load. Training cost against a bare torch loop: "
        "[scaling](../scaling.md).",
    ]
    for name, (title, text) in SPEED.items():
        path = DATA / name
        if not path.exists():
            continue
        lines += [*_section(title, text, path), "", path.read_text(encoding="utf-8").strip()]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only check that the pages are current")
    args = p.parse_args()
    csv = DATA / "fidelity.csv"
    frame = _frame(csv)
    new_page = page(frame, (DATA / "fidelity.cmd").read_text())
    text = README.read_text(encoding="utf-8")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    new_readme = f"{before}{START}\n{headline(frame)}\n{END}{after}"
    outputs = (
        (PAGE, new_page), (README, new_readme), (ABLATION_PAGE, ablations(frame)),
        (SPEED_PAGE, speed()),
    )  # fmt: skip
    if args.check:
        stale = [
            str(path.relative_to(ROOT))
            for path, content in outputs
            if not path.exists() or path.read_text(encoding="utf-8") != content
        ]
        if stale:
            print(f"out of date (run python benchmarks/report.py): {stale}")
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    for path, content in outputs:
        path.write_text(content, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
