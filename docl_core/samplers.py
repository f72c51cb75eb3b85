"""How a curriculum's candidates are drawn, and in which order its selection comes back: the
protocol's choice. curricula.py composes a score (what ranks the samples: w, larger preferred),
a pruner (pruners.py: how k are kept of the candidates) and the sampler its protocol names here.

| sampler        | protocol | candidates                                          | order of the k kept            |
|----------------|----------|-----------------------------------------------------|--------------------------------|
| `StepsSampler` | steps    | all N; or, for a curriculum with a random pool      | the pruner's: greedy's pick    |
|                |          | (docl, score), ⌈pool_factor·k⌉ drawn without        | order, or best first           |
|                |          | replacement with p ∝ exp(z/τ), z the standardised w |                                |
| `PaperSampler` | paper    | the recipe's draw (docs/protocol.md), p ∝           | the draw's own order (high p   |
|                |          | exp((w − max w)/τ): a pool of k0 from p (spl, mcl;  | tends to come first); the      |
|                |          | docl and score with the random subsample), or k     | authors' prune: the order      |
|                |          | drawn from q ∝ mod·p + centrality (docl-nr; docl    | numpy's argpartition leaves    |
|                |          | and score with the switch off)                      |                                |

Without a score (random) both draw k uniform samples, in the uniform draw's order. `choose` returns
(ids (k,), p (N,) float64 or None): p is the recipe's sampling distribution, which the trainer
turns into rounds.parquet's spread columns (uniform for random under `paper`, None under `steps`).
Every draw comes from `state.generator`, in a fixed order: a run's selections are a function of
its seed and its states.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from . import selection as sel
from .recipe import sampling_probability


def uniform(state, n: int) -> torch.Tensor:
    """k of n uniformly without replacement, in the draw's order (k = n: a random order). (k,)"""
    return torch.randperm(n, generator=state.generator, device=state.generator.device)[:state.k]


def recipe_order(state) -> tuple[torch.Tensor, torch.Tensor]:
    """All N in the order of one weighted draw without replacement from p_i ∝ exp((a_i − max a)/τ)
    (a = state.score): the recipe's draw over all N, without a prune. → (ids (N,), p (N,) float64)"""
    w = state.score.to(torch.float64)
    ids = sel.weighted_sample(w, w.shape[0], state.generator, state.temperature).to(state.score.device)
    return ids, sampling_probability(w, 1.0 / state.temperature)


class StepsSampler:
    """The `steps` protocol: each curriculum's classic definition, its pruner over all N, or over a
    pool drawn from the standardised score (docl and score: DoCL's random pool)."""

    name = "steps"

    def choose(self, curriculum, state, n: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        w = curriculum.score(state)
        if w is None:
            return uniform(state, n), None
        pruner = curriculum.pruner
        if curriculum.pool != "random":
            return pruner.maximize(state, w, state.features, state.k), None
        pf = float(state.pool_factor)
        if not math.isfinite(pf) or pf < 1:
            raise ValueError(f"pool_factor must be a finite number ≥ 1, got {state.pool_factor}")
        m = min(n, max(state.k, math.ceil(pf * state.k)))
        pool = sel.weighted_sample(sel.standardize(w), m, state.generator, state.temperature).to(w.device)
        feats = state.features[pool] if state.features is not None else None
        return pool[pruner.maximize(state, w[pool], feats, state.k)], None


class PaperSampler:
    """The `paper` protocol: the recipe's draw, the same for every curriculum but its score w, so a
    comparison isolates the score (the same pool size k0, subset size and schedule)."""

    name = "paper"

    def choose(self, curriculum, state, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = curriculum.score(state)
        if w is None:  # random: k uniform samples (the ablation that isolates the score), p uniform
            return uniform(state, n), torch.full((n,), 1.0 / n, dtype=torch.float64, device=state.loss.device)
        p = sampling_probability(w, 1.0 / state.temperature)                  # (N,) float64
        if not self.pooled(curriculum, state):
            return self._draw_k(curriculum, state, p).to(w.device), p
        k0 = min(n, max(state.k, state.pool if state.pool is not None else state.k))
        pool = sel.weighted_sample(w, k0, state.generator, state.temperature).to(w.device)  # p, without exp
        authors = curriculum.pruner.authors(state)
        if k0 == state.k and not authors:
            return pool, p
        keep = curriculum.pruner.prune(state, pool, w, p)
        return pool[keep if authors else torch.sort(keep).values], p           # sorted: the draw's order

    @staticmethod
    def pooled(curriculum, state) -> bool:
        """A pool of k0, then the pruner: spl and mcl always (as the authors' DoCL), docl and score
        unless the random subsample is off (the authors' switch), docl-nr never."""
        if curriculum.pool == "recipe":
            return True
        return curriculum.pool == "random" and state.random_subsample

    @staticmethod
    def _draw_k(curriculum, state, p: torch.Tensor) -> torch.Tensor:
        """Without a pool: k drawn from q ∝ mod·p + centrality (p alone without the authors' centrality)."""
        if curriculum.pruner.diversity_for(state) == "centrality" and state.centrality is not None:
            q = state.mod * p + state.centrality.to(p.device, p.dtype)
        else:
            q = p
        return sel.weighted_sample(q.clamp_min(1e-300).log(), state.k, state.generator)


SAMPLERS = {"steps": StepsSampler, "paper": PaperSampler}


def make_sampler(protocol: str) -> StepsSampler | PaperSampler:
    """The sampler of a protocol: "steps" or "paper" (config.RunConfig.protocol)."""
    if protocol not in SAMPLERS:
        raise ValueError(f"unknown protocol {protocol!r}: choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[protocol]()
