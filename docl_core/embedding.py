"""The training set in the model's own feature space: a PCA basis fitted once per run, its 2-D map.

Penultimate features (models that offer `features(x)`, see measure.model_features) are projected
onto the top principal components of the first measured round's features. The basis is kept
for the whole run, so the axes mean the same thing in every round: a point that moves between
rounds moved in feature space, not because the axes were refitted. Fitting on the first round
lets the tracker write each round's map while the run trains (no end-of-run pass, no stored
features); the price is that directions the network grows later are not on the map. Each round
records how much of its own feature variance the two fixed axes still capture
(`embedding_var_2d` in rounds.parquet), so a stale basis shows.

    embedding/basis.npz          mean (D,), components (K, D), explained_variance_ratio (K,)
    embedding/round=NNNN.parquet sample_id, x, y, pc2 … pc{K-1}   (float32, one row per sample)

t-SNE (scikit-learn) is offered on demand by the app on the K stored components of one round.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

COMPONENTS = 8  # principal components stored per sample and round: x, y, then pc2 … pc7 for t-SNE and the projector


def has_features(model) -> bool:
    """Whether the model offers penultimate features (`features(x)`); without them no map is written."""
    return callable(getattr(model, "features", None))


@dataclass
class PCABasis:
    """A fixed linear map from features (D,) to K principal-component coordinates."""

    mean: np.ndarray                       # (D,) feature mean at the fit round
    components: np.ndarray                 # (K, D) orthonormal rows, largest variance first
    explained_variance_ratio: np.ndarray   # (K,) share of the fit round's feature variance per component
    fit_round: int                         # the round whose features the basis was fitted on

    @classmethod
    def fit(cls, features: torch.Tensor, fit_round: int, k: int = COMPONENTS) -> "PCABasis":
        """Top-k principal directions of (N, D) features (eigenvectors of the D × D covariance, float64)."""
        import torch  # here, not at the top: the dashboard reads maps through this module without torch
        F = features.detach().double()
        mu = F.mean(0)  # (D,)
        Fc = F - mu
        cov = Fc.T @ Fc / max(F.shape[0] - 1, 1)  # (D, D)
        vals, vecs = torch.linalg.eigh(cov)  # ascending
        k = min(k, F.shape[1])
        vals, vecs = vals.flip(0)[:k].clamp_min(0), vecs.flip(1)[:, :k].T  # (k,), (k, D)
        # a deterministic sign per axis: its largest loading is positive
        big = vecs.abs().argmax(1)
        sign = torch.sign(vecs[torch.arange(k), big])
        vecs = vecs * torch.where(sign == 0, torch.ones_like(sign), sign)[:, None]
        total = float(torch.diagonal(cov).sum())
        ratio = (vals / total).cpu().numpy() if total > 0 else np.zeros(k)
        return cls(mean=mu.cpu().numpy(), components=vecs.cpu().numpy(),
                   explained_variance_ratio=ratio.astype(np.float64), fit_round=int(fit_round))

    def project(self, features: torch.Tensor) -> tuple[np.ndarray, float]:
        """(N, K) float32 coordinates, and the share of these features' own variance on the first two axes."""
        import torch
        F = features.detach().double()
        mu = torch.as_tensor(self.mean, dtype=F.dtype, device=F.device)
        W = torch.as_tensor(self.components, dtype=F.dtype, device=F.device)  # (K, D)
        Fc = F - F.mean(0)
        Z = (F - mu) @ W.T  # (N, K)
        total = float((Fc ** 2).sum())
        on_map = float(((Fc @ W[:2].T) ** 2).sum())
        return Z.float().cpu().numpy(), (on_map / total if total > 0 else float("nan"))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean.astype(np.float64), "components": self.components.astype(np.float64),
                "explained_variance_ratio": self.explained_variance_ratio,
                "fit_round": np.array(self.fit_round, dtype=np.int64)}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "PCABasis":
        return cls(mean=a["mean"], components=a["components"],
                   explained_variance_ratio=a["explained_variance_ratio"], fit_round=int(a["fit_round"]))

    def info(self) -> dict:
        """What run.json records about the map (the page's caption and the export read it)."""
        return {"method": "pca", "basis": "first measured round", "fit_round": self.fit_round,
                "components": int(self.components.shape[0]), "feature_dim": int(self.components.shape[1]),
                "explained_variance_ratio": [float(v) for v in self.explained_variance_ratio]}


def embedding_frame(coords: np.ndarray) -> pd.DataFrame:
    """The per-round file's frame from (N, K) coordinates: sample_id, x, y, pc2 … pc{K-1}."""
    n, k = coords.shape
    df = {"sample_id": np.arange(n, dtype=np.int64), "x": coords[:, 0].astype(np.float32),
          "y": (coords[:, 1] if k > 1 else np.zeros(n)).astype(np.float32)}
    for j in range(2, k):
        df[f"pc{j}"] = coords[:, j].astype(np.float32)
    return pd.DataFrame(df)


