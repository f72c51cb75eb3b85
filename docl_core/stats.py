"""The statistics every verdict in docl goes through: ranks, Spearman's ρ, paired t-intervals.

The study report, the dashboard's Compare page and `docl summary` all call these, so the same
runs get the same interval and the same word everywhere:

    average_ranks(x) -> (n,)                 1-based ranks of the finite values, ties share their mean
    spearman(a, b) -> float                  ρ over the pairs where both are finite (≥ MIN_PAIRS of them)
    rank_correlation_test(x, y) -> dict      ρ and whether its t-test rejects 0 at 5 %
    t_quantile(p, df) -> float               Student's t inverse CDF (ours: no scipy on the first page)
    paired_ci(diff, level) -> (mean, low, high, n)
    verdict(low, high, higher_is_better, n) -> "beats" | "trails" | "no clear difference" | "too few seeds"
    paired(wide, a, b, higher_is_better) -> dict   a − b paired by seed, with its verdict

A verdict needs the interval to exclude 0 *and* at least MIN_SEEDS paired seeds: two seeds give
a t-interval with one degree of freedom (±12.7 standard errors), and two equal differences give
one of width 0, which is no evidence at all.
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np
import pandas as pd

MIN_SEEDS = 3   # paired seeds a verdict needs (fewer: an interval, but "too few seeds")
MIN_PAIRS = 3   # finite pairs a Spearman ρ needs (two points always give ±1)
VERDICTS = ("beats", "trails", "no clear difference", "too few seeds")


# ----------------------------------------------------------------------------- ranks

def average_ranks(x) -> np.ndarray:
    """(n,) float64 ranks 1..n' of the n' finite values of x (n,), ties sharing their mean rank
    (ranks 3 and 4 tied → 3.5 each); NaN and ±inf stay NaN."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    keep = np.flatnonzero(np.isfinite(x))
    if not len(keep):
        return out
    v = x[keep]
    order = np.argsort(v)  # any order within a tie group: its members share the group's mean rank
    s = v[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])   # first position of each tie group
    ends = np.r_[starts[1:], len(s)]
    ranks = np.empty(len(s))
    ranks[order] = np.repeat((starts + ends - 1) / 2.0 + 1.0, ends - starts)
    out[keep] = ranks
    return out


def spearman(a, b) -> float:
    """Spearman's ρ of a, b (n,): Pearson's correlation of their average ranks over the samples
    where both are finite. NaN when fewer than MIN_PAIRS such samples or either is constant there."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < MIN_PAIRS:
        return float("nan")
    ra, rb = average_ranks(a[ok]), average_ranks(b[ok])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def rank_correlation_test(x, y) -> dict:
    """Spearman's ρ of x, y (n,) with the t-test of a correlation, t = |ρ|·√((n−2)/(1−ρ²)) on n − 2
    degrees of freedom, two-sided at 5 %. → {rho, n, significant} (never significant below 4 pairs)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = int((np.isfinite(x) & np.isfinite(y)).sum())
    rho = spearman(x, y)
    if n < 4 or not np.isfinite(rho):
        return {"rho": rho, "n": n, "significant": False}
    t = abs(rho) * math.sqrt((n - 2) / max(1e-12, 1 - rho * rho))
    return {"rho": rho, "n": n, "significant": bool(t > t_quantile(0.975, n - 2))}


# ----------------------------------------------------------------------------- t-intervals

def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (Lentz's method)."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast below the mean: use the symmetry
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * (f - 1.0)


@functools.lru_cache(maxsize=256)  # a few (level, seeds − 1) pairs per experiment
def t_quantile(p: float, df: float) -> float:
    """Student's t quantile (the inverse CDF at p, df > 0 degrees of freedom), by bisection on the CDF
    1 − ½ I_{df/(df+t²)}(df/2, ½); tests check it against scipy to 1e-9. Ours so that Compare, the
    dashboard's first page, does not import scipy (about half a second) for one number."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if not df > 0:
        return float("nan")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    tail = 1.0 - p  # upper tail: ½ I_{df/(df+t²)}(df/2, ½) must equal it
    lo, hi = 0.0, 1.0
    while 0.5 * _betainc(df / 2, 0.5, df / (df + hi * hi)) > tail:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if 0.5 * _betainc(df / 2, 0.5, df / (df + mid * mid)) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def t_quantile_975(df: int) -> float:
    """t_{0.975, df}, the half-width factor of a two-sided 95 % interval; NaN for df < 1."""
    return t_quantile(0.975, df) if df >= 1 else float("nan")


def paired_ci(diff, level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean of paired differences (n,) and its two-sided t-interval over the finite ones.
    → (mean, low, high, n); low = high = NaN below two differences."""
    d = np.asarray(diff, dtype=np.float64)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    m = float(d.mean())
    if n < 2:
        return m, float("nan"), float("nan"), n
    half = t_quantile(0.5 + level / 2, n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
    return m, m - half, m + half, n


def verdict(low: float, high: float, higher_is_better: bool = True, n: Optional[int] = None) -> str:
    """What an interval of A − B says: "beats" or "trails" when it excludes 0, "no clear difference"
    when it holds 0 (or is undefined), "too few seeds" when n (paired seeds, when given) < MIN_SEEDS."""
    if n is not None and n < MIN_SEEDS:
        return "too few seeds"
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 <= high:
        return "no clear difference"
    return "beats" if (low > 0) == higher_is_better else "trails"


def paired(wide: pd.DataFrame, a: str, b: str, higher_is_better: bool = True) -> dict:
    """a − b paired by the index (seeds) of a wide frame (one column per arm).
    → {a, b, mean, low, high, n, wins, verdict}; {} when either column is missing."""
    if a not in wide or b not in wide:
        return {}
    pair = wide[[a, b]].dropna()
    m, lo, hi, n = paired_ci((pair[a] - pair[b]).to_numpy())
    wins = int(((pair[a] > pair[b]) if higher_is_better else (pair[a] < pair[b])).sum())
    return {"a": a, "b": b, "mean": m, "low": lo, "high": hi, "n": n, "wins": wins,
            "verdict": verdict(lo, hi, higher_is_better, n)}
