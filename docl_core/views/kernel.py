"""Tangent-kernel frames (probe set by class, eigenvalues, contributions c_ij, neighbours) and the
How-it-works page's live example; torch only inside `tiny_example`."""
from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from ..store import RunStoreError

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


# torch's forward-mode AD keeps its dual levels per process, not per thread: two jvp's at once in two
# threads (How it works beside the dashboard's torch.func warm-up) fail with "no level exists"
_FORWARD_AD = threading.Lock()


def tiny_example(n: int = 40, hidden: int = 16, steps: int = 60, seed: int = 0) -> dict:
    """A live, CPU-sized demonstration of docs/design.md §1 (well under a second).

    Three Gaussian blobs in 2-D (n points), an MLP 2 → hidden → 3 trained for a few full-batch
    SGD steps, then: exact scores (docl_scores), the full kernel blocks H (n, n, 3, 3)
    (kernel_block), and contributions c_ij = r_iᵀ H_ij r_j / n (score_contributions). With the
    probe set equal to the whole training set, Σ_j c_ij equals a_i up to rounding.

    Returns frames: points (x0, x1, label, residual_norm, speed_norm, score, kernel_score),
    contributions (n, n) and the max |a_i − Σ_j c_ij|.
    """
    import torch

    from ..dynamics import docl_scores, kernel_block, per_sample_loss, score_contributions

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
    with _FORWARD_AD:  # the app's warm-up thread runs this too, and forward-AD levels are process-wide
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