def component_columns(columns) -> list[str]:
    """The coordinate columns of an embedding frame, in order (x, y, pc2, …)."""
    pcs = sorted((c for c in columns if c.startswith("pc") and c[2:].isdigit()), key=lambda c: int(c[2:]))
    return [c for c in ("x", "y") if c in columns] + pcs


def embedding_matrices(reader, rounds: Optional[list[int]] = None) -> dict[str, np.ndarray]:
    """{rounds: (R,), x: (R, N), y: (R, N)} float32 over the rounds that have a map (default: all)."""
    ids = reader.embedding_rounds() if rounds is None else list(rounds)
    n = int(reader.meta.get("num_train") or 0)
    xs, ys = [], []
    for t in ids:
        df = reader.embedding(t, ["sample_id", "x", "y"])
        n = max(n, int(df["sample_id"].max()) + 1 if len(df) else 0)
        x = np.full(n, np.nan, dtype=np.float32)
        y = np.full(n, np.nan, dtype=np.float32)
        sid = df["sample_id"].to_numpy()
        x[sid], y[sid] = df["x"].to_numpy(np.float32), df["y"].to_numpy(np.float32)
        xs.append(x)
        ys.append(y)
    if not ids:
        return {"rounds": np.zeros(0, dtype=np.int64), "x": np.zeros((0, n), np.float32),
                "y": np.zeros((0, n), np.float32)}
    width = max(len(v) for v in xs)
    pad = lambda v: np.pad(v, (0, width - len(v)), constant_values=np.nan)  # noqa: E731
    return {"rounds": np.asarray(ids, dtype=np.int64), "x": np.stack([pad(v) for v in xs]),
            "y": np.stack([pad(v) for v in ys])}


def variance_shares(coords: np.ndarray, var_2d: float, view: np.ndarray) -> tuple[np.ndarray, float]:
    """How much of one round's feature variance a view of its map holds, for honest axis titles.

    coords (N, K): the round's stored coordinates (x, y, pc2 …), whose x, y are the run's fixed
    axes; var_2d: the share of the round's full (D-dimensional) feature variance on x, y, as the
    tracker recorded it (`embedding_var_2d`); view (N, m): the points drawn, any linear map of
    coords (the fixed axes, a refit). The full variance is not stored, but var_2d fixes it:
    total = (variance on x, y) / var_2d. Returns each view column's share of that total (m,) and
    the K stored components' share, the most any axes refitted from the files can hold. NaN
    when var_2d is missing or not positive (runs from before it was recorded). Rows with NaN are
    skipped (a sample missing from a round)."""
    C, V = np.asarray(coords, dtype=np.float64), np.asarray(view, dtype=np.float64)
    ok = np.isfinite(C).all(axis=1) & np.isfinite(V).all(axis=1)
    C, V = C[ok] - C[ok].mean(axis=0), V[ok] - V[ok].mean(axis=0)  # variances about the round's own mean
    xy = float((C[:, :2] ** 2).sum())
    if var_2d is None or not np.isfinite(var_2d) or var_2d <= 0 or xy <= 0:
        return np.full(V.shape[1], np.nan), float("nan")
    total = xy / float(var_2d)  # the round's summed squared deviation over all D features
    return (V ** 2).sum(axis=0) / total, float((C ** 2).sum()) / total


def axis_range(values: np.ndarray, pad: float = 0.05) -> list[float]:
    """[lo, hi] over every round's finite values, padded: the axes a page keeps fixed."""
    v = values[np.isfinite(values)]
    if not len(v):
        return [-1.0, 1.0]
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo or 1.0
    return [lo - pad * span, hi + pad * span]


def tsne_map(components: np.ndarray, init: Optional[np.ndarray] = None, seed: int = 0,
             perplexity: float = 30.0) -> np.ndarray:
    """(n, 2) t-SNE of (n, K) stored components (scikit-learn). `init` (n, 2), e.g. the PCA map,
    keeps the picture's orientation close to the fixed axes; t-SNE distances between clusters
    carry no meaning and its axes are not comparable across rounds."""
    from sklearn.manifold import TSNE
    n = len(components)
    if n < 5:
        return np.zeros((n, 2), dtype=np.float32)
    if init is not None:
        init = np.asarray(init, dtype=np.float64)
        init = (init - init.mean(0)) / (init[:, 0].std() + 1e-12) * 1e-4  # scikit-learn's scale for init
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (n - 1) / 3), init=init if init is not None else "pca",
                random_state=seed, max_iter=300)  # 300 of scikit-learn's default 1000: an overview, on demand
    return tsne.fit_transform(np.asarray(components, dtype=np.float64)).astype(np.float32)
