"""Subset selection: facility location, (stochastic / lazy) greedy, centrality, weighted sampling.

Every curriculum that trades "good samples" against "diverse samples" maximises one objective
over sets S ⊆ V of size k (DESIGN.md §2):

    J(S) = (1/k) Σ_{i∈S} w̃_i  +  λ · F̄(S),        F̄(S) = (1/n) Σ_{i∈V} max_{j∈S} s_ij

- w̃ are the modular weights (losses for MCL, DoCL scores for DoCL) min-max scaled to [0, 1]
  over the ground set of the call (`scale_weights`).
- s_ij = max(0, cos(x_i, x_j)) ∈ [0, 1] on L2-normalised features (`similarity`). The models'
  features are post-ReLU, so cosines already lie in [0, 1] and s is the cosine itself, spanning
  the whole range: orthogonal embeddings cover each other not at all. (The former
  s = (1 + cos)/2 lies in [1/2, 1] on such features, which halves the effective λ and flattens
  coverage, issue 13.) On signed features, opposite directions count as "no coverage" (0).
  s ≥ 0 keeps F monotone submodular with F(∅) = 0.

Why this scaling (it lives here and nowhere else): both terms of J lie in [0, 1] whatever n, k,
the loss scale or the score estimator, so λ reads the same in every round and on every
dataset: λ = 1 weighs "average quality of S" and "how well S covers V" equally. Dividing the
modular term by k (constant for a fixed k) keeps J monotone submodular, so greedy keeps its
(1 − 1/e) guarantee, and makes a greedy step compare w̃_j/k with λ times a coverage gain that
also sums to at most 1 over the k steps.

Two routes, chosen by size (`facility_route`): when the n×n similarity fits
`memory_budget_bytes` (default `MEMORY_BUDGET_BYTES` = 1 GiB, in the normalised features' dtype,
float32 or float64) it is formed once and a gain is a sum over gathered rows; otherwise nothing of
size n² exists and candidate similarities are computed in blocks of at most `CHUNK_ELEMENTS`, so
n = 50,000 runs in bounded memory. Both routes feed the same values to the same reduction, so every
maximiser returns the same indices on either route. The generator passed in is the only
randomness; all functions return int64 indices, distinct, in [0, n), on the device of their inputs.
"""
from __future__ import annotations

import math
import operator
from typing import Optional

import torch

CHUNK_ELEMENTS = 1 << 18        # similarity entries computed at once: 256k floats = 1 MiB, cache-sized
COL_BLOCK = 4096                # ground-set rows per block
MEMORY_BUDGET_BYTES = 1 << 30   # precompute the (n, n) similarity when it fits: 1 GiB, n ≤ 16,384 in float32
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
    """Rows L2-normalised, at least float32 (zero rows stay zero: similarity 0 to all). (n, D)"""
    x = features if features.dtype in (torch.float32, torch.float64) else features.float()
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def similarity(cos: torch.Tensor) -> torch.Tensor:
    """The similarity of this module, s = max(0, cos) ∈ [0, 1], from cosines (any shape).

    Rounding can put a self-cosine a hair above 1; the clamp keeps s in [0, 1].
    """
    return cos.clamp(0.0, 1.0)


# ----------------------------------------------------------------------------- facility location
# Coverage is kept in similarity units, cover_i = max_{j∈S} s_ij ≥ 0 (0 for S = ∅). Because
# cover ≥ 0, max(0, s − cover) = max(0, cos − cover): the chunked route never clamps cosines.


def facility_route(n: int, dtype: torch.dtype = torch.float32,
                   memory_budget_bytes: int = MEMORY_BUDGET_BYTES) -> str:
    """"precomputed" when the (n, n) similarity in `dtype` fits the budget, else "chunked"."""
    try:
        budget = None if isinstance(memory_budget_bytes, bool) else operator.index(memory_budget_bytes)
    except TypeError:
        budget = None
    if budget is None or budget < 0:
        raise ValueError(f"memory_budget_bytes must be an integer number of bytes ≥ 0 (0 forces the "
                         f"chunked route), got {memory_budget_bytes!r}")
    itemsize = torch.empty((), dtype=dtype).element_size()
    return "precomputed" if n * n * itemsize <= budget else "chunked"


