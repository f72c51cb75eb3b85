"""What a real run costs the tracker and the store, read off its own files (issue 33).

    python benchmarks/bench_large.py RUN [RUN ...] [--time-log FILE ...] [--plain-epoch] [--trials 3]
    python benchmarks/bench_large.py --record FILE -- --dataset mnist1d-100k --protocol steps ...

For each run folder it prints:

- time per round, from rounds.parquet (the trainer and the tracker record them): the round's training
  pass(es) `train_time_s`, selection `select_time_s`, the paper recipe's episode start `episode_time_s`,
  the scoring measurement `score_time_s`, evaluation `eval_time_s`, and the tracker's whole share,
  round_time_s − train − select − episode (every measurement of the round, evaluation, the per-sample
  frame). Medians over rounds ≥ 1 (round 0 holds the warm-up or first full pass and, under steps, two
  measurements). The files' write time is not in round_time_s (the row is built before the write): it
  is re-timed here by writing the round's files again into a temporary folder (encode, compress, fsync).
- a plain epoch: the tracked pass's seconds per epoch (train_time_s ÷ epochs the round trained, from
  samples_seen; it includes the tracker's per-batch records), and with --plain-epoch an untracked epoch
  of the run's own model on its own data measured here (SGD, the run's batch size, train mode), so the
  tracker's cost per round is given in plain epochs;
- bytes per round in the store: samples/, kernel/, embedding/ files of each round (median, total), the
  files rewritten every round (rounds.parquet, checkpoint.pt), and the samples file's bytes per column;
- peak memory of the run: from a `/usr/bin/time -v` log (--time-log, one per run, in order) or from the
  JSON that --record writes (it runs `python -m docl_core run ARGS` as a child and records its wall time
  and peak RSS by getrusage(RUSAGE_CHILDREN)).

Timings on a shared machine swing with other jobs' load: the load average is printed beside them, and
the run's own numbers are only as quiet as the machine was while it trained.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from docl_core.envinfo import cpu_model  # noqa: E402
from docl_core.store import RunReader, atomic_write_bytes, atomic_write_parquet, round_name  # noqa: E402

MB = 1e6


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def med(xs) -> float:
    xs = [float(x) for x in xs if x is not None and np.isfinite(x)]
    return statistics.median(xs) if xs else float("nan")


# ----------------------------------------------------------------------------- peak memory


def peak_from_log(path: Path) -> dict:
    """{"peak_gb", "wall_s"} from `/usr/bin/time -v` output or from --record's JSON."""
    text = Path(path).read_text(errors="replace")
    return json.loads(text) if text.lstrip().startswith("{") else time_v_figures(text)


def time_v_figures(text: str) -> dict:
    """{"peak_gb", "wall_s"} read off `/usr/bin/time -v`'s report (each only when found)."""
    out = {}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["peak_gb"] = int(m.group(1)) / 1e6
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if m:
        parts = [float(p) for p in m.group(1).split(":")]
        out["wall_s"] = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return out


def record(path: Path, args: list[str]) -> int:
    """Run `python -m docl_core run ARGS` as a child; write its wall time and peak RSS to `path`."""
    t0 = time.perf_counter()
    rc = subprocess.run([sys.executable, "-m", "docl_core", "run", *args], cwd=REPO).returncode
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6  # KB on Linux
    Path(path).write_text(json.dumps({"args": args, "rc": rc, "wall_s": wall, "peak_gb": peak,
                                      "load_at_end": load()}, indent=2))
    print(f"docl run exited {rc}: {wall:.0f} s wall, peak RSS {peak:.2f} GB → {path}")
    return rc


# ----------------------------------------------------------------------------- time


def round_times(rounds: pd.DataFrame, n: int) -> pd.DataFrame:
    """Per round: seconds of each part, epochs trained (samples trained ÷ N), and the tracker's share."""
    r = rounds.copy()
    for c in ("train_time_s", "select_time_s", "episode_time_s", "score_time_s", "eval_time_s", "round_time_s"):
        r[c] = r[c].astype(float).fillna(0.0) if c in r else 0.0
    seen = r["samples_seen"].astype(float) if "samples_seen" in r else r["epoch_equiv"].astype(float) * n
    r["epochs_trained"] = seen.diff().fillna(seen) / n
    r["tracked_epoch_s"] = r["train_time_s"] / r["epochs_trained"].where(r["epochs_trained"] > 0)
    r["tracker_s"] = r["round_time_s"] - r["train_time_s"] - r["select_time_s"] - r["episode_time_s"]
    r["tracker_rest_s"] = r["tracker_s"] - r["score_time_s"] - r["eval_time_s"]
    return r


