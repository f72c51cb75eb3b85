"""SYNTHETIC test scaffolding: writes fake docl experiments for the app's tests and benchmark.

Nothing here trains a model. The numbers are invented to look plausible (accuracy rises,
DoCL ends slightly above Random, scores shrink as training converges, noisy-label samples
keep large losses) so that every page of the dashboard has something sensible to draw.
They are NEVER results: every run this module writes carries `"synthetic": true` in its
run.json (and its config), and the dashboard labels such runs as synthetic test data.

The files follow docs/architecture.md exactly (all run.json fields, every rounds.parquet and
samples/round=NNNN.parquet column, kernel npz arrays, dataset.parquet by kind) and are
written with docl_core.store.RunWriter, so they exercise the same reader as real runs.

    python tests/synthetic_runs.py OUT_DIR [--n 300] [--rounds 8] [--kind image] [--protocol paper]
"""
from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from docl_core.store import RunWriter  # noqa: E402
from docl_core.names import default_order  # noqa: E402

CURRICULA = ("random", "spl", "mcl", "docl-nr", "docl")
PAPER_CURRICULA = ("sgd", *CURRICULA)  # the paper protocol adds plain SGD over all N (the paper's Random)
# how fast each curriculum "learns" in this fiction: DoCL a little ahead of Random
_RATE = {"sgd": 1.00, "random": 1.00, "spl": 0.96, "mcl": 1.01, "docl-nr": 1.04, "docl": 1.07}
_FINAL = {"sgd": 0.905, "random": 0.900, "spl": 0.893, "mcl": 0.903, "docl-nr": 0.908, "docl": 0.915}
_ALL = (*CURRICULA, "sgd")  # rng streams: the steps curricula keep their indices


@dataclass
class SyntheticSpec:
    n: int = 240                  # training samples
    rounds: int = 8               # rounds planned per run
    curricula: tuple = CURRICULA
    seeds: tuple = (0, 1)
    kind: str = "image"           # image | points2d | curve1d (curve1d is regression)
    num_classes: int = 4          # classification only
    probe: int = 24               # kernel probe samples; 0: no kernel files
    label_noise: float = 0.1      # fraction of flipped training labels (classification)
    running: bool = True          # add a run that is still training (status running)
    failed: bool = True           # add a run that stopped with status failed
    full_kernel: bool = True      # write the (m, m, C, C) blocks too
    thumb: int = 12               # thumbnail side in pixels (image kind)
    eval_size: int = 60           # validation and test samples each
    protocol: str = "steps"       # steps | paper (one row per epoch, in episodes of epochs_per_episode)
    epochs_per_episode: int = 3   # paper protocol: S_t is redrawn every epoch, k_t grows per episode
    acc_noise: float = 0.004      # std of the seed-to-seed accuracy noise (fraction)
    embedding: bool = True        # write embedding/ maps (a fake fixed PCA basis, points drift to their class)


# ----------------------------------------------------------------------------- dataset


def _png(img: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img, mode="L").save(buf, format="PNG", optimize=False, compress_level=1)
    return buf.getvalue()


