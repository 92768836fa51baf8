"""Speed and scale of training and generation: steps/s, cells/s and peak memory.

Prints Markdown tables for the CPU and (when present) CUDA: the plain float32 path vs the
fast path (bf16 autocast + fused Adam, with and without CUDA graphs), data kept on the
device vs streamed from host memory, generation of 10,000 cells with DDPM-250, DDIM-250,
the default sampler (that of ``SDD.calibrate``; also 100,000 cells and the calibration's
1,500) and DPM-Solver++(2M) 25 steps, with the speed-up over DDIM-250 in the same run, the
full gene space (>= 14,000 genes, sparse, never densified as a whole),
and training from an anndata backed ``.h5ad`` file.

Needs only torch, numpy, scipy, pandas and tqdm with ``--data synthetic`` (the default):
without anndata the AnnData front end is not imported and the backed rows are skipped.
With anndata, ``--data kang`` uses ``../shared/data/scrna/kang_pbmc_ctrl.h5ad`` (or pass
a path) for the full-gene-space and backed rows.

Examples
--------
``python benchmarks/speed.py --device cpu --quick``
``python benchmarks/speed.py --device cuda --data kang``
"""

from __future__ import annotations

import argparse
import copy
import importlib.machinery
import importlib.util
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

ROOT = Path(__file__).resolve().parents[1]
KANG = ROOT.parent / "shared" / "data" / "scrna" / "kang_pbmc_ctrl.h5ad"


def _import_sdd(no_anndata: bool) -> bool:
    """Import sdd; without anndata, load the engine, networks and loop only."""
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))
    try:
        if no_anndata:
            raise ImportError("anndata disabled by --no-anndata")
        import anndata  # noqa: F401

        import sdd  # noqa: F401

        return True
    except ImportError:
        spec = importlib.machinery.PathFinder.find_spec("sdd", [str(ROOT / "src")])
        package = importlib.util.module_from_spec(spec)
        sys.modules["sdd"] = package  # sdd/__init__ (the AnnData front end) is not run
        return False


