"""Frames for the dashboard: every number a page draws is shaped here, from a RunReader.

The app's pages are thin (DESIGN.md §4): they ask this module for small, plot-ready frames and
draw them. Nothing here imports Streamlit or plotly, so every view can be tested on its own.
Large runs stay cheap: only the needed columns are read, (R, N) matrices are float32, and
heatmaps are reduced to at most a few hundred rows by sorted-quantile binning.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from .store import RunReader, RunStoreError, feature_columns

SCORE_COLUMNS = ("score", "score_exact", "score_byproduct", "score_fast", "score_paper")
ESTIMATOR_LABELS = {"score": "score (drove selection)", "score_exact": "exact",
                    "score_byproduct": "byproduct (our estimate)", "score_fast": "fast (approximation)",
                    "score_paper": "paper (the authors' byproduct)"}
# what each estimator is, for titles and captions: the formula only beside the exact score
SCORE_NAMES = {"exact": "exact score a_i = r_i·v_i", "fast": "fast score (finite differences, an approximation)",
               "byproduct": "byproduct score (our estimate from training's outputs)",
               "paper": "authors' byproduct score (teacher logits recorded in training)",
               "none": "no score (a uniform draw: the score's ablation)"}
SHORT_NAMES = {"exact": "exact score", "fast": "fast score", "byproduct": "our byproduct score",
               "paper": "authors' byproduct score", "none": "no score"}


def driving_estimator(reader: RunReader) -> str:
    """The estimator whose values fill a run's `score` column (the one that drove selection)."""
    cfg = reader.meta.get("config") or {}
    if cfg.get("estimator"):
        return str(cfg["estimator"])
    return "paper" if cfg.get("protocol") == "paper" else "exact"


def score_label(column: str, estimator: str, short: bool = False) -> str:
    """What a score column holds: `score` is the driving estimator's, `score_<name>` that estimator's."""
    names = SHORT_NAMES if short else SCORE_NAMES
    if column == "score":
        return names.get(estimator, estimator) + ("" if short else " · drove selection")
    name = column.removeprefix("score_")
    return names.get(name, ESTIMATOR_LABELS.get(column, column))
HISTORY_COLUMNS = ("loss", "p_true", "p_clean", "residual_norm", "speed_norm", "score", "selected",
                   "times_selected", "correct", "output0")


# ----------------------------------------------------------------------------- per-run matrices


def sample_columns(reader: RunReader) -> list[str]:
    """Columns of the run's per-sample frames (from the first committed round); [] if none."""
    if reader.last_complete_round < 0:
        return []
    return list(reader.samples(0).columns)


def round_matrix(reader: RunReader, column: str, rounds: Optional[Sequence[int]] = None) -> np.ndarray:
    """One per-sample column over rounds as a float32 matrix (R, N), rows in round order.

    Row r holds round rounds[r]; column i holds sample_id i. Missing values are NaN.
    """
    return round_matrices(reader, [column], rounds)[column]


def round_matrices(reader: RunReader, columns: Sequence[str],
                   rounds: Optional[Sequence[int]] = None) -> dict[str, np.ndarray]:
    """Several per-sample columns over rounds, read in one pass: name → float32 (R, N).

    Columns a run did not log come back as all-NaN matrices.
    """
    ids = list(reader.round_ids if rounds is None else rounds)
    if not ids:
        return {c: np.zeros((0, 0), dtype=np.float32) for c in columns}
    want = ["sample_id", *[c for c in columns if c != "sample_id"]]
    first = reader.samples(ids[0], want)
    n = int(first["sample_id"].max()) + 1 if len(first) else 0
    out = {c: np.full((len(ids), n), np.nan, dtype=np.float32) for c in columns}  # each (R, N)
    # parquet decoding releases the GIL: a few threads read the rounds side by side
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=min(4, max(1, len(ids) - 1))) as pool:
        frames = [first, *pool.map(lambda t: reader.samples(t, want), ids[1:])]
    for r, df in enumerate(frames):
        sid = df["sample_id"].to_numpy()
        keep = sid < n
        for c in columns:
            if c in df.columns:
                out[c][r, sid[keep]] = df[c].to_numpy(dtype=np.float32, na_value=np.nan)[keep]
    return out


# ----------------------------------------------------------------------------- Compare


def accuracy_curves(rounds: pd.DataFrame, metric: str = "test_acc", x: str = "round") -> pd.DataFrame:
    """Mean and std of `metric` over seeds, per curriculum and round.

    Args:
        rounds: ExperimentReader.rounds() (columns round, run, curriculum, seed, metrics).
        x: "round" or "steps" (cumulative gradient steps; averaged over seeds per round).
    Returns: curriculum, round, x, mean, std, lo, hi, seeds.
    """
    cols = ["curriculum", "round", "x", "mean", "std", "lo", "hi", "seeds"]
    if metric not in rounds.columns or not len(rounds):
        return pd.DataFrame(columns=cols)
    df = rounds.dropna(subset=[metric])
    if not len(df):
        return pd.DataFrame(columns=cols)
    xcol = x if x in df.columns else "round"
    g = df.groupby(["curriculum", "round"])
    out = g.agg(x=(xcol, "mean"), mean=(metric, "mean"), std=(metric, "std"), seeds=(metric, "size"))
    out = out.reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["lo"], out["hi"] = out["mean"] - out["std"], out["mean"] + out["std"]
    return out[cols]


