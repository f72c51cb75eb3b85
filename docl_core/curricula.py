"""The five curricula (docs/design.md §2) behind one interface: `select(RoundState) -> Selection`.

| name    | selection at round t                                                      |
|---------|---------------------------------------------------------------------------|
| sgd     | all N samples in random order (plain mini-batch SGD: the paper's baseline) |
| random  | k_t uniform samples                                                       |
| spl     | the k_t smallest current losses (easy first)                              |
| mcl     | max (1/k) Σ_S ℓ̃_i + λ_t F̄(S): hard and diverse                            |
| docl-nr | max (1/k) Σ_S ã_i + λ_t F̄(S) over all N, deterministically (lazy greedy)   |
| docl    | pool of min(N, ⌈pool_factor·k_t⌉) drawn without replacement, p_i ∝ exp(z_i/τ) |
|         | with z the standardised scores; then the docl-nr objective inside the pool |
| score   | docl's selection with a ← ±(any logged score): `--score el2n --prefer hard` |

The objective, its scaling (weights min-max to [0, 1], F̄ a mean coverage in [0, 1], so λ means
the same in every round) and the maximisers live in `selection.py`. "DoCL-NR" read as "no random
subsample", deterministic (lazy greedy) is our own variant: with the public code's
`use_random_subsample` switch off the authors still sample, from p ∝ mod·p + centrality.
`sgd` ignores k_t and trains on every sample.

Under the `paper` protocol (`RoundState.sampling == "paper"`) every curriculum but `sgd` and
`random` goes through one draw, `_pick_paper`, and differs only in the score w it prefers
(`_recipe_score`) and how the pool is pruned (`_prune`): the same pool size k0, subset size
and schedule, so a comparison isolates the score. The ids come back in the selection's own
order, the order the trainer presents them in under `order="draw"` (the authors'): the
weighted draw's order (successive sampling: high p tends to come first), survivors of the
authors' prune in the order numpy's argpartition leaves them, survivors of any other prune in
draw order. Random's order is its uniform draw's (a random order); `sgd` under `draw` orders all
N by a weighted draw from the score (the order-only arm), else it is not asked.

| name    | w (p ∝ exp(s·(w − max w)))  | from the pool of k0 it keeps                              |
|---------|-----------------------------|-----------------------------------------------------------|
| random  | (none: k uniform samples)   |                                                           |
| docl    | a (the run's estimator)     | the top of mod·p + centrality (the authors' rule)          |
| mcl     | ℓ (hard first)              | the top of mod·p + centrality: hard and diverse            |
| spl     | −ℓ (easy first)             | the lowest losses, class-balanced (each class ~ its share) |
| docl-nr | a                           | no pool: k drawn from p ∝ mod·p + centrality (the authors' |
|         |                             | draw with `use_random_subsample` off)                      |

The estimator `none` makes docl's w constant: a uniform pool that centrality still prunes.

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
supplies `state.centrality`, the authors' rule top-k of mod·p_i + centrality_i) or "none" (λ
dropped: plain top-k). When F is needed
but `state.features` is None the curriculum falls back to "none" for that round (with a
warning) instead of failing: a loop that cannot provide embeddings still trains.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Optional

import torch

from . import selection as sel
from .config import PREFER, SAMPLE_SCORES, SCORE_CURRICULUM, SELECTION_SCORES
from .names import CURRICULA, CURRICULUM_COLORS, CURRICULUM_LABELS  # noqa: F401 (re-exported; no torch there)
from .recipe import sampling_probability

DIVERSITIES = ("facility", "centrality", "none")


@dataclass
class RoundState:
    """What a curriculum sees at the start of round t (all tensors on one device)."""

    t: int                                  # round index, 0-based
    k: int                                  # k_t, samples to select, 1 ≤ k ≤ N
    lam: float                              # λ_t, weight of the diversity term (units: see selection.py)
    temperature: float                      # τ of the DoCL pool draw, on standardised scores
    pool_factor: float                      # DoCL candidate pool = pool_factor · k_t samples (≥ 1)
    loss: torch.Tensor                      # (N,) current per-sample losses
    score: Optional[torch.Tensor]           # (N,) DoCL scores (the run's estimator)
    features: Optional[torch.Tensor]        # (N, D) penultimate embeddings, for F(S)
    generator: torch.Generator              # seeded; the only randomness allowed
    # the paper protocol's selection (protocol.py); the defaults give the steps protocol's
    pool: Optional[int] = None              # DoCL candidate pool k0; None: ⌈pool_factor·k⌉
    sampling: str = "standardized"          # DoCL pool draw: "standardized" p ∝ exp(z/τ) on standardised
                                            # scores; "paper" p ∝ exp((a − max a)/τ) on raw scores
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
    """Base: validates the state, picks indices (`_pick`), wraps them in a Selection."""

    name = "curriculum"
    needs_scores = False
    full_data = False                       # True: trains on all N every round (k_t ignored)
    uses_diversity = False                  # whether F (and so features) enters the selection
    default_method = "stochastic"           # facility-location maximiser unless `method` is given

    def __init__(self, diversity: str = "facility", method: Optional[str] = None, epsilon: float = 0.01):
        if diversity not in DIVERSITIES:
            raise ValueError(f"unknown diversity {diversity!r}: choose one of {', '.join(DIVERSITIES)}")
        if method is not None and method not in sel.METHODS:
            raise ValueError(f"unknown greedy method {method!r}: choose one of {', '.join(sel.METHODS)}")
        if not 0 < epsilon < 1:
            raise ValueError(f"epsilon must lie in (0, 1), got {epsilon}")
        self.diversity = diversity if self.uses_diversity else "none"
        self.method = method or self.default_method
        self.epsilon = epsilon

    @property
    def needs_features(self) -> bool:
        return self.diversity != "none"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(diversity={self.diversity!r}, method={self.method!r})"

    def select(self, state: RoundState) -> Selection:
        n, k = self._check(state)
        state = dataclasses.replace(state, k=k)                          # a plain int from here on
        p = None
        if state.sampling == "paper" and not self.full_data:
            idx, p = self._pick_paper(state, n)
        else:
            idx = self._pick(state, n)
        idx = idx.to(device=state.loss.device, dtype=torch.int64)
        return Selection(indices=idx, weights=torch.ones(idx.shape[0], dtype=torch.float32, device=idx.device),
                         probability=p)

    def _pick(self, state: RoundState, n: int) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------- the paper protocol's draw

    def _recipe_score(self, state: RoundState) -> Optional[torch.Tensor]:
        """(N,) what this curriculum prefers under the recipe (larger: more likely drawn); None: uniform."""
        return None

    def _pick_paper(self, state: RoundState, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The recipe's draw (docs/protocol.md), the same for every curriculum but its score w:
        p_i ∝ exp(s·(w_i − max w)) with s = 1/τ; a pool of k0 drawn from p without replacement,
        then `_prune` keeps k of it (without a random subsample: k drawn from p ∝ mod·p + centrality).
        Returns (k ids in the selection's own order, p (N,) float64)."""
        w = self._recipe_score(state)
        if w is None:  # uniform: the same pool and pruning, no score
            w = torch.zeros(n, dtype=torch.float64, device=state.loss.device)
        p = sampling_probability(w.to(torch.float64), 1.0 / state.temperature)
        if not self._random_subsample(state):
            if self._diversity(state) == "centrality" and state.centrality is not None:
                q = state.mod * p + state.centrality.to(p.device, p.dtype)
            else:
                q = p
            return sel.weighted_sample(q.clamp_min(1e-300).log(), state.k, state.generator).to(w.device), p
        k0 = min(n, max(state.k, state.pool if state.pool is not None else state.k))
        pool = sel.weighted_sample(w, k0, state.generator, state.temperature).to(w.device)  # p, without exp
        if k0 == state.k and not self._authors_prune(state):
            return pool, p
        return pool[self._prune(state, pool, w, p)], p

    def _authors_prune(self, state: RoundState) -> bool:
        return self._diversity(state) == "centrality" and state.centrality is not None

    def _random_subsample(self, state: RoundState) -> bool:
        return state.random_subsample

    def _prune(self, state: RoundState, pool: torch.Tensor, w: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Positions in `pool` of the k kept, in the order they are trained under `draw`: the top of
        mod·p + centrality in the order numpy's argpartition leaves them (the authors' rule, on
        the same values), or, in draw order, the facility-location objective's picks over the
        pool's features or the top of w without diversity."""
        diversity = self._diversity(state)
        if self._authors_prune(state):
            return sel.argpartition_top(state.mod * p[pool] + state.centrality.to(p.device, p.dtype)[pool], state.k)
        feats = state.features[pool] if state.features is not None else None
        if diversity == "facility" and feats is not None:
            keep = sel.maximize_facility(w[pool], feats, state.k, state.lam, self.method, state.generator,
                                         self.epsilon)
        else:
            keep = sel.top_k(w[pool], state.k)
        return torch.sort(keep).values                            # the draw's order among the kept

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

    def _diversity(self, state: RoundState) -> str:
        """The diversity used this round: "none" when features are missing (see module doc)."""
        if self.diversity == "centrality" and state.centrality is not None:
            return "centrality"  # the authors' centrality comes precomputed (paper protocol)
        if self.diversity != "none" and state.features is None:
            warnings.warn(f"{self.name}: no features in this round, selecting without diversity "
                          "(diversity='none')", RuntimeWarning, stacklevel=3)
            return "none"
        return self.diversity

    def _maximize(self, state: RoundState, w: torch.Tensor, features: Optional[torch.Tensor],
                  k: int) -> torch.Tensor:
        """max (1/k) Σ_S w̃ + λ F̄(S) over the rows given, by the configured diversity/method."""
        diversity = self._diversity(state)
        if diversity == "none" or features is None:
            return sel.top_k(w, k)
        if diversity == "centrality":
            return sel.modular_select(w, features, k, state.lam)
        return sel.maximize_facility(w, features, k, state.lam, self.method, state.generator, self.epsilon)


