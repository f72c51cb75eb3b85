"""The curricula (docs/design.md §2) behind one interface: `select(RoundState) -> Selection`.

A curriculum is a composition of three parts, and only the first is each curriculum's own:
- a **score** `w` (N,), what ranks the samples (larger: preferred; `Curriculum.score`);
- a **pruner** (pruners.py), how k are kept of the candidates: the objective
  max (1/k) Σ_S w̃ + λ_t F̄(S) (selection.py), the authors' centrality rule, or SPL's lowest losses;
- a **sampler** (samplers.py), how the candidates are drawn and in which order the selection comes
  back: the protocol's choice, `make_curriculum(name, protocol="steps" | "paper")`.

| name    | score w         | pruner        | steps (StepsSampler)            | paper (PaperSampler: the recipe)       |
|---------|-----------------|---------------|---------------------------------|----------------------------------------|
| sgd     | none            | none          | all N, in a random order        | all N (the trainer's); `order`: all N  |
|         |                 |               |                                 | in one weighted draw's order from a    |
| random  | none            | none          | k_t uniform samples             | k_t uniform samples (p uniform)        |
| spl     | −ℓ (easy first) | `LowestLoss`  | the k_t smallest losses         | pool of k0 from p, its lowest losses   |
|         |                 |               |                                 | class-balanced (each class ~ its share)|
| mcl     | ℓ (hard first)  | `Objective`   | the objective over all N        | pool of k0 from p, pruned              |
| docl-nr | a (estimator)   | `Objective`,  | the objective over all N,       | no pool: k drawn from q ∝ mod·p +      |
|         |                 | lazy greedy   | deterministically               | centrality (the authors' switch off)   |
| docl    | a               | `Objective`   | pool of ⌈pool_factor·k_t⌉ from  | pool of k0 from p, pruned (random      |
|         |                 |               | p ∝ exp(z/τ), z the standardised| subsample off: as docl-nr)             |
|         |                 |               | a; the objective inside it      |                                        |
| score   | ±(any score)    | as docl       | as docl                         | as docl                                |

Under `paper`, p ∝ exp((w − max w)/τ) on the raw score, and "pruned" is the authors' rule (the top
of mod·p + centrality, in the order numpy's argpartition leaves it) when their centrality is in the
state, else the objective; the kept come back in the draw's own order (successive sampling: high p
tends to come first), the order the trainer presents them in under `order="draw"` (the authors').
The same pool size k0, subset size and schedule for every curriculum, so a comparison isolates
the score. "DoCL-NR" read as "no random subsample", deterministic (lazy greedy) under `steps`, is
our own variant: with the public code's `use_random_subsample` switch off the authors still sample,
from p ∝ mod·p + centrality. The estimator `none` makes docl's w constant: a uniform pool that
centrality still prunes.

`score` is docl with another score in a's place (config.SELECTION_SCORES: the loss, EL2N, GraNd,
margin, entropy, forgetting events, AUM, data-map confidence/variability/correctness, or an
estimator), oriented so that the preferred end is large: w = +score when the score's "hard" end
(config.SAMPLE_SCORES) is the preferred one, −score otherwise. Like SPL's and MCL's losses, the
score enters the paper protocol's draw raw (p ∝ exp(s·(w − max w))): a score of small range draws
a nearly uniform pool, which the pruning then decides; under the steps protocol it is
standardised, as docl's is. A sample without a value yet (AUM before its first presentation) gets
the most preferred value, as the byproduct estimator's unseen samples do: explore it.

`diversity` picks F: "facility" (facility location, greedy), "centrality" (a modular proxy:
top-k of w̃ + λ (1 + mean cosine)/2 with our cosine-Gram centrality, or, when the paper protocol
supplies `state.centrality`, the authors' rule) or "none" (λ dropped: plain top-k). When F is
needed but `state.features` is None the curriculum falls back to "none" for that round (with a
warning) instead of failing: a loop that cannot provide embeddings still trains.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch

from . import selection as sel
from .config import PREFER, SAMPLE_SCORES, SCORE_CURRICULUM, SELECTION_SCORES
from .names import CURRICULA, CURRICULUM_COLORS, CURRICULUM_LABELS  # noqa: F401 (re-exported; no torch there)
from .pruners import LowestLoss, Objective
from .samplers import make_sampler, recipe_order, uniform

DIVERSITIES = ("facility", "centrality", "none")


@dataclass
class RoundState:
    """What a curriculum sees at the start of round t (all tensors on one device)."""

    t: int                                  # round index, 0-based
    k: int                                  # k_t, samples to select, 1 ≤ k ≤ N
    lam: float                              # λ_t, weight of the diversity term (units: see selection.py)
    temperature: float                      # τ of the pool draw (steps: on standardised scores; paper: 1/scale)
    pool_factor: float                      # DoCL candidate pool = pool_factor · k_t samples (≥ 1)
    loss: torch.Tensor                      # (N,) current per-sample losses
    score: Optional[torch.Tensor]           # (N,) DoCL scores (the run's estimator)
    features: Optional[torch.Tensor]        # (N, D) penultimate embeddings, for F(S)
    generator: torch.Generator              # seeded; the only randomness allowed
    # the paper protocol's selection (protocol.py); the defaults give the steps protocol's
    pool: Optional[int] = None              # the recipe's candidate pool k0; None: k
    centrality: Optional[torch.Tensor] = None  # (N,) the authors' centrality (sums to 1); with
                                            # diversity "centrality" it replaces the feature proxy
    mod: float = 1.0                        # weight of the sampling probability against centrality
    random_subsample: bool = True           # paper DoCL: draw the pool from p, then keep the top of
                                            # mod·p + centrality; False: draw k from p ∝ mod·p + centrality
    labels: Optional[torch.Tensor] = None   # (N,) given labels (classification): SPL's class balance


@dataclass
class Selection:
    indices: torch.Tensor                   # (k,) int64, distinct, in [0, N)
    weights: torch.Tensor                   # (k,) float32, 1.0 unless the curriculum reweights
    probability: Optional[torch.Tensor] = None  # (N,) the recipe's sampling distribution p over all N
                                            # (paper protocol; uniform for random), None otherwise


class Curriculum:
    """A score (`score`: what ranks the samples), a pruner (`pruner`, pruners.py: how k are kept) and
    the protocol's sampler (`sampler`, samplers.py: how the candidates are drawn, and the order the
    selection comes back in). `select` validates the state and wraps the sampler's ids."""

    name = "curriculum"
    needs_scores = False
    full_data = False                       # True: trains on all N every round (k_t ignored)
    uses_diversity = False                  # whether F (and so features) enters the selection
    default_method = "stochastic"           # facility-location maximiser unless `method` is given
    pool = "recipe"                         # the candidates: "recipe": all N under steps, the recipe's pool
                                            # under paper | "random": a random pool under both (paper: unless
                                            # the random subsample is off) | "none": never a pool

    def __init__(self, diversity: str = "facility", method: Optional[str] = None, epsilon: float = 0.01,
                 protocol: str = "steps"):
        if diversity not in DIVERSITIES:
            raise ValueError(f"unknown diversity {diversity!r}: choose one of {', '.join(DIVERSITIES)}")
        if method is not None and method not in sel.METHODS:
            raise ValueError(f"unknown greedy method {method!r}: choose one of {', '.join(sel.METHODS)}")
        if not 0 < epsilon < 1:
            raise ValueError(f"epsilon must lie in (0, 1), got {epsilon}")
        self.sampler = make_sampler(protocol)
        self.pruner = self._pruner(diversity if self.uses_diversity else "none", method or self.default_method,
                                   epsilon)

    def _pruner(self, diversity: str, method: str, epsilon: float) -> Objective:
        return Objective(self.name, diversity, method, epsilon)

    @property
    def protocol(self) -> str:
        return self.sampler.name

    @property
    def diversity(self) -> str:
        return self.pruner.diversity

    @property
    def method(self) -> str:
        return self.pruner.method

    @property
    def epsilon(self) -> float:
        return self.pruner.epsilon

    @property
    def needs_features(self) -> bool:
        return self.pruner.needs_features

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(diversity={self.diversity!r}, method={self.method!r}, "
                f"protocol={self.protocol!r})")

    def score(self, state: RoundState) -> Optional[torch.Tensor]:
        """(N,) float64, what this curriculum prefers (larger: preferred); None: no preference (uniform)."""
        return None

    def select(self, state: RoundState) -> Selection:
        n, k = self._check(state)
        state = dataclasses.replace(state, k=k)                          # a plain int from here on
        idx, p = self.sampler.choose(self, state, n)
        idx = idx.to(device=state.loss.device, dtype=torch.int64)
        return Selection(indices=idx, weights=torch.ones(idx.shape[0], dtype=torch.float32, device=idx.device),
                         probability=p)

    def _check(self, state: RoundState) -> tuple[int, int]:
        """Validate the state for this curriculum; returns (N, k)."""
        sel.check_values(state.loss, "losses")
        n = state.loss.shape[0]
        k = sel.check_k(state.k, n)
        if self.needs_scores:
            if state.score is None:
                raise ValueError(f"curriculum {self.name!r} needs DoCL scores but state.score is None: "
                                 "compute scores before selecting")
            sel.check_values(state.score, "scores")
            if state.score.shape[0] != n:
                raise ValueError(f"{state.score.shape[0]} scores for {n} losses: pass one score per sample")
        if self.needs_features and state.features is not None:
            sel.check_features(state.features, n)
        return n, k


