"""Cost curves: time and peak memory against genes and cells, and the package against a bare loop.

For every front end (``SDD``, ``SDDImage`` at 28x28 and 32x32, ``SDDBlackout``) on the
plain float32 path (the fast path, bf16 + fused Adam + CUDA graphs, needs CUDA; with
``--device cuda`` the same rows run there), this prints Markdown tables of

* **training**: seconds per step and peak resident memory against the number of genes
  (1k, 2k, 5k, 14k, 20k; default architecture, batch 256), next to a **bare torch loop**
  of the same network on the same device (forward, loss, backward, fused Adam: no data
  loader, EMA, history or checks; one fixed batch) and the ratio package / bare. The two
  loops alternate (package, bare, package, bare, ...) and the medians are reported. The package's per-step time is the
  steady state (between the first forward passes of consecutive steps, taken from a
  forward hook); the fixed cost of a ``train()`` call (weight snapshot, loader, checks)
  is its own column. Both loops run the same self-conditioning branches step for step.
  Peak memory is that of the row's first ``train()`` call, before the bare loop exists
  (``--memory-only`` measures just that);
* **generation**: seconds and peak memory against the number of cells (CSR output built
  batch by batch; DDIM with few steps, since the time is linear in the steps), one
  subprocess per row so that each peak is that row's;
* **Adam kernels** on the CPU (the optimizer step alone): torch's default single-tensor
  Adam, ``foreach`` and ``fused``;
* least-squares **cost models** (seconds per step ~ a + b x genes x width x batch, peak
  memory ~ c + d x parameters, generation seconds ~ a + b x cells x steps, memory ~ c + e
  x non-zeros out) with a prediction for a user's run.

Data are synthetic: counts with 6% non-zeros per cell (a 10x full gene space has ~5-8%;
the cost of today's dense-gene-space models does not depend on it) and Poisson(0.2)
images (18% non-zero pixels, MNIST has 19%). Every training row runs in its own
subprocess too. ``--figure`` draws the curves (PNG); ``--save``/``--load`` keep the
results as JSON, so tables and figure can be redrawn without rerunning.

Examples
--------
``python benchmarks/curves.py --quick``  (a smoke run, about two minutes)
``python benchmarks/curves.py --figure docs/_static/scaling.png --save curves.json``
``python benchmarks/curves.py --load curves.json --figure docs/_static/scaling.png``
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

import sdd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from speed import PeakRSS  # noqa: E402  (the sibling benchmark's RSS sampler)

DENSITY = 0.06
IMAGE_RATE = 0.2
GIB = 2**30


# ----------------------------------------------------------------------- data
def synthetic_counts(n_cells: int, n_genes: int, density: float = DENSITY, seed: int = 0):
    """CSR float32 counts (1 + Poisson(1) where non-zero), ``density`` non-zeros per cell."""
    rng = np.random.default_rng(seed)
    blocks = []
    for start in range(0, n_cells, 256):  # never a dense cells x genes array
        n = min(256, n_cells - start)
        mask = rng.random((n, n_genes), dtype=np.float32) < density
        block = sp.csr_matrix(mask, dtype=np.float32)
        block.data = 1.0 + rng.poisson(1.0, block.nnz).astype(np.float32)
        blocks.append(block)
    return sp.vstack(blocks, format="csr")


def synthetic_images(n: int, side: int, seed: int = 0) -> np.ndarray:
    """``(n, side, side)`` float32 Poisson(IMAGE_RATE) intensities (mostly exact zeros)."""
    return np.random.default_rng(seed).poisson(IMAGE_RATE, (n, side, side)).astype(np.float32)


def cell_adata(counts: sp.csr_matrix):
    import anndata as ad

    adata = ad.AnnData(counts.copy())
    adata.X.data = np.log1p(adata.X.data)
    adata.layers["counts"] = counts
    adata.var_names = [f"g{i}" for i in range(counts.shape[1])]
    adata.obs_names = [f"c{i}" for i in range(counts.shape[0])]
    return adata


def build_model(kind: str, size: int, n: int, seed: int = 0):
    """The model of one row, with its training data (default architecture)."""

    torch.manual_seed(seed)
    if kind == "SDDImage":
        images = synthetic_images(n, size, seed)
        return sdd.SDDImage(images), images
    counts = synthetic_counts(n, size, seed=seed)
    adata = cell_adata(counts)
    if kind == "SDD":
        sdd.SDD.setup_anndata(adata)
        return sdd.SDD(adata), counts
    sdd.SDDBlackout.setup_anndata(adata, layer="counts")
    return sdd.SDDBlackout(adata), counts


# ------------------------------------------------------------------ bare loop
class BareLoop:
    """The same network trained by the shortest torch loop: forward, loss, backward, Adam.

    The batch is fixed and already encoded on the device; the loss is the model's loss
    written out in plain torch (Gaussian x0-prediction with the cosine schedule, or
    Blackout's Poisson deviance of the births), the optimizer is torch's fastest Adam
    for the device (fused). Nothing else: no loader, EMA, history, checks or hooks.
    """

    def __init__(self, model, data, batch_size: int, device: torch.device) -> None:
        from sdd.diffusion import sparsity

        self.device = device
        self.net = copy.deepcopy(model.module).to(device).train()
        self.kind = type(model).__name__
        self.opt = torch.optim.Adam(self.net.parameters(), lr=2e-4, fused=True)
        rows = data[:batch_size]
        if self.kind == "SDDImage":
            x = torch.as_tensor(rows)[:, None]  # (B, 1, H, W)
            z = 2.0 * x / x.amax() - 1.0
            self.x0 = sparsity.encode(z, x != 0).to(device)
        elif self.kind == "SDD":
            x = torch.as_tensor(np.log1p(rows.toarray()))
            z = 2.0 * x / x.amax(0).clamp_min(1e-6) - 1.0
            self.x0 = sparsity.encode(z, x != 0).to(device)
        else:
            self.x0 = torch.as_tensor(rows.toarray()).to(device)
            schedule = model.process.schedule  # constants of the process, as tensors
            self.survival = schedule.survival.float().to(device)
            self.weights = schedule.loss_weights("instantaneous").float().to(device)
            self.n_times = schedule.n_times
            x = self.x0
            self.log_max = torch.log1p(x.amax(0)).clamp_min(1e-6)
            self.scale = x.mean(0) + 1e-3
        # cosine log-SNR schedule from 15 to -15 (the models' default)
        self.b = math.atan(math.exp(-15.0 / 2))
        self.a = math.atan(math.exp(15.0 / 2)) - self.b

    def _loss(self, self_condition: bool) -> torch.Tensor:
        x0, net = self.x0, self.net
        n = x0.shape[0]
        if self.kind == "SDDBlackout":
            k = torch.randint(self.n_times, (n,), device=self.device)
            p = self.survival[k][:, None]
            x_t = torch.binomial(x0, p.expand_as(x0).contiguous())
            h = 2.0 * torch.log1p(x_t) / self.log_max - 1.0
            t = k.float() / (self.n_times - 1)
            out = torch.nn.functional.softplus(net(h, t, torch.zeros_like(h), None))
            births_hat = out * (1.0 - p) * self.scale
            births = x0 - x_t
            dev = births_hat - births + torch.xlogy(births, births)
            dev = dev - births * torch.log(births_hat.clamp_min(1e-8))
            return (self.weights[k][:, None] * dev).mean()
        t = torch.rand(n, device=self.device)
        logsnr = -2.0 * torch.log(torch.tan(self.a * t + self.b))
        shape = (n,) + (1,) * (x0.ndim - 1)
        alpha = torch.sigmoid(logsnr).sqrt().view(shape)
        sigma = torch.sigmoid(-logsnr).sqrt().view(shape)
        x_t = alpha * x0 + sigma * torch.randn_like(x0)
        sc = torch.zeros_like(x0)
        if self_condition:
            with torch.no_grad():
                sc = net(x_t, t, sc, None).clamp(-1.0, 1.0)
        return torch.mean((net(x_t, t, sc, None) - x0) ** 2)

    def run(self, coins: list[bool]) -> list[float]:
        """One step per coin (self-conditioning or not); the start time of each step."""
        starts = []
        for coin in coins:
            starts.append(time.perf_counter())
            loss = self._loss(coin)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        _sync(self.device)
        return starts


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock:
    """Start times and self-conditioning branches of the package's steps, from a forward
    pre-hook: a step starts with its first forward pass (without gradients when it
    self-conditions)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls: list[tuple[float, bool]] = []
        self.handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, module, args) -> None:
        self.calls.append((time.perf_counter(), torch.is_grad_enabled()))

    def steps(self) -> tuple[list[float], list[bool]]:
        starts, coins, after_no_grad = [], [], False
        for t, grad in self.calls:
            if not grad:
                starts.append(t)
                coins.append(True)
            elif not after_no_grad:
                starts.append(t)
                coins.append(False)
            after_no_grad = not grad
        self.calls = []
        return starts, coins


