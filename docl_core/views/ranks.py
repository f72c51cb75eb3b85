"""The Scores page's frames: sorted heatmaps, quantile bands, trajectories, tie-aware ranks, rank
churn between rounds and the agreement of two estimators."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from ..stats import spearman


def heatmap_bins(M: np.ndarray, order: str = "last", max_rows: int = 400) -> tuple[np.ndarray, pd.DataFrame]:
    """Samples × rounds heatmap, sorted and reduced to at most max_rows rows.

    Samples are sorted by their value in the last round ("last"), their mean over rounds
    ("mean") or their first round ("first"), highest first, then cut into at most max_rows
    contiguous groups of equal size (sorted-quantile binning); each cell is the group mean.

    Returns: Z (rows, R) and a frame with, per row, the rank range and group size.
    """
    R, N = M.shape
    if N == 0 or R == 0:
        return np.zeros((0, R), dtype=np.float32), pd.DataFrame(columns=["first_rank", "last_rank", "samples"])
    key = {"last": M[-1], "first": M[0]}.get(order)
    if key is None:
        key = np.nanmean(M, axis=0)
    key = np.where(np.isnan(key), -np.inf, key)
    idx = np.argsort(-key, kind="stable")
    rows = min(max_rows, N)
    edges = np.linspace(0, N, rows + 1).round().astype(int)  # (rows+1,)
    S = M[:, idx].T  # (N, R), sorted
    with np.errstate(invalid="ignore"):
        sums = np.add.reduceat(np.nan_to_num(S), edges[:-1], axis=0)
        counts = np.add.reduceat(~np.isnan(S), edges[:-1], axis=0)
        Z = (sums / np.where(counts == 0, np.nan, counts)).astype(np.float32)  # (rows, R)
    info = pd.DataFrame({"first_rank": edges[:-1] + 1, "last_rank": edges[1:],
                         "samples": np.diff(edges)})
    return Z, info


def quantile_bands(M: np.ndarray, rounds: Sequence[int],
                   qs: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> pd.DataFrame:
    """Per-round quantiles of a (R, N) matrix: round, q05, q25, q50, q75, q95."""
    if M.size == 0:
        return pd.DataFrame(columns=["round", *[f"q{int(q * 100):02d}" for q in qs]])
    Q = (np.quantile(M, qs, axis=1) if not np.isnan(M).any() else np.nanquantile(M, qs, axis=1)).T  # (R, len(qs))
    df = pd.DataFrame(Q, columns=[f"q{int(q * 100):02d}" for q in qs])
    df.insert(0, "round", list(rounds))
    return df


def histogram(values: np.ndarray, bins: int = 60) -> pd.DataFrame:
    """Counts of finite values in equal-width bins: left, right, center, count."""
    v = values[np.isfinite(values)]
    if not len(v):
        return pd.DataFrame(columns=["left", "right", "center", "count"])
    counts, edges = np.histogram(v, bins=bins)
    return pd.DataFrame({"left": edges[:-1], "right": edges[1:], "center": 0.5 * (edges[:-1] + edges[1:]),
                         "count": counts})


def trajectories(M: np.ndarray, rounds: Sequence[int], sample_ids: Iterable[int]) -> pd.DataFrame:
    """Long frame sample_id, round, value for chosen samples of a (R, N) matrix."""
    ids = [int(i) for i in sample_ids if 0 <= int(i) < M.shape[1]]
    if not ids:
        return pd.DataFrame(columns=["sample_id", "round", "value"])
    vals = M[:, ids]  # (R, len(ids))
    return pd.DataFrame({"sample_id": np.repeat(ids, len(rounds)),
                         "round": np.tile(list(rounds), len(ids)),
                         "value": vals.T.reshape(-1)})


def default_trajectory_samples(M: np.ndarray, count: int = 6) -> list[int]:
    """A spread of samples to follow: highest, median and lowest by last-round value."""
    if M.size == 0:
        return []
    last = np.where(np.isnan(M[-1]), -np.inf, M[-1])
    order = np.argsort(-last, kind="stable")
    picks = np.linspace(0, len(order) - 1, count).round().astype(int)
    return list(dict.fromkeys(int(order[p]) for p in picks))


def row_ranks(M: np.ndarray) -> np.ndarray:
    """(R, N) float64 ranks 0..N−1 within each row of (R, N): NaN counts as lowest, tied values
    share their mean rank (no invented order among them), and a row whose values are all equal
    (all zero, all NaN) has no ranking at all: NaN."""
    V = np.where(np.isnan(M), -np.inf, M)
    order = np.argsort(V, axis=1)  # (R, N); introsort: ties are resolved below, not by the sort
    ranks = np.full(M.shape, np.nan, dtype=np.float64)
    N = M.shape[1]
    for r in range(M.shape[0]):
        s = V[r, order[r]]
        if N == 0 or s[0] == s[-1]:
            continue                                   # constant row: no ranking
        new = np.r_[True, s[1:] != s[:-1]]            # first position of each tie group
        if new.all():                                  # no ties: positions are the ranks
            ranks[r, order[r]] = np.arange(N, dtype=np.float64)
            continue
        starts = np.flatnonzero(new)
        ends = np.r_[starts[1:], N]
        mean_rank = (starts + ends - 1) / 2.0          # mean of positions start..end−1
        ranks[r, order[r]] = np.repeat(mean_rank, ends - starts)
    return ranks


def _spearman_rows(RA: np.ndarray, RB: np.ndarray) -> np.ndarray:
    """Spearman ρ per row: Pearson's correlation of the (tie-averaged) ranks; NaN where a row has
    no ranking (constant) or no spread."""
    if RA.shape[1] < 2:
        return np.full(RA.shape[0], np.nan)
    a = RA - RA.mean(axis=1, keepdims=True)
    b = RB - RB.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=1) / den, np.nan)


def rank_churn(M: np.ndarray, rounds: Sequence[int], top_frac: float = 0.1,
               ranks: Optional[np.ndarray] = None) -> pd.DataFrame:
    """How much the ranking changes between consecutive rounds.

    spearman: rank correlation of round t−1 and round t values (1 = same order);
    top_overlap: Jaccard overlap of the top `top_frac` samples in both rounds (by tie-averaged
    rank, so a tie group at the cut is in or out as a whole). Both are NaN where either round
    has no ranking (every value equal, e.g. all zero): there is nothing to compare, and a chart
    must not draw 1.0 there. `ranks` = row_ranks(M) when the caller has them.
    """
    R, N = M.shape
    if R < 2 or N == 0:
        return pd.DataFrame(columns=["round", "spearman", "top_overlap"])
    k = max(1, int(round(top_frac * N)))
    ranks = row_ranks(M) if ranks is None else ranks  # (R, N)
    ranked = ~np.isnan(ranks).all(axis=1)  # (R,) rows with a ranking
    top = ranks >= N - k  # (R, N) the k highest in each round (False where unranked)
    inter = (top[1:] & top[:-1]).sum(axis=1)
    union = top[1:].sum(axis=1) + top[:-1].sum(axis=1) - inter
    both = ranked[1:] & ranked[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        overlap = np.where(both & (union > 0), inter / np.maximum(union, 1), np.nan)
    return pd.DataFrame({"round": list(rounds)[1:], "spearman": _spearman_rows(ranks[:-1], ranks[1:]),
                         "top_overlap": overlap})


def estimator_agreement(A: np.ndarray, B: np.ndarray, rounds: Sequence[int]) -> pd.DataFrame:
    """Per round: Pearson and Spearman correlation of two estimators' scores (R, N) each."""
    rows = []
    both = np.isfinite(A) & np.isfinite(B)
    full = both.all(axis=1)
    spear = np.full(len(rounds), np.nan)
    if full.any():
        spear[full] = _spearman_rows(row_ranks(A[full]), row_ranks(B[full]))
    for r, t in enumerate(rounds):
        ok = both[r]
        if ok.sum() < 3:
            rows.append({"round": t, "pearson": np.nan, "spearman": np.nan})
            continue
        a, b = A[r][ok].astype(np.float64), B[r][ok].astype(np.float64)
        pear = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else np.nan
        rho = spear[r] if full[r] else spearman(a, b)  # tie-aware, like the full rows
        rows.append({"round": t, "pearson": pear, "spearman": float(rho)})
    return pd.DataFrame(rows, columns=["round", "pearson", "spearman"])