class RandomCurriculum(Curriculum):
    """k uniform samples without replacement (no score: the sampler's uniform draw, under both protocols;
    under the recipe it is the ablation that isolates the score)."""

    name = "random"


class SGD(RandomCurriculum):
    """Plain mini-batch SGD: every sample, in a fresh random order (k_t is ignored: always N).

    The seed's Table 1 baseline ("random mini-batch SGD"); under the `steps` protocol it takes
    more gradient steps than the curricula, which follow k_t.
    """

    name = "sgd"
    full_data = True

    def select(self, state: RoundState) -> Selection:
        n = state.loss.shape[0]
        state = dataclasses.replace(state, k=n)
        self._check(state)
        idx = uniform(state, n).to(device=state.loss.device, dtype=torch.int64)
        return Selection(indices=idx, weights=torch.ones(n, dtype=torch.float32, device=idx.device))

    def order(self, state: RoundState) -> Selection:
        """All N in the order of one weighted draw without replacement from p_i ∝ exp(s·(a_i − max a))
        (s = 1/τ, a = state.score; the paper protocol's DoCL draw, over all N and without a prune):
        the order-only arm, DoCL's order with none of its selection. p (N,) float64 comes along."""
        if state.score is None:
            raise ValueError("sgd ordered by a draw needs scores in state.score: measure them first")
        sel.check_values(state.score, "scores")
        ids, p = recipe_order(state)
        return Selection(indices=ids, weights=torch.ones(len(ids), dtype=torch.float32, device=ids.device),
                         probability=p)


