"""The ``sdd`` command line: each command on a tiny dataset, ``--help``, and bad input."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import QUIET, make_counts_adata

import sdd
from sdd.cli import build_parser, main

TINY_FIT = ["--max-steps", "6", "--batch-size", "32", "--hidden", "32", "16", "--emb-dim", "16"]
FAST_GEN = ["--sampler", "ddim", "--n-steps", "3", "-q"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and leave the other core to others)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli")
    make_counts_adata(n_cells=60, n_genes=12).write_h5ad(path / "real.h5ad")
    return path


@pytest.fixture(scope="module")
def model_dir(workdir: Path) -> Path:
    """A conditional model trained through ``sdd fit`` (shared by the tests below)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = workdir / "model"
    code = main(
        ["fit", str(workdir / "real.h5ad"), "--labels-key", "cell_type", "--out", str(out), "-q"]
        + TINY_FIT
    )
    torch.set_num_threads(before)
    assert code == 0
    return out


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# ----------------------------------------------------------------------------- help
@pytest.mark.parametrize("command", [[], ["fit"], ["generate"], ["evaluate"], ["info"]])
def test_help(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: sdd {' '.join(command)}".rstrip())


def test_demo_help_goes_to_the_demo(capsys):
    assert main(["demo", "--help"]) == 0
    assert "--sampling-steps" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_runs_and_explains_its_numbers(tmp_path, monkeypatch, capsys):
    """The README's demo, on tiny settings: a table with floor and best values, the
    generated cells and the figure written."""
    from sdd import demo

    calibrate = sdd.SDD.calibrate
    monkeypatch.setattr(
        sdd.SDD, "calibrate", lambda self, *a, **kw: calibrate(self, 60, n_steps=3, **kw)
    )
    out, figure = tmp_path / "gen.h5ad", tmp_path / "demo.png"
    demo.main(["--steps", "5", "--sampling-steps", "3", "--out", str(out), "--figure", str(figure)])
    text = capsys.readouterr().out
    assert "floor" in text and "below_real_p1" in text and "AUC_rf_qc" in text
    assert out.is_file() and figure.read_bytes()[:4] == b"\x89PNG"


def test_version(capsys):
    assert main(["--version"]) == 0
    assert sdd.__version__ in capsys.readouterr().out


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["fit", "data.h5ad"]) == 2  # --out is required
    assert main(["generate", "m", "-n", "ten", "-o", "x.h5ad"]) == 2
    assert main(["evaluate", "a.h5ad", "b.h5ad", "--bogus"]) == 2


# ------------------------------------------------------------------ fit/generate/evaluate
def test_fit_writes_model(model_dir: Path, capsys):
    assert (model_dir / "model.pt").is_file() and (model_dir / "config.json").is_file()
    model = sdd.SDD.load(model_dir)
    assert model.is_trained_ and model.init_args_["hidden"] == [32, 16]
    assert model.setup_args_["labels_key"] == "cell_type"
    assert main(["info", str(model_dir)]) == 0
    assert "trained for 6 steps" in capsys.readouterr().out


