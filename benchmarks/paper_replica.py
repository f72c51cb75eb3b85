"""An independent replica of the authors' recipe, written from docs/protocol.md alone, run beside
the trainer on the same data, model and seeds.

    python benchmarks/paper_replica.py --dataset mnist1d --label-noise 0.2 --epochs 100 --seeds 0,1,2,3,4
    python benchmarks/paper_replica.py ... --ours runs/study/mnist1d-noise20   # side by side with our runs
    python benchmarks/paper_replica.py ... --order shuffle                       # the subset passes shuffled

It exists to answer one question: when our `--protocol paper` disagrees with the authors' own
script, is the difference in how our trainer implements the protocol, or somewhere else (the
protocol as written, the model, the data, seed noise)? So it shares nothing with the trainer
but the dataset loader and the model builder (the same splits, flipped labels and initial
weights): episodes, learning rates, the large-batch pass, the mean teacher, centrality, the
byproduct score, the draw and mixup are all re-derived here from the protocol's text, in plain
torch and numpy, as one loop that reads top to bottom. It prints, per seed, the last epoch's
student test accuracy and the best epoch of max(student, teacher), for `docl` and `sgd` (the
authors' baseline), and with --ours the same figures read from our runs with the paired
differences. No timing is asserted anywhere; hardware and versions are printed.
"""
from __future__ import annotations

import argparse
import copy
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docl_core.data import load_dataset  # noqa: E402  (the same splits and flipped labels)
from docl_core.models import build_model  # noqa: E402  (the same model and initial weights)

BOUNDS_300 = (0, 5, 10, 15, 20, 30, 40, 60, 90, 140, 210, 300)


def boundaries(epochs: int) -> list[int]:
    return sorted({math.floor(b * epochs / 300 + 0.5) for b in BOUNDS_300})


def swarp(v: np.ndarray, a: float = 2.0, b: float = 0.75) -> np.ndarray:
    out = v.copy()
    pos = v > 1e-30
    out[pos] = 1.0 / (1.0 + (v[pos] ** (1.0 / np.log2(b)) - 1.0) ** a)
    return out


def centrality_of(features: np.ndarray) -> np.ndarray:
    """docs/protocol.md, "Centrality": column-wise shift and scale, swarp, square, scale back; Σ_j (F Fᵀ)_ij."""
    f = np.clip(features.astype(np.float64), 1e-10, 1e10)
    f = f - f.min(axis=0)
    top = f.max(axis=0) + 1e-5
    f = swarp(f / top) ** 2 * top
    c = f @ f.sum(axis=0)
    return c / c.sum()