def _blocks(rows: int, cols: int) -> tuple[int, int]:
    """Block sizes (rows, cols): a few thousand columns (cache-sized), rows · cols ≤ CHUNK_ELEMENTS.

    The column block depends on `cols` only, so a candidate's gain is reduced in the same order
    however many candidates are evaluated with it (lazy and plain greedy agree bit for bit).
    """
    cb = min(cols, COL_BLOCK)
    return max(1, min(rows, CHUNK_ELEMENTS // cb)), cb


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b.T for normalised rows. (r, D), (c, D) → (r, c)

    A one-row product takes BLAS's matrix-vector path, whose sums can differ in the last bit from
    the matrix-matrix path that builds the precomputed similarity; padding to two rows keeps both
    routes' cosines equal bit for bit (measured on CPU BLAS; GPUs give no such promise).
    """
    if a.shape[0] == 1:
        return (a.expand(2, -1) @ b.T)[:1]
    return a @ b.T


def similarity_matrix(x: torch.Tensor) -> torch.Tensor:
    """s = max(cos, 0) for all pairs of normalised rows. (n, D) → (n, n), x's dtype. O(n² D).

    Row slabs are multiplied straight into s (no temporary) and clamped while in cache; a slab
    of ≥ 64 rows keeps BLAS efficient (measured: 2× faster than symmetric 512² tiles, whose
    mirrored copies cost more than the flops they save at D = 64).
    """
    n = x.shape[0]
    s = x.new_empty((n, n))
    rows = max(64, CHUNK_ELEMENTS // max(1, n))
    for r0 in range(0, n, rows):
        slab = s[r0:r0 + rows]                                           # (rows, n), a view of s
        if slab.shape[0] == 1:
            slab.copy_(_cos(x[r0:r0 + 1], x))
        else:
            torch.mm(x[r0:r0 + rows], x.T, out=slab)
        slab.clamp_(0.0, 1.0)                                            # = similarity(cos), in place
    return s


class _Similarity:
    """The one place the two routes differ: where rows of s come from.

    precomputed: s (n, n) formed once (n² entries, O(n² D)); a block is a gather from it.
    chunked:     nothing of size n² exists; a block is a (rows, cols) product of features, O(rows·cols·D).
    Both hand the gain loop the same values, min(cos, 1) − cover once clamped at 0 (cover ≥ 0
    makes the clamp of cos at 0 redundant), so both routes pick the same samples.
    """

    def __init__(self, x: torch.Tensor, memory_budget_bytes: int):
        self.x, self.n = x, x.shape[0]
        self.route = facility_route(self.n, x.dtype, memory_budget_bytes)
        self.matrix = similarity_matrix(x) if self.route == "precomputed" else None   # (n, n) or None

    def add_to_cover(self, cover: torch.Tensor, j: int) -> torch.Tensor:
        """cover after adding sample j: max(cover, s_·j), O(n) gathered or O(nD) computed. (n,)"""
        row = self.matrix[j] if self.matrix is not None else _cos(self.x[j:j + 1], self.x)[0].clamp_(max=1.0)
        return torch.maximum(cover, row)

    def gains(self, cand: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
        """Σ_i max(0, s_ci − cover_i) per candidate, in blocks of ≤ CHUNK_ELEMENTS. (c,) → (c,) in [0, n]

        Precomputed: O(c·n) reads of gathered rows. Chunked: O(c·n·D) flops (`coverage_gains`).
        Same blocks, same values, same reduction order.
        """
        if self.matrix is None:
            return coverage_gains(self.x.index_select(0, cand), self.x, cover)
        gains = self.x.new_zeros(cand.shape[0])                         # (c,)
        rb, cb = _blocks(cand.shape[0], self.n)
        for r0 in range(0, cand.shape[0], rb):
            rows = cand[r0:r0 + rb]
            for c0 in range(0, self.n, cb):                             # gather a cache-sized block
                d = self.matrix[:, c0:c0 + cb].index_select(0, rows).sub_(cover[c0:c0 + cb])   # (rb, cb)
                gains[r0:r0 + rb] += d.clamp_(min=0.0).sum(1)
        return gains


def coverage_gains(xc: torch.Tensor, xv: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
    """Σ_i max(0, s_ci − cover_i) per candidate on the chunked route, never forming (c, n).

    xc (c, D) and xv (n, D) normalised, cover (n,) = max_{j∈S} s_ij ≥ 0 → (c,) in [0, n].
    """
    gains = xv.new_zeros(xc.shape[0])
    rb, cb = _blocks(xc.shape[0], xv.shape[0])
    for r0 in range(0, xc.shape[0], rb):
        for c0 in range(0, xv.shape[0], cb):
            d = _cos(xc[r0:r0 + rb], xv[c0:c0 + cb]).clamp_(max=1.0).sub_(cover[c0:c0 + cb])  # (rb, cb)
            gains[r0:r0 + rb] += d.clamp_(min=0.0).sum(1)
    return gains


def coverage(xv: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """cover_i = max_{j∈S} s_ij in blocks (0 for empty S). (n, D), (k, D) → (n,) in [0, 1]"""
    cover = xv.new_zeros(xv.shape[0])
    if xs.shape[0] == 0:
        return cover
    vb, sb = _blocks(xv.shape[0], xs.shape[0])
    for v0 in range(0, xv.shape[0], vb):
        for s0 in range(0, xs.shape[0], sb):
            blk = similarity(_cos(xv[v0:v0 + vb], xs[s0:s0 + sb])).amax(1)   # (vb,)
            cover[v0:v0 + vb] = torch.maximum(cover[v0:v0 + vb], blk)
    return cover


def facility_location(features: torch.Tensor, indices: torch.Tensor) -> float:
    """F̄(S) = (1/n) Σ_{i∈V} max_{j∈S} s_ij ∈ [0, 1], V = all rows, S = indices. Chunked."""
    x = normalize_features(check_features(features, features.shape[0]))
    idx = torch.as_tensor(indices, dtype=torch.int64, device=x.device)
    return float(coverage(x, x[idx]).mean())


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


def _prepare(weights, features, k, lam, memory_budget_bytes=MEMORY_BUDGET_BYTES):
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
    facility_route(n, x.dtype, memory_budget_bytes)                      # validates the budget
    w = scale_weights(weights, n).to(device=x.device, dtype=x.dtype)
    return w, x, k, lam, n


def _argmax_first(gains: torch.Tensor) -> int:
    """Index of the largest value, the first one among exact ties (torch.argmax's documented rule)."""
    return int(gains.argmax())


def greedy(weights: Optional[torch.Tensor], features: torch.Tensor, k: int, lam: float,
           memory_budget_bytes: int = MEMORY_BUDGET_BYTES) -> torch.Tensor:
    """Plain greedy on J: k steps, each scoring every sample. O(k n²) (precomputed) or
    O(k n² D) (chunked): small n only; it is the reference the fast maximisers are tested against.

    weights (n,) or None, features (n, D) → (k,) int64 indices in the order they were picked;
    ties go to the lowest index.
    """
    w, x, k, lam, n = _prepare(weights, features, k, lam, memory_budget_bytes)
    if lam == 0:
        return top_k(w, k)                                               # modular: top-k is exact
    sim = _Similarity(x, memory_budget_bytes)
    all_idx = torch.arange(n, device=w.device)
    cover = w.new_zeros(n)                                               # (n,) max_{j∈S} s_ij
    taken = torch.zeros(n, dtype=torch.bool, device=w.device)
    picked = []
    for _ in range(k):
        gains = w / k + (lam / n) * sim.gains(all_idx, cover)            # (n,)
        gains[taken] = -math.inf
        j = _argmax_first(gains)
        picked.append(j)
        taken[j] = True
        cover = sim.add_to_cover(cover, j)
    return torch.tensor(picked, dtype=torch.int64, device=w.device)


def lazy_greedy(weights: Optional[torch.Tensor], features: torch.Tensor, k: int, lam: float,
                batch: int = 64, memory_budget_bytes: int = MEMORY_BUDGET_BYTES) -> torch.Tensor:
    """Greedy on J with lazy (Minoux) bound updates, re-evaluating `batch` stale bounds at a time.

    Exactly `greedy`'s answer, ties included: a gain is reduced in the same order whatever batch it
    is evaluated in, rounding is monotone so stale bounds stay upper bounds bit for bit, and a pick
    waits until every bound tied with the best is fresh, then takes the lowest index. The first
    step evaluates all n gains (O(n²), or O(n² D) chunked); later steps usually few. Worst case
    (all gains alike) it is no better than greedy. (n,), (n, D) → (k,) int64 in pick order.
    """
    w, x, k, lam, n = _prepare(weights, features, k, lam, memory_budget_bytes)
    if lam == 0:
        return top_k(w, k)                                               # modular: top-k is exact
    sim = _Similarity(x, memory_budget_bytes)
    cover = w.new_zeros(n)                                               # (n,) similarity units
    bound = w / k + (lam / n) * sim.gains(torch.arange(n, device=w.device), cover)   # (n,) exact at step 0
    fresh = torch.zeros(n, dtype=torch.int64, device=w.device)           # step at which bound was exact
    picked = []
    for step in range(k):
        b = min(batch, n - step)
        while True:
            vals, top = bound.topk(b)                                    # (b,) best bounds, ties unordered
            best = vals[0]
            if b < n - step and bool(vals[-1] == best):                  # ties may reach beyond the top b
                tied = (bound == best).nonzero().flatten()
            else:
                tied = top[vals == best]
            stale_tied = tied[fresh[tied] != step]
            if stale_tied.numel() == 0:                                  # every tied bound exact, all others below
                j = int(tied.min())
                break
            stale = top[fresh[top] != step] if tied.numel() <= b else stale_tied[:b]
            bound[stale] = w[stale] / k + (lam / n) * sim.gains(stale, cover)
            fresh[stale] = step
        picked.append(j)
        bound[j] = -math.inf
        cover = sim.add_to_cover(cover, j)
    return torch.tensor(picked, dtype=torch.int64, device=w.device)


def _sample_without_replacement(pool: list, r: int, s: int, generator: torch.Generator) -> None:
    """Move a uniform s-subset of pool[:r] to pool[:s] in place: a partial Fisher–Yates shuffle.

    Draws s uniforms from the generator (not a permutation of r): O(s) work and random numbers.
    """
    u = torch.rand(s, generator=generator, dtype=torch.float64, device=generator.device).tolist()
    for i, ui in enumerate(u):
        p = i + min(int(ui * (r - i)), r - i - 1)                        # uniform in [i, r)
        pool[i], pool[p] = pool[p], pool[i]


def stochastic_greedy(weights: Optional[torch.Tensor], features: torch.Tensor, k: int, lam: float,
                      generator: torch.Generator, epsilon: float = 0.01,
                      memory_budget_bytes: int = MEMORY_BUDGET_BYTES) -> torch.Tensor:
    """"Lazier than lazy greedy" (Mirzasoleiman et al., 2015) on J.

    Each of the k steps samples s = ⌈(n/k)·ln(1/ε)⌉ candidates uniformly, without replacement,
    from the samples not yet picked (all of them when fewer remain) and adds the one with the
    largest gain (first sampled among ties): (1 − 1/e − ε) in expectation. In total
    O(n ln(1/ε)) random numbers and gain evaluations, each O(n) reads precomputed or O(nD)
    chunked, so O(n² ln(1/ε)) (·D); plus O(n² D) once to form s on the precomputed route.
    (n,), (n, D) → (k,) int64 in pick order; same answer on both routes for the same generator.
    """
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must lie in (0, 1), got {epsilon}")
    w, x, k, lam, n = _prepare(weights, features, k, lam, memory_budget_bytes)
    if lam == 0:
        return top_k(w, k)                                               # modular: top-k is exact
    sim = _Similarity(x, memory_budget_bytes)
    s = max(1, math.ceil(n / k * math.log(1.0 / epsilon)))              # candidates per step
    remaining = list(range(n))                                           # samples not picked, any order
    cover = w.new_zeros(n)                                               # (n,) similarity units
    picked = []
    for step in range(k):
        r = n - step
        if s < r:
            _sample_without_replacement(remaining, r, s, generator)       # candidates: remaining[:s]
        c = min(s, r)
        cand = torch.tensor(remaining[:c], dtype=torch.int64, device=w.device)   # (c,)
        best = _argmax_first(w[cand] / k + (lam / n) * sim.gains(cand, cover))
        j = remaining[best]
        picked.append(j)
        remaining[best] = remaining[r - 1]                               # swap-remove in O(1)
        remaining.pop()
        cover = sim.add_to_cover(cover, j)
    return torch.tensor(picked, dtype=torch.int64, device=w.device)


def maximize_facility(weights: Optional[torch.Tensor], features: torch.Tensor, k: int, lam: float,
                      method: str = "stochastic", generator: Optional[torch.Generator] = None,
                      epsilon: float = 0.01, memory_budget_bytes: int = MEMORY_BUDGET_BYTES) -> torch.Tensor:
    """Maximise J with one of METHODS ("stochastic" needs the generator). → (k,) int64.

    The route follows `facility_route`: the (n, n) similarity is precomputed when it fits
    `memory_budget_bytes` (default 1 GiB: n ≤ 16,384 in float32), else gains are computed in chunks.
    """
    if method == "stochastic":
        if generator is None:
            raise ValueError("stochastic greedy needs a seeded torch.Generator")
        return stochastic_greedy(weights, features, k, lam, generator, epsilon, memory_budget_bytes)
    if method == "lazy":
        return lazy_greedy(weights, features, k, lam, memory_budget_bytes=memory_budget_bytes)
    if method == "greedy":
        return greedy(weights, features, k, lam, memory_budget_bytes)
    raise ValueError(f"unknown greedy method {method!r}: choose one of {', '.join(METHODS)}")


# ----------------------------------------------------------------------------- modular proxy


def centrality(features: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """The authors' proxy: c_i = Σ_j x̂_i · x̂_j = x̂_i · (Σ_j x̂_j), row sums of the normalised
    Gram matrix in O(nD), never forming it. (n, D) → (n,) in [−n, n]."""
    x = features if normalized else normalize_features(check_features(features, features.shape[0]))
    return x @ x.sum(0)


def modular_select(weights: Optional[torch.Tensor], features: torch.Tensor, k: int,
                   lam: float) -> torch.Tensor:
    """Top-k of w̃_i + λ (1/2 + c_i / 2n): the authors' centrality c (`centrality`) in [0, 1].

    1/2 + c_i / 2n is the mean (1 + cos)/2 similarity of sample i to all samples: the singleton
    coverage F̄({i}) under the former similarity, kept as this proxy's definition. It is an upper
    bound of F̄({i}) under s = max(0, cos) ((1 + c)/2 ≥ max(0, c) for c ∈ [−1, 1]), not equal
    to it. (n,), (n, D) → (k,) int64, best first.
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