# --------------------------------------------------------------------- memory
class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 5 ms)."""

    def __enter__(self) -> PeakRSS:
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *args: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


class Peak:
    """Peak memory of a block: CUDA allocator peak on GPUs, process RSS on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> Peak:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._rss = PeakRSS().__enter__()
        return self

    def __exit__(self, *args: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._rss.__exit__()
            self.bytes = self._rss.peak

    @property
    def label(self) -> str:
        kind = "GPU" if self.device.type == "cuda" else "RSS"
        return f"{self.bytes / 2**30:.2f} GiB {kind}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------- data
def synthetic_counts(n_cells: int, n_genes: int, density: float, seed: int = 0) -> sp.csr_matrix:
    """log1p of Poisson counts with the given fraction of non-zeros (CSR float32)."""
    rng = np.random.default_rng(seed)
    nnz_per_row = rng.binomial(n_genes, density, n_cells)
    indptr = np.concatenate([[0], np.cumsum(nnz_per_row)]).astype(np.int64)
    indices = np.concatenate(
        [np.sort(rng.choice(n_genes, k, replace=False)) for k in nnz_per_row]
    ).astype(np.int32)
    data = np.log1p(1 + rng.poisson(2.0, indptr[-1])).astype(np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(n_cells, n_genes))


def load_kang(path: Path) -> sp.csr_matrix:
    import anndata as ad

    adata = ad.read_h5ad(path)
    x = sp.csr_matrix(adata.X, dtype=np.float32)
    x.data = np.log1p(x.data)  # log1p of raw counts, as users train on
    return x


# ------------------------------------------------------------------ training
def make_step_data(matrix, device, batch_size, *, data_on_device=None, seed=0):
    from sdd.data.loader import RowBatches
    from sdd.diffusion import sparsity

    scale = np.zeros(matrix.shape[1], dtype=np.float32)
    for start in range(0, matrix.shape[0], 4096):  # per-gene maxima in row chunks
        mx = matrix[start : start + 4096].max(axis=0)
        mx = np.asarray(mx.toarray() if sp.issparse(mx) else mx, dtype=np.float32).ravel()
        scale = np.maximum(scale, mx)
    scale[scale <= 0] = 1.0
    scale_dev = torch.as_tensor(scale).to(device)
    rows = RowBatches(
        matrix, batch_size=batch_size, device=device, random_state=seed,
        data_on_device=data_on_device,
    )  # fmt: skip

    def next_batch():  # as SDD.train: scale to [-1, 1], append the sparsity bits
        x, _ = rows.next_batch()
        x = x.to(device, non_blocking=True)
        z = (2.0 * x / scale_dev - 1.0).clamp(-1.0, 1.0)
        return sparsity.encode(z, x != 0), None

    return rows, next_batch


def bench_train(
    matrix, device, *, fast, cuda_graph, steps, batch_size=256, data_on_device=None,
    hidden=(1024, 512, 256), label=None, seed=0,
) -> dict:  # fmt: skip
    import sdd
    from sdd.diffusion import CosineSchedule, GaussianDiffusion
    from sdd.nn import SkipMLP
    from sdd.train import EMA, train_denoiser

    n_genes = matrix.shape[1]
    torch.manual_seed(seed)
    net = SkipMLP(2 * n_genes, hidden=hidden).to(device)
    ema = EMA(net)
    rows, next_batch = make_step_data(
        matrix, device, batch_size, data_on_device=data_on_device, seed=seed
    )
    process = GaussianDiffusion(CosineSchedule())
    kwargs = {
        "steps_per_epoch": rows.steps_per_epoch, "progress": False,
        "execution": sdd.Execution(fast=fast),
        "loop_kwargs": {
            "cuda_graph": cuda_graph, "generator": torch.Generator(device).manual_seed(seed),
        },
    }  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_denoiser(net, ema, next_batch, process, max_steps=5, **kwargs)  # warm
        _sync(device)
        with Peak(device) as peak:
            t0 = time.perf_counter()
            history, _ = train_denoiser(net, ema, next_batch, process, max_steps=steps, **kwargs)
            _sync(device)
            elapsed = time.perf_counter() - t0
    rows.close()
    loss = history["loss"].to_numpy()
    path = "plain fp32" if not fast else ("fast bf16 + CUDA graphs" if cuda_graph else "fast bf16")
    return {
        "device": _device_name(device),
        "path": label or path,
        "genes": n_genes,
        "params": f"{sum(p.numel() for p in net.parameters()) / 1e6:.1f}M",
        "batch": rows.batch_size,
        "data": rows.storage
        + (f" ({rows.device_bytes / 2**20:.0f} MiB)" if rows.device_bytes else ""),
        "steps": steps,
        "steps/s": f"{steps / elapsed:.1f}",
        "ms/step": f"{1000 * elapsed / steps:.2f}",
        "loss, steps 801-1000": f"{loss[800:1000].mean():.4f}" if steps >= 1000 else "-",
        "peak memory": peak.label,
        "_net": net,
        "_ema": ema,
    }


# ---------------------------------------------------------------- generation
def default_sampling() -> tuple[str, int, int]:
    """Sampler, steps and cells of ``SDD.calibrate``'s defaults: a calibrated model (the
    default of ``sdd.tl.fit``) generates with the sampler it was calibrated with."""
    try:
        import inspect

        import sdd

        params = inspect.signature(sdd.SDD.calibrate).parameters
    except ImportError:  # torch-only mode (no anndata): the defaults of this release
        return "ddim", 25, 2000
    return params["sampler"].default, params["n_steps"].default, params["n_cells"].default


def add_speedups(rows: list[dict], device: torch.device) -> None:
    """``x DDIM-250``: cells per second relative to the DDIM-250 row of the same device
    and path in the same run (a ratio, so that machine load cancels)."""
    name = _device_name(device)
    base = {
        r["path"]: float(r["seconds"]) / r["cells"]
        for r in rows
        if r.get("device") == name and r.get("sampler") == "DDIM-250"
    }
    for r in rows:
        if r.get("device") == name and r.get("path") in base and "seconds" in r:
            r["x DDIM-250"] = f"{base[r['path']] / (float(r['seconds']) / r['cells']):.1f}"


def bench_generate(
    net, device, *, n_cells, sampler, n_steps, fast, batch_size=None, default=False
) -> dict:
    from sdd.diffusion import CosineSchedule, GaussianDiffusion
    from sdd.train import sample_split

    net = net.to(device).eval()
    batch_size = batch_size or n_cells
    dim = net.dim
    process = GaussianDiffusion(CosineSchedule())

    def run(n_cells_run: int) -> None:
        generator = torch.Generator(device).manual_seed(0)
        for start in range(0, n_cells_run, batch_size):
            n = min(batch_size, n_cells_run - start)
            sample_split(
                net, process, (n, dim), devices=[device], generator=generator,
                fast=fast, sampler=sampler, n_steps=n_steps,
            ).cpu()  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(min(n_cells, 256))  # warm-up
        with Peak(device) as peak:
            t0 = time.perf_counter()
            run(n_cells)
            _sync(device)
            elapsed = time.perf_counter() - t0
    return {
        "device": _device_name(device),
        "path": "fast bf16" if fast else "plain fp32",
        "sampler": f"{sampler.upper()}-{n_steps}",
        "default": "yes" if default else "",
        "cells": n_cells,
        "batch": batch_size,
        "seconds": f"{elapsed:.2f}",
        "cells/s": f"{n_cells / elapsed:,.0f}",
        "peak memory": peak.label,
    }


def check_fast_vs_plain(net, device, n_cells=2000) -> list[dict]:
    """bf16 vs fp32 on the same inputs: one loss/gradient, and DDIM-50 samples."""
    from sdd.diffusion import CosineSchedule, GaussianDiffusion, diffusion_loss, sparsity
    from sdd.train import sample_split

    net = copy.deepcopy(net).requires_grad_(True).to(device)
    x0 = torch.rand(256, net.dim, device=device) * 2 - 1
    out = []
    grads, losses = {}, {}
    for fast in (False, True):
        net.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=fast):
            loss = diffusion_loss(net, x0, CosineSchedule(), self_condition_prob=1.0)
        loss.backward()
        losses[fast] = loss.item()
        grads[fast] = torch.cat([p.grad.flatten() for p in net.parameters()])
    net.zero_grad(set_to_none=True)
    cos = torch.nn.functional.cosine_similarity(grads[True], grads[False], dim=0).item()
    out.append(
        {
            "check": "one training step (same x_t)",
            "plain fp32": f"loss {losses[False]:.5f}",
            "fast bf16": f"loss {losses[True]:.5f}",
            "agreement": f"loss rel. diff {abs(losses[True] - losses[False]) / losses[False]:.1e}, "
            f"gradient cosine {cos:.5f}",
        }
    )
    net.eval()
    z = {}
    for fast in (False, True):
        z[fast] = sample_split(
            net, GaussianDiffusion(CosineSchedule()), (n_cells, net.dim), devices=[device],
            generator=torch.Generator(device).manual_seed(0), fast=fast, sampler="ddim",
            n_steps=50,
        )  # fmt: skip
    bits = {k: sparsity.decode(v)[2] for k, v in z.items()}
    values = {k: sparsity.decode(v)[1] for k, v in z.items()}
    out.append(
        {
            "check": f"DDIM-50, {n_cells} cells (same noise)",
            "plain fp32": f"zero fraction {1 - bits[False].mean().item():.4f}",
            "fast bf16": f"zero fraction {1 - bits[True].mean().item():.4f}",
            "agreement": f"sparsity bits equal {(bits[True] == bits[False]).float().mean().item():.4f}, "
            f"mean |Δ value| {(values[True] - values[False]).abs().mean().item():.4f} (range 2)",
        }
    )
    return out


