"""Take docl runs to other tools: plain tables (npz, parquet, csv) and TensorBoard.

    python -m docl_core export RUN_OR_EXPERIMENT --to npz OUT       # or parquet, csv (export_tables)
    python -m docl_core export RUN_OR_EXPERIMENT --to tensorboard OUT
    tensorboard --logdir OUT

TensorBoard goes through PyTorch's own torch.utils.tensorboard.SummaryWriter.
Each run becomes OUT/<run folder name>/ with, per committed round (step = round index):
scalars `docl/<column>` for every numeric rounds.parquet column (accuracies, losses, k, lr,
timings, …) plus `docl/noisy_share_selected` (noisy labels in S_t / k_t), histograms
`docl/hist/<column>` of the per-sample scores and losses, and the projector: the last mapped
round's stored PCA coordinates (embedding.py) with sample id, source row (the sample's row in
its file, for runs that recorded it), label, noise flag, score, selection and loss as metadata, and the thumbnails as the sprite where dataset.parquet has
them. The same `log_round` feeds a SummaryWriter a user's loop already has
(`DynamicsTracker(..., tensorboard=writer)`).

Everything is written into a temporary folder beside OUT and renamed into place at the end: a
missing or corrupted run writes nothing. A run still training exports its committed rounds.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from .embedding import component_columns
from .store import ExperimentReader, RunReader, RunStoreError, is_run_dir, round_name

PREFIX = "docl"
HIST_COLUMNS = ("score", "loss")  # plus every score_<estimator> column a run logged
SPRITE_MAX_PIXELS = 20_000_000  # thumbnails × height × width: larger sprites are left out (memory, and
#                                 TensorBoard's 8192 × 8192 sprite limit)


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's module imports the tensorboard package
        raise ValueError("TensorBoard is not installed: pip install tensorboard (see requirements.txt)") from None
    return SummaryWriter


def log_round(writer, t: int, row: dict[str, Any], samples: Optional[pd.DataFrame] = None) -> None:
    """Round t's scalars and per-sample histograms into a SummaryWriter (step = t)."""
    for key, value in row.items():
        if key == "round" or isinstance(value, (str, bytes)) or value is None:
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            writer.add_scalar(f"{PREFIX}/{key}", v, global_step=int(t))
    k, noisy = row.get("k"), row.get("noisy_selected")
    if k is not None and noisy is not None and float(k) > 0:
        writer.add_scalar(f"{PREFIX}/noisy_share_selected", float(noisy) / float(k), global_step=int(t))
    if samples is not None:
        for col in [c for c in samples.columns if c in HIST_COLUMNS or c.startswith("score_")]:
            v = samples[col].to_numpy(dtype=np.float64, na_value=np.nan)
            v = v[np.isfinite(v)]
            if len(v):
                writer.add_histogram(f"{PREFIX}/hist/{col}", v, global_step=int(t))


def _runs_of(source: Path) -> list[RunReader]:
    if not source.exists():
        raise RunStoreError(f"{source} does not exist: point at a run folder or an experiment folder")
    if is_run_dir(source):
        return [RunReader(source)]
    exp = ExperimentReader(source)
    if exp.errors:
        bad = "; ".join(f"{k}: {v}" for k, v in exp.errors.items())
        raise RunStoreError(f"unreadable run in {source} ({bad}); export the other runs one by one")
    return exp.runs


