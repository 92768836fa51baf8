"""Few-step sampling against DDIM-250, with the seed-to-seed noise of each.

One trained model (``fidelity.py --model-dir``). For each sampler setting and each seed,
the model is calibrated and generates as many cells as the held-out half with that
sampler (``calibrate(sampler=, n_steps=, random_state=seed + 1)``, then
``generate(random_state=seed)``, as ``fidelity.py`` does for seed 0: with one seed for
both, the generated cells would be the calibration's own sample and flatter it), and is
scored by ``sdd.tl.evaluate(held_out, cells,
floor=True)``. Prints one row per setting and seed, then per setting the mean and the
half-range over seeds (the noise a difference must exceed), with the generation time of
the held-out number of cells. ``--peers`` adds, scored by the same call, the real-vs-real
floor (the ``floor`` column of that table) and scVI with its defaults (``fidelity.py``'s
peer, cached in ``--model-dir``).

    python benchmarks/samplers.py --dataset pbmc4k_top2000 --model-dir DIR --csv out.csv
"""

from __future__ import annotations

import time

import pandas as pd
from _common import cached_scvi, default_model, one_model_parser

import sdd

SETTINGS = (("ddim", 250), ("ddim", 50), ("ddim", 25), ("dpm++2m", 25))
COLUMNS = ("SCC", "zero_fraction_mae", "gene_corr", "AUC_logistic", "AUC_rf", "AUC", "LISI",
           "detected_w1", "total_w1", "below_real_p1", "AUC_rf_qc")  # fmt: skip


def main() -> None:
    parser = one_model_parser(__doc__.splitlines()[0])
    parser.add_argument("--sampling-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--settings", nargs="+", default=[f"{s}:{n}" for s, n in SETTINGS],
        help="SAMPLER:STEPS to compare (default: all of SETTINGS)",
    )  # fmt: skip
    parser.add_argument("--cells", type=int, default=None, help="calibration cells (default: its)")
    parser.add_argument("--peers", action="store_true", help="add the floor and scVI rows")
    parser.add_argument("--scvi-epochs", type=int, default=None, help="default: scVI's default")
    args = parser.parse_args()
    settings = [(s.split(":")[0], int(s.split(":")[1])) for s in args.settings]
    calibration_cells = {} if args.cells is None else {"n_cells": args.cells}
    train, held, model = default_model(args)
    records = []
    for sampler, n_steps in settings:
        for seed in args.sampling_seeds:
            model.calibrate(
                sampler=sampler,
                n_steps=n_steps,
                random_state=seed + 1,
                execution=sdd.Execution(progress=False),
                **calibration_cells,
            )
            t0 = time.perf_counter()
            cells = model.generate(
                held.n_obs, random_state=seed, execution=sdd.Execution(progress=False)
            )
            seconds = time.perf_counter() - t0
            table = sdd.tl.evaluate(held, cells, floor=True, random_state=args.seed)
            name = f"{sampler}-{n_steps}" + (f", {args.cells} cells" if args.cells else "")
            records.append(_record(args.dataset, name, seed, seconds, table, "value"))
            print(pd.DataFrame(records[-1:]).round(3).to_string(index=False), flush=True)
    if args.peers:
        records.append(_record(args.dataset, "floor", args.seed, float("nan"), table, "floor"))
        peer, _, seconds = cached_scvi(train, held.n_obs, args)
        table = sdd.tl.evaluate(held, peer, random_state=args.seed)
        records.append(_record(args.dataset, "scvi", args.seed, seconds, table, "value"))
    frame = pd.DataFrame(records)
    print(frame.round(3).to_string(index=False))
    grouped = frame.groupby("sampler", sort=False)[["generate_s", *COLUMNS]]
    summary = (
        grouped.mean().round(3).astype(str)
        + " ± "
        + ((grouped.max() - grouped.min()) / 2).round(3).astype(str)
    )
    print("\nmean ± half-range over sampling seeds", args.sampling_seeds)
    print(summary.to_string())
    if args.csv:
        frame.to_csv(args.csv, index=False)


def _record(dataset, name, seed, seconds, table, column) -> dict:
    """One CSV row: the columns of ``sdd.tl.evaluate``'s table (all cells)."""
    values = table[table["group"] == "all"].set_index("metric")[column]
    return {"dataset": dataset, "sampler": name, "seed": seed, "generate_s": seconds,
            **{c: values[c] for c in COLUMNS}}  # fmt: skip


if __name__ == "__main__":
    main()
