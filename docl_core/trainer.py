"""The training loop: rounds of measure → select → train → evaluate → log, under one of two protocols.

`steps` (Schedule): round t starts from the weights the previous round left (round 0 after
the warm start), whose per-sample state — losses, scores, features, probe kernel — was
measured once at the end of the previous round. The curriculum selects S_t (|S_t| = k_t);
the model trains `epochs_per_round` passes over S_t with a cosine learning rate restarted
every round. Every curriculum but `sgd` follows the same k_t, so they take equal steps.

`paper` (PaperSchedule, protocol.py): a round is an epoch. The protocol's plan says what the
epoch does — a warm-start pass, or a full large-batch pass at an episode's start, then a
pass over a newly selected subset — and which learning rate each mini-batch gets; the
recipe's ingredients (mean teacher, mixup, centrality, the authors' score) are switches.

Either way the samples frame and kernel of round t are the state the selection of round t
saw, measured at one set of weights, and curricula only choose samples. Every pass of both
protocols is a `PassSpec` (train_pass.py: which ids in which order, the learning rates, the
loss, mixup, accumulation) trained by one `TrainPass` through `Trainer.train_pass`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import torch

from . import checkpoint
from .config import RunConfig
from .curricula import RoundState, make_curriculum
from .recipe import MeanTeacher, paper_centrality, sampling_spread
from .data import Dataset, load_dataset
from .distributed import SINGLE, DistContext, autocast, place_model, set_deterministic, sync_buffers, to_device
from .dynamics import eval_mode
from .models import build_model
from .store import RunStoreError, RunWriter
from .rounds import Choice, RoundPlan, make_rounds
from .measure import Measurement, model_features
from .tracker import DynamicsTracker, RunInfo, TrackerOptions
from .train_pass import PassSpec, TrainingDiverged, TrainPass


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
        self.paper = config.protocol == "paper"
        self.device = dist.device if dist.active else resolve_device(config.device)
        smallest = config.batch_size if self.paper else min(config.batch_size, config.schedule.k(0, 10**9))
        if dist.active and smallest < dist.world:
            raise ValueError(f"batch size {config.batch_size} is smaller than the {dist.world} processes: "
                             "each needs a share of every batch; raise --batch-size")
        if not resume and dist.is_writer and (self.dir / "run.json").exists():
            raise RunStoreError(f"{self.dir} already holds a run: pass --resume to continue it, "
                                "or choose another --name")
        extended = checkpoint.check_same_options(self.dir, config, dist) if resume else None
        torch.manual_seed(config.seed)  # model init
        csv = {"label_column": config.label_column} if config.label_column is not None else {}
        self.ds = dataset or load_dataset(config.dataset, seed=config.seed, label_noise=config.label_noise,
                                          val_fraction=config.val_fraction, **csv)
        self.model, self.net, self.channels_last, self.batchnorm_sync = place_model(
            build_model(config.model, self.ds), self.device, dist)  # net: the model or its DDP wrapper
        by_score = {"score": config.score, "prefer": config.prefer} if config.curriculum == "score" else {}
        self.curriculum = make_curriculum(config.curriculum, config.diversity, config.protocol, **by_score)
        self.gen = torch.Generator().manual_seed(config.seed)  # selection, batch order, mixup
        self.opt, ps = _optimizer(self.model, config), config.schedule
        dev = self.device
        # the data lives on the device for the whole run: one pinned, non-blocking copy each
        self.X, self.y = to_device(self.ds.x_train, dev), to_device(self.ds.y_train, dev)
        if self.channels_last and self.X.dim() == 4:
            self.X = self.X.contiguous(memory_format=torch.channels_last)
        self.autocast = lambda: autocast(dev, config.precision)  # training forwards only: scores stay fp32
        self.scaler = torch.amp.GradScaler(dev.type) if config.precision == "fp16" else None  # fp16's loss scaling
        self.N = len(self.X)
        self.protocol = make_rounds(config, self.N, self.gen, self.ds.task, dev, self.curriculum.full_data)
        self.teacher = MeanTeacher(self.model, ps.teacher_decay) if self.paper and ps.mean_teacher else None
        self.centrality: Optional[torch.Tensor] = None  # (N,) the authors' centrality, paper protocol
        self.mod_ratio = 1.0  # Σ centrality / Σ p over the last subset: rescales the score's weight
        # everything that can refuse a resume runs before the run is reopened (which marks it
        # running): the checkpoint is read and applied to the model first, so a checkpoint that
        # does not fit leaves run.json exactly as it was
        state = checkpoint.load(self.dir, self.device) if resume else None
        if resume:
            checkpoint.check_same_data(self.dir, config, self.ds, dist)
            checkpoint.apply(self, state)
            checkpoint.check_same_contents(self.dir, config, self.ds, dist)
        writer = RunWriter(self.dir) if dist.is_writer else None  # ours, so a failure below can mark it
        try:
            self.tracker = self._open_tracker(writer, resume)
            if extended:
                self.tracker.update_meta(config=config.to_dict(), rounds_planned=config.num_rounds,
                                         extended=[*self.tracker.meta.get("extended", []), extended])
            self.passes = TrainPass(self.net, self.model, self.opt, self.X, self.y, self.gen, self.tracker, dist,
                                    self.autocast, self.scaler, self.teacher, self.batchnorm_sync)
            self.start_round = 0
            if resume:
                self.start_round = checkpoint.restore(self, state)
        except BaseException as e:
            # once reopened, the run never stays "running" with nobody training it
            if writer is not None and writer.meta.get("status") == "running":
                _record_failed_start(writer, e, resume)
            raise

    def _open_tracker(self, writer: Optional[RunWriter], resume: bool) -> DynamicsTracker:
        """The run's tracker (reopens the run: run.json says running), on the device's data."""
        cfg, dev, ds = self.cfg, self.device, self.ds
        options = TrackerOptions(estimator=cfg.estimator, log_estimators=tuple(cfg.log_estimators),
                                 probe_size=cfg.probe_size, kernel_full=cfg.kernel_full,
                                 score_batch_size=cfg.score_batch_size, seed=cfg.seed,
                                 log_grad_norms=cfg.logs_grad_norms)
        info = RunInfo(
            config=cfg.to_dict(), dataset_frame=ds.frame(), noisy=ds.noisy,
            clean_labels=ds.clean_y_train.to(dev) if ds.task == "classification" else None,
            meta={"rounds_planned": cfg.num_rounds, "round_unit": "epoch" if self.paper else "round",
                  "class_names": ds.class_names, "dataset_kind": ds.kind, "device": str(dev),
                  "batchnorm_sync": self.batchnorm_sync, "data_digest": ds.digest,
                  "channels_last": self.channels_last})
        eval_sets = {"val": (to_device(ds.x_val, dev), to_device(ds.y_val, dev)),
                     "test": (to_device(ds.x_test, dev), to_device(ds.y_test, dev))}
        return DynamicsTracker(writer if writer is not None else self.dir, self.model, self.X, self.y, ds.task,
                               options=options, info=info, eval_sets=eval_sets, resume=resume, dist=self.dist)

    def _checkpoint(self, t: int) -> Optional[bytes]:
        """Round t's checkpoint bytes when one is due (every `checkpoint_every` rounds and the last)."""
        every = max(1, self.cfg.checkpoint_every)
        if not self.dist.is_writer or ((t + 1) % every and t + 1 != self.cfg.num_rounds):
            return None
        return checkpoint.checkpoint_bytes(checkpoint.trainer_state(self, t))

    # ------------------------------------------------------------------ loop

    def run(self) -> Path:
        recorded = None
        try:
            try:
                self._loop()
                self.tracker.close("complete")
            except BaseException as e:
                self._record_stop(e)
                recorded = e
                raise
        except KeyboardInterrupt as e:
            # SIGTERM (torchrun stopping the job because a peer died) can land while the failure
            # is being recorded; the handler raises only once, so this second try completes
            if recorded is None and self.tracker.meta.get("status") == "complete":
                self.tracker.close("complete")  # the interrupt hit the final commit itself
            elif recorded is None:
                self._record_stop(e)
            raise
        return self.dir

    def _record_stop(self, e: BaseException) -> None:
        """run.json says why training stopped; never left "running" with nobody training."""
        if isinstance(e, TrainingDiverged):
            self.tracker.fail(str(e))
        elif isinstance(e, KeyboardInterrupt):
            self.tracker.update_meta(status="interrupted")
        elif isinstance(e, Exception):  # e.g. a peer process died under torch.distributed
            first = (str(e).strip().splitlines() or [""])[0][:300]
            self.tracker.fail(f"{type(e).__name__} at round {self.tracker.round}: {first}; "
                              "fix the cause, then rerun with --resume")

    def _loop(self) -> None:
        """Every round of either protocol, as its plan says (rounds.py): episode start → passes before
        measuring → measure (or take what the previous round measured after its pass) → choose →
        the round's pass → measure after it → end the round."""
        cfg, proto = self.cfg, self.protocol
        carried: Optional[Measurement] = None  # the state the previous round measured after its pass
        bar = _progress(range(self.start_round, proto.rounds), self.progress, f"{cfg.curriculum} s{cfg.seed}")
        for t in bar:
            plan = proto.plan(t)
            t0 = time.perf_counter()
            if plan.episode_start and plan.episode >= 1:
                self._start_episode(plan.episode)
            t_episode = time.perf_counter() - t0
            t0 = time.perf_counter()
            for spec in proto.passes_before(plan):
                self.train_pass(spec)
            t_before = time.perf_counter() - t0
            measured = carried if carried is not None else self._measure(
                kernel=plan.kernel, estimators=None if plan.estimators is None else list(plan.estimators))
            t0 = time.perf_counter()
            choice = self._choose(plan, measured)
            t_select = time.perf_counter() - t0
            t0 = time.perf_counter()
            trained, losses = self.train_pass(proto.round_pass(plan, choice))
            timings = {"select_time_s": t_select, "train_time_s": time.perf_counter() - t0 + t_before}
            if plan.episode is not None:
                timings["episode_time_s"] = t_episode
            after = None if plan.after is None else self._measure(kernel=True, scores=plan.after == "state")
            self.tracker.end_round(
                metrics=self._round_metrics(after, losses), measured=measured, selected=choice.ids,
                weights=choice.weights, order=trained if plan.order is not None else None, timings=timings,
                extra_round={**plan.record, **choice.spread}, checkpoint=self._checkpoint(t))
            carried = after if plan.after == "state" else None
            _postfix(bar, self.tracker.last_row)

    def _choose(self, plan: RoundPlan, measured: Measurement) -> Choice:
        """What round t trains on (RoundPlan.choose), with the spread of the draw behind it; under the
        paper protocol the authors' centrality weight follows the subset (mod_ratio)."""
        if plan.choose in ("all", "warm"):  # the warm start and the baseline: every sample
            return Choice(torch.arange(self.N, device=self.device),
                          spread=sampling_spread(None, self.N) if plan.choose == "all" else {})
        if plan.choose == "order":  # sgd ordered by DoCL's draw: the order-only arm
            sel = self.curriculum.order(self._round_state(plan.stage, self.N, measured, with_score=True))
            return Choice(sel.indices.to(self.device), spread=sampling_spread(sel.probability))
        state = self._round_state(plan.stage, plan.k, measured, pool=plan.pool, mod=plan.mod * self.mod_ratio)
        sel = self.curriculum.select(state)
        ids, p, spread = sel.indices.to(self.device), sel.probability, {}
        if p is not None:
            spread = sampling_spread(p)
            if self.centrality is not None:
                p = p.to(self.centrality.device)
                self.mod_ratio = float(self.centrality[ids].sum() / p[ids].sum().clamp_min(1e-300))
        return Choice(ids, sel.weights.to(self.device), spread)

    def _round_metrics(self, after: Optional[Measurement], losses: list[float]) -> dict:
        """The round's training metrics: from the measurement after its pass (steps), else the pass's
        mean mini-batch loss and the mean teacher's accuracy (paper)."""
        if after is not None:
            return self._train_metrics(after)
        metrics = {"train_loss": sum(losses) / max(1, len(losses))}
        if self.teacher is not None:
            metrics.update({f"teacher_{k}": v for k, v in self.tracker.evaluate(self.teacher.model).items()
                            if k.endswith("_acc") or k.endswith("_mse")})
        return metrics

    def _round_state(self, t: int, k: int, measured: Measurement, pool: Optional[int] = None,
                     mod: float = 1.0, with_score: bool = False) -> RoundState:
        cfg, sched, proto = self.cfg, self.cfg.schedule, self.protocol
        scored = self.curriculum.needs_scores or with_score
        return RoundState(
            t=t, k=k, lam=sched.lam(t), temperature=proto.temperature, pool_factor=proto.pool_factor,
            loss=measured.loss,
            score=self.tracker.score_values(measured, cfg.selection_score) if scored else None,
            features=measured.features, generator=self.gen, pool=pool,
            centrality=self.centrality, mod=mod, random_subsample=proto.random_subsample,
            labels=self.y if self.ds.task == "classification" else None)

    def _start_episode(self, index: int) -> None:
        """An episode's start (index ≥ 1): centrality from the teacher's features while exploring,
        then the teacher takes the student's parameters (episode 1) or the student restarts from
        the teacher's, × (1 + noise·ε) (later episodes; the student keeps its own statistics)."""
        ps = self.cfg.schedule
        if self.curriculum.diversity == "centrality" and index <= ps.explore_episodes:
            source = self.teacher.model if self.teacher is not None else self.model
            self.centrality = paper_centrality(self._features(source))
            self.mod_ratio = 1.0
        if self.teacher is None:
            return
        if index == 1:
            self.teacher.copy_from(self.model)
        else:
            self.teacher.restart_student(self.model, ps.reinit_noise, self.gen)

    def _features(self, model) -> torch.Tensor:
        """Penultimate features (N, D) of `model`: each rank computes its shard, rows all-gathered."""
        bs, out = self.cfg.score_batch_size, []
        X = self.X[self.dist.shard(self.N)]
        with torch.no_grad(), eval_mode(model):
            for s in range(0, len(X), bs):
                out.append(model_features(model, X[s:s + bs]))
        return self.dist.all_gather_rows(torch.cat(out))

    def _train_metrics(self, m: Measurement) -> dict:
        metrics = {"train_loss": float(m.loss.mean())}
        if self.ds.task == "classification":
            metrics["train_acc"] = float((m.output.argmax(1) == self.y).float().mean())
        else:
            metrics["train_mse"] = float(((m.output - self.y) ** 2).mean())
        return metrics

    def _measure(self, kernel: bool = False, scores: bool = True,
                 estimators: Optional[list[str]] = None) -> Measurement:
        sync_buffers(self.model, self.dist)  # every rank scores and evaluates rank 0's BatchNorm statistics
        features = self.curriculum.needs_features and self.cfg.diversity == "facility"
        estimators = estimators if scores else []
        m = self.tracker.measure(features=features and scores, kernel=kernel, estimators=estimators)
        computed = [n for n in m.scores if estimators is None or n in estimators or n in ("byproduct", "paper")]
        bad = [n for n in computed if not bool(torch.isfinite(m.scores[n]).all())]
        if not bool(torch.isfinite(m.loss).all()) or bad:
            what = "losses" if not bad else f"{', '.join(bad)} scores"
            raise TrainingDiverged(f"non-finite {what} at round {self.tracker.round}: the model diverged; "
                                   "lower the learning rate (--lr) and rerun")
        return m

    def train_pass(self, spec: PassSpec) -> tuple[torch.Tensor, list[float]]:
        """Train one pass (`TrainPass.run`): every pass of both protocols goes through here, so
        wrapping it observes them. → (the ids in the order trained, the kept mini-batch losses)."""
        return self.passes.run(spec)


def _optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.SGD:
    """SGD with weight decay: momentum 0.9 (steps), or the paper schedule's Nesterov momentum."""
    paper = cfg.protocol == "paper"
    momentum = cfg.schedule.momentum if paper else 0.9
    lr = cfg.schedule.lr_max if paper else cfg.schedule.lr
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=cfg.weight_decay,
                          nesterov=paper and momentum > 0)
    for group in opt.param_groups:
        group["momentum"] = momentum
    return opt


def _record_failed_start(writer: RunWriter, e: BaseException, resume: bool) -> None:
    if isinstance(e, KeyboardInterrupt):
        writer.update_meta(status="interrupted")
    else:
        first = (str(e).strip().splitlines() or [""])[0][:300]
        writer.fail(f"{type(e).__name__} while {'resuming' if resume else 'starting'}: {first}")


def _postfix(bar, row: dict) -> None:
    if hasattr(bar, "set_postfix"):
        bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k in ("val_acc", "test_acc", "val_mse")})


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
