"""The ingredients of the authors' recipe (docs/protocol.md), each usable on its own.

- `PaperByproduct`: the authors' byproduct score from mean-teacher logits recorded in training.
- `MeanTeacher`: an exponential moving average of the student's weights.
- `mixup_batch`: mixup of one mini-batch (inputs mixed, the loss mixed over the two label sets).
- `paper_centrality`: the authors' stand-in for facility location, on preprocessed features.
- `probability_square_loss`: the loss of the episode's large-batch full pass (defined in outputs.py).
"""
from __future__ import annotations

import copy
import math
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from .dynamics import check_task
from .outputs import probability_square_loss, toward_target  # noqa: F401 (the full pass's loss lives there, named here too)


class PaperByproduct:
    """The authors' byproduct estimate of a_i, updated once per training pass.

    During a pass, `record(ids, logits, lr)` after each mini-batch stores the logits z_i the
    (teacher) model gave the batch and adds the batch's learning rate to the pass's pace. At
    `end_pass()`, for every sample i visited in the pass (the set U, m of them):

        r_i   = onehot(y_i) − softmax(0.4 · (z_i − max_c z_ic))      (regression: y_i − z_i)
        raw_i = r_i · (z_i − z_i^last)                              z^last: logits at i's last visit
        pace_i = Σ lr over the mini-batches since i's last visit     (this pass's included)
        a_i ← raw_i                                                 at i's first estimate
        a_i ← ema · a_i + (1 − ema) · raw_i / ((m / Σ_{j∈U} pace_j^p) · pace_i^p)   afterwards

    with ema = 0.5 and p = 0.1. A sample's first visit only stores its logits; unvisited
    samples keep their score and logits; samples never estimated score 0.
    """

    def __init__(self, y: torch.Tensor, num_outputs: int, task: str = "classification",
                 ema: float = 0.5, logit_scale: float = 0.4, pace_power: float = 0.1):
        check_task(task)
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must lie in [0, 1), got {ema}")
        self.y, self.task, self.ema, self.logit_scale, self.pace_power = y, task, ema, logit_scale, pace_power
        n, dev = y.shape[0], y.device
        self.last_logits = torch.zeros(n, num_outputs, device=dev)       # (N, C) z at the last visit
        self.has_logits = torch.zeros(n, dtype=torch.bool, device=dev)
        self.pace = torch.zeros(n, dtype=torch.float64, device=dev)      # (N,) Σ lr since the last visit
        self.score = torch.zeros(n, device=dev)                          # (N,) a_i
        self.estimated = torch.zeros(n, dtype=torch.bool, device=dev)
        self._ids: list[torch.Tensor] = []
        self._logits: list[torch.Tensor] = []
        self._pass_lr = 0.0

    def record(self, ids: torch.Tensor, logits: torch.Tensor, lr: float) -> None:
        """One mini-batch of a pass: sample ids (B,), their logits (B, C), the batch's learning rate."""
        self._ids.append(ids.to(self.y.device).long())
        self._logits.append(logits.detach().to(self.last_logits.device, torch.float32))
        self._pass_lr += float(lr)

    @property
    def pass_open(self) -> bool:
        return bool(self._ids)

    def end_pass(self) -> None:
        """Apply the pass's update (no-op when nothing was recorded)."""
        if not self._ids:
            return
        ids, z = torch.cat(self._ids), torch.cat(self._logits)           # (B,), (B, C)
        keep = _last_occurrence(ids)                                      # a sample seen twice: its last logits
        ids, z = ids[keep], z[keep]
        self.pace += self._pass_lr
        known = self.has_logits[ids]
        if bool(known.any()):
            i, zi = ids[known], z[known]
            r = toward_target(zi, self.y[i], self.task, scale=self.logit_scale, centre=True)  # (m, C)
            raw = (r * (zi - self.last_logits[i])).sum(1)                 # (m,)
            rc = self.pace[i].clamp_min(0) ** self.pace_power             # (m,)
            total = float(rc.sum())
            norm = (len(i) / total) * rc if total > 0 else torch.ones_like(rc)
            later = self.ema * self.score[i] + (1 - self.ema) * (raw / norm).to(raw.dtype)
            self.score[i] = torch.where(self.estimated[i], later, raw)
            self.estimated[i] = True
        self.last_logits[ids] = z
        self.has_logits[ids] = True
        self.pace[ids] = 0.0
        self._ids, self._logits, self._pass_lr = [], [], 0.0

    def state_dict(self) -> dict:
        self.end_pass()
        return {k: getattr(self, k).cpu() for k in ("last_logits", "has_logits", "pace", "score", "estimated")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v.to(self.y.device))


def _last_occurrence(ids: torch.Tensor) -> torch.Tensor:
    """Positions of each id's last occurrence in ids (B,) → (u,), in first-seen order."""
    order = torch.arange(len(ids), device=ids.device)
    last = torch.full((int(ids.max()) + 1,), -1, dtype=torch.long, device=ids.device)
    last.scatter_reduce_(0, ids, order, reduce="amax")
    return torch.sort(last[last >= 0]).values


