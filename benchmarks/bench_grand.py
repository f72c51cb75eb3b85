"""What GraNd costs next to a training epoch: hooks (docl_core.grand) against vmap(grad).

    python benchmarks/bench_grand.py [--trials 5] [--threads 1]

Two setups, each timed in one process and interleaved (each trial runs every method once, the
order rotated per trial, so load from other processes falls on all alike):
  mlp  docl's MLP (2 × 128 hidden) on MNIST-1D: its 4,000 training signals of length 40
       (synthetic data of that size without the mnist1d package)
  cnn  docl's small CNN (width 16, BatchNorm) on scikit-learn's digits (8×8, the training split)
Methods, over the same N samples:
  epoch  one plain training epoch: train mode, shuffled mini-batches of --batch (64, docl's
         default), forward + backward + SGD step
  hooks  grand.grad_norms: per-layer norms from forward hooks, chunks of --score-batch (512)
  vmap   grand.vmap_grad_norms: per-sample gradients by vmap(grad), the route it replaces
Each model is first trained --warmup epochs (so gradients look like a run's), and the largest
relative differences hooks vs vmap on that model are printed, in float32 (as runs log it) and
float64, and each float32 route against float64 (how far float rounding moves each).
Prints hardware, versions, trials, medians of wall-clock and of process CPU time, and ratios to
the epoch. On a loaded machine absolute times swing: trust the interleaved ratios.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's docl_core first

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from docl_core.data import load_dataset  # noqa: E402
from docl_core.envinfo import cpu_model  # noqa: E402
from docl_core.grand import grad_norms, hook_support, vmap_grad_norms  # noqa: E402
from docl_core.models import build_model, count_parameters  # noqa: E402


def train_epoch(model, X, y, batch: int, gen: torch.Generator, lr: float = 0.05) -> None:
    """One epoch of SGD with momentum over shuffled mini-batches, in place."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for ids in torch.randperm(len(X), generator=gen).split(batch):
        loss = F.cross_entropy(model(X[ids]), y[ids])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def setups(seed: int):
    """(name, model, X, y, description) for the MLP on MNIST-1D-sized data and the CNN on digits."""
    try:  # MNIST-1D's 4,000 training signals (docl's train + validation split), when installed
        m1 = load_dataset("mnist1d", seed=seed)
        X1, y1 = torch.cat([m1.x_train, m1.x_val]), torch.cat([m1.y_train, m1.y_val])
        what = f"MLP on MNIST-1D ({len(X1):,} × 1×40)"
    except ValueError:  # no mnist1d package: the same size, synthetic
        g = torch.Generator().manual_seed(seed)
        y1 = torch.randint(0, 10, (4000,), generator=g)
        X1 = (0.3 * torch.randn(10, 40, generator=g)[y1] + torch.randn(4000, 40, generator=g)).unsqueeze(1)
        what = "MLP on 4,000 × 1×40 synthetic (MNIST-1D-sized; no mnist1d package)"
    torch.manual_seed(seed)
    mlp = build_model("mlp", SimpleNamespace(name="mnist1d", kind="signal", input_shape=(1, 40), num_outputs=10))
    digits = load_dataset("digits", seed=seed)
    cnn = build_model("cnn", digits)
    return [("mlp", mlp, X1, y1, what),
            ("cnn", cnn, digits.x_train, digits.y_train,
             f"CNN on digits ({len(digits.x_train)} × 1×8×8)"), ], digits


def timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--score-batch", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=5, help="training epochs before timing")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}, python "
          f"{platform.python_version()}; {args.threads} torch thread(s); {args.trials} interleaved trials, "
          f"medians; training batch {args.batch}, GraNd chunk {args.score_batch}")
    print(f"load average at start {load0[0]:.1f} (1 min): other processes share the cores, so absolute "
          "times are noisy; read the ratios")
    cases, digits = setups(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    for name, model, X, y, what in cases:
        for _ in range(args.warmup):
            train_epoch(model, X, y, args.batch, gen)
        model.eval()
        extra = ""
        if name == "cnn":
            with torch.no_grad():
                acc = (model(digits.x_val).argmax(1) == digits.y_val).float().mean().item()
            extra = f", validation accuracy {acc:.3f} after {args.warmup} epochs"
        assert hook_support(model) is None
        hook, ref = grad_norms(model, X, y, batch_size=args.score_batch), vmap_grad_norms(model, X, y,
                                                                                          batch_size=args.score_batch)
        m64 = copy.deepcopy(model).double()
        h64, r64 = grad_norms(m64, X.double(), y), vmap_grad_norms(m64, X.double(), y)

        def rel(a, b):  # elementwise |a − b| / |b|, (N,) float64
            return (a.double() - b.double()).abs() / b.double().abs().clamp_min(1e-300)
        diffs = {"hooks vs vmap, float32": rel(hook, ref), "hooks vs vmap, float64": rel(h64, r64),
                 "hooks float32 vs float64": rel(hook, h64), "vmap float32 vs float64": rel(ref, h64)}

        def run(k: str) -> tuple[float, float]:
            if k == "epoch":  # on a copy, made outside the clock: every trial times the same weights
                m = copy.deepcopy(model)
                return timed(lambda: train_epoch(m, X, y, args.batch, gen))
            fn = grad_norms if k == "hooks" else vmap_grad_norms
            return timed(lambda: fn(model, X, y, batch_size=args.score_batch))

        names, times = ["epoch", "hooks", "vmap"], {"epoch": [], "hooks": [], "vmap": []}
        for t in range(args.trials):
            for k in names[t % 3:] + names[:t % 3]:
                times[k].append(run(k))
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
        print(f"\n{name}: {what}, P = {count_parameters(model):,}{extra}")
        print(f"  {'method':<6} {'wall ms':>9} {'cpu ms':>9} {'/ epoch (wall)':>15} {'/ epoch (cpu)':>14}")
        for k, (w, c) in med.items():
            print(f"  {k:<6} {1e3 * w:9.1f} {1e3 * c:9.1f} {w / med['epoch'][0]:15.2f} {c / med['epoch'][1]:14.2f}")
        print(f"  vmap / hooks: {med['vmap'][0] / med['hooks'][0]:.2f} (wall)")
        for k, v in diffs.items():
            print(f"  {k + ':':<26} max relative difference {v.max().item():.2e}, median {v.median().item():.2e}")
    print(f"\nload average at end {os.getloadavg()[0]:.1f} (1 min)")


if __name__ == "__main__":
    main()