def replica(dataset: str, noise: float, epochs: int, seed: int, curriculum: bool, subset_order: str = "draw",
            batch: int = 64, wd: float = 5e-4) -> dict:
    torch.manual_seed(seed)
    ds = load_dataset(dataset, seed=seed, label_noise=noise)
    student = build_model(None, ds)
    teacher = copy.deepcopy(student)
    X, Y, Xt, Yt = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    N, C = len(X), int(Y.max()) + 1
    gen = torch.Generator().manual_seed(seed + 1000)
    rng = np.random.default_rng(seed + 2000)
    opt = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=wd)
    bounds = boundaries(epochs)
    full_batches = math.ceil(N / batch)

    # schedule state, updated at each episode start (docs/protocol.md, "Time" and "Space")
    lr_max, lr_min, k, ratio, mod, alpha = 0.1, 5e-4, 0.2, 0.5, 0.1, 1.0
    lr_set = lr_min  # the learning rate last set on the optimizer
    teacher_eval = False  # the teacher runs in train mode until the first evaluation
    score = torch.zeros(N)
    logits_old = torch.zeros(N, C)
    pace = np.zeros(N)
    centrality = None
    cent_est = mod_est = 1.0
    counter, total = 0, full_batches * (bounds[1] + 1)
    history = []

    def teacher_update(t: int) -> None:
        d = min(1.0 - 1.0 / (t + 1.0), 0.5)
        with torch.no_grad():
            for (name, ps), (_, pt) in zip(student.state_dict().items(), teacher.state_dict().items()):
                if pt.dtype.is_floating_point:
                    pt.mul_(d).add_(ps * (1 - d))

    def run_pass(ids: np.ndarray, a: float, schedule: str, mul: int = 1, square: bool = False,
                 keep_order: bool = False):
        """One pass over ids in a fresh random order, or in the order given (keep_order: a subset as the
        authors' sampler yields it) → (the teacher's logits per id, the pass's pace)."""
        nonlocal counter, lr_set
        order = ids if keep_order else ids[torch.randperm(len(ids), generator=gen).numpy()]
        student.train()
        teacher.train(not teacher_eval)
        out_logits, pass_pace = torch.zeros(len(ids), C), 0.0
        for b, s in enumerate(range(0, len(order), batch)):
            idx = order[s:s + batch]
            if mul > 1 and b % mul == 0:  # the large batch steps at the start of its group
                torch.nn.utils.clip_grad_norm_(student.parameters(), 10.0)
                opt.step()
                opt.zero_grad()
                teacher_update(counter)
            frac = min(1.0, counter / total)
            lr = lr_min + (lr_max - lr_min) * frac if schedule == "linear" else \
                lr_min + (lr_max - lr_min) * 0.5 * (1 + math.cos(math.pi * frac))
            for g in opt.param_groups:
                g["lr"] = lr
            lr_set = lr
            pass_pace += mul * lr
            x, y = X[idx], Y[idx]
            with torch.no_grad():
                z = teacher(x)
            out_logits[s:s + len(idx)] = z
            lam, perm = 1.0, torch.arange(len(idx))
            if a > 0 and len(idx) > 1:
                lam = float(rng.beta(a, a))
                perm = torch.randperm(len(idx), generator=gen)
            o = student(lam * x + (1 - lam) * x[perm])
            if square:
                p = torch.softmax(o, 1)
                base = 0.5 * ((p * p).sum(1) + 1)
                loss = lam * (base - p.gather(1, y[:, None]).squeeze(1)).mean() + \
                    (1 - lam) * (base - p.gather(1, y[perm][:, None]).squeeze(1)).mean()
            else:
                loss = lam * F.cross_entropy(o, y) + (1 - lam) * F.cross_entropy(o, y[perm])
            if mul > 1:
                loss.backward()
            else:
                opt.zero_grad()
                loss.backward()
                opt.step()
                teacher_update(counter)
            counter += 1
        counter -= 1  # a pass hands its counter on minus one
        return order, out_logits, pass_pace

    def update_score(order: np.ndarray, z: torch.Tensor, pass_pace: float, first: bool) -> None:
        nonlocal score
        pace[:] += pass_pace
        r = -torch.softmax(0.4 * (z - z.max(1, keepdim=True).values), 1)
        r[torch.arange(len(order)), Y[order]] += 1
        raw = (r * (z - logits_old[order])).sum(1)
        if first:
            score[order] = raw
        else:
            rc = torch.from_numpy(pace[order] ** 0.1).float()
            score[order] = 0.5 * score[order] + 0.5 * raw / ((len(order) / rc.sum()) * rc)
        logits_old[order] = z
        pace[order] = 0.0

    def accuracy(model) -> float:
        model.eval()
        with torch.no_grad():
            return float((model(Xt).argmax(1) == Yt).float().mean())

    for e in range(epochs):
        ep = max(i for i, b in enumerate(bounds[:-1]) if b <= e)
        if e == bounds[ep] and ep >= 1:  # episode start
            counter = 0
            if ep < 5:
                lr_max /= 0.9
            else:
                lr_max, lr_min = lr_max * 0.9, lr_min * 0.8
            length = bounds[ep + 1] - bounds[ep]
            if curriculum:
                k = min(k * 1.1, 0.9)
                ratio = min(ratio * 1.1, 1.0)
                mod *= 1.5
                alpha = max(0.2, alpha * 0.9)
                k0 = int(math.floor(k * N))
                subset_size = int(ratio * k0)
                total = math.ceil(subset_size / batch) * length + full_batches
                if ep <= 5:
                    teacher.eval()
                    with torch.no_grad():
                        centrality = centrality_of(teacher.features(X).numpy())
                    cent_est = mod_est = 1.0
            else:
                total = full_batches * length
            if ep == 1:
                with torch.no_grad():
                    for pt, ps in zip(teacher.parameters(), student.parameters()):
                        pt.copy_(ps)
            else:
                with torch.no_grad():
                    for ps, pt in zip(student.parameters(), teacher.parameters()):
                        ps.copy_(pt * (1 + 0.01 * torch.randn(pt.shape, generator=gen)))
        warm = ep == 0
        if warm or not curriculum or e == bounds[ep]:  # a full pass
            if warm:
                order, z, pp = run_pass(np.arange(N), 0.2, "linear")
            elif curriculum:
                order, z, pp = run_pass(np.arange(N), 0.2, "cosine", mul=4, square=True)
            else:
                order, z, pp = run_pass(np.arange(N), 1.0, "cosine")
            if e > 0:
                update_score(order, z, pp, first=e == 1)
            else:
                logits_old[order] = z
                pace[:] += pp
                pace[order] = 0.0
        if curriculum and not warm:
            a = (score - score.min()).numpy().astype(np.float64)
            p = np.exp(0.1 * (a - a.max()))
            p /= p.sum()
            m = mod * (cent_est / mod_est)
            pool = rng.choice(N, k0, p=p, replace=False)
            keep = pool[np.argpartition(m * p[pool] + centrality[pool], -subset_size)[-subset_size:]]
            cent_est, mod_est = centrality[keep].sum(), p[keep].sum()
            if subset_order == "reversed":
                keep = keep[::-1].copy()
            order, z, pp = run_pass(keep, alpha, "cosine", keep_order=subset_order != "shuffle")
            update_score(order, z, pp, first=False)
        student_acc = accuracy(student)
        teacher_acc = accuracy(teacher)
        teacher_eval = True
        history.append((student_acc, teacher_acc))
    h = np.array(history)
    return {"last": h[-1, 0] * 100, "best": h.max() * 100, "curve": h[:, 0]}