class MeanTeacher:
    """An exponential moving average of the student's whole state, as the authors keep it.

    After every optimizer step, for every entry of the state dict (weights and normalisation
    statistics alike): θ_teacher ← d·θ_teacher + (1 − d)·θ_student, d = min(1 − 1/(t+1), decay),
    with t the episode's mini-batch counter, restarted at every episode start: the episode's
    first update (t = 0, d = 0) copies the student. Integer entries (BatchNorm's batch counts)
    are copied. The student's restart copies parameters only: it keeps its own statistics.
    """

    def __init__(self, student: nn.Module, decay: float = 0.5):
        self.decay = decay
        self.model = copy.deepcopy(student)
        for p in self.model.parameters():
            p.requires_grad_(False)

    @staticmethod
    def weight(step_in_episode: int, decay: float) -> float:
        """d = min(1 − 1/(t+1), decay): the teacher's share after the update at counter t."""
        return min(1.0 - 1.0 / (step_in_episode + 1), decay)

    @torch.no_grad()
    def update(self, student: nn.Module, step_in_episode: int) -> None:
        d = self.weight(step_in_episode, self.decay)
        mine = self.model.state_dict()
        for name, value in student.state_dict().items():
            t = mine[name]
            if t.is_floating_point():
                t.mul_(d).add_(value.detach(), alpha=1.0 - d)
            else:
                t.copy_(value)

    @torch.no_grad()
    def copy_from(self, student: nn.Module) -> None:
        """teacher ← student's parameters (the authors' teacher initialisation at episode 1)."""
        for pt, ps in zip(self.model.parameters(), student.parameters()):
            pt.copy_(ps.detach())

    @torch.no_grad()
    def restart_student(self, student: nn.Module, noise: float, generator: torch.Generator) -> None:
        """student ← teacher · (1 + noise·ε), ε ~ N(0, 1) per weight; parameters only."""
        for pt, ps in zip(self.model.parameters(), student.parameters()):
            eps = torch.randn(pt.shape, generator=generator, dtype=pt.dtype, device=generator.device)
            ps.copy_(pt * (1 + noise * eps.to(pt.device)))

    def logits(self, x: torch.Tensor, batch_statistics: bool = False) -> torch.Tensor:
        """The teacher's logits (no gradient): eval mode, or with batch statistics (train mode,
        which also moves its running statistics, as the authors' teacher does in epoch 0)."""
        with torch.no_grad():
            self.model.train(batch_statistics)
            return self.model(x)


def mixup_batch(x: torch.Tensor, alpha: float, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mix a batch (B, ...) with a permutation of itself: (λx + (1 − λ)x[perm], perm, λ), λ ~ Beta(α, α).

    λ is drawn from a NumPy generator seeded by the torch generator, so a seeded run is
    reproducible and its checkpoint needs only the torch generator's state.
    """
    if alpha <= 0 or len(x) < 2:
        return x, torch.arange(len(x), device=x.device), 1.0
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    perm = torch.randperm(len(x), generator=generator, device=generator.device).to(x.device)
    return lam * x + (1 - lam) * x[perm], perm, lam


def swarp(v: torch.Tensor, alpha: float = 2.0, beta: float = 0.75) -> torch.Tensor:
    """1 / (1 + (v^(1/log2 β) − 1)^α) on entries > 0 (0 stays 0): maps (0, 1] onto (0, 1], β ↦ ½."""
    out = torch.zeros_like(v)
    pos = v > 1e-30
    out[pos] = 1.0 / (1.0 + (v[pos] ** (1.0 / math.log2(beta)) - 1.0) ** alpha)
    return out


def paper_centrality(features: torch.Tensor, alpha: float = 2.0, beta: float = 0.75,
                     gamma: float = 2.0) -> torch.Tensor:
    """The authors' centrality (N,), summing to 1, from penultimate features (N, D).

    Per column: subtract its minimum, divide by its maximum (+1e-5), swarp, raise to γ, multiply
    back by the maximum; then c_i = Σ_j (F Fᵀ)_ij = F_i · Σ_j F_j, normalised. O(N·D), no N×N matrix.
    """
    f = features.detach().to(torch.float64).clamp(1e-10, 1e10)
    f = f - f.min(0, keepdim=True).values
    top = f.max(0, keepdim=True).values + 1e-5
    f = swarp(f / top, alpha, beta) ** gamma * top
    c = f @ f.sum(0)
    total = float(c.sum())
    c = c / total if total > 0 else torch.full_like(c, 1.0 / len(c))
    return c.to(features.dtype)


def sampling_probability(score: torch.Tensor, scale: float) -> torch.Tensor:
    """p_i ∝ exp(scale · (a_i − max_j a_j)) (N,), the authors' sampling distribution over scores."""
    a = score.detach().to(torch.float64)
    p = torch.exp(scale * (a - a.max()))
    return (p / p.sum()).to(score.dtype)


def sampling_spread(p: Optional[torch.Tensor], n: Optional[int] = None) -> dict[str, float]:
    """How far a sampling distribution p (N,) is from uniform: max/min p (1 when uniform) and the
    effective number of samples 1/Σp² (N when uniform). p None: the uniform distribution over n."""
    if p is None:
        return {"sampling_p_ratio": 1.0, "sampling_ess": float(n)}
    p = p.detach().to(torch.float64)
    p = p / p.sum()
    low = float(p.min())
    return {"sampling_p_ratio": float(p.max()) / low if low > 0 else math.inf,
            "sampling_ess": float(1.0 / (p * p).sum())}


def optional_logits(teacher: Optional[MeanTeacher], model: nn.Module, x: torch.Tensor,
                    batch_statistics: bool = False) -> torch.Tensor:
    """The logits that feed the paper score: the teacher's when there is one (batch statistics in
    the first epoch, as the authors'), else the student's (eval mode, no gradient) on the clean inputs."""
    if teacher is not None:
        return teacher.logits(x, batch_statistics)
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train(was)
    return out