def plain_epoch(run: RunReader, trials: int) -> dict:
    """Seconds of an untracked epoch of the run's model on its training data (median of `trials`)."""
    import torch
    import torch.nn.functional as F

    from docl_core.data import load_dataset
    from docl_core.models import build_model
    cfg = run.meta.get("config") or {}
    t0 = time.perf_counter()
    extra = {"label_column": cfg["label_column"]} if cfg.get("label_column") else {}
    ds = load_dataset(cfg["dataset"], seed=int(cfg.get("seed", 0)), label_noise=float(cfg.get("label_noise", 0.0)),
                      **extra)
    load_s = time.perf_counter() - t0
    torch.manual_seed(0)
    model = build_model(cfg.get("model"), ds)
    X, y, B = ds.x_train, ds.y_train, int(cfg.get("batch_size", 64))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=float(cfg.get("weight_decay", 0)))
    loss_fn = F.cross_entropy if ds.task == "classification" else F.mse_loss
    secs = []
    for _ in range(trials):
        order = torch.randperm(len(X))
        model.train()
        t0 = time.perf_counter()
        for s in range(0, len(X), B):
            idx = order[s:s + B]
            loss = loss_fn(model(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        secs.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in model.parameters())
    return {"epoch_s": med(secs), "trials": secs, "n": len(X), "params": params, "model": type(model).__name__,
            "load_s": load_s, "threads": torch.get_num_threads(), "torch": torch.__version__}


# ----------------------------------------------------------------------------- bytes


def round_files(run: RunReader, t: int) -> dict[str, Path]:
    name = f"{round_name(t)}"
    files = {"samples": run.dir / "samples" / f"{name}.parquet", "kernel": run.dir / "kernel" / f"{name}.npz",
             "embedding": run.dir / "embedding" / f"{name}.parquet"}
    return {k: p for k, p in files.items() if p.exists()}


def column_bytes(path: Path) -> pd.DataFrame:
    """Compressed and uncompressed bytes of each column of a parquet file, with its type."""
    meta = pq.ParquetFile(path).metadata
    rows = {}
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        for j in range(rg.num_columns):
            c = rg.column(j)
            d = rows.setdefault(c.path_in_schema, {"column": c.path_in_schema, "type": str(c.physical_type),
                                                   "compressed": 0, "uncompressed": 0})
            d["compressed"] += c.total_compressed_size
            d["uncompressed"] += c.total_uncompressed_size
    return pd.DataFrame(list(rows.values())).sort_values("compressed", ascending=False)


def rewrite_time(run: RunReader, t: int, trials: int = 3) -> float:
    """Seconds to write round t's files again (samples and embedding parquet from frames, kernel npz and
    the per-round rewrites of rounds.parquet and checkpoint.pt as bytes), atomically, with fsync."""
    files = round_files(run, t)
    frames = {k: pd.read_parquet(p) for k, p in files.items() if p.suffix == ".parquet"}
    blobs = {k: p.read_bytes() for k, p in files.items() if p.suffix != ".parquet"}
    rounds = pd.read_parquet(run.dir / "rounds.parquet")
    ckpt = run.dir / "checkpoint.pt"
    if ckpt.exists():
        blobs["checkpoint"] = ckpt.read_bytes()
    secs = []
    with tempfile.TemporaryDirectory(dir=run.dir.parent, prefix=".bench-large-") as tmp:
        for _ in range(trials):
            t0 = time.perf_counter()
            for k, df in frames.items():
                atomic_write_parquet(Path(tmp) / f"{k}.parquet", df)
            for k, b in blobs.items():
                atomic_write_bytes(Path(tmp) / k, b)
            atomic_write_parquet(Path(tmp) / "rounds.parquet", rounds)
            secs.append(time.perf_counter() - t0)
    return med(secs)


# ----------------------------------------------------------------------------- report


def report(run_dir: Path, time_log: Path | None, plain: bool, trials: int) -> None:
    run = RunReader(run_dir)
    n = int(run.meta.get("num_train") or 0)
    cfg = run.meta.get("config") or {}
    rounds = run.rounds()
    T = len(rounds)
    print(f"\n=== {run_dir}")
    print(f"run      : {cfg.get('curriculum')} on {cfg.get('dataset')}, protocol {cfg.get('protocol')}, "
          f"N = {n:,} training samples, {T} committed rounds of {run.meta.get('rounds_planned')} planned, "
          f"status {run.status}; model {cfg.get('model') or 'default'}, batch {cfg.get('batch_size')}, "
          f"device {run.meta.get('device')}; written by {run.meta.get('versions')}")
    if not T:
        print("no committed round yet")
        return
    r = round_times(rounds, n)
    later = r[r["round"] >= 1] if T > 1 else r
    cols = ["train_time_s", "epochs_trained", "tracked_epoch_s", "select_time_s", "episode_time_s", "score_time_s",
            "eval_time_s", "tracker_rest_s", "tracker_s", "round_time_s"]
    print(f"\nseconds per round (median over rounds {int(later['round'].min())}–{int(later['round'].max())}; "
          f"round 0 in brackets):")
    for c in cols:
        print(f"  {c:<18}{med(later[c]):>10.2f}   [{float(r[c].iloc[0]):.2f}]")
    t_last = int(rounds["round"].iloc[-1])
    write_s = rewrite_time(run, t_last)
    print(f"  {'write (re-timed)':<18}{write_s:>10.2f}   (round {t_last}'s files written again here, load {load()})")
    tracker = med(later["tracker_s"]) + write_s
    tracked_epoch = med(later["tracked_epoch_s"])
    print(f"\ntracker per round (tracker_s + write) = {tracker:.2f} s = {tracker / tracked_epoch:.2f} tracked epochs "
          f"(the run's pass: {tracked_epoch:.2f} s per epoch, per-batch records included)")
    if plain:
        p = plain_epoch(run, trials)
        print(f"plain epoch (untracked, measured now: {p['model']}, {p['params']:,} params, N = {p['n']:,}, "
              f"{p['threads']} torch threads, torch {p['torch']}, {trials} trials "
              f"{', '.join(f'{s:.2f}' for s in p['trials'])} s, load {load()}): {p['epoch_s']:.2f} s")
        print(f"tracker per round = {tracker / p['epoch_s']:.2f} plain epochs; the tracked pass = "
              f"{tracked_epoch / p['epoch_s']:.2f} plain epochs per epoch; a whole round (median round_time_s "
              f"+ write) = {(med(later['round_time_s']) + write_s) / p['epoch_s']:.2f} plain epochs")

    per = {k: [] for k in ("samples", "kernel", "embedding")}
    for t in run.round_ids:
        for k, p in round_files(run, t).items():
            per[k].append(p.stat().st_size)
    total = sum(sum(v) for v in per.values())
    print(f"\nstore bytes per round (median; total over {T} rounds):")
    for k, v in per.items():
        if v:
            print(f"  {k + '/':<12}{med(v) / MB:>8.2f} MB   ({sum(v) / MB:.1f} MB in {len(v)} files)")
    per_round = sum(med(v) for v in per.values() if v)
    print(f"  {'all':<12}{per_round / MB:>8.2f} MB per round   ({total / MB:.1f} MB)")
    for name in ("rounds.parquet", "checkpoint.pt", "dataset.parquet", "embedding/basis.npz"):
        p = run.dir / name
        if p.exists():
            again = " (rewritten every round)" if name in ("rounds.parquet", "checkpoint.pt") else ""
            print(f"  {name:<22}{p.stat().st_size / MB:>8.2f} MB{again}")
    last = round_files(run, t_last)["samples"]
    cb = column_bytes(last)
    print(f"\nsamples/{last.name}: {len(cb)} columns, {cb['compressed'].sum() / MB:.2f} MB compressed of "
          f"{cb['uncompressed'].sum() / MB:.2f} MB; per column (MB compressed / uncompressed):")
    print("  " + ", ".join(f"{c.column} [{c.type.lower()}] {c.compressed / MB:.2f}/{c.uncompressed / MB:.2f}"
                           for c in cb.itertuples()))

    if time_log is not None:
        m = peak_from_log(time_log)
        print(f"\npeak memory of the run: {m.get('peak_gb', float('nan')):.2f} GB RSS "
              f"(wall {m.get('wall_s', float('nan')) / 60:.1f} min; from {time_log})")
    else:
        print("\npeak memory of the run: not recorded (give --time-log, or run it under --record)")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--record" in argv:
        i = argv.index("--record")
        if "--" not in argv or i + 1 >= len(argv):
            raise SystemExit("usage: bench_large.py --record FILE -- DOCL-RUN-ARGS")
        return record(Path(argv[i + 1]), argv[argv.index("--") + 1:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run folders")
    ap.add_argument("--time-log", nargs="*", default=[], help="/usr/bin/time -v logs or --record JSONs, one per run")
    ap.add_argument("--plain-epoch", action="store_true", help="also time an untracked epoch of the run's model")
    ap.add_argument("--trials", type=int, default=3, help="plain-epoch trials")
    a = ap.parse_args(argv)
    if a.time_log and len(a.time_log) != len(a.runs):
        raise SystemExit(f"give one --time-log per run ({len(a.runs)}), or none")
    print("docl bench_large: tracker cost per round, store bytes per round, peak memory")
    print(f"hardware : {cpu_model()}; {os.cpu_count()} logical CPUs; load average {load()} now; "
          f"{platform.platform()}")
    from importlib.metadata import version
    print(f"versions : python {platform.python_version()}, "
          + ", ".join(f"{p} {version(p)}" for p in ("torch", "numpy", "pandas", "pyarrow")))
    for i, d in enumerate(a.runs):
        report(Path(d), Path(a.time_log[i]) if a.time_log else None, a.plain_epoch, a.trials)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