class RandomCurriculum(Curriculum):
    """k uniform samples without replacement (k = N: a plain epoch in random order)."""

    name = "random"

    def _pick(self, state, n):
        return torch.randperm(n, generator=state.generator, device=state.generator.device)[:state.k]

    def _pick_paper(self, state, n):
        """Under the recipe: k uniform samples (the ablation that isolates the score); p uniform."""
        return self._pick(state, n), torch.full((n,), 1.0 / n, dtype=torch.float64, device=state.loss.device)


class SGD(RandomCurriculum):
    """Plain mini-batch SGD: every sample, in a fresh random order (k_t is ignored: always N).

    The seed's Table 1 baseline ("random mini-batch SGD"); under the `steps` protocol it takes
    more gradient steps than the curricula, which follow k_t.
    """

    name = "sgd"
    full_data = True

    def select(self, state: RoundState) -> Selection:
        return super().select(dataclasses.replace(state, k=state.loss.shape[0]))

    def order(self, state: RoundState) -> Selection:
        """All N in the order of one weighted draw without replacement from p_i ∝ exp(s·(a_i − max a))
        (s = 1/τ, a = state.score; the paper protocol's DoCL draw, over all N and without a prune):
        the order-only arm, DoCL's order with none of its selection. p (N,) float64 comes along."""
        if state.score is None:
            raise ValueError("sgd ordered by a draw needs scores in state.score: measure them first")
        sel.check_values(state.score, "scores")
        n = state.score.shape[0]
        w = state.score.to(torch.float64)
        ids = sel.weighted_sample(w, n, state.generator, state.temperature).to(state.score.device)
        return Selection(indices=ids, weights=torch.ones(n, dtype=torch.float32, device=ids.device),
                         probability=sampling_probability(w, 1.0 / state.temperature))


