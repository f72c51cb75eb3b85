"""Subset selection: facility location, (stochastic / lazy) greedy, centrality, weighted sampling.

Every curriculum that trades "good samples" against "diverse samples" maximises one objective
over sets S ⊆ V of size k (docs/design.md §2):

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

Similarities are held as integers, q_ij = round(s_ij · 2^b) with b = 24 for float32 features and
40 for float64 (`quantize`; 2^-24 is float32's own spacing at 1), so every gain Σ_i max(0, q_ci −
cover_i) is an exact integer whatever the order of its sum. A gain updated step by step equals the
one recomputed from scratch, a block of gains equals the gains one at a time, and every maximiser
computes a value as the same float64 `w̃_j/k + (λ/n)·2^-b·gain_j`: plain, lazy and stochastic greedy
agree with their references exactly, on either route.

Two routes, chosen by size (`facility_route`): when the n×n integer similarity fits
`memory_budget_bytes` (default `MEMORY_BUDGET_BYTES` = 1 GiB; 4 bytes an entry for float32 features,
8 for float64) it is formed once (`similarity_units`) and the greedy loops run compiled over it
(`greedy_kernels`, numba): exact greedy keeps every gain exact by incremental updates, stochastic
greedy evaluates its sampled candidates lazily. Otherwise nothing of size n² exists: a candidate's
row is computed when needed (a step's rows in one product, blocks of at most `CHUNK_ELEMENTS` when
all are, an LRU cache of rows within the same budget), the loops run in Python (each gain by the
compiled `row_gain`), and n = 50,000 runs in bounded memory. Both routes compute the same integers
(exactly by construction for float32 features: `_operand`; for float64 through products of
≥ MIN_PRODUCT_ROWS rows: `_cos`), so every maximiser returns the same indices on either route. The
generator passed in is the only randomness; all functions return int64 indices, distinct, in [0, n),
on the device of their inputs.

Hooks for tests and benchmarks: `block_sizes(chunk_elements, col_block)` runs a block of code with
other block sizes and logs what it computed (`BlockLog`: the largest block, matrices formed);
`spare_buffer_bytes()` says what memory is kept for the next precomputed call; `Similarity` is the
rows and gains every maximiser reads.
"""
from __future__ import annotations

import heapq
import itertools
import math
import operator
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch

CHUNK_ELEMENTS = 1 << 18        # similarity entries computed at once: 256k floats = 1 MiB, cache-sized
COL_BLOCK = 4096                # ground-set rows per block
MEMORY_BUDGET_BYTES = 1 << 30   # precompute the (n, n) similarity when it fits: 1 GiB, n ≤ 16,384 in float32
UNIT_BITS = {torch.float32: 24, torch.float64: 40}   # similarity units 2^-b by feature dtype (`quantize`)
_INT = {torch.float32: torch.int32, torch.float64: torch.int64}
METHODS = ("stochastic", "lazy", "greedy")   # facility-location maximisers (`maximize_facility`)


@dataclass
class BlockLog:
    """What similarities were computed while `block_sizes` was active (the chunked route's memory bound)."""

    largest: int = 0                # entries of the largest block of similarity rows computed (chunked route)
    matrices: int = 0               # (n, n) integer similarities formed (`similarity_units`: precomputed route)


_block_log: Optional[BlockLog] = None