def make_dataset(spec: SyntheticSpec, seed: int = 1234) -> dict:
    """The shared fake dataset: labels, noise flags, difficulty, coordinates or thumbnails."""
    rng = np.random.default_rng(seed)
    n, ne = spec.n, spec.eval_size
    total = n + 2 * ne
    regression = spec.kind == "curve1d"
    C = 1 if regression else spec.num_classes
    clean = np.full(total, -1, dtype=np.int64) if regression else rng.integers(0, C, total)
    label = clean.copy()
    noisy = np.zeros(total, dtype=bool)
    if not regression and spec.label_noise > 0:
        flip = rng.random(n) < spec.label_noise
        noisy[:n] = flip
        label[:n][flip] = (clean[:n][flip] + rng.integers(1, C, flip.sum())) % C
    split = np.array(["train"] * n + ["val"] * ne + ["test"] * ne)
    df = pd.DataFrame({"sample_id": np.arange(total), "split": split, "label": label,
                       "clean_label": clean, "noisy": noisy})
    difficulty = rng.beta(2.0, 2.0, total)  # latent, drives the fiction below
    extra = {}
    if spec.kind == "points2d":
        ang = 2 * np.pi * clean / C
        r = 1.0 + 1.2 * difficulty
        df["x0"] = (np.cos(ang) * 2 + rng.normal(0, 0.35 + 0.6 * difficulty, total)).astype(np.float32)
        df["x1"] = (np.sin(ang) * 2 + rng.normal(0, 0.35 + 0.6 * difficulty, total)).astype(np.float32)
        df["x0"] *= r.astype(np.float32) / 2 + 0.5
    elif spec.kind == "curve1d":
        x = rng.uniform(-3, 3, total).astype(np.float32)
        df["x0"] = x
        df["target"] = (np.sin(1.5 * x) + 0.3 * x + rng.normal(0, 0.15, total)).astype(np.float32)
        difficulty = np.clip(np.abs(x) / 3 * 0.8 + rng.normal(0, 0.1, total), 0.02, 0.98)
    else:
        s = spec.thumb
        yy, xx = np.mgrid[0:s, 0:s] / (s - 1)
        templates = []
        for c in range(C):
            cx, cy = 0.3 + 0.4 * rng.random(2)
            ring = np.exp(-((np.hypot(xx - cx, yy - cy) - 0.15 - 0.08 * c) ** 2) / 0.006)
            bar = np.exp(-((xx * np.cos(c) + yy * np.sin(c) - 0.5) ** 2) / 0.01)
            templates.append(np.clip(ring + 0.6 * bar, 0, 1))
        thumbs = []
        for i in range(total):
            other = templates[(clean[i] + 1) % C]
            img = (1 - 0.5 * difficulty[i]) * templates[clean[i]] + 0.5 * difficulty[i] * other
            img = img + rng.normal(0, 0.08, (s, s))
            thumbs.append(_png((255 * np.clip(img, 0, 1)).astype(np.uint8)))
        df["thumbnail"] = thumbs
    extra["difficulty"] = difficulty[:n]
    extra["C"] = C
    extra["class_names"] = None if regression else [f"class {c}" for c in range(C)]
    return {"frame": df, **extra}


# ----------------------------------------------------------------------------- one run


def _k(t: int, n: int) -> int:
    return max(1, min(n, int(round(min(1.0, 0.2 * 1.2 ** t) * n))))


