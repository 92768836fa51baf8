"""Data-parallel training under torchrun: 2 CPU processes, gloo backend."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from sdd.train import init_distributed, is_main_process, shard
from sdd.train._distributed import distributed_info

pytestmark = pytest.mark.slow  # trains models or runs subprocesses; CI runs it

WORKER = r"""
import copy, sys
import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import sdd
from sdd.diffusion import CosineSchedule, diffusion_loss
from sdd.train._distributed import distributed_info

torch.set_num_threads(1)
QUIET = sdd.Execution(progress=False)
out = sys.argv[1]
X = sp.random(64, 10, density=0.3, random_state=0, format="csr", dtype=np.float32)
adata = ad.AnnData(X)
sdd.SDD.setup_anndata(adata)
rank = int(__import__("os").environ["RANK"])
torch.manual_seed(100 + rank)  # different initial weights: DDP must broadcast rank 0's
model = sdd.SDD(adata, hidden=(16, 8), emb_dim=8)
initial = next(model.module.parameters()).detach().clone()
model.train(max_steps=5, batch_size=8, execution=QUIET.replace(accelerator="cpu"))
rank, world, _ = distributed_info()

# gradients through DDP are the mean of the processes' own gradients
net = model.module
net.zero_grad(set_to_none=True)
ddp = DistributedDataParallel(net)
x = torch.rand(8, net.dim, generator=torch.Generator().manual_seed(7 + rank)) * 2 - 1
gen = lambda: torch.Generator().manual_seed(11 + rank)
schedule = CosineSchedule()
diffusion_loss(ddp, x, schedule, generator=gen(), self_condition=False).backward()
ddp_grad = torch.cat([p.grad.flatten() for p in net.parameters()])
local = copy.deepcopy(net)
local.zero_grad(set_to_none=True)
diffusion_loss(local, x, schedule, generator=gen(), self_condition=False).backward()
local_grad = torch.cat([p.grad.flatten() for p in local.parameters()])
gathered = [torch.zeros_like(local_grad) for _ in range(world)]
dist.all_gather(gathered, local_grad)
# validation with early stopping: every rank evaluates, all stop at the same step
held = sdd.SDD(adata, hidden=(16, 8), emb_dim=8)
held.train(
    max_steps=8, batch_size=8, lr=1e-12, execution=QUIET.replace(accelerator="cpu"),
    validation_size=0.25, validation_every=2, early_stopping=True, early_stopping_patience=1,
)
torch.save(
    {
        "world": world,
        "initial": initial,
        "module": model.module.state_dict(),
        "ema": model.ema_.model.state_dict(),
        "loss": torch.as_tensor(model.history_["loss"].to_numpy()),
        "train_world": model.train_args_["world_size"],
        "ddp_grad": ddp_grad,
        "local_grad": local_grad,
        "mean_grad": torch.stack(gathered).mean(0),
        "validation": torch.as_tensor(held.history_.to_numpy()),
        "held_out": torch.as_tensor(held.validation_indices_),
    },
    f"{out}/rank{rank}.pt",
)
dist.destroy_process_group()
"""


def test_torchrun_two_cpu_processes_stay_in_sync(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(script), str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == r0["train_world"] == 2
    assert not torch.equal(r0["initial"], r1["initial"])
    for key in ("module", "ema"):
        for name, tensor in r0[key].items():
            assert torch.equal(tensor, r1[key][name]), f"{key}.{name} differs between ranks"
    assert torch.equal(r0["loss"], r1["loss"])  # the history is the mean over ranks
    assert torch.equal(r0["ddp_grad"], r1["ddp_grad"])
    assert not torch.equal(r0["local_grad"], r1["local_grad"])
    torch.testing.assert_close(r0["ddp_grad"], r0["mean_grad"], rtol=1e-5, atol=1e-7)
    assert torch.equal(r0["held_out"], r1["held_out"])
    assert r0["validation"].shape[0] == 4  # stopped at the second evaluation, on both ranks
    torch.testing.assert_close(r0["validation"], r1["validation"], equal_nan=True)


def test_single_process_helpers(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not (dist.is_available() and dist.is_initialized())
    assert init_distributed() is False
    assert distributed_info() == (0, 1, 0)
    assert is_main_process()
    parts = [shard(10, r, 3) for r in range(3)]
    assert parts == [(0, 4), (4, 3), (7, 3)]
    with pytest.raises(ValueError, match="rank"):
        shard(5, 3, 3)
