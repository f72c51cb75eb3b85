"""Subset selection: facility location, (stochastic / lazy) greedy, centrality, weighted sampling.

Every curriculum that trades "good samples" against "diverse samples" maximises one objective
over sets S ⊆ V of size k (DESIGN.md §2):

    J(S) = (1/k) Σ_{i∈S} w̃_i  +  λ · F̄(S),        F̄(S) = (1/n) Σ_{i∈V} max_{j∈S} s_ij

- w̃ are the modular weights (losses for MCL, DoCL scores for DoCL) min-max scaled to [0, 1]
  over the ground set of the call (`scale_weights`).
- s_ij = (1 + cos(x_i, x_j)) / 2 ∈ [0, 1] on L2-normalised features: non-negative, so F is
  monotone submodular with F(∅) = 0, and a row mean of s is exactly F̄({j}), which is what the
  authors' modular "centrality" proxy measures (`centrality`, `modular_select`).

Why this scaling (it lives here and nowhere else): both terms of J lie in [0, 1] whatever n, k,
the loss scale or the score estimator, so λ reads the same in every round and on every
dataset: λ = 1 weighs "average quality of S" and "how well S covers V" equally. Dividing the
modular term by k (constant for a fixed k) keeps J monotone submodular, so greedy keeps its
(1 − 1/e) guarantee, and makes a greedy step compare w̃_j/k with λ times a coverage gain that
also sums to at most 1 over the k steps.

Nothing here forms the n×n similarity matrix: greedy keeps the coverage vector (n,) and
computes candidate similarities (c, n) in chunks of at most `CHUNK_ELEMENTS`, so n = 50,000 runs
in bounded memory. The generator passed in is the only randomness; all functions return int64
indices, distinct, in [0, n), on the device of their inputs.
"""
from __future__ import annotations

import math
import operator
from typing import Optional

import torch

CHUNK_ELEMENTS = 1 << 18   # similarity entries computed at once: 256k floats = 1 MiB, cache-sized
COL_BLOCK = 4096           # ground-set rows per block
METHODS = ("stochastic", "lazy", "greedy")   # facility-location maximisers (`maximize_facility`)

# ----------------------------------------------------------------------------- checks


def check_k(k: int, n: int) -> int:
    """Raise ValueError unless k is an integer (Python or numpy/torch scalar) with 1 ≤ k ≤ n."""
    if isinstance(k, bool):
        raise ValueError(f"k must be an integer number of samples, got {k!r}")
    try:
        k = operator.index(k)
    except TypeError:
        raise ValueError(f"k must be an integer number of samples, got {k!r}") from None
    if k < 1:
        raise ValueError(f"k={k} selects nothing: choose k ≥ 1")
    if k > n:
        raise ValueError(f"k={k} exceeds the n={n} samples: lower k")
    return k


def check_values(v: torch.Tensor, what: str = "weights") -> torch.Tensor:
    """Raise ValueError unless v is a finite 1-D float tensor with at least one entry."""
    if not isinstance(v, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor, got {type(v).__name__}")
    if v.ndim != 1 or v.numel() == 0:
        raise ValueError(f"{what} must have shape (n,) with n ≥ 1, got {tuple(v.shape)}")
    if v.is_floating_point() and not bool(torch.isfinite(v).all()):
        raise ValueError(f"{what} contain NaN or inf: stop or fix the run before selecting")
    return v


def check_features(features: torch.Tensor, n: int) -> torch.Tensor:
    """Raise ValueError unless features is a finite (n, D) tensor."""
    if not isinstance(features, torch.Tensor):
        raise ValueError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if features.ndim != 2:
        raise ValueError(f"features must have shape (n, D), got {tuple(features.shape)}")
    if features.shape[0] != n:
        raise ValueError(f"features have {features.shape[0]} rows but there are {n} samples: "
                         "pass one feature row per sample")
    if not bool(torch.isfinite(features).all()):
        raise ValueError("features contain NaN or inf: the model diverged or the inputs are bad")
    return features


def _check_lam(lam: float) -> float:
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"λ (lam) must be a finite number ≥ 0, got {lam}")
    return lam


# ----------------------------------------------------------------------------- scaling


