"""The study's own statistics: SGD's convergence check and the noisy share of a selection.

Intervals, verdicts and ranks come from docl_core/stats.py, the one module the dashboard and
`docl summary` use too (re-exported here for the study's modules). Every claim the reading makes
goes through one of these functions, so a sentence can only say what an interval or a stated
test says (reading.py turns the results into words).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..stats import MIN_SEEDS, paired, paired_ci, t_quantile_975, verdict  # noqa: F401 (re-exported)

CONVERGED_POINTS = 0.5   # SGD has converged when the last quarter of epochs adds less than this (points)
LAST_FRACTION = 0.25     # ... "the last quarter"


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
