"""The setup registry: one ``uns`` key, one entry per model class, saved with the model."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from conftest import make_counts_adata

import sdd
from sdd.data.registry import Setup


def test_two_model_classes_share_one_key_and_survive_h5ad(tmp_path):
    import anndata as ad

    adata = make_counts_adata(n_cells=30, n_genes=6)
    sdd.SDD.setup_anndata(adata, labels_key="cell_type")
    sdd.SDDBlackout.setup_anndata(adata, layer="counts")
    assert set(adata.uns["sdd_setup"]) == {"SDD", "SDDBlackout"}
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    assert Setup.of(back, "SDD") == Setup.of(adata, "SDD")
    assert Setup.of(back, "SDD").args["labels_key"] == "cell_type"
    assert Setup.of(back, "SDDBlackout").layer == "counts"


def test_files_written_before_the_registry_still_read():
    adata = make_counts_adata(n_cells=30, n_genes=6)
    flat = {"layer": None, "labels_key": None, "categorical_covariate_keys": [], "categories": {}}
    adata.uns["sdd_setup"] = dict(flat)
    adata.uns["sdd_blackout_setup"] = {**flat, "layer": "counts", "image_shape": None}
    assert Setup.of(adata, "SDD").args == flat
    assert Setup.of(adata, "SDDBlackout").layer == "counts"
    Setup.register(adata, "SDDBlackout", Setup.of(adata, "SDDBlackout").args)
    assert set(adata.uns["sdd_setup"]) == {"SDD", "SDDBlackout"}  # the flat entry kept as SDD's
    assert "sdd_blackout_setup" not in adata.uns


def test_validate_and_transfer_name_what_is_wrong():
    adata = make_counts_adata(n_cells=30, n_genes=6)
    sdd.SDD.setup_anndata(adata, labels_key="cell_type")
    setup = Setup.of(adata, "SDD")
    assert setup.codes(adata).shape == (30, 1)
    other = make_counts_adata(n_cells=10, n_genes=6, seed=1)
    other.obs["cell_type"] = "C"
    with pytest.raises(ValueError, match="unknown to the model"):
        setup.transfer(other, sdd.SDD._check_data)
    assert "sdd_setup" not in other.uns  # nothing registered on failure
    del other.obs["cell_type"]
    with pytest.raises(ValueError, match="lacks the condition column 'cell_type'"):
        setup.validate(other, sdd.SDD._check_data)
    with pytest.raises(ValueError, match="lacks"):
        Setup("SDD", {"layer": None})


def test_loaded_model_registers_its_setup_on_new_data(tmp_path):
    adata = make_counts_adata(n_cells=40, n_genes=6)
    sdd.SDD.setup_anndata(adata, labels_key="cell_type")
    model = sdd.SDD(adata, hidden=(8,), emb_dim=4)
    model.save(tmp_path / "m")
    fresh = make_counts_adata(n_cells=20, n_genes=6, seed=2)
    loaded = sdd.SDD.load(tmp_path / "m", fresh)
    assert Setup.of(fresh, "SDD") == model.setup_ == loaded.setup_
    assert np.array_equal(loaded.setup_.codes(fresh), Setup.of(fresh, "SDD").codes(fresh))


def test_one_setup_key_and_one_provenance_key_in_the_source():
    out = subprocess.run(
        ["git", "grep", "-n", 'uns\\["sdd', "--", "src/"], capture_output=True, text=True,
        cwd=__import__("pathlib").Path(__file__).resolve().parents[1],
    )  # fmt: skip
    if out.returncode not in (0, 1):
        pytest.skip("not a git checkout")
    keys = set()
    for line in out.stdout.splitlines():
        keys.update(k for k in ("sdd_setup", "sdd_blackout_setup", '"sdd"]') if k in line)
    assert keys <= {"sdd_setup", '"sdd"]'}, out.stdout