def _per_step(starts: list[float]) -> float:
    return (starts[-1] - starts[0]) / (len(starts) - 1)


def _rss() -> int:
    return PeakRSS._rss()


# -------------------------------------------------------------------- workers
def train_row(spec: dict) -> dict:
    """Package vs bare loop for one front end and size (runs in its own process)."""
    device = torch.device(spec["device"])
    kind, size, batch, steps = spec["model"], spec["size"], spec["batch"], spec["steps"]
    n = max(2 * batch, spec.get("cells", 2 * batch))
    model, data = build_model(kind, size, n)
    params = sum(p.numel() for p in model.module.parameters())
    accel = {"accelerator": device.type, "progress": False, "batch_size": batch}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # warm-up (allocations, first calls; not timed). Its peak is the package's
        # memory: no bare loop exists yet, whose weights and Adam state would count too
        before = _rss()
        with PeakRSS() as peak:
            model.train(1, **accel)
        memory = {"rss": peak.peak, "rss_before": before}
        if spec.get("memory_only"):
            return {"params": params, **memory, "repeats": []}
        bare = BareLoop(model, data, batch, device)
        bare.run([True])
        clock = StepClock(model.module)
        rows = []
        for _ in range(spec["repeats"]):  # package, bare, package, bare, ...
            t0 = time.perf_counter()
            model.train(steps, **accel)
            call = time.perf_counter() - t0
            starts, coins = clock.steps()
            if len(starts) != steps:
                raise RuntimeError(f"found {len(starts)} steps in the hook's record, not {steps}")
            bare_starts = bare.run(coins)  # the same self-conditioning branches
            rows.append({
                "package": _per_step(starts), "bare": _per_step(bare_starts), "call": call,
                "coins": coins,
            })  # fmt: skip
        clock.handle.remove()
    return {"params": params, **memory, "repeats": rows}


