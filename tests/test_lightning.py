"""The Lightning callback (optional extra): a LightningModule's fit produces a docl run."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

L = pytest.importorskip("lightning")

from docl_core import RunReader  # noqa: E402
from docl_core.lightning import DoclCallback  # noqa: E402


class Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y, ids = batch
        out = self(x)
        loss = nn.functional.cross_entropy(out, y)
        self.log("train_loss", loss)
        return {"loss": loss, "outputs": out.detach()}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_fit_with_callback_writes_a_run(tmp_path):
    torch.manual_seed(0)
    X = torch.randn(64, 4)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 1).long()
    data = torch.utils.data.TensorDataset(X, y, torch.arange(64))
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True)
    cb = DoclCallback(tmp_path / "run", X, y, probe_size=6)
    trainer = L.Trainer(max_epochs=2, callbacks=[cb], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                        default_root_dir=tmp_path)
    trainer.fit(Classifier(), loader)
    r = RunReader(tmp_path / "run")
    assert r.status == "complete" and r.round_ids == [0, 1]
    assert list(r.rounds()["steps"]) == [4, 8]
    s = r.samples(1)
    assert s["selected"].all() and s["score"].notna().all()
    assert r.samples(1)["score_byproduct"].abs().sum() > 0


def test_two_process_ddp_fit_logs_every_rank_share(tmp_path):
    """strategy="ddp" on 2 CPU processes: each rank sees half of every epoch (DistributedSampler).

    The run must still log all 64 samples per epoch (ids and outputs all-gathered): before,
    rank 0 alone held a tracker and logged half of them (epoch_equiv 0.5, 32 samples seen).
    Ranks end with identical weights and BatchNorm buffers.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    worker = Path(__file__).with_name("lightning_worker.py")
    p = subprocess.run([sys.executable, str(worker), str(tmp_path)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    r = RunReader(tmp_path / "run")
    assert r.status == "complete" and r.round_ids == [0, 1] and r.meta["world_size"] == 2
    rounds = r.rounds()
    assert list(rounds["steps"]) == [2, 4]  # 2 steps per epoch on each rank, counted once
    assert list(rounds["epoch_equiv"]) == [1.0, 2.0]
    for t in r.round_ids:
        s = r.samples(t)
        assert s["selected"].all() and s["score"].notna().all()
    assert (r.samples(1)["score_byproduct"] != 0).all()  # every sample seen in both epochs
    r0, r1 = (torch.load(tmp_path / f"rank{k}.pt") for k in (0, 1))
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