class SPL(Curriculum):
    """Self-paced learning: easy first, w = −ℓ (the schedule grows k). Steps: the k smallest losses;
    paper: the recipe's pool, pruned to its lowest losses class by class (`pruners.LowestLoss`)."""

    name = "spl"

    def _pruner(self, diversity, method, epsilon):
        return LowestLoss(self.name)

    def score(self, state):
        return -state.loss.to(torch.float64)                      # easy (low loss) first


class MCL(Curriculum):
    """Minimax curriculum: hard (large loss) and diverse, max (1/k) Σ ℓ̃ + λ_t F̄(S)."""

    name = "mcl"
    uses_diversity = True

    def score(self, state):
        return state.loss.to(torch.float64)                       # hard (high loss) first


class DoCLNR(Curriculum):
    """DoCL without the random pool: max (1/k) Σ ã + λ_t F̄(S) over all N; lazy greedy by default,
    so the answer is a function of the scores and features alone (paper: the authors' draw with
    `use_random_subsample` off)."""

    name = "docl-nr"
    needs_scores = True
    uses_diversity = True
    default_method = "lazy"
    pool = "none"

    def score(self, state):
        return state.score.to(torch.float64)


class DoCL(Curriculum):
    """DoCL: a random pool drawn from the scores (steps: min(N, ⌈pool_factor·k⌉) with p_i ∝ exp(z_i/τ),
    z the standardised scores; paper: the recipe's pool), then the DoCL-NR objective inside the pool
    (w̃ scaled and F̄ averaged over the pool)."""

    name = "docl"
    needs_scores = True
    uses_diversity = True
    pool = "random"

    def score(self, state):
        return state.score.to(torch.float64)


