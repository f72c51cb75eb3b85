"""DynamicsTracker: log any PyTorch training loop into a docl run, in three calls.

    tracker = DynamicsTracker("runs/mine/run-0", model, X, y)
    for epoch in range(E):
        for ids in batches:                      # indices into X
            out = model(X[ids]); loss = ...; loss.backward(); opt.step()
            tracker.on_batch(ids, out, lr=opt.param_groups[0]["lr"])
        tracker.end_round(metrics={"val_acc": ...})
    tracker.close()

The tracker composes three parts: the scorers (scorers.py: each training batch is shown to every
one of them, `observe`), the measurement step (measure.py: exact scores — one backward pass for ḡ
plus one forward-mode pass —, residuals, speeds, the sample scores, the probe kernel, the 2-D map)
and a writer that only writes (store.RunWriter, store.MemoryRun, or store.FollowerWriter on ranks
other than 0), with the per-sample frame assembled by frames.py. The tracker never touches the
model's parameters, buffers, mode or .grad, the optimiser, or the global random state. The
built-in trainer logs through this same class and its public calls.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import torch
import torch.nn as nn

from .config import ESTIMATORS, SELECTION_SCORES
from .distributed import SINGLE, DistContext
from .dynamics import check_inputs, eval_mode
from .embedding import embedding_frame
from .envinfo import versions
from .frames import default_dataset_frame, pass_positions, sample_frame, selection_and_weights
from .grand import grad_norms
from .measure import EmbeddingMap, KernelProbe, Measurement, Measurer, evaluate
from .scorers import DataMap, make_scorers
from .store import MemoryRun, open_writer


@dataclass
class TrackerOptions:
    """What a tracker measures and logs (the run's config records the trainer's choices)."""

    estimator: str = "exact"                 # reported as `score`: exact, fast, byproduct, paper (the authors'
                                             # estimator, recipe.PaperByproduct) or none (a constant 0)
    log_estimators: tuple = ("byproduct",)   # further estimators logged beside it (columns score_<name>)
    probe_size: int = 64                     # kernel probe samples, stratified by class; 0: no kernel
    kernel_full: bool = False                # also store the full (m, m, C, C) blocks (C² times larger)
    score_batch_size: int = 512              # samples per scoring forward, backward and JVP
    byproduct_ema: float = 0.9               # β of our byproduct estimate's moving average
    seed: int = 0                            # draws the probe set
    refresh: bool = True                     # False, with only the byproduct: losses and residuals from the
                                             # outputs training computed (stale for unseen samples), no forward
    embedding: bool = True                   # each round on a fixed 2-D PCA map, when the model has features(x)
    log_grad_norms: bool = False             # GraNd ‖g_i‖ (column `grand`) whenever exact scores are measured
    tensorboard: Any = None                  # a torch.utils.tensorboard.SummaryWriter: each round's scalars
                                             # and score histograms under docl/ (step = round)


@dataclass
class RunInfo:
    """What the run is, written to run.json and dataset.parquet; nothing here is measured."""

    config: Optional[dict] = None                 # run.json's config (default: curriculum "custom")
    meta: Optional[dict] = None                   # more run.json fields
    dataset_frame: Optional[pd.DataFrame] = None  # dataset.parquet (ids, splits, thumbnails, ...)
    noisy: Optional[torch.Tensor] = None          # (N,) bool: which labels were flipped
    clean_labels: Optional[torch.Tensor] = None   # (N,) int: labels before noise → column p_clean


def per_sample_grad_norms(model: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str = "classification",
                          batch_size: int = 512, memory_budget_bytes: int = 1 << 28) -> torch.Tensor:
    """GraNd ‖∇θ ℓ_i‖ (N,) in eval mode (grand.grad_norms; the `grand` column). Leaves the model untouched."""
    return grad_norms(model, X, y, task, batch_size, memory_budget_bytes)


def _split_shorthand(options: Optional[TrackerOptions], info: Optional[RunInfo],
                     shorthand: dict[str, Any]) -> tuple[TrackerOptions, RunInfo]:
    """Keywords naming a field of TrackerOptions or RunInfo (`probe_size=8`) fill that field."""
    opt_names = {f.name for f in fields(TrackerOptions)}
    info_names = {f.name for f in fields(RunInfo)}
    bad = [k for k in shorthand if k not in opt_names | info_names]
    if bad:
        raise TypeError(f"DynamicsTracker got an unexpected keyword {bad[0]!r}: options are "
                        f"{', '.join(sorted(opt_names | info_names))}")
    options = TrackerOptions(**{**(vars(options) if options else {}),
                                **{k: v for k, v in shorthand.items() if k in opt_names}})
    info = RunInfo(**{**(vars(info) if info else {}), **{k: v for k, v in shorthand.items() if k in info_names}})
    return options, info


def scorer_names(estimators: list[str], options: TrackerOptions) -> list[str]:
    """The scorers a tracker runs: its estimators, then the byproduct when refresh is off (its
    outputs stand in for a forward), the sample scores, GraNd when asked for, the data map."""
    names = list(estimators)
    if not options.refresh and "byproduct" not in names:
        names.append("byproduct")
    names += ["el2n", "margin", "entropy", "forgetting", "aum"]
    if options.log_grad_norms:
        names.append("grand")
    return names + ["confidence", "variability", "correctness"]


def checked_clean_labels(clean: Optional[torch.Tensor], noisy: Optional[torch.Tensor], y: torch.Tensor,
                         task: str, num_outputs: int) -> Optional[torch.Tensor]:
    """The labels before noise (N,) int64 on y's device when some label was flipped (classification),
    else None; ValueError when they do not fit y."""
    if clean is None or task != "classification" or noisy is None or not bool(noisy.any()):
        return None
    if tuple(clean.shape) != (len(y),):
        raise ValueError(f"clean_labels must have shape ({len(y)},) like y, got {tuple(clean.shape)}")
    if int(clean.min()) < 0 or int(clean.max()) >= num_outputs:
        raise ValueError(f"clean_labels must lie in [0, {num_outputs}) like y: pass the labels before noise")
    return clean.to(device=y.device, dtype=torch.long)


class DynamicsTracker:
    """Logs per-sample dynamics of a training loop into a docl run folder.

    Args:
        out: the run folder (created; its parent is the experiment folder), a writer (store.RunWriter
            or MemoryRun), or None to keep the run in memory (`tracker.run` reads it back; no resume).
        model: the model being trained (read only). X: (N, ...) training inputs; sample ids index X.
        y: (N,) int labels or (N, C) float targets. task: "classification" or "regression".
        options: TrackerOptions (what to measure and log); info: RunInfo (what the run is). Any of
            their fields may also be given as a keyword: `DynamicsTracker(..., probe_size=8)`.
        eval_sets: optional {"val": (X, y), "test": (X, y)} evaluated at each round's end.
        resume: reopen an existing run folder instead of refusing to overwrite it.
        dist: the torch.distributed context; the ranks share the folder, rank 0 writes.

    Overhead (2 CPU cores, benchmarks/bench_training.py, bench_scores.py, bench_atlas.py): on_batch
    about 0.2 ms per step; end_round writes the frame (about 50 ms at N = 20k) and, for exact scores,
    one ḡ pass plus one forward-mode pass: 1.6× a plain epoch of a 1M-parameter CNN, 1.9× a small
    CNN. Byproduct-only logging with refresh=False added 6% to a small-CNN epoch. EL2N, margin,
    entropy, forgetting, AUM and the data map reuse outputs already computed; GraNd cost 0.84× a
    plain epoch of digits' SmallCNN.
    """

    def __init__(self, out, model: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str = "classification",
                 *, options: Optional[TrackerOptions] = None, info: Optional[RunInfo] = None,
                 eval_sets: Optional[dict[str, tuple[torch.Tensor, torch.Tensor]]] = None,
                 resume: bool = False, dist: DistContext = SINGLE, **shorthand):
        opts, info = _split_shorthand(options, info, shorthand)
        check_inputs(X, y, task)
        with torch.no_grad(), eval_mode(model):
            C = model(X[:1]).shape[1]
        check_inputs(X, y, task, num_outputs=C)
        self.estimators = [opts.estimator, *[e for e in opts.log_estimators if e != opts.estimator]]
        for e in self.estimators:
            if e not in ESTIMATORS:
                raise ValueError(f"unknown estimator {e!r}: use {', '.join(ESTIMATORS)}")
        self.model, self.X, self.y, self.task, self.dist = model, X, y, task, dist
        self.N, self.C, self.options, self.estimator = X.shape[0], C, opts, opts.estimator
        self.eval_sets = eval_sets or {}
        self.noisy = None if info.noisy is None else info.noisy.to(torch.bool).cpu()
        self.clean = checked_clean_labels(info.clean_labels, self.noisy, y, task, C)  # (N,) int64, or None
        self.scorers = make_scorers(scorer_names(self.estimators, opts), y, C, task, opts.byproduct_ema)
        self._data_map: DataMap = self.scorers["confidence"]
        probe = KernelProbe(y, opts.probe_size, opts.seed, task, opts.kernel_full) if opts.probe_size > 0 else None
        self.measurer = Measurer(model, X, y, task, self.scorers, self.estimators, batch_size=opts.score_batch_size,
                                 dist=dist, refresh=opts.refresh, probe=probe)
        self.times_selected = torch.zeros(self.N, dtype=torch.long)
        self.seen_this_round = torch.zeros(self.N, dtype=torch.bool)
        self.steps = self.samples_seen = 0
        self._round_lr_max, self._round_start = 0.0, time.perf_counter()
        self.last_row: dict[str, Any] = {}
        self.writer = open_writer(out, dist)
        self.dir = Path(self.writer.dir)
        self._round = self.writer.start(self._base_meta(info), resume=resume)["last_complete_round"] + 1
        if info.dataset_frame is not None and (not resume or not (self.dir / "dataset.parquet").exists()):
            self.writer.write_dataset(info.dataset_frame)
        elif info.dataset_frame is None and not (self.dir / "dataset.parquet").exists():
            self.writer.write_dataset(default_dataset_frame(y, task, self.noisy))
        self.map = EmbeddingMap.open(model, opts.embedding, self.writer, resume)

    # ------------------------------------------------------------------ construction

    def _base_meta(self, info: RunInfo) -> dict[str, Any]:
        return {"name": self.dir.name, "task": self.task, "num_outputs": self.C, "num_train": self.N,
                "world_size": self.dist.world, "device": str(self.X.device), "versions": versions(),
                "config": info.config or {"curriculum": "custom", "estimator": self.estimator},
                **(info.meta or {})}

    # ------------------------------------------------------------------ the run's record

    @property
    def run(self):
        """What has been logged, read back: a RunReader of the run folder, or the MemoryRun itself
        for a tracker made with out=None (rounds(), samples(t), kernel(t), dataset(), meta)."""
        if isinstance(self.writer, MemoryRun):
            return self.writer
        from .store import RunReader
        return RunReader(self.dir)

    @property
    def round(self) -> int:
        """The round the next end_round writes."""
        return self._round

    @property
    def meta(self) -> dict[str, Any]:
        """run.json's contents as this process holds them (read only: change them with update_meta)."""
        return self.writer.meta

    def update_meta(self, **fields) -> None:
        """Set run.json fields and commit them (rank 0 writes; other ranks update their copy)."""
        self.writer.update_meta(**fields)

    def resume_at(self, t: int) -> None:
        """Continue at round t (a checkpoint after round t − 1 was loaded). Round t − 1's files all
        precede its checkpoint, so a kill before run.json's commit is recovered by committing it."""
        if t - 1 > int(self.meta.get("last_complete_round", -1)):
            self.update_meta(last_complete_round=t - 1)
        self._round = t

    def close(self, status: str = "complete") -> None:
        self.writer.finish(status)

    def fail(self, reason: str) -> None:
        self.writer.fail(reason)

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
        if self.dist.active:  # every rank keeps the same scorer state for the global batch
            ids = self.dist.all_gather_rows(ids.to(outputs.device)).to(self.y.device)
            outputs = self.dist.all_gather_rows(outputs)
        for scorer in self._distinct_scorers():
            scorer.observe(ids, outputs, float(lr), float(lr if pace is None else pace))
        self.seen_this_round[ids.cpu()] = True
        self.steps += int(count)
        self.samples_seen += int(ids.shape[0])
        self._round_lr_max = max(self._round_lr_max, float(lr))

    def end_pass(self) -> None:
        """Close a pass over the data (an epoch, or the subset pass of one): the paper estimator
        updates the samples visited since the last call. end_round calls it too."""
        for scorer in self._distinct_scorers():
            scorer.end_pass()

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
        t = self._round
        self.end_pass()
        own = {}
        if measured is None:  # measured here on the current weights: it is also the train metric
            measured = self.measure(kernel=True)
            own["train_loss"] = float(measured.loss.mean())
            if self.task == "classification":
                own["train_acc"] = float((measured.output.argmax(1) == self.y).float().mean())
        sel, w = selection_and_weights(selected, weights, self.seen_this_round)
        self.times_selected += sel.long()
        data_map = self.data_map_scores(measured)  # this round's p joins the running sums after the frame
        row = self._round_row(measured, sel, own, {**(timings or {}), **(extra_round or {}), **(metrics or {})})
        if self.dist.is_writer:
            frame = sample_frame(measured, self.y, self.task, self.estimator, selected=sel, weights=w,
                                 times_selected=self.times_selected, data_map=data_map, clean=self.clean)
            if order is not None:
                frame["pass_position"] = pass_positions(order, self.N)
            self._write(t, row, frame, measured, checkpoint)
        for scorer in self._distinct_scorers():
            scorer.end_round(measured.output)
        self.last_row = row
        self._round = t + 1
        self.seen_this_round.zero_()
        self._round_lr_max, self._round_start = 0.0, time.perf_counter()
        return t

    def _round_row(self, m: Measurement, sel: torch.Tensor, own: dict, given: dict) -> dict[str, Any]:
        """rounds.parquet's row: k, lr, steps, the eval sets, timings, the map's variance share, `given`."""
        t0 = time.perf_counter()
        evals = self.evaluate()
        if m.extra.get("embedding") is not None and self.dist.is_writer:
            own["embedding_var_2d"] = m.extra["embedding_var_2d"]  # variance share on the map's axes
        return {"k": int(sel.sum()), "lr": self._round_lr_max, "steps": self.steps,
                "samples_seen": self.samples_seen, "epoch_equiv": self.samples_seen / self.N, **evals,
                "score_time_s": m.seconds, "eval_time_s": time.perf_counter() - t0, "grad_norm": m.grad_norm,
                "noisy_selected": int((sel & self.noisy).sum()) if self.noisy is not None else 0,
                "round_time_s": time.perf_counter() - self._round_start, **own, **given}

    def _write(self, t: int, row: dict, frame: pd.DataFrame, m: Measurement, checkpoint: Optional[bytes]) -> None:
        """Round t's files (the writer commits run.json last), then TensorBoard when given."""
        emb = m.extra.get("embedding")
        if emb is not None and not self.map.written:
            self.writer.write_embedding_basis(self.map.basis.arrays(), self.map.basis.info())
            self.map.written = True
        self.writer.write_round(t, row, frame, m.kernel, checkpoint,  # the kernel: the frame's weights
                                embedding=embedding_frame(emb) if emb is not None else None)
        if self.options.tensorboard is not None:
            from .export import log_round
            log_round(self.options.tensorboard, t, row, frame)

    # ------------------------------------------------------------------ measuring

    def measure(self, features: bool = False, kernel: bool = False,
                estimators: Optional[list[str]] = None) -> Measurement:
        """Loss, residual, scores and optionally features and probe kernel, at the current weights
        (measure.Measurer). `estimators` (default: all the tracker logs) limits the costly ones: an
        exact or fast estimator, or GraNd, left out this time is reported as NaN."""
        return self.measurer.measure(features=features, kernel=kernel, estimators=estimators,
                                     embed=self.map, round_=self._round)

    def data_map_scores(self, m: Measurement) -> dict[str, torch.Tensor]:
        """Data-map confidence, variability and correctness (N,) over the written rounds and `m`."""
        return self._data_map.of(m.output)

    def score_values(self, m: Measurement, name: str) -> torch.Tensor:
        """(N,) values of any selection score (config.SELECTION_SCORES) in measurement m: an
        estimator's DoCL score, the loss, a sample score, or a data-map one (rounds so far and m)."""
        if name in m.scores:
            return m.scores[name]
        if name == "loss":
            return m.loss
        if name in m.sample:
            return m.sample[name].to(device=m.loss.device, dtype=m.loss.dtype)
        if name in DataMap.names:
            return self.data_map_scores(m)[name].to(device=m.loss.device, dtype=m.loss.dtype)
        if name == "grand":
            raise ValueError("GraNd is not logged in this run: pass --log-grad-norms (log_grad_norms=True)")
        raise ValueError(f"unknown score {name!r}: choose one of {', '.join(SELECTION_SCORES)}")

    def evaluate(self, model: Optional[nn.Module] = None) -> dict[str, float]:
        """Loss and accuracy (classification) or MSE (regression) on each eval set (sharded, reduced),
        of the tracked model or of `model` (e.g. a mean teacher)."""
        return evaluate(self.model if model is None else model, self.eval_sets, self.task,
                        self.options.score_batch_size, self.dist)

    # ------------------------------------------------------------------ state

    def _distinct_scorers(self) -> list:
        return list({id(s): s for s in self.scorers.values()}.values())

    def state_dict(self) -> dict[str, Any]:
        state = {"times_selected": self.times_selected.clone(), "steps": self.steps,
                 "samples_seen": self.samples_seen, "round": self._round}
        for scorer in self._distinct_scorers():
            state.update(scorer.state())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.times_selected = state["times_selected"].clone()
        self.steps, self.samples_seen = int(state["steps"]), int(state["samples_seen"])
        for scorer in self._distinct_scorers():
            scorer.load_state(state)
