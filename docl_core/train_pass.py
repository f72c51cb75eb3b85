"""One training pass for both protocols.

A protocol says what a pass trains (`PassSpec`, built by `steps_pass` or `paper_pass`): the ids,
their mini-batches in training order, each mini-batch's learning rate, the loss, mixup's α,
accumulation. `TrainPass.run` does what every pass shares, once: torchrun's row slicing and loss
scaling, accumulation under DDP's no_sync, fp16 loss scaling, the optimizer and teacher steps,
the tracker's per-batch record, and the end of the pass.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import torch

from .distributed import DistContext, sync_buffers
from .outputs import per_sample_loss, probability_square_loss
from .recipe import MeanTeacher, mixup_batch, optional_logits


class TrainingDiverged(RuntimeError):
    """Non-finite losses or scores: the run is marked failed with the reason."""


@dataclass
class PassSpec:
    """What one pass trains: the protocol's part of it."""
    ids: torch.Tensor                  # (K,) sample ids, in the order the batches' positions refer to
    batches: Iterable                  # positions into ids of each global mini-batch (slices or (B,) long), in order
    n_batches: int                     # how many `batches` yields
    lr: Callable[[int], float]         # learning rate of the mini-batch numbered `counter`
    loss: Callable                     # per-sample loss: outputs (B, C), targets → (B,)
    counter: int = 0                   # number of the first mini-batch (the paper's cosine runs over an episode)
    weights: Optional[torch.Tensor] = None  # (K,) loss weights: Σ w·ℓ / Σ w; None: the plain mean
    mixup_alpha: float = 0.0           # 0: no mixup (the teacher's logits still feed the score when there is one)
    accumulate: int = 1                # mini-batches per optimizer step, their losses summed
    step_first: bool = False           # accumulating: step at each group's start (the authors' full pass)
    clip: float = 0.0                  # gradient-norm clip of each step (0: none)
    teacher_batch_stats: bool = False  # the teacher's forward uses batch statistics (the paper's epoch 0)
    keep_losses: bool = False          # return each mini-batch's global mean loss
    full: bool = False                 # the paper's full large-batch pass (says what the pass is, for observers)


def steps_pass(cfg, ids: torch.Tensor, weights: torch.Tensor, steps: int, gen: torch.Generator,
               task: str) -> PassSpec:
    """The steps protocol: `steps` mini-batches of min(B, K) over the selected ids (K,) in reshuffled
    passes, the selection's weights (K,) in the loss, cosine lr restarted every round."""
    bs, sched = min(cfg.batch_size, len(ids)), cfg.schedule

    def positions():  # drawn lazily, a fresh permutation whenever the current one runs short
        order = torch.empty(0, dtype=torch.long, device=ids.device)
        for _ in range(steps):
            if len(order) < bs:
                order = torch.cat([order, torch.randperm(len(ids), generator=gen).to(ids.device)])
            take, order = order[:bs], order[bs:]
            yield take
    return PassSpec(ids, positions(), steps, lambda c: sched.lr_at(c, steps),
                    lambda o, t: per_sample_loss(o, t, task), weights=weights)


def paper_pass(cfg, plan, ids: torch.Tensor, *, full: bool, order: str, gen: torch.Generator, task: str,
               full_data: bool) -> PassSpec:
    """The paper protocol's pass over ids (K,), its mini-batches consecutive slices of ids in
    `order`: "draw" as given (the selection's own order, the authors'), "reversed", or "shuffle" (a
    fresh random order from the run's generator: the full pass, the warm start and sgd). A subset
    pass takes the plan's mini-batches per epoch at the subset's mixup α. A full pass
    (`full_pass_accumulate` mini-batches per step) trains the probability-space square loss with the
    warm start's α and steps at each group's start (`full_pass_step_first`, the authors': its first
    step applies the gradient the previous pass left, and the last group's stays unapplied) or end.
    `full_data`: the curriculum trains on every sample (the baseline's α)."""
    ps, bs, ep = cfg.schedule, cfg.batch_size, plan.episode
    accumulate = ps.full_pass_accumulate if full else 1
    alpha = 0.0 if not ps.mixup else ps.mixup_alpha_min if full else \
        ep.baseline_alpha if full_data else ep.mixup_alpha
    if order == "shuffle":
        ids = ids[torch.randperm(len(ids), generator=gen).to(ids.device)]
    elif order == "reversed":
        ids = ids.flip(0)
    starts = range(0, len(ids), bs) if full else range(0, len(ids), bs)[:plan.batches_per_epoch]
    square = full and task == "classification"
    return PassSpec(ids, [slice(s, s + bs) for s in starts], len(starts), plan.lr,
                    probability_square_loss if square else (lambda o, t: per_sample_loss(o, t, task)),
                    counter=plan.step_offset if full else plan.subset_offset, mixup_alpha=alpha,
                    accumulate=accumulate, step_first=full and accumulate > 1 and ps.full_pass_step_first,
                    clip=ps.clip_grad if accumulate > 1 else 0.0, teacher_batch_stats=plan.epoch == 0,
                    keep_losses=not full, full=full)


