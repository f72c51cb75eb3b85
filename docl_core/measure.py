"""The measurement step: the model at its current weights and the training set → one `Measurement`.

`Measurer.measure` runs the scorers (scorers.py) in order — the estimators first (the exact or fast
one also gives the outputs and speeds, and the exact one the features the head receives), then one
eval forward for outputs and features when no estimator gave them, then the residuals and losses
(outputs.py) and the per-sample scores read off them — and the probe kernel (`KernelProbe`).
`evaluate` scores held-out sets; `EmbeddingMap` keeps the run's fixed 2-D map of the features.
Nothing here writes a run or changes the model's parameters, buffers, mode or .grad. Under
torch.distributed each rank measures its shard and the per-sample results are all-gathered, so
every rank holds the same full measurement.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn

from .distributed import SINGLE, DistContext
from .dynamics import eval_mode, kernel_block, kernel_eigenvalues, score_contributions
from .embedding import PCABasis, has_features
from .outputs import residual_and_loss
from .scorers import DataMap, Measuring, Scorer


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
    extra: dict[str, Any] = field(default_factory=dict)  # embedding (N, K) and embedding_var_2d, when mapped
    sample: dict[str, torch.Tensor] = field(default_factory=dict)  # name → (N,): el2n, margin, entropy,
                                        # forgetting, aum, presentations, grand (the data map is read later)


def model_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Penultimate embeddings if the model offers `features`, else its outputs."""
    fn = getattr(model, "features", None)
    return fn(x) if callable(fn) else model(x)


def stratified_probe(y: torch.Tensor, m: int, seed: int, task: str) -> torch.Tensor:
    """m sample ids, an equal share per class (classification) or uniform (regression), sorted by class."""
    g = torch.Generator().manual_seed(seed + 7919)
    n = len(y)
    m = min(m, n)
    if task != "classification":
        return torch.randperm(n, generator=g)[:m].sort().values
    yc = y.cpu()
    per = [torch.nonzero(yc == c).flatten() for c in yc.unique()]
    per = [ids[torch.randperm(len(ids), generator=g)] for ids in per]
    take, i = [], 0
    while len(take) < m:  # round-robin over classes keeps the probe balanced
        for ids in per:
            if i < len(ids) and len(take) < m:
                take.append(int(ids[i]))
        i += 1
    probe = torch.tensor(take)
    return probe[torch.argsort(yc[probe] * n + probe)]  # ordered by class, then id


