"""Validation split, held-out loss in ``history`` and early stopping (``train`` options)."""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pytest
import torch
from conftest import QUIET, TINY, make_counts_adata

import sdd
from sdd.cli import main
from sdd.data.loader import MinibatchSampler, RowBatches
from sdd.diffusion import GaussianDiffusion
from sdd.nn import SkipMLP
from sdd.train import EMA, train_denoiser
from sdd.train._validation import train_validated

pytestmark = pytest.mark.slow  # trains models or runs subprocesses; CI runs it

IMAGE = {"base_channels": 8, "channel_mult": (1, 2), "num_res_blocks": 1}
FAST = {"batch_size": 16, "execution": QUIET}


def _sdd(n_cells: int = 64, seed: int = 0, **setup) -> sdd.SDD:
    cells = make_counts_adata(n_cells=n_cells, n_genes=12)
    sdd.SDD.setup_anndata(cells, **setup)
    torch.manual_seed(seed)
    return sdd.SDD(cells, **TINY)


def _weights(model) -> list[torch.Tensor]:
    return [
        v.clone() for v in [*model.module.state_dict().values(), *model.ema_.model.parameters()]
    ]


def _same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(b), strict=True))


# ------------------------------------------------------------------ the split
def test_split_is_disjoint_and_training_never_sees_validation_rows(monkeypatch):
    served, read = [], []
    next_index, rows_at = RowBatches._next_index, RowBatches.rows_at

    def spy_next(self):
        index = next_index(self)
        served.append(index.copy())
        return index

    def spy_rows(self, index):
        read.append(np.asarray(index).copy())
        return rows_at(self, index)

    monkeypatch.setattr(RowBatches, "_next_index", spy_next)
    monkeypatch.setattr(RowBatches, "rows_at", spy_rows)
    model = _sdd(labels_key="cell_type")
    model.train(30, validation_size=0.25, validation_every=10, **FAST)
    held = model.validation_indices_
    assert len(held) == 16 and len(np.unique(held)) == 16 and held.max() < 64
    trained_on = np.unique(np.concatenate(served))
    assert np.intersect1d(trained_on, held).size == 0
    assert trained_on.size == 64 - 16  # every other row is used (30 steps > 1 epoch)
    # each evaluation reads exactly the held-out rows, in order
    assert len(read) == 3 * 1 and all(np.array_equal(r, held) for r in read)
    # a continued run keeps the split and still never trains on it
    served.clear()
    model.train(10, **FAST)
    assert np.array_equal(model.validation_indices_, held)
    assert np.intersect1d(np.concatenate(served), held).size == 0


def test_row_subset_of_the_batch_stream_and_rows_at():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    rows = np.array([1, 4, 5, 9, 11, 12, 17, 19])
    for on_device in (False, True):  # host storage and (CPU) device storage
        batches = RowBatches(
            x, batch_size=3, device="cpu", rows=rows, data_on_device=on_device, codes=np.arange(20)
        )
        assert batches.steps_per_epoch == 2
        seen = [batches.next_batch() for _ in range(6)]
        for values, codes in seen:
            assert set(codes.tolist()) <= set(rows.tolist())
            np.testing.assert_array_equal(values.numpy(), x[codes.numpy()])
        values, codes = batches.rows_at([0, 3])
        np.testing.assert_array_equal(values.numpy(), x[[0, 3]])
        assert codes.tolist() == [0, 3]
    # no subset: the stream of before (a permutation of all rows per epoch)
    full = RowBatches(x, batch_size=4, device="cpu", codes=np.arange(20))
    epoch = np.concatenate([full.next_batch()[1].numpy() for _ in range(5)])
    np.testing.assert_array_equal(epoch, np.random.default_rng([0, 0]).permutation(20))
    with pytest.raises(ValueError, match="repeated"):
        RowBatches(x, batch_size=2, device="cpu", rows=[1, 1])
    with pytest.raises(ValueError, match="rows must be in"):
        RowBatches(x, batch_size=2, device="cpu", rows=[0, 20])


