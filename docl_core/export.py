"""Take docl runs to TensorBoard, through PyTorch's own torch.utils.tensorboard.SummaryWriter.

    python -m docl_core export RUN_OR_EXPERIMENT --to tensorboard OUT
    tensorboard --logdir OUT

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
from .store import ExperimentReader, RunReader, RunStoreError, is_run_dir

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


def export_tensorboard(source, out) -> dict[Path, bool]:
    """Write every run under `source` (a run or an experiment folder) as OUT/<run>/; returns
    {that folder: whether it has a projector (the run has a map)}."""
    source, out = Path(source), Path(out)
    runs = _runs_of(source)  # a missing or unreadable source fails here, before anything is written
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not an empty folder: choose a new OUT folder or delete it")
    SummaryWriter = _summary_writer()
    created = [p for p in [out.parent, *out.parent.parents] if not p.exists()]  # removed again on failure
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        mapped = {out / run.dir.name: _export_run(run, tmp / run.dir.name, SummaryWriter) for run in runs}
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
    return mapped


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