class ScoreCurriculum(DoCL):
    """DoCL's selection (pool, pruning, schedule; the paper protocol's draw) driven by any logged
    score, hard or easy first: state.score holds the raw values of `score_name`, oriented here."""

    name = SCORE_CURRICULUM

    def __init__(self, diversity: str = "facility", method: Optional[str] = None, epsilon: float = 0.01,
                 protocol: str = "steps", score: Optional[str] = None, prefer: str = "hard"):
        super().__init__(diversity=diversity, method=method, epsilon=epsilon, protocol=protocol)
        if score is not None and score not in SELECTION_SCORES:
            raise ValueError(f"unknown score {score!r}: choose one of {', '.join(SELECTION_SCORES)}")
        if prefer not in PREFER:
            raise ValueError(f"unknown prefer {prefer!r}: choose hard or easy")
        self.score_name, self.prefer = score, prefer  # score None: the run's estimator

    @property
    def sign(self) -> float:
        """+1 when large values are preferred: the score's hard end (a: large) under prefer="hard"."""
        hard_high = SAMPLE_SCORES.get(self.score_name, "high") == "high"  # estimators: large a
        return 1.0 if hard_high == (self.prefer == "hard") else -1.0

    def __repr__(self) -> str:
        return (f"ScoreCurriculum(score={self.score_name or 'estimator'!r}, prefer={self.prefer!r}, "
                f"diversity={self.diversity!r}, protocol={self.protocol!r})")

    def select(self, state: RoundState) -> Selection:
        if state.score is None:
            raise ValueError(f"curriculum 'score' needs the values of {self.score_name or 'the estimator'} "
                             "in state.score: measure them before selecting")
        w = self.sign * state.score.to(torch.float64)
        finite = torch.isfinite(w)
        if not bool(finite.any()):
            raise ValueError(f"score {self.score_name or 'estimator'!r} has no finite value this round "
                             "(a regression run has no margin, AUM or data map): choose another --score")
        if not bool(finite.all()):  # not yet measured (AUM before a presentation): explore it
            w = torch.where(finite, w, w[finite].max())
        return super().select(dataclasses.replace(state, score=w))


_CLASSES = {c.name: c for c in (SGD, RandomCurriculum, SPL, MCL, DoCLNR, DoCL, ScoreCurriculum)}


def make_curriculum(name: str, diversity: str = "facility", protocol: str = "steps", **opts) -> Curriculum:
    """Build a curriculum by name for a protocol ("steps" | "paper": it picks the sampler, samplers.py).
    opts: method ("stochastic" | "lazy" | "greedy"; default stochastic, lazy for docl-nr) and epsilon
    (stochastic greedy's ε); for "score", also score (config.SELECTION_SCORES; None: the run's
    estimator) and prefer ("hard" | "easy"). Random and SPL ignore `diversity` (their needs_features
    is False)."""
    key = str(name).lower()
    if key not in _CLASSES:
        raise ValueError(f"unknown curriculum {name!r}: choose one of {', '.join((*CURRICULA, SCORE_CURRICULUM))}")
    allowed = {"method", "epsilon"} | ({"score", "prefer"} if key == SCORE_CURRICULUM else set())
    unknown = set(opts) - allowed
    if unknown:
        raise ValueError(f"unknown curriculum options {sorted(unknown)}: use {', '.join(sorted(allowed))}")
    return _CLASSES[key](diversity=diversity, protocol=protocol, **opts)