# ------------------------------------------------------------------ history
def test_validation_loss_column_and_reproducibility():
    a, b = _sdd(), _sdd()
    a.train(22, validation_size=0.25, validation_every=5, random_state=3, **FAST)
    b.train(22, validation_size=0.25, validation_every=5, random_state=3, **FAST)
    history = a.history
    assert list(history.columns) == ["step", "epoch", "loss", "validation_loss"]
    evaluated = history.loc[history["validation_loss"].notna(), "step"].tolist()
    assert evaluated == [5, 10, 15, 20, 22]
    assert np.isfinite(history["validation_loss"].dropna()).all()
    np.testing.assert_array_equal(history.to_numpy(), b.history.to_numpy())  # NaN == NaN here
    assert _same_weights(a, b)
    assert a.train_args_["validation_size"] == 0.25 and a.train_args_["n_validation"] == 16
    assert a.train_args_["steps_trained"] == 22 and a.train_args_["validation_every"] == 5
    other = _sdd()
    other.train(22, validation_size=0.25, validation_every=5, random_state=4, **FAST)
    assert not np.array_equal(other.validation_indices_, a.validation_indices_)


def test_default_every_is_an_epoch_capped_at_50_evaluations():
    model = _sdd()  # 48 training rows / 16 = 3 steps per epoch
    model.train(12, validation_size=0.25, **FAST)
    assert model.history["validation_loss"].notna().sum() == 4
    assert model.train_args_["validation_every"] == 3
    long = _sdd()
    long.train(200, validation_size=0.25, batch_size=16, lr=1e-3, execution=QUIET)
    assert long.train_args_["validation_every"] == 4  # ceil(200 / 50) > 3
    assert long.history["validation_loss"].notna().sum() == 50


def test_evaluations_do_not_change_training():
    """Chunks and evaluations leave the training stream alone: evaluating every 3 steps
    or only at the end gives the same losses and weights, bit for bit (CPU)."""
    often, once = _sdd(labels_key="cell_type"), _sdd(labels_key="cell_type")
    often.train(14, validation_size=0.2, validation_every=3, **FAST)
    once.train(14, validation_size=0.2, validation_every=1000, **FAST)
    np.testing.assert_array_equal(often.history["loss"], once.history["loss"])
    assert _same_weights(often, once)
    assert often.history["validation_loss"].iloc[-1] == once.history["validation_loss"].iloc[-1]
    # and a second call continues both the same way
    often.train(5, validation_every=2, **FAST)
    once.train(5, **FAST)
    np.testing.assert_array_equal(often.history["loss"], once.history["loss"])
    assert _same_weights(often, once)