def scale_weights(w: Optional[torch.Tensor], n: int) -> torch.Tensor:
    """Min-max scale modular weights to [0, 1] over the ground set; None → zeros. (n,) float64.

    Dividing by max|w| first keeps huge finite values (1e308) from overflowing to inf − inf.
    Constant weights carry no preference and become all zeros.
    """
    if w is None:
        return torch.zeros(n, dtype=torch.float64)
    w = check_values(w).to(torch.float64)
    w = w / w.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
    lo, hi = w.min(), w.max()
    if not bool(hi > lo):
        return torch.zeros_like(w)
    return ((w - lo) / (hi - lo)).clamp_(0.0, 1.0)


def standardize(a: torch.Tensor) -> torch.Tensor:
    """(a − mean) / std in float64, overflow-safe; constant input → zeros. (n,)"""
    a = check_values(a, "scores").to(torch.float64)
    a = a / a.abs().max().clamp_min(torch.finfo(torch.float64).tiny)
    a = a - a.mean()
    std = a.std(unbiased=False) if a.numel() > 1 else a.new_zeros(())
    if not bool(std > 0):
        return torch.zeros_like(a)
    return a / std


def normalize_features(features: torch.Tensor) -> torch.Tensor:
    """Rows L2-normalised, at least float32 (zero rows stay zero: similarity 1/2 to all). (n, D)"""
    x = features if features.dtype in (torch.float32, torch.float64) else features.float()
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def similarity(cos: torch.Tensor) -> torch.Tensor:
    """The similarity of this module, s = (1 + cos) / 2 ∈ [0, 1], from cosines (any shape)."""
    return ((1.0 + cos) * 0.5).clamp_(0.0, 1.0)


# ----------------------------------------------------------------------------- facility location
# Internally coverage is kept in cosine units, cover_i = max_{j∈S} cos_ij (−1 for S = ∅, i.e. s = 0):
# s − cover_s = (cos − cover_cos) / 2, so a gain is one fused addmm, a clamp and a row sum.