class KernelProbe:
    """The tangent kernel on a fixed probe set of m training samples (stratified by class)."""

    def __init__(self, y: torch.Tensor, size: int, seed: int, task: str, full: bool = False):
        self.ids = stratified_probe(y, size, seed, task)  # (m,) on the CPU
        self.task, self.full = task, full

    def arrays(self, model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict[str, np.ndarray]:
        """ids, labels, trace (m, m), eigenvalues, residuals (m, C), contributions c_ij (m, m) and
        the kernel score, from all N inputs X and labels y; full blocks (m, m, C, C) when `full`."""
        ids = self.ids.to(X.device)
        Xp, yp = X[ids], y[ids]
        H = kernel_block(model, Xp, reduce="full")  # (m, m, C, C)
        with torch.no_grad(), eval_mode(model):
            residual, _ = residual_and_loss(model(Xp), yp, self.task)
        contrib = score_contributions(H, residual)  # (m, m)
        trace = torch.diagonal(H, dim1=2, dim2=3).sum(-1)  # (m, m)
        arrays = {"probe_ids": self.ids.numpy().astype(np.int64),
                  "labels": yp.cpu().numpy() if self.task == "classification"
                  else np.full(len(ids), -1, dtype=np.int64),
                  "trace": trace.float().cpu().numpy(),
                  "eigenvalues": kernel_eigenvalues(trace, top=20).float().cpu().numpy(),
                  "residual": residual.float().cpu().numpy(),
                  "contributions": contrib.float().cpu().numpy(),
                  "kernel_score": contrib.sum(1).float().cpu().numpy()}
        if self.full:
            arrays["full"] = H.float().cpu().numpy()
        return arrays


class EmbeddingMap:
    """The run's 2-D map: a PCA basis fitted on the first features it projects, kept for the run."""

    def __init__(self, model: nn.Module, enabled: bool, basis: Optional[PCABasis] = None):
        self.on = enabled and has_features(model)
        self.basis = basis
        self.written = basis is not None  # a resumed run's basis is on disk already

    @classmethod
    def open(cls, model: nn.Module, enabled: bool, writer, resume: bool) -> "EmbeddingMap":
        """A run's map: a resumed run's basis read from its folder, else one fitted on the first
        features; run.json says why there is none when the model has no features(x)."""
        run_dir = Path(writer.dir)
        if enabled and has_features(model) and resume and (run_dir / "embedding" / "basis.npz").exists():
            from .store import RunReader
            emb = cls(model, True, PCABasis.from_arrays(RunReader(run_dir).embedding_basis()))
            writer.meta.setdefault("embedding", emb.basis.info())  # killed before its first commit
            return emb
        if enabled and not has_features(model) and "embedding" not in writer.meta:
            writer.meta["embedding"] = {"method": "none", "reason": "the model has no features(x) method"}
        return cls(model, enabled)

    def project(self, feats: torch.Tensor, round_: int) -> dict[str, Any]:
        """{"embedding": (N, K), "embedding_var_2d": share of the variance on the two axes}; {} for a
        diverged model (the caller reports the divergence)."""
        if not bool(torch.isfinite(feats).all()):
            return {}
        if self.basis is None:
            self.basis = PCABasis.fit(feats, fit_round=round_)
        coords, on_map = self.basis.project(feats)  # (N, K)
        return {"embedding": coords, "embedding_var_2d": on_map}


def evaluate(model: nn.Module, eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]], task: str,
             batch_size: int = 512, dist: DistContext = SINGLE) -> dict[str, float]:
    """<split>_loss and <split>_acc (classification) or <split>_mse (regression) on each eval set,
    each rank its shard, sums all-reduced."""
    out = {}
    with torch.no_grad(), eval_mode(model):
        for split, (Xs, ys) in eval_sets.items():
            n = len(Xs)
            if n == 0:
                continue
            sh = dist.shard(n)
            Xl, yl = Xs[sh], ys[sh]
            sums = torch.zeros(3, dtype=torch.float64, device=Xs.device)  # loss, correct, squared error
            for s in range(0, len(Xl), batch_size):
                o = model(Xl[s:s + batch_size])
                yb = yl[s:s + batch_size]
                _, loss = residual_and_loss(o, yb, task)
                sums[0] += loss.sum()
                if task == "classification":
                    sums[1] += (o.argmax(1) == yb).sum()
                else:
                    sums[2] += ((o - yb) ** 2).mean(1).sum()
            dist.all_reduce_sum_([sums])
            out[f"{split}_loss"] = float(sums[0]) / n
            if task == "classification":
                out[f"{split}_acc"] = float(sums[1]) / n
            else:
                out[f"{split}_mse"] = float(sums[2]) / n
    return out


