"""How far the byproduct score is from the exact one, read from run folders.

The authors' byproduct (estimator `paper`, column `score_paper`) is free but stale; the exact
score a_i = g_i · ḡ (column `score_exact`) costs about two epochs. Where a round logged both
(under `paper`: every epoch with `log_every="epoch"`, else at episode starts; under `steps`:
every round when `paper` is among the logged estimators), these functions say per round

- `spearman_all`: Spearman rank correlation of the two over all N samples,
- `spearman_selected`: the same over the samples the curriculum selected that round,
- `overlap_topk`: |top-k(byproduct) ∩ top-k(exact)| / k with k = |S_t| (the round's subset size),
- `jaccard_topk`: |A ∩ B| / |A ∪ B| of the same two top-k sets,

beside the round's peak learning rate, the run's momentum and its peak lr setting.

    round_fidelity(run_dir) -> DataFrame      one row per round with both scores
    experiment_fidelity(exp_dir) -> DataFrame the same for every complete run of a folder
    spearman(a, b) -> float                   average ranks for ties (no scipy needed)
    topk_overlap(a, b, k) -> (overlap, jaccard)

Ties: ranks are averaged (Spearman's usual convention); top-k breaks ties by sample index, so
the sets are deterministic. A constant vector has no rank correlation: NaN.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

BYPRODUCT, EXACT = "score_paper", "score_exact"


def average_ranks(x) -> np.ndarray:
    """Ranks 1..n of x (n,), tied values sharing their mean rank."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    sx = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sx) != 0) + 1]        # first position of each tie group
    ends = np.r_[starts[1:], len(x)]
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = 0.5 * (a + b - 1) + 1
    return ranks


def spearman(a, b) -> float:
    """Spearman's rank correlation of two vectors (n,): Pearson's of their average ranks."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 2:
        return float("nan")
    ra, rb = average_ranks(a[keep]), average_ranks(b[keep])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def top_k(x, k: int) -> np.ndarray:
    """Indices of the k largest entries of x, ties broken by the lower index."""
    x = np.asarray(x, dtype=float)
    return np.lexsort((np.arange(len(x)), -x))[:k]


def topk_overlap(a, b, k: int) -> tuple[float, float]:
    """(|A ∩ B| / k, |A ∩ B| / |A ∪ B|) for A, B the top-k of a and b."""
    if not 0 < k <= len(a):
        return float("nan"), float("nan")
    A, B = set(top_k(a, k).tolist()), set(top_k(b, k).tolist())
    inter = len(A & B)
    return inter / k, inter / len(A | B)


def round_fidelity(run_dir, byproduct: str = BYPRODUCT, exact: str = EXACT) -> pd.DataFrame:
    """Per round of one run where both scores were logged: round, epoch, episode, lr, momentum,
    lr_setting, n, k, spearman_all, spearman_selected, overlap_topk, jaccard_topk."""
    from .store import RunReader
    r = RunReader(run_dir)
    rounds = r.rounds().set_index("round")
    cfg = r.meta.get("config", {})
    paper = cfg.get("protocol") == "paper"
    momentum = float(cfg.get("paper", {}).get("momentum", 0.9)) if paper else 0.9
    lr_setting = float(cfg.get("paper", {}).get("lr_max", np.nan) if paper else cfg.get("schedule", {}).get("lr", np.nan))
    rows = []
    for t in r.round_ids:
        path = Path(run_dir) / "samples" / f"round={t:04d}.parquet"
        try:
            df = pd.read_parquet(path, columns=[byproduct, exact, "selected"])
        except Exception:  # a round without one of the columns: nothing to compare
            continue
        if not (df[exact].notna().all() and df[byproduct].notna().all()):
            continue
        sel = df["selected"].to_numpy(bool)
        k = int(sel.sum())
        a, b = df[byproduct].to_numpy(float), df[exact].to_numpy(float)
        ov, jac = topk_overlap(a, b, k) if 0 < k < len(df) else (np.nan, np.nan)
        row = rounds.loc[t] if t in rounds.index else {}
        rows.append({"round": t, "epoch": int(row.get("epoch", t)), "episode": int(row.get("episode", t)),
                     "lr": float(row.get("lr", np.nan)), "momentum": momentum, "lr_setting": lr_setting,
                     "n": len(df), "k": k, "spearman_all": spearman(a, b),
                     "spearman_selected": spearman(a[sel], b[sel]) if k > 2 else np.nan,
                     "overlap_topk": ov, "jaccard_topk": jac})
    return pd.DataFrame(rows, columns=["round", "epoch", "episode", "lr", "momentum", "lr_setting", "n", "k",
                                       "spearman_all", "spearman_selected", "overlap_topk", "jaccard_topk"])


def experiment_fidelity(exp_dir, byproduct: str = BYPRODUCT, exact: str = EXACT,
                        runs: Optional[list[str]] = None) -> pd.DataFrame:
    """round_fidelity for every complete run of an experiment folder (or the named runs), with
    columns run, curriculum, seed and protocol in front."""
    from .store import ExperimentReader
    frames = []
    for r in ExperimentReader(exp_dir).runs:
        if r.status != "complete" or (runs is not None and r.dir.name not in runs):
            continue
        f = round_fidelity(r.dir, byproduct, exact)
        if len(f):
            cfg = r.meta.get("config", {})
            f.insert(0, "protocol", cfg.get("protocol", "steps"))
            f.insert(0, "seed", r.seed)
            f.insert(0, "curriculum", r.curriculum)
            f.insert(0, "run", r.dir.name)
            frames.append(f)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