def test_chunked_loop_equals_one_call():
    """The chunk driver around train_denoiser reproduces one call bit for bit (weights,
    EMA, losses, Adam state), so the default path is a special case of it."""
    data = torch.rand(64, 6, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def run(chunked: bool):
        torch.manual_seed(0)
        net = SkipMLP(6, hidden=(16, 8), emb_dim=8)
        ema = EMA(net, 0.9)
        rng = np.random.default_rng(0)
        generator = torch.Generator().manual_seed(1)

        def batch():
            return data[rng.choice(64, 16, replace=False)], None

        def chunk(n, done, state, bar):
            return train_denoiser(
                net, ema, batch, GaussianDiffusion(self_condition=True), max_steps=n,
                steps_per_epoch=4, lr=1e-3, optimizer_state=state, start_step=done,
                loop_kwargs={"generator": generator}, progress=bar,
            )  # fmt: skip

        if chunked:
            history, state, steps = train_validated(
                chunk, lambda: 0.0, max_steps=17, every=5, progress=False
            )
            assert steps == 17
        else:
            history, state = chunk(17, 0, None, False)
        return history, state, net, ema

    (h1, s1, n1, e1), (h2, s2, n2, e2) = run(True), run(False)
    np.testing.assert_array_equal(h1["loss"], h2["loss"])
    assert h1["step"].tolist() == h2["step"].tolist() == list(range(1, 18))
    assert h1["validation_loss"].notna().sum() == 4  # steps 5, 10, 15, 17
    for a, b in zip([*n1.parameters(), *e1.model.parameters()], [*n2.parameters(), *e2.model.parameters()], strict=True):  # fmt: skip
        assert torch.equal(a, b)
    assert e1.n_updates == e2.n_updates == 17
    for key in s1["state"]:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(s1["state"][key][name], s2["state"][key][name])


def test_no_split_by_default():
    model = _sdd()
    model.train(4, **FAST)
    assert "validation_loss" not in model.history and model.validation_indices_ is None
    assert "validation_size" not in model.train_args_


# ------------------------------------------------------------------ early stopping
def test_early_stopping_stops_on_a_plateau_and_continues_later(caplog):
    # lr so small that the weights, and so the validation loss (same noise at every
    # evaluation), do not move: the second evaluation cannot improve on the first
    stopped = _sdd()
    kwargs = {"validation_size": 0.25, "validation_every": 2, "lr": 1e-12, **FAST}
    with caplog.at_level(logging.INFO, logger="sdd"):
        stopped.train(40, early_stopping=True, early_stopping_patience=2, **kwargs)
    assert len(stopped.history) == 6  # evaluations at 2 (best), 4 and 6 (no improvement)
    assert stopped.train_args_["steps_trained"] == 6 and stopped.train_args_["max_steps"] == 40
    assert "Early stopping at step 6" in caplog.text
    values = stopped.history["validation_loss"].dropna().to_numpy()
    assert len(values) == 3 and np.ptp(values) <= 1e-3 * values[0]
    # without early stopping the same run goes on to the end
    full = _sdd()
    full.train(40, **kwargs)
    assert len(full.history) == 40
    # the stopped model continues where it stopped, as a 6-step run would
    six = _sdd()
    six.train(6, **kwargs)
    stopped.train(4, **FAST)
    six.train(4, **FAST)
    np.testing.assert_array_equal(stopped.history["loss"], six.history["loss"])
    assert stopped.history["step"].tolist() == list(range(1, 11))
    assert _same_weights(stopped, six)


def test_early_stopping_keeps_going_while_the_loss_improves():
    # at this seed the validation loss never stalls for more than one evaluation
    model = _sdd()
    model.train(
        30, validation_size=0.25, validation_every=3, lr=1e-2, early_stopping=True,
        early_stopping_patience=5, **FAST,
    )  # fmt: skip
    values = model.history["validation_loss"].dropna().to_numpy()
    assert len(model.history) == 30 and values[-1] < values[0]


@pytest.mark.parametrize("kwargs", [{"early_stopping": True}, {"validation_every": 5}])
def test_options_that_need_a_split(kwargs):
    with pytest.raises(ValueError, match=f"{next(iter(kwargs))} needs a validation split"):
        _sdd().train(4, **kwargs, **FAST)


# ------------------------------------------------------------------ bad values
@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"validation_size": 0}, ValueError, "validation_size"),
        ({"validation_size": 1.5}, ValueError, "validation_size"),
        ({"validation_size": 1.0}, ValueError, "validation_size"),
        ({"validation_size": float("nan")}, ValueError, "validation_size"),
        ({"validation_size": "a"}, TypeError, "validation_size"),
        ({"validation_size": True}, TypeError, "validation_size"),
        ({"validation_size": 0.1, "validation_every": 0}, ValueError, "validation_every"),
        ({"validation_size": 0.1, "validation_every": 2.5}, ValueError, "validation_every"),
        ({"validation_size": 0.1, "early_stopping": "yes"}, TypeError, "early_stopping"),
        ({"validation_size": 0.1, "early_stopping_patience": 0}, ValueError, "patience"),
        ({"validation_size": 0.01}, None, None),  # 0 rows of 64: one row is held out
    ],
)
def test_bad_values(kwargs, error, match):
    model = _sdd()
    if error is None:
        model.train(2, **kwargs, **FAST)
        assert len(model.validation_indices_) == 1
        return
    with pytest.raises(error, match=match):
        model.train(2, **kwargs, **FAST)
    assert not model.is_trained_ and model.validation_indices_ is None


@pytest.mark.filterwarnings("ignore:.*zero in every training cell")
def test_the_split_is_fixed_once_per_model():
    model = _sdd().train(2, validation_size=0.25, **FAST)
    with pytest.raises(ValueError, match="is fixed"):
        model.train(2, validation_size=0.5, **FAST)
    model.train(2, validation_size=0.25, random_state=5, **FAST)  # the same split
    assert len(model.validation_indices_) == 16
    plain = _sdd().train(2, **FAST)
    with pytest.raises(ValueError, match="trained without a validation split"):
        plain.train(2, validation_size=0.25, **FAST)
    with pytest.raises(ValueError, match="no training rows"):
        _sdd(n_cells=1).train(2, validation_size=0.6, **FAST)


def test_a_failed_call_leaves_no_split(monkeypatch):
    model = _sdd()
    with pytest.raises(FloatingPointError, match="restored"):
        model.train(20, validation_size=0.25, validation_every=2, lr=1e30, **FAST)
    assert model.validation_indices_ is None and not model.is_trained_ and not len(model.history)


