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

    python benchmarks/bench_training.py --end-to-end [--dataset mnist1d] [--model mlp] [--trials 1]

The figure users feel: each curriculum trained end to end under the `steps` protocol (30
rounds of 3 epochs over S_t, k from 0.2 growing ×1.1 to 0.9; exact score, facility location
for MCL, DoCL-NR and DoCL), its wall time against Random's, with the breakdown the runs
logged in rounds.parquet (scoring, selection, training, evaluation, and the rest: logging).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))              # this checkout's docl_core first

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


def end_to_end(a) -> None:
    from docl_core.config import RunConfig, Schedule
    from docl_core.store import RunReader
    from docl_core.trainer import train_run
    curricula = ("random", "spl", "mcl", "docl-nr", "docl")
    parts = {"scoring": "score_time_s", "selection": "select_time_s", "training": "train_time_s",
             "evaluation": "eval_time_s"}
    res = {c: [] for c in curricula}
    with tempfile.TemporaryDirectory() as tmp:
        # one untimed warm-up run: dataset generation (MNIST-1D: ~2 s, then cached in-process) and
        # torch's first-call costs would otherwise land on whichever curriculum runs first
        train_run(RunConfig(dataset=a.dataset, curriculum="docl", model=a.model, rounds=1, probe_size=0,
                            log_estimators=[], device="cpu"), Path(tmp) / "warm-up")
        for trial in range(a.trials):
            for c in curricula:  # interleaved
                cfg = RunConfig(dataset=a.dataset, curriculum=c, model=a.model, rounds=30, seed=trial,
                                probe_size=0, log_estimators=[], device="cpu",
                                schedule=Schedule(k_start=0.2, k_growth=1.1, k_cap=0.9, epochs_per_round=3))
                t0 = time.perf_counter()
                d = train_run(cfg, Path(tmp) / f"{c}-{trial}")
                wall = time.perf_counter() - t0
                r = RunReader(d).rounds()
                row = {k: float(r[col].sum()) for k, col in parts.items()}
                row["logging+other"] = wall - sum(row.values())
                row["wall"] = wall
                row["acc"] = float(r["test_acc"].iloc[-1])
                res[c].append(row)
    med = {c: {k: statistics.median(x[k] for x in rows) for k in rows[0]} for c, rows in res.items()}
    print(f"hardware: {cpu_model()}, {torch.get_num_threads()} torch threads; "
          f"python {platform.python_version()}, torch {torch.__version__}")
    print(f"{a.dataset}, model {a.model}, steps protocol: 30 rounds × 3 epochs over S_t, k 0.2 ×1.1 → 0.9; "
          f"exact scores; {a.trials} trial(s), interleaved; median seconds summed over the run")
    cols = [*parts, "logging+other", "wall"]
    print(f"{'curriculum':10s} " + " ".join(f"{c:>13s}" for c in cols) + f" {'× Random':>9s} {'test acc':>9s}")
    for c in curricula:
        m = med[c]
        print(f"{c:10s} " + " ".join(f"{m[k]:13.2f}" for k in cols)
              + f" {m['wall'] / med['random']['wall']:9.2f} {m['acc']:9.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--k", type=int, default=2000)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--model", default="mlp", choices=("mlp", "cnn"))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--end-to-end", action="store_true", help="train every curriculum end to end (see above)")
    ap.add_argument("--dataset", default="mnist1d", help="dataset of --end-to-end")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.end_to_end:
        end_to_end(a)
        return
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
