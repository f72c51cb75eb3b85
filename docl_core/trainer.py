"""The training loop: rounds of score → select → train → evaluate → log.

Round t (t = 0 .. R−1) starts from the weights the previous round left (round 0 after the
warm start), whose per-sample state — losses, scores, features — was measured once at the
end of the previous round. The curriculum selects S_t (|S_t| = k_t) from that state; the
model trains `epochs_per_round` passes over S_t with a cosine learning rate restarted every
round; then val/test are evaluated and the tracker writes the round (the per-sample frame
is the state the selection saw). Every curriculum follows the same k_t schedule, so all
take the same number of gradient steps.
"""
from __future__ import annotations

import io
import math
import time
import warnings
from pathlib import Path
from typing import Optional

import torch

from .config import RunConfig
from .curricula import RoundState, make_curriculum
from .data import Dataset, load_dataset
from .distributed import SINGLE, DistContext, prepare_model, set_deterministic, sync_buffers
from .dynamics import per_sample_loss
from .models import build_model
from .store import RunStoreError, read_run_json
from .tracker import DynamicsTracker, Measurement, checkpoint_bytes


class TrainingDiverged(RuntimeError):
    """Non-finite losses or scores: the run is marked failed with the reason."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here: use --device cpu")
    return dev


class Trainer:
    """One run of one curriculum. `Trainer(config, run_dir).run()` writes the run folder."""

    def __init__(self, config: RunConfig, run_dir, resume: bool = False,
                 dataset: Optional[Dataset] = None, progress: bool = False, dist: DistContext = SINGLE):
        config.validate()
        set_deterministic(config.deterministic)  # before any CUDA work: cuBLAS reads its workspace setting once
        self.cfg, self.dir, self.progress, self.dist = config, Path(run_dir), progress and dist.is_writer, dist
        self.device = dist.device if dist.active else resolve_device(config.device)
        if dist.active and min(config.batch_size, config.schedule.k(0, 10**9)) < dist.world:
            raise ValueError(f"batch size {config.batch_size} is smaller than the {dist.world} processes: "
                             "each needs a share of every batch; raise --batch-size")
        if not resume and dist.is_writer and (self.dir / "run.json").exists():
            raise RunStoreError(f"{self.dir} already holds a run: pass --resume to continue it, "
                                "or choose another --name")
        torch.manual_seed(config.seed)  # model init
        self.ds = dataset or load_dataset(config.dataset, seed=config.seed, label_noise=config.label_noise)
        self.model = build_model(config.model, self.ds).to(self.device)
        self.model, self.batchnorm_sync = prepare_model(self.model, dist)  # SyncBatchNorm on CUDA
        self.net = self.model  # what training steps call: the model itself, or its DDP wrapper
        if dist.active:
            from torch.nn.parallel import DistributedDataParallel
            self.net = DistributedDataParallel(self.model)
        self.curriculum = make_curriculum(config.curriculum, diversity=config.diversity)
        self.gen = torch.Generator().manual_seed(config.seed)  # selection and batch order
        self.opt = torch.optim.SGD(self.model.parameters(), lr=config.schedule.lr, momentum=0.9,
                                   weight_decay=config.weight_decay)
        dev = self.device
        self.X, self.y = self.ds.x_train.to(dev), self.ds.y_train.to(dev)
        self.N = len(self.X)
        # read the checkpoint before the tracker reopens (so rewrites) run.json: a bad
        # checkpoint must leave the run exactly as it was
        state = self._load_checkpoint() if resume else None
        self.tracker = DynamicsTracker(
            self.dir, self.model, self.X, self.y, self.ds.task, estimator=config.estimator,
            log_estimators=config.log_estimators, probe_size=config.probe_size,
            score_batch_size=config.score_batch_size,
            eval_sets={"val": (self.ds.x_val.to(dev), self.ds.y_val.to(dev)),
                       "test": (self.ds.x_test.to(dev), self.ds.y_test.to(dev))},
            noisy=self.ds.noisy, dataset_frame=self.ds.frame(), config=config.to_dict(),
            meta={"rounds_planned": config.rounds, "class_names": self.ds.class_names,
                  "dataset_kind": self.ds.kind, "device": str(dev),
                  "batchnorm_sync": self.batchnorm_sync},
            seed=config.seed, resume=resume, dist=dist, kernel_full=config.kernel_full)
        self.start_round = 0
        if resume:
            self._restore(state)

    # ------------------------------------------------------------------ checkpoint

    def _state(self, t: int) -> dict:
        return {"round": t, "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "generator": self.gen.get_state(), "tracker": self.tracker.state_dict()}

    def _load_checkpoint(self) -> Optional[dict]:
        path = self.dir / "checkpoint.pt"
        if not path.exists():
            return None
        try:
            with warnings.catch_warnings():  # a foreign pickle also warns: the error below says it all
                warnings.simplefilter("ignore")
                return torch.load(io.BytesIO(path.read_bytes()), map_location=self.device, weights_only=True)
        except Exception as e:  # truncated/corrupted file: many exception types
            raise RunStoreError(f"{path} is corrupted ({e.__class__.__name__}): delete it to "
                                "restart the run from round 0") from None

    def _restore(self, state: Optional[dict]) -> None:
        meta = read_run_json(self.dir)
        if state is None:
            if meta["last_complete_round"] >= 0:
                # rounds exist but no weights to continue from: start over, rewriting them
                self.tracker.round = 0
            return
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"])
        self.tracker.load_state_dict(state["tracker"])
        t = int(state["round"])
        if t > meta["last_complete_round"]:
            # killed after the checkpoint but before run.json: every file of round t is written
            self.tracker.writer.meta["last_complete_round"] = t
            self.tracker.writer.update_meta()
        self.start_round = t + 1
        self.tracker.round = t + 1

    # ------------------------------------------------------------------ loop

    def run(self) -> Path:
        cfg, sched = self.cfg, self.cfg.schedule
        try:
            if self.start_round == 0:
                self._warm_start()
            measured = self._measure()
            rounds = range(self.start_round, cfg.rounds)
            bar = _progress(rounds, self.progress, f"{cfg.curriculum} s{cfg.seed}")
            for t in bar:
                k = sched.k(t, self.N)
                state = RoundState(
                    t=t, k=k, lam=sched.lam(t), temperature=sched.temperature,
                    pool_factor=sched.pool_factor, loss=measured.loss,
                    score=measured.scores[cfg.estimator] if self.curriculum.needs_scores else None,
                    features=measured.features, generator=self.gen)
                t0 = time.perf_counter()
                sel = self.curriculum.select(state)
                t_select = time.perf_counter() - t0
                t0 = time.perf_counter()
                self._train(sel.indices.to(self.device), sel.weights.to(self.device),
                            math.ceil(len(sel.indices) * sched.epochs_per_round / cfg.batch_size))
                t_train = time.perf_counter() - t0
                after = self._measure()
                metrics = {"train_loss": float(after.loss.mean())}
                if self.ds.task == "classification":
                    metrics["train_acc"] = float((after.output.argmax(1) == self.y).float().mean())
                else:
                    metrics["train_mse"] = float(((after.output - self.y) ** 2).mean())
                self.tracker.end_round(metrics=metrics, measured=measured, selected=sel.indices,
                                       weights=sel.weights,
                                       timings={"select_time_s": t_select, "train_time_s": t_train},
                                       checkpoint=self._checkpoint(t))
                measured = after
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix({k: f"{v:.3f}" for k, v in self.tracker.last_row.items()
                                     if k in ("val_acc", "test_acc", "val_mse")})
            self.tracker.close("complete")
        except TrainingDiverged as e:
            self.tracker.fail(str(e))
            raise
        except KeyboardInterrupt:
            self.tracker.writer.update_meta(status="interrupted")
            raise
        except Exception as e:  # e.g. a peer process died under torch.distributed
            first = (str(e).strip().splitlines() or [""])[0][:300]
            self.tracker.fail(f"{type(e).__name__} at round {self.tracker.round}: {first}; "
                              "fix the cause, then rerun with --resume")
            raise
        return self.dir

    def _checkpoint(self, t: int) -> Optional[bytes]:
        if not self.dist.is_writer:
            return None
        every = max(1, self.cfg.checkpoint_every)
        if (t + 1) % every and t + 1 != self.cfg.rounds:
            return None
        return checkpoint_bytes(self._state(t))

    def _measure(self) -> Measurement:
        sync_buffers(self.model, self.dist)  # every rank scores and evaluates rank 0's BatchNorm statistics
        m = self.tracker.measure(features=self.curriculum.needs_features and self.cfg.diversity != "none")
        bad = [name for name, s in m.scores.items() if not bool(torch.isfinite(s).all())]
        if not bool(torch.isfinite(m.loss).all()) or bad:
            what = "losses" if not bad else f"{', '.join(bad)} scores"
            raise TrainingDiverged(f"non-finite {what} at round {self.tracker.round}: the model diverged; "
                                   "lower the learning rate (--lr) and rerun")
        return m

    def _warm_start(self) -> None:
        sched, bs = self.cfg.schedule, self.cfg.batch_size
        for _ in range(sched.warmup_epochs):
            ids = torch.arange(self.N, device=self.device)
            self._train(ids, torch.ones(self.N, device=self.device), math.ceil(self.N / bs))

    def _train(self, ids: torch.Tensor, weights: torch.Tensor, steps: int) -> None:
        """`steps` SGD steps over the selected ids in reshuffled passes, cosine lr within the round."""
        sched, bs = self.cfg.schedule, self.cfg.batch_size
        self.model.train()
        order = torch.empty(0, dtype=torch.long, device=ids.device)
        for step in range(steps):
            if len(order) < min(bs, len(ids)):
                perm = torch.randperm(len(ids), generator=self.gen).to(ids.device)
                order = torch.cat([order, perm])
            take, order = order[:min(bs, len(ids))], order[min(bs, len(ids)):]
            batch, w = ids[take], weights[take]
            wsum = w.sum()
            if self.dist.active:
                # each rank takes its share of the global batch; DDP averages gradients over
                # ranks, so scaling by world size gives the global weighted mean's gradient
                batch, w = batch[self.dist.rank::self.dist.world], w[self.dist.rank::self.dist.world]
                wsum = wsum / self.dist.world
            lr = sched.lr_at(step, steps)
            for group in self.opt.param_groups:
                group["lr"] = lr
            out = self.net(self.X[batch])
            loss = (per_sample_loss(out, self.y[batch], self.ds.task) * w).sum() / wsum
            if not bool(torch.isfinite(loss)):
                raise TrainingDiverged(f"non-finite training loss at round {self.tracker.round}, step "
                                       f"{step}: lower the learning rate (--lr) and rerun")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.tracker.on_batch(batch, out, lr)


def _progress(it, on: bool, desc: str):
    if not on:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, desc=desc, unit="round", leave=False)


def train_run(config: RunConfig, run_dir, resume: bool = False, progress: bool = False,
              dataset: Optional[Dataset] = None, dist: DistContext = SINGLE) -> Path:
    """Train one run into `run_dir` (resume=True continues it, or starts it if absent)."""
    resume = resume and (Path(run_dir) / "run.json").exists()
    return Trainer(config, run_dir, resume=resume, dataset=dataset, progress=progress, dist=dist).run()