# ------------------------------------------------------------------ models, save, data
def test_every_model_gets_the_validation_loss():
    images = np.random.default_rng(0).poisson(0.3, size=(32, 8, 8)).astype(np.float32)
    counts = make_counts_adata(n_cells=64, n_genes=12)
    sdd.SDDBlackout.setup_anndata(counts, layer="counts", labels_key="cell_type")
    torch.manual_seed(0)
    for model in (
        sdd.SDDImage(images, labels=np.arange(32) % 2, unet_kwargs=IMAGE),
        sdd.SDDBlackout(counts, **TINY, n_times=20),
    ):
        model.train(4, validation_size=0.25, validation_every=2, **FAST)
        assert model.history["validation_loss"].notna().sum() == 2
        assert np.isfinite(model.history["validation_loss"].dropna()).all()


def test_save_and_load_keep_the_split_and_the_history(tmp_path):
    model = _sdd(labels_key="cell_type")
    model.train(6, validation_size=0.25, validation_every=3, **FAST)
    model.save(tmp_path / "m", with_optimizer=True)
    loaded = sdd.SDD.load(tmp_path / "m", model.adata)
    np.testing.assert_array_equal(loaded.validation_indices_, model.validation_indices_)
    np.testing.assert_array_equal(loaded.history.to_numpy(), model.history.to_numpy())
    assert loaded.train_args_ == model.train_args_
    # both continue the same way: same split, same stream
    model.train(4, **FAST)
    loaded.train(4, **FAST)
    np.testing.assert_array_equal(loaded.history.to_numpy(), model.history.to_numpy())
    assert _same_weights(loaded, model)
    # other data than the split was drawn from
    again = sdd.SDD.load(tmp_path / "m", make_counts_adata(n_cells=80, n_genes=12))
    with pytest.raises(ValueError, match="drawn from 64 rows"):
        again.train(2, **FAST)


def test_backed_data_with_a_validation_split(tmp_path):
    adata = make_counts_adata(n_cells=64, n_genes=12)
    if hasattr(ad.settings, "allow_write_nullable_strings"):
        ad.settings.allow_write_nullable_strings = True
    adata.write_h5ad(tmp_path / "cells.h5ad")
    backed = ad.read_h5ad(tmp_path / "cells.h5ad", backed="r")
    histories = []
    for data in (adata, backed):
        sdd.SDD.setup_anndata(data)
        torch.manual_seed(0)
        model = sdd.SDD(data, **TINY)
        model.train(
            8,
            validation_size=0.25,
            validation_every=4,
            execution=QUIET.replace(accelerator="cpu"),
            batch_size=FAST["batch_size"],
        )
        histories.append(model.history.to_numpy())
    np.testing.assert_array_equal(histories[0], histories[1])
    backed.file.close()


def test_held_out_rows_are_prepared_like_minibatches():
    x = np.abs(np.random.default_rng(0).normal(size=(10, 3))).astype(np.float32)
    from sdd.data.scaling import Scaler

    batches = MinibatchSampler(x, Scaler.fit(x), batch_size=4, device="cpu", rows=range(5))
    scaled, nonzero, codes = batches([7, 8])
    expected = Scaler.fit(x).transform(torch.from_numpy(x[[7, 8]]))
    assert torch.equal(scaled, expected) and codes is None
    assert torch.equal(nonzero, torch.from_numpy(x[[7, 8]] != 0))


# ------------------------------------------------------------------ front ends
def test_cli_and_tl_pass_the_options(tmp_path, capsys):
    path = tmp_path / "cells.h5ad"
    make_counts_adata(n_cells=60, n_genes=12).write_h5ad(path)
    args = ["fit", str(path), "--out", str(tmp_path / "m"), "--max-steps", "40",
            "--batch-size", "16", "--hidden", "16", "--emb-dim", "8", "--lr", "1e-12",
            "--validation-size", "0.2", "--validation-every", "2", "--early-stopping",
            "--early-stopping-patience", "1"]  # fmt: skip
    assert main(args) == 0
    assert "trained 4 steps" in capsys.readouterr().err  # stopped at the 2nd evaluation
    model = sdd.SDD.load(tmp_path / "m")
    assert len(model.validation_indices_) == 12 and model.train_args_["early_stopping"]
    assert model.train_args_["early_stopping_patience"] == 1
    adata = make_counts_adata(n_cells=60, n_genes=12)
    fitted = sdd.tl.fit(
        adata, max_steps=4, train_kwargs={"batch_size": 16, "validation_size": 0.2},
        execution=QUIET, hidden=(16,), emb_dim=8,
    )  # fmt: skip
    assert fitted.train_args_["validation_size"] == 0.2
    assert fitted.history["validation_loss"].notna().sum() >= 1
