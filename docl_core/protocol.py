"""The authors' training protocol as data: episodes of epochs, and per epoch what to train on.

`PaperSchedule` holds every number and switch of the DoCL authors' recipe (their public code,
read as facts in docs/protocol.md), each defaulting to the authors' value. `EpochPlan`s are a
pure function of (schedule, epoch, N, curriculum): the trainer asks for the plan of epoch e
and follows it, so resuming mid-episode needs no saved schedule state.

Time. E epochs split into episodes at boundaries b_0 = 0 < b_1 < ... < b_m = E (the authors'
0, 5, 10, 15, 20, 30, 40, 60, 90, 140, 210, 300 scaled to E, or given). Episode 0 is a warm
start: full passes, learning rate rising linearly from lr_min towards lr_max over the
mini-batches of L₀ + 1 epochs (L₀ its length), so it ends at L₀/(L₀ + 1) of the way, as the
authors' ramp does.
At the start of episode i ≥ 1: lr_max ← lr_max / decay while i < explore_episodes, else
lr_max ← lr_max · decay and lr_min ← lr_min · lr_min_decay; inside the episode the learning
rate follows a cosine from lr_max to lr_min per mini-batch over the episode's planned
mini-batches (the full pass included). As in the authors' code, every pass hands the counter
on minus one, so consecutive passes of an episode share one learning-rate value.

Space. At the start of episode i ≥ 1 the budget k ← min(k·k_growth, k_cap), k0 = ⌊k·N⌋ (the
candidate pool), select_ratio ← min(select_ratio·growth, 1), the subset keeps
⌊select_ratio·k0⌋ of the pool when a diversity term prunes it (else k0), the score weight
mod ← mod·mod_growth, mixup's α ← max(α_min, α·α_decay). Every epoch after the warm start
trains on a newly selected subset; the first epoch of each episode first makes one full
"large-batch" pass over all N, and selects from the score that pass updated. The `sgd`
curriculum is the authors' baseline: all N every epoch, under the same learning rates and
mean teacher, no extra full pass, and mixup's α held at its initial value after the warm
start (their per-episode updates run only under the curriculum); `baseline_alpha_decay`
gives our earlier baseline, whose α decays like the curriculum's.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import Optional

AUTHORS_BOUNDARIES = (0, 5, 10, 15, 20, 30, 40, 60, 90, 140, 210, 300)  # epochs, for E = 300


@dataclass
class PaperSchedule:
    """The `paper` protocol's knobs (docs/protocol.md). Rates are per episode start."""

    epochs: int = 30                   # total epochs E
    episodes: Optional[list[int]] = None  # episode boundaries 0 < ... < E; None: the authors' scaled to E
    lr_max: float = 0.1                # peak learning rate of the first episodes (per mean-loss step)
    lr_min: float = 5e-4               # floor of each episode's cosine
    lr_max_decay: float = 0.9          # lr_max ÷ this while exploring, × this afterwards
    lr_min_decay: float = 0.8          # lr_min × this after exploring
    explore_episodes: int = 5          # episodes 1..explore−1 raise lr_max; centrality recomputed up to it
    k_start: float = 0.2               # pool budget k (fraction of N) before episode 1's update
    k_growth: float = 1.1              # k × this at each episode start ...
    k_cap: float = 0.9                 # ... up to this fraction of N
    select_ratio: float = 0.5          # share of the pool kept by the diversity term, before episode 1's update
    select_ratio_growth: float = 1.1   # × this per episode, capped at 1
    mod: float = 0.1                   # weight of the score's probability against centrality
    mod_growth: float = 1.5            # × this per episode
    score_scale: float = 0.1           # sampling p_i ∝ exp(score_scale · a_i) (the authors' 1/temperature)
    random_subsample: bool = True      # draw the pool from p first, then prune by mod·p + centrality
    mixup: bool = True                 # mixup on every training mini-batch, every curriculum
    mixup_alpha: float = 1.0           # Beta(α, α) before episode 1's update
    mixup_alpha_decay: float = 0.9     # α × this per episode ...
    mixup_alpha_min: float = 0.2       # ... down to this; the warm start and full passes use this α
    mean_teacher: bool = True          # EMA teacher: its logits feed the score, the student restarts from it
    teacher_decay: float = 0.5         # EMA decay, min(1 − 1/(t+1), decay) at the t-th step of an episode
    reinit_noise: float = 0.01         # student ← teacher · (1 + noise·ε) at each episode start (from episode 2)
    episode_full_pass: bool = True     # one full pass over all N at the start of each episode
    full_pass_accumulate: int = 4      # mini-batches per optimizer step in that pass (the "large batch")
    full_pass_step_first: bool = True  # the large-batch pass steps at the *start* of each group of mini-batches
                                       # (the authors': its first step applies the gradient the previous pass
                                       # left, the last group's is dropped); off: at each group's end
    momentum: float = 0.9              # SGD momentum (Nesterov)
    clip_grad: float = 10.0            # gradient-norm clip on the large-batch steps
    baseline_alpha_decay: bool = False  # sgd's mixup α decays like the curriculum's (our earlier baseline);
                                       # off: held at mixup_alpha after the warm start (the authors' baseline)
    lam_start: float = 1.0             # λ of --diversity facility (not the authors': their prune is centrality's),
    lam_decay: float = 0.9             # λ_i = lam_start · lam_decay^i in episode i, as under steps (config.Schedule)

    def lam(self, episode: int) -> float:
        return self.lam_start * self.lam_decay ** episode

    def boundaries(self) -> list[int]:
        """Episode boundaries b_0 = 0 < ... < b_m = E (m episodes)."""
        if self.episodes is None:
            return scaled_boundaries(self.epochs)
        b = [int(x) for x in self.episodes]
        b = b if b[:1] == [0] else [0, *b]          # the warm start always begins at epoch 0
        return b if b[-1] == self.epochs else [*b, int(self.epochs)]  # the last episode runs to E

    def validate(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "episodes" or isinstance(v, bool):
                continue
            if not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"{f.name} must be a finite number, got {v!r}: pass a number to "
                                 f"--{f.name.replace('_', '-')}")
            if v < 0:
                raise ValueError(f"{f.name} must be ≥ 0, got {v}: rates and sizes cannot be negative")
        if int(self.epochs) != self.epochs or self.epochs < 2:
            raise ValueError(f"the paper protocol needs --epochs ≥ 2 (a warm start and one curriculum "
                             f"episode), got {self.epochs}")
        if self.episodes is not None:
            b = [int(x) for x in self.episodes]
            if b != sorted(set(b)):
                raise ValueError(f"episode boundaries must strictly increase, got {','.join(map(str, b))}: "
                                 "give them as --episodes 0,2,4,... in increasing order")
            if b[-1] > self.epochs:
                raise ValueError(f"episode boundary {b[-1]} lies past the last epoch: raise --epochs to "
                                 f"{b[-1]} or lower the boundaries")
        bounds = self.boundaries()
        if len(bounds) < 3:
            raise ValueError(f"--epochs {self.epochs} gives fewer than 2 episodes with these boundaries: "
                             "raise --epochs or give --episodes with a warm start and one more episode")
        if self.epochs < len(bounds) - 1:
            raise ValueError(f"{len(bounds) - 1} episodes need at least as many epochs, got {self.epochs}")
        if not 0 < self.k_start <= 1 or not 0 < self.k_cap <= 1 or not 0 < self.select_ratio <= 1:
            raise ValueError("k_start, k_cap and select_ratio are fractions: choose values in (0, 1]")
        if self.lr_max <= 0 or self.lr_min > self.lr_max:
            raise ValueError("need 0 ≤ lr_min ≤ lr_max and lr_max > 0")
        if not 0 <= self.teacher_decay < 1:
            raise ValueError(f"teacher_decay must lie in [0, 1), got {self.teacher_decay}")
        if self.full_pass_accumulate < 1 or int(self.full_pass_accumulate) != self.full_pass_accumulate:
            raise ValueError("full_pass_accumulate must be a positive integer (mini-batches per step)")
        if self.explore_episodes < 1:
            raise ValueError("explore_episodes must be ≥ 1")
        if self.score_scale <= 0:
            raise ValueError(f"score_scale must be positive, got {self.score_scale}")
        if self.mixup and (self.mixup_alpha <= 0 or self.mixup_alpha_min <= 0):
            raise ValueError("mixup's α must be positive: pass --mixup-alpha > 0, or --no-mixup")


