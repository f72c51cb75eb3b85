"""The score atlas: how the per-sample scores a run logged relate to each other and to what the
curriculum selected. Pure numpy/pandas on the run store (no torch, no Streamlit), so the
dashboard's Score atlas page and the study call the same functions.

    frame = round_scores(RunReader(run_dir), t)         # one row per sample: every score, selected
    rank_correlations(frame, score_columns(frame))     # (S, S) Spearman matrix
    selection_overlap(frame, score_columns(frame))     # per score: |S ∩ top-k| / k and bottom-k
    selection_resemblance(run_dir)                     # per round: which score the selection resembles

Scores (columns of the samples frames, docs/design.md §3 and docs/architecture.md): the DoCL score a of
each logged estimator (`score_<name>`), the loss, EL2N, GraNd, margin, entropy, forgetting events,
AUM and the data map's confidence, variability and correctness. Runs made before the atlas still
open: EL2N is their `residual_norm` (the same number under cross-entropy), the data map is derived
from their `p_true` and `correct` over the rounds so far, and the other scores are absent.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from .config import ESTIMATORS, SCORE_CURRICULUM
from .names import SCORE_LABELS, SCORES
from .stats import average_ranks, spearman  # spearman: the pages and tests read it here too
from .store import RunReader

# column → (short label, the direction in which it means "hard"), from names.SCORES (estimators' a: large is hard)
ESTIMATOR_LABELS = {e: SCORE_LABELS[e] for e in ("exact", "paper", "byproduct", "fast")}
ATLAS_SCORES: dict[str, tuple[str, str]] = {s.column: (s.short, s.hard) for n, s in SCORES.items() if n != "none"}
DATA_MAP = ("confidence", "variability", "correctness")


class AtlasError(ValueError):
    """A run or round the atlas cannot read scores from; the message says why and what to do."""


def label(column: str) -> str:
    return ATLAS_SCORES.get(column, (column, "high"))[0]


def score_columns(frame: pd.DataFrame) -> list[str]:
    """The atlas scores present in a round frame with at least two distinct finite values (a
    constant column, such as the `none` estimator's zeros, ranks nothing), in ATLAS_SCORES order."""
    out = []
    for c in ATLAS_SCORES:
        if c in frame:
            v = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64)
            v = v[np.isfinite(v)]
            if v.size >= 2 and np.ptp(v) > 0:
                out.append(c)
    return out


def driving_column(meta: dict) -> Optional[str]:
    """The column the run's curriculum selected by: a for docl and docl-nr, the loss for spl and mcl,
    the named score for `score`; None for random and sgd (no score drives them)."""
    cfg = meta.get("config") or {}
    cur, est = cfg.get("curriculum"), cfg.get("estimator") or "exact"
    if cur in ("docl", "docl-nr"):
        return None if est == "none" else f"score_{est}"
    if cur in ("spl", "mcl"):
        return "loss"
    if cur == SCORE_CURRICULUM:
        name = cfg.get("score") or est
        return None if name == "none" else (f"score_{name}" if name in ESTIMATORS else name)
    return None


# ----------------------------------------------------------------------------- one round


def _frame_columns(reader: RunReader) -> list[str]:
    return ["sample_id", "label", "selected", "p_true", "correct", "residual_norm",
            *ATLAS_SCORES]


def _noisy(reader: RunReader, n: int) -> np.ndarray:
    """(n,) bool: which train labels were flipped (all False when dataset.parquet says nothing)."""
    noisy = np.zeros(n, dtype=bool)
    try:
        ds = reader.dataset(thumbnails=False)
    except (ValueError, OSError):
        return noisy
    if "noisy" not in ds or "sample_id" not in ds:
        return noisy
    train = ds[ds["split"] == "train"] if "split" in ds else ds
    sid = train["sample_id"].to_numpy()
    ok = (sid >= 0) & (sid < n)
    noisy[sid[ok]] = train["noisy"].to_numpy(bool)[ok]
    return noisy


def _fill_old_run(frame: pd.DataFrame, sums: Optional[np.ndarray], rounds: int, regression: bool) -> pd.DataFrame:
    """EL2N and the data map for runs made before they were logged (see the module docstring)."""
    if "el2n" not in frame and "residual_norm" in frame:
        frame["el2n"] = frame["residual_norm"]
    if sums is not None and rounds > 0 and not regression and not all(c in frame for c in DATA_MAP):
        conf = sums[0] / rounds
        frame["confidence"] = conf
        frame["variability"] = np.sqrt(np.clip(sums[1] / rounds - conf * conf, 0, None))
        frame["correctness"] = sums[2] / rounds
    return frame


