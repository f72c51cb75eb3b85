"""The Embedding page's refitted axes: principal axes of one round's stored map coordinates.

A run stores, per round, every sample's coordinates on the K principal axes fitted once on the
first measured round (x, y, pc2 … pc{K-1}; docl_core/embedding.py). Features the network grows
later lie partly off those axes, so the 2-D view of a late round can be a shapeless cloud.
Refitting on a later round's K-D coordinates finds the two directions, inside the stored
K-D subspace, along which that round's points spread most: the full features are not stored, so
this is the best 2-D view the files allow, and `share` says how much of the round's variance in
those K dimensions it holds.
"""
from __future__ import annotations

import numpy as np


def refit_axes(coords: np.ndarray) -> dict[str, np.ndarray]:
    """Principal axes of coords (N, K), rows with NaN skipped: mean (K,), axes (2, K) orthonormal,
    each signed so that its largest loading is positive (a refit on the same data never flips the
    picture), and share (2,), the fraction of the K-D variance on each axis."""
    C = np.asarray(coords, dtype=np.float64)
    C = C[np.isfinite(C).all(axis=1)]
    k = C.shape[1] if C.ndim == 2 else 0
    if len(C) < 2 or k == 0:
        return {"mean": np.zeros(k), "axes": np.eye(2, k), "share": np.zeros(2)}
    mean = C.mean(axis=0)  # (K,)
    _, s, vt = np.linalg.svd(C - mean, full_matrices=False)  # vt (min(N, K), K)
    axes = np.zeros((2, k))
    axes[:min(2, len(vt))] = vt[:2]
    for a in axes:
        if a.any():
            a *= np.sign(a[np.argmax(np.abs(a))])
    var = s ** 2
    share = np.zeros(2)
    share[:min(2, len(var))] = var[:2] / var.sum() if var.sum() > 0 else 0.0
    return {"mean": mean, "axes": axes, "share": share}


def project(coords: np.ndarray, fit: dict[str, np.ndarray]) -> np.ndarray:
    """coords (N, K) on a refit's two axes: (N, 2); NaN rows stay NaN."""
    return (np.asarray(coords, dtype=np.float64) - fit["mean"]) @ fit["axes"].T