def _into_new_folder(out: Path, runs: list[RunReader], write_run) -> dict[Path, Any]:
    """write_run(run, folder) for every run into a temporary folder beside OUT, renamed to OUT at
    the end; on any failure nothing is left (nor the parent folders made for it).
    → {OUT/<run>: what write_run returned}."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not an empty folder: choose a new OUT folder or delete it")
    created = [p for p in [out.parent, *out.parent.parents] if not p.exists()]  # removed again on failure
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        done = {out / run.dir.name: write_run(run, tmp / run.dir.name) for run in runs}
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in created:  # innermost first
            try:
                p.rmdir()
            except OSError:
                break
        raise
    return done


def export_tensorboard(source, out) -> dict[Path, bool]:
    """Write every run under `source` (a run or an experiment folder) as OUT/<run>/; returns
    {that folder: whether it has a projector (the run has a map)}."""
    source, out = Path(source), Path(out)
    runs = _runs_of(source)  # a missing or unreadable source fails here, before anything is written
    SummaryWriter = _summary_writer()
    return _into_new_folder(out, runs, lambda run, d: _export_run(run, d, SummaryWriter))


# ----------------------------------------------------------------------------- tables

TABLE_FORMATS = ("npz", "parquet", "csv")
SAMPLE_INFO = ("source_row", "label", "clean_label", "noisy")   # per sample, from dataset.parquet
_NOT_PER_ROUND = {"sample_id", "round", "label"}                # in every samples frame, not a quantity


def sample_info(run: RunReader) -> pd.DataFrame:
    """(N rows) sample_id, source_row (−1: not recorded), label (as trained on), clean_label and
    noisy (the label before any injected noise, and whether it was flipped), by sample id."""
    ds = run.dataset(thumbnails=False)
    train = ds[ds["split"] == "train"] if "split" in ds.columns else ds
    train = train.drop_duplicates("sample_id").sort_values("sample_id")
    ids = train["sample_id"].to_numpy(np.int64)
    out = pd.DataFrame({"sample_id": ids})
    out["source_row"] = (train["source_row"].fillna(-1).to_numpy(np.int64) if "source_row" in train
                         else np.full(len(ids), -1, np.int64))
    lab = train["label"] if "label" in train else pd.Series(np.full(len(ids), -1))
    out["label"] = pd.to_numeric(lab, errors="coerce").fillna(-1).to_numpy(np.int64)
    clean = train["clean_label"] if "clean_label" in train else lab
    out["clean_label"] = pd.to_numeric(clean, errors="coerce").fillna(-1).to_numpy(np.int64)
    out["noisy"] = train["noisy"].fillna(False).to_numpy(bool) if "noisy" in train else np.zeros(len(ids), bool)
    return out


def _quantities(run: RunReader) -> list[str]:
    """The per-sample columns logged in any committed round (scores, losses, selection, ...)."""
    import pyarrow.parquet as pq
    cols: dict[str, None] = {}
    for t in run.round_ids:
        f = run.dir / "samples" / f"{round_name(t)}.parquet"
        for c in pq.read_schema(f).names:
            if c not in _NOT_PER_ROUND:
                cols.setdefault(c)
    return list(cols)


def _round_frame(run: RunReader, t: int, info: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Round t's per-sample columns aligned to info's sample order (absent columns: NaN)."""
    import pyarrow.parquet as pq
    f = run.dir / "samples" / f"{round_name(t)}.parquet"
    have = [c for c in cols if c in pq.read_schema(f).names]
    df = run.samples(t, ["sample_id", *have]).drop_duplicates("sample_id").set_index("sample_id")
    df = df.reindex(info["sample_id"].to_numpy())
    for c in cols:
        if c not in df:
            df[c] = np.nan
    return df[cols]


def _array_dtype(values: list[np.ndarray]) -> np.dtype:
    kinds = {v.dtype for v in values}
    if all(k == np.bool_ for k in kinds):
        return np.dtype(bool)
    if all(np.issubdtype(k, np.integer) for k in kinds):
        return np.dtype(np.int64)
    return np.dtype(np.float64) if any(k == np.float64 for k in kinds) else np.dtype(np.float32)


def run_arrays(run: RunReader) -> dict[str, np.ndarray]:
    """A run's per-sample log as arrays: `rounds` (T,), the SAMPLE_INFO columns and `sample_id` (N,),
    and one (N, T) array per logged per-sample column (NaN where a round did not log it)."""
    info = sample_info(run)
    rounds = run.round_ids
    cols = _quantities(run) if rounds else []
    per: dict[str, list[np.ndarray]] = {c: [] for c in cols}
    for t in rounds:
        df = _round_frame(run, t, info, cols)
        for c in cols:
            v = df[c]
            per[c].append(v.to_numpy() if v.notna().all() else v.to_numpy(np.float64, na_value=np.nan))
    arrays = {c: np.stack([v.astype(_array_dtype(vs)) for v in vs], axis=1) for c, vs in per.items()}
    return {"rounds": np.asarray(rounds, np.int64), **{k: info[k].to_numpy() for k in info.columns}, **arrays}


def round_table(run: RunReader, t: int, info: Optional[pd.DataFrame] = None,
                cols: Optional[list[str]] = None) -> pd.DataFrame:
    """Round t as one row per sample: sample_id, SAMPLE_INFO, round, then every logged column."""
    info = sample_info(run) if info is None else info
    cols = _quantities(run) if cols is None else cols
    df = _round_frame(run, t, info, cols).reset_index(drop=True)
    return pd.concat([info.assign(round=np.int64(t)), df], axis=1)


def run_npz_bytes(run: RunReader) -> bytes:
    """run_arrays(run) as the bytes of a compressed .npz (the dashboard's whole-run download)."""
    import io as _io
    buf = _io.BytesIO()
    np.savez_compressed(buf, **run_arrays(run))
    return buf.getvalue()