def scaled_boundaries(epochs: int) -> list[int]:
    """The authors' boundaries scaled to E epochs, rounded half up, duplicates dropped."""
    scaled = [math.floor(b * epochs / AUTHORS_BOUNDARIES[-1] + 0.5) for b in AUTHORS_BOUNDARIES]
    return sorted(set(scaled))


@dataclass(frozen=True)
class EpisodeValues:
    """The schedule's values during episode i (after that episode's start-of-episode updates)."""

    index: int
    start: int                  # first epoch
    end: int                    # one past the last epoch
    lr_max: float
    lr_min: float
    k: float                    # pool budget, fraction of N
    select_ratio: float
    mod: float
    mixup_alpha: float          # α of the subset passes (0 when mixup is off)
    baseline_alpha: float       # α of the baseline's (sgd's) passes in this episode


@dataclass(frozen=True)
class EpochPlan:
    """What epoch e does: which passes, how many mini-batches, which learning rate per mini-batch."""

    epoch: int
    episode: EpisodeValues
    warm: bool                  # a warm-start epoch: one full pass, linear learning rate
    full_pass: bool             # this epoch starts with a full pass over all N (large batch)
    select: bool                # a subset is selected and trained on this epoch
    pool_size: int              # k0, candidates drawn from the score (selecting epochs)
    subset_size: int            # samples trained on in the subset pass
    batches_per_epoch: int      # mini-batches of one subset pass (or of one full pass)
    full_batches: int           # mini-batches of the full pass (0 when none)
    step_offset: int            # the episode's mini-batch counter at this epoch's first pass
    subset_offset: int          # ... at its subset pass (after the full pass, when there is one)
    episode_batches: int        # planned mini-batches of the whole episode (the warm start: of L₀ + 1 epochs)

    @property
    def episode_start(self) -> bool:
        return self.epoch == self.episode.start

    def lr(self, counter: int) -> float:
        """Learning rate of the episode's `counter`-th mini-batch (0-based)."""
        ep = self.episode
        frac = min(1.0, counter / max(1, self.episode_batches))
        if self.warm:
            return ep.lr_min + (ep.lr_max - ep.lr_min) * frac
        return ep.lr_min + 0.5 * (ep.lr_max - ep.lr_min) * (1 + math.cos(math.pi * frac))