@contextmanager
def block_sizes(chunk_elements: Optional[int] = None, col_block: Optional[int] = None) -> Iterator[BlockLog]:
    """Compute similarities in blocks of at most `chunk_elements` entries (default CHUNK_ELEMENTS) and
    `col_block` columns (default COL_BLOCK) inside the block, and yield a `BlockLog` of what was
    computed there. Answers never depend on the block sizes (tests use tiny ones for many ragged
    blocks on small inputs). The sizes are module-wide: not for concurrent callers."""
    global CHUNK_ELEMENTS, COL_BLOCK, _block_log
    saved = CHUNK_ELEMENTS, COL_BLOCK, _block_log
    for name, v in (("chunk_elements", chunk_elements), ("col_block", col_block)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{name} must be an integer ≥ 1, got {v!r}")
    CHUNK_ELEMENTS = chunk_elements or CHUNK_ELEMENTS
    COL_BLOCK = col_block or COL_BLOCK
    _block_log = BlockLog()
    try:
        yield _block_log
    finally:
        CHUNK_ELEMENTS, COL_BLOCK, _block_log = saved

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
    """"precomputed" when the (n, n) integer similarity for `dtype` features (int32 for float32,
    int64 for float64) fits the budget, else "chunked"."""
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


MIN_PRODUCT_ROWS = 64           # every cosine product has at least this many rows (`_cos`)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b.T for normalised rows. (r, D), (c, D) → (r, c)

    BLAS picks another kernel for products of a few rows (measured with MKL: 1–2 rows at D = 64 in
    float32, up to 8 at D = 256, 1–3 in float64), whose sums differ in the last bit from the
    many-row kernel that builds the precomputed similarity; with similarities resolved to 2^-24
    such a bit changes an integer. Padding a to MIN_PRODUCT_ROWS rows with zeros keeps every
    product on the many-row kernel, so a row has the same bits whichever product computed it and
    whatever its column count (measured on CPU BLAS at D up to 512: GPUs give no promise). Only
    float64 features' similarities rely on this; float32 ones are exact by construction (`_operand`).
    """
    r = a.shape[0]
    if r < MIN_PRODUCT_ROWS:
        return (torch.cat([a, a.new_zeros(MIN_PRODUCT_ROWS - r, a.shape[1])]) @ b.T)[:r]
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


def _quantize_(s: torch.Tensor) -> torch.Tensor:
    """Cosines → similarity units in place, as integral floats of s's dtype (`quantize` without the
    integer cast). Clamping after rounding equals rounding after clamping: scaling by 2^b is exact."""
    one = float(1 << UNIT_BITS[s.dtype])
    return s.mul_(one).round_().clamp_(0.0, one)


def quantize(s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Similarities in [0, 1] as integers in units of 2^-b (`UNIT_BITS[dtype]`), round to nearest.

    Scaling by a power of two is exact, so only the bits below 2^-b are rounded away (none for
    s ≥ 1/2 in float32). → int32 (float32) or int64 (float64), s's shape.
    """
    return similarity(s).mul(float(1 << UNIT_BITS[dtype])).round_().to(_INT[dtype])


FEATURE_BITS = 26               # float32 features enter products as integers in units of 2^-26 (`_operand`)


def _operand(x: torch.Tensor) -> torch.Tensor:
    """What the similarity products multiply, from normalised rows. (n, D) → (n, D) float64

    float32 features (the models' dtype): the rows rounded to integers in units of 2^-26, held in
    float64. Every product and every partial sum of a dot is then an integer of magnitude at most
    ‖a‖‖b‖ ≤ 2^52 (1 + √D·2^-26) < 2^53, so float64 GEMM computes it exactly, whatever the kernel,
    the order of the sum, the thread count, the CPU or the GPU: the similarity is a function of
    the features alone, and both routes get the same integers by construction. The rounding moves
    a cosine by at most √D·2^-26 (≈ 3 units of 2^-24 at D = 128), no more than float32's own
    GEMM rounding did. float64 features are used as they are (their products go through `_cos`).
    """
    if x.dtype == torch.float32:
        return x.double().mul_(float(1 << FEATURE_BITS)).round_()
    return x


