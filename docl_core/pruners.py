"""How a curriculum keeps k of its candidates: the pruner in curricula.py's composition
(a score, the protocol's sampler from samplers.py, and one of these).

| pruner       | curricula                      | keeps k of the candidates                                 |
|--------------|--------------------------------|-----------------------------------------------------------|
| `Objective`  | mcl, docl-nr, docl, score;     | max (1/k) Σ_S w̃ + λ F̄(S) (selection.py): facility location |
|              | random and spl without F       | by greedy, the centrality proxy, or the top-k of w (F off) |
|              |                                | on the recipe's pool with the authors' centrality: their   |
|              |                                | rule, the top of mod·p + centrality                        |
| `LowestLoss` | spl                            | the top-k of w = −ℓ; on the recipe's pool the lowest losses |
|              |                                | class-balanced (each class about its share), as SPL is run |

A pruner answers two questions, one per sampler: `maximize` (the steps protocol: the objective over
the ground set, positions in pick order) and `prune` (the paper protocol's pool: positions in any
order but the authors' rule's, which keeps the order numpy's argpartition leaves; the sampler puts
the others back into draw order). Neither draws anything but the stochastic greedy's uniforms, from
`state.generator`.

When F is needed but `state.features` is None the pruner falls back to diversity "none" for that
round (with a warning) instead of failing: a loop that cannot provide embeddings still trains.
"""
from __future__ import annotations

import warnings
from typing import Optional

import torch

from . import selection as sel

# measured: rounds 0 and 1 of `docl run --dataset mnist1d-100k` (steps), benchmarks/README.md
SLOW_NOTE = ("expect minutes per round on a CPU (169 s for 40,000 candidates, 236 s for 48,000, on one core); "
             "--diversity none (the top scores) or centrality select in under a second")


class Objective:
    """max (1/k) Σ_S w̃ + λ_t F̄(S) with F = `diversity` ("facility" | "centrality" | "none"),
    facility location maximised by `method` (selection.METHODS) with stochastic greedy's ε."""

    def __init__(self, curriculum: str, diversity: str = "facility", method: str = "stochastic",
                 epsilon: float = 0.01):
        self.curriculum, self.diversity, self.method, self.epsilon = curriculum, diversity, method, epsilon
        self.slow_said = False  # the chunked route's cost is said once per run

    @property
    def needs_features(self) -> bool:
        return self.diversity != "none"

    def diversity_for(self, state) -> str:
        """The diversity used this round: "none" when features are missing (see module doc)."""
        if self.diversity == "centrality" and state.centrality is not None:
            return "centrality"  # the authors' centrality comes precomputed (paper protocol)
        if self.diversity != "none" and state.features is None:
            warnings.warn(f"{self.curriculum}: no features in this round, selecting without diversity "
                          "(diversity='none')", RuntimeWarning, stacklevel=5)
            return "none"
        return self.diversity

    def authors(self, state) -> bool:
        """Whether the authors' rule prunes the recipe's pool (their centrality is in the state)."""
        return self.diversity_for(state) == "centrality" and state.centrality is not None

    def maximize(self, state, w: torch.Tensor, features: Optional[torch.Tensor], k: int) -> torch.Tensor:
        """Positions of the k kept among the rows given (w (m,), features (m, D) or None), in pick order."""
        diversity = self.diversity_for(state)
        if diversity == "none" or features is None:
            return sel.top_k(w, k)
        if diversity == "centrality":
            return sel.modular_select(w, features, k, state.lam)
        return self._facility(state, w, features, k)

    def prune(self, state, pool: torch.Tensor, w: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Positions in `pool` (k0,) of the k kept: the top of mod·p + centrality in the order numpy's
        argpartition leaves them (the authors' rule, on the same values), else the facility-location
        objective's picks over the pool's features or the top of w without diversity. w, p: (N,)."""
        diversity = self.diversity_for(state)
        if self.authors(state):
            return sel.argpartition_top(state.mod * p[pool] + state.centrality.to(p.device, p.dtype)[pool], state.k)
        feats = state.features[pool] if state.features is not None else None
        if diversity == "facility" and feats is not None:
            return self._facility(state, w[pool], feats, state.k)
        return sel.top_k(w[pool], state.k)

    def _facility(self, state, w: torch.Tensor, features: torch.Tensor, k: int) -> torch.Tensor:
        """Facility location by `method`; the first time its n×n similarities exceed selection's
        memory budget (the chunked route: rows recomputed as the greedy asks for them), a warning
        says what that costs and what selects fast instead."""
        n = len(w)
        if not self.slow_said and sel.facility_route(n, features.dtype) == "chunked":
            self.slow_said = True
            warnings.warn(f"{self.curriculum}: facility location over {n:,} candidates exceeds the "
                          f"{sel.MEMORY_BUDGET_BYTES / 2**30:g} GiB similarity budget and runs chunked: {SLOW_NOTE}",
                          RuntimeWarning, stacklevel=4)
        return sel.maximize_facility(w, features, k, state.lam, self.method, state.generator, self.epsilon)


class LowestLoss(Objective):
    """SPL's: the objective without F (top-k of w = −ℓ) over a ground set; on the recipe's pool the
    k lowest losses, class-balanced: each class keeps about its share of the training set (given
    labels), as SPL is usually run, so easy classes cannot take over."""

    def __init__(self, curriculum: str):
        super().__init__(curriculum, diversity="none")

    def authors(self, state) -> bool:
        return False

    def prune(self, state, pool: torch.Tensor, w: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        if state.labels is None:
            return sel.top_k(state.loss[pool], state.k, largest=False)
        return sel.class_balanced_bottom_k(state.loss[pool], state.labels[pool], state.k,
                                           sel.class_shares(state.labels))
