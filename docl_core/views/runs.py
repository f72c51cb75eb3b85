"""What a run holds, as the pages read it: score columns named by their estimator, per-sample
columns over rounds as (R, N) matrices, one sample's history, and each run's protocol and x axis."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd

from ..names import ESTIMATOR_NAMES, SCORES
from ..store import RunReader

# the score columns a run can hold: `score` (the driving estimator's) and each estimator's own; every
# label comes from names.SCORES, the one registry, so a score has the same name on every page
SCORE_COLUMNS = ("score", *(SCORES[e].column for e in ESTIMATOR_NAMES if e != "none"))
ESTIMATOR_LABELS = {"score": "score (drove selection)",
                    **{SCORES[e].column: SCORES[e].short for e in ESTIMATOR_NAMES}}
SCORE_NAMES = {n: s.long for n, s in SCORES.items()}     # titles and captions (the formula beside the exact one)
SHORT_NAMES = {n: s.short for n, s in SCORES.items()}    # legends, axes, pickers


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


def logged_estimators(reader: RunReader) -> list[str]:
    """Score columns with values in the last committed round or the last kernel round (exact
    scores may be logged only at episode starts, where the kernel is): exact, byproduct, fast, paper."""
    cols = [c for c in SCORE_COLUMNS[1:] if c in sample_columns(reader)]
    if not cols:
        return []
    rounds = sorted({reader.last_complete_round, *reader.kernel_rounds()[-1:]})
    frames = [reader.samples(t, cols) for t in rounds]
    return [c for c in cols if any(df[c].notna().any() for df in frames)]


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
