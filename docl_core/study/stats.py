"""The statistics of a study: paired t-intervals, their verdicts, and SGD's convergence check.

Every claim the reading makes goes through one of these functions, so a sentence can only say
what an interval or a stated test says (reading.py turns the results into words).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

# two-sided 95% Student t quantiles t_{0.975, df}, df = 1..30 (standard tables)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042]

CONVERGED_POINTS = 0.5   # SGD has converged when the last quarter of epochs adds less than this (points)
LAST_FRACTION = 0.25     # ... "the last quarter"


def t_quantile_975(df: int) -> float:
    """t_{0.975, df}: scipy when installed, else the table (df ≤ 30) or 1.96 + 2.4/df beyond."""
    if df < 1:
        return float("nan")
    try:
        from scipy.stats import t
        return float(t.ppf(0.975, df))
    except ImportError:
        return _T975[df - 1] if df <= 30 else 1.96 + 2.4 / df  # within 1e-3 for df > 30


def paired_ci(diff) -> tuple[float, float, float, int]:
    """Mean of paired differences and its 95% t-interval. → (mean, low, high, n)."""
    d = np.asarray(diff, dtype=float)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    m = float(d.mean())
    if n < 2:
        return m, float("nan"), float("nan"), n
    half = t_quantile_975(n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
    return m, m - half, m + half, n


def verdict(low: float, high: float, higher_is_better: bool = True) -> str:
    """What a 95% interval of A − B says: "beats", "trails" or "no clear difference"."""
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 <= high:
        return "no clear difference"
    return "beats" if (low > 0) == higher_is_better else "trails"


def paired(wide: pd.DataFrame, a: str, b: str, higher_is_better: bool = True) -> dict:
    """a − b paired by the index (seeds) of a wide frame (one column per arm)."""
    if a not in wide or b not in wide:
        return {}
    pair = wide[[a, b]].dropna()
    m, lo, hi, n = paired_ci((pair[a] - pair[b]).to_numpy())
    wins = int(((pair[a] > pair[b]) if higher_is_better else (pair[a] < pair[b])).sum())
    return {"a": a, "b": b, "mean": m, "low": lo, "high": hi, "n": n, "wins": wins,
            "verdict": verdict(lo, hi, higher_is_better)}


def convergence(curves: pd.DataFrame, col: str = "test_acc", scale: float = 100.0) -> dict:
    """Has a curriculum's accuracy flattened? `curves`: rows (seed, epoch, col) of one curriculum.

    gain = mean over seeds of [final value − best value reached by the epoch at (1 − LAST_FRACTION)·E];
    the best-so-far rather than the value at that epoch, because restarts of the cosine make the
    curve saw-toothed. Read with its 95% interval over seeds: "flat" when the whole interval lies
    below CONVERGED_POINTS, "rising" when it lies at or above, "unclear" otherwise (the seeds cannot
    tell). → {gain, low, high, n, epochs, cut, converged (flat), state}.
    """
    if not len(curves):
        return {}
    epochs = int(curves["epoch"].max()) + 1
    cut = int(math.floor((1 - LAST_FRACTION) * epochs)) - 1   # last epoch of the first three quarters
    gains = []
    for _, g in curves.groupby("seed"):
        g = g.sort_values("epoch")
        before = g.loc[g["epoch"] <= cut, col]
        if len(before) and len(g):
            gains.append((float(g[col].iloc[-1]) - float(before.max())) * scale)
    m, lo, hi, n = paired_ci(gains)
    state = ("flat" if np.isfinite(hi) and hi < CONVERGED_POINTS else
             "rising" if np.isfinite(lo) and lo >= CONVERGED_POINTS else "unclear")
    return {"gain": m, "low": lo, "high": hi, "n": n, "epochs": epochs, "cut": cut,
            "converged": state == "flat", "state": state}


def share_vs_base(shares: pd.Series, base: pd.Series) -> dict:
    """Noisy samples' share of S_t against their share of the training set, paired by seed."""
    m, lo, hi, n = paired_ci((shares - base).dropna().to_numpy() * 100)
    return {"mean": m, "low": lo, "high": hi, "n": n, "share": float(shares.mean()) * 100,
            "base": float(base.mean()) * 100}
