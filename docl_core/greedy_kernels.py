"""Compiled inner loops of facility-location maximisation on a precomputed integer similarity.

`selection.py` holds the math, the checks and the chunked route; this module holds only the loops
that take one sample per step over an (n, n) similarity already in memory. Each step does a few
microseconds of work, so in numpy its per-call overhead (≈ 1 µs a call, a dozen calls a step) is
most of the cost; compiled with numba (the library apricot, the standard tool for this job, is
built on it too) a step costs what its memory reads cost.

Similarities arrive as integers: s_ij in units of 2^-b (b = 24 for float32 features, 40 for
float64, `selection.quantize`). Every gain Σ_i max(0, q_ji − cover_i) is then an exact integer,
whatever the order of the sum, so a gain updated step by step equals the one recomputed from
scratch bit for bit, and a value wk_j + c·G_j (float64, the same two IEEE operations as numpy's
`wk + c * gains`) is the same in every maximiser and on either route.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def row_gain(row, cover):
    """Σ_i max(0, row_i − cover_i), exact. (n,), (n,) integers or integral floats (≤ 2^40) → int64"""
    g = np.int64(0)
    for i in range(row.shape[0]):
        d = row[i] - cover[i]
        if d > 0:
            g += np.int64(d)
    return g


BLOCK = 64                      # values per block of exact_greedy's argmax


@njit(cache=True, nogil=True)
def _block_max(wk, c, gains, b, n):
    """(max, first index of it) of wk_l + c·gains_l over block b (l in [64b, 64b + 64) ∩ [0, n))."""
    lo = b * BLOCK
    best = wk[lo] + c * gains[lo]
    arg = lo
    for l in range(lo + 1, min(n, lo + BLOCK)):
        v = wk[l] + c * gains[l]
        if v > best:
            best = v
            arg = l
    return best, arg


@njit(cache=True, nogil=True)
def _lower(gains, qi, old, new):
    """gains_l −= max(0, min(q_il, new) − old) for every l: row i's cover rises from old to new."""
    o = np.int64(old)
    u = np.int64(new)
    for l in range(gains.shape[0]):
        d = min(np.int64(qi[l]), u) - o
        gains[l] -= max(d, 0)


@njit(cache=True, nogil=True)
def _lower2(gains, qi, old_i, new_i, qh, old_h, new_h):
    """`_lower` for two rows in one pass over gains."""
    oi = np.int64(old_i)
    ui = np.int64(new_i)
    oh = np.int64(old_h)
    uh = np.int64(new_h)
    for l in range(gains.shape[0]):
        di = min(np.int64(qi[l]), ui) - oi
        dh = min(np.int64(qh[l]), uh) - oh
        gains[l] -= max(di, 0) + max(dh, 0)


@njit(cache=True, nogil=True)
def exact_greedy(q, wk, c, k):
    """Greedy on J with every gain kept exact by incremental updates: k picks, no re-evaluation.

    q (n, n) symmetric integer similarity, wk (n,) float64 = w̃/k, c = λ/(n·2^b) (value per unit) → (k,)
    int64 in pick order; ties to the lowest index (the first maximum). Adding j changes the cover
    only on Δ = {i : q_ji > cover_i}; the gain of every l then drops by
    Σ_{i∈Δ} max(0, min(q_li, q_ji) − cover_i), read from rows i ∈ Δ (q_li = q_il), two rows a pass.
    Cost per step: |Δ|·n (|Δ| is n at the first pick and ≈ 2 late in a run; Minoux's lazy greedy
    reads ≈ 10 full rows per pick at k ≈ 0.9 n). The argmax is lazy over blocks of 64 values: a
    block's last maximum bounds its current one (values only fall), so the block with the largest
    bound is re-evaluated until the top one is fresh; the first block and first index among equal
    values win, as in a plain argmax.
    """
    n = q.shape[0]
    cover = np.zeros(n, q.dtype)
    gains = np.empty(n, np.int64)
    for l in range(n):
        g = 0
        row = q[l]
        for i in range(n):
            g += row[i]
        gains[l] = g
    wk = wk.copy()                                                       # −inf once taken
    nb = (n + BLOCK - 1) // BLOCK
    bound = np.empty(nb, np.float64)                                     # ≥ the block's current maximum
    arg = np.empty(nb, np.int64)
    fresh = np.full(nb, -1, np.int64)                                    # step at which bound was exact
    for b in range(nb):
        bound[b], arg[b] = _block_max(wk, c, gains, b, n)
    picked = np.empty(k, np.int64)
    delta = np.empty(n, np.int64)
    for step in range(k):
        while True:
            top = 0
            for b in range(1, nb):
                if bound[b] > bound[top]:
                    top = b
            if fresh[top] == step:
                break
            bound[top], arg[top] = _block_max(wk, c, gains, top, n)
            fresh[top] = step
        j = arg[top]
        picked[step] = j
        wk[j] = -np.inf
        if step == k - 1:
            break
        row = q[j]
        m = 0
        for i in range(n):
            if row[i] > cover[i]:
                delta[m] = i
                m += 1
        for a in range(0, m - 1, 2):
            i = delta[a]
            h = delta[a + 1]
            _lower2(gains, q[i], cover[i], row[i], q[h], cover[h], row[h])
            cover[i] = row[i]
            cover[h] = row[h]
        if m % 2:
            i = delta[m - 1]
            _lower(gains, q[i], cover[i], row[i])
            cover[i] = row[i]
    return picked


@njit(cache=True, nogil=True)
def stochastic_greedy(q, wk, c, k, targets, s):
    """Stochastic greedy with lazy evaluation inside each step (see selection.stochastic_greedy).

    q (n, n) integer similarity, wk (n,), c as in `exact_greedy`; targets (steps, s) int64: step t's
    partial Fisher–Yates partners over the samples not yet picked (`selection.swap_targets`), one row
    per step that samples (s < n − t), later steps take every remaining sample. → (k,) int64.
    Candidates are evaluated in decreasing order of their last value (an upper bound, stable: ties
    in sampled order) until a bound falls below the best fresh value: the pick is the one that
    evaluating all candidates makes, the first sampled among exact ties.
    """
    n = q.shape[0]
    cover = np.zeros(n, q.dtype)
    bound = np.full(n, np.inf)
    remaining = np.arange(n)
    picked = np.empty(k, np.int64)
    sampling = targets.shape[0]
    for step in range(k):
        r = n - step
        if step < sampling:
            t = targets[step]
            for i in range(s):
                p = t[i]
                a = remaining[i]
                remaining[i] = remaining[p]
                remaining[p] = a
            m = s
        else:
            m = r
        neg = np.empty(m)
        for i in range(m):
            neg[i] = -bound[remaining[i]]
        order = np.argsort(neg, kind="mergesort")                       # stable: ties in sampled order
        best = -np.inf
        best_pos = -1
        for o in range(m):
            pos = order[o]
            if -neg[pos] < best:                                         # this and every later bound
                break
            j = remaining[pos]
            v = wk[j] + c * row_gain(q[j], cover)
            bound[j] = v
            if v > best or (v == best and pos < best_pos):
                best = v
                best_pos = pos
        j = remaining[best_pos]
        picked[step] = j
        remaining[best_pos] = remaining[r - 1]                           # swap-remove in O(1)
        row = q[j]
        for i in range(n):
            if row[i] > cover[i]:
                cover[i] = row[i]
    return picked
