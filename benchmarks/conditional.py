"""Conditional generation, counts output and imputation of SDD on a labelled dataset.

Preprocesses a labelled shared scRNA dataset (default: 10x PBMC 4k, 8 cell types in
``obs["cell_type"]``; filter genes in < 3 cells and cells with < 10 genes, keep the raw
counts in ``layers["counts"]``, normalize_total 1e4, log1p, highly variable genes), splits
the cells into a training set and a held-out set (``--held-out`` fraction), and trains one
conditional model (``labels_key="cell_type"``, ``counts_layer="counts"``, condition dropout
0.1). Then:

1. **Conditional generation.** For each guidance scale, as many cells per label as the
   held-out set has (``labels=held_out.obs["cell_type"]``), with ``counts=True``. Per label:
   SCC of gene means, MMD² and scaled iLISI against the held-out cells of that label
   (``sdd.tl.evaluate(..., labels_key="cell_type")``), and the accuracy of a classifier
   trained on real cells (logistic regression on a 50-PC PCA of the training cells) on the
   generated cells, next to its accuracy on the held-out real cells (the reference).
2. **Counts.** Median counts per cell over the modelled genes, real (held-out
   ``layers["counts"]``) vs generated (``layers["counts"]``), per label; checks that
   counts are integers with zeros exactly where the sparsity bits are 0.
3. **Imputation.** ``--mask-fraction`` of the genes are hidden in every held-out cell and
   filled in with ``model.impute`` (with and without the cells' labels; one sample, and
   the mean of ``--impute-samples`` samples), against imputing the training mean of each
   gene and the training mean of each gene within the cell's label. Scores on the hidden
   entries: Pearson r per cell (across hidden genes, averaged), Pearson r per gene
   (across cells, averaged; undefined for the global mean), Pearson r over all hidden
   entries, RMSE, and the fraction of hidden entries whose zero / non-zero status is right
   (the baselines predict non-zero where the gene is non-zero in most training cells of
   the group).

    python benchmarks/conditional.py                                  # CPU defaults
    python benchmarks/conditional.py --steps 200 --sampling-steps 10  # smoke test
    python benchmarks/conditional.py --accelerator cuda --genes 1000 --steps 30000 \\
        --hidden 1024 512 256 --batch-size 256 --lr 2e-4 --sampling-steps 1000 --threads 0

CPU defaults: 500 genes, 1500 steps, hidden 256-128, batch 128, lr 1e-3, DDPM with 100
steps, guidance scales 0 and 2, 20 % held-out cells, 15 % hidden genes, 3 imputation
samples; torch on one thread (``--threads 1``: two threads on a busy two-core machine were
~9x slower; ``--threads 0`` keeps torch's default). A few minutes on a CPU. Models this
small and this briefly trained are far from converged; the tables show where they stand.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
import torch
from scipy import sparse
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

import sdd

DATA = (
    Path(
        os.environ.get(
            "SDD_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
        )
    )
    / "scrna"
)


def load(name: str, labels_key: str, n_top_genes: int, seed: int) -> sc.AnnData:
    path = DATA / f"{name}.h5ad"
    if not path.exists():
        raise SystemExit(f"{path} not found (set SDD_SHARED_DATA to the shared data folder).")
    adata = sc.read_h5ad(path)
    sc.pp.filter_genes(adata, min_cells=3)
    sc.pp.filter_cells(adata, min_genes=10)
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=n_top_genes, subset=True)
    if labels_key not in adata.obs:
        # no labels: cluster (needs leidenalg); the tables then score clusters, not cell types
        print(f"no obs[{labels_key!r}] in {name}: labels are Leiden clusters of the data")
        sc.pp.pca(adata, random_state=seed)
        sc.pp.neighbors(adata, random_state=seed)
        sc.tl.leiden(adata, key_added=labels_key, random_state=seed)
    adata.obs[labels_key] = adata.obs[labels_key].astype(str).astype("category")
    return adata


def dense(x) -> np.ndarray:
    return x.toarray() if sparse.issparse(x) else np.asarray(x)


def row_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of the Pearson r between a[i] and b[i] (rows with no variance skipped)."""
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    ok = den > 0
    return float(np.mean((a * b).sum(1)[ok] / den[ok])) if ok.any() else float("nan")


def classifier_accuracy(train, held_out, generated, labels_key: str, seed: int):
    pca = PCA(n_components=50, random_state=seed).fit(dense(train.X))
    clf = LogisticRegression(max_iter=2000).fit(
        pca.transform(dense(train.X)), train.obs[labels_key].astype(str)
    )

    def per_label(data) -> pd.Series:
        truth = data.obs[labels_key].astype(str).to_numpy()
        hit = clf.predict(pca.transform(dense(data.X))) == truth
        return pd.Series(hit).groupby(truth).mean()

    return per_label(held_out), {w: per_label(g) for w, g in generated.items()}