class SPL(Curriculum):
    """Self-paced learning: the k smallest current losses (easy first; the schedule grows k)."""

    name = "spl"

    def _pick(self, state, n):
        return sel.top_k(state.loss, state.k, largest=False)

    def _recipe_score(self, state):
        return -state.loss.to(torch.float64)                      # easy (low loss) first

    def _random_subsample(self, state):
        return True

    def _authors_prune(self, state):
        return False

    def _prune(self, state, pool, w, p):
        """The pool's k lowest losses, class-balanced: each class keeps about its share of the
        training set (given labels), as SPL is usually run, so easy classes cannot take over.
        Kept in draw order: a pass sorted by loss would run the easiest samples first."""
        if state.labels is None:
            keep = sel.top_k(state.loss[pool], state.k, largest=False)
        else:
            keep = sel.class_balanced_bottom_k(state.loss[pool], state.labels[pool], state.k,
                                               sel.class_shares(state.labels))
        return torch.sort(keep).values


class MCL(Curriculum):
    """Minimax curriculum: hard (large loss) and diverse, max (1/k) Σ ℓ̃ + λ_t F̄(S)."""

    name = "mcl"
    uses_diversity = True

    def _pick(self, state, n):
        return self._maximize(state, state.loss, state.features, state.k)

    def _recipe_score(self, state):
        return state.loss.to(torch.float64)                       # hard (high loss) first

    def _random_subsample(self, state):
        return True


