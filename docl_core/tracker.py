"""DynamicsTracker: log any PyTorch training loop into a docl run, in three calls.

    tracker = DynamicsTracker("runs/mine/run-0", model, X, y)
    for epoch in range(E):
        for ids in batches:                      # indices into X
            out = model(X[ids]); loss = ...; loss.backward(); opt.step()
            tracker.on_batch(ids, out, lr=opt.param_groups[0]["lr"])
        tracker.end_round(metrics={"val_acc": ...})
    tracker.close()

`on_batch` feeds the byproduct estimator, forgetting events and the area under the margin from
outputs the loop already computed (no extra forward). `end_round` measures the current weights: exact scores (one backward pass for ḡ
plus one forward-mode pass), residuals, speeds, kernel blocks on a fixed stratified probe
set, the per-sample scores of the data-pruning literature from the same outputs (EL2N, margin,
entropy; data-map confidence, variability and correctness over rounds; GraNd ‖g_i‖ when asked
for), and writes the round per the run-store contract. The tracker never touches the
model's parameters, buffers, mode or .grad, the optimiser, or the global random state.
The built-in trainer logs through this same class.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from .distributed import SINGLE, DistContext
from .embedding import PCABasis, embedding_frame, has_features
from .config import ESTIMATORS, SELECTION_SCORES
from .dynamics import (ByproductEstimator, check_inputs, docl_scores, eval_mode, kernel_block,
                       kernel_eigenvalues, mean_gradient, score_contributions)
from .outputs import at_label, margin, output_scores, per_sample_loss, probabilities, residual_and_loss
from .envinfo import versions
from .grand import grad_norms, vmap_grad_norms  # noqa: F401 (vmap_grad_norms: the reference route)
from .recipe import PaperByproduct
from .store import MemoryRun, RunWriter, read_run_json



@dataclass
class Measurement:
    """Per-sample state of the training set at one set of weights (tensors on the data device)."""

    loss: torch.Tensor                  # (N,)
    output: torch.Tensor                # (N, C)
    residual: torch.Tensor              # (N, C)
    scores: dict[str, torch.Tensor]     # estimator name → (N,)
    speed: Optional[torch.Tensor]       # (N, C) from the exact or fast estimator
    features: Optional[torch.Tensor]    # (N, D) penultimate embeddings, when asked for
    kernel: Optional[dict[str, np.ndarray]] = None  # probe-set kernel arrays at the same weights
    grad_norm: float = float("nan")
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    sample: dict[str, torch.Tensor] = field(default_factory=dict)  # name → (N,): output_scores, forgetting,
                                        # aum, presentations, grand (SAMPLE_SCORES but the data map's)


class PresentationLog:
    """Forgetting events and the area under the margin (AUM), accumulated per presentation: each row
    of outputs a training loop passes to `on_batch` presents one sample (Toneva et al. 2019 count a
    forgetting event when a sample predicted right at one presentation is wrong at its next; Pleiss
    et al. 2020 average the margin f_y − max_{c≠y} f_c over presentations). A sample presented but
    never predicted right is, as in Toneva et al., more forgettable than any learned one: its
    forgetting is its own number of presentations plus the most presentations any sample has had
    (a learned sample's events number at most half of its own presentations), so it ranks above
    every learned sample, and among the never-learned ones the longer-presented first.
    Classification only: for regression both stay NaN. Ids within one batch are distinct (one
    presentation each)."""

    def __init__(self, y: torch.Tensor, task: str):
        n, dev = y.shape[0], y.device  # kept on the labels' device: no host sync per batch
        self.y, self.task = y, task
        self.count = torch.zeros(n, dtype=torch.long, device=dev)          # (N,) presentations so far
        self.forgetting = torch.zeros(n, dtype=torch.long, device=dev)     # (N,) correct → wrong transitions
        self.last_correct = torch.zeros(n, dtype=torch.bool, device=dev)   # (N,) right at the last presentation
        self.learned = torch.zeros(n, dtype=torch.bool, device=dev)        # (N,) right at some presentation
        self.margin_sum = torch.zeros(n, dtype=torch.float64, device=dev)  # (N,) Σ margins over presentations

    def record(self, ids: torch.Tensor, outputs: torch.Tensor) -> None:
        """ids (B,) presented with their outputs (B, C), as the loop computed them."""
        ids = ids.to(self.y.device)
        if self.task == "classification":
            out = outputs.detach().to(self.y.device, torch.float32)
            y = self.y[ids].long()
            correct = out.argmax(1) == y
            self.forgetting[ids] += ((self.count[ids] > 0) & self.last_correct[ids] & ~correct).long()
            self.last_correct[ids] = correct
            self.learned[ids] |= correct
            self.margin_sum[ids] += margin(out, y).double()
        self.count[ids] += 1

    def scores(self) -> dict[str, torch.Tensor]:
        """forgetting (N,) (0 before any presentation; presentations + the most presentations of
        any sample if never learned), aum (N,) (NaN before any), presentations (N,)."""
        seen = self.count > 0
        if self.task != "classification":
            nan = torch.full(self.count.shape, float("nan"), dtype=torch.float64, device=self.count.device)
            return {"forgetting": nan, "aum": nan.clone(), "presentations": self.count.clone()}
        aum = torch.where(seen, self.margin_sum / self.count.clamp_min(1), torch.full_like(self.margin_sum, float("nan")))
        never = seen & ~self.learned
        forgetting = torch.where(never, self.count + self.count.max(), self.forgetting)
        return {"forgetting": forgetting, "aum": aum, "presentations": self.count.clone()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k).cpu().clone()
                for k in ("count", "forgetting", "last_correct", "learned", "margin_sum")}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            setattr(self, k, v.to(self.y.device).clone())
        if "learned" not in state:  # a checkpoint from before `learned`: right at the last presentation, or forgot
            self.learned = self.last_correct | (self.forgetting > 0)


def per_sample_grad_norms(model: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str = "classification",
                          batch_size: int = 512, memory_budget_bytes: int = 1 << 28) -> torch.Tensor:
    """GraNd: ‖g_i‖ = ‖∇θ ℓ_i‖ over the trainable parameters for every sample, (N,), in eval mode,
    from per-layer hooks (`grand.grad_norms`; `grand.vmap_grad_norms`, per-sample gradients in
    chunks of at most `memory_budget_bytes`, for models with modules it has no rule for).
    Leaves the model's parameters, buffers, mode and .grad untouched."""
    return grad_norms(model, X, y, task, batch_size, memory_budget_bytes)


def stratified_probe(y: torch.Tensor, m: int, seed: int, task: str) -> torch.Tensor:
    """m sample ids, an equal share per class (classification) or uniform (regression), sorted by class."""
    g = torch.Generator().manual_seed(seed + 7919)
    n = len(y)
    m = min(m, n)
    if task != "classification":
        return torch.randperm(n, generator=g)[:m].sort().values
    yc = y.cpu()
    classes = yc.unique()
    per = [torch.nonzero(yc == c).flatten() for c in classes]
    per = [ids[torch.randperm(len(ids), generator=g)] for ids in per]
    take, i = [], 0
    while len(take) < m:  # round-robin over classes keeps the probe balanced
        for ids in per:
            if i < len(ids) and len(take) < m:
                take.append(int(ids[i]))
        i += 1
    probe = torch.tensor(take)
    return probe[torch.argsort(yc[probe] * n + probe)]  # ordered by class, then id


def model_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Penultimate embeddings if the model offers `features`, else its outputs."""
    fn = getattr(model, "features", None)
    return fn(x) if callable(fn) else model(x)


class DynamicsTracker:
    """Logs per-sample dynamics of a training loop into a docl run folder.

    Args:
        out_dir: the run folder (created; its parent is the experiment folder), or None to keep the
            run in memory only (`tracker.run` reads it back: rounds(), samples(t), kernel(t); no resume).
        model: the model being trained (read only).
        X: (N, ...) training inputs the loop draws from; sample ids index into X.
        y: (N,) int labels or (N, C) float targets.
        task: "classification" or "regression".
        estimator: the estimator reported as `score` ("exact", "fast", "byproduct" or "paper":
            the authors' estimator from logits recorded in training, see recipe.PaperByproduct;
            "none": a constant 0, the ablation where no score drives the selection).
        log_estimators: further estimators logged beside it (columns score_<name>).
        probe_size: kernel probe samples (stratified by class); 0 turns kernel logging off.
        kernel_full: also store the full (m, m, C, C) blocks (the trace, contributions and
            eigenvalues are always stored; full blocks are C² times larger).
        eval_sets: optional {"val": (X, y), "test": (X, y)} evaluated at each round's end.
        noisy: optional (N,) bool, which labels were flipped (for the app's noise views).
        clean_labels: optional (N,) int, the train labels before noise (classification): when some
            label is flipped (`noisy`), each round also logs p_clean = p(clean label) beside
            p_true = p(given label), so a flipped sample's curve shows which label is being learned.
        dataset_frame: optional dataset.parquet contents (ids, splits, thumbnails, ...).
        config, meta: stored in run.json.
        resume: reopen an existing run folder instead of refusing to overwrite it.
        embedding: when the model has `features(x)`, write each round's training samples on a
            fixed 2-D PCA map (embedding.py; one extra no-grad forward per round).
        tensorboard: a torch.utils.tensorboard.SummaryWriter the loop already has: each round's
            scalars and score histograms are written to it too, under docl/ (step = round).
        refresh: with only the byproduct estimator, False reuses the outputs training already
            computed for losses and residuals (stale for samples not seen this round, as the
            authors' code does) instead of one eval forward over X per round.
        log_grad_norms: also log GraNd ‖g_i‖ (column `grand`) by per-sample gradients, whenever
            the exact scores are measured (benchmarks/bench_atlas.py measures its cost).

    Overhead (measured on 2 CPU cores, benchmarks/bench_training.py and bench_scores.py):
    on_batch costs about 0.2 ms per step; end_round writes the frame (about 50 ms at
    N = 20k) and, for exact scores, costs one ḡ pass plus one forward-mode pass: 1.6× a
    plain epoch as given for a 1M-parameter CNN, 1.9× for a small CNN. Byproduct-only
    logging with refresh=False added 6% to a small-CNN epoch (53% to a tiny MLP whose epoch
    takes 0.17 s: the fixed costs dominate there). The atlas's scores (EL2N, margin, entropy,
    forgetting, AUM, the data map) reuse outputs already computed; GraNd's per-sample gradient
    pass cost 0.84× a plain epoch of digits' SmallCNN (benchmarks/bench_atlas.py).
    """

    def __init__(self, out_dir, model: nn.Module, X: torch.Tensor, y: torch.Tensor,
                 task: str = "classification", *, estimator: str = "exact",
                 log_estimators=("byproduct",), probe_size: int = 64, score_batch_size: int = 512,
                 eval_sets: Optional[dict[str, tuple[torch.Tensor, torch.Tensor]]] = None,
                 noisy: Optional[torch.Tensor] = None, clean_labels: Optional[torch.Tensor] = None,
                 dataset_frame: Optional[pd.DataFrame] = None, config: Optional[dict[str, Any]] = None,
                 meta: Optional[dict[str, Any]] = None,
                 byproduct_ema: float = 0.9, seed: int = 0, resume: bool = False, refresh: bool = True,
                 writer: Optional[RunWriter] = None, dist: DistContext = SINGLE,
                 kernel_full: bool = False, embedding: bool = True, tensorboard=None,
                 log_grad_norms: bool = False):
        check_inputs(X, y, task)
        with torch.no_grad(), eval_mode(model):
            C = model(X[:1]).shape[1]
        check_inputs(X, y, task, num_outputs=C)
        estimators = [estimator, *[e for e in log_estimators if e != estimator]]
        for e in estimators:
            if e not in ESTIMATORS:
                raise ValueError(f"unknown estimator {e!r}: use {', '.join(ESTIMATORS)}")
        self.model, self.X, self.y, self.task = model, X, y, task
        self.N, self.C = X.shape[0], C
        self.estimator, self.estimators = estimator, estimators
        self.dist = dist
        self.refresh = refresh
        self.kernel_full = kernel_full
        self.score_batch_size = score_batch_size
        self.eval_sets = eval_sets or {}
        self.noisy = None if noisy is None else noisy.to(torch.bool).cpu()
        self.clean = None                                               # (N,) int64 on y's device, or None
        flipped = self.noisy is not None and bool(self.noisy.any())
        if clean_labels is not None and task == "classification" and flipped:
            if tuple(clean_labels.shape) != (self.N,):
                raise ValueError(f"clean_labels must have shape ({self.N},) like y, got {tuple(clean_labels.shape)}")
            if int(clean_labels.min()) < 0 or int(clean_labels.max()) >= C:
                raise ValueError(f"clean_labels must lie in [0, {C}) like y: pass the labels before noise")
            self.clean = clean_labels.to(device=y.device, dtype=torch.long)
        self.byproduct = ByproductEstimator(y, C, task, ema=byproduct_ema)
        self.paper = PaperByproduct(y, C, task)
        self.presentations = PresentationLog(y, task)
        self.log_grad_norms = log_grad_norms
        # the data map's running sums over committed rounds: p(given label), its square, correct
        self.map_sums = torch.zeros(3, self.N, dtype=torch.float64)  # (3, N)
        self.map_rounds = 0
        self.times_selected = torch.zeros(self.N, dtype=torch.long)
        self.seen_this_round = torch.zeros(self.N, dtype=torch.bool)
        self.steps = 0
        self.samples_seen = 0
        self.round = 0
        self._round_lr_max = 0.0
        self._round_start = time.perf_counter()
        self.last_row: dict[str, Any] = {}
        self.probe = stratified_probe(y, probe_size, seed, task) if probe_size > 0 else None
        if out_dir is None and writer is None and dist.active:
            raise ValueError("under torch.distributed the ranks share a run folder: give DynamicsTracker one")
        self.writer = writer or (MemoryRun() if out_dir is None else
                                 RunWriter(out_dir) if dist.is_writer else _FollowerWriter(out_dir))
        self.dir = Path(self.writer.dir)
        base_meta = {"name": self.dir.name, "task": task, "num_outputs": C, "num_train": self.N,
                     "world_size": dist.world, "device": str(X.device), "versions": versions(),
                     "config": config or {"curriculum": "custom", "estimator": estimator},
                     **(meta or {})}
        started = self.writer.start(base_meta, resume=resume)
        self.round = started["last_complete_round"] + 1
        if dataset_frame is not None and (not resume or not (self.dir / "dataset.parquet").exists()):
            self.writer.write_dataset(dataset_frame)
        elif dataset_frame is None and not (self.dir / "dataset.parquet").exists():
            self.writer.write_dataset(self._default_frame())
        # the 2-D map: a PCA basis fitted on the first measured features, kept for the run
        self.tensorboard = tensorboard
        self.embeds = embedding and has_features(model)
        self.basis: Optional[PCABasis] = None
        self._basis_written = False
        if self.embeds and resume and (self.dir / "embedding" / "basis.npz").exists():
            from .store import RunReader
            self.basis = PCABasis.from_arrays(RunReader(self.dir).embedding_basis())
            self._basis_written = True
            self.writer.meta.setdefault("embedding", self.basis.info())  # killed before its first commit
        elif embedding and not self.embeds and "embedding" not in self.writer.meta:
            self.writer.meta["embedding"] = {"method": "none", "reason": "the model has no features(x) method"}

    @property
    def run(self):
        """What has been logged, read back: a RunReader of the run folder, or the MemoryRun itself
        for a tracker made with out_dir=None (rounds(), samples(t), kernel(t), dataset(), meta)."""
        if isinstance(self.writer, MemoryRun):
            return self.writer
        from .store import RunReader
        return RunReader(self.dir)

    # ------------------------------------------------------------------ the three calls

    def on_batch(self, sample_ids, outputs: torch.Tensor, lr: float, count: bool = True,
                 pace: Optional[float] = None) -> None:
        """After a mini-batch: its sample ids (B,), its outputs (B, C) on the clean inputs (under
        mixup, pass a teacher's or a no-grad forward's logits), the batch's learning rate.
        count=False: the batch fed the estimators but was not an optimiser step (accumulation).
        pace: what the batch adds to the paper estimator's pace (default lr; the authors count
        accumulate × lr for a large-batch mini-batch)."""
        ids = torch.as_tensor(sample_ids, dtype=torch.long).to(self.y.device)
        if outputs.shape[0] != ids.shape[0]:
            raise ValueError(f"on_batch got {ids.shape[0]} ids but {outputs.shape[0]} outputs: "
                             "pass one id per row of outputs")
        outputs = outputs.detach()
        if self.dist.active:  # every rank keeps the same byproduct state for the global batch
            ids = self.dist.all_gather_rows(ids.to(outputs.device)).to(self.y.device)
            outputs = self.dist.all_gather_rows(outputs)
        self.byproduct.update(ids, outputs, float(lr))
        self.presentations.record(ids, outputs)
        if "paper" in self.estimators:
            self.paper.record(ids, outputs, float(lr if pace is None else pace))
        self.seen_this_round[ids.cpu()] = True
        self.steps += int(count)
        self.samples_seen += int(ids.shape[0])
        self._round_lr_max = max(self._round_lr_max, float(lr))

    def end_pass(self) -> None:
        """Close a pass over the data (an epoch, or the subset pass of one): the paper estimator
        updates the samples visited since the last call. end_round calls it too."""
        self.paper.end_pass()

    def end_round(self, metrics: Optional[dict[str, float]] = None, measured: Optional[Measurement] = None,
                  selected: Optional[torch.Tensor] = None, weights: Optional[torch.Tensor] = None,
                  timings: Optional[dict[str, float]] = None, checkpoint: Optional[bytes] = None,
                  extra_round: Optional[dict[str, Any]] = None, order: Optional[torch.Tensor] = None) -> int:
        """Close a round: measure (unless given), evaluate, write the round. Returns its number.

        `selected` (ids trained on this round) defaults to the samples passed to on_batch
        since the last round; `measured` defaults to a measurement of the current weights.
        `order` (ids (k,), distinct, in the order the round's pass presented them) writes each
        sample's `pass_position` (0-based; −1 outside the pass); left out, no such column.
        """
        t = self.round
        self.end_pass()
        own = {}
        if measured is None:  # measured here on the current weights: it is also the train metric
            measured = self.measure(kernel=True)
            own["train_loss"] = float(measured.loss.mean())
            if self.task == "classification":
                own["train_acc"] = float((measured.output.argmax(1) == self.y).float().mean())
        sel = self.seen_this_round.clone() if selected is None else _mask(selected, self.N)
        w = torch.zeros(self.N)
        if weights is not None and selected is not None:
            w[torch.as_tensor(selected).cpu().long()] = torch.as_tensor(weights, dtype=torch.float32).cpu()
        else:
            w[sel] = 1.0
        self.times_selected += sel.long()
        data_map = self.data_map_scores(measured)  # this round's p joins the running sums after the frame
        t0 = time.perf_counter()
        evals = self.evaluate()
        emb = measured.extra.get("embedding") if self.dist.is_writer else None
        if emb is not None:
            own["embedding_var_2d"] = measured.extra["embedding_var_2d"]  # variance share on the map's axes
        row = {"k": int(sel.sum()), "lr": self._round_lr_max, "steps": self.steps,
               "samples_seen": self.samples_seen, "epoch_equiv": self.samples_seen / self.N, **evals,
               "score_time_s": measured.seconds, "eval_time_s": time.perf_counter() - t0,
               "grad_norm": measured.grad_norm,
               "noisy_selected": int((sel & self.noisy).sum()) if self.noisy is not None else 0,
               "round_time_s": time.perf_counter() - self._round_start, **own,
               **(timings or {}), **(extra_round or {}), **(metrics or {})}
        if self.dist.is_writer:
            kernel = measured.kernel  # measured on the same weights as the samples frame
            frame = self.sample_frame(measured, sel, w, data_map)
            if order is not None:
                frame["pass_position"] = pass_positions(order, self.N)
            if emb is not None and not self._basis_written:
                self.writer.write_embedding_basis(self.basis.arrays(), self.basis.info())
                self._basis_written = True
            self.writer.write_round(t, row, frame, kernel, checkpoint,
                                    embedding=embedding_frame(emb) if emb is not None else None)
            if self.tensorboard is not None:
                from .export import log_round
                log_round(self.tensorboard, t, row, frame)
        self._commit_data_map(measured)
        self.last_row = row
        self.round = t + 1
        self.seen_this_round.zero_()
        self._round_lr_max = 0.0
        self._round_start = time.perf_counter()
        return t

    def close(self, status: str = "complete") -> None:
        self.writer.finish(status)

    def fail(self, reason: str) -> None:
        self.writer.fail(reason)

    # ------------------------------------------------------------------ measuring

    def measure(self, features: bool = False, kernel: bool = False,
                estimators: Optional[list[str]] = None) -> Measurement:
        """Loss, residual, scores and optionally features and probe kernel, at the current weights.

        `estimators` (default: all the tracker logs) limits the costly ones: an exact or fast
        estimator left out this time is reported as NaN. Under torch.distributed each rank
        computes its shard (ḡ all-reduced) and the per-sample results are all-gathered, so
        every rank holds the same full measurement.
        """
        t0 = time.perf_counter()
        ctx = self.dist
        sh = ctx.shard(self.N)
        X, y = self.X[sh], self.y[sh]
        scores: dict[str, torch.Tensor] = {}
        speed = output = None
        grad_norm = float("nan")
        gbar = None
        wanted = self.estimators if estimators is None else estimators
        skipped: set[str] = set()  # estimators not computed this time (NaN columns)
        for name in self.estimators:
            if name == "byproduct":
                scores[name] = self.byproduct_scores()
                continue
            if name == "paper":
                scores[name] = self.paper.score.clone().to(self.X.dtype)
                continue
            if name == "none":  # no score: selection draws uniformly (the score ablation)
                scores[name] = torch.zeros(self.N, dtype=self.X.dtype, device=self.X.device)
                continue
            if name not in wanted:
                skipped.add(name)
                scores[name] = torch.full((self.N,), float("nan"), dtype=self.X.dtype, device=self.X.device)
                continue
            if gbar is None:  # one ḡ pass serves every estimator that needs it
                gbar = mean_gradient(self.model, X, y, self.task, self.score_batch_size)
                if ctx.active:
                    parts = list(gbar.values())
                    for g in parts:
                        g.mul_(len(X) / self.N)  # shard mean → shard's share of the global mean
                    ctx.all_reduce_sum_(parts)
            dyn = docl_scores(self.model, X, y, self.task, batch_size=self.score_batch_size,
                              estimator=name, gbar=gbar)
            scores[name] = ctx.all_gather_rows(dyn.score)
            if speed is None or name == "exact":
                speed, output, grad_norm = dyn.speed, dyn.output, dyn.grad_norm
        if speed is not None:
            speed, output = ctx.all_gather_rows(speed), ctx.all_gather_rows(output)
        elif not self.refresh and not features:
            output = self.byproduct.last_output.to(self.X.dtype)  # what training last saw
        feats = None
        want_feats = features or self.embeds  # the map needs them every round, in this same pass
        if want_feats or output is None:
            outs, fs = [], []
            with torch.no_grad(), eval_mode(self.model):
                for s in range(0, len(X), self.score_batch_size):
                    xb = X[s:s + self.score_batch_size]
                    if want_feats:
                        fs.append(model_features(self.model, xb))
                    if output is None:
                        outs.append(self.model(xb))
            feats = ctx.all_gather_rows(torch.cat(fs)) if want_feats else None
            if output is None:
                output = ctx.all_gather_rows(torch.cat(outs))
        extra = self._embed(feats) if self.embeds and ctx.is_writer and feats is not None else {}
        if not features:
            feats = None
        residual, loss = residual_and_loss(output, self.y, self.task)
        sample = {**output_scores(output, self.y, self.task), **self.presentations.scores()}
        if self.log_grad_norms:
            if estimators is None or "grand" in estimators:
                sample["grand"] = ctx.all_gather_rows(per_sample_grad_norms(
                    self.model, X, y, self.task, self.score_batch_size))
            else:
                sample["grand"] = torch.full((self.N,), float("nan"), dtype=self.X.dtype, device=self.X.device)
        finite = bool(torch.isfinite(loss).all()) and all(bool(torch.isfinite(v).all())
                                                          for k, v in scores.items() if k not in skipped)
        # a diverged model has no kernel to show: the caller reports the divergence
        arrays = self.kernel_arrays() if kernel and finite and self.probe is not None and ctx.is_writer else None
        return Measurement(loss=loss, output=output, residual=residual, scores=scores, speed=speed,
                           features=feats, kernel=arrays, grad_norm=grad_norm,
                           seconds=time.perf_counter() - t0, extra=extra, sample=sample)

    def data_map_scores(self, m: Measurement) -> dict[str, torch.Tensor]:
        """Data-map confidence, variability (population std) and correctness (N,) of p(given label)
        over the committed rounds and `m` (the round being selected or written). NaN for regression."""
        if self.task != "classification":
            nan = torch.full((self.N,), float("nan"), dtype=torch.float64)
            return {"confidence": nan, "variability": nan.clone(), "correctness": nan.clone()}
        p, correct = self._p_and_correct(m)
        n = self.map_rounds + 1
        conf = (self.map_sums[0] + p) / n
        var = ((self.map_sums[1] + p * p) / n - conf * conf).clamp_min(0).sqrt()
        return {"confidence": conf, "variability": var, "correctness": (self.map_sums[2] + correct) / n}

    def _p_and_correct(self, m: Measurement) -> tuple[torch.Tensor, torch.Tensor]:
        out = m.output.detach().double()
        yl = self.y.long().to(out.device)
        return at_label(probabilities(out), yl).cpu(), (out.argmax(1) == yl).double().cpu()

    def _commit_data_map(self, m: Measurement) -> None:
        if self.task != "classification":
            return
        p, correct = self._p_and_correct(m)
        self.map_sums += torch.stack([p, p * p, correct])
        self.map_rounds += 1

    def score_values(self, m: Measurement, name: str) -> torch.Tensor:
        """(N,) values of any selection score (config.SELECTION_SCORES) in measurement m: an
        estimator's DoCL score, the loss, a sample score, or a data-map one (rounds so far and m)."""
        if name in m.scores:
            return m.scores[name]
        if name == "loss":
            return m.loss
        if name in m.sample:
            return m.sample[name].to(device=m.loss.device, dtype=m.loss.dtype)
        if name in ("confidence", "variability", "correctness"):
            return self.data_map_scores(m)[name].to(device=m.loss.device, dtype=m.loss.dtype)
        if name == "grand":
            raise ValueError("GraNd is not logged in this run: pass --log-grad-norms (log_grad_norms=True)")
        raise ValueError(f"unknown score {name!r}: choose one of {', '.join(SELECTION_SCORES)}")

    def _embed(self, feats: torch.Tensor) -> dict[str, Any]:
        """Project (N, D) features on the run's fixed PCA basis (fitted here the first time)."""
        if not bool(torch.isfinite(feats).all()):
            return {}  # a diverged model: no map (the caller reports the divergence)
        if self.basis is None:
            self.basis = PCABasis.fit(feats, fit_round=self.round)
        coords, on_map = self.basis.project(feats)  # (N, K)
        return {"embedding": coords, "embedding_var_2d": on_map}

    def byproduct_scores(self) -> torch.Tensor:
        """Byproduct estimates (N,); samples never estimated get the largest estimate (explore them)."""
        s = self.byproduct.score.clone()
        have = self.byproduct.observed > 0
        fill = s[have].max() if bool(have.any()) else torch.tensor(0.0)
        s[~have] = fill
        return s.to(self.X.dtype)

    def evaluate(self, model: Optional[nn.Module] = None) -> dict[str, float]:
        """Loss and accuracy (classification) or MSE (regression) on each eval set (sharded, reduced),
        of the tracked model or of `model` (e.g. a mean teacher)."""
        out = {}
        model = self.model if model is None else model
        with torch.no_grad(), eval_mode(model):
            for split, (Xs, ys) in self.eval_sets.items():
                n = len(Xs)
                if n == 0:
                    continue
                sh = self.dist.shard(n)
                Xl, yl = Xs[sh], ys[sh]
                sums = torch.zeros(3, dtype=torch.float64, device=Xs.device)  # loss, correct, squared error
                for s in range(0, len(Xl), self.score_batch_size):
                    o = model(Xl[s:s + self.score_batch_size])
                    yb = yl[s:s + self.score_batch_size]
                    _, loss = residual_and_loss(o, yb, self.task)
                    sums[0] += loss.sum()
                    if self.task == "classification":
                        sums[1] += (o.argmax(1) == yb).sum()
                    else:
                        sums[2] += ((o - yb) ** 2).mean(1).sum()
                self.dist.all_reduce_sum_([sums])
                out[f"{split}_loss"] = float(sums[0]) / n
                if self.task == "classification":
                    out[f"{split}_acc"] = float(sums[1]) / n
                else:
                    out[f"{split}_mse"] = float(sums[2]) / n
        return out

    def kernel_arrays(self) -> dict[str, np.ndarray]:
        """Probe-set kernel: ids, labels, trace (m, m), eigenvalues, residuals, contributions c_ij."""
        ids = self.probe.to(self.X.device)
        Xp, yp = self.X[ids], self.y[ids]
        H = kernel_block(self.model, Xp, reduce="full")  # (m, m, C, C)
        with torch.no_grad(), eval_mode(self.model):
            residual, _ = residual_and_loss(self.model(Xp), yp, self.task)
        contrib = score_contributions(H, residual)  # (m, m)
        trace = torch.diagonal(H, dim1=2, dim2=3).sum(-1)  # (m, m)
        arrays = {"probe_ids": self.probe.numpy().astype(np.int64),
                  "labels": yp.cpu().numpy() if self.task == "classification"
                  else np.full(len(ids), -1, dtype=np.int64),
                  "trace": trace.float().cpu().numpy(),
                  "eigenvalues": kernel_eigenvalues(trace, top=20).float().cpu().numpy(),
                  "residual": residual.float().cpu().numpy(),
                  "contributions": contrib.float().cpu().numpy(),
                  "kernel_score": contrib.sum(1).float().cpu().numpy()}
        if self.kernel_full:
            arrays["full"] = H.float().cpu().numpy()
        return arrays

    def sample_frame(self, m: Measurement, selected: torch.Tensor, weights: torch.Tensor,
                     data_map: Optional[dict[str, torch.Tensor]] = None) -> pd.DataFrame:
        """The per-sample frame of one round (docs/design.md §3 columns)."""
        cpu = lambda t: t.detach().float().cpu().numpy()  # noqa: E731
        df = {"sample_id": np.arange(self.N, dtype=np.int64)}
        if self.task == "classification":
            p = probabilities(m.output)
            yl = self.y.long()
            df["label"] = self.y.cpu().numpy().astype(np.int64)
            df["correct"] = (m.output.argmax(1) == yl).cpu().numpy()
            df["p_true"] = cpu(at_label(p, yl))
            if self.clean is not None:
                df["p_clean"] = cpu(at_label(p, self.clean))
        else:
            df["label"] = np.full(self.N, -1, dtype=np.int64)
            df["correct"] = np.zeros(self.N, dtype=bool)
            df["p_true"] = np.full(self.N, np.nan, dtype=np.float32)
            df["output0"] = cpu(m.output[:, 0])
        df["loss"] = cpu(m.loss)
        df["residual_norm"] = cpu(m.residual.norm(dim=1))
        df["speed_norm"] = cpu(m.speed.norm(dim=1)) if m.speed is not None else np.full(self.N, np.nan, np.float32)
        df["score"] = cpu(m.scores[self.estimator])
        for name, s in m.scores.items():
            df[f"score_{name}"] = cpu(s)
        for name in ("el2n", "margin", "entropy", "aum", "grand"):
            if name in m.sample:
                df[name] = cpu(m.sample[name])
        if "forgetting" in m.sample:
            f = m.sample["forgetting"]
            df["forgetting"] = cpu(f) if self.task != "classification" else f.cpu().numpy().astype(np.int32)
            df["presentations"] = m.sample["presentations"].cpu().numpy().astype(np.int32)
        for name, v in (data_map if data_map is not None else self.data_map_scores(m)).items():
            df[name] = cpu(v)
        df["selected"] = selected.cpu().numpy()
        df["weight"] = weights.cpu().numpy().astype(np.float32)
        df["times_selected"] = self.times_selected.cpu().numpy().astype(np.int32)
        return pd.DataFrame(df)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        b = self.byproduct
        return {"times_selected": self.times_selected.clone(), "steps": self.steps,
                "samples_seen": self.samples_seen, "round": self.round, "paper": self.paper.state_dict(),
                "presentations": self.presentations.state_dict(), "map_sums": self.map_sums.clone(),
                "map_rounds": self.map_rounds,
                "byproduct": {"last_output": b.last_output.cpu(), "lr_since": b.lr_since.cpu(),
                              "seen": b.seen.cpu(), "score": b.score.cpu(), "observed": b.observed.cpu()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.times_selected = state["times_selected"].clone()
        self.steps, self.samples_seen = int(state["steps"]), int(state["samples_seen"])
        dev = self.y.device
        if "paper" in state:
            self.paper.load_state_dict(state["paper"])
        if "presentations" in state:  # checkpoints from before the score atlas start these afresh
            self.presentations.load_state_dict(state["presentations"])
            self.map_sums, self.map_rounds = state["map_sums"].clone(), int(state["map_rounds"])
        for k, v in state["byproduct"].items():
            setattr(self.byproduct, k, v.to(dev))

    def _default_frame(self) -> pd.DataFrame:
        label = self.y.cpu().numpy().astype(np.int64) if self.task == "classification" \
            else np.full(self.N, -1, dtype=np.int64)
        noisy = self.noisy.numpy() if self.noisy is not None else np.zeros(self.N, dtype=bool)
        return pd.DataFrame({"sample_id": np.arange(self.N, dtype=np.int64), "split": "train",
                             "label": label, "clean_label": label, "noisy": noisy})


class _FollowerWriter:
    """What ranks other than 0 hold instead of a writer: they read the run, never write it."""

    def __init__(self, run_dir):
        self.dir = Path(run_dir)
        self.meta: dict[str, Any] = {}

    def start(self, meta, resume=False):
        self.meta = read_run_json(self.dir) if resume and (self.dir / "run.json").exists() \
            else {**meta, "last_complete_round": -1}
        return self.meta

    def write_dataset(self, df):
        pass

    def write_round(self, *a, **kw):
        pass

    def write_embedding_basis(self, *a, **kw):
        pass

    def finish(self, status="complete"):
        pass

    def fail(self, reason):
        pass

    def update_meta(self, **fields):
        self.meta.update(fields)


def _mask(ids, n: int) -> torch.Tensor:
    m = torch.zeros(n, dtype=torch.bool)
    m[torch.as_tensor(ids).cpu().long()] = True
    return m


def pass_positions(order: torch.Tensor, n: int) -> np.ndarray:
    """(n,) int32: each sample's 0-based position in `order` (k distinct ids), −1 when absent."""
    ids = torch.as_tensor(order).detach().cpu().long().numpy()
    distinct = len(np.unique(ids))
    if distinct != len(ids) or (len(ids) and (ids.min() < 0 or ids.max() >= n)):
        raise ValueError(f"order must hold distinct sample ids in [0, {n}): got {len(ids)} ids, "
                         f"{len(ids) - distinct} repeated")
    pos = np.full(n, -1, dtype=np.int32)
    pos[ids] = np.arange(len(ids), dtype=np.int32)
    return pos


def checkpoint_bytes(state: dict[str, Any]) -> bytes:
    """Serialise a checkpoint of tensors and plain values (loadable with weights_only=True)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()