def generate_row(spec: dict) -> dict:
    """Generation time and peak memory of ``cells`` cells (runs in its own process)."""
    device = torch.device(spec["device"])
    kind, size = spec["model"], spec["size"]
    model, _ = build_model(kind, size, 256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # one step: generate() needs a trained model; the time does not depend on the
        # weights, the output's non-zeros do (hence the memory model per non-zero)
        model.train(
            1,
            batch_size=16,
            execution=sdd.Execution(progress=False, accelerator=device.type),
        )
        options = {"n_steps": spec["sample_steps"]}
        if kind != "SDDBlackout":
            options["sampler"] = "ddim"
        model.generate(
            16, execution=sdd.Execution(progress=False, accelerator=device.type), **options
        )  # warm-up
        before = _rss()
        with PeakRSS() as peak:
            t0 = time.perf_counter()
            out = model.generate(
                spec["cells"],
                execution=sdd.Execution(progress=False, accelerator=device.type),
                **options,
            )
            seconds = time.perf_counter() - t0
    if kind == "SDDImage":
        nnz = int(np.count_nonzero(out.images))
        shape = out.images.shape
    else:
        nnz = int(out.X.nnz)
        shape = out.shape
    return {
        "seconds": seconds, "rss": peak.peak, "rss_before": before, "nnz": nnz,
        "density": nnz / float(np.prod(shape)),
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "batch": 2048 if kind != "SDDImage" else 256,
    }  # fmt: skip


def adam_row(spec: dict) -> dict:
    """The optimizer step alone on the SDD network: single-tensor, foreach and fused."""
    from sdd.nn import SkipMLP

    torch.manual_seed(0)
    net = SkipMLP(2 * spec["size"])
    params = list(net.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    out = {"params": sum(p.numel() for p in params)}
    kinds = {"single-tensor (torch default on CPU)": {"foreach": False},
             "foreach": {"foreach": True}, "fused": {"fused": True}}  # fmt: skip
    times = {k: [] for k in kinds}
    opts = {k: torch.optim.Adam(params, lr=2e-4, **v) for k, v in kinds.items()}
    for opt in opts.values():
        opt.step()  # state allocated, first call excluded
    for _ in range(spec["repeats"]):
        for k, opt in opts.items():  # alternate the kernels
            t0 = time.perf_counter()
            opt.step()
            times[k].append(time.perf_counter() - t0)
    out["seconds"] = {k: statistics.median(v) for k, v in times.items()}
    return out


def _timed_steps(model, clock: StepClock, steps: int, **train_kwargs) -> float:
    model.train(steps, execution=sdd.Execution(progress=False), **train_kwargs)
    starts, _ = clock.steps()
    return _per_step(starts)


def backed_row(spec: dict) -> dict:
    """SDD trained from an anndata backed ``.h5ad`` file vs the same data in memory."""
    import tempfile

    import anndata as ad

    counts = synthetic_counts(spec["cells"], spec["size"])
    adata = cell_adata(counts)
    del adata.layers["counts"]
    out: dict = {"nnz": int(counts.nnz)}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "cells.h5ad"
        if hasattr(ad.settings, "allow_write_nullable_strings"):  # pandas 3
            ad.settings.allow_write_nullable_strings = True
        adata.write_h5ad(path, compression=spec.get("compression"))
        out["file_mib"] = path.stat().st_size / 2**20
        backed = ad.read_h5ad(path, backed="r")
        models, clocks = {}, {}
        for name, data in (("in memory", adata), ("backed", backed)):
            sdd.SDD.setup_anndata(data)
            torch.manual_seed(0)
            models[name] = sdd.SDD(data)
            models[name].train(
                1, batch_size=spec["batch"], execution=sdd.Execution(progress=False)
            )  # warm-up
            clocks[name] = StepClock(models[name].module)
        times: dict = {k: [] for k in models}
        for _ in range(spec["repeats"]):  # alternate
            for name, model in models.items():
                times[name].append(
                    _timed_steps(model, clocks[name], spec["steps"], batch_size=spec["batch"])
                )
        backed.file.close()
    out["seconds"] = {k: statistics.median(v) for k, v in times.items()}
    out["ratio"] = statistics.median(
        b / m for b, m in zip(times["backed"], times["in memory"], strict=True)
    )
    return out


def ddp_row(spec: dict) -> dict | None:
    """SDD under ``torchrun`` (DDP, gloo on the CPU): seconds per step on rank 0."""

    model, _ = build_model("SDD", spec["size"], max(2 * spec["batch"] * spec["world"], 1024))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.train(
            1, batch_size=spec["batch"], execution=sdd.Execution(progress=False)
        )  # warm-up (and DDP setup)
        clock = StepClock(model.module)
        times = [
            _timed_steps(model, clock, spec["steps"], batch_size=spec["batch"])
            for _ in range(spec["repeats"])
        ]
    if not sdd.train.is_main_process():
        return None
    return {"seconds": statistics.median(times), "world": model.train_args_["world_size"]}


WORKERS = {
    "train": train_row, "generate": generate_row, "adam": adam_row, "backed": backed_row,
    "ddp": ddp_row,
}  # fmt: skip


def run_worker(spec: dict, timeout: float) -> dict:
    """Run one row in a fresh Python process; its result is the last line of stdout."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    if spec.get("world", 1) > 1:  # one process per rank, as a user would launch it
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd = [*launcher, f"--nproc_per_node={spec['world']}", *cmd[1:]]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"error": tail[0][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worker_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    sys.path.insert(0, spec["src"])  # the sdd source tree under test
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    try:
        result = WORKERS[spec["kind"]](spec)
    except Exception as err:  # noqa: BLE001 - reported to the parent as one row
        traceback.print_exc()
        result = {"error": f"{type(err).__name__}: {err}"[:200]}
    if result is not None:  # None: a DDP rank other than 0
        print(json.dumps(result))


# ---------------------------------------------------------------- summaries
def median(values) -> float:
    return float(statistics.median(values))


def train_summary(row: dict) -> dict:
    res = row["result"]
    reps = res["repeats"]
    if "rss" in res:  # the first train() call, before the bare loop exists
        memory = {"rss": res["rss"], "rss_before": res["rss_before"]}
    else:  # older results: peaks of later calls, bare loop's state included
        memory = {"rss": max(r["package_rss"] for r in reps),
                  "rss_before": min(r["package_rss_before"] for r in reps)}  # fmt: skip
    if not reps:  # --memory-only
        return {**memory, "package": float("nan"), "bare": float("nan"), "ratio": float("nan"),
                "ratio_min": float("nan"), "ratio_max": float("nan"),
                "call_overhead": float("nan"), "self_cond": float("nan")}  # fmt: skip
    package = median(r["package"] for r in reps)
    bare = median(r["bare"] for r in reps)
    ratios = [r["package"] / r["bare"] for r in reps]
    steps = row["spec"]["steps"]
    return {
        "package": package, "bare": bare, "ratio": median(ratios),
        "ratio_min": min(ratios), "ratio_max": max(ratios),
        "call_overhead": median(r["call"] - steps * r["package"] for r in reps),
        **memory,
        "self_cond": median(sum(r["coins"][:-1]) / max(1, steps - 1) for r in reps),
    }  # fmt: skip


def size_label(model: str, size: int) -> str:
    return f"{size}x{size}" if model == "SDDImage" else f"{size:,}"


def fit_line(x, y) -> tuple[float, float]:
    """Least squares ``y ~ a + b x``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2:
        return 0.0, float(y[0] / x[0])
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


def width(model: str) -> int:
    return 1024  # first hidden width of the default SkipMLP (hidden=(1024, 512, 256))


def cost_models(results: dict) -> dict:
    """Fitted cost models per front end (cell models: genes x width x batch)."""
    fits = {}
    for model in ("SDD", "SDDBlackout"):
        rows = [r for r in results["train"] if r["spec"]["model"] == model and "summary" in r]
        if len(rows) < 2:
            continue
        timed = [r for r in rows if r["summary"]["package"] == r["summary"]["package"]]
        x = [r["spec"]["size"] * width(model) * r["spec"]["batch"] for r in timed]
        t = [r["summary"]["package"] for r in timed]
        p = [r["result"]["params"] for r in rows]
        mem = [r["summary"]["rss"] for r in rows]
        a, b = fit_line(x, t) if len(timed) >= 2 else (float("nan"), float("nan"))
        c, d = fit_line(p, mem)
        pa, pb = fit_line([r["spec"]["size"] for r in rows], p)
        fits[model] = {"a": a, "b": b, "mem_c": c, "mem_d": d, "param_a": pa, "param_b": pb,
                       "batch": rows[0]["spec"]["batch"]}  # fmt: skip
    for model in ("SDD", "SDDBlackout", "SDDImage"):
        rows = [r for r in results["generate"] if r["spec"]["model"] == model and "result" in r]
        rows = [r for r in rows if "error" not in r["result"]]
        if len(rows) < 2:
            continue
        x = [r["spec"]["cells"] * r["spec"]["sample_steps"] for r in rows]
        a, b = fit_line(x, [r["result"]["seconds"] for r in rows])
        c, e = fit_line([r["result"]["nnz"] for r in rows], [r["result"]["rss"] for r in rows])
        fits[f"generate {model}"] = {"a": a, "b": b, "mem_c": c, "mem_e": e,
                                     "size": rows[0]["spec"]["size"]}  # fmt: skip
    return fits


# ------------------------------------------------------------------ printing
def table(rows: list[dict], title: str) -> None:
    if not rows:
        return
    cols = list(rows[0])
    print(f"\n### {title}\n")
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---:" if i else "---" for i in range(len(cols))) + "|")
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    sys.stdout.flush()


def print_results(results: dict) -> None:
    meta = results["meta"]
    print(
        f"\n## Cost curves ({meta['device']}, torch {meta['torch']}, {meta['threads']} "
        f"thread(s), load average {meta['load_start']:.1f} at start / "
        f"{meta.get('load_end', float('nan')):.1f} at the end)"
    )
    rows = []
    for r in results["train"]:
        spec = r["spec"]
        base = {"model": spec["model"], "size": size_label(spec["model"], spec["size"])}
        if "summary" not in r:
            rows.append({**base, "params": "-", "package s/step": f"FAILED: {r['result']}"})
            continue
        s = r["summary"]
        rows.append({
            **base,
            "params": f"{r['result']['params'] / 1e6:.1f}M",
            "batch": spec["batch"],
            "package s/step": f"{s['package']:.3f}",
            "bare s/step": f"{s['bare']:.3f}",
            "package / bare": f"{s['ratio']:.2f} ({s['ratio_min']:.2f}-{s['ratio_max']:.2f})",
            "train() call overhead s": f"{s['call_overhead']:.2f}",
            **(
                {"peak RSS GiB (first train() call)": f"{s['rss'] / GIB:.2f}",
                 "RSS before it GiB": f"{s['rss_before'] / GIB:.2f}"}
                if "rss" in r["result"]
                else {"peak RSS GiB (bare loop's state included)": f"{s['rss'] / GIB:.2f}"}
            ),
        })  # fmt: skip
    steps = results["train"][0]["spec"]["steps"] if results["train"] else 0
    reps = results["train"][0]["spec"]["repeats"] if results["train"] else 0
    table(
        rows,
        f"Training, plain float32 path, {meta['device']}: package vs bare loop "
        f"({reps} alternating repeats of {steps} steps, medians; ratio range in brackets)",
    )
    ratios = [r["summary"]["ratio"] for r in results["train"] if "summary" in r]
    ratios = [x for x in ratios if x == x]  # not --memory-only rows
    if ratios:
        print(
            f"\nPackage / bare: median over the {len(ratios)} rows {statistics.median(ratios):.2f}; "
            f"{sum(x <= 1.1 for x in ratios)} of {len(ratios)} rows at or below 1.1 "
            f"(worst {max(ratios):.2f})."
        )
    rows = []
    for r in results["generate"]:
        spec, res = r["spec"], r["result"]
        base = {"model": spec["model"], "size": size_label(spec["model"], spec["size"]),
                "cells": f"{spec['cells']:,}"}  # fmt: skip
        if "error" in res:
            rows.append({**base, "sampler": "-", "seconds": f"FAILED: {res['error']}"})
            continue
        sampler = "binomial bridge" if spec["model"] == "SDDBlackout" else "DDIM"
        rows.append({
            **base,
            "sampler": f"{sampler}, {spec['sample_steps']} steps",
            "seconds": f"{res['seconds']:.2f}",
            "ms / (cell x step)": f"{1000 * res['seconds'] / (spec['cells'] * spec['sample_steps']):.3f}",
            "non-zeros out": f"{res['nnz']:,} ({res['density']:.1%})",
            "peak RSS GiB": f"{res['rss'] / GIB:.2f}",
            "RSS before GiB": f"{res['rss_before'] / GIB:.2f}",
        })  # fmt: skip
    table(rows, "Generation (one subprocess per row; output built batch by batch)")
    for r in results.get("adam", []):
        res = r["result"]
        if "error" in res:
            print(f"\n(Adam kernels: FAILED {res['error']})")
            continue
        fused = res["seconds"]["fused"]
        table(
            [
                {"Adam kernel": k, "seconds / step": f"{v:.4f}", "vs fused": f"{v / fused:.1f}x"}
                for k, v in res["seconds"].items()
            ],  # fmt: skip
            f"Adam step alone, SDD network at {r['spec']['size']:,} genes "
            f"({res['params'] / 1e6:.1f}M parameters), median of {r['spec']['repeats']}",
        )
    rows = []
    for r in results.get("backed", []):
        spec, res = r["spec"], r["result"]
        if "error" in res:
            rows.append({"data": f"FAILED: {res['error']}"})
            continue
        rows.append({
            "data": f"{spec['cells']:,} cells x {spec['size']:,} genes, {res['nnz']:,} non-zeros",
            "file": f"{res['file_mib']:.0f} MiB ({spec['compression']})",
            "in memory s/step": f"{res['seconds']['in memory']:.3f}",
            "backed s/step": f"{res['seconds']['backed']:.3f}",
            "backed / in memory": f"{res['ratio']:.2f}",
        })  # fmt: skip
    table(
        rows,
        f"SDD from an anndata backed .h5ad vs in memory (batch {results['backed'][0]['spec']['batch']})"
        if rows
        else "",
    )
    rows, one = [], None
    for r in results.get("ddp", []):
        spec, res = r["spec"], r["result"]
        if "error" in res:
            rows.append(
                {"processes": spec["world"], "batch per process": f"FAILED: {res['error']}"}
            )
            continue
        rate = spec["batch"] * spec["world"] / res["seconds"]
        one = rate if spec["world"] == 1 else one
        rows.append({
            "processes": spec["world"], "batch per process": spec["batch"],
            "global batch": spec["batch"] * spec["world"], "s/step": f"{res['seconds']:.3f}",
            "cells/s": f"{rate:,.0f}",
            "speed-up": f"{rate / one:.2f}x" if one else "-",
        })  # fmt: skip
    if rows:
        genes = results["ddp"][0]["spec"]["size"]
        table(rows, f"DDP (torchrun, gloo, one torch thread per process), SDD at {genes:,} genes")
    fits = cost_models(results)
    if fits:
        print("\n### Cost models (least squares on the rows above)\n")
    for name, f in fits.items():
        if name.startswith("generate"):
            model = name.split()[1]
            print(
                f"- {name}: seconds ~ {f['a']:.2f} + {f['b'] * 1e3:.4f} ms x cells x steps "
                f"(at {size_label(model, f['size'])} {'pixels' if model == 'SDDImage' else 'genes'}); "
                f"peak RSS ~ {f['mem_c'] / GIB:.2f} GiB + {f['mem_e']:.1f} bytes x non-zeros out"
            )
            continue
        print(
            f"- {name} training: seconds/step ~ {f['a']:.3f} + {f['b'] * 1e9:.3f}e-9 x genes x "
            f"width x batch (width = first hidden layer, 1024; batch {f['batch']}); "
            f"parameters ~ {f['param_b']:.0f} x genes + {f['param_a'] / 1e6:.1f}M; peak RSS ~ "
            f"{f['mem_c'] / GIB:.2f} GiB + {f['mem_d']:.1f} bytes x parameters"
        )
    for name in ("SDD", "SDDBlackout"):
        if name in fits:
            f = fits[name]
            g, b = 30_000, f["batch"]
            s = f["a"] + f["b"] * g * 1024 * b
            p = f["param_a"] + f["param_b"] * g
            print(
                f"  prediction, {name} at 30,000 genes, batch {b}: {s:.2f} s/step "
                f"({s * 10_000 / 3600:.1f} h per 10,000 steps), {p / 1e6:.0f}M parameters, "
                f"peak RSS {(f['mem_c'] + f['mem_d'] * p) / GIB:.1f} GiB"
            )


# -------------------------------------------------------------------- figure
def figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9))
    colors = {"SDD": "C0", "SDDBlackout": "C1", "SDDImage": "C2"}
    fits = cost_models(results)
    ax_t, ax_m, ax_g = axes
    for model in ("SDD", "SDDBlackout"):
        rows = [r for r in results["train"] if r["spec"]["model"] == model and "summary" in r]
        if not rows:
            continue
        g = np.array([r["spec"]["size"] for r in rows])
        c = colors[model]
        ax_t.plot(g, [r["summary"]["package"] for r in rows], "o-", color=c, label=f"{model}")
        ax_t.plot(g, [r["summary"]["bare"] for r in rows], "x--", color=c, alpha=0.6,
                  label=f"{model}, bare loop")  # fmt: skip
        if model in fits:
            f = fits[model]
            grid = np.linspace(0, max(g.max(), 30_000), 50)
            ax_t.plot(grid, f["a"] + f["b"] * grid * 1024 * f["batch"], ":", color=c, lw=1)
            ax_m.plot(grid, (f["mem_c"] + f["mem_d"] * (f["param_a"] + f["param_b"] * grid)) / GIB,
                      ":", color=c, lw=1)  # fmt: skip
        ax_m.plot(g, [r["summary"]["rss"] / GIB for r in rows], "o-", color=c, label=model)
    for r in results["train"]:
        if r["spec"]["model"] == "SDDImage" and "summary" in r:
            side = r["spec"]["size"]
            ax_t.annotate(f"SDDImage {side}x{side}: {r['summary']['package']:.2f} s (batch "
                          f"{r['spec']['batch']})", xy=(0.02, 0.95 - 0.07 * (side == 32)),
                          xycoords="axes fraction", fontsize=7, color=colors["SDDImage"],
                          va="top")  # fmt: skip
    ax_t.set(xlabel="genes", ylabel="seconds per training step", title="Training step (CPU)")
    ax_m.set(xlabel="genes", ylabel="peak RSS (GiB)", title="Training peak memory")
    ax_t.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, 0.84))
    ax_m.legend(fontsize=7)
    ax_g2 = ax_g.twinx()
    for model in ("SDD", "SDDBlackout", "SDDImage"):
        rows = [r for r in results["generate"]
                if r["spec"]["model"] == model and "error" not in r["result"]]  # fmt: skip
        if not rows:
            continue
        cells = [r["spec"]["cells"] for r in rows]
        ax_g.plot(cells, [r["result"]["seconds"] for r in rows], "o-", color=colors[model],
                  label=f"{model} ({size_label(model, rows[0]['spec']['size'])}), seconds")  # fmt: skip
        ax_g2.plot(cells, [r["result"]["rss"] / GIB for r in rows], "s:", color=colors[model],
                   alpha=0.7)  # fmt: skip
    ax_g.set(xscale="log", yscale="log", xlabel="cells (images) generated", ylabel="seconds",
             title="Generation (solid: time, dotted: peak RSS)")  # fmt: skip
    ax_g2.set_ylabel("peak RSS (GiB)")
    ax_g.legend(fontsize=7, loc="upper left")
    meta = results["meta"]
    fig.suptitle(
        f"sdd cost curves, plain float32 path, {meta['device']}, {meta['threads']} thread(s) "
        f"(dotted lines in the first two panels: fitted cost model)", fontsize=9,
    )  # fmt: skip
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    os.replace(tmp, path)
    plt.close(fig)
    print(f"\nFigure written to {path}")


