"""What calibration costs and how many generated cells it needs.

One trained model (``fidelity.py --model-dir``); ``SDD.calibrate`` is fitted with each
setting (cells x sampler x steps) and compared with the reference setting (the first of
``SETTINGS``: the default, 2,000 cells with DDIM-25): its time, the per-gene offsets (mean absolute difference, in
units of the reference offsets' standard deviation) and the value map (mean absolute
difference of the mapped quantiles, in log-expression units). Two reference fits with
different seeds give the noise floor of both numbers.

    python benchmarks/calibration_cost.py --dataset pbmc4k_top2000 --model-dir DIR
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from _common import default_model, one_model_parser

import sdd

SETTINGS = (  # (cells, sampler, steps); the first is the reference
    (2000, "ddim", 25), (1500, "ddim", 25), (1000, "ddim", 25), (500, "ddim", 25),
    (1000, "ddim", 250),
)  # fmt: skip
FIXED = 1000.0  # offsets beyond this are the fixed ones of never / always detected genes


def fitted(model, n_cells, sampler, n_steps, seed):
    t0 = time.perf_counter()
    model.calibrate(
        n_cells,
        sampler=sampler,
        n_steps=n_steps,
        random_state=seed,
        execution=sdd.Execution(progress=False),
    )
    return model.calibration_, time.perf_counter() - t0


def distance(cal, ref) -> dict:
    """Offsets: over the genes both fits can move (a gene detected in no or every
    training cell gets a fixed, out-of-range offset), in units of the reference offsets'
    standard deviation."""
    movable = (np.abs(ref.thresholds) < FIXED) & (np.abs(cal.thresholds) < FIXED)
    spread = float(np.std(ref.thresholds[movable])) or 1.0
    gap = np.abs(cal.thresholds - ref.thresholds)[movable]
    out = {"offsets": float(np.mean(gap)) / spread}
    if cal.value_map is not None and ref.value_map is not None:
        both = np.isfinite(cal.value_map) & np.isfinite(ref.value_map)
        out["value map"] = float(np.mean(np.abs(cal.value_map - ref.value_map)[both]))
    return out


def main() -> None:
    parser = one_model_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    _, _, model = default_model(args)
    reference, ref_s = fitted(model, *SETTINGS[0], args.seed)
    rows = []
    for cells, sampler, steps in SETTINGS:
        seed = args.seed + 1  # every row, the reference setting too, against seed 0's fit
        cal, seconds = fitted(model, cells, sampler, steps, seed)
        rows.append({
            "cells": cells, "sampler": sampler, "steps": steps, "seconds": seconds,
            "time vs reference": seconds / ref_s, **distance(cal, reference),
        })  # fmt: skip
        print(pd.DataFrame(rows[-1:]).round(3).to_string(index=False), flush=True)
    frame = pd.DataFrame(rows)
    cells, sampler, steps = SETTINGS[0]
    print(f"\n{args.dataset}: distance to the reference fit ({cells} cells, {sampler.upper()}-"
          f"{steps}, seed {args.seed}); the first row is the same setting with another seed "
          "(the noise)")  # fmt: skip
    print(frame.round(3).to_string(index=False))
    if args.csv:
        frame.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