def write_run(exp_dir: Path, data: dict, spec: SyntheticSpec, curriculum: str, seed: int,
              name: str | None = None, stop_after: int | None = None, fail: str | None = None) -> Path:
    """Write one fake run. stop_after=r leaves it 'running' after r committed rounds; fail=msg
    marks it failed after stop_after rounds."""
    name = name or f"{curriculum}-s{seed}"
    run_dir = Path(exp_dir) / name
    regression = spec.kind == "curve1d"
    C, n, R = data["C"], spec.n, spec.rounds
    rng = np.random.default_rng(1000 * seed + _ALL.index(curriculum) if curriculum in _ALL else seed)
    paper = spec.protocol == "paper"
    frame = data["frame"]
    train = frame.iloc[:n]
    label = train["label"].to_numpy()
    noisy = train["noisy"].to_numpy()
    d = data["difficulty"]
    rate = _RATE.get(curriculum, 1.0) * (1 + 0.02 * rng.normal())
    writer = RunWriter(run_dir)
    config = {"dataset": f"synthetic-{spec.kind}", "curriculum": curriculum, "rounds": R, "seed": seed,
              "model": "mlp", "estimator": "exact", "log_estimators": ["byproduct"],
              "diversity": "facility", "label_noise": spec.label_noise, "batch_size": 64,
              "probe_size": spec.probe, "device": "cpu", "synthetic": True,
              **({"protocol": "paper", "epochs_per_episode": spec.epochs_per_episode,
                  "order": default_order(curriculum)} if paper else {}),
              "schedule": {"k_start": 0.2, "k_growth": 1.2, "k_cap": 1.0, "lr": 0.05, "lr_min": 0.001}}
    writer.start({"name": name, "rounds_planned": R, "task": "regression" if regression else "classification",
                  "num_outputs": C, "num_train": n, "class_names": data["class_names"], "world_size": 1,
                  "device": "cpu", "versions": {"docl": "synthetic", "torch": "n/a"}, "synthetic": True,
                  "config": config})
    writer.write_dataset(frame)
    times = np.zeros(n, dtype=np.int32)
    steps = 0 if paper else n // 64  # warm start epoch (the paper protocol counts it as episode 0)
    seen = 0.0 if paper else float(n)
    probe_ids = _stratified(label, spec.probe, rng) if spec.probe else None
    P = 24
    J0 = rng.normal(size=(max(C, 1), P))
    Jclass = rng.normal(size=(max(C, 2), max(C, 1), P))
    byproduct = None
    z_i = rng.normal(0, 0.6, n)  # per-sample quirks persist across rounds
    align_i = np.where(noisy, rng.normal(-0.05, 0.2, n), np.clip(rng.normal(0.6, 0.2, n), -0.2, 1))
    last = R if stop_after is None else min(stop_after, R)
    if spec.embedding:
        K, D = 8, 16
        ev = np.array([0.3, 0.2, 0.1, 0.08, 0.06, 0.05, 0.04, 0.03])
        writer.write_embedding_basis({"mean": np.zeros(D), "components": np.eye(K, D), "explained_variance_ratio": ev,
                                      "fit_round": np.array(0)},
                                     {"method": "pca", "basis": "first measured round", "fit_round": 0,
                                      "components": K, "feature_dim": D, "explained_variance_ratio": ev.tolist()})
        start = rng.normal(0, 1.0, (n, K)).astype(np.float32)  # round 0: a shapeless cloud
        home = np.zeros((n, K), dtype=np.float32)  # where each sample drifts: its given label's centre
        if regression:
            home[:, 0] = 2 * train["x0"].to_numpy()
            home[:, 1] = 2 * train["target"].to_numpy()
        else:
            ang = 2 * np.pi * np.clip(label, 0, None) / max(C, 1)
            home[:, 0], home[:, 1] = 3 * np.cos(ang), 3 * np.sin(ang)
    for t in range(last):
        comp = 1 - np.exp(-3.0 * rate * (t + 1) / R)  # competence in (0, 1)
        gscale = 1.5 * np.exp(-2.0 * (t + 1) / R) + 0.1  # ‖ḡ‖ shrinks as training converges
        if regression:
            target = train["target"].to_numpy()
            fit = np.clip(comp * (1.15 - d) * 1.1, 0, 1)
            out = target * fit + rng.normal(0, 0.05, n)
            res = out - target
            loss = 0.5 * res ** 2
            p_true = np.full(n, np.nan)
            correct = np.full(n, np.nan)
            rnorm = np.abs(res)
        else:
            z = 9 * (comp - d) + z_i + rng.normal(0, 0.2, n)
            p_true = 1 / (1 + np.exp(-z))
            p_true = np.where(noisy, (1 / C) * (1 + 1.5 * comp * d + 0.2 * rng.random(n)), p_true)
            p_true = np.clip(p_true, 1e-4, 1 - 1e-4)
            loss = -np.log(p_true)
            correct = p_true > 0.5
            rnorm = (1 - p_true) * np.sqrt(1 + 1 / max(C - 1, 1))
        act = 4 * np.clip(rnorm, 0, 1) * (1 - np.clip(rnorm, 0, 1)) + 0.15  # frontier moves fastest
        snorm = gscale * act * rng.lognormal(0, 0.1, n)
        align = align_i + rng.normal(0, 0.05, n)
        score = (rnorm * snorm * align).astype(np.float32)
        est = score + rng.normal(0, 0.25 * (np.std(score) + 1e-6), n)
        byproduct = est if byproduct is None else 0.6 * byproduct + 0.4 * est  # EMA, goes stale
        episode = t // spec.epochs_per_episode if paper else t
        k = n if curriculum == "sgd" else _k(episode, n)
        sel = _select(curriculum, k, loss, score, rng)
        selected = np.zeros(n, dtype=bool)
        selected[sel] = True
        times += selected
        samples = pd.DataFrame({
            "sample_id": np.arange(n, dtype=np.int64), "label": label, "loss": loss.astype(np.float32),
            "correct": correct, "p_true": p_true.astype(np.float32),
            "residual_norm": rnorm.astype(np.float32), "speed_norm": snorm.astype(np.float32),
            "score": score, "score_exact": score, "score_byproduct": byproduct.astype(np.float32),
            "selected": selected, "weight": selected.astype(np.float32), "times_selected": times.copy(),
        })
        samples["output0"] = out.astype(np.float32) if regression else np.float32(np.nan)
        if not regression and noisy.any():                               # as the tracker: p(clean label) too
            p_clean = np.where(noisy, np.clip(0.7 * (1 - comp) + 0.1 * d, 1e-4, 1 - 1e-4), p_true)
            samples["p_clean"] = p_clean.astype(np.float32)
        steps += int(np.ceil(k / 64))
        seen += k
        final = _FINAL.get(curriculum, 0.9)
        acc = None if regression else final * (0.55 + 0.45 * comp) + rng.normal(0, spec.acc_noise)
        mse = float(np.mean(loss))
        row = {"k": k, "lr": 0.05, "steps": steps, "epoch_equiv": seen / n,
               "train_loss": float(np.mean(loss)), "train_acc": float(np.mean(correct)) if not regression else np.nan,
               "val_loss": mse * 1.1, "val_acc": (acc - 0.004 + rng.normal(0, 0.004)) if acc else np.nan,
               "test_loss": mse * 1.12, "test_acc": acc if acc else np.nan,
               "score_time_s": 0.02 + 0.00002 * n * (0.6 if curriculum in ("random", "spl") else 1.0),
               "select_time_s": {"random": 0.001, "spl": 0.002, "mcl": 0.05, "docl-nr": 0.05,
                                 "docl": 0.03}.get(curriculum, 0.01) * (1 + n / 5000),
               "train_time_s": 0.00004 * k + 0.01, "eval_time_s": 0.01,
               "noisy_selected": int((selected & noisy).sum()), "grad_norm": float(gscale)}
        if paper:  # one row per epoch
            row.update(epoch=t, episode=episode, samples_seen=int(seen), full_pass=bool(k == n))
        kernel = _kernel(probe_ids, label, p_true, res if regression else None, C, J0, Jclass, gscale,
                         rng, spec.full_kernel) if spec.probe else None
        emb = None
        if spec.embedding:
            pull = (comp * (1.1 - d))[:, None].astype(np.float32)  # easy samples settle first
            Z = (1 - pull) * start + pull * home + rng.normal(0, 0.05, (n, K)).astype(np.float32)
            emb = pd.DataFrame({"sample_id": np.arange(n, dtype=np.int64), "x": Z[:, 0], "y": Z[:, 1],
                                **{f"pc{j}": Z[:, j] for j in range(2, K)}})
            row["embedding_var_2d"] = float(0.5 + 0.3 * comp)
        writer.write_round(t, row, samples, kernel=kernel, embedding=emb)
    if fail is not None:
        writer.fail(fail)
    elif stop_after is None or stop_after >= R:
        writer.finish()
    return run_dir


