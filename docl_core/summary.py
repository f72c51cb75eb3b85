"""An experiment's final accuracies under both reports, and paired intervals between its arms.

An *arm* is a run folder's name without its seed suffix (`docl-s3` → `docl`, `none-s0` →
`none`), so several variants of one curriculum (`docl --score none` saved as `none-sN`) are
arms of their own. Two reports of a run's accuracy (`RunReader.final_accuracy`):

- `last`: the last epoch's student (ours, stricter),
- `best`: the best epoch of max(student, teacher) (the authors' report).

    final_table(exp_dir) -> DataFrame          arm, seed, last, best (points, 0–100)
    paired_table(finals, against) -> DataFrame arm − baseline per report, paired by seed
    summary_text(exp_dir, against) -> str      both, as `docl summary` prints them

Intervals are 95% t-intervals of seed-paired differences and verdicts are docl_core/stats.py's,
the same the study report and the dashboard give: "beats"/"trails" only when the interval
excludes 0 over at least MIN_SEEDS seeds (two equal differences give an interval of width 0:
no evidence), "too few seeds" below that.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from .names import arm_of
from .store import ExperimentReader
from .stats import paired

REPORTS = {"last": "last student", "best": "best of max(student, teacher)"}


def final_table(exp_dir, split: str = "test") -> pd.DataFrame:
    """One row per complete run: arm, seed, curriculum, last, best (accuracy in points)."""
    rows = []
    for r in ExperimentReader(exp_dir).runs:
        if r.status != "complete":
            continue
        rows.append({"arm": arm_of(r.dir.name), "seed": r.seed, "curriculum": r.curriculum,
                     "last": 100 * r.final_accuracy("last", split),
                     "best": 100 * r.final_accuracy("best", split)})
    return pd.DataFrame(rows, columns=["arm", "seed", "curriculum", "last", "best"])


def paired_table(finals: pd.DataFrame, against: Sequence[str]) -> pd.DataFrame:
    """arm − baseline for every other arm and every baseline present, under both reports."""
    rows = []
    arms = list(dict.fromkeys(finals["arm"]))
    for report in REPORTS:
        wide = finals.pivot_table(index="seed", columns="arm", values=report, aggfunc="first")
        for base in against:
            if base not in wide:
                continue
            for arm in arms:
                if arm == base:
                    continue
                res = paired(wide, arm, base)
                if res:
                    rows.append({"report": report, "arm": arm, "against": base, **{k: res[k] for k in
                                 ("mean", "low", "high", "n", "wins", "verdict")}})
    return pd.DataFrame(rows, columns=["report", "arm", "against", "mean", "low", "high", "n", "wins", "verdict"])


def summary_text(exp_dir, against: Optional[Sequence[str]] = None, split: str = "test") -> str:
    """The per-arm table (mean ± std over seeds, both reports) and the paired differences."""
    finals = final_table(exp_dir, split)
    if finals.empty or not np.isfinite(finals[["last", "best"]].to_numpy()).any():
        return f"{exp_dir}: no complete run with a {split} accuracy to summarise"
    against = [a for a in (against or ("sgd", "random")) if a in set(finals["arm"])]
    per = finals.groupby("arm", sort=False).agg(
        seeds=("seed", "count"), last_mean=("last", "mean"), last_std=("last", "std"),
        best_mean=("best", "mean"), best_std=("best", "std"))
    lines = [f"{Path(exp_dir)}: {split} accuracy (points), mean ± std over seeds",
             f"{'arm':<14}{'seeds':>6}  {'last student':>16}  {'best of max(student, teacher)':>30}"]
    for arm, r in per.iterrows():
        lines.append(f"{arm:<14}{int(r.seeds):>6}  {r.last_mean:>8.2f} ± {r.last_std:5.2f}  "
                     f"{r.best_mean:>22.2f} ± {r.best_std:5.2f}")
    pairs = paired_table(finals, against)
    if len(pairs):
        lines += ["", "paired by seed: arm − baseline, mean [95% t-interval], seeds where the arm is better"]
        for _, p in pairs.iterrows():
            lines.append(f"  {REPORTS[p.report]:<31} {p.arm + ' − ' + p.against:<20} {p['mean']:+6.2f} "
                         f"[{p.low:+6.2f}, {p.high:+6.2f}]  {int(p.wins)} of {int(p.n)}  {p.verdict}")
    return "\n".join(lines)