class TrainPass:
    """Trains passes (`run`) on a run's model, optimizer and data, for either protocol.

    net: what training forwards call (the model or its DDP wrapper); X (N, ...), y (N,) or (N, C)
    on the device; scaler: fp16's GradScaler or None; teacher: the mean teacher or None;
    batchnorm_sync: prepare_model's stance ("buffers-broadcast": rank 0's statistics are broadcast)."""

    def __init__(self, net, model, opt, X, y, gen: torch.Generator, tracker, dist: DistContext, autocast,
                 scaler: Optional[torch.amp.GradScaler], teacher: Optional[MeanTeacher], batchnorm_sync: str):
        self.net, self.model, self.opt, self.X, self.y, self.gen = net, model, opt, X, y, gen
        self.tracker, self.dist, self.autocast, self.scaler = tracker, dist, autocast, scaler
        self.teacher, self.batchnorm_sync = teacher, batchnorm_sync
        self.grads_scaled = False  # whether .grad holds fp16-scaled units (until the next step)

    def run(self, spec: PassSpec) -> tuple[torch.Tensor, list[float]]:
        """Train one pass; → (the ids in the order trained (K',), each mini-batch's global mean loss
        when `spec.keep_losses`). Without accumulation each mini-batch zeroes the gradient before its
        backward and steps after it (the gradient is left); accumulating, a group sums its
        mini-batches' gradients and steps at its end, or at its start (`step_first`). The teacher is
        updated after every step with the number of the group's first mini-batch."""
        acc, first, dist = spec.accumulate, spec.step_first, self.dist
        self.model.train()
        if acc > 1 and not first:
            self.opt.zero_grad(set_to_none=True)  # groups start from a zero gradient
        trained, losses = [], []  # torchrun: each loss summed over this rank's rows / global batch size
        for b, pos in enumerate(spec.batches):
            counter = spec.counter + b
            if first and b % acc == 0:
                self.step(spec.clip, counter, zero=True)
            lr = spec.lr(counter)
            for group in self.opt.param_groups:
                group["lr"] = lr
            # the group's last backward (and the pass's last) reduces gradients across ranks; the
            # others accumulate locally under DDP's no_sync, so a group sums the global batches'
            # gradients exactly as one process does
            last = (b + 1) % acc == 0 or b + 1 == spec.n_batches
            w = None if spec.weights is None else spec.weights[pos]
            rows, shown, loss = self._batch(spec, spec.ids[pos], w, last, counter)
            step = acc == 1 or (not first and last)
            if step:
                self.step(spec.clip, counter - b % acc, zero=acc > 1)
            if spec.keep_losses:
                losses.append(loss.detach() / dist.world if dist.active else float(loss.detach()))
            self.tracker.on_batch(rows, shown.detach().float(), lr, count=step or (first and b % acc == 0),
                                  pace=lr * acc)  # the authors count accumulate × lr of pace
            trained.append(spec.ids[pos])
        if dist.active and losses:  # one reduction per pass: each batch's global mean loss
            per_batch = torch.stack(losses).to(torch.float64)
            dist.all_reduce_sum_([per_batch])
            losses = per_batch.tolist()
        self.sync_batchnorm()
        self.tracker.end_pass()
        return (torch.cat(trained) if trained else spec.ids[:0]), losses

    def _batch(self, spec: PassSpec, batch: torch.Tensor, w: Optional[torch.Tensor], sync: bool, counter: int):
        """Forward and backward of the global mini-batch `batch` (B,) (weights w (B,) or None) on this
        rank's rows; → (the rows' ids, the logits the tracker records, the loss)."""
        dist, B = self.dist, len(batch)
        x, y = self.X[batch], self.y[batch]
        # mixup's λ and permutation are drawn for the global batch from the shared generator,
        # identically on every rank; each rank then trains its rows rank::world of the mix
        x_in, perm, lam = mixup_batch(x, spec.mixup_alpha, self.gen)
        y_mix = y[perm]
        wsum = None if w is None else w.sum()
        if dist.active:
            rows = torch.arange(B, device=batch.device)[dist.rank::dist.world]  # may be empty
            batch, x, y, x_in, y_mix = batch[rows], x[rows], y[rows], x_in[rows], y_mix[rows]
            if w is not None:
                w, wsum = w[rows], wsum / dist.world
        with self.autocast():
            clean = optional_logits(self.teacher, self.model, x, spec.teacher_batch_stats) \
                if (self.teacher is not None or spec.mixup_alpha > 0) else None
        with (self.net.no_sync() if dist.active and not sync else contextlib.nullcontext()):
            with self.autocast():
                out = self.net(x_in)
                loss = self._loss(spec.loss, out, y, y_mix, lam, w, wsum, B)
            if not bool(torch.isfinite(loss)):
                raise TrainingDiverged(f"non-finite training loss at round {self.tracker.round}, step "
                                       f"{counter}: lower the learning rate (--lr) and rerun")
            if spec.accumulate == 1:
                self.opt.zero_grad(set_to_none=True)
            self.backward(loss)  # under no_sync too: DDP's reduction hooks fire in backward
        return batch, (clean if clean is not None else out), loss

    def _loss(self, lossf, out, y, y_mix, lam: float, w, wsum, B: int) -> torch.Tensor:
        """The loss on this rank's rows whose gradient, averaged over ranks by DDP, is the global
        batch's: weighted, Σ w·ℓ / Σ w (Σ w / world under DDP); else the mean, λ·ℓ(y) + (1 − λ)·ℓ(y_perm)
        under mixup, as Σ over the rows × world / B under DDP (exact for uneven shards)."""
        if w is not None:
            return (lossf(out, y) * w).sum() / wsum
        if self.dist.active:
            scale = self.dist.world / B
            return lossf(out, y).sum() * scale if lam >= 1 else \
                (lam * lossf(out, y).sum() + (1 - lam) * lossf(out, y_mix).sum()) * scale
        return lam * lossf(out, y).mean() + (1 - lam) * lossf(out, y_mix).mean() if lam < 1 \
            else lossf(out, y).mean()

    def backward(self, loss: torch.Tensor) -> None:
        """loss.backward(), scaled under fp16 (the gradient then holds scaled units until the next step)."""
        if self.scaler is None:
            loss.backward()
            return
        self.scaler.scale(loss).backward()
        self.grads_scaled = True

    def step(self, clip: float, teacher_counter: int, zero: bool) -> None:
        """One optimizer step on the gradient held (clipped to norm `clip` when > 0; zeroed after it
        when `zero`), then the teacher's update. Under fp16 a scaled gradient is unscaled first and
        the step skipped on inf/NaN (GradScaler); a gradient already unscaled (what a pass leaves for
        the full pass's first step) is stepped as is."""
        scaled = self.scaler is not None and self.grads_scaled
        if scaled:
            self.scaler.unscale_(self.opt)
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        if scaled:
            self.scaler.step(self.opt)
            self.scaler.update()
            self.grads_scaled = False
        else:
            self.opt.step()
        if zero:
            self.opt.zero_grad(set_to_none=True)
        if self.teacher is not None:
            self.sync_batchnorm()
            self.teacher.update(self.model, teacher_counter)

    def sync_batchnorm(self) -> None:
        """torchrun on CPU ("buffers-broadcast"): every rank takes rank 0's BatchNorm statistics, the
        student's and the teacher's (in epoch 0 the teacher's batch-statistics forwards move them
        on each rank's shard), so the teacher's average covers the same state on every rank.
        Parameters need nothing (DDP's averaged gradients keep them identical); with SyncBatchNorm
        (CUDA) the statistics are already global and identical, and one process has nothing to do."""
        if self.batchnorm_sync != "buffers-broadcast":
            return
        sync_buffers(self.model, self.dist)
        if self.teacher is not None:
            sync_buffers(self.teacher.model, self.dist)