@pytest.mark.slow
def test_generate_and_evaluate(model_dir: Path, workdir: Path, capsys):
    gen_path = workdir / "generated.h5ad"
    args = ["generate", str(model_dir), "-n", "40", "-o", str(gen_path), "--seed", "3"]
    assert main(args + FAST_GEN) == 0
    gen = ad.read_h5ad(gen_path)
    assert gen.shape == (40, 12) and sp.issparse(gen.X)
    np.testing.assert_array_equal(gen.layers["sparsity_bits"].toarray(), gen.X.toarray() != 0)
    assert gen.uns["sdd"]["sampler"] == "ddim" and gen.uns["sdd"]["random_state"] == 3

    # reproducible by seed
    again = workdir / "again.h5ad"
    assert main(["generate", str(model_dir), "-n", "40", "-o", str(again), "--seed", "3"]
                + FAST_GEN + ["--no-dense"]) == 0  # fmt: skip
    np.testing.assert_array_equal(ad.read_h5ad(again).X.toarray(), gen.X.toarray())

    capsys.readouterr()
    csv = workdir / "table.csv"
    args = ["evaluate", str(workdir / "real.h5ad"), str(gen_path), "--csv", str(csv), "-q"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "SCC" in out and "PCC" in out
    assert csv.is_file()


def test_generate_conditional(model_dir: Path, workdir: Path):
    out = workdir / "cond.h5ad"
    args = ["generate", str(model_dir), "-n", "8", "-o", str(out), "--label", "B"]
    assert main(args + FAST_GEN) == 0
    gen = ad.read_h5ad(out)
    assert list(gen.obs["cell_type"].astype(str).unique()) == ["B"]
    out2 = workdir / "cond2.h5ad"
    args = ["generate", str(model_dir), "-n", "4", "-o", str(out2), "--label", "cell_type=A"]
    assert main(args + FAST_GEN + ["--guidance-scale", "1.0"]) == 0
    assert list(ad.read_h5ad(out2).obs["cell_type"].astype(str).unique()) == ["A"]


def test_fit_reports_training_and_calibration_apart(workdir: Path, capsys):
    out = workdir / "timed"
    assert main(["fit", str(workdir / "real.h5ad"), "--out", str(out), *TINY_FIT]) == 0
    err = capsys.readouterr().err
    trained = re.search(r"trained 6 steps in [\d.]+ s \(final loss [^)]*\)\n", err)
    defaults = inspect.signature(sdd.SDD.calibrate).parameters
    steps, cells = defaults["n_steps"].default, defaults["n_cells"].default
    calibrated = re.search(
        rf"calibrated on {cells} generated cells \(ddim, {steps} steps\) in [\d.]+ s", err
    )
    assert trained and calibrated, err[-500:]
    assert trained.start() < calibrated.start() < err.index(f"saved {out}")


def test_fit_normalize_layer_and_baseline(workdir: Path):
    out = workdir / "baseline"
    args = ["fit", str(workdir / "real.h5ad"), "--layer", "counts", "--normalize"]
    assert main(args + ["--no-sparsity-bits", "--out", str(out), "-q", *TINY_FIT]) == 0
    model = sdd.SDD.load(out)
    assert model.init_args_["sparsity_bits"] is False
    assert model.setup_args_["layer"] == "counts"


def test_image_model_generates_npz(tmp_path: Path):
    images = np.random.default_rng(0).poisson(0.3, size=(16, 8, 8)).astype(np.float32)
    model = sdd.SDDImage(
        images,
        unet_kwargs={
            "base_channels": 8,
            "channel_mult": (1,),
            "num_res_blocks": 1,
            "num_groups": 4,
        },
    )
    model.train(max_steps=1, batch_size=8, execution=QUIET)
    model.save(tmp_path / "img")
    out = tmp_path / "imgs.npz"
    assert main(["generate", str(tmp_path / "img"), "-n", "3", "-o", str(out)] + FAST_GEN) == 0
    with np.load(out) as data:
        assert data["images"].shape == (3, 8, 8)
        np.testing.assert_array_equal(data["sparsity_bits"], data["images"] != 0)
    assert main(["generate", str(tmp_path / "img"), "-n", "3", "-o", str(tmp_path / "x.h5ad")]) == 1


# ----------------------------------------------------------------------------- bad input
def test_bad_input_one_line_nonzero(model_dir: Path, workdir: Path, tmp_path: Path, capsys):
    real = str(workdir / "real.h5ad")
    out = str(tmp_path / "m")
    cases = [
        (["fit", str(tmp_path / "missing.h5ad"), "--out", out], "does not exist"),
        (["fit", real, "--layer", "nope", "--out", out, *TINY_FIT], "nope"),
        (["fit", real, "--labels-key", "nope", "--out", out, *TINY_FIT], "nope"),
        (["fit", real, "--max-steps", "0", "--out", out], "max_steps"),
        (["fit", real, "--out", str(model_dir)], "already exists"),
        (["generate", str(tmp_path), "-n", "5", "-o", str(tmp_path / "g.h5ad")], "config.json"),
        (["generate", str(tmp_path / "nodir"), "-o", str(tmp_path / "g.h5ad")], "does not exist"),
        (["generate", str(model_dir), "-n", "0", "-o", str(tmp_path / "g.h5ad")], "n_cells"),
        (["generate", str(model_dir), "-o", str(tmp_path / "g.csv")], ".h5ad"),
        (["generate", str(model_dir), "-o", str(tmp_path / "g.h5ad"), "--label", "Z"], "'Z'"),
        (["evaluate", real, str(tmp_path / "missing.h5ad")], "does not exist"),
        (["evaluate", real, real, "--labels-key", "nope"], "nope"),
        (["info", str(tmp_path)], "config.json"),
        (["fit", real, "--model-arg", "bogus=1", "--out", out], "bogus"),
        (["fit", real, "--model-arg", "dropout", "--out", out], "KEY=VALUE"),
        (["fit", real, "--model-arg", "emb_dim=8", "--out", out], "--emb-dim"),
        (
            ["fit", real, "--model-arg", "dropout=0", "--model-arg", "dropout=1", "--out", out],
            "twice",
        ),
        (["fit", real, "--model", "blackout", "--no-sparsity-bits", "--out", out], "SDDBlackout"),
        (["fit", real, "--model", "image", "--out", out], "images"),
    ]
    (tmp_path / "broken.h5ad").write_text("not hdf5")
    cases.append((["fit", str(tmp_path / "broken.h5ad"), "--out", out], "cannot read"))
    for argv, needle in cases:
        if argv[0] in ("fit", "evaluate"):
            argv = [*argv, "-q"]  # no progress messages before the error line
        assert main(argv) == 1, argv
        line = _error_line(capsys)
        assert line.startswith(f"sdd {argv[0]}: error:") and needle in line, (argv, line)
    assert not Path(out).exists()


def test_evaluate_gene_mismatch(workdir: Path, tmp_path: Path, capsys):
    real = ad.read_h5ad(workdir / "real.h5ad")
    other = real[:, 2:].copy()
    other.write_h5ad(tmp_path / "other.h5ad")
    argv = ["evaluate", str(workdir / "real.h5ad"), str(tmp_path / "other.h5ad"), "-q"]
    assert main(argv) == 1
    assert "--align-genes" in _error_line(capsys)
    assert main([*argv, "--align-genes"]) == 0


@pytest.mark.slow
def test_console_entry_point(tmp_path: Path):
    """``python -m sdd.cli`` (what the ``sdd`` script runs) exits non-zero on bad input."""
    result = subprocess.run(
        [sys.executable, "-m", "sdd.cli", "fit", str(tmp_path / "no.h5ad"), "--out", "m"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"sdd fit: error: data file {str(tmp_path / 'no.h5ad')!r} does not exist."
    ]


def test_blackout_fit_and_generate(workdir: Path, tmp_path: Path, capsys):
    out = tmp_path / "blackout"
    args = ["fit", str(workdir / "real.h5ad"), "--model", "blackout", "--layer", "counts"]
    assert main([*args, "--out", str(out), "-q", *TINY_FIT]) == 0
    gen_path = tmp_path / "counts.h5ad"
    assert main(["generate", str(out), "-n", "5", "-o", str(gen_path), "--n-steps", "4", "-q"]) == 0
    x = ad.read_h5ad(gen_path).X.toarray()
    assert x.shape == (5, 12) and np.array_equal(x, np.round(x))
    assert main(["generate", str(out), "-o", str(tmp_path / "g.h5ad"), "--sampler", "ddim"]) == 1
    assert "--sampler" in _error_line(capsys)


# ------------------------------------------------------------------ defaults and kinds
def _signature(cls, method: str) -> dict[str, inspect.Parameter]:
    """Parameters of ``cls.method`` with those a ``**kwargs`` override passes on."""
    from sdd.model._base import DiffusionModel

    params = dict(inspect.signature(DiffusionModel.train).parameters)
    if method != "train":
        params = {}
    params.update(inspect.signature(getattr(cls, method)).parameters)
    return params


@pytest.mark.parametrize(
    "kind,name", [("sdd", "SDD"), ("blackout", "SDDBlackout"), ("image", "SDDImage")]
)
def test_cli_defaults_are_the_python_defaults(kind, name):
    cls = getattr(sdd, name)
    init, train, gen = (_signature(cls, m) for m in ("__init__", "train", "generate"))
    fit = build_parser(kind).parse_args(["fit", "data", "-o", "m", "--model", kind])
    pairs = [("max_steps", "max_steps"), ("batch_size", "batch_size"), ("lr", "lr"),
             ("ema_decay", "ema_decay"), ("seed", "random_state"),
             ("validation_size", "validation_size"), ("validation_every", "validation_every"),
             ("early_stopping", "early_stopping"),
             ("early_stopping_patience", "early_stopping_patience")]  # fmt: skip
    for dest, param in pairs:
        assert getattr(fit, dest) == train[param].default, dest
    for dest in ("hidden", "emb_dim", "sparsity_bits"):
        expected = init[dest].default if dest in init else None
        assert getattr(fit, dest) == expected, dest
    generate = build_parser(kind).parse_args(["generate", "m", "-o", "g"])
    first = [p for p in gen if p != "self"][0]
    assert generate.n == gen[first].default
    pairs = [("sampler", "sampler"), ("n_steps", "n_steps"), ("seed", "random_state"),
             ("guidance_scale", "guidance_scale"), ("batch_size", "batch_size"),
             ("store_dense", "store_dense")]  # fmt: skip
    for dest, param in pairs:
        expected = gen[param].default if param in gen else None
        assert getattr(generate, dest) == expected, dest
    assert fit.accelerator == generate.accelerator == sdd.Execution().accelerator
    if kind == "image":  # the drift of old: 250 steps and 256 images per step forced on images
        assert (generate.n_steps, fit.batch_size) == (1000, 128)


def test_blackout_trains_on_the_layer_python_picks(workdir: Path, tmp_path: Path):
    args = ["fit", str(workdir / "real.h5ad"), "--model", "blackout", "--out", str(tmp_path / "b")]
    assert main([*args, "-q", *TINY_FIT, "--model-arg", "n_times=10"]) == 0
    model = sdd.SDDBlackout.load(tmp_path / "b")
    assert (
        model.setup_args_["layer"]
        == "counts"
        == sdd.SDDBlackout.default_layer(ad.read_h5ad(workdir / "real.h5ad"))
    )
    assert model.init_args_["n_times"] == 10


@pytest.mark.slow
def test_readme_sequence_generates_the_label_column(model_dir: Path, workdir: Path, capsys):
    """fit --labels-key, a plain generate, then evaluate --labels-key (the README's lines)."""
    gen_path = workdir / "g.h5ad"
    assert main(["generate", str(model_dir), "-n", "100", "-o", str(gen_path), "-q"]) == 0
    gen = ad.read_h5ad(gen_path)
    real = ad.read_h5ad(workdir / "real.h5ad")
    share = real.obs["cell_type"].value_counts(normalize=True)
    counts = gen.obs["cell_type"].astype(str).value_counts()
    assert gen.n_obs == 100 and set(counts.index) == set(share.index)
    for label, fraction in share.items():  # the training mix, rounded to whole cells
        assert abs(counts[label] - 100 * fraction) < 1
    model = sdd.SDD.load(model_dir)
    # fit calibrates: generate samples as the calibration did (SDD.generate's default)
    assert gen.uns["sdd"]["sampler"] == model.calibration_.settings["sampler"]
    assert gen.uns["sdd"]["n_steps"] == model.calibration_.settings["n_steps"]
    assert "dense" not in gen.layers  # store_dense follows SDD.generate's default (off)
    capsys.readouterr()
    argv = ["evaluate", str(workdir / "real.h5ad"), str(gen_path), "--labels-key", "cell_type"]
    assert main([*argv, "-q"]) == 0
    table = capsys.readouterr().out
    assert "SCC" in table and all(label in table for label in share.index)


def test_fit_image_model_end_to_end(tmp_path: Path):
    rng = np.random.default_rng(0)
    images = rng.poisson(0.3, size=(16, 8, 8)).astype(np.float32)
    labels = np.array(["a", "b"])[rng.integers(0, 2, 16)]
    np.savez(tmp_path / "imgs.npz", images=images, labels=labels)
    unet = ["--model-arg", "base_channels=8", "--model-arg", "channel_mult=(1,)",
            "--model-arg", "num_res_blocks=1", "--model-arg", "num_groups=4",
            "--model-arg", "intensity_transform=log1p"]  # fmt: skip
    tiny = ["--max-steps", "2", "--batch-size", "8", "-q"]
    out = tmp_path / "img"
    argv = ["fit", str(tmp_path / "imgs.npz"), "--model", "image", "--labels-key", "labels"]
    assert main([*argv, "--out", str(out), *unet, *tiny]) == 0
    model = sdd.SDDImage.load(out)
    assert (
        model.init_args_["intensity_transform"] == "log1p"
        and model.init_args_["base_channels"] == 8
    )
    assert model.categories_ == {"label": ["a", "b"]} and model.train_args_["max_steps"] == 2
    default_dropout = sdd.SDDImage(images, unet_kwargs={"num_groups": 4}).init_args_["dropout"]
    assert model.init_args_["dropout"] == default_dropout
    gen = tmp_path / "gen.npz"
    argv = ["generate", str(out), "-n", "3", "-o", str(gen), "--label", "b", *FAST_GEN]
    assert main(argv) == 0
    with np.load(gen) as data:
        assert data["images"].shape == (3, 8, 8) and list(data["labels"]) == ["b"] * 3
        np.testing.assert_array_equal(data["sparsity_bits"], data["images"] != 0)
    # .npy images with a labels file
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", labels)
    argv = [
        "fit",
        str(tmp_path / "x.npy"),
        "--model",
        "image",
        "--labels-file",
        str(tmp_path / "y.npy"),
    ]
    assert main([*argv, "--out", str(tmp_path / "img2"), *unet, *tiny]) == 0
    assert sdd.SDDImage.load(tmp_path / "img2").categories_ == {"label": ["a", "b"]}


def test_unexpected_errors_are_one_line_too(model_dir: Path, tmp_path: Path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert triggered\nmore detail")

    monkeypatch.setattr(sdd.SDD, "generate", broken)
    argv = ["generate", str(model_dir), "-n", "3", "-o", str(tmp_path / "g.h5ad")]
    assert main(argv) == 1
    assert (
        _error_line(capsys)
        == "sdd generate: error: RuntimeError: CUDA error: device-side assert triggered"
    )
    assert not (tmp_path / "g.h5ad").exists()
