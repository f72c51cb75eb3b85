"""What a curriculum round costs next to plain training, side by side in one process.

    python benchmarks/bench_training.py [--n 20000] [--k 2000] [--trials 3]

On N synthetic samples (10 classes): 32 features and an MLP (`--model mlp`, the worst case for
logging overhead: an epoch takes a fraction of a second), or 1×16×16 images and the small CNN
(`--model cnn`), interleaved over trials:
  plain epoch          one epoch of mini-batch SGD over all N (the Random baseline)
  + byproduct (stale)  the same epoch logged by DynamicsTracker: on_batch every step, then
                       end_round with the byproduct estimator on the outputs training saw
  + byproduct (fresh)  the same, with one eval forward over N per round for fresh losses
  exact scores         DynamicsTracker.measure with the exact estimator (ḡ + JVP passes)
  select <method>      DoCL's selection of k from N: pool draw + facility location by
                       stochastic greedy, or the centrality proxy
Prints hardware, versions, trials, medians and overheads relative to the plain epoch.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from docl_core.curricula import RoundState, make_curriculum
from docl_core.dynamics import per_sample_loss
from docl_core.models import build_model
from docl_core.data import load_dataset
from docl_core.envinfo import cpu_model
from docl_core.tracker import DynamicsTracker


def make_data(n: int, path: Path, shape: tuple, seed: int = 0) -> Path:
    import numpy as np
    rng = np.random.default_rng(seed)
    d = int(np.prod(shape))
    centers = rng.normal(scale=2.0, size=(10, d))
    y = rng.integers(0, 10, size=n)
    x = (centers[y] + rng.normal(size=(n, d))).reshape(n, *shape)
    np.savez(path, x=x.astype(np.float32), y=y.astype(np.int64))
    return path


def epoch(model, opt, X, y, batch, gen, tracker=None):
    model.train()
    for ids in torch.randperm(len(X), generator=gen).split(batch):
        out = model(X[ids])
        loss = per_sample_loss(out, y[ids], "classification").mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if tracker is not None:
            tracker.on_batch(ids, out, lr=0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--k", type=int, default=2000)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--model", default="mlp", choices=("mlp", "cnn"))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="docl-bench-"))
    shape = (32,) if a.model == "mlp" else (1, 16, 16)
    ds = load_dataset(str(make_data(a.n, tmp / "data.npz", shape)), seed=0, val_fraction=0.0,
                      test_fraction=0.01)
    X, y = ds.x_train, ds.y_train
    N = len(X)
    torch.manual_seed(0)
    model = build_model(a.model, ds)
    P = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    stale = DynamicsTracker(tmp / "stale", model, X, y, estimator="byproduct", log_estimators=(),
                            probe_size=0, refresh=False)
    fresh = DynamicsTracker(tmp / "fresh", model, X, y, estimator="byproduct", log_estimators=(),
                            probe_size=0, refresh=True)
    exact = DynamicsTracker(tmp / "exact", model, X, y, estimator="exact", log_estimators=(), probe_size=0)
    k = min(a.k, N)
    feats = exact.measure(features=True)
    sel = {"facility": make_curriculum("docl", diversity="facility"),
           "centrality": make_curriculum("docl", diversity="centrality"),
           "none": make_curriculum("docl", diversity="none")}

    def select(curr):
        state = RoundState(t=0, k=k, lam=1.0, temperature=1.0, pool_factor=2.0, loss=feats.loss,
                           score=feats.scores["exact"], features=feats.features,
                           generator=torch.Generator().manual_seed(1))
        curr.select(state)

    methods = {
        "plain epoch": lambda: epoch(model, opt, X, y, a.batch, gen),
        "epoch + byproduct (stale)": lambda: (epoch(model, opt, X, y, a.batch, gen, stale), stale.end_round()),
        "epoch + byproduct (fresh)": lambda: (epoch(model, opt, X, y, a.batch, gen, fresh), fresh.end_round()),
        "exact scores (measure)": lambda: exact.measure(),
        "select: docl, facility (stoch. greedy)": lambda: select(sel["facility"]),
        "select: docl, centrality": lambda: select(sel["centrality"]),
        "select: docl, no diversity": lambda: select(sel["none"]),
    }
    times = {m: [] for m in methods}
    for _ in range(a.trials):  # round-robin so load drifts hit every method alike
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {m: statistics.median(v) for m, v in times.items()}
    base = med["plain epoch"]
    print(f"hardware: {cpu_model()}, {torch.get_num_threads()} torch threads; "
          f"python {platform.python_version()}, torch {torch.__version__}")
    print(f"data: N={N} samples of shape {shape}, 10 classes; {a.model} with P={P:,} parameters; batch {a.batch}; "
          f"selection k={k}; {a.trials} trials, interleaved; median seconds")
    print(f"{'method':42s} {'seconds':>9s} {'× plain epoch':>14s}")
    for m, s in med.items():
        print(f"{m:42s} {s:9.3f} {s / base:14.2f}")
    print(f"byproduct logging overhead: stale {100 * (med['epoch + byproduct (stale)'] / base - 1):+.1f}%, "
          f"fresh {100 * (med['epoch + byproduct (fresh)'] / base - 1):+.1f}% over a plain epoch (goal ≤ 10%)")


if __name__ == "__main__":
    main()