def _units_(p: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Products of `_operand` rows → similarity units for `dtype` features, in place, as integral
    floats (float64). Exact dots in units of 2^-52 are scaled by a power of two and rounded."""
    if dtype == torch.float32:
        one = float(1 << UNIT_BITS[dtype])
        return p.mul_(2.0 ** (UNIT_BITS[dtype] - 2 * FEATURE_BITS)).round_().clamp_(0.0, one)
    return _quantize_(p)


def _unit_product(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Similarity units of `_operand` rows a against rows b, for `dtype` features. (r, D), (c, D) → (r, c)"""
    out = _units_(a @ b.T if dtype == torch.float32 else _cos(a, b), dtype)
    if _block_log is not None:
        _block_log.largest = max(_block_log.largest, out.numel())
    return out


SPARE_BYTES = 256 << 20         # largest similarity buffer kept for the next call (`_take_buffer`)
_spare: list = []               # at most one buffer, handed to one caller at a time
_spare_lock = threading.Lock()


def _take_buffer(numel: int, dtype: torch.dtype) -> torch.Tensor:
    """A flat host buffer of ≥ numel entries: the one the last call gave back when it fits (a fresh
    one page-faults all its memory in: ≈ 8 ms for 46 MB, every round), else a new one."""
    with _spare_lock:
        if _spare and _spare[0].dtype == dtype and _spare[0].numel() >= numel:
            return _spare.pop()
    return torch.empty(numel, dtype=dtype)


def _give_back(buf: Optional[torch.Tensor]) -> None:
    """Keep `buf` for the next `_take_buffer` if it is at most SPARE_BYTES (replacing any older one)."""
    if buf is not None and buf.numel() * buf.element_size() <= SPARE_BYTES:
        with _spare_lock:
            _spare[:] = [buf]


def spare_buffer_bytes() -> int:
    """Bytes of the similarity buffer kept for the next precomputed call: 0 or one buffer's, ≤ SPARE_BYTES."""
    with _spare_lock:
        return sum(b.numel() * b.element_size() for b in _spare)


def similarity_units(x: torch.Tensor, buffer: Optional[torch.Tensor] = None) -> np.ndarray:
    """The integer similarity q ≈ round(max(cos, 0)·2^b) of all pairs of normalised rows, symmetric
    by construction: the lower triangle from row slabs (half the flops), mirrored by tiles.
    (n, D) → (n, n) numpy, in `buffer` (flat, ≥ n² entries of the integer dtype) when given.
    Each row equals the chunked route's: exactly by construction for float32 features (`_operand`),
    through products of ≥ MIN_PRODUCT_ROWS rows (`_cos`) for float64.
    """
    n = x.shape[0]
    dtype = _INT[x.dtype]
    if _block_log is not None:
        _block_log.matrices += 1
    q = (buffer if buffer is not None else torch.empty(n * n, dtype=dtype))[:n * n].view(n, n)
    op = _operand(x)
    rows = max(64, min(256, (4 * CHUNK_ELEMENTS) // max(1, n)))         # slabs of ≤ 8 MiB in float64
    slab = op.new_empty(rows * n)
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        s = slab[:(r1 - r0) * r1].view(r1 - r0, r1)                      # products of rows r0:r1, columns < r1
        if x.dtype == torch.float32 or r1 - r0 >= MIN_PRODUCT_ROWS:
            torch.mm(op[r0:r1], op[:r1].T, out=s)
        else:                                                            # float64: the last slab, or a small n
            s.copy_(_cos(op[r0:r1], op[:r1]))
        _units_(s, x.dtype)                                              # integral floats
        q[r0:r1, :r1].copy_(s)                                           # exact conversion
        q[:r0, r0:r1].copy_(q[r0:r1, :r0].T)                             # mirror the slab left of the diagonal
        diag = q[r0:r1, r0:r1]
        diag.copy_(diag.tril() + diag.tril(-1).T)
    return q.numpy()


def _kernels():
    """The compiled loops, imported on first use (numba's import and cache load stay off paths
    that never select)."""
    from . import greedy_kernels
    return greedy_kernels


class Similarity:
    """Integer rows of the similarity on the host, and the gains read from them: the one place the
    two routes differ is where a row comes from.

    precomputed: q (n, n) formed once by `similarity_units` (O(n² D)); a row is a view of it.
    chunked:     nothing of size n² exists; a row is computed when asked, O(nD), and `gains_all`
                 computes blocks of ≤ CHUNK_ELEMENTS entries.
    A gain Σ_i max(0, q_ci − cover_i) is an exact integer (units 2^-bits), the same alone or in a
    block, on either route (tests). The chunked route keeps q as integral floats (the same values,
    no cast per row: differences of such floats are exact, and the kernels sum them in 64 bits).
    """

    def __init__(self, x: torch.Tensor, memory_budget_bytes: int):
        self.x, self.n = x, x.shape[0]
        self.bits = UNIT_BITS[x.dtype]
        self._op = None                                                  # chunked: `_operand(x)`, made once
        self.route = facility_route(self.n, x.dtype, memory_budget_bytes)
        self._buffer = (_take_buffer(self.n * self.n, _INT[x.dtype]) if self.route == "precomputed"
                        else None)
        self.matrix = similarity_units(x, self._buffer) if self._buffer is not None else None   # (n, n) or None
        # cover and rows: integers when precomputed, integral floats when chunked (same values)
        self.dtype = ((np.int32 if x.dtype == torch.float32 else np.int64) if self.matrix is not None
                      else (np.float32 if x.dtype == torch.float32 else np.float64))
        itemsize = np.dtype(self.dtype).itemsize
        self._cache: OrderedDict = OrderedDict()                         # chunked: rows, j → (n,), least recent first
        # chunked: keep as many recent rows as the budget holds (rows are reread by later steps)
        self._cap = max(2 * MIN_PRODUCT_ROWS, CHUNK_ELEMENTS // self.n, memory_budget_bytes // (self.n * itemsize))

    @property
    def buffer_bytes(self) -> int:
        """Bytes of the buffer holding the matrix (≥ n² entries: a reused one may be larger); 0 chunked."""
        return 0 if self._buffer is None else self._buffer.numel() * self._buffer.element_size()

    def cached(self, j: int) -> bool:
        """Whether row j is at hand without a product (always when precomputed)."""
        return self.matrix is not None or j in self._cache

    def release(self) -> None:
        """Done with the matrix: its memory goes to the next call (`_give_back`)."""
        self.matrix = None
        _give_back(self._buffer)
        self._buffer = None

    def zeros(self) -> np.ndarray:
        """An empty cover (S = ∅) in this similarity's integer units. (n,)"""
        return np.zeros(self.n, dtype=self.dtype)

    def rows(self, idx: torch.Tensor) -> np.ndarray:
        """Chunked route: q for the rows idx, computed now, as integral floats of the features'
        dtype (exact: ≤ 2^24 in float32, 2^40 in float64). (m,) → (m, n)"""
        if self._op is None:
            self._op = _operand(self.x)
        p = _unit_product(self._op.index_select(0, idx), self._op, self.x.dtype)
        return p.to(self.x.dtype).cpu().numpy()

    def row(self, j: int) -> np.ndarray:
        """q_j· in units of 2^-bits. (n,), a read-only view when precomputed."""
        if self.matrix is not None:
            return self.matrix[j]
        r = self._cache.get(j)
        if r is None:
            self.prefetch([j])
            return self._cache[j]
        self._cache.move_to_end(j)                                       # recently used: dropped last
        return r

    def prefetch(self, js: list, extra=()) -> None:
        """Chunked route: compute the rows of `js` not cached yet in one product and keep them.

        A product has at least MIN_PRODUCT_ROWS rows anyway (`_cos`), so when `js` needs fewer, rows
        of `extra` (ids likely needed soon) not cached yet fill the product instead of zeros.

        Rows do not depend on the cover, so a row stays valid for the whole call; the cache keeps
        as many rows as `memory_budget_bytes` holds (at least 2·MIN_PRODUCT_ROWS and CHUNK_ELEMENTS // n,
        since a product computes that many anyway), dropping the least recently used first, before
        the new rows come in, so memory stays within the budget the precomputed route would have
        used, plus the block being copied in. One (m, D) × (D, n) product costs far less than m
        single-row ones. No-op when precomputed.
        """
        if self.matrix is not None:
            return
        cap = self._cap
        new = [j for j in dict.fromkeys(js) if j not in self._cache][:cap]
        if not new:
            return
        if len(new) < MIN_PRODUCT_ROWS:
            fill = (j for j in dict.fromkeys(extra) if j not in self._cache and j not in new)
            new += list(itertools.islice(fill, min(cap, MIN_PRODUCT_ROWS) - len(new)))
        for _ in range(len(self._cache) + len(new) - cap):               # room first: never above cap rows
            self._cache.popitem(last=False)
        block = self.rows(torch.tensor(new, dtype=torch.int64, device=self.x.device))   # (m, n)
        for j, r in zip(new, block):
            self._cache[j] = r.copy()                                    # own memory: a dropped row frees it

    def gain(self, j: int, cover: np.ndarray) -> int:
        """Σ_i max(0, q_ji − cover_i) ∈ [0, n·2^bits] for one sample j, exact; O(n) (O(nD) chunked)."""
        return int(_kernels().row_gain(self.row(j), cover))

    def gains_all(self, cover: np.ndarray) -> np.ndarray:
        """Every sample's gain, the same values as `gain` row by row. (n,) int64, O(n²)."""
        out = np.empty(self.n, dtype=np.int64)
        rb = max(1, CHUNK_ELEMENTS // self.n)
        for r0 in range(0, self.n, rb):
            r1 = min(self.n, r0 + rb)
            blk = (self.matrix[r0:r1] if self.matrix is not None
                   else self.rows(torch.arange(r0, r1, device=self.x.device)))   # (rb, n)
            d = blk - cover                                              # exact: integers or integral floats
            out[r0:r1] = np.maximum(d, 0, out=d).sum(axis=1, dtype=np.int64)
        return out

    def add_to_cover(self, cover: np.ndarray, j: int) -> None:
        """cover ← max(cover, q_j·) in place. (n,)"""
        np.maximum(cover, self.row(j), out=cover)


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
    """Shared validation; returns (w̃ (n,) float64 on the features' device, x̂, k, λ, n)."""
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
    w = scale_weights(weights, n).to(device=x.device)
    return w, x, k, lam, n


def _greedy_terms(w: torch.Tensor, k: int, lam: float, n: int, bits: int) -> tuple[np.ndarray, float]:
    """The two terms of a step's value, w̃_j/k + (λ/n)·2^-bits·gain_j: (w̃/k as float64 numpy (n,), c).

    Every maximiser computes a value as `wk[j] + c * gain` in float64 (Python floats, numpy arrays or
    the compiled loops, the same IEEE operations) from an exact integer gain, so equal gains give
    equal values everywhere.
    """
    return (w.double() / k).cpu().numpy(), lam / n / float(1 << bits)


def _indices(picked, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(picked, dtype=np.int64)).to(device)


def greedy(weights: Optional[torch.Tensor], features: torch.Tensor, k: int, lam: float,
           memory_budget_bytes: int = MEMORY_BUDGET_BYTES) -> torch.Tensor:
    """Plain greedy on J: k steps, each scoring every sample from scratch, in numpy. O(k n²) reads
    (precomputed) or O(k n² D) (chunked): small n only; it is the reference the fast maximisers are
    tested against.

    weights (n,) or None, features (n, D) → (k,) int64 indices in the order they were picked;
    ties go to the lowest index.
    """
    w, x, k, lam, n = _prepare(weights, features, k, lam, memory_budget_bytes)
    if lam == 0:
        return top_k(w, k)                                               # modular: top-k is exact
    sim = Similarity(x, memory_budget_bytes)
    wk, c = _greedy_terms(w, k, lam, n, sim.bits)
    cover = sim.zeros()                                                  # (n,) max_{j∈S} q_ij
    taken = np.zeros(n, dtype=bool)
    picked = []
    for _ in range(k):
        values = wk + c * sim.gains_all(cover).astype(np.float64)        # (n,)
        values[taken] = -math.inf
        j = int(values.argmax())                                         # first among exact ties
        picked.append(j)
        taken[j] = True
        sim.add_to_cover(cover, j)
    sim.release()
    return _indices(picked, w.device)


def lazy_greedy(weights: Optional[torch.Tensor], features: torch.Tensor, k: int, lam: float,
                memory_budget_bytes: int = MEMORY_BUDGET_BYTES) -> torch.Tensor:
    """Exactly `greedy`'s answer, ties included, fast. (n,), (n, D) → (k,) int64 in pick order.

    precomputed route: every gain is kept exact by incremental updates (`greedy_kernels.exact_greedy`):
      adding j lowers gains only through the rows whose cover j raises, a few late in a run, so a
      step reads those rows and takes an argmax, and nothing is ever re-evaluated.
    chunked route: lazy (Minoux) bounds from a heap, one sample at a time: gains only shrink as the
      cover grows, so a stale value is an upper bound; the heap orders (−value, index), so the top
      is picked once its value is fresh, and an exact tie with a lower index would sit above it.
      The first step evaluates all n gains (O(n² D)); later steps usually a few, each O(nD).
    Integer gains make both exact, so both return greedy's indices.
    """
    w, x, k, lam, n = _prepare(weights, features, k, lam, memory_budget_bytes)
    if lam == 0:
        return top_k(w, k)                                               # modular: top-k is exact
    sim = Similarity(x, memory_budget_bytes)
    wk, c = _greedy_terms(w, k, lam, n, sim.bits)
    if sim.matrix is not None:
        picked = _kernels().exact_greedy(sim.matrix, wk, c, k)
        sim.release()
    else:
        picked = _lazy_chunked(sim, wk, c, k)
    return _indices(picked, w.device)


def _lazy_chunked(sim: Similarity, wk: np.ndarray, c: float, k: int) -> list:
    """Minoux's lazy greedy on the chunked route: (−value, index) pairs in a heap of stale upper
    bounds; the top is picked once its value is fresh. → k indices in pick order."""
    cover = sim.zeros()                                                  # (n,) similarity units
    values = wk + c * sim.gains_all(cover).astype(np.float64)            # (n,) exact at step 0
    heap = [(-v, j) for j, v in enumerate(values.tolist())]
    heapq.heapify(heap)
    wk = wk.tolist()
    fresh = [0] * sim.n                                                  # step at which a value was exact
    picked = []
    for step in range(k):
        while True:
            j = heap[0][1]
            if fresh[j] == step:
                heapq.heappop(heap)
                break
            if not sim.cached(j):                                        # ≈ the next 128 re-evaluations
                sim.prefetch([j] + [e[1] for e in heap[1:129] if fresh[e[1]] != step],
                             extra=[e[1] for e in heap[129:257]])
            heapq.heapreplace(heap, (-(wk[j] + c * sim.gain(j, cover)), j))
            fresh[j] = step
        picked.append(j)
        sim.add_to_cover(cover, j)
    return picked


def swap_targets(u: torch.Tensor, n: int, s: int) -> np.ndarray:
    """Partial Fisher–Yates targets for consecutive steps, from s uniforms per step. (steps·s,) → (steps, s) int64

    Step t shuffles the r = n − t samples not yet picked: its i-th swap partner is
    p = i + ⌊u·(r − i)⌋, uniform in [i, r). Partners depend on u, r and i only, never on the pool's
    contents, so all steps' partners are computed in one vectorised pass.
    """
    steps = u.numel() // s
    u = u.reshape(steps, s)                                              # (steps, s)
    i = torch.arange(s, dtype=torch.float64, device=u.device)            # (s,)
    span = (n - torch.arange(steps, dtype=torch.float64, device=u.device))[:, None] - i   # (steps, s): r − i
    p = torch.minimum((u * span).floor(), span - 1) + i                  # (steps, s), exact integers
    return p.to(torch.int64).cpu().numpy()


def partial_shuffle(pool: list, targets: list) -> None:
    """Move a uniform len(targets)-subset of the unpicked head of pool to pool[:len(targets)], in
    place: swap i with targets[i] (one step's row of `swap_targets`). O(len(targets))."""
    for i, p in enumerate(targets):
        pool[i], pool[p] = pool[p], pool[i]


def stochastic_greedy(weights: Optional[torch.Tensor], features: torch.Tensor, k: int, lam: float,
                      generator: torch.Generator, epsilon: float = 0.01,
                      memory_budget_bytes: int = MEMORY_BUDGET_BYTES) -> torch.Tensor:
    """"Lazier than lazy greedy" (Mirzasoleiman et al., 2015) on J, with lazy evaluation inside
    each step.

    Each of the k steps samples s = ⌈(n/k)·ln(1/ε)⌉ candidates uniformly, without replacement,
    from the samples not yet picked (all of them when fewer remain) and adds the one with the
    largest value (first sampled among ties): (1 − 1/e − ε) in expectation. A candidate's last
    value is an upper bound on its current one, so candidates are evaluated in decreasing order of
    that bound and the step stops at the first bound below the best fresh value: the pick is the
    one plain evaluation of all s would make, at a few evaluations instead of s.
    The uniforms for all steps are drawn at once (s per step that samples, O(n ln(1/ε)) in all).
    The loop runs compiled on the precomputed route (`greedy_kernels.stochastic_greedy`), in Python
    on the chunked one (gains by the compiled `row_gain`): the same steps, the same integer gains.
    (n,), (n, D) → (k,) int64 in pick order; same answer on both routes for the same generator.
    """
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must lie in (0, 1), got {epsilon}")
    w, x, k, lam, n = _prepare(weights, features, k, lam, memory_budget_bytes)
    if lam == 0:
        return top_k(w, k)                                               # modular: top-k is exact
    sim = Similarity(x, memory_budget_bytes)
    wk, c = _greedy_terms(w, k, lam, n, sim.bits)
    s = max(1, math.ceil(n / k * math.log(1.0 / epsilon)))              # candidates per step
    sampling_steps = min(k, max(0, n - s))                               # steps with s < remaining
    targets = swap_targets(torch.rand(sampling_steps * s, generator=generator, dtype=torch.float64,
                                      device=generator.device).cpu(), n, s)   # (steps, s)
    if sim.matrix is not None:
        picked = _kernels().stochastic_greedy(sim.matrix, wk, c, k, targets, s)
        sim.release()
    else:
        picked = _stochastic_chunked(sim, wk, c, k, s, targets.tolist())
    return _indices(picked, w.device)


def _stochastic_chunked(sim: Similarity, wk: np.ndarray, c: float, k: int, s: int, targets: list) -> list:
    """Stochastic greedy's steps on the chunked route (the compiled loop's twin, greedy_kernels): each
    step's candidates by partial Fisher–Yates, evaluated in decreasing order of their last value until
    a bound falls below the best fresh one. → k indices in pick order."""
    n, wk, gain = sim.n, wk.tolist(), sim.gain
    remaining = list(range(n))                                           # samples not picked, any order
    bound = [math.inf] * n                                               # ≥ each sample's current value
    cover = sim.zeros()                                                  # (n,) similarity units
    picked = []
    for step in range(k):
        r = n - step
        if s < r:
            partial_shuffle(remaining, targets[step])                    # candidates: remaining[:s]
        cand = remaining[:min(s, r)]
        best, best_pos = -math.inf, -1
        bounds = [bound[j] for j in cand]
        order = sorted(range(len(cand)), key=bounds.__getitem__, reverse=True)  # stable: ties in sampled order
        sim.prefetch(cand)                                               # chunked: the step's rows in one product
        for pos in order:
            if bounds[pos] < best:                                       # this and every later bound
                break
            j = cand[pos]
            v = bound[j] = wk[j] + c * gain(j, cover)
            if v > best or (v == best and pos < best_pos):
                best, best_pos = v, pos
        j = remaining[best_pos]
        picked.append(j)
        remaining[best_pos] = remaining[r - 1]                           # swap-remove in O(1)
        remaining.pop()
        sim.add_to_cover(cover, j)
    return picked


def maximize_facility(weights: Optional[torch.Tensor], features: torch.Tensor, k: int, lam: float,
                      method: str = "stochastic", generator: Optional[torch.Generator] = None,
                      epsilon: float = 0.01, memory_budget_bytes: int = MEMORY_BUDGET_BYTES) -> torch.Tensor:
    """Maximise J with one of METHODS ("stochastic" needs the generator). → (k,) int64.

    The route follows `facility_route`: the (n, n) integer similarity is precomputed when it fits
    `memory_budget_bytes` (default 1 GiB: n ≤ 16,384 for float32 features), else gains are computed
    in chunks.
    """
    if method == "stochastic":
        if generator is None:
            raise ValueError("stochastic greedy needs a seeded torch.Generator")
        return stochastic_greedy(weights, features, k, lam, generator, epsilon, memory_budget_bytes)
    if method == "lazy":
        return lazy_greedy(weights, features, k, lam, memory_budget_bytes)
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
    """Indices of the k largest (or smallest) values, best first, ties to the lowest index (a stable
    sort: topk's order among equal values is unspecified). (n,) → (k,) int64."""
    check_values(values, "values")
    k = check_k(k, values.shape[0])
    return torch.sort(values, descending=largest, stable=True).indices[:k].to(torch.int64)


def argpartition_top(values: torch.Tensor, k: int) -> torch.Tensor:
    """Positions of the k largest values in the order `numpy.argpartition(values, -k)[-k:]` gives
    them, as the authors' prune keeps its survivors (their order is the pass's order). (n,) → (k,).

    numpy's partition is deterministic for given values but not a sort, and how it arranges the
    survivors depends on numpy's build: on numpy 2.x with AVX-512 they come out nearly ascending in
    value (Spearman ρ ≈ 0.8–0.96 on random inputs); an older introselect keeps most of the input order.
    """
    check_values(values, "values")
    k = check_k(k, values.shape[0])
    v = values.detach().to(torch.float64).cpu().numpy()
    return torch.from_numpy(np.argpartition(v, -k)[-k:].astype(np.int64)).to(values.device)


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



def class_shares(labels: torch.Tensor) -> torch.Tensor:
    """(C,) each class's share of `labels` (N,) int64, C = max label + 1 (absent classes 0)."""
    counts = torch.bincount(labels.long().cpu()).to(torch.float64)
    return counts / counts.sum()


def class_balanced_bottom_k(values: torch.Tensor, labels: torch.Tensor, k: int,
                            shares: torch.Tensor) -> torch.Tensor:
    """The k smallest values with each class holding about its share of k. (n,), (n,) → (k,) int64.

    Within each class the values are ranked (r = 0, 1, ... smallest first); the k smallest keys
    (r + ½) / share_c are taken, so class c gets k·share_c ± 1 picks while it has members and a
    class with too few leaves its places to the others (ties: lowest index). Classes with no
    share (absent from the training set) come last.
    """
    check_values(values, "values")
    k = check_k(k, values.shape[0])
    labels = labels.long().to(values.device)
    order = torch.sort(values.to(torch.float64), stable=True).indices       # smallest first
    by_class = torch.sort(labels[order], stable=True).indices               # classes grouped, values kept in order
    grouped = labels[order][by_class]
    counts = torch.bincount(grouped)
    starts = torch.cumsum(counts, 0) - counts                               # first position of each class
    ranks = torch.empty_like(order)
    ranks[order[by_class]] = torch.arange(len(order), device=order.device) - starts[grouped]
    share = torch.zeros(len(counts), dtype=torch.float64, device=values.device)
    m = min(len(share), len(shares))
    share[:m] = shares[:m].to(device=values.device, dtype=torch.float64)
    share_i = share[labels]
    keys = torch.where(share_i > 0, (ranks.to(torch.float64) + 0.5) / share_i.clamp_min(1e-300),
                       torch.full_like(share_i, math.inf))
    return torch.sort(keys, stable=True).indices[:k].to(torch.int64)