class Measurer:
    """Measures the training set (X (N, ...), y) under `model` with the scorers given, in order.

    estimators: the names whose DoCL scores a measurement reports (first: the one reported as
    `score`); samples: the other scorers (their names → objects); refresh=False: with no estimator
    that runs the model, reuse the byproduct's last training outputs instead of an eval forward."""

    def __init__(self, model: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str,
                 scorers: dict[str, Scorer], estimators: list[str], *, batch_size: int = 512,
                 dist: DistContext = SINGLE, refresh: bool = True, probe: Optional[KernelProbe] = None):
        self.model, self.X, self.y, self.task = model, X, y, task
        self.scorers, self.estimators = scorers, estimators
        self.batch_size, self.dist, self.refresh, self.probe = batch_size, dist, refresh, probe
        self.head_gives_features: Optional[bool] = None  # checked on the first measurement that maps

    def measure(self, features: bool = False, kernel: bool = False, estimators: Optional[list[str]] = None,
                embed: Optional[EmbeddingMap] = None, round_: int = 0) -> Measurement:
        """Loss, residual, scores, sample scores, optionally features (N, D), the map and the probe
        kernel. `estimators` (default all) limits the costly scorers: one left out is NaN this time."""
        t0 = time.perf_counter()
        sh = self.dist.shard(len(self.X))
        want_feats = features or (embed is not None and embed.on)  # the map needs them every round
        at = Measuring(self.model, self.X[sh], self.y[sh], self.y, self.task, self.batch_size, self.dist,
                       want_features=want_feats and self.head_gives_features is not False)
        scores, skipped = self._estimators(at, estimators)
        feats = self._outputs(at, want_feats, features)
        extra = embed.project(feats, round_) if want_feats and embed is not None and embed.on \
            and self.dist.is_writer else {}
        residual, loss = residual_and_loss(at.output, self.y, self.task)
        sample = self._samples(at, estimators)
        finite = bool(torch.isfinite(loss).all()) and all(bool(torch.isfinite(v).all())
                                                          for k, v in scores.items() if k not in skipped)
        # a diverged model has no kernel to show: the caller reports the divergence
        arrays = self.probe.arrays(self.model, self.X, self.y) \
            if kernel and finite and self.probe is not None and self.dist.is_writer else None
        return Measurement(loss=loss, output=at.output, residual=residual, scores=scores, speed=at.speed,
                           features=feats if features else None, kernel=arrays, grad_norm=at.grad_norm,
                           seconds=time.perf_counter() - t0, extra=extra, sample=sample)

    def _estimators(self, at: Measuring, wanted: Optional[list[str]]) -> tuple[dict[str, torch.Tensor], set]:
        """Each estimator's (N,) scores in order, NaN for a costly one not wanted; → (scores, skipped)."""
        scores, skipped = {}, set()
        for name in self.estimators:
            scorer = self.scorers[name]
            if scorer.costly and wanted is not None and name not in wanted:
                scores[name] = at.nan()
                skipped.add(name)
            else:
                scores[name] = scorer.measure(at)[name]
        if at.speed is not None:
            at.speed, at.output = at.dist.all_gather_rows(at.speed), at.dist.all_gather_rows(at.output)
        return scores, skipped

    def _outputs(self, at: Measuring, want_feats: bool, features: bool) -> Optional[torch.Tensor]:
        """Set at.output (N, C) when no estimator did (one eval forward, or training's last outputs
        when refresh is off and no features are asked for); → the features (N, D) when wanted."""
        if at.output is None and not self.refresh and not features and "byproduct" in self.scorers:
            at.output = self.scorers["byproduct"].last_output.to(self.X.dtype)  # what training last saw
        if not want_feats and at.output is not None:
            return None
        if want_feats and at.output is not None and at.features is not None and self._head_gives_features(at):
            return at.dist.all_gather_rows(at.features)  # kept by the exact pass: no features forward
        outs, fs = [], []
        with torch.no_grad(), eval_mode(self.model):
            for s in range(0, len(at.X), self.batch_size):
                xb = at.X[s:s + self.batch_size]
                if want_feats:
                    fs.append(model_features(self.model, xb))
                if at.output is None:
                    outs.append(self.model(xb))
        if at.output is None:
            at.output = at.dist.all_gather_rows(torch.cat(outs))
        return at.dist.all_gather_rows(torch.cat(fs)) if want_feats else None

    def _head_gives_features(self, at: Measuring) -> bool:
        """Whether the head's inputs the exact pass kept are the model's features: checked once, on
        this rank's first batch, against model_features. Equal up to float rounding, not bit for bit:
        inside the JVP an eval-mode BatchNorm runs as one affine map (dynamics._lean_batchnorm_jvp),
        as it does for the outputs the exact pass gives. A model whose forward is not
        head(features(x)) fails the check and keeps the separate features forward."""
        if self.head_gives_features is None:
            xb = at.X[:self.batch_size]
            with torch.no_grad(), eval_mode(self.model):
                plain = model_features(self.model, xb)
            kept = at.features[:len(xb)]
            tol = 1e-9 if plain.dtype == torch.float64 else 1e-4
            self.head_gives_features = bool(plain.shape == kept.shape and torch.allclose(
                kept, plain, rtol=tol, atol=tol * max(float(plain.abs().max()), 1.0)))
        return self.head_gives_features

    def _samples(self, at: Measuring, wanted: Optional[list[str]]) -> dict[str, torch.Tensor]:
        """The per-sample scores of every scorer but the estimators and the data map (read later)."""
        sample: dict[str, torch.Tensor] = {}
        done: list[Scorer] = []
        for name, scorer in self.scorers.items():
            if name in self.estimators or isinstance(scorer, DataMap) or any(s is scorer for s in done):
                continue
            done.append(scorer)
            if scorer.costly and wanted is not None and name not in wanted:
                sample.update({n: at.nan() for n in scorer.names})
            else:
                sample.update(scorer.measure(at))
        return sample
