"""Every ```python and ```bash block of README.md runs, on small data.

The blocks are read from README.md itself, in order, so an edited README is tested as it
stands. They run in a temporary folder that holds small files under the names the README
uses (``cells.h5ad``, ``data.h5ad``, ``train-images-idx3-ubyte.gz``,
``muon_isolation_sim.npz``). The Python blocks share one namespace, as in a session that
follows the README from top to bottom; ``train.py`` is written out and run as a script;
the bash blocks run with ``bash -euo pipefail`` and this interpreter's ``bin`` first on
``PATH`` (for the ``sdd`` command).

What is changed, and why, is spelled out here and nowhere else:

- :data:`SUBSTITUTIONS` replaces step and cell counts by small ones (every entry must
  match some block, so the table follows the README);
- :data:`PLACEHOLDERS` are the names the README leaves to the reader (``raw_counts``,
  ``adata_panel``);
- :data:`SKIPPED` lists the blocks that are not run, each with its reason: those that
  install from the network, need a GPU or ``torchrun``. Benchmark commands reproduce the
  README's tables on the data sets next to the repository (minutes to hours): they are
  not run, but each option they use must be defined in the script.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

pytestmark = pytest.mark.slow  # trains models or runs subprocesses; CI runs it

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
USAGE = ROOT / "docs" / "usage.md"  # the README's "usage in depth", run after it

#: (README text, replacement) applied to every block before it runs: small step and cell
#: counts, so that each block takes seconds on a CPU.
SUBSTITUTIONS: list[tuple[str, str]] = [
    ("sdd.tl.fit(adata, max_steps=10_000)", "sdd.tl.fit(adata, max_steps=20, calibrate=False)"),
    ("model.calibrate()", "model.calibrate(100, n_steps=5)"),
    ("max_steps=10_000", "max_steps=20"),
    ("max_steps=2_000", "max_steps=3"),
    ("max_steps=300_000", "max_steps=3"),
    ("n_cells=10_000)", "n_cells=40, n_steps=5)"),
    ("generate(10_000, random_state=0)", "generate(40, n_steps=5, random_state=0)"),
    ("generate(500,", "generate(20, n_steps=5,"),
    ("model.generate(labels=\"training\", counts=True)", "model.generate(labels=\"training\", counts=True, n_steps=5)"),
    ("model.impute(adata_panel, ", "model.impute(adata_panel, n_steps=5, "),
    ("model.generate(64)", "model.generate(4, n_steps=3)"),
    ("--max-steps 10000", "--max-steps 20 --no-calibrate"),  # calibration: test_calibration
    ("-n 10000", "-n 40 --n-steps 5"),
]  # fmt: skip

#: Why a block is not run: the first key found in the block decides.
SKIPPED: dict[str, str] = {
    "pip install": "installs packages from the network",
    "torchrun": "needs torchrun and GPUs",
    "--accelerator cuda": "needs a GPU",
    "--device cuda": "needs a GPU",
    "benchmarks/": "a benchmark (minutes to hours on ../shared/data); options checked instead",
    "sdd.demo": "trains for minutes; tests/test_cli.py runs the demo with tiny settings",
}

#: Names the README leaves to the reader, and what the test binds them to.
PLACEHOLDERS: dict[str, str] = {
    "raw_counts": "the raw counts of cells.h5ad (before normalize_total and log1p)",
    "adata_panel": "20 of its cells, log1p-normalised, measured on 35 of the 40 genes",
}

N_CELLS, N_GENES = 120, 40


@dataclass
class Block:
    index: int
    language: str
    code: str

    @property
    def skip_reason(self) -> str | None:
        return next((why for key, why in SKIPPED.items() if key in self.code), None)

    @property
    def label(self) -> str:
        first = next(line for line in self.code.splitlines() if line.strip())
        return f"{self.index}-{self.language}: {first.strip()[:40]}"


def read_blocks(text: str) -> list[Block]:
    """The ```python and ```bash blocks of a Markdown text, dedented, in order."""
    pattern = re.compile(r"^( *)```(python|bash)\n(.*?)^\1```", re.S | re.M)
    blocks = []
    for i, m in enumerate(pattern.finditer(text)):
        indent = len(m.group(1))
        code = "\n".join(line[indent:] for line in m.group(3).splitlines())
        blocks.append(Block(i, m.group(2), code + "\n"))
    return blocks


def substitute(code: str, used: set[str]) -> str:
    for old, new in SUBSTITUTIONS:
        if old in code:
            code = code.replace(old, new)
            used.add(old)
    return code


BLOCKS = read_blocks(README.read_text(encoding="utf-8") + USAGE.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ small data files
def _raw_counts(seed: int = 0) -> ad.AnnData:
    """Raw counts of two cell types ("B cell", "T cell") that express different genes."""
    rng = np.random.default_rng(seed)
    labels = np.array(["B cell", "T cell"])[rng.integers(0, 2, N_CELLS)]
    rate = np.full((N_CELLS, N_GENES), 0.4)
    rate[labels == "B cell", : N_GENES // 2] = 3.0
    rate[labels == "T cell", N_GENES // 2 :] = 3.0
    counts = rng.poisson(rate).astype(np.float32)
    counts[:, 0] += 1  # no empty cell
    adata = ad.AnnData(sp.csr_matrix(counts))
    adata.obs_names = [f"cell{i}" for i in range(N_CELLS)]
    adata.var_names = [f"GENE{i}" for i in range(N_GENES)]
    adata.obs["cell_type"] = pd.Categorical(labels)
    return adata


def _log1p_normalised(raw: ad.AnnData) -> ad.AnnData:
    import scanpy as sc

    adata = raw.copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    return adata


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}i", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(">u1").tobytes())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder with the files the README names, small."""
    folder = tmp_path_factory.mktemp("readme")
    raw = _raw_counts()
    raw.write_h5ad(folder / "cells.h5ad")  # the scanpy-style block normalises it itself
    _log1p_normalised(raw).write_h5ad(folder / "data.h5ad")  # the CLI models X as is
    rng = np.random.default_rng(1)
    digits = np.where(rng.random((16, 28, 28)) < 0.2, rng.integers(1, 256, (16, 28, 28)), 0)
    _write_idx(folder / "train-images-idx3-ubyte.gz", digits.astype(np.uint8))
    sample = resources.files("sdd.datasets") / "data" / "calorimeter_sample.npz"  # shipped
    with resources.as_file(sample) as path:
        shutil.copyfile(path, folder / "muon_isolation_sim.npz")
    return folder


