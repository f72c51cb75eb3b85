"""A 2-process Lightning DDP fit on CPU for tests/test_lightning.py.

    python tests/lightning_worker.py OUT

Lightning's "ddp" strategy starts rank 1 by running this same command again.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's docl_core first

import lightning as L  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from docl_core.lightning import DoclCallback  # noqa: E402


class Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y, ids = batch
        out = self(x)
        return {"loss": nn.functional.cross_entropy(out, y), "outputs": out.detach()}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    torch.manual_seed(0)
    X = torch.randn(64, 4)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 1).long()
    data = torch.utils.data.TensorDataset(X, y, torch.arange(64))
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True)
    cb = DoclCallback(out / "run", X, y, probe_size=6)
    trainer = L.Trainer(max_epochs=2, callbacks=[cb], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                        strategy="ddp", devices=2, default_root_dir=out)
    trainer.fit(Classifier(), loader)
    torch.save(trainer.lightning_module.state_dict(), out / f"rank{trainer.global_rank}.pt")