def _blocks(rows: int, cols: int) -> tuple[int, int]:
    """Block sizes (rows, cols): a few thousand columns (cache-sized), rows · cols ≤ CHUNK_ELEMENTS."""
    cb = min(cols, COL_BLOCK)
    return max(1, min(rows, CHUNK_ELEMENTS // cb)), cb


def coverage_gains(xc: torch.Tensor, xv: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
    """Σ_i max(0, s_ci − s-cover_i) per candidate, given cover in cosine units. Blocked, never (c, n).

    xc (c, D) and xv (n, D) normalised, cover (n,) = max_{j∈S} cos_ij → (c,) in [0, n].
    """
    gains = xv.new_zeros(xc.shape[0])
    rb, cb = _blocks(xc.shape[0], xv.shape[0])
    for r0 in range(0, xc.shape[0], rb):
        for c0 in range(0, xv.shape[0], cb):
            d = torch.addmm(cover[c0:c0 + cb], xc[r0:r0 + rb], xv[c0:c0 + cb].T, beta=-1)  # (rb, cb) cos − cover
            gains[r0:r0 + rb] += d.clamp_(min=0.0).sum(1)
    return gains.mul_(0.5)


def coverage(xv: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """cover_i = max_{j∈S} cos_ij in blocks (−1 for empty S). (n, D), (k, D) → (n,)"""
    cover = xv.new_full((xv.shape[0],), -1.0)
    if xs.shape[0] == 0:
        return cover
    vb, sb = _blocks(xv.shape[0], xs.shape[0])
    for v0 in range(0, xv.shape[0], vb):
        for s0 in range(0, xs.shape[0], sb):
            blk = (xv[v0:v0 + vb] @ xs[s0:s0 + sb].T).amax(1)              # (vb,)
            cover[v0:v0 + vb] = torch.maximum(cover[v0:v0 + vb], blk)
    return cover


def _add_to_cover(cover: torch.Tensor, x: torch.Tensor, j: int) -> torch.Tensor:
    """cover after adding sample j: max(cover, cos(x, x_j)), one matrix-vector product. (n,)"""
    return torch.maximum(cover, x @ x[j])


def facility_location(features: torch.Tensor, indices: torch.Tensor) -> float:
    """F̄(S) = (1/n) Σ_{i∈V} max_{j∈S} s_ij ∈ [0, 1], V = all rows, S = indices. Chunked."""
    x = normalize_features(check_features(features, features.shape[0]))
    idx = torch.as_tensor(indices, dtype=torch.int64, device=x.device)
    cover = coverage(x, x[idx])                                          # (n,) cosine units
    return float(similarity(cover).mean())


def objective(weights: Optional[torch.Tensor], features: Optional[torch.Tensor],
              indices: torch.Tensor, lam: float) -> float:
    """J(S) = (1/k) Σ_{i∈S} w̃_i + λ F̄(S), with the module's scaling (weights over all n rows)."""
    n = features.shape[0] if features is not None else weights.shape[0]
    w = scale_weights(weights, n)
    idx = torch.as_tensor(indices, dtype=torch.int64, device=w.device)
    value = float(w[idx].sum()) / max(1, idx.numel())
    if lam and features is not None:
        value += float(lam) * facility_location(features, indices)
    return value


def _prepare(weights, features, k, lam):
    """Shared validation; returns (w̃ in the features' dtype and device, x̂, k, λ, n)."""
    if features is None:
        raise ValueError("facility location needs features of shape (n, D)")
    n = features.shape[0]
    if weights is not None:
        check_values(weights)
        if weights.shape[0] != n:
            raise ValueError(f"features have {n} rows but there are {weights.shape[0]} weights: "
                             "pass one feature row per sample")
    x = normalize_features(check_features(features, n))
    k, lam = check_k(k, n), _check_lam(lam)
    w = scale_weights(weights, n).to(device=x.device, dtype=x.dtype)
    return w, x, k, lam, n


def greedy(weights: Optional[torch.Tensor], features: torch.Tensor, k: int, lam: float) -> torch.Tensor:
    """Plain greedy on J: k steps, each scoring every remaining sample. O(k n² D): small n only.

    weights (n,) or None, features (n, D) → (k,) int64 indices in the order they were picked.
    """
    w, x, k, lam, n = _prepare(weights, features, k, lam)
    cover = x.new_full((n,), -1.0)                                       # (n,) max_{j∈S} cos_ij
    taken = torch.zeros(n, dtype=torch.bool, device=x.device)
    picked = []
    for _ in range(k):
        gains = w / k + (lam / n) * coverage_gains(x, x, cover)         # (n,)
        gains[taken] = -math.inf
        j = int(gains.argmax())
        picked.append(j)
        taken[j] = True
        cover = _add_to_cover(cover, x, j)
    return torch.tensor(picked, dtype=torch.int64, device=x.device)


def lazy_greedy(weights: Optional[torch.Tensor], features: torch.Tensor, k: int, lam: float,
                batch: int = 64) -> torch.Tensor:
    """Greedy on J with lazy (Minoux) bound updates, re-evaluating `batch` stale bounds at a time.

    Same answer as `greedy` up to ties, deterministic, usually far fewer evaluations. The first
    bounds are the exact singleton gains, which cost O(nD) through the centrality identity.
    (n,), (n, D) → (k,) int64 in pick order.
    """
    w, x, k, lam, n = _prepare(weights, features, k, lam)
    if lam == 0:
        return top_k(w, k)
    # F̄({j}) = mean_i (1 + cos_ij)/2 = 1/2 + c_j / 2n: the exact first-step gains, as upper bounds.
    bound = w / k + lam * (0.5 + 0.5 * centrality(x, normalized=True) / n)   # (n,)
    fresh = torch.zeros(n, dtype=torch.int64, device=x.device)           # step at which bound was exact
    cover = x.new_full((n,), -1.0)                                       # (n,) cosine units
    picked = []
    for step in range(k):
        while True:
            top = bound.topk(min(batch, n - step)).indices               # (b,) best bounds first
            if int(fresh[top[0]]) == step:                               # exact and ≥ every bound
                j = int(top[0])
                break
            stale = top[fresh[top] != step]
            bound[stale] = w[stale] / k + (lam / n) * coverage_gains(x[stale], x, cover)
            fresh[stale] = step
        picked.append(j)
        bound[j] = -math.inf
        cover = _add_to_cover(cover, x, j)
    return torch.tensor(picked, dtype=torch.int64, device=x.device)


def stochastic_greedy(weights: Optional[torch.Tensor], features: torch.Tensor, k: int, lam: float,
                      generator: torch.Generator, epsilon: float = 0.01) -> torch.Tensor:
    """"Lazier than lazy greedy" (Mirzasoleiman et al., 2015) on J.

    Each of the k steps samples ceil((n/k)·ln(1/ε)) candidates uniformly, without replacement,
    from the samples not yet picked and adds the one with the largest gain: (1 − 1/e − ε) in
    expectation for O(n ln(1/ε)) gain evaluations in total instead of O(nk).
    (n,), (n, D) → (k,) int64 in pick order.
    """
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must lie in (0, 1), got {epsilon}")
    w, x, k, lam, n = _prepare(weights, features, k, lam)
    if lam == 0:
        return top_k(w, k)                                               # modular: top-k is exact
    s = max(1, math.ceil(n / k * math.log(1.0 / epsilon)))              # candidates per step
    remaining = torch.arange(n, dtype=torch.int64, device=x.device)      # first r entries: not picked
    cover = x.new_full((n,), -1.0)                                       # (n,) cosine units
    picked = []
    for step in range(k):
        r = n - step
        pos = _randperm(r, generator, x.device)[:s]                       # (≤ s,) positions in remaining
        cand = remaining[pos]
        gains = w[cand] / k + (lam / n) * coverage_gains(x[cand], x, cover)
        best = int(gains.argmax())
        j = int(cand[best])
        picked.append(j)
        p = int(pos[best])
        remaining[p] = remaining[r - 1].clone()                          # swap-remove in O(1)
        cover = _add_to_cover(cover, x, j)
    return torch.tensor(picked, dtype=torch.int64, device=x.device)


def maximize_facility(weights: Optional[torch.Tensor], features: torch.Tensor, k: int, lam: float,
                      method: str = "stochastic", generator: Optional[torch.Generator] = None,
                      epsilon: float = 0.01) -> torch.Tensor:
    """Maximise J with one of METHODS ("stochastic" needs the generator). → (k,) int64."""
    if method == "stochastic":
        if generator is None:
            raise ValueError("stochastic greedy needs a seeded torch.Generator")
        return stochastic_greedy(weights, features, k, lam, generator, epsilon)
    if method == "lazy":
        return lazy_greedy(weights, features, k, lam)
    if method == "greedy":
        return greedy(weights, features, k, lam)
    raise ValueError(f"unknown greedy method {method!r}: choose one of {', '.join(METHODS)}")


# ----------------------------------------------------------------------------- modular proxy


def centrality(features: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """The authors' proxy: c_i = Σ_j x̂_i · x̂_j = x̂_i · (Σ_j x̂_j), row sums of the normalised
    Gram matrix in O(nD), never forming it. (n, D) → (n,) in [−n, n]."""
    x = features if normalized else normalize_features(check_features(features, features.shape[0]))
    return x @ x.sum(0)


def modular_select(weights: Optional[torch.Tensor], features: torch.Tensor, k: int,
                   lam: float) -> torch.Tensor:
    """Top-k of w̃_i + λ F̄({i}): J with F̄(S) replaced by its modular upper bound (1/k) Σ F̄({j}).

    F̄({i}) = 1/2 + c_i / 2n is the centrality in the units of J, so λ means the same as for
    facility location. (n,), (n, D) → (k,) int64, best first.
    """
    w, x, k, lam, n = _prepare(weights, features, k, lam)
    return top_k(w + lam * (0.5 + 0.5 * centrality(x, normalized=True) / n), k)


# ----------------------------------------------------------------------------- top-k and sampling


def top_k(values: torch.Tensor, k: int, largest: bool = True) -> torch.Tensor:
    """Indices of the k largest (or smallest) values, best first. (n,) → (k,) int64."""
    check_values(values, "values")
    k = check_k(k, values.shape[0])
    return values.topk(k, largest=largest, sorted=True).indices.to(torch.int64)


def weighted_sample(logits: torch.Tensor, k: int, generator: torch.Generator,
                    temperature: float = 1.0) -> torch.Tensor:
    """k draws without replacement with p_i ∝ exp(logits_i / τ), sequentially renormalised.

    Gumbel top-k: keys = logits/τ − ln E_i with E_i ~ Exp(1); the k largest keys are such a
    draw. No exp is ever taken, so large logits/τ cannot overflow. (n,) → (k,) int64.
    """
    check_values(logits, "logits")
    k = check_k(k, logits.shape[0])
    temperature = float(temperature)
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    n = logits.shape[0]
    e = torch.empty(n, dtype=torch.float64, device=generator.device).exponential_(generator=generator)
    keys = logits.to(torch.float64) / temperature - e.to(logits.device).clamp_min(1e-300).log()
    return keys.topk(k).indices.to(torch.int64)


def _randperm(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A random permutation drawn on the generator's device, moved to `device`. (n,) int64"""
    return torch.randperm(n, generator=generator, device=generator.device).to(device)