@pytest.fixture(scope="module")
def namespace(workdir) -> dict:
    """The session the Python blocks share, with the README's placeholders filled in."""
    raw = _raw_counts()
    panel = _log1p_normalised(raw)[:20, 5:].copy()  # 20 cells measured on 35 of 40 genes
    values = {"raw_counts": raw.X.copy(), "adata_panel": panel}
    assert set(values) == set(PLACEHOLDERS)
    return {"__name__": "__readme__", **values}


def test_readme_has_blocks():
    languages = {b.language for b in BLOCKS}
    assert languages == {"python", "bash"}, f"README blocks found: {languages}"


def test_every_placeholder_is_used():
    python = "".join(b.code for b in BLOCKS if b.language == "python")
    unused = [name for name in PLACEHOLDERS if name not in python]
    assert not unused, f"PLACEHOLDERS that no README block uses: {unused}"


def test_every_substitution_is_used():
    """A substitution that matches no block means the README changed: update the table."""
    used: set[str] = set()
    for block in BLOCKS:
        substitute(block.code, used)
    unused = [old for old, _ in SUBSTITUTIONS if old not in used]
    assert not unused, f"SUBSTITUTIONS entries that match no README block: {unused}"


def _bash_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@pytest.mark.parametrize("block", BLOCKS, ids=[b.label for b in BLOCKS])
def test_block_runs(block: Block, workdir: Path, namespace: dict, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "benchmarks/" in block.code:
        _check_benchmark_options(block.code)
    if block.skip_reason is not None:
        pytest.skip(block.skip_reason)
    monkeypatch.chdir(workdir)
    used: set[str] = set()
    code = substitute(block.code, used)
    if block.language == "bash":
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            env=_bash_env(),
        )
        assert result.returncode == 0, (
            f"README block {block.index} failed:\n{code}\n{result.stdout[-3000:]}"
            f"\n{result.stderr[-3000:]}"
        )
        return
    if code.lstrip().startswith("# train.py"):  # a script file, run as one
        (workdir / "train.py").write_text(code)
        result = subprocess.run(
            [sys.executable, "train.py"], capture_output=True, text=True, timeout=300,
            env=_bash_env(),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert (workdir / "model_dir" / "config.json").is_file()
        return
    try:
        exec(compile(code, f"README.md block {block.index}", "exec"), namespace)
    finally:
        plt.close("all")


def test_python_blocks_give_what_they_promise(workdir: Path, namespace: dict):
    """After the blocks ran: the objects the README names exist and have its properties."""
    if "gen" not in namespace:
        pytest.skip("the Python blocks did not run (run the whole file)")
    gen, table = namespace["gen"], namespace["table"]
    assert isinstance(gen, ad.AnnData) and gen.n_obs > 0
    assert "counts" in gen.layers and "cell_type" in gen.obs
    assert {"metric", "value"} <= set(table.columns)
    filled = namespace["filled"]
    assert filled.n_vars == N_GENES  # the panel's 5 missing genes are filled in
    assert (workdir / "my_model" / "config.json").is_file()


def _check_benchmark_options(code: str) -> None:
    """Each ``--option`` of a README benchmark command is defined in that script.

    Read from the script's source (``"--option"``), not by running it: starting eight
    scripts that import torch would cost more than all the blocks that do run.
    """
    for command in re.split(r"\n(?!\s)", code.replace("\\\n", " ")):
        match = re.search(r"python (benchmarks/\S+\.py)(.*)", command)
        if match is None:
            continue
        script, args = ROOT / match.group(1), match.group(2).split("#")[0]
        assert script.is_file(), f"README runs {match.group(1)}, which does not exist"
        source = script.read_text(encoding="utf-8")
        for option in re.findall(r"(--[a-z][a-z0-9-]*)", args):
            assert f'"{option}"' in source, f"README uses {script.name} {option}, not defined"