def _stratified(label: np.ndarray, m: int, rng) -> np.ndarray:
    classes = np.unique(label)
    per = [rng.permutation(np.flatnonzero(label == c)) for c in classes]
    out, i = [], 0
    while len(out) < min(m, len(label)):
        pool = per[i % len(per)]
        j = i // len(per)
        if j < len(pool):
            out.append(int(pool[j]))
        i += 1
        if i > 10 * len(label):
            break
    return np.sort(np.array(out, dtype=np.int64))


def _select(curriculum: str, k: int, loss, score, rng) -> np.ndarray:
    n = len(loss)
    if curriculum == "sgd":
        return rng.permutation(n)
    if curriculum == "spl":
        return np.argsort(loss, kind="stable")[:k]
    if curriculum == "mcl":
        return np.argsort(-(loss + rng.normal(0, 0.3 * loss.std() + 1e-9, n)), kind="stable")[:k]
    if curriculum == "docl-nr":
        return np.argsort(-score, kind="stable")[:k]
    if curriculum == "docl":
        z = (score - score.mean()) / (score.std() + 1e-12)
        w = np.exp(np.clip(z, -20, 20))
        pool = rng.choice(n, size=min(n, 2 * k), replace=False, p=w / w.sum())
        return pool[np.argsort(-score[pool], kind="stable")[:k]]
    return rng.choice(n, size=k, replace=False)