# ------------------------------------------------------------------- helpers
def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device).replace("NVIDIA ", "")
    return f"CPU ({torch.get_num_threads()} threads)"


def table(rows: list[dict], title: str) -> None:
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    if not rows:
        return
    cols = list(rows[0])
    print(f"\n### {title}\n")
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--data", default="synthetic", help="'synthetic', 'kang' or an .h5ad path")
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--cells", type=int, default=20_000)
    parser.add_argument("--gen-cells", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    parser.add_argument("--no-anndata", action="store_true", help="test the torch-only mode")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--sections", default="train,generate,scale,backed,check",
        help="comma-separated: train, generate, scale, backed, check",
    )  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    have_anndata = _import_sdd(args.no_anndata)
    sections = set(args.sections.split(","))
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("No CUDA device.")
    print(
        f"sdd speed benchmark: torch {torch.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPU cores visible, torch threads "
        f"{torch.get_num_threads()}, anndata {'yes' if have_anndata else 'no (torch-only mode)'}, "
        f"load average at start {os.getloadavg()[0]:.1f}"
    )
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}")

    hvg = synthetic_counts(args.cells, args.genes, density=0.1)
    print(
        f"Data: synthetic log1p counts, {hvg.shape[0]} cells x {hvg.shape[1]} genes, "
        f"{hvg.nnz / np.prod(hvg.shape):.1%} non-zero; model: scDiffusion MLP (1024, 512, 256), "
        "sparsity bits (input 2 x genes + self-conditioning)"
    )
    big = None
    if {"scale", "backed"} & sections:
        if args.data != "synthetic" and have_anndata:
            path = KANG if args.data == "kang" else Path(args.data)
            big, big_name = load_kang(path), path.name
        else:
            big, big_name = synthetic_counts(6548, 14_053, density=0.05, seed=1), "synthetic"
        print(
            f"Full gene space: {big_name}, {big.shape[0]} cells x {big.shape[1]} genes, "
            f"{big.nnz:,} non-zeros ({big.nnz / np.prod(big.shape):.1%}); dense float32 would "
            f"take {np.prod(big.shape) * 4 / 2**30:.2f} GiB"
        )

    train_rows, gen_rows, scale_rows, backed_rows, check_rows = [], [], [], [], []
    trained = {}

    def attempt(rows: list, title: str, fn, *a, **k) -> dict | None:
        """Run one measurement; a failure is printed and recorded, the others go on."""
        try:
            row = fn(*a, **k)
        except Exception as err:  # noqa: BLE001 - report and continue
            traceback.print_exc()
            rows.append({"device": str(a[1]) if len(a) > 1 else "", "path": f"FAILED: {err!r}"})
            return None
        rows.append(row)
        table([row], f"(progress) {title}")
        return row

    for dev in devices:
        cuda = dev.type == "cuda"
        q = args.quick
        if "train" in sections:
            if cuda:
                plans = [
                    (False, False, None, 300 if q else 1000),
                    (True, False, None, 300 if q else 1000),
                    (True, True, None, 500 if q else 3000),
                    (True, True, False, 500 if q else 3000),
                ]
            else:
                plans = [(False, False, None, 5 if q else 40)]
            for fast, graph, on_dev, steps in plans:
                row = attempt(
                    train_rows, "training", bench_train, hvg, dev, fast=fast, cuda_graph=graph,
                    steps=steps, data_on_device=on_dev,
                )  # fmt: skip
                if row is not None:
                    trained[dev.type] = row
        if "generate" in sections:
            if dev.type in trained:
                net = trained[dev.type]["_ema"].model
            else:
                from sdd.nn import SkipMLP

                net = SkipMLP(2 * args.genes)
            n = args.gen_cells if not q else min(args.gen_cells, 1000)
            sampler, n_steps, n_calibration = default_sampling()
            # DDPM-250 (uncalibrated models), DDIM-250 (the calibrated default before) and
            # the default, side by side with SDD.generate's batch (2048); the default also
            # at ten times the cells, and for the calibration's cells (its sampling cost)
            plans = [("ddpm", 250, False, n), ("ddim", 250, False, n)]
            plans += [(sampler, n_steps, False, n), (sampler, n_steps, False, 10 * n)]
            plans += [(sampler, n_steps, False, n_calibration), ("dpm++2m", 25, False, n)]
            if cuda:
                plans += [("ddim", 250, True, n), (sampler, n_steps, True, n)]
            for plan_sampler, plan_steps, fast, cells in plans:
                attempt(
                    gen_rows, "generation", bench_generate, net, dev, n_cells=cells,
                    sampler=plan_sampler, n_steps=plan_steps, fast=fast, batch_size=2048,
                    default=(plan_sampler, plan_steps) == (sampler, n_steps),
                )  # fmt: skip
            add_speedups(gen_rows, dev)
        if "scale" in sections:
            if cuda:
                plans = [(False, False, 100 if q else 300), (True, True, 300 if q else 1000)]
            else:
                plans = [(False, False, 2 if q else 5)]
            for fast, graph, steps in plans:
                row = attempt(
                    scale_rows, "full gene space", bench_train, big, dev, fast=fast,
                    cuda_graph=graph, steps=steps,
                    label=("plain fp32" if not fast else "fast bf16 + CUDA graphs")
                    + f" ({big_name})",
                )  # fmt: skip
        if "backed" in sections and have_anndata:
            import anndata as ad

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "cells.h5ad"
                if hasattr(ad.settings, "allow_write_nullable_strings"):  # pandas 3
                    ad.settings.allow_write_nullable_strings = True
                ad.AnnData(big).write_h5ad(path, compression="gzip")
                backed = ad.read_h5ad(path, backed="r")
                steps = (50 if q else 300) if cuda else (2 if q else 5)
                row = attempt(
                    backed_rows, "backed", bench_train, backed.X, dev, fast=cuda,
                    cuda_graph=cuda, steps=steps,
                    label=("fast bf16 + CUDA graphs" if cuda else "plain fp32") + ", backed .h5ad",
                )  # fmt: skip
                if row is not None:
                    row["data"] = "backed .h5ad (gzip)" + (", read ahead" if cuda else "")
                backed.file.close()
        if "check" in sections and cuda and dev.type in trained:
            try:
                check_rows += check_fast_vs_plain(trained[dev.type]["_ema"].model, dev)
            except Exception:  # noqa: BLE001
                traceback.print_exc()

    print(f"\n## Results (load average at the end {os.getloadavg()[0]:.1f})")
    table(train_rows, f"Training, {args.genes} genes, batch 256 (data loading included)")
    table(gen_rows, f"Generation of {args.gen_cells if not args.quick else 'fewer'} cells")
    table(scale_rows, "Full gene space, sparse data (never densified as a whole)")
    table(backed_rows, "Training from an anndata backed .h5ad file (out of core)")
    table(check_rows, "Fast path vs plain path on the same inputs")
    if "backed" in sections and not have_anndata:
        print("\n(backed .h5ad rows skipped: anndata is not installed)")


if __name__ == "__main__":
    main()
