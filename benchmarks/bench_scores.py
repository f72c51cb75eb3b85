"""What do exact DoCL scores cost next to a plain training epoch? (CPU, ~1M-parameter CNN.)

Times, in one process and interleaved (each trial runs every method once, in a rotated
order, so load from other processes falls on all methods alike):

  epoch            one plain training epoch: train mode, SGD step per batch, the model as given
  epoch_nhwc       the same epoch with the model and inputs in channels_last (the best a
                   careful trainer gets on CPU; the ratios below use the faster epoch)
  exact            docl_scores(estimator="exact") = ḡ pass (mean_gradient) + JVP pass
  fast             docl_scores(estimator="fast")  = ḡ pass + two plain forwards
  per_sample_grad  ḡ pass + vmap(grad) per-sample gradients in chunks, a_i = g_i · ḡ
                   (the route peer tools take)
  kernel           kernel_scores on m probe samples (explicit Jacobians, full H blocks);
                   cost per sample extrapolated, reported as such

Run:  python benchmarks/bench_scores.py --n 2048 --trials 3 --threads 2
      python benchmarks/bench_scores.py --model signal --n 85000 --batch 64 --skip per_sample_grad,kernel,epoch_nhwc

--model signal: the model a `docl run --dataset mnist1d-100k` trains (docl_core.models.SignalCNN, 13,754
parameters) on inputs of MNIST-1D's shape (1, 40), trained at the run's batch size: the exact score's cost
per epoch at the size of the 100k runs (issue 33), where the VGG-ish CNN would take hours on a CPU.
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

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from docl_core.dynamics import docl_scores, kernel_scores, mean_gradient  # noqa: E402
from docl_core.envinfo import cpu_model  # noqa: E402


def vgg_ish(num_classes: int = 10) -> nn.Module:
    """~0.98M-parameter CNN with BatchNorm for (3, 32, 32) inputs: 5 conv-BN-ReLU blocks."""
    def block(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
        layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        return layers + [nn.MaxPool2d(2)] if pool else layers

    return nn.Sequential(*block(3, 32, False),    # (B, 32, 32, 32)
                         *block(32, 64, True),    # (B, 64, 16, 16)
                         *block(64, 128, True),   # (B, 128, 8, 8)
                         *block(128, 256, True),  # (B, 256, 4, 4)
                         *block(256, 256, False),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, num_classes))


def train_epoch(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch: int,
                memory_format=torch.contiguous_format) -> None:
    """One epoch of SGD (train mode, a step per batch) on the given model, in place."""
    model.to(memory_format=memory_format).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)  # lr per batch of `batch`
    X = X.contiguous(memory_format=memory_format)
    for s in range(0, len(X), batch):
        loss = F.cross_entropy(model(X[s:s + batch]), y[s:s + batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def per_sample_grad_scores(model: nn.Module, X: torch.Tensor, y: torch.Tensor, chunk: int,
                           score_batch: int) -> torch.Tensor:
    """Peer route: ḡ, then per-sample gradients g_i by vmap(grad) in chunks, a_i = g_i · ḡ (N,)."""
    gbar = mean_gradient(model, X, y, batch_size=score_batch)
    params = {k: p.detach() for k, p in model.named_parameters()}
    buffers = {k: b.detach() for k, b in model.named_buffers()}

    def loss_one(p, x, t):
        return F.cross_entropy(functional_call(model, (p, buffers), (x.unsqueeze(0),)), t.unsqueeze(0))

    per_sample = vmap(grad(loss_one), (None, 0, 0))
    scores = []
    model.eval()
    for s in range(0, len(X), chunk):
        g = per_sample(params, X[s:s + chunk], y[s:s + chunk])  # name → (B, *shape)
        scores.append(sum(g[k].flatten(1) @ gbar[k].flatten() for k in gbar))  # (B,)
    return torch.cat(scores)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2048, help="training samples scored / trained on")
    ap.add_argument("--trials", type=int, default=3, help="interleaved trials (medians reported)")
    ap.add_argument("--batch", type=int, default=256, help="training batch size")
    ap.add_argument("--score-batch", type=int, default=256, help="docl_scores batch_size")
    ap.add_argument("--psg-chunk", type=int, default=64, help="per-sample-gradient chunk")
    ap.add_argument("--probe", type=int, default=32, help="probe samples m for kernel scoring")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    ap.add_argument("--skip", default="", help="comma-separated methods to skip (e.g. kernel)")
    ap.add_argument("--model", choices=["vgg", "signal"], default="vgg",
                    help="vgg: the ~1M-parameter CNN on (3, 32, 32); signal: MNIST-1D's SignalCNN on (1, 40)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    if args.model == "signal":
        from docl_core.models import SignalCNN
        model, shape, what = SignalCNN(1, 10, 40), (1, 40), "SignalCNN (MNIST-1D's default model)"
    else:
        model, shape, what = vgg_ish(), (3, 32, 32), "VGG-ish CNN with BatchNorm"
    P = sum(p.numel() for p in model.parameters())
    X = torch.randn(args.n, *shape)
    y = torch.randint(0, 10, (args.n,))
    # a few SGD steps so BatchNorm running stats and weights are not at initialisation
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for s in range(0, min(args.n, 4 * args.batch), args.batch):
        opt.zero_grad()
        F.cross_entropy(model(X[s:s + args.batch]), y[s:s + args.batch]).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    model.train()  # handed to the scorers in train mode, as a trainer would

    results: dict[str, object] = {}
    times: dict[str, list[float]] = {}  # wall-clock seconds per trial
    cpu_times: dict[str, list[float]] = {}  # process CPU seconds per trial (robust to load from others)

    def clock(name, fn):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.setdefault(name, []).append(time.perf_counter() - t0)
        cpu_times.setdefault(name, []).append(time.process_time() - c0)
        return out

    def time_epoch(name, fmt):
        trainee = copy.deepcopy(model)  # copied outside the clock; the scored model stays put
        clock(name, lambda: train_epoch(trainee, X, y, args.batch, fmt))

    def exact():
        gbar = clock("exact: ḡ pass", lambda: mean_gradient(model, X, y, batch_size=args.score_batch))
        d = clock("exact: JVP pass", lambda: docl_scores(model, X, y, batch_size=args.score_batch, gbar=gbar))
        for t in (times, cpu_times):
            t.setdefault("exact", []).append(t["exact: ḡ pass"][-1] + t["exact: JVP pass"][-1])
        results["exact"] = d.score

    methods = {
        "epoch": lambda: time_epoch("epoch", torch.contiguous_format),
        "epoch_nhwc": lambda: time_epoch("epoch_nhwc", torch.channels_last),
        "exact": exact,
        "fast": lambda: results.__setitem__("fast", clock(
            "fast", lambda: docl_scores(model, X, y, batch_size=args.score_batch, estimator="fast").score)),
        "per_sample_grad": lambda: results.__setitem__("psg", clock(
            "per_sample_grad", lambda: per_sample_grad_scores(model, X, y, args.psg_chunk, args.score_batch))),
        "kernel": lambda: clock("kernel (m probes)", lambda: kernel_scores(
            model, X[:args.probe], y[:args.probe], memory_budget_bytes=4 << 30)),
    }
    skip = {s for s in args.skip.split(",") if s} | ({"epoch_nhwc"} if args.model == "signal" else set())  # 1-D
    order = [k for k in methods if k not in skip]
    for trial in range(args.trials):
        rot = order[trial % len(order):] + order[:trial % len(order)]
        for name in rot:
            methods[name]()
        print(f"  trial {trial + 1}/{args.trials} done: " + ", ".join(
            f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)

    cpu = cpu_model()
    med = {k: statistics.median(v) for k, v in times.items()}
    cmed = {k: statistics.median(v) for k, v in cpu_times.items()}
    epoch = min(med[k] for k in ("epoch", "epoch_nhwc") if k in med)
    cepoch = min(cmed[k] for k in ("epoch", "epoch_nhwc") if k in cmed)
    print()
    print("docl bench_scores: exact DoCL scores against a plain training epoch")
    print(f"hardware: {cpu} | cores: {os.cpu_count()}"
          f" | torch threads: {torch.get_num_threads()}")
    print(f"versions: torch {torch.__version__}, python {platform.python_version()}")
    print(f"model: {what}, P = {P:,} | input {shape} float32 | N = {args.n} | "
          f"train batch {args.batch} | score batch {args.score_batch} | per-sample-grad chunk {args.psg_chunk} | "
          f"trials {args.trials} (interleaved, order rotated)")
    print(f"{'method':<22}{'median s':>10}{'min s':>9}{'/ epoch':>9}{'cpu med s':>11}{'cpu / epoch':>13}")
    for k, v in times.items():
        print(f"{k:<22}{med[k]:>10.2f}{min(v):>9.2f}{med[k] / epoch:>9.2f}{cmed[k]:>11.2f}{cmed[k] / cepoch:>13.2f}")
    print(f"epoch = the faster of epoch / epoch_nhwc medians = {epoch:.2f} s wall, {cepoch:.2f} s cpu")
    print("ratios below: wall-clock medians [process-CPU-time medians]")
    if "exact" in med:
        print(f"exact / epoch           = {med['exact'] / epoch:.2f} [{cmed['exact'] / cepoch:.2f}]   "
              f"(ḡ pass {med['exact: ḡ pass'] / epoch:.2f} [{cmed['exact: ḡ pass'] / cepoch:.2f}]"
              f" + JVP pass {med['exact: JVP pass'] / epoch:.2f} [{cmed['exact: JVP pass'] / cepoch:.2f}] epochs)")
        if "epoch" in med:
            print(f"exact / epoch(as given) = {med['exact'] / med['epoch']:.2f} [{cmed['exact'] / cmed['epoch']:.2f}]")
    if "fast" in med:
        print(f"fast / epoch            = {med['fast'] / epoch:.2f} [{cmed['fast'] / cepoch:.2f}]")
    if "per_sample_grad" in med and "exact" in med:
        print(f"per-sample-grad / exact = {med['per_sample_grad'] / med['exact']:.2f} "
              f"[{cmed['per_sample_grad'] / cmed['exact']:.2f}]")
    if "kernel (m probes)" in med:
        per = med["kernel (m probes)"] / args.probe
        print(f"kernel scoring: {per * 1e3:.1f} ms per probe sample at m = {args.probe} (extrapolated: "
              f"{per * args.n / epoch:.1f} epochs for all N = {args.n}, a lower bound: H grows as N²)")
    if "exact" in results:
        a = results["exact"]
        for k in ("fast", "psg"):
            if k in results:
                err = float((results[k] - a).norm() / a.norm())
                print(f"{'fast estimator' if k == 'fast' else 'per-sample-grad'} relative error vs exact "
                      f"(‖Δa‖/‖a‖, float32): {err:.2e}")


if __name__ == "__main__":
    main()