def _map_terms(frame: pd.DataFrame) -> Optional[np.ndarray]:
    """(3, N) p_true, p_true², correct of one round, or None without them."""
    if "p_true" not in frame or "correct" not in frame:
        return None
    p = frame["p_true"].to_numpy(np.float64)
    return np.stack([p, p * p, frame["correct"].to_numpy(np.float64)])


def round_scores(reader: RunReader, t: int) -> pd.DataFrame:
    """One row per training sample of round t: sample_id, label, selected, noisy and every atlas score
    the run logged (or that can be derived for an old run). AtlasError for a round the run lacks or
    a frame without per-sample rows."""
    if t not in reader.round_ids:
        raise AtlasError(f"{reader.name} has no committed round {t}: pick one of its "
                         f"{len(reader.round_ids)} rounds")
    frame = reader.samples(t, _frame_columns(reader))
    if not len(frame):
        raise AtlasError(f"round {t} of {reader.name} has no samples: nothing to compare")
    regression = reader.task == "regression"
    sums = None
    if not regression and not all(c in frame for c in DATA_MAP):
        terms = [_map_terms(reader.samples(r, ["p_true", "correct"])) for r in reader.round_ids if r <= t]
        sums = None if any(x is None for x in terms) else np.sum(terms, axis=0)
        frame = _fill_old_run(frame, sums, len(terms), regression)
    else:
        frame = _fill_old_run(frame, None, 0, regression)
    frame["noisy"] = _noisy(reader, len(frame))
    if "selected" not in frame:
        frame["selected"] = False
    frame["selected"] = frame["selected"].astype(bool)
    return frame


# ----------------------------------------------------------------------------- comparisons


def rank_correlations(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """(S, S) Spearman ρ between the given score columns, pairwise over the samples both score."""
    if not columns:
        raise AtlasError("no scores to compare in this round: the run logged none that varies")
    vals = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64) for c in columns}
    # columns finite everywhere are ranked once, not once per pair (14 scores × 85,000 samples: 0.9 s → 0.1 s)
    ranks = {c: _centred_ranks(v) for c, v in vals.items() if np.isfinite(v).all()}
    m = np.eye(len(columns))
    for i, a in enumerate(columns):
        for j in range(i + 1, len(columns)):
            b = columns[j]
            m[i, j] = m[j, i] = (_pearson(ranks[a], ranks[b]) if a in ranks and b in ranks
                                 else spearman(vals[a], vals[b]))
    return pd.DataFrame(m, index=columns, columns=columns)


def _centred_ranks(v: np.ndarray) -> Optional[np.ndarray]:
    """Average ranks minus their mean (what spearman correlates); None below MIN_PAIRS values."""
    if len(v) < 3:
        return None
    r = average_ranks(v)
    return r - r.mean()


def _pearson(ra: Optional[np.ndarray], rb: Optional[np.ndarray]) -> float:
    """spearman() on two fully finite columns, from their centred ranks."""
    if ra is None or rb is None:
        return float("nan")
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def top_k_mask(values: np.ndarray, k: int, largest: bool = True) -> np.ndarray:
    """(N,) bool: the k largest (or smallest) finite values; ties broken by the lower sample index."""
    v = np.asarray(values, np.float64)
    finite = np.flatnonzero(np.isfinite(v))
    order = finite[np.argsort(-v[finite] if largest else v[finite], kind="stable")]
    mask = np.zeros(v.shape[0], dtype=bool)
    mask[order[:k]] = True
    return mask


def _selected_in_top_k(values: np.ndarray, sel: np.ndarray, k: int, largest: bool = True) -> int:
    """(sel & top_k_mask(values, k, largest)).sum() without sorting: a partition finds the k-th value,
    ties at it go to the lower sample indices as in top_k_mask."""
    w = np.asarray(values, np.float64) if largest else -np.asarray(values, np.float64)
    finite = np.isfinite(w)
    wf = w[finite]
    if k >= len(wf):
        return int((sel & finite).sum())
    if k <= 0:
        return 0
    kth = np.partition(wf, len(wf) - k)[len(wf) - k]  # the k-th largest finite value
    above = finite & (w > kth)
    ties = np.flatnonzero(finite & (w == kth))[:k - int(above.sum())]
    return int((sel & above).sum() + sel[ties].sum())


