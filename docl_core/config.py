"""Run configuration and schedules: plain dataclasses, saved with every run (run.json "config")."""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

# the one list of curricula (torch-free; plus SCORE_CURRICULUM below) and the order a paper pass defaults to
from .names import CURRICULA, ESTIMATOR_NAMES, LEGACY_ORDER, SAMPLE_SCORE_NAMES, SCORES, default_order
from .protocol import PaperSchedule

ESTIMATORS = ESTIMATOR_NAMES  # exact, byproduct, fast, paper, none (no score: a uniform draw, an ablation)
# Per-sample scores the tracker logs beside the estimators (samples-frame columns of the same name),
# each with the direction in which it means "hard" (names.SCORES, the one registry: what each is,
# its labels, and whether it needs the model).
SAMPLE_SCORES = {n: SCORES[n].hard for n in SAMPLE_SCORE_NAMES}
# what drives the `score` curriculum: a sample score, or an estimator's DoCL score a (large a: "hard")
SELECTION_SCORES = (*SAMPLE_SCORES, *ESTIMATORS)
SCORE_CURRICULUM = "score"   # selects by any of SELECTION_SCORES, through DoCL's machinery
PREFER = ("hard", "easy")
PROTOCOLS = ("steps", "paper")
PRECISIONS = ("fp32", "bf16", "fp16")  # RunConfig.precision
# --preset NAME: flags a preset sets wherever the command line leaves them at their defaults
PRESETS = {
    # the DoCL authors' CIFAR-10 run (docs/protocol.md): WRN-28-10, batch 128, weight decay 2e-4,
    # lr_max 0.1, k 0.2 × 1.1 per episode up to 0.9, E = 300 with the authors' episode boundaries
    # (0, 5, 10, 15, 20, 30, 40, 60, 90, 140, 210, 300); no probe kernel (per-sample Jacobians of
    # 36.5M parameters); --dataset must name a local cifar-10-batches-py folder
    "cifar10-paper": {"protocol": "paper", "model": "wrn-28-10", "batch_size": 128, "weight_decay": 2e-4,
                      "epochs": 300, "lr": 0.1, "k_start": 0.2, "k_growth": 1.1, "k_cap": 0.9, "probe_size": 0},
}
LOG_EVERY = ("epoch", "episode")
# paper protocol: the order in which a subset pass presents its samples (docs/protocol.md, "Space")
ORDERS = ("draw", "shuffle", "reversed")  # the selection's own order | a fresh random order | draw reversed


