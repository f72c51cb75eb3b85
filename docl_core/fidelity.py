"""How far the byproduct score is from the exact one, read from run folders.

The authors' byproduct (estimator `paper`, column `score_paper`) is free but stale; the exact
score a_i = g_i · ḡ (column `score_exact`) costs about two epochs. Where a round logged both
(under `paper`: every epoch with `log_every="epoch"`, else at episode starts; under `steps`:
every round when `paper` is among the logged estimators), these functions say per round

- `spearman_all`: Spearman rank correlation of the two over all N samples, in the same frame t,
- `spearman_selected`: the same over the samples the curriculum selected that round,
- `overlap_topk`: |top-k(byproduct) ∩ top-k(exact)| / k with k = |S_t| (the round's subset size),
- `jaccard_topk`: |A ∩ B| / |A ∪ B| of the same two top-k sets,

and, at the time each score describes (the byproduct is built from logits recorded while
training, so the byproduct of frame t+1 summarises how samples moved during epoch t, while the
exact score of frame t is the instantaneous score at the start of that interval):

- `spearman_start`: Spearman of the byproduct of frame t+1 with the exact score of frame t, i.e.
  the byproduct after an interval against the exact score at the interval's start,
- `exact_persistence`: Spearman of the exact score of frame t with the exact score of frame
  t+1: how much the exact ranking itself survives one epoch, the ceiling for any estimator that
  looks back one epoch,

beside the round's peak learning rate, the run's momentum and its peak lr setting. Both new
columns are NaN where frame t+1 does not exist or its column is missing or not finite for every
sample (runs that log the exact score only at episode starts have `spearman_start` wherever the
next frame exists, but `exact_persistence` only where two consecutive frames logged it). Samples
of the two frames are matched by `sample_id`.

Reading the sign: ρ = +1 means the two rankings agree, 0 that they are unrelated, and a negative
ρ that the byproduct ranks samples opposite to the exact score (the samples it rates highest are
those the exact score rates lowest). A negative `spearman_start` with a positive
`exact_persistence` means the estimator, not the score's own drift, is at fault: the exact
ranking persisted over the epoch, yet the byproduct, even read against the very start of the
interval it summarises, reverses it. `spearman_start` near `exact_persistence` means the
byproduct is about as good as a one-epoch-old score can be; a low `exact_persistence` means no
look-back estimator can rank well, whatever it does.

    round_fidelity(run_dir) -> DataFrame      one row per round with both scores
    experiment_fidelity(exp_dir) -> DataFrame the same for every complete run of a folder
    spearman(a, b) -> float                   docl_core.stats.spearman (average ranks for ties)
    topk_overlap(a, b, k) -> (overlap, jaccard)

Ties: ranks are averaged (Spearman's usual convention); top-k breaks ties by sample index, so
the sets are deterministic. A constant vector has no rank correlation: NaN.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from .stats import average_ranks, spearman  # noqa: F401 (this module's public names since it began)

BYPRODUCT, EXACT = "score_paper", "score_exact"


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


COLUMNS = ["round", "epoch", "episode", "lr", "momentum", "lr_setting", "n", "k", "spearman_all",
           "spearman_selected", "overlap_topk", "jaccard_topk", "spearman_start", "exact_persistence"]


def _read_frame(run_dir, t: int, byproduct: str, exact: str) -> Optional[pd.DataFrame]:
    """Round t's sample_id (when logged), byproduct, exact and selected columns; those missing
    are left out. None when the frame cannot be read."""
    path = Path(run_dir) / "samples" / f"round={t:04d}.parquet"
    try:
        import pyarrow.parquet as pq
        names = set(pq.read_schema(path).names)
        cols = [c for c in ("sample_id", byproduct, exact, "selected") if c in names]
        return pd.read_parquet(path, columns=cols)
    except Exception:
        return None


def _finite(df: Optional[pd.DataFrame], col: str) -> bool:
    return df is not None and col in df.columns and bool(np.isfinite(df[col].to_numpy(float)).all())


def _next_column(now: pd.DataFrame, nxt: Optional[pd.DataFrame], col: str) -> Optional[np.ndarray]:
    """Frame t+1's column `col` in frame t's sample order, or None where it is missing, not finite
    for every sample, or the two frames do not hold the same samples."""
    if not _finite(nxt, col):
        return None
    if "sample_id" in now.columns and "sample_id" in nxt.columns:
        ids = now["sample_id"].to_numpy()
        s = nxt.set_index("sample_id")[col]
        if s.index.has_duplicates or len(s) != len(ids) or not s.index.isin(ids).all():
            return None
        return s.reindex(ids).to_numpy(float)
    return nxt[col].to_numpy(float) if len(nxt) == len(now) else None


def round_fidelity(run_dir, byproduct: str = BYPRODUCT, exact: str = EXACT) -> pd.DataFrame:
    """Per round of one run where both scores were logged: round, epoch, episode, lr, momentum,
    lr_setting, n, k, spearman_all, spearman_selected, overlap_topk, jaccard_topk (frame t
    against itself), spearman_start (byproduct of frame t+1 against exact of frame t) and
    exact_persistence (exact of frame t against exact of frame t+1); the last two NaN where
    frame t+1 lacks the column."""
    from .store import RunReader
    r = RunReader(run_dir)
    rounds = r.rounds().set_index("round")
    cfg = r.meta.get("config", {})
    paper = cfg.get("protocol") == "paper"
    momentum = float(cfg.get("paper", {}).get("momentum", 0.9)) if paper else 0.9
    lr_setting = float(cfg.get("paper", {}).get("lr_max", np.nan) if paper else cfg.get("schedule", {}).get("lr", np.nan))
    ids = r.round_ids
    frames = {t: _read_frame(run_dir, t, byproduct, exact) for t in ids}
    rows = []
    for t in ids:
        df = frames[t]
        if df is None or not all(c in df.columns for c in (byproduct, exact, "selected")):
            continue  # a round without one of the columns: nothing to compare
        if not (df[exact].notna().all() and df[byproduct].notna().all()):
            continue
        sel = df["selected"].to_numpy(bool)
        k = int(sel.sum())
        a, b = df[byproduct].to_numpy(float), df[exact].to_numpy(float)
        ov, jac = topk_overlap(a, b, k) if 0 < k < len(df) else (np.nan, np.nan)
        nxt = frames.get(t + 1)
        a_next, b_next = _next_column(df, nxt, byproduct), _next_column(df, nxt, exact)
        exact_ok = bool(np.isfinite(b).all())
        row = rounds.loc[t] if t in rounds.index else {}
        rows.append({"round": t, "epoch": int(row.get("epoch", t)), "episode": int(row.get("episode", t)),
                     "lr": float(row.get("lr", np.nan)), "momentum": momentum, "lr_setting": lr_setting,
                     "n": len(df), "k": k, "spearman_all": spearman(a, b),
                     "spearman_selected": spearman(a[sel], b[sel]) if k > 2 else np.nan,
                     "overlap_topk": ov, "jaccard_topk": jac,
                     "spearman_start": spearman(a_next, b) if a_next is not None and exact_ok else np.nan,
                     "exact_persistence": spearman(b, b_next) if b_next is not None and exact_ok else np.nan})
    return pd.DataFrame(rows, columns=COLUMNS)


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