def _kernel(ids, label, p_true, reg_res, C, J0, Jclass, gscale, rng, full) -> dict:
    m = len(ids)
    lab = label[ids]
    cls = np.clip(lab, 0, None) % Jclass.shape[0]
    J = (J0[None] + 1.2 * Jclass[cls] + 0.7 * rng.normal(size=(m, *J0.shape))) * np.sqrt(gscale)  # (m, C, P)
    H = np.einsum("acp,bdp->abcd", J, J).astype(np.float32)  # (m, m, C, C)
    if reg_res is not None:
        r = reg_res[ids].reshape(m, 1).astype(np.float32)  # (m, 1)
    else:
        pt = np.nan_to_num(p_true[ids], nan=1.0 / C)
        p = np.tile(((1 - pt) / max(C - 1, 1))[:, None], (1, C))
        p[np.arange(m), lab] = pt
        r = p.copy()
        r[np.arange(m), lab] -= 1.0  # (m, C) softmax − onehot
        r = r.astype(np.float32)
    trace = np.einsum("abcc->ab", H)  # (m, m)
    contrib = np.einsum("ic,ijcd,jd->ij", r, H, r) / m  # (m, m)
    ev = np.linalg.eigvalsh(0.5 * (trace + trace.T))[::-1][:20].copy()
    out = {"probe_ids": ids.astype(np.int64), "labels": lab.astype(np.int64), "trace": trace,
           "eigenvalues": ev.astype(np.float32), "residual": r, "contributions": contrib.astype(np.float32),
           "kernel_score": contrib.sum(1).astype(np.float32)}
    if full:
        out["full"] = H
    return out


# ----------------------------------------------------------------------------- experiment


def write_experiment(exp_dir: str | Path, spec: SyntheticSpec | None = None, **overrides) -> Path:
    """Write a synthetic experiment folder (runs `<curriculum>-s<seed>`, plus a running and a
    failed run when the spec asks) and return its path."""
    spec = spec or SyntheticSpec()
    for k, v in overrides.items():
        setattr(spec, k, v)
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    data = make_dataset(spec)
    for c in spec.curricula:
        for s in spec.seeds:
            write_run(exp_dir, data, spec, c, s)
    nxt = max(spec.seeds) + 1 if spec.seeds else 0
    if spec.running:
        write_run(exp_dir, data, spec, "docl", nxt, name=f"docl-s{nxt}-live",
                  stop_after=max(1, spec.rounds // 2))
    if spec.failed:
        write_run(exp_dir, data, spec, "mcl", nxt, name=f"mcl-s{nxt}-failed", stop_after=2,
                  fail="non-finite loss in round 2: lower --lr and rerun")
    return exp_dir


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Write a SYNTHETIC docl experiment (test scaffolding).")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--kind", default="image", choices=["image", "points2d", "curve1d"])
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--protocol", default="steps", choices=["steps", "paper"])
    a = ap.parse_args(argv)
    spec = SyntheticSpec(n=a.n, rounds=a.rounds, kind=a.kind, num_classes=a.classes, protocol=a.protocol)
    if a.protocol == "paper":
        spec.curricula = PAPER_CURRICULA
    print(write_experiment(a.out, spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