# ---------------------------------------------------------------------- main
def _describe_src(src: Path) -> str:
    """``path (git commit)`` of the measured source tree."""
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        head = ""
    return f"{src.resolve()}" + (f" (commit {head})" if head else "")


def plan(args) -> dict:
    """The rows to run: (kind, spec) with a time limit each."""
    q = args.quick
    genes = [int(g) for g in args.genes.split(",")] if args.genes else (
        [500, 1000] if q else [1000, 2000, 5000, 14_000, 20_000])  # fmt: skip
    cells = [int(c) for c in args.cells.split(",")] if args.cells else (
        [200, 1000] if q else [1000, 10_000, 100_000])  # fmt: skip
    common = {"device": args.device, "threads": args.threads, "src": str(args.src.resolve())}
    train, generate, adam = [], [], []
    models = args.models.split(",")
    steps, repeats = (3, 2) if q else (args.steps, args.repeats)
    if "train" in args.sections:
        for model in models:
            sizes = ([28] if q else [28, 32]) if model == "SDDImage" else genes
            batch = args.image_batch if model == "SDDImage" else args.batch_size
            if q:
                batch = min(batch, 16 if model == "SDDImage" else 64)
            for size in sizes:
                train.append({"kind": "train", "model": model, "size": size, "batch": batch,
                              "steps": steps, "repeats": repeats,
                              "memory_only": args.memory_only, **common})  # fmt: skip
    if "generate" in args.sections:
        for model in models:
            if model == "SDDImage":  # a U-Net evaluation costs ~15x a cell's: fewer
                counts, size = ([16, 64] if q else [100, 1000]), 28
            elif model == "SDDBlackout" and not args.cells:
                counts, size = [c for c in cells if c <= 10_000], args.gen_genes
            else:
                counts, size = cells, args.gen_genes
            for n in sorted(set(counts)):
                generate.append({"kind": "generate", "model": model, "size": size, "cells": n,
                                 "sample_steps": args.sample_steps, **common})  # fmt: skip
    if "adam" in args.sections and args.device == "cpu":
        adam.append({"kind": "adam", "size": 1000 if q else 5000, "repeats": 3, **common})
    backed, ddp = [], []
    if "backed" in args.sections:
        backed.append({"kind": "backed", "size": 1000 if q else args.backed_genes,
                       "cells": 2000 if q else args.backed_cells, "batch": args.batch_size,
                       "steps": steps, "repeats": repeats, "compression": "gzip", **common})  # fmt: skip
    if "ddp" in args.sections:  # the same global batch over 1 and `world` processes
        for world in (1, args.ddp_world):
            ddp.append({"kind": "ddp", "size": 1000 if q else args.ddp_genes, "world": world,
                        "batch": args.batch_size // world, "steps": steps, "repeats": repeats,
                        **common})  # fmt: skip
    return {"train": train, "generate": generate, "adam": adam, "backed": backed, "ddp": ddp}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (about two minutes)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per row")
    parser.add_argument(
        "--sections", default="train,generate,adam",
        help="comma-separated: train, generate, adam, backed, ddp (the last two are opt-in)",
    )  # fmt: skip
    parser.add_argument("--models", default="SDD,SDDImage,SDDBlackout")
    parser.add_argument("--genes", default=None, help="comma-separated gene counts")
    parser.add_argument("--cells", default=None, help="comma-separated cell counts to generate")
    parser.add_argument("--gen-genes", type=int, default=1000, help="genes of the generation rows")
    parser.add_argument("--sample-steps", type=int, default=1, help="sampler steps per cell")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats per row")
    parser.add_argument(
        "--memory-only", action="store_true",
        help="training rows: only the peak memory of the first train() call (no timing)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-batch", type=int, default=64)
    parser.add_argument("--backed-genes", type=int, default=5000)
    parser.add_argument("--backed-cells", type=int, default=20_000)
    parser.add_argument("--ddp-genes", type=int, default=5000)
    parser.add_argument("--ddp-world", type=int, default=2, help="processes of the DDP row")
    parser.add_argument("--row-timeout", type=float, default=600.0)
    parser.add_argument("--figure", type=Path, default=None, help="write the figure (PNG) here")
    parser.add_argument("--save", type=Path, default=None, help="write the results (JSON) here")
    parser.add_argument("--load", type=Path, default=None, help="print/draw saved results")
    parser.add_argument(
        "--src", type=Path, default=ROOT / "src",
        help="the sdd source tree to measure (default: this checkout's src/)",
    )  # fmt: skip
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker_main(args.worker)
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("No CUDA device.")

    if args.load:
        results = json.loads(args.load.read_text())
    else:
        threads = args.threads or torch.get_num_threads()
        device_name = (
            torch.cuda.get_device_name(0) if args.device.startswith("cuda")
            else f"CPU ({platform.machine()}, {os.cpu_count()} cores visible)"
        )  # fmt: skip
        results = {
            "meta": {
                "device": device_name, "torch": torch.__version__, "threads": threads,
                "python": platform.python_version(), "load_start": os.getloadavg()[0],
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                "src": _describe_src(args.src),
            },
            "train": [], "generate": [], "adam": [], "backed": [], "ddp": [],
        }  # fmt: skip
        args.threads = threads
        todo = plan(args)
        t_all = time.perf_counter()
        for section in ("train", "generate", "adam", "backed", "ddp"):
            for spec in todo[section]:
                t0 = time.perf_counter()
                result = run_worker(spec, args.row_timeout)
                row = {"spec": spec, "result": result, "wall": time.perf_counter() - t0}
                if section == "train" and "error" not in result:
                    row["summary"] = train_summary(row)
                results[section].append(row)
                what = f"{spec['model']} {spec['size']}" if "model" in spec else section
                extra = f", {spec['cells']:,} cells" if section == "generate" else ""
                status = result.get("error", "ok")
                print(f"[{time.perf_counter() - t_all:6.0f} s] {section} {what}{extra}: "
                      f"{status} ({row['wall']:.0f} s)", flush=True)  # fmt: skip
        results["meta"]["load_end"] = os.getloadavg()[0]
        results["meta"]["seconds"] = time.perf_counter() - t_all
    print_results(results)
    print(f"\n(command: python benchmarks/{results['meta']['command']}; "
          f"{results['meta'].get('seconds', 0):.0f} s)")  # fmt: skip
    if args.save and not args.load:
        tmp = args.save.with_name(f".{args.save.name}.tmp")
        tmp.write_text(json.dumps(results, indent=1))
        os.replace(tmp, args.save)
    if args.figure:
        figure(results, args.figure)


if __name__ == "__main__":
    main()