class PaperProtocol:
    """Plans of the `paper` protocol for one run: `plan(e)` for e = 0 .. E−1."""

    def __init__(self, sched: PaperSchedule, n: int, batch_size: int, full_data: bool,
                 prunes: bool):
        """n: training samples; full_data: the curriculum trains on all N (`sgd`); prunes: a
        diversity term keeps select_ratio of the pool (else the whole pool is trained on)."""
        sched.validate()
        self.s, self.n, self.bs, self.full_data, self.prunes = sched, n, batch_size, full_data, prunes
        self.bounds = sched.boundaries()
        self.episodes = self._episode_values()

    @property
    def epochs(self) -> int:
        return self.bounds[-1]

    def _episode_values(self) -> list[EpisodeValues]:
        s = self.s
        lr_max, lr_min, k, ratio, mod = s.lr_max, s.lr_min, s.k_start, s.select_ratio, s.mod
        alpha = s.mixup_alpha
        out = []
        for i, (a, b) in enumerate(zip(self.bounds[:-1], self.bounds[1:])):
            if i >= 1:  # start-of-episode updates (the warm start keeps the initial values)
                if i < s.explore_episodes:
                    lr_max /= s.lr_max_decay
                else:
                    lr_max *= s.lr_max_decay
                    lr_min *= s.lr_min_decay
                k = min(k * s.k_growth, s.k_cap)
                ratio = min(ratio * s.select_ratio_growth, 1.0)
                mod *= s.mod_growth
                alpha = max(s.mixup_alpha_min, alpha * s.mixup_alpha_decay)
            if not s.mixup:
                subset_alpha = baseline_alpha = 0.0
            elif i == 0:                                      # the warm start mixes with α_min
                subset_alpha = baseline_alpha = s.mixup_alpha_min
            else:
                subset_alpha = alpha
                baseline_alpha = alpha if s.baseline_alpha_decay else s.mixup_alpha
            out.append(EpisodeValues(index=i, start=a, end=b, lr_max=lr_max, lr_min=lr_min, k=k,
                                     select_ratio=ratio, mod=mod, mixup_alpha=subset_alpha,
                                     baseline_alpha=baseline_alpha))
        return out

    def episode_of(self, epoch: int) -> EpisodeValues:
        if not 0 <= epoch < self.epochs:
            raise ValueError(f"epoch {epoch} outside 0..{self.epochs - 1}")
        return next(ep for ep in self.episodes if ep.start <= epoch < ep.end)

    def sizes(self, ep: EpisodeValues) -> tuple[int, int]:
        """(k0, subset size) in episode ep: ⌊k·N⌋ and ⌊select_ratio·k0⌋ when the pool is pruned."""
        k0 = max(1, min(self.n, math.floor(ep.k * self.n)))
        subset = max(1, math.floor(ep.select_ratio * k0)) if self.prunes else k0
        return k0, subset

    def plan(self, epoch: int) -> EpochPlan:
        """Epoch e's passes. Counters: a pass of B mini-batches that starts at c hands on c + B − 1
        (the authors' train loop returns its counter minus one), so pass j of an episode whose
        passes have B_0, B_1, ... mini-batches starts at Σ_{i<j} (B_i − 1)."""
        ep = self.episode_of(epoch)
        full = math.ceil(self.n / self.bs)
        length, j = ep.end - ep.start, epoch - ep.start
        if ep.index == 0 or self.full_data:
            warm = ep.index == 0
            k0 = subset = self.n
            offset = j * (full - 1)
            return EpochPlan(epoch=epoch, episode=ep, warm=warm, full_pass=False, select=not warm,
                             pool_size=k0, subset_size=subset, batches_per_epoch=full, full_batches=0,
                             step_offset=offset, subset_offset=offset,
                             episode_batches=full * (length + 1 if warm else length))
        k0, subset = self.sizes(ep)
        per = math.ceil(subset / self.bs)
        extra = full if self.s.episode_full_pass else 0
        first = j == 0
        after_full = extra - 1 if extra else 0
        subset_offset = after_full + j * (per - 1)
        return EpochPlan(epoch=epoch, episode=ep, warm=False, full_pass=first and extra > 0, select=True,
                         pool_size=k0, subset_size=subset, batches_per_epoch=per,
                         full_batches=extra if first else 0,
                         step_offset=0 if first else subset_offset, subset_offset=subset_offset,
                         episode_batches=extra + per * length)
