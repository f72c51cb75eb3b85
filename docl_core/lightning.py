"""A Lightning callback that logs a LightningModule's training into a docl run.

    from docl_core.lightning import DoclCallback
    trainer = L.Trainer(callbacks=[DoclCallback("runs/exp/run-0", X, y)])

It wraps DynamicsTracker, the same logger the built-in trainer uses: each training batch's
sample ids and outputs feed the byproduct estimator, and each epoch's end measures exact
scores and writes a round. Contract with your module: the batch carries the sample ids
(default: its last element) and `training_step` returns a dict with the batch outputs under
"outputs" beside "loss" (override `ids_from_batch` / `outputs_from_step` otherwise); the
module's forward maps a batch of X to outputs (B, C). Needs `pip install lightning`.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch

try:
    from lightning.pytorch.callbacks import Callback
except ImportError as e:  # an optional extra: say how to get it
    raise ImportError("docl_core.lightning needs Lightning: pip install lightning") from e

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
        if trainer.is_global_zero or trainer.world_size == 1:
            self.tracker = DynamicsTracker(self.out_dir, pl_module, self.X.to(pl_module.device),
                                           self.y.to(pl_module.device), **self.kwargs)

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
        self.tracker.end_round(metrics={"epoch": trainer.current_epoch, **metrics})

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.tracker is not None:
            self.tracker.close()

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self.tracker is not None:
            self.tracker.fail(f"{type(exception).__name__}: {exception}")