def generation_tables(args, train, held_out, generated) -> None:
    key = args.labels_key
    acc_real, acc_gen = classifier_accuracy(train, held_out, generated, key, args.seed)
    sizes = held_out.obs[key].astype(str).value_counts()
    for w, gen in generated.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = sdd.tl.evaluate(held_out, gen, labels_key=key, random_state=args.seed)
        values = table.pivot(index="group", columns="metric", values="value")
        print(f"\n### Conditional generation, guidance_scale = {w:g}\n")
        print("| label | cells | SCC ↑ | MMD ↓ | LISI ↑ | accuracy, generated | accuracy, real |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label in [*sorted(sizes.index, key=lambda s: (len(s), s)), "all"]:
            n = int(sizes.sum() if label == "all" else sizes[label])
            if label == "all":
                a_gen = np.average(acc_gen[w][sizes.index], weights=sizes.to_numpy())
                a_real = np.average(acc_real[sizes.index], weights=sizes.to_numpy())
            else:
                a_gen, a_real = acc_gen[w].get(label, np.nan), acc_real.get(label, np.nan)
            if label in values.index:
                r = values.loc[label]
                scores = f"{r['SCC']:.3f} | {r['MMD']:.4f} | {r['LISI']:.3f}"
            else:
                scores = "– | – | –"  # fewer than min_cells cells
            print(f"| {label} | {n} | {scores} | {a_gen:.3f} | {a_real:.3f} |")
    print(f"\nchance accuracy (largest label share): {sizes.max() / sizes.sum():.3f}")


def counts_table(args, held_out, gen) -> None:
    key = args.labels_key
    counts = gen.layers["counts"]
    integer = bool(np.all(counts.data == np.round(counts.data)) and counts.data.min() >= 1)
    zeros = (counts != 0).toarray() == (gen.layers["sparsity_bits"].toarray() != 0)
    real_total = pd.Series(np.asarray(held_out.layers["counts"].sum(1)).ravel())
    real_med = real_total.groupby(held_out.obs[key].astype(str).to_numpy()).median()
    gen_med = gen.obs.groupby(gen.obs[key].astype(str), observed=True)["total_counts"].median()
    print("\n### Counts output (guidance_scale = 0)\n")
    print(
        f"integer counts >= 1 on non-zeros: {integer}; zeros exactly where sparsity bits "
        f"are 0: {bool(zeros.all())}; zero fraction real "
        f"{1 - held_out.layers['counts'].nnz / np.prod(held_out.shape):.4f}, generated "
        f"{1 - counts.nnz / np.prod(counts.shape):.4f}\n"
    )
    print("| label | median counts per cell, real | generated |")
    print("|---|---:|---:|")
    for label in sorted(real_med.index, key=lambda s: (len(s), s)):
        print(f"| {label} | {real_med[label]:.0f} | {gen_med.get(label, np.nan):.0f} |")


def imputation_table(args, model, train, held_out) -> None:
    key = args.labels_key
    rng = np.random.default_rng(args.seed)
    n_hidden = max(1, round(args.mask_fraction * held_out.n_vars))
    hidden = np.sort(rng.choice(held_out.n_vars, n_hidden, replace=False))
    truth = dense(held_out.X)[:, hidden]
    x_train = dense(train.X)[:, hidden]
    labels_train = train.obs[key].astype(str).to_numpy()
    labels_held = held_out.obs[key].astype(str).to_numpy()
    methods: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    # baselines: (values, predicted non-zero)
    mean = np.broadcast_to(x_train.mean(0), truth.shape)
    methods["gene mean"] = (mean, np.broadcast_to((x_train > 0).mean(0) > 0.5, truth.shape))
    label_mean = np.zeros_like(truth)
    label_nz = np.zeros(truth.shape, dtype=bool)
    for label in np.unique(labels_held):
        group = x_train[labels_train == label] if (labels_train == label).any() else x_train
        label_mean[labels_held == label] = group.mean(0)
        label_nz[labels_held == label] = (group > 0).mean(0) > 0.5
    methods["gene mean within label"] = (label_mean, label_nz)
    genes = list(held_out.var_names[hidden])
    timing = {}
    for name, labels in (("SDD impute", None), ("SDD impute + labels", held_out.obs[key])):
        samples = []
        t0 = time.perf_counter()
        for k in range(args.impute_samples):
            out = model.impute(
                held_out,
                genes,
                labels=labels,
                sampler=args.sampler,
                n_steps=args.sampling_steps,
                execution=sdd.Execution(accelerator=args.accelerator, progress=False),
                random_state=args.seed + k,
            )
            observed = np.setdiff1d(np.arange(held_out.n_vars), hidden)
            assert (out.X[:, observed] != held_out.X[:, observed]).nnz == 0  # untouched
            samples.append(dense(out.X)[:, hidden])
        timing[name] = (time.perf_counter() - t0) / args.impute_samples
        methods[f"{name}, 1 sample"] = (samples[0], samples[0] > 0)
        avg = np.mean(samples, axis=0)
        nz = np.mean([s > 0 for s in samples], axis=0) > 0.5
        methods[f"{name}, mean of {args.impute_samples}"] = (avg, nz)

    print(
        f"\n### Imputation of {n_hidden} hidden genes ({args.mask_fraction:.0%}) in "
        f"{held_out.n_obs} held-out cells\n"
    )
    print("| method | r per cell ↑ | r per gene ↑ | r all entries ↑ | RMSE ↓ | zero status ↑ |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (values, nonzero) in methods.items():
        per_gene = "–" if name == "gene mean" else f"{row_corr(values.T, truth.T):.3f}"
        r_all = np.corrcoef(values.ravel(), truth.ravel())[0, 1]
        rmse = np.sqrt(np.mean((values - truth) ** 2))
        status = np.mean(nonzero == (truth > 0))
        print(
            f"| {name} | {row_corr(values, truth):.3f} | {per_gene} | {r_all:.3f} | "
            f"{rmse:.3f} | {status:.3f} |"
        )
    print(
        "\nSDD imputation time per sample: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timing.items())
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="pbmc4k_top2000", help="file stem in shared/data/scrna")
    p.add_argument("--labels-key", default="cell_type")
    p.add_argument("--genes", type=int, default=500, help="highly variable genes kept")
    p.add_argument("--steps", type=int, default=1500, help="training steps")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 128])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--sampler", default="ddpm", choices=["ddpm", "ddim"])
    p.add_argument("--sampling-steps", type=int, default=100)
    p.add_argument("--guidance", type=float, nargs="+", default=[0.0, 2.0])
    p.add_argument("--held-out", type=float, default=0.2, help="fraction of cells held out")
    p.add_argument("--mask-fraction", type=float, default=0.15, help="fraction of genes hidden")
    p.add_argument("--impute-samples", type=int, default=3)
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    t_start = time.perf_counter()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    adata = load(args.dataset, args.labels_key, args.genes, args.seed)
    is_held_out = np.random.default_rng(args.seed).random(adata.n_obs) < args.held_out
    train, held_out = adata[~is_held_out].copy(), adata[is_held_out].copy()
    sizes = train.obs[args.labels_key].value_counts()
    print(
        f"{args.dataset}: {adata.n_obs} cells x {adata.n_vars} genes, "
        f"{sizes.size} labels in obs[{args.labels_key!r}]; {train.n_obs} training cells, "
        f"{held_out.n_obs} held out"
    )
    print(
        f"{args.steps} training steps, hidden {args.hidden}, batch {args.batch_size}, "
        f"lr {args.lr}, {args.sampler.upper()} with {args.sampling_steps} steps, "
        f"device {args.accelerator}, torch threads {torch.get_num_threads()}, seed {args.seed}"
    )
    sdd.SDD.setup_anndata(train, labels_key=args.labels_key, counts_layer="counts")
    model = sdd.SDD(train, hidden=args.hidden)
    t0 = time.perf_counter()
    model.train(
        args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        execution=sdd.Execution(accelerator=args.accelerator, progress=False),
        random_state=args.seed,
    )
    print(
        f"trained {model.n_params / 1e6:.2f}M parameters in {time.perf_counter() - t0:.0f} s, "
        f"final loss {model.history_['loss'].tail(100).mean():.4f}"
    )
    generated = {}
    for w in args.guidance:
        t0 = time.perf_counter()
        generated[w] = model.generate(
            labels=held_out.obs[args.labels_key],
            guidance_scale=w,
            counts=True,
            sampler=args.sampler,
            n_steps=args.sampling_steps,
            store_dense=False,
            execution=sdd.Execution(accelerator=args.accelerator, progress=False),
            random_state=args.seed,
        )
        print(f"guidance {w:g}: {held_out.n_obs} cells in {time.perf_counter() - t0:.1f} s")
    generation_tables(args, train, held_out, generated)
    counts_table(args, held_out, generated[args.guidance[0]])
    imputation_table(args, model, train, held_out)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
