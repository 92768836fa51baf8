"""Whole cells, values: what per-cell structure of the values do generated cells miss?

After the default calibration each generated cell detects as many genes as a training
cell, yet a random forest on (detected, total, max) still tells it from real cells. This
script prints the evidence and measures post-hoc decodings of the values, each applied to
the same generated cells (``fidelity.py``'s default model, calibrated as by default):

- ``default``: today's decoding, unchanged;
- ``cell values``: each cell's expressed values replaced, rank for rank, by those of a
  random training cell with the same number of detected genes (the cell keeps which
  genes it expresses and their order; it copies a training cell's value multiset);
- ``half cell values``: the mean of the two above;
- ``count lattice``: each value snapped to the lattice ``log1p(k * s)`` (``k >= 1`` an
  integer count, ``s = 1e4 / total`` the size factor of a random training cell with the
  same number of detected genes) that ``normalize_total`` + ``log1p`` data live on;
- ``count lattice, nearest``: the same with the size factor of the training cell of
  similar depth nearest in PCA space;
- ``values at least the gene's smallest``: each expressed value raised to the smallest
  non-zero value of its gene in the training cells (no expressed value below any real
  one of that gene);
- ``value map per depth bin``: each gene's expressed values mapped onto its training
  quantiles within the cell's depth bin (8 quantile bins of detected genes; genes with
  fewer than 5 expressed training cells in a bin are left as they are).

Each row is scored with ``sdd.tl.evaluate(held_out, cells, floor=True)`` (the same
columns and floor as ``fidelity.py``). All of them copy training statistics per cell;
they are measured to find the cause, on the tuning set only.

    python benchmarks/cell_values.py --dataset pbmc4k_top2000 --model-dir DIR --csv out.csv
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
from _common import default_model, one_model_parser

import sdd

COLUMNS = (
    "SCC", "zero_fraction_mae", "AUC_logistic", "AUC_rf", "LISI", "gene_corr",
    "detected_w1", "total_w1", "below_real_p1", "AUC_rf_qc",
)  # fmt: skip


def depth_matched(train: np.ndarray, gen: np.ndarray, rng, pcs=None) -> np.ndarray:
    """For each generated cell, a training cell with the same number of detected genes
    (the nearest number when none has it); with ``pcs``, the one nearest in PCA space among
    those within 10% of that depth."""
    det_t, det_g = (train > 0).sum(1), (gen > 0).sum(1)
    rows = np.empty(len(gen), int)
    for i, d in enumerate(det_g):
        if pcs is None:
            gap = np.abs(det_t - d)
            rows[i] = rng.choice(np.flatnonzero(gap == gap.min()))
        else:
            near = np.flatnonzero(np.abs(det_t - d) <= max(2, 0.1 * d))
            rows[i] = near[np.argmin(((pcs[0][near] - pcs[1][i]) ** 2).sum(1))]
    return rows


def cell_values(gen: np.ndarray, train: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.zeros_like(gen)
    for i, row in enumerate(rows):
        on = np.flatnonzero(gen[i] > 0)
        values = np.sort(train[row][train[row] > 0])
        if len(values) != len(on) and len(on):
            values = np.quantile(values, (np.arange(len(on)) + 0.5) / len(on))
        out[i, on[np.argsort(gen[i, on])]] = values
    return out


def count_lattice(gen: np.ndarray, train: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.zeros_like(gen)
    for i, row in enumerate(rows):
        size_factor = np.expm1(train[row][train[row] > 0].min())  # one count of that cell
        on = gen[i] > 0
        counts = np.maximum(1.0, np.round(np.expm1(gen[i, on]) / size_factor))
        out[i, on] = np.log1p(counts * size_factor)
    return out


def gene_floor(gen: np.ndarray, train: np.ndarray) -> np.ndarray:
    smallest = np.nan_to_num(np.nanmin(np.where(train > 0, train, np.nan), axis=0), nan=0.0)
    return np.where(gen > 0, np.maximum(gen, smallest[None, :]), 0.0)


def value_map_per_depth_bin(
    gen: np.ndarray, train: np.ndarray, n_bins: int = 8, min_cells: int = 5
) -> np.ndarray:
    det_t, det_g = (train > 0).sum(1), (gen > 0).sum(1)
    edges = np.quantile(det_t, np.linspace(0, 1, n_bins + 1))[1:-1]
    bin_t = np.searchsorted(edges, det_t, side="right")
    bin_g = np.searchsorted(edges, det_g, side="right")
    out = gen.copy()
    for b in range(n_bins):
        rows_t, rows_g = np.flatnonzero(bin_t == b), np.flatnonzero(bin_g == b)
        for gene in range(gen.shape[1]):
            target = train[rows_t, gene]
            target = target[target > 0]
            on = rows_g[gen[rows_g, gene] > 0]
            if len(target) < min_cells or len(on) == 0:
                continue
            ranks = (np.argsort(np.argsort(gen[on, gene])) + 0.5) / len(on)
            out[on, gene] = np.quantile(target, ranks)
    return out


def mean_value_by_depth(real: np.ndarray, gen: np.ndarray) -> pd.DataFrame:
    """Median over cells of the mean expressed value, per quintile of detected genes."""
    det_r, det_g = (real > 0).sum(1), (gen > 0).sum(1)
    edges = np.percentile(det_r, [0, 20, 40, 60, 80, 100])
    edges[-1] = max(edges[-1], det_g.max()) + 1
    edges[0] = min(edges[0], det_g.min())

    def means(x, det, lo, hi):
        rows = x[(det >= lo) & (det < hi)]
        return np.median(rows.sum(1) / np.maximum((rows > 0).sum(1), 1)) if len(rows) else np.nan

    return pd.DataFrame(
        [
            {
                "detected genes": f"{lo:.0f}-{hi - 1:.0f}",
                "real: mean expressed value": means(real, det_r, lo, hi),
                "generated": means(gen, det_g, lo, hi),
            }
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ]
    )


def main() -> None:
    parser = one_model_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write both tables here (markdown)")
    args = parser.parse_args()
    train, held, model = default_model(args)
    t0 = time.perf_counter()
    model.calibrate(execution=sdd.Execution(progress=False))
    gen = model.generate(
        held.n_obs, random_state=args.seed, execution=sdd.Execution(progress=False)
    )
    print(f"{args.dataset}: calibrated and generated {gen.n_obs} cells in "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    x_train, x_gen = train.X.toarray(), np.asarray(gen.X.toarray())
    by_depth = mean_value_by_depth(held.X.toarray(), x_gen).round(2)
    print(by_depth.to_string(index=False))
    rng = np.random.default_rng(args.seed)
    rows = depth_matched(x_train, x_gen, rng)
    from sklearn.decomposition import PCA

    pca = PCA(30, random_state=args.seed).fit(x_train)
    nearest = depth_matched(x_train, x_gen, rng, (pca.transform(x_train), pca.transform(x_gen)))
    decodings = {
        "default": lambda: x_gen,
        "cell values": lambda: cell_values(x_gen, x_train, rows),
        "half cell values": lambda: 0.5 * x_gen + 0.5 * cell_values(x_gen, x_train, rows),
        "count lattice": lambda: count_lattice(x_gen, x_train, rows),
        "count lattice, nearest": lambda: count_lattice(x_gen, x_train, nearest),
        "values at least the gene's smallest": lambda: gene_floor(x_gen, x_train),
        "value map per depth bin": lambda: value_map_per_depth_bin(x_gen, x_train),
    }
    records = []
    for name, decode in decodings.items():
        cells = sc.AnnData(decode().astype(np.float32), var=gen.var[[]].copy())
        table = sdd.tl.evaluate(held, cells, floor=True, random_state=args.seed)
        table = table[table["group"] == "all"].set_index("metric")
        if not records:
            records.append({"dataset": args.dataset, "row": "floor (real vs real)",
                            **{c: table.loc[c, "floor"] for c in COLUMNS}})  # fmt: skip
        records.append(
            {"dataset": args.dataset, "row": name, **{c: table.loc[c, "value"] for c in COLUMNS}}
        )
        print(pd.DataFrame(records[-1:]).round(3).to_string(index=False), flush=True)
    frame = pd.DataFrame(records)
    print(frame.round(3).to_string(index=False))
    if args.csv is not None:
        frame.to_csv(args.csv, index=False)
    if args.out is not None:
        args.out.write_text(
            by_depth.to_markdown(index=False)
            + "\n\n"
            + frame.round(3).to_markdown(index=False)
            + "\n"
        )


if __name__ == "__main__":
    main()
