"""Both protocols as plans of rounds, for the trainer's one loop.

A protocol answers `plan(t)` with a `RoundPlan`: what round t (an epoch under `paper`) does, as
data. The trainer (trainer.py) executes every plan the same way:

    episode start → passes before measuring → measure → choose what to train on
        → the round's pass → measure after it (when the plan says so) → end the round

| step                  | `steps` (StepsRounds)                        | `paper` (PaperRounds)                          |
|-----------------------|----------------------------------------------|------------------------------------------------|
| episode start         | none                                         | centrality, teacher/student restart (i ≥ 1)    |
| passes before         | round 0: `warmup_epochs` plain epochs        | an episode's first epoch: the large-batch pass |
| measure before        | round 0 only; later rounds take what the     | every epoch (the kernel and exact/fast scores  |
|                       | previous round measured after its pass       | at episode starts, or every epoch)             |
| choose                | the curriculum selects k_t (sgd: all N)      | warm start: all N; sgd: all N, or ordered by a |
|                       |                                              | draw; the rest: the recipe's draw and prune    |
| the round's pass      | ⌈k·epochs_per_round/B⌉ reshuffled steps,     | the chosen ids in the run's order, the plan's  |
|                       | cosine restarted                             | learning rates and mixup                       |
| measure after         | yes: the next round's state (the last round: | no: the pass's losses and the teacher's        |
|                       | losses only), this round's train metrics     | accuracy are the metrics                       |

So under both protocols the samples frame of round t holds the state the selection of round t
saw. The protocols build their passes as `PassSpec`s (train_pass.py); the paper protocol's
numbers come from `protocol.PaperProtocol` (a pure function of the schedule and the epoch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Optional

import torch

from .protocol import EpochPlan, PaperProtocol
from .train_pass import PassSpec, paper_pass, steps_pass

CHOICES = ("curriculum", "order", "all", "warm")


@dataclass(frozen=True)
class RoundPlan:
    """What round t does (the trainer's loop executes it)."""

    t: int                          # the round (steps) or epoch (paper), 0-based: the row of rounds.parquet
    stage: int                      # the t a curriculum sees (λ_t): the round, or the paper protocol's episode
    k: int                          # samples the curriculum selects (`choose == "curriculum"`)
    choose: str                     # curriculum: it selects k | order: all N, ordered by a weighted draw from
                                    # the score | all: all N | warm: all N, nothing selected (the warm start)
    order: Optional[str] = None     # order of the round's pass over the chosen ids (paper: draw, shuffle,
                                    # reversed; recorded as pass_position); None: the pass reshuffles (steps)
    warm_passes: int = 0            # plain passes over all N before measuring (the steps warm start)
    full_pass: bool = False         # the paper's large-batch pass over all N before measuring
    kernel: bool = True             # the measurement before choosing includes the kernel and every estimator
    estimators: Optional[tuple[str, ...]] = None  # without the kernel: the estimators measured (None: all)
    after: Optional[str] = None     # measured after the pass: "state" (also the next round's) | "metrics"
    pool: Optional[int] = None      # the paper's candidate pool k0
    mod: float = 1.0                # the paper's score weight against centrality
    episode: Optional[int] = None   # the paper protocol's episode index (None under steps)
    episode_start: bool = False
    record: dict = field(default_factory=dict)  # the protocol's own columns of rounds.parquet
    epoch_plan: Optional[EpochPlan] = None       # paper: the epoch's learning rates and mini-batch counters


@dataclass(frozen=True)
class Choice:
    """What a round trains on: ids (K,) on the device, the selection's loss weights (K,) or None,
    and how far its sampling distribution is from uniform (rounds.parquet columns)."""

    ids: torch.Tensor
    weights: Optional[torch.Tensor] = None
    spread: dict = field(default_factory=dict)


class StepsRounds:
    """The `steps` protocol (config.Schedule): equal-step rounds after a warm start."""

    unit = "round"

    def __init__(self, cfg, n: int, gen: torch.Generator, task: str, device: torch.device):
        self.cfg, self.s, self.n, self.gen, self.task, self.device = cfg, cfg.schedule, n, gen, task, device
        self.rounds = cfg.rounds
        # what the curriculum's RoundState says of the draw (its sampler, samplers.StepsSampler)
        self.temperature, self.pool_factor, self.random_subsample = self.s.temperature, self.s.pool_factor, True

    def plan(self, t: int) -> RoundPlan:
        return RoundPlan(t=t, stage=t, k=self.s.k(t, self.n), choose="curriculum",
                         warm_passes=self.s.warmup_epochs if t == 0 else 0,
                         after="state" if t + 1 < self.rounds else "metrics")

    def passes_before(self, plan: RoundPlan) -> Iterator[PassSpec]:
        """The warm start: each epoch a pass of its own over all N, unweighted."""
        for _ in range(plan.warm_passes):
            ids = torch.arange(self.n, device=self.device)
            yield steps_pass(self.cfg, ids, torch.ones(self.n, device=self.device),
                             math.ceil(self.n / self.cfg.batch_size), self.gen, self.task)

    def round_pass(self, plan: RoundPlan, choice: Choice) -> PassSpec:
        """`epochs_per_round` passes' worth of mini-batches over the selection, its weights in the loss."""
        steps = math.ceil(len(choice.ids) * self.s.epochs_per_round / self.cfg.batch_size)
        return steps_pass(self.cfg, choice.ids, choice.weights, steps, self.gen, self.task)


class PaperRounds:
    """The `paper` protocol (protocol.PaperSchedule): the authors' episodes, a round per epoch."""

    unit = "epoch"

    def __init__(self, cfg, n: int, gen: torch.Generator, task: str, device: torch.device, full_data: bool):
        self.cfg, self.n, self.gen, self.task, self.device, self.full_data = cfg, n, gen, task, device, full_data
        self.epochs = PaperProtocol(cfg.schedule, n, cfg.batch_size, full_data, prunes=cfg.diversity != "none")
        self.rounds = self.epochs.epochs
        # what the curriculum's RoundState says of the draw (its sampler, samplers.PaperSampler): the pool
        # is the plan's
        self.temperature, self.pool_factor, self.random_subsample = \
            1.0 / cfg.schedule.score_scale, 1.0, cfg.schedule.random_subsample
        # the estimators measured between the kernel's epochs: the one driving the selection
        driving = cfg.selection_score
        self.driving = (driving,) if driving in ("exact", "fast", "grand") else ()

    def plan(self, e: int) -> RoundPlan:
        """Epoch e: the warm start trains all N; sgd all N, in a fresh order or ordered by a draw from
        the score (the order-only arm); every other curriculum its selection, in the run's order."""
        p, cfg = self.epochs.plan(e), self.cfg
        ep = p.episode
        if not p.select:
            choose = "warm"
        elif not self.full_data:
            choose = "curriculum"
        else:
            choose = "order" if cfg.order != "shuffle" else "all"
        kernel = cfg.log_every == "epoch" or p.episode_start
        alpha = ep.baseline_alpha if self.full_data else ep.mixup_alpha
        return RoundPlan(t=e, stage=ep.index, k=p.subset_size if choose == "curriculum" else self.n, choose=choose,
                         order=cfg.order if choose in ("curriculum", "order") else "shuffle",
                         full_pass=p.full_pass, kernel=kernel, estimators=None if kernel else self.driving,
                         pool=p.pool_size if choose == "curriculum" else None, mod=ep.mod,
                         episode=ep.index, episode_start=p.episode_start,
                         record={"epoch": e, "episode": ep.index, "full_pass": p.full_pass, "mixup_alpha": alpha,
                                 "pool_size": p.pool_size},
                         epoch_plan=p)

    def passes_before(self, plan: RoundPlan) -> Iterator[PassSpec]:
        """An episode's full large-batch pass, before the selection: it updates every sample's score."""
        if plan.full_pass:
            yield self._pass(plan, torch.arange(self.n, device=self.device), full=True, order="shuffle")

    def round_pass(self, plan: RoundPlan, choice: Choice) -> PassSpec:
        return self._pass(plan, choice.ids, full=False, order=plan.order)

    def _pass(self, plan: RoundPlan, ids: torch.Tensor, full: bool, order: str) -> PassSpec:
        return paper_pass(self.cfg, plan.epoch_plan, ids, full=full, order=order, gen=self.gen, task=self.task,
                          full_data=self.full_data)


def make_rounds(cfg, n: int, gen: torch.Generator, task: str, device: torch.device,
                full_data: bool) -> StepsRounds | PaperRounds:
    """The run's protocol: `cfg.protocol` names it; `full_data`: the curriculum trains on all N (sgd)."""
    if cfg.protocol == "paper":
        return PaperRounds(cfg, n, gen, task, device, full_data)
    return StepsRounds(cfg, n, gen, task, device)
