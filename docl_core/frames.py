"""The per-sample frame of one round (samples/round=NNNN.parquet, docs/design.md §3), from a measurement.

Pure assembly: tensors in, one pandas frame out; nothing here measures or writes.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
import torch

from .measure import Measurement
from .outputs import at_label, probabilities

# sample scores written under their own name (float32); forgetting and presentations are counts
FLOAT_SAMPLE_COLUMNS = ("el2n", "margin", "entropy", "aum", "grand")


def _f32(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _label_columns(m: Measurement, y: torch.Tensor, task: str, clean: Optional[torch.Tensor]) -> dict:
    """label, correct, p_true (and p_clean when clean labels are given); regression: output0."""
    n = len(y)
    if task != "classification":
        return {"label": np.full(n, -1, dtype=np.int64), "correct": np.zeros(n, dtype=bool),
                "p_true": np.full(n, np.nan, dtype=np.float32), "output0": _f32(m.output[:, 0])}
    p = probabilities(m.output)  # (N, C)
    yl = y.long()
    cols = {"label": y.cpu().numpy().astype(np.int64), "correct": (m.output.argmax(1) == yl).cpu().numpy(),
            "p_true": _f32(at_label(p, yl))}
    if clean is not None:
        cols["p_clean"] = _f32(at_label(p, clean))
    return cols


def sample_frame(m: Measurement, y: torch.Tensor, task: str, estimator: str, *, selected: torch.Tensor,
                 weights: torch.Tensor, times_selected: torch.Tensor, data_map: dict[str, torch.Tensor],
                 clean: Optional[torch.Tensor] = None) -> pd.DataFrame:
    """One round's frame: N rows of sample_id, label, correct, p_true, loss, residual_norm, speed_norm,
    score (of `estimator`), score_<name> per estimator, the sample scores, the data map, selected,
    weight and times_selected. selected (N,) bool, weights (N,), times_selected (N,) int."""
    n = len(y)
    df = {"sample_id": np.arange(n, dtype=np.int64), **_label_columns(m, y, task, clean)}
    df["loss"] = _f32(m.loss)
    df["residual_norm"] = _f32(m.residual.norm(dim=1))
    df["speed_norm"] = _f32(m.speed.norm(dim=1)) if m.speed is not None else np.full(n, np.nan, np.float32)
    df["score"] = _f32(m.scores[estimator])
    for name, s in m.scores.items():
        df[f"score_{name}"] = _f32(s)
    for name in FLOAT_SAMPLE_COLUMNS:
        if name in m.sample:
            df[name] = _f32(m.sample[name])
    if "forgetting" in m.sample:
        f = m.sample["forgetting"]
        df["forgetting"] = _f32(f) if task != "classification" else f.cpu().numpy().astype(np.int32)
        df["presentations"] = m.sample["presentations"].cpu().numpy().astype(np.int32)
    for name, v in data_map.items():
        df[name] = _f32(v)
    df["selected"] = selected.cpu().numpy()
    df["weight"] = weights.cpu().numpy().astype(np.float32)
    df["times_selected"] = times_selected.cpu().numpy().astype(np.int32)
    return pd.DataFrame(df)


def default_dataset_frame(y: torch.Tensor, task: str, noisy: Optional[torch.Tensor]) -> pd.DataFrame:
    """dataset.parquet for a run whose loop gave none: ids, split "train", labels, the noise flags."""
    n = len(y)
    label = y.cpu().numpy().astype(np.int64) if task == "classification" else np.full(n, -1, dtype=np.int64)
    flags = noisy.numpy() if noisy is not None else np.zeros(n, dtype=bool)
    return pd.DataFrame({"sample_id": np.arange(n, dtype=np.int64), "split": "train",
                         "label": label, "clean_label": label, "noisy": flags})


def selection_and_weights(selected, weights, seen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The frame's `selected` (N,) bool and `weight` (N,) float32 columns: the ids `selected` with their
    `weights` (default 1), or, with no ids given, the samples `seen` (N,) bool in the round, weight 1."""
    n = len(seen)
    if selected is None:
        sel = seen.clone()
    else:
        sel = torch.zeros(n, dtype=torch.bool)
        sel[torch.as_tensor(selected).cpu().long()] = True
    w = torch.zeros(n)
    if weights is not None and selected is not None:
        w[torch.as_tensor(selected).cpu().long()] = torch.as_tensor(weights, dtype=torch.float32).cpu()
    else:
        w[sel] = 1.0
    return sel, w


def pass_positions(order: torch.Tensor, n: int) -> np.ndarray:
    """(n,) int32: each sample's 0-based position in `order` (k distinct ids), −1 when absent."""
    ids = torch.as_tensor(order).detach().cpu().long().numpy()
    distinct = len(np.unique(ids))
    if distinct != len(ids) or (len(ids) and (ids.min() < 0 or ids.max() >= n)):
        raise ValueError(f"order must hold distinct sample ids in [0, {n}): got {len(ids)} ids, "
                         f"{len(ids) - distinct} repeated")
    pos = np.full(n, -1, dtype=np.int32)
    pos[ids] = np.arange(len(ids), dtype=np.int32)
    return pos
