"""The command line: `python -m docl_core` (also installed as `docl`).

    docl run --dataset digits --curriculum docl --rounds 10 --seed 0 --out runs/digits
    docl compare --dataset digits --curricula random,spl,mcl,docl-nr,docl --seeds 0,1 --out runs/cmp
    docl demo                       # regenerates assets/demo, the experiment the app opens
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from .config import CURRICULA, ESTIMATORS, RunConfig, Schedule

DEMO_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo"


def _add_run_options(p: argparse.ArgumentParser) -> None:
    d, s = RunConfig(), Schedule()
    p.add_argument("--dataset", default=d.dataset,
                   help="digits, moons, blobs, sine, or a path (.npz, .csv, CIFAR-10 or Fashion-MNIST folder)")
    p.add_argument("--rounds", type=int, default=d.rounds, help="curriculum rounds (default %(default)s)")
    p.add_argument("--out", default="runs/default", help="experiment folder; the run lands in OUT/NAME")
    p.add_argument("--model", default=None, help="mlp, cnn or resnet (default: the dataset's)")
    p.add_argument("--estimator", default=d.estimator, choices=ESTIMATORS,
                   help="score that drives selection (default %(default)s)")
    p.add_argument("--log-estimators", default="byproduct",
                   help="comma list of estimators logged beside it ('' for none)")
    p.add_argument("--diversity", default=d.diversity, choices=("facility", "centrality", "none"))
    p.add_argument("--label-noise", type=float, default=d.label_noise, help="fraction of train labels flipped")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--probe-size", type=int, default=d.probe_size, help="kernel probe samples (0: off)")
    p.add_argument("--kernel-full", action="store_true", help="also store full (m, m, C, C) kernel blocks")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--k-start", type=float, default=s.k_start, help="fraction of N in round 0")
    p.add_argument("--k-growth", type=float, default=s.k_growth, help="k grows by this factor per round")
    p.add_argument("--k-cap", type=float, default=s.k_cap, help="largest fraction of N")
    p.add_argument("--lam", type=float, default=s.lam_start, help="diversity weight λ_0")
    p.add_argument("--lam-decay", type=float, default=s.lam_decay, help="λ_t = λ_0 · decay^t")
    p.add_argument("--temperature", type=float, default=s.temperature, help="τ of the DoCL pool draw")
    p.add_argument("--pool-factor", type=float, default=s.pool_factor, help="DoCL pool size / k")
    p.add_argument("--lr", type=float, default=s.lr, help="peak learning rate per round")
    p.add_argument("--lr-min", type=float, default=s.lr_min)
    p.add_argument("--warmup-epochs", type=int, default=s.warmup_epochs)
    p.add_argument("--epochs-per-round", type=float, default=s.epochs_per_round,
                   help="passes over the selected subset per round")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic GPU kernels (slower); recorded in run.json")


def config_from_args(a: argparse.Namespace, curriculum: str, seed: int) -> RunConfig:
    sched = Schedule(k_start=a.k_start, k_growth=a.k_growth, k_cap=a.k_cap, lam_start=a.lam,
                     lam_decay=a.lam_decay, temperature=a.temperature, pool_factor=a.pool_factor,
                     lr=a.lr, lr_min=a.lr_min, warmup_epochs=a.warmup_epochs,
                     epochs_per_round=a.epochs_per_round)
    logged = [e.strip() for e in a.log_estimators.split(",") if e.strip()]
    cfg = RunConfig(dataset=a.dataset, curriculum=curriculum, rounds=a.rounds, seed=seed,
                    model=a.model, estimator=a.estimator, log_estimators=logged,
                    diversity=a.diversity, label_noise=a.label_noise, batch_size=a.batch_size,
                    probe_size=a.probe_size, kernel_full=a.kernel_full, device=a.device, schedule=sched)
    cfg.deterministic = a.deterministic
    cfg.validate()
    return cfg


def _parse_list(text: str, kind=str) -> list:
    try:
        items = [kind(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"could not read the list {text!r}: give comma-separated values, e.g. 0,1,2") from None
    if not items:
        raise ValueError("empty list: give at least one value")
    return items


def _check_out(out: Path) -> Path:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".docl-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"cannot write to {out} ({e.strerror}): choose a writable --out folder") from None
    return out


def cmd_run(a: argparse.Namespace) -> int:
    from .distributed import init_from_env, shutdown
    from .trainer import train_run
    cfg = config_from_args(a, a.curriculum, a.seed)
    out = _check_out(Path(a.out))
    name = a.name or f"{cfg.curriculum}-s{cfg.seed}"
    if "/" in name or name.startswith("."):
        raise ValueError(f"run name {name!r} must be a plain folder name (no '/' or leading '.')")
    if (out / name).exists() and not (out / name).is_dir():
        raise ValueError(f"{out / name} is a file, not a run folder: choose another --name or --out")
    ctx = init_from_env(cfg.device)  # torchrun sets WORLD_SIZE > 1; otherwise one process
    try:
        run_dir = train_run(cfg, out / name, resume=a.resume, progress=not a.no_progress, dist=ctx)
    finally:
        shutdown(ctx)
    if ctx.is_writer:
        print(f"run written to {run_dir}" + (f" by {ctx.world} processes" if ctx.active else ""))
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from .trainer import train_run
    curricula = _parse_list(a.curricula)
    for c in curricula:
        if c not in CURRICULA:
            raise ValueError(f"unknown curriculum {c!r}: choose from {', '.join(CURRICULA)}")
    seeds = _parse_list(a.seeds, int)
    out = _check_out(Path(a.out))
    from tqdm.auto import tqdm
    jobs = [(c, s) for s in seeds for c in curricula]
    for c, s in tqdm(jobs, desc="compare", unit="run", disable=a.no_progress):
        cfg = config_from_args(a, c, s)
        train_run(cfg, out / f"{c}-s{s}", resume=True, progress=False)
    print_summary(out)
    return 0


def print_summary(exp_dir: Path) -> None:
    from .store import ExperimentReader
    exp = ExperimentReader(exp_dir)
    df = exp.rounds()
    if not len(df):
        return
    last = df.sort_values("round").groupby("run").tail(1)
    metric = "test_acc" if "test_acc" in last else "test_mse"
    table = last.groupby("curriculum")[[metric, "steps"]].agg(["mean", "std", "count"])
    print(f"\n{exp_dir}: final {metric} by curriculum")
    print(table.to_string())


def cmd_demo(a: argparse.Namespace) -> int:
    """The bundled demo: digits with 20% flipped labels, all five curricula, two seeds."""
    import shutil
    out = Path(a.out)
    if out.exists():
        shutil.rmtree(out)
    args = build_parser().parse_args([
        "compare", "--dataset", "digits", "--curricula", ",".join(CURRICULA), "--seeds", "0,1",
        "--rounds", "12", "--label-noise", "0.2", "--out", str(out), "--probe-size", "48",
        "--k-start", "0.2", "--k-growth", "1.15", "--device", "cpu"] + (["--no-progress"] if a.no_progress else []))
    code = cmd_compare(args)
    for ckpt in out.glob("*/checkpoint.pt"):  # the demo is for looking, not resuming: keep it small
        ckpt.unlink()
    return code


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other docl error (exit code 2).

    Sub-commands inherit it: add_subparsers makes its parsers of the parent's class.
    No abbreviations: `--epochs 3` must not silently mean `--epochs-per-round 3`.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"docl: error: {message}: see `{self.prog} --help`\n")


def cmd_study(a: argparse.Namespace) -> int:
    from .study import DOCS_DIR, run_study
    path = run_study(a.suite, Path(a.out), seeds=a.seeds, n_workers=a.jobs,
                     docs=Path(a.docs) if a.docs else DOCS_DIR, progress=not a.no_progress)
    print(f"report written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="docl", description="docl: a training-dynamics lab for "
                                     "curriculum learning (DoCL, Zhou, Wang and Bilmes, AISTATS 2021)")
    sub = parser.add_subparsers(dest="command", metavar="{run,compare,demo,study}")
    p = sub.add_parser("run", help="train one run of one curriculum")
    p.add_argument("--curriculum", default="docl", choices=CURRICULA)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=None, help="run folder name (default CURRICULUM-sSEED)")
    p.add_argument("--resume", action="store_true", help="continue the run (or start it if absent)")
    _add_run_options(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("compare", help="several curricula × seeds at an equal step budget")
    p.add_argument("--curricula", default=",".join(CURRICULA), help="comma list")
    p.add_argument("--seeds", default="0,1,2", help="comma list of seeds")
    _add_run_options(p)
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("demo", help="regenerate the bundled demo experiment (assets/demo)")
    p.add_argument("--out", default=str(DEMO_DIR))
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("study", help="the comparison study: tune, run, write docs/RESULTS.md")
    p.add_argument("--suite", default="main", help="main (the real one) or quick (for tests)")
    p.add_argument("--out", default="runs/study", help="experiments land in OUT/<setting>")
    p.add_argument("--seeds", type=int, default=None, help="report seeds 0..N-1 (default: the suite's)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel, one process and thread each")
    p.add_argument("--docs", default=None, help="where RESULTS.md and the PNGs go (default docs/)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_study)
    return parser




def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "func", None):
        parser.print_help()
        return 0
    from .store import RunStoreError
    previous = _terminate_as_interrupt()
    try:
        return a.func(a)
    except (ValueError, RunStoreError, FileNotFoundError) as e:
        print(f"docl: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permissions, a file where a folder should be, ...
        where = f" ({e.filename})" if e.filename else ""
        print(f"docl: error: {e.strerror or e}{where}: check that --out is a writable folder with "
              "free space", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("docl: interrupted; continue with --resume", file=sys.stderr)
        return 130
    except RuntimeError as e:
        from .trainer import TrainingDiverged
        if isinstance(e, TrainingDiverged):
            print(f"docl: run failed: {e}", file=sys.stderr)
            return 3
        if os.environ.get("WORLD_SIZE", "1") != "1":
            first = (str(e).strip().splitlines() or [""])[0][:200]
            print(f"docl: error: rank {os.environ.get('RANK', '?')} stopped: {first} (a peer process "
                  "probably failed; see its message above, then rerun with --resume)", file=sys.stderr)
            return 4
        raise
    finally:
        if previous is not None:
            import signal
            signal.signal(signal.SIGTERM, previous)


def _terminate_as_interrupt() -> None:
    """SIGTERM (torchrun stopping workers, a cluster preempting) ends a run like Ctrl-C: the
    run is marked interrupted and continues with --resume."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    sys.exit(main())