def selection_overlap(frame: pd.DataFrame, columns: list[str],
                      selected: Optional[np.ndarray] = None) -> pd.DataFrame:
    """Per score: k = |S|, the share of S among the score's k largest (`top`) and k smallest
    (`bottom`) values, the chance level k/N, and `hard_end`: the share at the end the score
    calls hard (ATLAS_SCORES). AtlasError when nothing or everything was selected."""
    sel = frame["selected"].to_numpy(bool) if selected is None else np.asarray(selected, bool)
    n, k = sel.shape[0], int(sel.sum())
    if k == 0:
        raise AtlasError("no sample was selected in this round: nothing to compare the scores with")
    if k == n:
        raise AtlasError("every sample was selected in this round (a warm-start or full-data epoch): "
                         "any score's top k is the whole set; pick a round with a proper subset")
    rows = []
    for c in columns:
        v = pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64)
        top = _selected_in_top_k(v, sel, k, True) / k
        bottom = _selected_in_top_k(v, sel, k, False) / k
        hard_high = ATLAS_SCORES.get(c, ("", "high"))[1] == "high"
        rows.append({"score": c, "label": label(c), "k": k, "top": top, "bottom": bottom,
                     "chance": k / n, "hard_end": top if hard_high else bottom})
    return pd.DataFrame(rows, columns=["score", "label", "k", "top", "bottom", "chance", "hard_end"])


def best_match(overlap: pd.DataFrame) -> tuple[str, str, float]:
    """(score, side "top" | "bottom", overlap share) of the score end the selection overlaps most."""
    if not len(overlap):
        raise AtlasError("no scores to compare the selection with")
    long = overlap.melt(id_vars=["score"], value_vars=["top", "bottom"], var_name="side", value_name="share")
    best = long.loc[long["share"].idxmax()]
    return str(best["score"]), str(best["side"]), float(best["share"])


# ----------------------------------------------------------------------------- over rounds


def selection_resemblance(run_dir, exclude_driving: bool = True) -> pd.DataFrame:
    """Per round with a proper subset selected (0 < k < N): which score the selection resembles.

    Columns: round, k, n, driving (the column the curriculum selected by, or None), one `rho_<score>`
    per atlas score (Spearman ρ of the driving score with it; NaN without a driving score), one
    `overlap_<score>` per score (the share of S at its better end, top or bottom k), and `resembles`,
    `side`, `overlap` (the score end whose k samples overlap S most) and `chance` (k/N).
    exclude_driving (default): leave the driving score out of `resembles`: it trivially resembles
    itself, and the question is which *other* score the selection looks like.
    An empty frame when no round selected a proper subset (sgd, random with k = N)."""
    reader = RunReader(Path(run_dir))
    driving = driving_column(reader.meta)
    regression = reader.task == "regression"
    rows, sums, counted = [], None, 0
    for t in reader.round_ids:
        frame = reader.samples(t, _frame_columns(reader))
        if not len(frame):
            continue
        if not regression and not all(c in frame for c in DATA_MAP):  # an old run: derive the data map
            terms = _map_terms(frame)
            if terms is not None:
                sums = terms if sums is None else sums + terms
                counted += 1
            frame = _fill_old_run(frame, sums, counted, regression)
        else:
            frame = _fill_old_run(frame, None, 0, regression)
        if "selected" not in frame:
            continue
        sel = frame["selected"].to_numpy(bool)
        n, k = sel.shape[0], int(sel.sum())
        if k == 0 or k == n:
            continue
        cols = score_columns(frame)
        if not cols:
            continue
        ov = selection_overlap(frame, cols, sel)
        row = {"round": t, "k": k, "n": n, "driving": driving}
        dv = pd.to_numeric(frame[driving], errors="coerce").to_numpy(np.float64) \
            if driving is not None and driving in frame else None
        d_ranks = _centred_ranks(dv) if dv is not None and np.isfinite(dv).all() else None
        for c in cols:
            v = pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64)
            if dv is None:
                row[f"rho_{c}"] = float("nan")
            elif d_ranks is not None and np.isfinite(v).all():  # the driving score ranked once a round
                row[f"rho_{c}"] = _pearson(d_ranks, _centred_ranks(v))
            else:
                row[f"rho_{c}"] = spearman(dv, v)
        for _, r in ov.iterrows():
            row[f"overlap_{r['score']}"] = max(r["top"], r["bottom"])
        candidates = ov[ov["score"] != driving] if exclude_driving else ov
        if len(candidates):
            row["resembles"], row["side"], row["overlap"] = best_match(candidates)
        else:
            row["resembles"], row["side"], row["overlap"] = None, None, float("nan")
        row["chance"] = k / n
        rows.append(row)
    return pd.DataFrame(rows)


def most_resembled(resemblance: pd.DataFrame) -> Optional[str]:
    """The score a run's selection resembled in most rounds (ties: the larger mean overlap)."""
    if not len(resemblance) or "resembles" not in resemblance or resemblance["resembles"].isna().all():
        return None
    g = resemblance.dropna(subset=["resembles"]).groupby("resembles")["overlap"].agg(["size", "mean"])
    return str(g.sort_values(["size", "mean"], ascending=False).index[0])