class DoCLNR(Curriculum):
    """DoCL without the random pool: max (1/k) Σ ã + λ_t F̄(S) over all N; lazy greedy by default,
    so the answer is a function of the scores and features alone."""

    name = "docl-nr"
    needs_scores = True
    uses_diversity = True
    default_method = "lazy"

    def _pick(self, state, n):
        return self._maximize(state, state.score, state.features, state.k)

    def _recipe_score(self, state):
        return state.score

    def _random_subsample(self, state):
        return False                                              # the authors' draw with the switch off


class DoCL(Curriculum):
    """DoCL: a pool of min(N, ⌈pool_factor·k⌉) samples drawn without replacement with
    p_i ∝ exp(z_i/τ) (z = standardised scores), then the DoCL-NR objective inside the pool
    (w̃ scaled and F̄ averaged over the pool)."""

    name = "docl"
    needs_scores = True
    uses_diversity = True

    def _pick(self, state, n):
        pf = float(state.pool_factor)
        if not math.isfinite(pf) or pf < 1:
            raise ValueError(f"pool_factor must be a finite number ≥ 1, got {state.pool_factor}")
        m = min(n, max(state.k, math.ceil(pf * state.k)))
        pool = sel.weighted_sample(sel.standardize(state.score), m, state.generator, state.temperature)
        pool = pool.to(state.score.device)
        feats = state.features[pool] if state.features is not None else None
        return pool[self._maximize(state, state.score[pool], feats, state.k)]

    def _recipe_score(self, state):
        return state.score


class ScoreCurriculum(DoCL):
    """DoCL's selection (pool, pruning, schedule; the paper protocol's draw) driven by any logged
    score, hard or easy first: state.score holds the raw values of `score_name`, oriented here."""

    name = SCORE_CURRICULUM

    def __init__(self, diversity: str = "facility", method: Optional[str] = None, epsilon: float = 0.01,
                 score: Optional[str] = None, prefer: str = "hard"):
        super().__init__(diversity=diversity, method=method, epsilon=epsilon)
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
                f"diversity={self.diversity!r})")

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


def make_curriculum(name: str, diversity: str = "facility", **opts) -> Curriculum:
    """Build a curriculum by name. opts: method ("stochastic" | "lazy" | "greedy"; default
    stochastic, lazy for docl-nr) and epsilon (stochastic greedy's ε); for "score", also score
    (config.SELECTION_SCORES; None: the run's estimator) and prefer ("hard" | "easy"). Random
    and SPL ignore `diversity` (their needs_features is False)."""
    key = str(name).lower()
    if key not in _CLASSES:
        raise ValueError(f"unknown curriculum {name!r}: choose one of {', '.join((*CURRICULA, SCORE_CURRICULUM))}")
    allowed = {"method", "epsilon"} | ({"score", "prefer"} if key == SCORE_CURRICULUM else set())
    unknown = set(opts) - allowed
    if unknown:
        raise ValueError(f"unknown curriculum options {sorted(unknown)}: use {', '.join(sorted(allowed))}")
    return _CLASSES[key](diversity=diversity, **opts)