def _write_tables(run: RunReader, folder: Path, fmt: str) -> int:
    """One run as tables (see export_tables). → rounds written."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    folder.mkdir(parents=True)
    rounds = run.round_ids
    if fmt == "npz":
        np.savez_compressed(folder / "samples.npz", **run_arrays(run))
    else:
        info = sample_info(run)
        cols = _quantities(run) if rounds else []
        target = folder / f"samples.{fmt}"
        writer = None
        for t in rounds:
            long = round_table(run, t, info, cols)
            if fmt == "csv":
                long.to_csv(target, mode="a", header=writer is None, index=False)
                writer = True
            else:
                table = pa.Table.from_pandas(long, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(target, table.schema, compression="zstd")
                writer.write_table(table.cast(writer.schema))
        if writer is None:  # no committed round yet: the columns alone, so the file still exists
            empty = info.assign(round=np.int64(0)).iloc[:0]
            if fmt == "csv":
                empty.to_csv(target, index=False)
            else:
                pq.write_table(pa.Table.from_pandas(empty, preserve_index=False), target)
        elif fmt == "parquet":
            writer.close()
    run.rounds().to_csv(folder / "rounds.csv", index=False)
    return len(rounds)


def export_tables(source, out, fmt: str) -> dict[Path, int]:
    """Every run under `source` (a run or an experiment folder) as plain tables in OUT/<run>/,
    readable with numpy or pandas alone:

    - npz: samples.npz holding `rounds` (T,), the per-sample `sample_id`, `source_row`, `label`,
      `clean_label`, `noisy` (N,), and one (N, T) array per logged per-sample column (`score`, each
      `score_<estimator>`, `loss`, `el2n`, `margin`, `selected`, `weight`, ...), row i = sample_id[i],
      column j = rounds[j]; NaN where a round did not log the column.
    - parquet / csv: samples.parquet or samples.csv, one row per (sample, round) with the same
      columns; `df.pivot(index="sample_id", columns="round", values="score")` is the N × T array.

    Each run folder also gets rounds.csv (its per-round metrics). Written round by round, so a
    100k-sample run never holds more than one round's frame; atomic like the TensorBoard export.
    → {OUT/<run>: rounds written}."""
    if fmt not in TABLE_FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose from {', '.join(TABLE_FORMATS)} or tensorboard")
    source, out = Path(source), Path(out)
    runs = _runs_of(source)
    return _into_new_folder(out, runs, lambda run, d: _write_tables(run, d, fmt))


def _export_run(run: RunReader, logdir: Path, SummaryWriter) -> bool:
    rounds = run.rounds()
    first = run.samples(0).columns if run.round_ids else []
    cols = [c for c in first if c in HIST_COLUMNS or c.startswith("score_")]
    writer = SummaryWriter(log_dir=str(logdir))
    try:
        for _, r in rounds.iterrows():
            t = int(r["round"])
            log_round(writer, t, r.to_dict(), run.samples(t, cols) if cols else None)
        mapped = _projector(run, writer)
        writer.flush()
    finally:
        writer.close()
    return mapped


def _projector(run: RunReader, writer) -> bool:
    mapped = run.embedding_rounds()
    if not mapped:
        return False  # no features(x), or an older run: scalars and histograms only
    t = mapped[-1]
    emb = run.embedding(t).sort_values("sample_id")
    mat = emb[component_columns(emb.columns)].to_numpy(np.float32)  # (N, K)
    sid = emb["sample_id"].to_numpy()
    s = run.samples(t, ["sample_id", "label", "score", "selected", "times_selected", "loss"]).set_index("sample_id")
    s = s.reindex(sid)
    ds = run.dataset()
    train = ds[ds["split"] == "train"] if "split" in ds.columns else ds
    train = train.drop_duplicates("sample_id").set_index("sample_id").reindex(sid) if len(train) else train
    names = run.meta.get("class_names") or []
    label = s["label"].to_numpy() if "label" in s else np.full(len(sid), -1)
    noisy = train["noisy"].fillna(False).to_numpy(bool) if "noisy" in train else np.zeros(len(sid), bool)
    # the row in the user's file: runs made before it was recorded have no such column
    source = train["source_row"].to_numpy(np.float64) if "source_row" in train else None
    header = ["sample_id", *(["source_row"] if source is not None else []), "label", "noisy", "score",
              "selected", "times_selected", "loss"]

    def cell(v, fmt="{:.4g}"):
        return "nan" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)
    rows = []
    for i, k in enumerate(sid):
        lab = int(label[i]) if np.isfinite(label[i]) else -1
        row = [int(k)] if source is None else [int(k), int(source[i]) if np.isfinite(source[i]) else "nan"]
        rows.append([*row, names[lab] if 0 <= lab < len(names) else str(lab), bool(noisy[i]),
                     cell(float(s["score"].iat[i]) if "score" in s else None),
                     bool(s["selected"].iat[i]) if "selected" in s else False,
                     int(s["times_selected"].iat[i]) if "times_selected" in s else 0,
                     cell(float(s["loss"].iat[i]) if "loss" in s else None)])
    writer.add_embedding(mat, metadata=rows, metadata_header=header, label_img=_sprite(train, len(sid)),
                         global_step=t, tag="penultimate_pca")
    return True


def _sprite(train: pd.DataFrame, n: int):
    """(N, 3, H, W) float tensor of the training thumbnails in sample order, or None."""
    if "thumbnail" not in train.columns or n == 0:
        return None
    thumbs = train["thumbnail"].tolist()
    if any(not isinstance(b, (bytes, bytearray)) for b in thumbs):
        return None  # some samples have no thumbnail
    import io

    import torch
    from PIL import Image
    first = Image.open(io.BytesIO(thumbs[0]))
    w, h = first.size
    if n * w * h > SPRITE_MAX_PIXELS:
        return None
    arr = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB").resize((w, h)), dtype=np.uint8)
                    for b in thumbs])  # (N, H, W, 3)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0
