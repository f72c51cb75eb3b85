"""Sentences from numbers: every claim of the reading is one of these functions of an interval or
a stated test, so "beats", "trails", "ties", "filters noisy labels" or "converged" appear only
when the numbers say so (tests/test_study.py feeds synthetic numbers and checks they flip).
"""
from __future__ import annotations


import numpy as np

from ..stats import rank_correlation_test  # noqa: F401 (the study's modules read it from here)
from .stats import CONVERGED_POINTS, LAST_FRACTION, MIN_SEEDS, verdict


def _num(v: float, digits: int = 2) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:+.{digits}f}"


def interval(r: dict, digits: int = 2) -> str:
    """"+0.52 [+0.10, +0.94]" of a paired result."""
    return f"{_num(r.get('mean'), digits)} [{_num(r.get('low'), digits)}, {_num(r.get('high'), digits)}]"


def compare(a: str, b: str, r: dict, unit: str = "points") -> str:
    """One comparison A − B, worded by its 95% interval."""
    if not r or not r.get("n"):
        return f"{a} against {b}: no paired runs."
    v = verdict(r.get("low", np.nan), r.get("high", np.nan), r.get("higher", True), r["n"])
    numbers = f"{a} − {b} = {interval(r)} {unit}, {a} better on {r.get('wins', 0)} of {r['n']} seeds"
    if v == "too few seeds":
        return f"{a} against {b}: {numbers}; too few seeds for a verdict (need ≥ {MIN_SEEDS})."
    if v == "beats":
        return f"{a} beats {b}: {numbers}."
    if v == "trails":
        return f"{a} trails {b}: {numbers}."
    return f"no clear difference between {a} and {b}: {numbers} (the interval contains 0)."


def convergence(curriculum: str, title: str, c: dict) -> str:
    """Whether a curriculum's test accuracy flattened, from stats.convergence."""
    if not c or not np.isfinite(c.get("gain", np.nan)):
        return f"{curriculum}'s convergence on {title} could not be checked (no complete runs)."
    last = f"epochs {c['cut'] + 1}–{c['epochs'] - 1}"
    numbers = (f"the last {LAST_FRACTION:.0%} of epochs ({last}) change its mean test accuracy by "
               f"{c['gain']:+.2f} points over the best of the epochs before "
               f"([{_num(c['low'])}, {_num(c['high'])}], {c['n']} seeds)")
    if c["converged"]:
        falls = " (it even falls: the interval lies below 0)" if np.isfinite(c["high"]) and c["high"] < 0 else ""
        return (f"{curriculum} has converged on {title}: {numbers}, the whole interval below the "
                f"{CONVERGED_POINTS} points we call flat{falls}.")
    if c.get("state") == "unclear":
        return (f"Whether {curriculum} has converged on {title} cannot be told from these seeds: {numbers}; the "
                f"interval reaches above the {CONVERGED_POINTS} points we call flat. Read this column as possibly "
                "budget-limited.")
    return (f"{curriculum} has **not** converged on {title}: {numbers}, the interval at or above "
            f"{CONVERGED_POINTS} points; read this column as a budget-limited comparison.")


def noisy_share(curriculum: str, r: dict) -> str:
    """Whether a curriculum filters or chases flipped labels: its share of S_t against the
    training set's, paired by seed."""
    if not r or not r.get("n"):
        return f"{curriculum}: no selection to read."
    numbers = (f"{r['share']:.1f}% of its subsets against {r['base']:.1f}% of the training set, "
               f"difference {interval(r, 1)} points")
    v = verdict(r["low"], r["high"], True, r["n"])
    if v == "too few seeds":
        return f"{curriculum}'s share of noisy labels: {numbers}; too few seeds for a verdict (need ≥ {MIN_SEEDS})."
    if v == "trails":
        return f"{curriculum} filters noisy labels: {numbers}."
    if v == "beats":
        return f"{curriculum} chases noisy labels: {numbers}."
    return f"{curriculum} takes noisy labels at about their share: {numbers} (the interval contains 0)."


def relation(x_name: str, y_name: str, r: dict) -> str:
    """"higher X goes with higher/lower Y" only when the rank correlation's test rejects 0."""
    if not r or not np.isfinite(r.get("rho", np.nan)):
        return f"{x_name} against {y_name}: too few points to test."
    numbers = f"Spearman ρ = {r['rho']:+.2f} over {r['n']} points"
    if not r["significant"]:
        return f"no clear relation between {x_name} and {y_name} ({numbers}, not different from 0 at 5%)."
    way = "higher" if r["rho"] > 0 else "lower"
    return f"a higher {x_name} goes with a {way} {y_name} ({numbers}, different from 0 at 5%)."


def agreement(rho: float) -> str:
    """Words for a median rank correlation (fixed bands, stated with the number)."""
    if not np.isfinite(rho):
        return "was not measured against the exact score"
    if rho < -0.1:
        return f"ranks samples against the exact score (median ρ = {rho:+.2f})"
    if rho < 0.1:
        return f"is unrelated to the exact score's ranking (median ρ = {rho:+.2f})"
    if rho < 0.5:
        return f"agrees weakly with the exact score's ranking (median ρ = {rho:+.2f})"
    return f"agrees with the exact score's ranking (median ρ = {rho:+.2f})"


def shift(a: str, b: str, r: dict, what: str = "ρ") -> str:
    """A − B of a quantity that is neither good nor bad (a correlation): "higher", "lower" or no clear difference."""
    if not r or not r.get("n"):
        return f"{a} against {b}: no paired values."
    v = verdict(r.get("low", np.nan), r.get("high", np.nan), True)
    numbers = f"{a} − {b} = {interval(r)} over {r['n']} paired epochs"
    if v == "no clear difference":
        return f"{what} shows no clear difference between {a} and {b}: {numbers} (the interval contains 0)."
    return f"{what} is {'higher' if v == 'beats' else 'lower'} under {a} than under {b}: {numbers}."


def ratio(a: str, b: str, x: float, y: float, what: str) -> str:
    """"A used 0.67× B's samples" (a measured ratio, no verdict)."""
    if not (np.isfinite(x) and np.isfinite(y)) or y == 0:
        return ""
    return f"{a} used {x / y:.2f}× {b}'s {what}"