@dataclass
class Schedule:
    """Per-round schedules (docs/design.md §2). Rounds are numbered t = 0 .. rounds-1."""

    k_start: float = 0.2         # fraction of N selected in round 0
    k_growth: float = 1.2        # k_t = k_start · k_growth^t (fraction of N) ...
    k_cap: float = 1.0           # ... capped at this fraction of N
    lam_start: float = 1.0       # λ_0: weight of the mean coverage F̄(S) against the weights min-max scaled
                                 # to [0, 1]; both terms lie in [0, 1], so λ is unitless (selection.py)
    lam_decay: float = 0.9       # λ_t = lam_start · lam_decay^t
    temperature: float = 1.0     # τ of the DoCL pool draw p_i ∝ exp(a_i/τ), a standardised per round
    pool_factor: float = 2.0     # DoCL draws a candidate pool of pool_factor · k_t samples
    lr: float = 0.05             # peak learning rate (SGD, momentum 0.9), per mean-loss step
    lr_min: float = 0.001        # floor of the cosine inside each round
    warmup_epochs: int = 1       # warm start: plain epochs on all data before round 0
    epochs_per_round: float = 1.0  # passes over the *selected* subset per round

    def k(self, t: int, n: int) -> int:
        """Selected-set size k_t for a training set of n samples."""
        frac = min(self.k_cap, self.k_start * self.k_growth ** t)
        return max(1, min(n, int(round(frac * n))))

    def lam(self, t: int) -> float:
        return self.lam_start * self.lam_decay ** t

    def lr_at(self, step_in_round: int, steps_in_round: int) -> float:
        """Cosine annealing from lr to lr_min inside a round (restarted every round)."""
        frac = step_in_round / max(1, steps_in_round)
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * frac))

    def validate(self) -> None:
        for f in fields(self):  # NaN slips through every comparison below; inf breaks k_t
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                flag = "lam" if f.name == "lam_start" else f.name.replace("_", "-")
                raise ValueError(f"{f.name} must be a finite number, got {value!r}: pass a number to --{flag}")
        if not 0 < self.k_start <= 1 or not 0 < self.k_cap <= 1:
            raise ValueError("k_start and k_cap are fractions of N: choose values in (0, 1]")
        if self.k_growth < 1:
            raise ValueError(f"k_growth must be ≥ 1 (the selected set grows), got {self.k_growth}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.lr <= 0 or self.lr_min < 0 or self.lr_min > self.lr:
            raise ValueError("need 0 ≤ lr_min ≤ lr and lr > 0")
        if self.pool_factor < 1:
            raise ValueError(f"pool_factor must be ≥ 1, got {self.pool_factor}")
        if self.epochs_per_round <= 0:
            raise ValueError("epochs_per_round must be positive")
        if self.warmup_epochs < 0:
            raise ValueError("warmup_epochs must be ≥ 0")


@dataclass
class RunConfig:
    """Everything that defines a run; saved in run.json and enough to reproduce it."""

    dataset: str = "digits"          # a built-in name or a path (.npz, .csv, CIFAR/Fashion-MNIST folder)
    label_column: Optional[str] = None  # .csv only: the column holding the labels; None: "label"
    curriculum: str = "docl"         # one of CURRICULA, or "score" (SCORE_CURRICULUM)
    score: Optional[str] = None      # curriculum "score" only: the score that drives it (SELECTION_SCORES;
                                     # CLI --score); None: the run's estimator
    prefer: Optional[str] = None     # curriculum "score" only: "hard" (default) or "easy" first, in the
                                     # score's own sense of hard (SAMPLE_SCORES; a: large is hard)
    log_grad_norms: bool = False     # also log GraNd ‖g_i‖ per sample (one per-sample gradient pass per round)
    protocol: str = "steps"          # steps: equal-step rounds (Schedule) | paper: the authors' episodes (PaperSchedule)
    rounds: int = 10                 # curriculum rounds (steps protocol; paper: epochs come from paper.epochs)
    seed: int = 0
    model: Optional[str] = None      # mlp | cnn | resnet; None picks the dataset's default
    estimator: Optional[str] = None  # the score that drives selection (ESTIMATORS; CLI --score or --estimator);
                                     # None: exact (steps), paper (paper); "none": no score, a uniform draw
    log_estimators: Optional[list[str]] = None  # logged beside it; None: byproduct (steps), exact (paper)
    log_every: Optional[str] = None  # paper: exact/fast scores and kernel every "epoch" or "episode" start (default)
    order: Optional[str] = None      # paper: order of each subset pass (ORDERS). draw: as the selection's weighted
                                     # draw and prune returned it (the authors'; docs/protocol.md); shuffle:
                                     # a fresh random order; reversed: draw reversed. None: draw, but shuffle for
                                     # sgd (no draw). sgd with draw/reversed: all N ordered by a weighted draw
                                     # from the run's estimator (the order-only arm)
    diversity: Optional[str] = None  # facility (stochastic greedy) | centrality | none; None: facility
                                     # (steps), centrality (paper: the authors' per-column preprocessed proxy)
    label_noise: float = 0.0         # fraction of train labels flipped (classification)
    val_fraction: float = 0.15       # share of the training pool held out for validation (stratified)
    batch_size: int = 64             # training mini-batch
    score_batch_size: int = 512      # scoring batch
    probe_size: int = 64             # kernel probe samples (stratified); 0 turns kernel logging off
    kernel_full: bool = False        # also store full (m, m, C, C) kernel blocks (C² × the trace's size)
    weight_decay: float = 5e-4       # L2 weight decay of SGD
    device: str = "auto"             # auto | cpu | cuda | cuda:N
    checkpoint_every: int = 1        # rounds (epochs) between checkpoints
    deterministic: bool = False      # deterministic CUDA kernels (cuDNN, cuBLAS); CPU runs repeat bit for bit without it
    precision: str = "fp32"          # fp32 | bf16 | fp16: autocast on training forwards (fp16 with a gradient
                                     # scaler); scores, features and evaluation stay in fp32
    schedule: Schedule | PaperSchedule = field(default_factory=Schedule)  # the protocol's one schedule: Schedule
                                     # (steps: equal-step rounds) or PaperSchedule (paper: the authors' episodes);
                                     # run.json stores it as "schedule" or "paper", the names runs always used

    def __post_init__(self) -> None:
        if isinstance(self.schedule, PaperSchedule):  # the schedule names its protocol
            self.protocol = "paper"
        elif self.protocol == "paper" and self.schedule == Schedule():  # the default: the paper's own
            self.schedule = PaperSchedule()
        paper = self.protocol == "paper"
        if self.estimator is None:
            self.estimator = "paper" if paper else "exact"
        if self.log_estimators is None:
            self.log_estimators = ["exact"] if paper else ["byproduct"]
            if self.estimator == "none":  # the score nobody uses, logged for comparison
                self.log_estimators.append("paper" if paper else "exact")
        if self.log_every is None and paper:
            self.log_every = "episode"
        if self.order is None and paper:
            self.order = default_order(self.curriculum)
        if self.diversity is None:
            self.diversity = "centrality" if paper else "facility"
        if self.curriculum == SCORE_CURRICULUM and self.prefer is None:
            self.prefer = "hard"

    @property
    def selection_score(self) -> Optional[str]:
        """The score the curriculum selects by: the `score` curriculum's, or the estimator for the
        curricula that use one (None for the rest: they select by loss or at random)."""
        if self.curriculum == SCORE_CURRICULUM:
            return self.score or self.estimator
        return self.estimator

    @property
    def logs_grad_norms(self) -> bool:
        """GraNd is logged when asked for, and whenever it drives the selection."""
        return bool(self.log_grad_norms) or (self.curriculum == SCORE_CURRICULUM and self.score == "grand")

    @property
    def num_rounds(self) -> int:
        """Rows of rounds.parquet the run will write: rounds (steps) or epochs (paper)."""
        return self.schedule.epochs if isinstance(self.schedule, PaperSchedule) else self.rounds

    def validate(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}: choose steps or paper")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.label_column is not None and not str(self.dataset).lower().endswith(".csv"):
            raise ValueError(f"--label-column applies to .csv datasets only, and {self.dataset!r} is not one: "
                             "drop it, or point --dataset at a .csv file")
        if self.curriculum not in CURRICULA and self.curriculum != SCORE_CURRICULUM:
            raise ValueError(f"unknown curriculum {self.curriculum!r}: choose one of "
                             f"{', '.join((*CURRICULA, SCORE_CURRICULUM))}")
        self._validate_score()
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r}: choose one of {', '.join(ESTIMATORS)}")
        for e in self.log_estimators:
            if e not in ESTIMATORS:
                raise ValueError(f"unknown estimator {e!r} in log_estimators: choose from {', '.join(ESTIMATORS)}")
        if self.diversity not in ("facility", "centrality", "none"):
            raise ValueError(f"unknown diversity {self.diversity!r}: use facility, centrality or none")
        if self.rounds < 1:
            raise ValueError(f"rounds must be ≥ 1, got {self.rounds}")
        if self.batch_size < 1 or self.score_batch_size < 1:
            raise ValueError("batch sizes must be positive integers")
        if not 0 <= self.label_noise < 1:
            raise ValueError(f"label_noise is a fraction in [0, 1), got {self.label_noise}")
        if not isinstance(self.val_fraction, numbers.Real) or not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction is a fraction in (0, 1), got {self.val_fraction!r}: the validation "
                             "split needs samples (tuning and val accuracy read it)")
        if self.probe_size < 0:
            raise ValueError("probe_size must be ≥ 0 (0 turns kernel logging off)")
        if not isinstance(self.weight_decay, numbers.Real) or not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay must be a finite number ≥ 0, got {self.weight_decay!r}")
        wanted = PaperSchedule if self.protocol == "paper" else Schedule
        if not isinstance(self.schedule, wanted):
            raise ValueError(f"--protocol {self.protocol} runs on a {wanted.__name__}, and this config holds a "
                             f"{type(self.schedule).__name__}: pass schedule={wanted.__name__}(...)")
        self.schedule.validate()
        if self.protocol == "steps":
            changed = []
            if self.log_every is not None:
                changed.append("log_every")
            if self.order is not None:
                changed.append("order")
            if changed:
                raise ValueError(f"{', '.join(paper_flag(c) for c in changed)} appl{'ies' if len(changed) == 1 else 'y'} "
                                 "to --protocol paper only: add --protocol paper, or drop "
                                 f"{'it' if len(changed) == 1 else 'them'}")
        else:
            if self.log_every not in LOG_EVERY:
                raise ValueError(f"unknown --log-every {self.log_every!r}: choose epoch or episode")
            if self.order not in ORDERS:
                raise ValueError(f"unknown --order {self.order!r}: choose one of {', '.join(ORDERS)}")
            if self.order != "shuffle" and self.curriculum == "sgd" and self.estimator == "none":
                raise ValueError(f"--order {self.order} orders sgd's epochs by a draw from the score, and "
                                 "--estimator none gives no score: pick an estimator, or --order shuffle")

    def _validate_score(self) -> None:
        if self.curriculum != SCORE_CURRICULUM:
            if self.score is not None:
                raise ValueError(f"a score ({self.score!r}) drives --curriculum score only, and this run's "
                                 f"curriculum is {self.curriculum!r}: add --curriculum score, or drop --score "
                                 "(DoCL's own estimator is set with --estimator)")
            if self.prefer is not None:
                raise ValueError(f"--prefer applies to --curriculum score only (this run's is "
                                 f"{self.curriculum!r}): drop it")
            return
        if self.score is not None and self.score not in SELECTION_SCORES:
            raise ValueError(f"unknown score {self.score!r}: choose one of {', '.join(SELECTION_SCORES)}")
        if self.prefer not in PREFER:
            raise ValueError(f"unknown --prefer {self.prefer!r}: choose hard or easy")
        if self.score in ESTIMATORS and self.score not in (self.estimator, *self.log_estimators):
            raise ValueError(f"the score curriculum selects by the {self.score!r} estimator, which this run "
                             f"does not log: add it to --log-estimators, or pass --estimator {self.score}")

    def to_dict(self) -> dict[str, Any]:
        """The config as run.json stores it: the schedule under "schedule" (steps) or "paper" (paper)."""
        d = asdict(self)
        if isinstance(self.schedule, PaperSchedule):
            d["paper"] = d.pop("schedule")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        """A config from run.json. Runs made before a config held one schedule stored both, and a paper
        run's λ (`--lam`, `--lam-decay`) under "schedule": it is read from there."""
        known = {f.name for f in fields(cls)}
        paper = d.get("protocol") == "paper"
        steps_d, paper_d = d.get("schedule") or {}, d.get("paper") or {}
        d = {k: v for k, v in d.items() if k in known and k != "schedule"}
        if paper and "order" not in d:
            d["order"] = LEGACY_ORDER  # a run made before the order was a choice
        if paper:
            lam = {k: steps_d[k] for k in ("lam_start", "lam_decay") if k in steps_d}
            return cls(**d, schedule=PaperSchedule(**{**lam, **_known(paper_d, PaperSchedule)}))
        return cls(**d, schedule=Schedule(**_known(steps_d, Schedule)))


def _known(d: dict[str, Any], cls) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def paper_flag(name: str) -> str:
    """The CLI flag that sets a PaperSchedule field (switches are --no-NAME)."""
    default = getattr(PaperSchedule(), name, None)
    if isinstance(default, bool):
        return f"--{'no-' if default else ''}{name.replace('_', '-')}"
    return f"--{name.replace('_', '-')}"


# fields that may differ on resume: where the run computes, not what it computes
_RESUME_FREE = {"device", "checkpoint_every", "deterministic"}


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, old value, new value) for every field of two run.json config dicts that differs, nested
    fields as "schedule.lr". Both are read as `RunConfig.from_dict` reads them: fields missing from an
    older run's config count as their default, and a config that stored both schedules counts by its
    protocol's. Fields of where a run computes (device, checkpoints, determinism) are left out."""
    a, b = RunConfig.from_dict(old).to_dict(), RunConfig.from_dict(new).to_dict()
    return [d for d in _differences(a, b, "") if d[0] not in _RESUME_FREE]


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str) -> list[tuple[str, Any, Any]]:
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differences(x, y, f"{prefix}{key}.")
        elif x != y and not (isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)) and list(x) == list(y)):
            out.append((f"{prefix}{key}", x, y))
    return out
