"""What does the score atlas cost the tracker per round, with and without GraNd (--log-grad-norms)?

Each round is one plain training epoch of the dataset's default model (SGD, a step per batch)
followed by the tracker's end_round. Times, in one process and interleaved (each trial runs every
variant once, in a rotated order, so load from other processes falls on all alike):

  epoch       the epoch alone, no tracker (what a user's loop costs)
  tracked     the epoch with DynamicsTracker: on_batch after every step (byproduct, forgetting
              and AUM from the step's own outputs), end_round (exact scores, EL2N, margin,
              entropy, the data map, the frame written); kernel probe off (`--probe-size 0`:
              the kernel's cost is bench_scores.py's subject)
  grand       the same with log_grad_norms=True: one per-sample gradient pass (vmap(grad)) more
  grand_pass  per_sample_grad_norms over the training set alone, for reference

Overhead = (variant − epoch) / epoch. Printed side by side with the hardware, versions and trials.

Run:  python benchmarks/bench_atlas.py --dataset digits --trials 3 --threads 2
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from docl_core.data import load_dataset  # noqa: E402
from docl_core.envinfo import cpu_model, versions  # noqa: E402
from docl_core.models import build_model  # noqa: E402
from docl_core.tracker import DynamicsTracker, per_sample_grad_norms  # noqa: E402


def one_round(model, X, y, batch: int, tracker=None) -> float:
    """Seconds for one epoch of SGD and, with a tracker, its on_batch calls and end_round."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)  # lr per batch of `batch`
    order = torch.randperm(len(X))
    t0 = time.perf_counter()
    model.train()
    for s in range(0, len(X), batch):
        ids = order[s:s + batch]
        out = model(X[ids])
        loss = F.cross_entropy(out, y[ids])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if tracker is not None:
            tracker.on_batch(ids, out, lr=0.01)
    if tracker is not None:
        tracker.end_round()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits", help="a built-in classification dataset")
    ap.add_argument("--model", default=None, help="mlp, cnn or resnet (default: the dataset's)")
    ap.add_argument("--batch", type=int, default=64, help="training mini-batch")
    ap.add_argument("--trials", type=int, default=3, help="interleaved trials (one round per variant each)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ds = load_dataset(a.dataset, seed=0)
    X, y = ds.x_train, ds.y_train
    torch.manual_seed(0)
    models = {v: build_model(a.model, ds) for v in ("epoch", "tracked", "grand")}
    P = sum(p.numel() for p in models["epoch"].parameters())
    tmp = Path(tempfile.mkdtemp(prefix="bench_atlas_"))
    trackers = {"epoch": None,
                "tracked": DynamicsTracker(tmp / "e" / "tracked", models["tracked"], X, y, probe_size=0),
                "grand": DynamicsTracker(tmp / "e" / "grand", models["grand"], X, y, probe_size=0,
                                         log_grad_norms=True)}
    for v in models:  # warm-up: first-call costs (allocations, vmap tracing) out of the trials
        one_round(models[v], X, y, a.batch, trackers[v])
    times = {v: [] for v in (*models, "grand_pass")}
    variants = list(models) + ["grand_pass"]
    for trial in range(a.trials):
        for v in variants[trial % len(variants):] + variants[:trial % len(variants)]:
            if v == "grand_pass":
                t0 = time.perf_counter()
                per_sample_grad_norms(models["grand"], X, y, batch_size=512)
                times[v].append(time.perf_counter() - t0)
            else:
                times[v].append(one_round(models[v], X, y, a.batch, trackers[v]))
    for t in trackers.values():
        if t is not None:
            t.close()
    med = {v: statistics.median(ts) for v, ts in times.items()}
    e = med["epoch"]
    print(f"bench_atlas: {a.dataset} N={len(X)} model={type(models['epoch']).__name__} ({P:,} parameters), "
          f"batch {a.batch}, {a.trials} trials (median), {a.threads} threads")
    print(f"hardware: {cpu_model()}; versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(f"{'variant':<12}{'s/round':>10}{'× epoch':>10}{'overhead':>11}")
    for v in variants:
        over = f"{100 * (med[v] - e) / e:+.0f}%" if v != "grand_pass" else ""
        print(f"{v:<12}{med[v]:>10.3f}{med[v] / e:>10.2f}{over:>11}")
    print(f"tracker overhead per round: without GraNd {(med['tracked'] - e) / e:.2f}× an epoch, "
          f"with GraNd {(med['grand'] - e) / e:.2f}× an epoch; GraNd adds "
          f"{(med['grand'] - med['tracked']) / max(med['tracked'] - e, 1e-12):.2f}× the tracker's own overhead "
          f"(the per-sample gradient pass alone: {med['grand_pass'] / e:.2f}× an epoch)")


if __name__ == "__main__":
    main()
