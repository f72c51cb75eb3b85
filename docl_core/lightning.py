"""A Lightning callback that logs a LightningModule's training into a docl run.

    from docl_core.lightning import DoclCallback
    trainer = L.Trainer(callbacks=[DoclCallback("runs/exp/run-0", X, y)])

It wraps DynamicsTracker, the same logger the built-in trainer uses: each training batch's
sample ids and outputs feed the byproduct estimator, and each epoch's end measures exact
scores and writes a round. Contract with your module: the batch carries the sample ids
(default: its last element) and `training_step` returns a dict with the batch outputs under
"outputs" beside "loss" (override `ids_from_batch` / `outputs_from_step` otherwise); the
module's forward maps a batch of X to outputs (B, C). Needs `pip install lightning`.

Multi-process fits (strategy "ddp" and friends on torch.distributed): every rank holds a
tracker, as the built-in trainer's ranks do. Each batch's ids and outputs are all-gathered,
so the byproduct state sees every rank's share; each epoch's measurement is sharded (ḡ
all-reduced, rows all-gathered) with rank 0's buffers; only global rank 0 writes the run.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch

try:
    from lightning.pytorch.callbacks import Callback
except ImportError as e:  # an optional extra: say how to get it
    raise ImportError("docl_core.lightning needs Lightning: pip install lightning") from e

from .distributed import SINGLE, DistContext, sync_buffers
from .tracker import DynamicsTracker


class DoclCallback(Callback):
    """Logs per-sample dynamics of `Trainer.fit` into `out_dir` (one docl round per epoch).

    Args:
        out_dir: the run folder.
        X, y: the tracked training set (tensors); the batch's ids index into it.
        ids_from_batch: batch → (B,) sample ids (default: the batch's last element).
        outputs_from_step: training_step's return → (B, C) outputs (default: out["outputs"]).
        **tracker_kwargs: passed to DynamicsTracker (task, probe_size, estimator, ...).
    """

    def __init__(self, out_dir, X: torch.Tensor, y: torch.Tensor,
                 ids_from_batch: Optional[Callable[[Any], torch.Tensor]] = None,
                 outputs_from_step: Optional[Callable[[Any], torch.Tensor]] = None, **tracker_kwargs):
        super().__init__()
        self.out_dir, self.X, self.y, self.kwargs = out_dir, X, y, tracker_kwargs
        self.ids_from_batch = ids_from_batch or (lambda batch: batch[-1])
        self.outputs_from_step = outputs_from_step or (lambda out: out["outputs"])
        self.tracker: Optional[DynamicsTracker] = None

    def on_fit_start(self, trainer, pl_module) -> None:
        self.tracker = DynamicsTracker(self.out_dir, pl_module, self.X.to(pl_module.device),
                                       self.y.to(pl_module.device), dist=_context(trainer, pl_module),
                                       **self.kwargs)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.tracker is None:
            return
        try:
            out = self.outputs_from_step(outputs)
        except (KeyError, TypeError, IndexError):
            raise ValueError("DoclCallback needs training_step to return {'loss': ..., 'outputs': "
                             "batch outputs}, or pass outputs_from_step=...") from None
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self.tracker.on_batch(self.ids_from_batch(batch), out, lr=lr)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.tracker is None:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if torch.is_tensor(v) and v.numel() == 1}
        sync_buffers(pl_module, self.tracker.dist)  # ranks measure with rank 0's BatchNorm statistics
        self.tracker.end_round(metrics={"epoch": trainer.current_epoch, **metrics})

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.tracker is not None:
            self.tracker.close()

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self.tracker is not None:
            self.tracker.fail(f"{type(exception).__name__}: {exception}")


def _context(trainer, pl_module) -> DistContext:
    """The tracker's view of the job: Lightning's ranks, over its torch.distributed group."""
    if trainer.world_size == 1:
        return SINGLE
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        raise RuntimeError(f"DoclCallback: {trainer.world_size} processes but torch.distributed is not "
                           "initialised: use a DDP strategy (strategy='ddp'), or fit on one device")
    return DistContext(rank=trainer.global_rank, world=trainer.world_size, device=pl_module.device)
