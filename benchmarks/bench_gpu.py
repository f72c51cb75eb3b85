"""GPU readiness: throughput of the recipe on CIFAR-shaped data, WRN-16-4 and WRN-28-10 side by side.

    python benchmarks/bench_gpu.py                 # CUDA when present (≤ 8 minutes on one GPU)
    python benchmarks/bench_gpu.py --tiny          # CPU, tiny sizes, seconds (tests/test_precision.py)
    python benchmarks/bench_gpu.py --device cuda   # fails with one line where CUDA is absent

For each model and precision (fp32, bf16) it prints images/s of a plain SGD epoch, of a DoCL
epoch under the paper recipe (an episode start: centrality from the teacher's features, the
full large-batch pass, the byproduct score's gathered records, the selection, the subset
pass), and of the exact score (ḡ plus the JVP, always fp32), and the peak GPU memory; then
whether two `--deterministic` plain epochs gave identical weights. Synthetic data: random
32×32 RGB images in 10 classes (throughput does not depend on the pixels). --tiny swaps the
models for tiny WideResNets of the same structure (depth 10, widen 1 and 2) on 8×8 images.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from docl_core.config import PaperSchedule, RunConfig  # noqa: E402
from docl_core.data import load_dataset  # noqa: E402
from docl_core.distributed import autocast, set_deterministic  # noqa: E402
from docl_core.dynamics import docl_scores, per_sample_loss  # noqa: E402
from docl_core.models import WideResNet, build_model  # noqa: E402
from docl_core.trainer import Trainer  # noqa: E402


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _data(root: Path, n: int, side: int) -> Path:
    rng = np.random.default_rng(0)
    path = root / "synthetic.npz"
    x = rng.normal(size=(n, 3, side, side)).astype(np.float32)
    np.savez(path, x=x, y=rng.integers(0, 10, n), x_test=x[:max(10, n // 10)], y_test=rng.integers(0, 10, max(10, n // 10)))
    return path


def _model(name: str, ds, tiny: bool):
    if tiny:  # same structure, tiny sizes
        return WideResNet(3, 10, depth=10, widen=1 if name == "wrn-16-4" else 2, dropout=0.3 if name == "wrn-28-10" else 0)
    return build_model(name, ds)


def plain_epoch(name, ds, dev, precision, batch, tiny, seed=0) -> tuple[float, torch.Tensor]:
    """images/s of one SGD epoch (forward under autocast, backward, step) and the final weights."""
    torch.manual_seed(seed)
    model = _model(name, ds, tiny).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=2e-4)
    X, y = ds.x_train.to(dev), ds.y_train.to(dev)
    scaler = torch.amp.GradScaler(dev.type) if precision == "fp16" else None
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed)).to(dev)
    model.train()
    _sync(dev)
    t0 = time.perf_counter()
    for s in range(0, len(X), batch):
        b = order[s:s + batch]
        with autocast(dev, precision):
            loss = per_sample_loss(model(X[b]), y[b], "classification").mean()
        opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        scaler.step(opt) if scaler else opt.step()
        if scaler:
            scaler.update()
    _sync(dev)
    return len(X) / (time.perf_counter() - t0), torch.cat([p.detach().flatten().cpu() for p in model.parameters()])


def docl_epoch(name, path, dev, precision, batch, tiny, root: Path) -> float:
    """images/s of epoch 1 of a paper run (an episode start: centrality, full pass, selection, subset)."""
    cfg = RunConfig(dataset=str(path), model="mlp" if tiny else name, protocol="paper", probe_size=0, device=str(dev),
                    log_estimators=[], precision=precision, batch_size=batch, score_batch_size=2 * batch,
                    schedule=PaperSchedule(epochs=2))
    trainer = Trainer(cfg, root / f"{name}-{precision}")
    if tiny:  # the tiny stand-in replaces the model Trainer built (an MLP: cheap to build)
        torch.manual_seed(0)
        _swap_model(trainer, _model(name, trainer.ds, tiny).to(dev))
    trainer.run()
    r = trainer.tracker.last_row
    seconds = sum(float(r.get(k, 0.0)) for k in ("episode_time_s", "train_time_s", "select_time_s", "score_time_s"))
    images = trainer.N + int(r["k"])  # the full pass over N, then the subset
    return images / seconds


def _swap_model(trainer: Trainer, model) -> None:
    from docl_core.recipe import MeanTeacher
    trainer.model = trainer.net = trainer.tracker.model = model
    trainer.opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=2e-4)
    if trainer.teacher is not None:
        trainer.teacher = MeanTeacher(model, trainer.cfg.schedule.teacher_decay)


def exact_score(name, ds, dev, batch, tiny) -> float:
    torch.manual_seed(0)
    model = _model(name, ds, tiny).to(dev)
    X, y = ds.x_train.to(dev), ds.y_train.to(dev)
    _sync(dev)
    t0 = time.perf_counter()
    docl_scores(model, X, y, "classification", batch_size=batch, estimator="exact")
    _sync(dev)
    return len(X) / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes for a CPU check in seconds")
    p.add_argument("--n", type=int, default=None, help="synthetic training images (default: 10240; tiny: 48)")
    p.add_argument("--batch", type=int, default=None, help="mini-batch (default: 128; tiny: 16)")
    a = p.parse_args(argv)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"bench_gpu: --device {a.device} asked for, but CUDA is not available here: "
              "use --device cpu (with --tiny for a quick check)", file=sys.stderr)
        return 2
    dev = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if a.device == "auto" else a.device))
    n, batch, side = (a.n or 48, a.batch or 16, 8) if a.tiny else (a.n or 10240, a.batch or 128, 32)
    hw = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"# bench_gpu: {hw}; torch {torch.__version__}, CUDA {torch.version.cuda}; N = {n} images "
          f"3×{side}×{side}, batch {batch}; 1 trial each{'; tiny models' if a.tiny else ''}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = _data(root, n, side)
        ds = load_dataset(str(path), seed=0)
        rows = []
        for name in ("wrn-16-4", "wrn-28-10"):
            for precision in ("fp32", "bf16"):
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(dev)
                sgd, _ = plain_epoch(name, ds, dev, precision, batch, a.tiny)
                docl = docl_epoch(name, path, dev, precision, batch, a.tiny, root)
                score = exact_score(name, ds, dev, 2 * batch, a.tiny) if precision == "fp32" else float("nan")
                peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
                rows.append((name, precision, sgd, docl, score, peak))
        print(f"{'model':<10} {'precision':<9} {'SGD img/s':>10} {'DoCL img/s':>11} {'exact img/s':>12} {'peak GiB':>9}")
        for name, precision, sgd, docl, score, peak in rows:
            print(f"{name:<10} {precision:<9} {sgd:>10.1f} {docl:>11.1f} {score:>12.1f} {peak:>9.2f}")
        print("(exact score: fp32 always, so its bf16 cell is nan; peak memory: nan on CPU)")
        set_deterministic(True)
        same = []
        for name in ("wrn-16-4", "wrn-28-10"):
            _, w1 = plain_epoch(name, ds, dev, "fp32", batch, a.tiny, seed=1)
            _, w2 = plain_epoch(name, ds, dev, "fp32", batch, a.tiny, seed=1)
            same.append(f"{name}: {'identical' if torch.equal(w1, w2) else 'DIFFERENT'}")
        print("two --deterministic plain epochs: " + ", ".join(same))
    return 0


if __name__ == "__main__":
    sys.exit(main())
