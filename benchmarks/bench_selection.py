"""Selection cost side by side: facility location by stochastic greedy vs the centrality proxy,
plain top-k, and a whole DoCL selection (Gumbel pool + stochastic greedy inside it).

    python benchmarks/bench_selection.py                 # n = 20,000, k = 2,000, D = 64, 3 trials
    python benchmarks/bench_selection.py --lazy          # also lazy greedy (DoCL-NR's default)
    python benchmarks/bench_selection.py --threads 1     # pin intra-op threads (shared machines)

Features are i.i.d. Gaussian: the worst case for lazy greedy (all gains alike), neutral for the
others. Prints hardware, versions and trial count beside every number; no asserts.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import torch

from docl_core import selection as sel
from docl_core.curricula import RoundState, make_curriculum
from docl_core.envinfo import cpu_model


def timed(fn, trials: int, device: torch.device) -> list[float]:
    times = []
    for _ in range(trials):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="ground-set size N")
    ap.add_argument("--k", type=int, default=2_000, help="selected samples k")
    ap.add_argument("--dim", type=int, default=64, help="feature dimension D")
    ap.add_argument("--lam", type=float, default=1.0, help="λ, in the units of selection.py")
    ap.add_argument("--epsilon", type=float, default=0.01, help="stochastic greedy ε")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--lazy", action="store_true", help="also time lazy greedy (slow on random features)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)

    g = torch.Generator(device=device).manual_seed(0)
    n, k = args.n, args.k
    x = torch.randn(n, args.dim, generator=g, device=device)             # (n, D) features
    w = torch.rand(n, generator=g, device=device)                        # (n,) modular weights
    state = RoundState(t=0, k=k, lam=args.lam, temperature=1.0, pool_factor=2.0, loss=w,
                       score=torch.randn(n, generator=g, device=device), features=x, generator=g)
    docl = make_curriculum("docl", epsilon=args.epsilon)
    cases = {
        "stochastic greedy (facility)": lambda: sel.stochastic_greedy(w, x, k, args.lam, g, args.epsilon),
        "centrality (modular proxy)": lambda: sel.modular_select(w, x, k, args.lam),
        "top-k (no diversity)": lambda: sel.top_k(w, k),
        "DoCL: pool 2k + stoch. greedy": lambda: docl.select(state),
    }
    if args.lazy:
        cases["lazy greedy (DoCL-NR default)"] = lambda: sel.lazy_greedy(w, x, k, args.lam)

    print(f"hardware : {cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
          + (f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    print(f"versions : torch {torch.__version__}, python {platform.python_version()}")
    s = math.ceil(n / k * math.log(1 / args.epsilon))
    print(f"problem  : n={n:,} k={k:,} D={args.dim} λ={args.lam} ε={args.epsilon} "
          f"(stochastic greedy: {s} candidates/step), device {device}, trials {args.trials} (+1 warm-up)")
    results = {}
    for name, fn in cases.items():
        fn()                                                             # warm-up
        results[name] = timed(fn, args.trials, device)
    base = statistics.median(results["centrality (modular proxy)"])
    print(f"{'method':32s} {'median s':>10s} {'min s':>10s} {'× centrality':>13s}")
    for name, times in results.items():
        med = statistics.median(times)
        print(f"{name:32s} {med:10.4f} {min(times):10.4f} {med / base:13.2f}")
    ratio = statistics.median(results["stochastic greedy (facility)"]) / base
    print(f"stochastic greedy / centrality = {ratio:.0f}×")


if __name__ == "__main__":
    main()
