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

import io
import math
import time
import warnings
from pathlib import Path
from typing import Optional

import torch

from .config import RunConfig, config_differences
from .curricula import RoundState, make_curriculum
from .protocol import PaperProtocol
from .recipe import MeanTeacher, paper_centrality, sampling_spread
from .data import Dataset, load_dataset
from .distributed import SINGLE, DistContext, autocast, prepare_model, set_deterministic, sync_buffers, to_device
from .dynamics import eval_mode
from .models import build_model
from .store import RunStoreError, RunWriter, read_run_json
from .tracker import DynamicsTracker, Measurement, checkpoint_bytes
from .train_pass import PassSpec, TrainingDiverged, TrainPass, paper_pass, steps_pass


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
        extended = self._check_resumed_config() if resume else None
        torch.manual_seed(config.seed)  # model init
        csv = {"label_column": config.label_column} if config.label_column is not None else {}
        self.ds = dataset or load_dataset(config.dataset, seed=config.seed, label_noise=config.label_noise, **csv)
        self._build_model()  # self.model, self.net, channels_last, batchnorm_sync
        by_score = {"score": config.score, "prefer": config.prefer} if config.curriculum == "score" else {}
        self.curriculum = make_curriculum(config.curriculum, diversity=config.diversity, **by_score)
        self.gen = torch.Generator().manual_seed(config.seed)  # selection, batch order, mixup
        ps = config.paper
        self.opt = torch.optim.SGD(self.model.parameters(), lr=config.schedule.lr, momentum=0.9,
                                   weight_decay=config.weight_decay, nesterov=self.paper and ps.momentum > 0)
        if self.paper:
            for group in self.opt.param_groups:
                group["momentum"] = ps.momentum
        dev = self.device
        # the data lives on the device for the whole run: one pinned, non-blocking copy each
        self.X, self.y = to_device(self.ds.x_train, dev), to_device(self.ds.y_train, dev)
        if self.channels_last and self.X.dim() == 4:
            self.X = self.X.contiguous(memory_format=torch.channels_last)
        self.autocast = lambda: autocast(dev, config.precision)  # training forwards only: scores stay fp32
        self.scaler = torch.amp.GradScaler(dev.type) if config.precision == "fp16" else None  # fp16's loss scaling
        self.N = len(self.X)
        self.protocol = PaperProtocol(ps, self.N, config.batch_size, self.curriculum.full_data,
                                      prunes=config.diversity != "none") if self.paper else None  # same sizes for all
        self.teacher = MeanTeacher(self.model, ps.teacher_decay) if self.paper and ps.mean_teacher else None
        self.centrality: Optional[torch.Tensor] = None  # (N,) the authors' centrality, paper protocol
        self.mod_ratio = 1.0  # Σ centrality / Σ p over the last subset: rescales the score's weight
        # everything that can refuse a resume runs before the run is reopened (which marks it
        # running): the checkpoint is read and applied to the model first, so a checkpoint that
        # does not fit leaves run.json exactly as it was
        state = self._load_checkpoint() if resume else None
        if resume:
            self._check_same_data()
            self._apply_checkpoint(state)
            self._check_same_contents()
        writer = RunWriter(self.dir) if dist.is_writer else None  # ours, so a failure below can mark it
        try:
            self.tracker = self._open_tracker(writer, resume)
            if extended:
                self.tracker.writer.update_meta(config=config.to_dict(), rounds_planned=config.num_rounds,
                                                extended=[*self.tracker.writer.meta.get("extended", []), extended])
            self.passes = TrainPass(self.net, self.model, self.opt, self.X, self.y, self.gen, self.tracker, dist,
                                    self.autocast, self.scaler, self.teacher, self.batchnorm_sync)
            self.start_round = 0
            if resume:
                self._restore(state)
        except BaseException as e:
            # once reopened, the run never stays "running" with nobody training it
            if writer is not None and writer.meta.get("status") == "running":
                _record_failed_start(writer, e, resume)
            raise

    def _build_model(self) -> None:
        """The model on the device (channels_last for CUDA convolutions, SyncBatchNorm on CUDA under
        torchrun) and `net`, what training forwards call: the model itself or its DDP wrapper."""
        self.model = build_model(self.cfg.model, self.ds).to(self.device)
        # CUDA: convolutions run in channels_last (NHWC), the layout tensor cores want
        self.channels_last = self.device.type == "cuda" and any(isinstance(m, torch.nn.Conv2d)
                                                                 for m in self.model.modules())
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model, self.batchnorm_sync = prepare_model(self.model, self.dist)  # SyncBatchNorm on CUDA
        self.net = self.model  # what training steps call: the model itself, or its DDP wrapper
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel
            self.net = DistributedDataParallel(self.model)

    def _open_tracker(self, writer: Optional[RunWriter], resume: bool) -> DynamicsTracker:
        """The run's tracker (reopens the run: run.json says running), on the device's data."""
        cfg, dev, dist = self.cfg, self.device, self.dist
        return DynamicsTracker(
            self.dir, self.model, self.X, self.y, self.ds.task, estimator=cfg.estimator,
            log_estimators=cfg.log_estimators, probe_size=cfg.probe_size,
            score_batch_size=cfg.score_batch_size,
            eval_sets={"val": (to_device(self.ds.x_val, dev), to_device(self.ds.y_val, dev)),
                       "test": (to_device(self.ds.x_test, dev), to_device(self.ds.y_test, dev))},
            noisy=self.ds.noisy, dataset_frame=self.ds.frame(), config=cfg.to_dict(),
            clean_labels=self.ds.clean_y_train.to(dev) if self.ds.task == "classification" else None,
            meta={"rounds_planned": cfg.num_rounds, "round_unit": "epoch" if self.paper else "round",
                  "class_names": self.ds.class_names, "dataset_kind": self.ds.kind, "device": str(dev),
                  "batchnorm_sync": self.batchnorm_sync, "data_digest": self.ds.digest,
                  "channels_last": self.channels_last},
            seed=cfg.seed, resume=resume, dist=dist, kernel_full=cfg.kernel_full, writer=writer,
            log_grad_norms=cfg.logs_grad_norms)

    # ------------------------------------------------------------------ checkpoint

    def _check_resumed_config(self) -> Optional[dict]:
        """Refuse to resume under other options; returns the extension record when only the
        number of rounds grew (allowed, and recorded in run.json)."""
        if not (self.dir / "run.json").exists() or not self.dist.is_writer:
            return None
        old = read_run_json(self.dir).get("config") or {}
        diffs = config_differences(old, self.cfg.to_dict())
        grew = [d for d in diffs if d[0] == "rounds" and isinstance(d[1], int) and d[2] > d[1]]
        bad = [d for d in diffs if d not in grew]
        if bad:
            listed = "; ".join(f"{k} {a!r} (now {b!r})" for k, a, b in bad)
            raise RunStoreError(f"{self.dir} was made with other options: {listed}: resume with the same "
                                "options, or choose another --out/--name")
        return {"rounds": grew[0][2], "from": grew[0][1]} if grew else None

    def _state(self, t: int) -> dict:
        state = {"round": t, "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                 "generator": self.gen.get_state(), "tracker": self.tracker.state_dict()}
        if self.paper:
            state["mod_ratio"] = self.mod_ratio
            # the gradient a pass leaves is applied by the next full pass's first step (the authors')
            state["grads"] = [p.grad for p in self.model.parameters()]
            if self.teacher is not None:
                state["teacher"] = self.teacher.model.state_dict()
            if self.centrality is not None:
                state["centrality"] = self.centrality.cpu()
        if self.scaler is not None:
            state["grad_scaler"] = self.scaler.state_dict()
        return state

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

    def _check_same_data(self) -> None:
        """Refuse to resume on data of another size than the run was made with (a file edited
        since): its per-sample state and rounds would no longer line up."""
        if not (self.dir / "run.json").exists() or not self.dist.is_writer:
            return
        before = read_run_json(self.dir).get("num_train")
        if before is not None and int(before) != self.N:
            raise RunStoreError(f"{self.dir} was trained on {before} samples but {self.cfg.dataset} now gives "
                                f"{self.N}: the data changed since the run was made; resume with the same "
                                "data, or start a new run under another --name")

    def _check_same_contents(self) -> None:
        """Refuse to resume on a user's file or folder whose contents changed since the run was made
        (same size and shapes, other values): run.json's data_digest, the hash of the arrays read
        (`data.source_digest`), against this read's. Runs from before digests are not checked."""
        if not (self.dir / "run.json").exists() or not self.dist.is_writer:
            return
        digest = read_run_json(self.dir).get("data_digest")
        if digest and self.ds.digest and digest != self.ds.digest:
            raise RunStoreError(f"{self.dir} was trained on other contents of {self.cfg.dataset} (same size, "
                                "other values): the data changed since the run was made; resume with the "
                                "same data, or start a new run under another --name")

    def _apply_checkpoint(self, state: Optional[dict]) -> None:
        """Load the checkpoint's weights, optimiser and generator; RunStoreError when they do not fit
        the model these options build."""
        if state is None:
            return
        try:
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.gen.set_state(state["generator"])
            if self.teacher is not None and "teacher" in state:
                self.teacher.model.load_state_dict(state["teacher"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            first = " ".join(str(e).split())[:160]
            raise RunStoreError(f"{self.dir / 'checkpoint.pt'} does not fit the model these options build "
                                f"({type(e).__name__}: {first}): was the data at {self.cfg.dataset} changed? "
                                "Resume with the same data and options, or start a new run under another "
                                "--name") from None
        self.mod_ratio = float(state.get("mod_ratio", 1.0))
        for p, g in zip(self.model.parameters(), state.get("grads") or []):
            p.grad = None if g is None else g.to(p.device)
        if "centrality" in state:
            self.centrality = state["centrality"].to(self.device)
        if self.scaler is not None and state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])

    def _restore(self, state: Optional[dict]) -> None:
        """The tracker's part of the checkpoint and the round to continue from (weights are
        already loaded by _apply_checkpoint)."""
        meta = read_run_json(self.dir)
        if state is None:
            if meta["last_complete_round"] >= 0:
                # rounds exist but no weights to continue from: start over, rewriting them
                self.tracker.round = 0
            return
        self.tracker.load_state_dict(state["tracker"])
        t = int(state["round"])
        if t > meta["last_complete_round"]:
            # killed after the checkpoint but before run.json: every file of round t is written
            self.tracker.writer.meta["last_complete_round"] = t
            self.tracker.writer.update_meta()
        self.start_round = t + 1
        self.tracker.round = t + 1

    def _checkpoint(self, t: int) -> Optional[bytes]:
        if not self.dist.is_writer:
            return None
        every = max(1, self.cfg.checkpoint_every)
        if (t + 1) % every and t + 1 != self.cfg.num_rounds:
            return None
        return checkpoint_bytes(self._state(t))

    # ------------------------------------------------------------------ loop

    def run(self) -> Path:
        recorded = None
        try:
            try:
                self._run_paper() if self.paper else self._run_steps()
                self.tracker.close("complete")
            except BaseException as e:
                self._record_stop(e)
                recorded = e
                raise
        except KeyboardInterrupt as e:
            # SIGTERM (torchrun stopping the job because a peer died) can land while the failure
            # is being recorded; the handler raises only once, so this second try completes
            if recorded is None and self.tracker.writer.meta.get("status") == "complete":
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
            self.tracker.writer.update_meta(status="interrupted")
        elif isinstance(e, Exception):  # e.g. a peer process died under torch.distributed
            first = (str(e).strip().splitlines() or [""])[0][:300]
            self.tracker.fail(f"{type(e).__name__} at round {self.tracker.round}: {first}; "
                              "fix the cause, then rerun with --resume")

    def _run_steps(self) -> None:
        cfg, sched = self.cfg, self.cfg.schedule
        if self.start_round == 0:
            self._warm_start()
        measured = self._measure(kernel=True)
        bar = _progress(range(self.start_round, cfg.rounds), self.progress, f"{cfg.curriculum} s{cfg.seed}")
        for t in bar:
            state = self._round_state(t, sched.k(t, self.N), measured)
            t0 = time.perf_counter()
            sel = self.curriculum.select(state)
            t_select = time.perf_counter() - t0
            t0 = time.perf_counter()
            # the round's training is one pass (for the paper estimator)
            steps = math.ceil(len(sel.indices) * sched.epochs_per_round / cfg.batch_size)
            self.train_pass(steps_pass(cfg, sel.indices.to(self.device), sel.weights.to(self.device), steps,
                                       self.gen, self.ds.task))
            t_train = time.perf_counter() - t0
            last = t + 1 == cfg.rounds
            # the next round's state, measured once; after the last round only the train metric
            after = self._measure(kernel=True) if not last else self._measure(scores=False)
            metrics = self._train_metrics(after)
            self.tracker.end_round(metrics=metrics, measured=measured, selected=sel.indices,
                                   weights=sel.weights,
                                   timings={"select_time_s": t_select, "train_time_s": t_train},
                                   checkpoint=self._checkpoint(t))
            measured = after
            _postfix(bar, self.tracker.last_row)

    def _run_paper(self) -> None:
        """Each epoch: at an episode start (index ≥ 1), centrality and the teacher/student restart,
        then the full large-batch pass; then the state is measured (the score the full pass just
        updated), the subset selected from it, and trained on in the run's `order`: the
        selection's own order (draw, the authors'), a fresh random one (shuffle) or draw reversed."""
        cfg, proto = self.cfg, self.protocol
        bar = _progress(range(self.start_round, proto.epochs), self.progress, f"{cfg.curriculum} s{cfg.seed}")
        for e in bar:
            plan = proto.plan(e)
            ep = plan.episode
            t0 = time.perf_counter()
            if plan.episode_start and ep.index >= 1:
                self._start_episode(ep.index)
            t_episode = time.perf_counter() - t0
            t0 = time.perf_counter()
            if plan.full_pass:  # before the selection: it updates every sample's score
                self.train_pass(self._paper_spec(torch.arange(self.N, device=self.device), plan, True, "shuffle"))
            t_full = time.perf_counter() - t0
            log_now = cfg.log_every == "epoch" or plan.episode_start  # exact/fast scores and kernel
            driving = [cfg.selection_score] if cfg.selection_score in ("exact", "fast", "grand") else []
            measured = self._measure(kernel=log_now, estimators=None if log_now else driving)
            t0 = time.perf_counter()
            spread, order = {}, "shuffle"
            if plan.select and not self.curriculum.full_data:
                state = self._round_state(ep.index, plan.subset_size, measured, pool=plan.pool_size,
                                          mod=ep.mod * self.mod_ratio)
                sel = self.curriculum.select(state)
                ids, order = sel.indices.to(self.device), cfg.order
                p = sel.probability
                if p is not None:
                    spread = sampling_spread(p)
                    if self.centrality is not None:
                        p = p.to(self.centrality.device)
                        self.mod_ratio = float(self.centrality[ids].sum() / p[ids].sum().clamp_min(1e-300))
            elif plan.select and cfg.order != "shuffle":  # sgd ordered by DoCL's draw: the order-only arm
                state = self._round_state(ep.index, self.N, measured, with_score=True)
                sel = self.curriculum.order(state)
                ids, order = sel.indices.to(self.device), cfg.order
                spread = sampling_spread(sel.probability)
            else:  # the warm start and the baseline: every sample
                ids = torch.arange(self.N, device=self.device)
                spread = sampling_spread(None, self.N) if plan.select else {}
            t_select = time.perf_counter() - t0
            t0 = time.perf_counter()
            trained, losses = self.train_pass(self._paper_spec(ids, plan, False, order))
            t_train = time.perf_counter() - t0 + t_full
            metrics = {"train_loss": sum(losses) / max(1, len(losses))}
            if self.teacher is not None:
                metrics.update({f"teacher_{k}": v for k, v in self.tracker.evaluate(self.teacher.model).items()
                                if k.endswith("_acc") or k.endswith("_mse")})
            alpha = ep.baseline_alpha if self.curriculum.full_data else ep.mixup_alpha
            self.tracker.end_round(
                metrics=metrics, measured=measured, selected=ids, order=trained,
                timings={"select_time_s": t_select, "train_time_s": t_train, "episode_time_s": t_episode},
                extra_round={"epoch": e, "episode": ep.index, "full_pass": plan.full_pass,
                             "mixup_alpha": alpha, "pool_size": plan.pool_size, **spread},
                checkpoint=self._checkpoint(e))
            _postfix(bar, self.tracker.last_row)

    def _round_state(self, t: int, k: int, measured: Measurement, pool: Optional[int] = None,
                     mod: float = 1.0, with_score: bool = False) -> RoundState:
        cfg, sched = self.cfg, self.cfg.schedule
        paper = self.paper
        scored = self.curriculum.needs_scores or with_score
        return RoundState(
            t=t, k=k, lam=sched.lam(t), temperature=1.0 / cfg.paper.score_scale if paper else sched.temperature,
            pool_factor=sched.pool_factor, loss=measured.loss,
            score=self.tracker.score_values(measured, cfg.selection_score) if scored else None,
            features=measured.features, generator=self.gen, pool=pool,
            sampling="paper" if paper else "standardized", centrality=self.centrality, mod=mod,
            random_subsample=cfg.paper.random_subsample,
            labels=self.y if self.ds.task == "classification" else None)

    def _start_episode(self, index: int) -> None:
        """An episode's start (index ≥ 1): centrality from the teacher's features while exploring,
        then the teacher takes the student's parameters (episode 1) or the student restarts from
        the teacher's, × (1 + noise·ε) (later episodes; the student keeps its own statistics)."""
        ps = self.cfg.paper
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
        from .tracker import model_features
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

    def _warm_start(self) -> None:
        sched, bs = self.cfg.schedule, self.cfg.batch_size
        for _ in range(sched.warmup_epochs):
            ids = torch.arange(self.N, device=self.device)
            # each warm-up epoch is a pass of its own
            self.train_pass(steps_pass(self.cfg, ids, torch.ones(self.N, device=self.device), math.ceil(self.N / bs),
                                       self.gen, self.ds.task))

    def train_pass(self, spec: PassSpec) -> tuple[torch.Tensor, list[float]]:
        """Train one pass (`TrainPass.run`): every pass of both protocols goes through here, so
        wrapping it observes them. → (the ids in the order trained, the kept mini-batch losses)."""
        return self.passes.run(spec)

    def _paper_spec(self, ids: torch.Tensor, plan, full: bool, order: str) -> PassSpec:
        return paper_pass(self.cfg, plan, ids, full=full, order=order, gen=self.gen, task=self.ds.task,
                          full_data=self.curriculum.full_data)


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