def ours(folder: Path, arm: str, seed: int):
    """Our run's last-epoch student and best of max(student, teacher) test accuracy, or None."""
    import pandas as pd
    f = folder / f"{arm}-s{seed}" / "rounds.parquet"
    if not f.exists():
        return None
    r = pd.read_parquet(f).sort_values("round")
    both = np.fmax(r["test_acc"], r["teacher_test_acc"]) if "teacher_test_acc" in r else r["test_acc"]
    return {"last": float(r["test_acc"].iloc[-1]) * 100, "best": float(both.max()) * 100}


def interval(d: list) -> str:
    d = np.asarray(d, float)
    if len(d) < 2:
        return f"{d.mean():+.2f} (n={len(d)})"
    t = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}.get(len(d), 2.0)
    h = t * d.std(ddof=1) / math.sqrt(len(d))
    return f"{d.mean():+.2f} [{d.mean() - h:+.2f}, {d.mean() + h:+.2f}] (n={len(d)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mnist1d")
    ap.add_argument("--label-noise", type=float, default=0.2)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--arms", default="docl,sgd", help="docl (the curriculum) and/or sgd (the authors' baseline)")
    ap.add_argument("--ours", default=None, help="a folder of our runs (ARM-sSEED) of the same setting")
    ap.add_argument("--order", default="draw", choices=("draw", "shuffle", "reversed"),
                    help="order of each subset pass: as the draw and the prune return it (the authors'), shuffled, "
                         "or reversed; compare with our runs of the same --order")
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(f"paper_replica: {a.dataset}, {a.label_noise:.0%} flipped, E = {a.epochs}, seeds {a.seeds}; "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}")
    res = {}
    for arm in a.arms.split(","):
        for seed in map(int, a.seeds.split(",")):
            t0 = time.perf_counter()
            r = replica(a.dataset, a.label_noise, a.epochs, seed, curriculum=arm == "docl", subset_order=a.order)
            res[arm, seed] = r
            mine = ours(Path(a.ours), arm, seed) if a.ours else None
            print(f"{arm:5s} s{seed}: replica last {r['last']:.2f} best {r['best']:.2f}"
                  + (f" | ours last {mine['last']:.2f} best {mine['best']:.2f}" if mine else "")
                  + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    for arm in a.arms.split(","):
        seeds = [s for (x, s) in res if x == arm]
        for what in ("last", "best"):
            vals = [res[arm, s][what] for s in seeds]
            line = f"{arm} {what}: replica {np.mean(vals):.2f} ± {np.std(vals, ddof=1) if len(vals) > 1 else 0:.2f}"
            if a.ours:
                pairs = [(res[arm, s][what], o[what]) for s in seeds if (o := ours(Path(a.ours), arm, s))]
                if pairs:
                    line += f"; replica − ours {interval([x - y for x, y in pairs])}"
            print(line)
    if {"docl", "sgd"} <= set(a.arms.split(",")):
        for what in ("last", "best"):
            seeds = [s for (x, s) in res if x == "docl" and ("sgd", s) in res]
            print(f"replica DoCL − SGD ({what}): {interval([res['docl', s][what] - res['sgd', s][what] for s in seeds])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
