"""Table 2 (calorimeter): W1 of image pT and mass, signal/background, SDD vs the plain baseline.

Trains class-conditional `sdd.SDDImage` models with sparsity bits (SDD) and without (the
plain diffusion baseline: same U-Net, no SB channels) on the shared simulated
muon-isolation images (`calorimeter/muon_isolation_sim.npz`, a Pythia stand-in for the
paper's data set: do not quote its numbers as results on the real data). Images of each
class are generated and compared with held-out real images of that class:

- W1 of the image transverse momentum and of the image invariant mass (each pixel a
  massless particle at its (eta, phi) centre, `sdd.metrics.calorimeter_w1`), in GeV;
- the fraction of exact-zero pixels (real: ~99.3%).

The "real (train vs held-out)" row compares the training images with the held-out ones:
the W1 floor from finite samples. CPU defaults are tiny (minutes on 2 cores) and far from
converged. Paper scale (GPU):

    python benchmarks/calorimeter.py                              # CPU defaults
    python benchmarks/calorimeter.py --accelerator cuda --paper --train-images 10000 \\
        --steps 100000 --batch-size 128 --n-per-class 1000 --sampler ddpm --sample-steps 1000
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import sdd

DATA = (
    Path(
        os.environ.get(
            "SDD_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
        )
    )
    / "calorimeter"
    / "muon_isolation_sim.npz"
)
NAMES = {1: "signal", 0: "background"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DATA, help=".npz or HDF5 calorimeter file")
    p.add_argument("--train-images", type=int, default=4000, help="training images (rest held out)")
    p.add_argument("--n-per-class", type=int, default=100, help="generated images per class")
    p.add_argument("--steps", type=int, default=200, help="training steps per model")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument(
        "--transform",
        choices=["none", "log1p"],
        default="log1p",
        help="intensity transform before scaling (pixel pT is heavy-tailed)",
    )
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--channel-mult", type=int, nargs="+", default=[1, 2])
    p.add_argument("--num-res-blocks", type=int, default=1)
    p.add_argument("--attention-stages", type=int, nargs="*", default=[])
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--paper", action="store_true", help="use sdd.nn.PAPER_UNET (~37M parameters)")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddpm")
    p.add_argument("--sample-steps", type=int, default=50)
    p.add_argument("--guidance-scale", type=float, default=0.0)
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    data = sdd.datasets.read_calorimeter(args.data)
    if data.eta is None:
        raise SystemExit(f"{args.data} has no eta/phi bin edges; the observables need them.")
    n_train = args.train_images
    if not 0 < n_train < len(data):
        raise SystemExit(f"--train-images must be between 1 and {len(data) - 1}.")
    x_fit, y_fit = data.images[:n_train], data.labels[:n_train]  # the file is in random order
    x_held, y_held = data.images[n_train:], data.labels[n_train:]
    eta, phi = data.eta, data.phi

    unet = (
        dict(sdd.nn.PAPER_UNET)
        if args.paper
        else {
            "base_channels": args.base_channels,
            "channel_mult": args.channel_mult,
            "num_res_blocks": args.num_res_blocks,
            "attention_stages": args.attention_stages,
            "dropout": args.dropout,
        }
    )
    print(
        f"{args.data.name}: {n_train} training / {len(x_held)} held-out images of "
        f"{x_fit.shape[1]}x{x_fit.shape[2]}, {(x_fit == 0).mean():.2%} zero pixels; U-Net {unet}, "
        f"transform {args.transform}; {args.steps} steps, batch {args.batch_size}; "
        f"{args.n_per_class} images per class by {args.sampler.upper()} {args.sample_steps} steps; "
        f"device {args.accelerator}"
    )

    def row(name: str, images: np.ndarray, labels: np.ndarray, **extra) -> dict:
        table = sdd.metrics.calorimeter_w1(
            x_held,
            images,
            eta=eta,
            phi=phi,
            real_labels=y_held,
            generated_labels=labels,
            class_names=NAMES,
        )
        out = {"method": name}
        for column in ("W1_pt", "W1_mass"):
            for cls in ("signal", "background"):
                out[f"{column} {cls}"] = table.loc[cls, column]
        out["zero pixels"] = float((images == 0).mean())
        return {**out, **extra}

    rows = [row("real (train vs held-out)", x_fit, y_fit)]
    labels = np.repeat([1, 0], args.n_per_class)
    for name, bits in (("SDD", True), ("baseline", False)):
        torch.manual_seed(args.seed)  # same initial weights in every run
        model = sdd.SDDImage(
            x_fit, y_fit, sparsity_bits=bits, intensity_transform=args.transform, unet_kwargs=unet
        )
        t0 = time.time()
        model.train(
            args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            execution=sdd.Execution(accelerator=args.accelerator, progress=False),
            random_state=args.seed,
        )
        train_s = time.time() - t0
        t0 = time.time()
        gen = model.generate(
            len(labels),
            labels=labels,
            sampler=args.sampler,
            n_steps=args.sample_steps,
            guidance_scale=args.guidance_scale,
            execution=sdd.Execution(accelerator=args.accelerator, progress=False),
            random_state=args.seed,
        )
        gen_s = time.time() - t0
        rows.append(
            row(
                name,
                gen.images,
                gen.labels,
                final_loss=model.history_["loss"].tail(50).mean(),
                train_s=train_s,
                gen_s=gen_s,
            )
        )
        print(f"  {name}: {model}")

    table = pd.DataFrame(rows).set_index("method")
    print()
    print(
        "W1 in GeV between held-out real images and each row's images, per class (Table 2 columns):"
    )
    print(table.to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out)


if __name__ == "__main__":
    main()
