"""Table 1 (images): P-sparsity, L-sparsity and a home-made FID for SDD vs the plain baseline.

Trains `sdd.SDDImage` with sparsity bits (SDD) and without (the plain diffusion baseline:
same U-Net, no SB channels) on MNIST or Fashion-MNIST from the shared data folder,
generates images and prints, next to the real test images:

- P-sparsity: fraction of zero pixels after quantising to 256 grey levels of [0, 255]
  (`sdd.metrics.pixel_sparsity`);
- L-sparsity: fraction of exact zeros in the continuous model output, before any
  quantisation (`sdd.metrics.logit_sparsity`);
- FID*: Fréchet distance of the 128-d penultimate features of a small CNN classifier
  trained here on real training images (`--fid-train-images`), against real test images. It is NOT the Inception FID (no Inception weights offline), so
  it is only comparable between rows of the same run. The "real" row compares two
  disjoint sets of real test images (the noise floor). `--no-fid` skips it.

CPU defaults are tiny (minutes on 2 cores) and give far from converged models; the
numbers show the mechanism, not the paper's quality. Paper scale (GPU):

    python benchmarks/images.py                                   # MNIST, CPU defaults
    python benchmarks/images.py --dataset fashion-mnist
    python benchmarks/images.py --accelerator cuda --paper --train-images 60000 \\
        --steps 100000 --batch-size 128 --n-generate 5000 --sampler ddpm --sample-steps 1000
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

import sdd

DATA = (
    Path(
        os.environ.get(
            "SDD_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
        )
    )
    / "images"
)


class SmallCNN(nn.Module):
    """A LeNet-style classifier whose 128-d penultimate layer serves as FID* features."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _to_input(images: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(images, dtype=np.float32) / 255.0)[:, None]


def train_feature_net(
    x: np.ndarray, y: np.ndarray, epochs: int, seed: int
) -> tuple[SmallCNN, float]:
    torch.manual_seed(seed)
    net = SmallCNN()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    inputs, targets = _to_input(x), torch.as_tensor(y, dtype=torch.long)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for idx in np.array_split(rng.permutation(len(x)), max(1, len(x) // 128)):
            loss = nn.functional.cross_entropy(net(inputs[idx]), targets[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval(), loss.item()


@torch.no_grad()
def features(net: SmallCNN, images: np.ndarray) -> np.ndarray:
    inputs = _to_input(images)
    return torch.cat(
        [net.features(inputs[i : i + 512]) for i in range(0, len(inputs), 512)]
    ).numpy()


@torch.no_grad()
def accuracy(net: SmallCNN, x: np.ndarray, y: np.ndarray) -> float:
    logits = torch.cat([net(_to_input(x[i : i + 512])) for i in range(0, len(x), 512)])
    return float((logits.argmax(1).numpy() == y).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the idx files")
    p.add_argument("--train-images", type=int, default=2000, help="training images used")
    p.add_argument("--steps", type=int, default=200, help="training steps per model")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--channel-mult", type=int, nargs="+", default=[1, 2])
    p.add_argument("--num-res-blocks", type=int, default=1)
    p.add_argument("--attention-stages", type=int, nargs="*", default=[])
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--paper", action="store_true", help="use sdd.nn.PAPER_UNET (~37M parameters)")
    p.add_argument("--n-generate", type=int, default=200, help="images generated per model")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddpm")
    p.add_argument("--sample-steps", type=int, default=50)
    p.add_argument("--no-fid", action="store_true", help="skip the home-made FID*")
    p.add_argument(
        "--fid-train-images", type=int, default=5000, help="training images of the FID* net"
    )
    p.add_argument("--fid-epochs", type=int, default=2)
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    directory = args.data_dir or DATA / args.dataset
    x_train, y_train = sdd.datasets.read_mnist(directory, split="train")
    x_test, y_test = sdd.datasets.read_mnist(directory, split="test")
    rng = np.random.default_rng(args.seed)
    train_idx = rng.permutation(len(x_train))[: args.train_images]
    x_fit = x_train[train_idx]
    test_idx = rng.permutation(len(x_test))
    n = args.n_generate
    if 2 * n > len(x_test):
        raise SystemExit(f"--n-generate must be at most {len(x_test) // 2}.")
    x_ref, x_real = x_test[test_idx[:n]], x_test[test_idx[n : 2 * n]]

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
        f"{args.dataset}: {len(x_fit)} training images, {(x_fit == 0).mean():.2%} zero pixels; "
        f"U-Net {unet}; {args.steps} steps, batch {args.batch_size}; "
        f"{n} images by {args.sampler.upper()} {args.sample_steps} steps; device {args.accelerator}"
    )

    feat_net = None
    if not args.no_fid:
        t0 = time.time()
        fid_idx = rng.permutation(len(x_train))[: args.fid_train_images]
        feat_net, _ = train_feature_net(
            x_train[fid_idx], y_train[fid_idx], args.fid_epochs, args.seed
        )
        acc = accuracy(feat_net, x_test[test_idx[2 * n :]], y_test[test_idx[2 * n :]])
        print(
            f"FID* feature net (small CNN, trained here): test accuracy {acc:.3f}, {time.time() - t0:.0f} s"
        )
        ref_features = features(feat_net, x_ref)

    def row(name: str, images: np.ndarray, **extra) -> dict:
        out = {
            "method": name,
            "P-sparsity": sdd.metrics.pixel_sparsity(images),
            "L-sparsity": sdd.metrics.logit_sparsity(images),
        }
        if feat_net is not None:
            out["FID*"] = sdd.metrics.frechet_distance(ref_features, features(feat_net, images))
        return {**out, **extra}

    rows = [row("real (test images)", x_real)]
    for name, bits in (("SDD", True), ("baseline", False)):
        torch.manual_seed(args.seed)  # same initial weights in every run
        model = sdd.SDDImage(x_fit, sparsity_bits=bits, unet_kwargs=unet)
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
            n,
            sampler=args.sampler,
            n_steps=args.sample_steps,
            execution=sdd.Execution(accelerator=args.accelerator, progress=False),
            random_state=args.seed,
        )
        gen_s = time.time() - t0
        loss = model.history_["loss"].tail(50).mean()
        rows.append(
            row(
                name,
                gen.images,
                params_M=model.n_params / 1e6,
                final_loss=loss,
                train_s=train_s,
                gen_s=gen_s,
            )
        )
        print(f"  {name}: {model}")

    table = pd.DataFrame(rows).set_index("method")
    print()
    print(table.to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))
    if not args.no_fid:
        print(
            "FID*: small-CNN features trained here, not Inception; compare rows of this run only."
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out)


if __name__ == "__main__":
    main()