def final_accuracy_table(rounds: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Table-1 style: final test/validation accuracy (mean ± std over seeds) per curriculum; for
    regression runs (no accuracy logged) the final test/validation MSE instead.

    "Final" is the last committed round of each complete run; running and failed runs are left
    out unless no run is complete yet (then every run's last committed round is used).
    Columns: curriculum, runs, two "mean ± std" text columns each with a float "<name> mean"
    twin, rounds.
    """
    has_acc = "test_acc" in rounds.columns and rounds["test_acc"].notna().any()
    has_loss = "test_loss" in rounds.columns and rounds["test_loss"].notna().any()
    if has_acc or not has_loss:
        metrics = (("test_acc", "test acc (%)"), ("val_acc", "val acc (%)"))
        scale, digits = 100.0, 2
    else:
        metrics = (("test_loss", "test MSE"), ("val_loss", "val MSE"))
        scale, digits = 1.0, 4
    if not len(rounds) or metrics[0][0] not in rounds.columns:
        return pd.DataFrame(columns=["curriculum", "runs", *[n for _, n in metrics], "rounds"])
    complete = set(summary.loc[summary["status"] == "complete", "run"])
    use = rounds[rounds["run"].isin(complete)] if complete else rounds
    last = use.sort_values("round").groupby("run").tail(1)
    rows = []
    for cur, g in last.groupby("curriculum", sort=False):
        row = {"curriculum": cur, "runs": len(g)}
        for col, name in metrics:
            v = scale * g[col].dropna() if col in g else pd.Series(dtype=float)
            row[name] = _pm(v, digits)
            row[name + " mean"] = float(v.mean()) if len(v) else float("nan")
        row["rounds"] = int(g["round"].max()) + 1
        rows.append(row)
    return pd.DataFrame(rows)


def _pm(v: pd.Series, digits: int = 2) -> str:
    if not len(v):
        return "–"
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


TIMING_PHASES = ("score", "select", "train", "eval")  # rounds.parquet's <phase>_time_s columns, wall clock


def timing_table(rounds: pd.DataFrame) -> pd.DataFrame:
    """Wall-clock seconds per round in each phase, per curriculum: the median over every committed
    round of every seed, with the 25th and 75th percentiles as its spread (a mean would let a few
    rounds slowed by other jobs on the machine speak for all of them).

    `used` says whether the phase's result drives the selection: the score pass of a curriculum
    that does not select by score (Random, SGD, SPL, MCL) is logging for the dashboard, not a cost of
    the method. Columns: curriculum, phase, seconds (median), q25, q75, rounds, used.
    """
    from docl_core.names import CURRICULA, SELECTS_BY_SCORE  # torch-free: the dashboard's first page
    cols = [f"{p}_time_s" for p in TIMING_PHASES if f"{p}_time_s" in rounds]
    out_cols = ["curriculum", "phase", "seconds", "q25", "q75", "rounds", "used"]
    if not cols or not len(rounds):
        return pd.DataFrame(columns=out_cols)
    long = rounds.melt(id_vars="curriculum", value_vars=cols, var_name="phase", value_name="s").dropna(subset=["s"])
    g = long.groupby(["curriculum", "phase"], sort=False)["s"]
    out = pd.DataFrame({"seconds": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75),
                        "rounds": g.size()}).reset_index()
    out["phase"] = out["phase"].str.replace("_time_s", "", regex=False)

    def selects_by_score(name: str) -> bool:  # a user's own curriculum name: assume its scores are used
        return name in SELECTS_BY_SCORE or name not in CURRICULA
    out["used"] = [ph != "score" or selects_by_score(c) for c, ph in zip(out["curriculum"], out["phase"])]
    return out[out_cols]


# ----------------------------------------------------------------------------- Scores


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


def _ranks(x: np.ndarray) -> np.ndarray:
    r = np.empty(len(x), dtype=np.float64)
    r[np.argsort(x, kind="stable")] = np.arange(len(x))
    return r


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
        rho = spear[r] if full[r] else float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])
        rows.append({"round": t, "pearson": pear, "spearman": float(rho)})
    return pd.DataFrame(rows, columns=["round", "pearson", "spearman"])


def logged_estimators(reader: RunReader) -> list[str]:
    """Score columns with values in the last committed round or the last kernel round (exact
    scores may be logged only at episode starts, where the kernel is): exact, byproduct, fast, paper."""
    cols = [c for c in SCORE_COLUMNS[1:] if c in sample_columns(reader)]
    if not cols:
        return []
    rounds = sorted({reader.last_complete_round, *reader.kernel_rounds()[-1:]})
    frames = [reader.samples(t, cols) for t in rounds]
    return [c for c in cols if any(df[c].notna().any() for df in frames)]


# ----------------------------------------------------------------------------- Selected subsets


SELECTION_SAMPLE_COLUMNS = ("sample_id", "label", "selected", "score", "score_exact", "loss", "p_true", "output0",
                            "times_selected")
HARDER, EASIER = 0.55, 0.45  # mean percentile of S_t above / below which it is "harder" / "easier"
BALANCED_TV = 0.10           # class shares within this total-variation distance of the training set's: balanced


def selection_frame(reader: RunReader, t: int, dataset: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Round t's per-sample frame (sample_id, label, selected, score, loss, ...) joined with
    the dataset's clean label, noisy flag, source_row (the sample's row in its file), coordinates
    and, for tabular data, the feature values as read (no thumbnails). A feature named like a
    per-sample column (a CSV column "score") gets " (feature)" appended; runs made before
    source rows were recorded simply lack those columns."""
    df = reader.samples(t, list(SELECTION_SAMPLE_COLUMNS))
    if dataset is not None and len(dataset):
        keep = [c for c in ("sample_id", "clean_label", "noisy", "source_row", "x0", "x1", "target") if c in dataset]
        keep += [c for c in feature_columns(dataset.columns) if c != "thumbnail"]
        train = dataset.loc[dataset["split"] == "train", keep] if "split" in dataset else dataset[keep]
        df = df.merge(train, on="sample_id", how="left", suffixes=("", " (feature)"))
    if "noisy" not in df:
        df["noisy"] = False
    df["noisy"] = df["noisy"].fillna(False).astype(bool)
    return df


def selection_table(sel: pd.DataFrame, class_names: Optional[Sequence[str]] = None,
                    rows: Optional[int] = None) -> pd.DataFrame:
    """The selected samples of a selection_frame, highest score first, for a table: sample_id,
    source_row (the row in the user's file; when recorded), label (a class name; `true label`
    beside it where the given one was flipped), noisy, score, loss, times_selected, then the
    feature values (tabular data). rows caps how many are returned."""
    chosen = sel[sel["selected"].astype(bool)].sort_values(["score", "sample_id"], ascending=[False, True],
                                                           na_position="last")
    if rows is not None:
        chosen = chosen.head(rows)

    def named(v):
        if pd.isna(v):
            return None
        v = int(v)
        return class_names[v] if class_names and 0 <= v < len(class_names) else str(v)
    out = chosen[["sample_id"] + [c for c in ("source_row",) if c in chosen]].copy()
    if "label" in chosen and (chosen["label"] >= 0).any():  # −1: regression, no class label
        out["label"] = chosen["label"].map(named)
        if "clean_label" in chosen and chosen["noisy"].any():
            out["true label"] = [named(c) if n else None for c, n in zip(chosen["clean_label"], chosen["noisy"])]
    for c in ("noisy", "score", "loss", "times_selected"):
        if c in chosen:
            out[c] = chosen[c]
    for c in feature_columns(chosen.columns):
        if c not in SELECTION_SAMPLE_COLUMNS and c != "round":
            out[c] = chosen[c]
    return out.reset_index(drop=True)


def class_balance(sel: pd.DataFrame, class_names: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Share of each class among the selected samples and in the whole training set (%)."""
    if "label" not in sel or not len(sel):
        return pd.DataFrame(columns=["class", "selected (%)", "all (%)"])
    allc = sel["label"].value_counts(normalize=True)
    selc = sel.loc[sel["selected"].astype(bool), "label"].value_counts(normalize=True)
    labels = sorted(allc.index)
    names = [class_names[int(c)] if class_names and 0 <= int(c) < len(class_names) else str(c) for c in labels]
    return pd.DataFrame({"class": names, "selected (%)": [100 * selc.get(c, 0.0) for c in labels],
                         "all (%)": [100 * allc.get(c, 0.0) for c in labels]})


def noisy_selected_over_time(rounds: pd.DataFrame) -> pd.DataFrame:
    """Share (%) of S_t with noisy labels, per curriculum and round (mean over seeds)."""
    if "noisy_selected" not in rounds or "k" not in rounds or not len(rounds):
        return pd.DataFrame(columns=["curriculum", "round", "noisy share (%)", "noisy selected"])
    df = rounds.assign(share=100 * rounds["noisy_selected"] / rounds["k"].clip(lower=1))
    out = df.groupby(["curriculum", "round"]).agg(share=("share", "mean"),
                                                  count=("noisy_selected", "mean")).reset_index()
    return out.rename(columns={"share": "noisy share (%)", "count": "noisy selected"})


def jaccard_matrix(selected: dict[str, np.ndarray]) -> pd.DataFrame:
    """Pairwise Jaccard overlap |A∩B|/|A∪B| of selected sets, given name → boolean mask (N,)."""
    names = list(selected)
    J = np.eye(len(names))
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            x, y = selected[names[a]], selected[names[b]]
            n = min(len(x), len(y))
            union = np.logical_or(x[:n], y[:n]).sum()
            J[a, b] = J[b, a] = np.logical_and(x[:n], y[:n]).sum() / union if union else 1.0
    return pd.DataFrame(J, index=names, columns=names)


# ----------------------------------------------------------------------------- Tangent kernel


def kernel_similarity(trace: np.ndarray) -> np.ndarray:
    """Normalised trace kernel K_ij / √(K_ii K_jj) (m, m): the cosine between the gradients of
    samples i and j, 1 on the diagonal. Shows class structure that the raw scale hides."""
    K = np.asarray(trace, dtype=np.float64)
    d = np.sqrt(np.clip(np.diag(K), 1e-30, None))  # (m,)
    return K / (d[:, None] * d[None, :])


def kernel_view(kernel: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Probe set ordered by class: order (m,), probe_ids, labels, trace (m, m) reordered, its
    normalised similarity (m, m) and class boundaries (positions where the label changes)."""
    labels = kernel.get("labels")
    m = len(kernel["probe_ids"])
    labels = np.zeros(m, dtype=int) if labels is None else np.asarray(labels)
    order = np.lexsort((np.asarray(kernel["probe_ids"]), labels))
    lab = labels[order]
    bounds = np.flatnonzero(np.diff(lab)) + 1
    trace = np.asarray(kernel["trace"])[np.ix_(order, order)]
    return {"order": order, "probe_ids": np.asarray(kernel["probe_ids"])[order], "labels": lab,
            "trace": trace, "similarity": kernel_similarity(trace), "bounds": bounds}


def eigenvalue_frame(kernels: dict[int, np.ndarray], top: int = 10) -> pd.DataFrame:
    """Long frame round, rank (1 = largest), eigenvalue from {round: eigenvalues}."""
    rows = []
    for t, ev in sorted(kernels.items()):
        for i, v in enumerate(np.asarray(ev)[:top]):
            rows.append({"round": t, "rank": i + 1, "eigenvalue": float(v)})
    return pd.DataFrame(rows, columns=["round", "rank", "eigenvalue"])


def contributions_for(kernel: dict[str, np.ndarray], probe_pos: int, top: int = 10) -> pd.DataFrame:
    """Probe sample i's kernel score split into contributions c_ij over the probe set.

    Returns one row per probe sample j, sorted by |c_ij| descending: sample_id, label,
    contribution, residual_norm (‖r_j‖), kernel_sim (normalised trace kernel K_ij/√(K_ii K_jj)),
    rank.
    """
    ids = np.asarray(kernel["probe_ids"])
    labels = np.asarray(kernel.get("labels", np.zeros(len(ids), dtype=int)))
    if "contributions" not in kernel:
        raise RunStoreError("this kernel round logged no contributions: rerun with kernel logging on")
    c = np.asarray(kernel["contributions"])[probe_pos]  # (m,)
    res = np.asarray(kernel["residual"]) if "residual" in kernel else None
    df = pd.DataFrame({"sample_id": ids, "label": labels, "contribution": c,
                       "residual_norm": np.linalg.norm(res, axis=1) if res is not None else np.nan,
                       "kernel_sim": kernel_similarity(kernel["trace"])[probe_pos]})
    df = df.reindex(df["contribution"].abs().sort_values(ascending=False).index).reset_index(drop=True)
    df["rank"] = np.arange(1, len(df) + 1)
    return df


def representative_probe(kernel: dict[str, np.ndarray], noisy_ids=()) -> int:
    """The probe sample to open on: the highest kernel score among clean samples whose score is
    carried by others (its largest contribution c_ij has j ≠ i), so the picture shows the NTK
    reading — agreement with other large-residual samples — rather than a sample pulling on
    itself; falls back to the highest score. Returns a sample id."""
    ids = np.asarray(kernel["probe_ids"]).astype(int)
    score = np.asarray(kernel.get("kernel_score", np.zeros(len(ids))))
    order = np.argsort(-score, kind="stable")
    c = np.asarray(kernel["contributions"]) if "contributions" in kernel else None
    noisy = set(int(i) for i in noisy_ids)
    for pos in order:
        if int(ids[pos]) in noisy or c is None:
            continue
        if int(np.argmax(c[pos])) != pos:
            return int(ids[pos])
    return int(ids[order[0]]) if len(order) else 0


def kernel_neighbours(kernel: dict[str, np.ndarray], sample_id: int, top: int = 8) -> pd.DataFrame:
    """Probe samples most similar to sample_id in the normalised trace kernel (empty if the
    sample is not in the probe set)."""
    ids = np.asarray(kernel["probe_ids"])
    where = np.flatnonzero(ids == sample_id)
    if not len(where):
        return pd.DataFrame(columns=["sample_id", "label", "kernel_sim"])
    i = int(where[0])
    sim = kernel_similarity(kernel["trace"])[i]
    labels = np.asarray(kernel.get("labels", np.zeros(len(ids), dtype=int)))
    df = pd.DataFrame({"sample_id": ids, "label": labels, "kernel_sim": sim}).drop(index=i)
    return df.sort_values("kernel_sim", ascending=False).head(top).reset_index(drop=True)


# ----------------------------------------------------------------------------- Sample


def history_from_matrices(matrices: dict[str, np.ndarray], rounds: Sequence[int], sample_id: int) -> pd.DataFrame:
    """One sample's history from (R, N) matrices (see round_matrices): round plus one column each."""
    df = pd.DataFrame({"round": list(rounds)})
    for c, M in matrices.items():
        if M.size and 0 <= sample_id < M.shape[1]:
            df[c] = M[:, sample_id]
    if "selected" in df:
        df["selected"] = df["selected"].fillna(0).astype(bool)
    return df


def sample_history(reader: RunReader, sample_id: int) -> pd.DataFrame:
    """One sample's row in every committed round: round, loss, p_true, norms, score, selected."""
    rows = []
    for t in reader.round_ids:
        df = reader.samples(t, ["sample_id", *HISTORY_COLUMNS])
        hit = df[df["sample_id"] == sample_id]
        if len(hit):
            rows.append(hit.iloc[0].to_dict() | {"round": t})
    if not rows:
        return pd.DataFrame(columns=["round", *HISTORY_COLUMNS])
    df = pd.DataFrame(rows)
    if "selected" in df:
        df["selected"] = df["selected"].astype(bool)
    return df


# ----------------------------------------------------------------------------- Data map


def data_map(p_true: np.ndarray, correct: Optional[np.ndarray] = None,
             times_selected: Optional[np.ndarray] = None, noisy: Optional[np.ndarray] = None) -> pd.DataFrame:
    """Dataset cartography (Swayamdipta et al. 2020) from per-round p_true (R, N).

    confidence: mean of p_true over rounds; variability: its std; correctness: share of rounds
    the sample was predicted right. Columns: sample_id, confidence, variability, correctness,
    times_selected, noisy, region (easy-to-learn / ambiguous / hard-to-learn).
    """
    R, N = p_true.shape
    with np.errstate(invalid="ignore"):
        conf = np.nanmean(p_true, axis=0) if R else np.full(N, np.nan)
        var = np.nanstd(p_true, axis=0) if R else np.full(N, np.nan)
        corr = np.nanmean(correct, axis=0) if correct is not None and correct.size else np.full(N, np.nan)
    df = pd.DataFrame({"sample_id": np.arange(N), "confidence": conf, "variability": var,
                       "correctness": corr,
                       "times_selected": times_selected if times_selected is not None else np.nan,
                       "noisy": noisy.astype(bool) if noisy is not None else False})
    region = np.where(var >= np.nanquantile(var, 0.67) if N else var, "ambiguous",
                      np.where(conf >= 0.5, "easy-to-learn", "hard-to-learn"))
    df["region"] = region
    return df


def downsample_rows(df: pd.DataFrame, max_rows: int, keep: Optional[pd.Series] = None,
                    seed: int = 0) -> pd.DataFrame:
    """At most max_rows rows, uniformly at random (fixed seed), always keeping rows where `keep`
    is true (e.g. noisy samples) up to the budget."""
    if len(df) <= max_rows:
        return df
    rng = np.random.default_rng(seed)
    must = np.flatnonzero(keep.to_numpy()) if keep is not None else np.array([], dtype=int)
    if len(must) > max_rows // 2:
        must = rng.choice(must, max_rows // 2, replace=False)
    rest = np.setdiff1d(np.arange(len(df)), must, assume_unique=False)
    pick = rng.choice(rest, max_rows - len(must), replace=False)
    return df.iloc[np.sort(np.concatenate([must, pick]))]


# ----------------------------------------------------------------------------- How it works


def tiny_example(n: int = 40, hidden: int = 16, steps: int = 60, seed: int = 0) -> dict:
    """A live, CPU-sized demonstration of DESIGN.md §1 (well under a second).

    Three Gaussian blobs in 2-D (n points), an MLP 2 → hidden → 3 trained for a few full-batch
    SGD steps, then: exact scores (docl_scores), the full kernel blocks H (n, n, 3, 3)
    (kernel_block), and contributions c_ij = r_iᵀ H_ij r_j / n (score_contributions). With the
    probe set equal to the whole training set, Σ_j c_ij equals a_i up to rounding.

    Returns frames: points (x0, x1, label, residual_norm, speed_norm, score, kernel_score),
    contributions (n, n) and the max |a_i − Σ_j c_ij|.
    """
    import torch

    from .dynamics import docl_scores, kernel_block, per_sample_loss, score_contributions

    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[-1.5, 0.0], [1.5, 0.8], [0.2, -1.6]])
    y = torch.arange(n) % 3  # (n,)
    X = centers[y] + 0.75 * torch.randn(n, 2, generator=g)  # (n, 2)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(2, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        per_sample_loss(model(X), y, "classification").mean().backward()
        opt.step()
    dyn = docl_scores(model, X, y)
    H = kernel_block(model, X, reduce="full")  # (n, n, 3, 3)
    C = score_contributions(H, dyn.residual)  # (n, n)
    kscore = C.sum(1)
    points = pd.DataFrame({"sample_id": np.arange(n), "x0": X[:, 0].numpy(), "x1": X[:, 1].numpy(),
                           "label": y.numpy(), "loss": dyn.loss.numpy(),
                           "residual_norm": dyn.residual.norm(dim=1).numpy(),
                           "speed_norm": dyn.speed.norm(dim=1).numpy(),
                           "score": dyn.score.numpy(), "sum_j_c_ij": kscore.numpy()})
    # a_i = r_i · v_i = ‖r_i‖ ‖v_i‖ cos(r_i, v_i): the norms bound the score, the angle decides it
    points["rv_norm"] = points["residual_norm"] * points["speed_norm"]
    points["cos_rv"] = (dyn.residual * dyn.speed).sum(1).numpy() / np.maximum(points["rv_norm"].to_numpy(), 1e-30)
    return {"points": points, "contributions": C.numpy(),
            "max_abs_diff": float((dyn.score - kscore).abs().max()),
            "max_abs_score": float(dyn.score.abs().max()),
            "trace": H.diagonal(dim1=2, dim2=3).sum(-1).numpy()}


# ----------------------------------------------------------------------------- protocols and x axes


def protocol_of(meta: dict) -> str:
    """"paper" for runs of the authors' protocol (one rounds.parquet row per epoch), else "steps"."""
    return "paper" if ((meta or {}).get("config") or {}).get("protocol") == "paper" else "steps"


def with_samples_seen(rounds: pd.DataFrame, num_train: Optional[dict] = None) -> pd.DataFrame:
    """rounds with a `samples_seen` column (cumulative samples trained on). Paper-protocol runs log
    it; for older runs it is epoch_equiv × N (num_train: run name → N), else NaN."""
    if "samples_seen" in rounds and rounds["samples_seen"].notna().all():
        return rounds
    out = rounds.copy()
    derived = pd.Series(np.nan, index=out.index)
    if "epoch_equiv" in out and num_train:
        derived = out["epoch_equiv"] * out["run"].map(num_train).astype(float)
    out["samples_seen"] = out["samples_seen"].fillna(derived) if "samples_seen" in out else derived
    return out


# ----------------------------------------------------------------------------- winners (paired by seed)


def _t_interval(d: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t-interval of paired differences d (n ≥ 2)."""
    from scipy.special import stdtrit  # Student's t quantile; scipy.stats takes seconds to import
    n = len(d)
    mean = float(np.mean(d))
    half = float(stdtrit(n - 1, 0.5 + level / 2) * np.std(d, ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half


def reference_curriculum(curricula: Sequence[str], protocol: str = "steps") -> Optional[str]:
    """The curriculum every other one is paired against: the paper's Random (sgd) under the paper
    protocol when present, else random, else the first."""
    names = list(curricula)
    for want in (("sgd", "random") if protocol == "paper" else ("random", "sgd")):
        if want in names:
            return want
    return names[0] if names else None


MIN_SEEDS = 3  # a t-interval from 2 seeds has 1 degree of freedom: too wide to mean anything


def paired_differences(rounds: pd.DataFrame, metric: str, reference: str, final: bool = False,
                       level: float = 0.95, complete: Optional[Iterable[str]] = None,
                       sign: float = 1.0) -> pd.DataFrame:
    """sign · (metric(curriculum) − metric(reference)), paired by seed, with a t-interval over seeds
    (sign = −1 for a loss, so that positive always means better).

    final=False: one row per curriculum and round (seeds that have both runs at that round);
    final=True: one row per curriculum, from each run's last committed round (only runs in
    `complete`, when given). The `verdict` column says "better", "worse", "no clear difference"
    or "too few seeds" (fewer than MIN_SEEDS pairs): a winner only when the interval excludes 0.
    Columns: curriculum, round, seeds, mean, lo, hi, verdict.
    """
    cols = ["curriculum", "round", "seeds", "mean", "lo", "hi", "verdict"]
    if metric not in rounds or not len(rounds):
        return pd.DataFrame(columns=cols)
    df = rounds.dropna(subset=[metric])
    if complete is not None:
        keep = set(complete)
        df = df[df["run"].isin(keep)] if keep & set(df["run"]) else df
    if final:
        df = df.sort_values("round").groupby("run").tail(1).assign(round=-1)
    # one value per (curriculum, seed, round): a second run with the same seed is averaged in
    wide = df.groupby(["curriculum", "seed", "round"])[metric].mean().unstack("curriculum")
    if reference not in wide:
        return pd.DataFrame(columns=cols)
    rows = []
    for cur in wide.columns:
        if cur == reference:
            continue
        diff = (sign * (wide[cur] - wide[reference])).dropna()
        for t, d in diff.groupby(level="round"):
            d = d.to_numpy(np.float64)
            n = len(d)
            if n >= 2:
                mean, lo, hi = _t_interval(d, level)
            else:
                mean, lo, hi = float(d.mean()), np.nan, np.nan
            if n < MIN_SEEDS:
                verdict = "too few seeds"
            elif lo > 0:
                verdict = "better"
            elif hi < 0:
                verdict = "worse"
            else:
                verdict = "no clear difference"
            rows.append({"curriculum": cur, "round": int(t), "seeds": n, "mean": mean, "lo": lo, "hi": hi,
                         "verdict": verdict})
    return pd.DataFrame(rows, columns=cols)


def winner(final: pd.DataFrame, means: dict, reference: str) -> Optional[str]:
    """The curriculum that earns a ★, or None. final: paired_differences(..., final=True); means:
    curriculum → final mean (higher is better). The best-mean curriculum among those clearly better
    than the reference; the reference itself when every other one is clearly worse."""
    if not len(final):
        return None
    better = final[final["verdict"] == "better"]["curriculum"].tolist()
    if better:
        return max(better, key=lambda c: means.get(c, -np.inf))
    if (final["verdict"] == "worse").all():
        return reference
    return None


# The seed's Table 1 (Zhou, Wang and Bilmes, AISTATS 2021): test accuracy (%), 9 datasets, no pre-training
TABLE1_DATASETS = ("CIFAR10", "CIFAR100", "Food-101", "ImageNet", "SVHN", "FMNIST", "Birdsnap", "Aircraft", "Cars")
TABLE1 = {"random": (96.18, 79.64, 83.56, 75.04, 96.48, 95.22, 64.23, 74.71, 78.73),
          "spl": (93.55, 80.25, 81.36, 73.23, 96.15, 92.09, 63.26, 68.95, 77.61),
          "mcl": (96.60, 80.99, 84.18, 75.09, 96.93, 95.07, 65.76, 75.28, 76.98),
          "docl-nr": (96.40, 81.42, 84.75, 75.62, 96.80, 95.50, 66.59, 79.72, 81.48),
          "docl": (97.43, 83.23, 87.45, 79.54, 97.36, 95.89, 71.37, 82.40, 86.26)}


def paper_claim(final: pd.DataFrame, means: dict, reference: str, label: Callable[[str], str],
                unit: str = "points", scale: float = 100.0) -> dict:
    """Table 1's claim beside what an experiment's runs show (the Compare panel).

    final: paired_differences(..., final=True) against `reference`; means: curriculum → final mean.
    Returns `claim` (the paper, from TABLE1), `here` (this experiment: DoCL's paired verdict against
    the reference and its place by final mean) and `agrees` (True / False / None when DoCL is absent)."""
    gain = np.subtract(TABLE1["docl"], TABLE1["random"])
    lo, hi = int(np.argmin(gain)), int(np.argmax(gain))
    best_everywhere = all(TABLE1["docl"][i] == max(v[i] for v in TABLE1.values()) for i in range(len(gain)))
    claim = (f"Table 1: DoCL has the highest test accuracy on {'all' if best_everywhere else 'some'} "
             f"{len(gain)} datasets, {gain[lo]:+.2f} ({TABLE1_DATASETS[lo]}) to {gain[hi]:+.2f} "
             f"({TABLE1_DATASETS[hi]}) points above random mini-batch SGD, with no intervals or seeds given.")
    rows = final.set_index("curriculum") if len(final) else pd.DataFrame()
    if "docl" not in means:
        return {"claim": claim, "here": "This experiment has no DoCL run to set beside it.", "agrees": None}
    order = sorted(means, key=lambda c: -means[c])
    place = f"{order.index('docl') + 1} of {len(order)} by final mean"
    if "docl" not in rows.index:
        return {"claim": claim, "here": f"This experiment: DoCL is {place}; it is the reference, so nothing is "
                                        "paired against it.", "agrees": None}
    r = rows.loc["docl"]
    n = int(r["seeds"])
    verdict = {"better": "beats", "worse": "trails", "no clear difference": "shows no clear difference to",
               "too few seeds": "cannot yet be compared with"}[r["verdict"]]
    interval = (f" (95 % interval {scale * r['lo']:+.2f} to {scale * r['hi']:+.2f}, {n} seeds)"
                if r["verdict"] != "too few seeds" else f" ({n} paired seed{'s' if n != 1 else ''})")
    here = (f"This experiment: DoCL {verdict} {label(reference)}, {scale * r['mean']:+.2f} {unit}{interval}, "
            f"and is {place}.")
    agrees = None if r["verdict"] == "too few seeds" else (r["verdict"] == "better" and order[0] == "docl")
    return {"claim": claim, "here": here, "agrees": agrees}


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def compare_headline(final: pd.DataFrame, star: Optional[str], label: Callable[[str], str], reference: str) -> str:
    """Compare's headline, from the same paired verdicts as its bullets (paired_differences(...,
    final=True) and winner): who is best, who else beats the reference, who trails it, and where
    the interval contains zero or the seeds are too few. Every curriculum is named once."""
    if not len(final):
        return ""
    by = {v: [label(c) for c in final.loc[final["verdict"] == v, "curriculum"]]
          for v in ("better", "worse", "no clear difference", "too few seeds")}
    ref = label(reference)
    if len(by["too few seeds"]) == len(final):
        return f"**No verdict yet**: too few paired seeds against {ref} (need ≥ {MIN_SEEDS})."
    s = lambda names: "s" if len(names) == 1 else ""  # noqa: E731 (verb agreement)
    details = []
    if star is not None and star != reference:
        head = (f"**{label(star)} is best**: the highest final mean among the curricula whose 95 % interval "
                f"against {ref} lies above zero")
        also = [n for n in by["better"] if n != label(star)]
        if also:
            details.append(f"{_and(also)} also beat{s(also)} {ref} (the curricula are not paired against each other)")
    elif star == reference:
        head = f"**{ref} is best**: every other curriculum's 95 % interval against it lies below zero"
    elif by["worse"]:
        head = f"**No curriculum beats {ref}**"
    else:
        head = f"**No clear winner**: no curriculum's paired interval against {ref} excludes zero"
    if by["worse"] and star != reference:
        details.append(f"{_and(by['worse'])} trail{s(by['worse'])} it (interval below zero)")
    if by["no clear difference"] and (by["worse"] or star is not None):
        details.append(f"{_and(by['no clear difference'])}: no clear difference")
    if by["too few seeds"]:
        details.append(f"{_and(by['too few seeds'])}: too few seeds")
    return head + (": " + "; ".join(details) if details else "") + "."


def verdict_sentence(row: dict, label: Callable[[str], str], reference: str, unit: str = "points",
                     scale: float = 100.0) -> str:
    """'DoCL vs Random: +0.84 points (95 % interval −1.2 to +2.9, 3 seeds): no clear difference.'"""
    name, ref = label(row["curriculum"]), label(reference)
    n = int(row["seeds"])
    head = f"{name} − {ref}: {scale * row['mean']:+.2f} {unit}"
    if row["verdict"] == "too few seeds":
        return (f"{head} with {n} paired seed{'s' if n != 1 else ''}: too few seeds to call a winner "
                f"(need ≥ {MIN_SEEDS}).")
    ci = f"95 % interval {scale * row['lo']:+.2f} to {scale * row['hi']:+.2f}, {n} seeds"
    word = {"better": f"{name} is better", "worse": f"{name} is worse",
            "no clear difference": "no clear difference"}[row["verdict"]]
    return f"{head} ({ci}): {word}."


def _spans(ts: Sequence[int]) -> str:
    """[1, 2, 3, 7] → '1–3, 7'."""
    out, ts = [], sorted(int(t) for t in ts)
    i = 0
    while i < len(ts):
        j = i
        while j + 1 < len(ts) and ts[j + 1] == ts[j] + 1:
            j += 1
        out.append(f"{ts[i]}" if i == j else f"{ts[i]}–{ts[j]}")  # caller writes the plural
        i = j + 1
    return ", ".join(out)


def lead_sentence(per_round: pd.DataFrame, curriculum: str, label: Callable[[str], str], reference: str,
                  word: str = "round", unit: str = "points", scale: float = 100.0) -> str:
    """Where a curriculum trails and leads the reference over rounds (mean paired difference), e.g.
    'Over rounds, DoCL trails Random in rounds 1–9 (by up to 45.0 points) and leads in rounds 10–11.'"""
    d = per_round[per_round["curriculum"] == curriculum]
    if not len(d):
        return ""
    name, ref = label(curriculum), label(reference)
    behind, ahead = d[d["mean"] < 0], d[d["mean"] > 0]
    parts = []
    def where(d):
        return f"{word}{'s' if len(d) > 1 else ''} {_spans(d['round'])}"
    if len(behind):
        parts.append(f"trails {ref} in {where(behind)} (by up to {scale * -behind['mean'].min():.1f} {unit})")
    if len(ahead):
        parts.append(f"leads in {where(ahead)} (by up to {scale * ahead['mean'].max():.1f} {unit})")
    return f"Over {word}s (mean over paired seeds), {name} " + " and ".join(parts) + "." if parts else ""


# ----------------------------------------------------------------------------- what S_t holds


def subset_summary(sel: pd.DataFrame, curriculum: str = "", class_names: Optional[Sequence[str]] = None,
                   kernel: Optional[dict] = None, word: str = "round") -> dict:
    """What S_t holds this round, measured: numbers and one paragraph that states them.

    sel: selection_frame (sample_id, label, selected, loss, noisy, score). kernel: that round's
    kernel npz (optional): the self term c_ii = r_iᵀ H_ii r_i / m of flipped vs clean probe samples.
    Returns k, n, noisy_share, base_rate (fractions), noise_vs_base ("above" / "below" / "at"),
    top_class, top_share, low_class, low_share, uniform, loss_sel, loss_all, score_noisy,
    score_clean, self_noisy, self_clean and `sentence` (markdown).
    """
    chosen = sel[sel["selected"].astype(bool)]
    k, n = len(chosen), len(sel)
    out: dict = {"k": k, "n": n}
    parts = [f"S_t holds **{k:,} of {n:,}** samples ({100 * k / max(n, 1):.0f} % of N) this {word}."]
    noisy_all = sel["noisy"].astype(bool) if "noisy" in sel else pd.Series(False, index=sel.index)
    base = float(noisy_all.mean()) if n else 0.0
    share = float(chosen["noisy"].astype(bool).mean()) if k and "noisy" in chosen else 0.0
    out.update(noisy_share=share, base_rate=base, noisy_count=int(chosen["noisy"].sum()) if k else 0)
    if base > 0 and k:
        se = np.sqrt(base * (1 - base) / k) * np.sqrt(max(n - k, 0) / max(n - 1, 1))  # finite population
        rel = "above" if share > base + 2 * se else "below" if share < base - 2 * se else "at"
        out["noise_vs_base"] = rel
        verb = {"above": "**more** flipped labels than chance", "below": "**fewer** flipped labels than chance",
                "at": "flipped labels at about the chance rate"}[rel]
        parts.append(f"**{100 * share:.1f} %** of S_t have flipped labels, against **{100 * base:.1f} %** in the "
                     f"whole training set: it takes {verb}.")
        if "score" in sel and sel["score"].notna().any():
            sn = float(sel.loc[noisy_all, "score"].mean())
            sc = float(sel.loc[~noisy_all, "score"].mean())
            out.update(score_noisy=sn, score_clean=sc)
        if kernel is not None and "contributions" in kernel and "probe_ids" in kernel:
            ids = np.asarray(kernel["probe_ids"]).astype(int)
            cii = np.diag(np.asarray(kernel["contributions"], dtype=np.float64))  # (m,)
            flag = dict(zip(sel["sample_id"].astype(int), noisy_all.to_numpy()))
            fl = np.array([bool(flag.get(i, False)) for i in ids])
            if fl.any() and (~fl).any():
                out.update(self_noisy=float(cii[fl].mean()), self_clean=float(cii[~fl].mean()))
        if rel == "above" and curriculum.startswith("docl"):
            why = ("Why: a flipped label keeps a large residual ‖r_i‖ (the network cannot fit it), and a sample's "
                   "own gradient always agrees with itself, so the self term c_ii = r_iᵀ H_ii r_i / m of its "
                   "kernel contributions is large and positive")
            if "self_noisy" in out:
                why += (f" (on the probe set this {word}: mean c_ii {out['self_noisy']:.3g} for flipped labels, "
                        f"{out['self_clean']:.3g} for clean ones)")
            if "score_noisy" in out:
                why += f"; mean score a_i {out['score_noisy']:.3g} flipped against {out['score_clean']:.3g} clean"
            parts.append(why + ".")
        elif rel == "below" and curriculum.startswith("docl") and "score_noisy" in out:
            parts.append(f"Flipped labels score lower here (mean a_i {out['score_noisy']:.3g} against "
                         f"{out['score_clean']:.3g} for clean ones): the network does not move them.")
    if "label" in sel and k and sel["label"].nunique() > 1:
        shares = chosen["label"].value_counts(normalize=True).reindex(sorted(sel["label"].unique()), fill_value=0.0)
        uniform = 1.0 / len(shares)

        def cname(c):
            return class_names[int(c)] if class_names and 0 <= int(c) < len(class_names) else str(c)
        top, low = shares.idxmax(), shares.idxmin()
        out.update(top_class=cname(top), top_share=float(shares[top]), low_class=cname(low),
                   low_share=float(shares[low]), uniform=uniform)
        parts.append(f"Classes: the most represented, **{cname(top)}**, is {100 * shares[top]:.0f} % of S_t and the "
                     f"least, **{cname(low)}**, {100 * shares[low]:.0f} %, against {100 * uniform:.0f} % each if "
                     "balanced.")
    if "label" in sel and k and sel["label"].nunique() > 1:
        base_shares = sel["label"].value_counts(normalize=True)
        sel_shares = chosen["label"].value_counts(normalize=True).reindex(base_shares.index, fill_value=0.0)
        tv = 0.5 * float((sel_shares - base_shares).abs().sum())
        out["class_tv"] = tv
        parts.append(f"Class balance: S_t's class shares are at total-variation distance **{tv:.2f}** from the "
                     f"training set's: {'balanced' if tv < BALANCED_TV else 'skewed'} (balanced below "
                     f"{BALANCED_TV:.2f}).")
    for col, what, high, low in (("loss", "loss", "harder", "easier"),
                                 ("score_exact", "exact score a_i = r_i·v_i", "nearer the learning frontier",
                                  "further from the learning frontier")):
        if not k or col not in sel or not sel[col].notna().all():
            continue
        pct = sel[col].rank(pct=True)                      # each sample's percentile among all N
        mean_pct = float(pct[sel["selected"].astype(bool)].mean())
        out[f"{col}_percentile"] = mean_pct
        word = high if mean_pct > HARDER else low if mean_pct < EASIER else "about average"
        extra = (f"; mean loss **{float(chosen['loss'].mean()):.3f}** against **{float(sel['loss'].mean()):.3f}**"
                 if col == "loss" else "")
        if col == "loss":
            out.update(loss_sel=float(chosen["loss"].mean()), loss_all=float(sel["loss"].mean()))
        verdict = "**about average**" if word == "about average" else f"**{word}** than the training set"
        parts.append(f"By {what}: S_t's mean percentile among all samples is **{100 * mean_pct:.1f}**{extra}: "
                     f"{verdict} (the rule: above {100 * HARDER:.0f}, {high}; below {100 * EASIER:.0f}, {low}).")
    out["parts"] = parts
    out["sentence"] = " ".join(parts)
    return out


# ----------------------------------------------------------------------------- How it works: alignment


def alignment_summary(points: pd.DataFrame) -> dict:
    """What the a_i against ‖r_i‖·‖v_i‖ chart shows, measured on its points (columns score, rv_norm,
    cos_rv): a_i = ‖r_i‖‖v_i‖ cos(r_i, v_i), so every point lies between the lines a = ±‖r‖‖v‖.
    Returns numbers and `sentence`."""
    p = points
    top = p.loc[p["score"].idxmax()]
    big = p[p["rv_norm"] >= p["rv_norm"].quantile(0.75)]  # the quarter with the largest norm product
    out = {"top_id": int(top["sample_id"]), "top_score": float(top["score"]), "top_cos": float(top["cos_rv"]),
           "big_n": len(big), "big_cos_min": float(big["cos_rv"].min()), "big_cos_max": float(big["cos_rv"].max()),
           "big_score_min": float(big["score"].min()), "big_score_max": float(big["score"].max()),
           "aligned": int((p["cos_rv"] > 0.9).sum()), "n": len(p)}
    out["sentence"] = (
        f"The highest score, a = {out['top_score']:.3g} (sample #{out['top_id']}), has cos(r, v) = "
        f"{out['top_cos']:.2f}. Among the {out['big_n']} points with the largest ‖r‖‖v‖ (top quarter), cos ranges "
        f"from {out['big_cos_min']:.2f} to {out['big_cos_max']:.2f}, so their scores range from "
        f"{out['big_score_min']:.3g} to {out['big_score_max']:.3g}: large norms are not enough, the residual must "
        f"point where the output moves. {out['aligned']} of {out['n']} points have cos > 0.9 (near the upper line).")
    return out
