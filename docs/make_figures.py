"""Draw the figures of the docs' method page with sdd's own encoding and schedule.

Run ``python docs/make_figures.py [OUTDIR]`` (default ``docs/generated/``); ``conf.py``
runs it on every docs build, so no image is committed or downloaded. Nothing is trained:
the "estimate" in the last panel is the clean input plus noise, to show what decoding
does to any estimate.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from sdd.diffusion import CosineSchedule, sparsity  # noqa: E402

HERE = Path(__file__).resolve().parent
N_GENES = 24


def toy_cell(seed: int = 3) -> np.ndarray:
    """One cell's log1p expression over ``N_GENES`` genes, about 60% exact zeros."""
    rng = np.random.default_rng(seed)
    counts = (1 + rng.poisson(2.0, N_GENES)) * (rng.random(N_GENES) < 0.4)
    return np.log1p(counts).astype(np.float32)


def _strip(ax, values: np.ndarray, label: str, *, cmap: str = "RdBu_r", vmin=-1.0, vmax=1.0):
    image = np.ma.masked_invalid(values[None, :])
    colormap = plt.get_cmap(cmap).copy()
    colormap.set_bad("white")
    ax.imshow(image, cmap=colormap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xlim(-0.5, 2 * N_GENES - 0.5)  # a data-only strip fills the left half
    ax.set_yticks([0], [label])
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)


def sparsity_bits_figure(path: Path) -> Path:
    """Encode, diffuse and decode one toy cell; save a PNG to ``path``."""
    x = toy_cell()
    scale = x.max()
    scaled = torch.from_numpy(2 * x / scale - 1)[None]  # a zero maps to -1
    z0 = sparsity.encode(scaled, torch.from_numpy(x != 0)[None])[0].numpy()

    schedule = CosineSchedule()
    generator = torch.Generator().manual_seed(0)
    eps = torch.randn(z0.shape, generator=generator).numpy()
    times = [0.0, 0.3, 0.5, 0.7, 1.0]

    # a noisy "estimate" of x0, then the decode step as sampling ends
    estimate = torch.from_numpy(z0 + 0.2 * torch.randn(z0.shape, generator=generator).numpy())
    masked, dense, bits = sparsity.decode(estimate[None].clamp(-1, 1), zero_value=-1.0)
    output = ((masked[0].numpy() + 1) / 2 * scale).astype(np.float32)
    plain = ((dense[0].numpy() + 1) / 2 * scale).clip(0, None)

    ratios = [1, 1, 0.9, 1, 1, 1, 1, 1, 0.9, 1, 1, 1]  # two spacer rows for the titles
    fig, axes = plt.subplots(
        len(ratios), 1, figsize=(8.0, 6.4), gridspec_kw={"hspace": 0.3, "height_ratios": ratios}
    )
    fig.subplots_adjust(left=0.22, right=0.98, top=0.94, bottom=0.06)
    rows = iter(axes)

    ax = next(rows)
    _strip(ax, np.where(x > 0, x, np.nan), "expression x", cmap="viridis", vmin=0, vmax=scale)
    ax.set_title("1. Encode: data half | sparsity-bit half (white = exact zero)", loc="left")
    ax = next(rows)
    _strip(ax, z0, "[2x/m - 1, 2sb - 1]")
    ax.axvline(N_GENES - 0.5, color="k", lw=1)
    next(rows).axis("off")

    for t in times:
        ax = next(rows)
        alpha, sigma = schedule.alpha_sigma(torch.tensor(t))
        _strip(ax, float(alpha) * z0 + float(sigma) * eps, f"z_t, t = {t:.1f}")
        ax.axvline(N_GENES - 0.5, color="k", lw=1)
        if t == times[0]:
            ax.set_title("2. Diffuse [x, sb] together (cosine log-SNR schedule)", loc="left")
    next(rows).axis("off")

    ax = next(rows)
    _strip(ax, np.concatenate([dense[0].numpy(), estimate.numpy()[N_GENES:]]), "estimate of x0")
    ax.axvline(N_GENES - 0.5, color="k", lw=1)
    ax.set_title("3. Decode: threshold the SB half at 0, mask the data half", loc="left")
    ax = next(rows)
    _strip(ax, np.where(bits[0].numpy() > 0, output, np.nan), "SDD output", cmap="viridis",
           vmin=0, vmax=scale)  # fmt: skip
    ax.text(1.5 * N_GENES, 0, "(the SB half only decides the mask)", ha="center", va="center",
            fontsize=8)  # fmt: skip
    ax = next(rows)
    _strip(ax, plain, "plain diffusion", cmap="viridis", vmin=0, vmax=scale)
    ax.text(1.5 * N_GENES, 0, "(no SB half: the same data estimate)", ha="center", va="center",
            fontsize=8)  # fmt: skip

    n_exact = int((output == 0).sum())
    fig.text(
        0.22,
        0.015,
        f"SDD output: {n_exact}/{N_GENES} exact zeros (true cell: {int((x == 0).sum())}); "
        f"plain diffusion: {int((plain == 0).sum())} exact zeros, "
        f"{int(((plain > 0) & (plain < 0.1 * scale)).sum())} small positive values.",
        fontsize=8,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(outdir: str | Path | None = None) -> list[Path]:
    """Write every figure into ``outdir`` (default ``docs/generated``)."""
    outdir = Path(outdir) if outdir is not None else HERE / "generated"
    return [sparsity_bits_figure(outdir / "sparsity_bits.png")]


if __name__ == "__main__":
    for written in main(sys.argv[1] if len(sys.argv) > 1 else None):
        print(f"wrote {written}")
