"""What a first ``sdd.tl.fit`` costs: training and calibration time, and calibration's share.

``sdd.tl.fit`` trains, then calibrates (generates ``SDD.calibrate``'s default number of
cells with its default sampler). This times both steps of one call on scanpy's bundled
``pbmc68k_reduced`` (700 cells, raw counts log1p-normalised; no download) and prints one
Markdown table; with ``--calibrations`` it also times the calibration with other
samplers on the same trained model, side by side.

    python benchmarks/fit_cost.py --max-steps 300 --threads 2
"""

from __future__ import annotations

import argparse
import inspect
import time

import scanpy as sc
import torch

import sdd


def pbmc68k() -> sc.AnnData:
    adata = sc.datasets.pbmc68k_reduced().raw.to_adata()
    adata.X = adata.X.tocsr() if hasattr(adata.X, "tocsr") else adata.X
    return adata


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--calibrations", nargs="*", default=["ddim:250"], help="more SAMPLER:STEPS to time"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    adata = pbmc68k()
    quiet = sdd.Execution(progress=False)
    defaults = inspect.signature(sdd.SDD.calibrate).parameters
    t0 = time.perf_counter()
    model = sdd.tl.fit(adata, max_steps=args.max_steps, calibrate=False, execution=quiet)
    trained = time.perf_counter() - t0
    rows = []
    settings = [(defaults["sampler"].default, defaults["n_steps"].default, True)]
    settings += [(s.split(":")[0], int(s.split(":")[1]), False) for s in args.calibrations]
    for sampler, n_steps, default in settings:
        t0 = time.perf_counter()
        model.calibrate(sampler=sampler, n_steps=n_steps, execution=quiet)
        seconds = time.perf_counter() - t0
        rows.append((f"{sampler.upper()}-{n_steps}" + (" (default)" if default else ""), seconds))
    n_cells = defaults["n_cells"].default
    print(
        f"sdd.tl.fit on pbmc68k_reduced ({adata.n_obs} cells x {adata.n_vars} genes), "
        f"{args.max_steps} steps, torch threads {torch.get_num_threads()}; calibration: "
        f"{n_cells} generated cells\n"
    )
    print("| calibration sampler | training s | calibration s | calibration share of the call |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows:
        share = seconds / (trained + seconds)
        print(f"| {name} | {trained:.1f} | {seconds:.1f} | {share:.0%} |")


if __name__ == "__main__":
    main()
