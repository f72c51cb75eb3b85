"""Exact-scoring throughput at 1, 2, ... processes under torch.distributed.

    python benchmarks/bench_distributed.py [--procs 1,2] [--n 8192] [--model cnn] [--device cpu]
    python benchmarks/bench_distributed.py --procs 1,2,4,8 --device cuda --n 200000 --model resnet   # GPUs

Launches itself with torchrun once per process count; each run builds the same model and
data on every rank, scores all N samples with DynamicsTracker.measure (ḡ all-reduced, the
shards' scores all-gathered), and rank 0 reports the median over trials. Prints hardware,
versions, trials, samples/s and the speed-up over one process. On CPU every process gets
cores/procs threads, so the gain is bounded by the core count (2 here).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(a: argparse.Namespace) -> None:
    import torch

    from docl_core.data import load_dataset
    from docl_core.distributed import init_from_env, shutdown
    from docl_core.models import build_model
    from docl_core.tracker import DynamicsTracker

    ctx = init_from_env(a.device)
    ds = load_dataset(a.data, seed=0, val_fraction=0.0, test_fraction=0.01)
    torch.manual_seed(0)
    model = build_model(a.model, ds).to(ctx.device)
    X, y = ds.x_train.to(ctx.device), ds.y_train.to(ctx.device)
    tr = DynamicsTracker(Path(a.tmp) / f"w{ctx.world}", model, X, y, estimator="exact", log_estimators=(),
                         probe_size=0, score_batch_size=a.batch, dist=ctx)
    tr.measure()  # warm-up
    times = []
    for _ in range(a.trials):
        ctx.barrier()
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        tr.measure()
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if ctx.is_writer:
        print("RESULT " + json.dumps({"world": ctx.world, "n": len(X), "median_s": statistics.median(times),
                                      "params": sum(p.numel() for p in model.parameters()),
                                      "threads": torch.get_num_threads(), "device": str(ctx.device)}))
    shutdown(ctx)


def make_data(n: int, shape: tuple, path: Path) -> None:
    import numpy as np
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=n)
    x = rng.normal(size=(n, *shape)).astype(np.float32) + y.reshape(-1, *[1] * len(shape)) * 0.1
    np.savez(path, x=x, y=y.astype(np.int64))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--model", default="cnn", help="mlp, cnn or resnet")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a)
    import torch
    tmp = Path(tempfile.mkdtemp(prefix="docl-dist-"))
    data = tmp / "data.npz"
    make_data(a.n, (3, 32, 32) if a.model == "resnet" else (1, 28, 28) if a.model == "cnn" else (64,), data)
    cores = os.cpu_count() or 1
    rows = []
    for k in [int(p) for p in a.procs.split(",")]:
        env = dict(os.environ)
        if a.device == "cpu":
            env["OMP_NUM_THREADS"] = str(max(1, cores // k))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={k}",
               __file__, "--worker", "--data", str(data), "--tmp", str(tmp), "--model", a.model,
               "--device", a.device, "--batch", str(a.batch), "--trials", str(a.trials)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode or not line:
            print(out.stdout[-2000:], out.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"{k} processes failed (exit {out.returncode})")
        rows.append(json.loads(line[0][7:]))
    from docl_core.envinfo import cpu_model
    cpu = cpu_model()
    gpu = torch.cuda.get_device_name(0) if a.device.startswith("cuda") and torch.cuda.is_available() else "none"
    print(f"hardware: {cpu}, {cores} cores; GPU: {gpu}; python {platform.python_version()}, "
          f"torch {torch.__version__}; backend {'nccl' if a.device.startswith('cuda') else 'gloo'}")
    print(f"exact scores of N={rows[0]['n']} samples, {a.model} with {rows[0]['params']:,} parameters, "
          f"scoring batch {a.batch}; median of {a.trials} trials after a warm-up")
    base = rows[0]["n"] / rows[0]["median_s"]
    print(f"{'processes':>9s} {'threads/proc':>12s} {'seconds':>9s} {'samples/s':>10s} {'speed-up':>9s}")
    for r in rows:
        rate = r["n"] / r["median_s"]
        print(f"{r['world']:9d} {r['threads']:12d} {r['median_s']:9.3f} {rate:10.0f} {rate / base:9.2f}")


if __name__ == "__main__":
    main()
