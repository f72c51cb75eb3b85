"""The command line: `python -m docl_core` (also installed as `docl`).

    docl run --dataset digits --curriculum docl --rounds 10 --seed 0 --out runs/digits
    docl compare --dataset digits --curricula random,spl,mcl,docl-nr,docl --seeds 0,1 --out runs/cmp
    docl demo                       # regenerates assets/demo, the experiment the app opens
    docl export runs/digits --to tensorboard tb/digits   # then: tensorboard --logdir tb/digits
    docl export runs/digits --to npz tables/digits       # N × T arrays, numpy alone reads them
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

from dataclasses import fields

from .config import (CURRICULA, ESTIMATORS, ORDERS, PRECISIONS, PREFER, PRESETS, PROTOCOLS, SCORE_CURRICULUM,
                     SELECTION_SCORES, RunConfig, Schedule, paper_flag)
from .names import run_curriculum
from .protocol import PaperSchedule

DEMO_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo"


# flags shared by both protocols, mapped to each protocol's field
_SHARED = {"k_start": ("k_start", "k_start"), "k_growth": ("k_growth", "k_growth"), "k_cap": ("k_cap", "k_cap"),
           "lr": ("lr", "lr_max"), "lr_min": ("lr_min", "lr_min"), "lam": ("lam_start", "lam_start"),
           "lam_decay": ("lam_decay", "lam_decay")}
_STEPS_ONLY = ("rounds", "temperature", "pool_factor", "warmup_epochs", "epochs_per_round")
_PAPER_MAPPED = {"k_start", "k_growth", "k_cap", "lr_max", "lr_min", "lam_start", "lam_decay"}


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Every flag of `docl run` (and `docl new`), in the order --help lists them."""
    _add_data_options(p)
    _add_schedule_options(p)
    _add_steps_options(p)
    _add_paper_options(p)
    _add_machine_options(p)


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """Data, model, scores and what is logged."""
    d = RunConfig()
    p.add_argument("--dataset", default=d.dataset,
                   help="digits, mnist1d, moons, blobs, sine, or a path (.npz, .csv, CIFAR-10 or Fashion-MNIST folder)")
    p.add_argument("--label-column", default=None, metavar="NAME",
                   help="a .csv dataset's column of labels (default: the column named 'label')")
    p.add_argument("--protocol", default=d.protocol, choices=PROTOCOLS,
                   help="steps: equal-step rounds; paper: the authors' episodes of epochs")
    p.add_argument("--out", default="runs/default", help="experiment folder; the run lands in OUT/NAME")
    p.add_argument("--model", default=None, help="mlp, cnn, resnet, wrn-16-4 or wrn-28-10 (default: the dataset's)")
    p.add_argument("--estimator", default=None, choices=ESTIMATORS,
                   help="the DoCL score's estimator, which drives docl's selection (default: exact under steps, "
                        "paper under paper); none: no score, the same recipe with a uniform draw (the ablation)")
    p.add_argument("--score", dest="score_name", default=None, choices=SELECTION_SCORES, metavar="NAME",
                   help="an estimator's name: the same as --estimator; any other logged score ("
                        + ", ".join(s for s in SELECTION_SCORES if s not in ESTIMATORS)
                        + ") drives --curriculum score (default: the estimator)")
    p.add_argument("--prefer", default=None, choices=PREFER,
                   help="--curriculum score: the score's hard end first (large loss, EL2N, GraNd, a; small "
                        "margin, AUM, confidence) or its easy end (default: hard)")
    p.add_argument("--log-grad-norms", action="store_true",
                   help="also log GraNd ‖g_i‖ per sample: one per-sample gradient pass per measured round")
    p.add_argument("--log-estimators", default=None,
                   help="comma list of estimators logged beside it ('' for none; default: byproduct "
                        "under steps, exact under paper)")
    p.add_argument("--diversity", default=None, choices=("facility", "centrality", "none"),
                   help="F(S): facility location, centrality, none (default: facility under steps, "
                        "the authors' centrality under paper)")
    p.add_argument("--label-noise", type=float, default=d.label_noise, help="fraction of train labels flipped")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="share of the training pool held out for validation, stratified (default 0.15: "
                        "mnist1d-100k then trains exactly 100,000 of its 117,647)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="training mini-batch size")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="L2 weight decay of SGD")
    p.add_argument("--probe-size", type=int, default=d.probe_size, help="kernel probe samples (0: off)")
    p.add_argument("--kernel-full", action="store_true", help="also store full (m, m, C, C) kernel blocks")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")


def _add_schedule_options(p: argparse.ArgumentParser) -> None:
    """The flags both protocols share; each maps to its own protocol's field (_SHARED)."""
    s, ps = Schedule(), PaperSchedule()
    p.add_argument("--k-start", type=float, default=None,
                   help=f"fraction of N in the first round (steps) or pool budget (paper); "
                        f"default: {s.k_start} under steps, {ps.k_start} under paper")
    p.add_argument("--k-growth", type=float, default=None,
                   help=f"k grows by this factor per round (steps) or episode (paper); "
                        f"default: {s.k_growth} under steps, {ps.k_growth} under paper")
    p.add_argument("--k-cap", type=float, default=None, help=f"largest k as a fraction of N; default: {s.k_cap} under steps, "
                   f"{ps.k_cap} under paper")
    p.add_argument("--lam", type=float, default=None,
                   help=f"diversity weight λ_0 of --diversity facility (default: {s.lam_start})")
    p.add_argument("--lam-decay", type=float, default=None,
                   help=f"λ_t = λ_0 · decay^t, t the round (steps) or episode (paper) (default: {s.lam_decay})")
    p.add_argument("--lr", type=float, default=None,
                   help=f"peak learning rate per round (steps) or of the first episodes (paper); "
                        f"default: {s.lr} under steps, {ps.lr_max} under paper")
    p.add_argument("--lr-min", type=float, default=None, help=f"cosine floor; default: {s.lr_min} under steps, "
                   f"{ps.lr_min} under paper")


def _add_steps_options(p: argparse.ArgumentParser) -> None:
    d, s = RunConfig(), Schedule()
    g = p.add_argument_group("steps protocol")
    g.add_argument("--rounds", type=int, default=None, help=f"curriculum rounds (default: {d.rounds})")
    g.add_argument("--temperature", type=float, default=None, help=f"τ of the DoCL pool draw (default: {s.temperature})")
    g.add_argument("--pool-factor", type=float, default=None, help=f"DoCL pool size / k (default: {s.pool_factor})")
    g.add_argument("--warmup-epochs", type=int, default=None, help=f"plain epochs before round 0 (default: {s.warmup_epochs})")
    g.add_argument("--epochs-per-round", type=float, default=None,
                   help=f"passes over the selected subset per round (default: {s.epochs_per_round})")


def _add_paper_options(p: argparse.ArgumentParser) -> None:
    """The paper protocol's flags: each PaperSchedule field not shared is a switch or a value."""
    ps = PaperSchedule()
    g = p.add_argument_group("paper protocol (each ingredient a switch, the authors' value by default)")
    g.add_argument("--epochs", type=int, default=None, help=f"total epochs E (default: {ps.epochs})")
    g.add_argument("--episodes", default=None,
                   help="episode boundaries, e.g. 0,2,4,8 (default: 0,5,10,...,300 scaled to E)")
    g.add_argument("--order", default=None, choices=ORDERS,
                   help="order of each subset pass: draw (the selection's own order: its weighted draw's, "
                        "then its prune's, as the authors' code trains it), shuffle (a fresh random order) or reversed "
                        "(draw reversed); for sgd, draw orders all N by a weighted draw from the score "
                        "(default: draw, shuffle for sgd)")
    g.add_argument("--log-every", default=None, choices=("epoch", "episode"),
                   help="exact/fast scores and kernel at every epoch or at episode starts (default: episode)")
    for f in fields(PaperSchedule):
        if f.name in _PAPER_MAPPED or f.name in ("epochs", "episodes"):
            continue
        default = getattr(ps, f.name)
        if isinstance(default, bool) and default:
            g.add_argument(f"--no-{f.name.replace('_', '-')}", dest=f.name, action="store_const",
                           const=False, default=None, help=f"turn {f.name.replace('_', ' ')} off")
        elif isinstance(default, bool):
            g.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, action="store_const",
                           const=True, default=None, help=f"turn {f.name.replace('_', ' ')} on (default: off)")
        else:
            g.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=type(default), default=None,
                           help=f"the recipe's {f.name.replace('_', ' ')} (default: {default})")


def _add_machine_options(p: argparse.ArgumentParser) -> None:
    """Determinism, precision, presets and progress bars."""
    d = RunConfig()
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic GPU kernels (slower); recorded in run.json")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help=f"autocast of the training forwards: bf16 or fp16 (with loss scaling) on GPUs; scores, "
                        f"features and evaluation stay fp32 (default: {d.precision})")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="a named set of flags, applied where a flag is left at its default: cifar10-paper is the "
                        "authors' CIFAR-10 run (WRN-28-10, E = 300; needs --dataset PATH/cifar-10-batches-py) "
                        "(default: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _given(a: argparse.Namespace, names) -> list[str]:
    return [n for n in names if getattr(a, n, None) is not None]


def _apply_preset(a: argparse.Namespace) -> None:
    """--preset NAME: set its flags wherever the command line left them at their defaults."""
    name = getattr(a, "preset", None)
    if name is None:
        return
    if a.dataset == RunConfig.dataset:
        raise ValueError(f"--preset {name} trains on CIFAR-10: pass --dataset PATH/cifar-10-batches-py (the python "
                         "batches from https://www.cs.toronto.edu/~kriz/cifar.html)")
    defaults = {**RunConfig().to_dict(), "epochs": None, "lr": None, "k_start": None, "k_growth": None,
                "k_cap": None}
    for key, value in PRESETS[name].items():
        if getattr(a, key, None) is None or getattr(a, key) == defaults.get(key):
            setattr(a, key, value)


def config_from_args(a: argparse.Namespace, curriculum: str, seed: int) -> RunConfig:
    _apply_preset(a)
    paper = a.protocol == "paper"
    paper_only = ["epochs", "episodes", "log_every", "order"] + [f.name for f in fields(PaperSchedule)
                                                         if f.name not in _PAPER_MAPPED | {"epochs", "episodes"}]
    wrong = _given(a, _STEPS_ONLY) if paper else _given(a, paper_only)
    if wrong:
        flags = ", ".join(paper_flag(n) for n in wrong)
        raise ValueError(f"{flags} appl{'ies' if len(wrong) == 1 else 'y'} to --protocol "
                         f"{'steps' if paper else 'paper'} only: "
                         f"{'drop it' if len(wrong) == 1 else 'drop them'}, or use --protocol "
                         f"{'steps' if paper else 'paper'}")
    shared = {k: getattr(a, k) for k in _SHARED if getattr(a, k) is not None}
    if paper:
        pkw = {n: getattr(a, n) for n in paper_only if n not in ("log_every", "episodes", "order")
               and getattr(a, n) is not None}
        if a.episodes is not None:
            pkw["episodes"] = _parse_list(a.episodes, int)
        sched = PaperSchedule(**pkw, **{_SHARED[k][1]: v for k, v in shared.items()})
    else:
        sched = Schedule(**{k: getattr(a, k) for k in _STEPS_ONLY if k != "rounds" and getattr(a, k) is not None},
                         **{_SHARED[k][0]: v for k, v in shared.items()})
    logged = None if a.log_estimators is None else [e.strip() for e in a.log_estimators.split(",") if e.strip()]
    estimator, score, prefer = a.estimator, a.score_name, a.prefer
    if score in ESTIMATORS:  # --score NAME with an estimator's name is --estimator NAME
        if estimator is not None and estimator != score:
            raise ValueError(f"--score {score} and --estimator {estimator} name two estimators: give one")
        estimator, score = score, None
    if hasattr(a, "curricula") and curriculum != SCORE_CURRICULUM:
        if (score is not None or prefer is not None) and SCORE_CURRICULUM not in _parse_list(a.curricula):
            raise ValueError("--score NAME (other than an estimator) and --prefer drive --curricula score only: "
                             "add score to --curricula, or drop them")
        score = prefer = None  # compare: they apply to the score arm
    cfg = RunConfig(dataset=a.dataset, label_column=a.label_column or None, curriculum=curriculum,
                    protocol=a.protocol,
                    rounds=a.rounds if a.rounds is not None else RunConfig.rounds, seed=seed,
                    model=a.model, estimator=estimator, log_estimators=logged, log_every=a.log_every,
                    order=getattr(a, "order", None),
                    score=score, prefer=prefer, log_grad_norms=a.log_grad_norms,
                    diversity=a.diversity, label_noise=a.label_noise,
                    val_fraction=getattr(a, "val_fraction", RunConfig.val_fraction), batch_size=a.batch_size,
                    weight_decay=a.weight_decay, probe_size=a.probe_size, kernel_full=a.kernel_full,
                    device=a.device, schedule=sched, deterministic=a.deterministic,
                    precision=getattr(a, "precision", RunConfig.precision))
    cfg.validate()
    return cfg


# RunConfig fields → the `run` flag that sets them (the paper protocol's own fields: _paper_flag)
_RUN_FLAGS = {"dataset": "--dataset", "label_column": "--label-column", "score": "--score", "prefer": "--prefer",
              "log_grad_norms": "--log-grad-norms", "rounds": "--rounds", "seed": "--seed", "model": "--model",
              "estimator": "--estimator", "log_estimators": "--log-estimators", "log_every": "--log-every",
              "order": "--order", "diversity": "--diversity", "label_noise": "--label-noise", "val_fraction": "--val-fraction",
              "batch_size": "--batch-size", "probe_size": "--probe-size", "kernel_full": "--kernel-full",
              "weight_decay": "--weight-decay", "device": "--device", "deterministic": "--deterministic",
              "precision": "--precision", "schedule.lam_start": "--lam", "schedule.lam_decay": "--lam-decay",
              "schedule.lr": "--lr", "schedule.lr_min": "--lr-min", "paper.lr_max": "--lr", "paper.lr_min": "--lr-min",
              "paper.lam_start": "--lam", "paper.lam_decay": "--lam-decay"}


def run_command(cfg: RunConfig, out: str = "runs/reproduce", name: Optional[str] = None) -> str:
    """The `python -m docl_core run ...` command line that trains exactly `cfg` into OUT/NAME: a flag
    for every field that differs from what the command would give without it. Checked by parsing it
    back (ValueError when a field has no flag, e.g. a changed score_batch_size)."""
    import shlex
    head = ["run", "--protocol", cfg.protocol, "--curriculum", cfg.curriculum]
    plain = _flat(config_from_args(build_parser().parse_args(head), cfg.curriculum, 0).to_dict())
    want = _flat(cfg.to_dict())
    args = list(head)
    shown = {"dataset", "seed", "label_noise", *(("order", "paper.epochs") if cfg.protocol == "paper" else ("rounds",))}
    for key, value in want.items():
        if plain.get(key) == value and key not in shown:
            continue
        flag = _RUN_FLAGS.get(key) or ("--" + key.split(".", 1)[1].replace("_", "-")
                                       if key.startswith(("schedule.", "paper.")) else None)
        if flag is None:
            raise ValueError(f"no command line gives this run's {key} ({value!r}): it was made through the library")
        if isinstance(value, bool):
            if key.startswith("paper."):
                flag = paper_flag(key.split(".", 1)[1])
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(map(str, value))]
        else:
            args += [flag, repr(value) if isinstance(value, float) else str(value)]
    args += ["--out", str(out), "--name", name or f"{run_curriculum(cfg.to_dict())}-s{cfg.seed}"]
    back = _flat(config_from_args(build_parser().parse_args(args), cfg.curriculum, cfg.seed).to_dict())
    wrong = sorted(k for k in set(want) | set(back) if want.get(k) != back.get(k))
    if wrong:
        raise ValueError(f"no command line gives this run's {', '.join(wrong)}: it was made through the library")
    return "python -m docl_core " + " ".join(shlex.quote(x) for x in args)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


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
        # a probe of this process's own: torchrun's ranks (and a run beside them) check the
        # same folder at once, and a shared name let one unlink another's probe (ENOENT)
        fd, probe = tempfile.mkstemp(prefix=".docl-write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"cannot write to {out} ({e.strerror}): choose a writable --out folder") from None
    return out


def cmd_run(a: argparse.Namespace) -> int:
    from .distributed import init_from_env, shutdown
    from .trainer import train_run
    cfg = config_from_args(a, a.curriculum, a.seed)
    out = _check_out(Path(a.out))
    name = a.name or f"{run_curriculum(cfg.to_dict())}-s{cfg.seed}"
    if "/" in name or name.startswith("."):
        raise ValueError(f"run name {name!r} must be a plain folder name (no '/' or leading '.')")
    if (out / name).exists() and not (out / name).is_dir():
        raise ValueError(f"{out / name} is a file, not a run folder: choose another --name or --out")
    ctx = init_from_env(cfg.device)  # torchrun sets WORLD_SIZE > 1; otherwise one process
    try:
        run_dir = train_run(cfg, out / name, resume=a.resume, progress=not a.no_progress, dist=ctx)
    except BaseException:
        shutdown(ctx, finished=False)
        raise
    shutdown(ctx)
    if ctx.is_writer:
        print(f"run written to {run_dir}" + (f" by {ctx.world} processes" if ctx.active else ""))
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from .trainer import train_run
    curricula = _parse_list(a.curricula)
    for c in curricula:
        if c not in CURRICULA and c != SCORE_CURRICULUM:
            raise ValueError(f"unknown curriculum {c!r}: choose from {', '.join((*CURRICULA, SCORE_CURRICULUM))}")
    seeds = _parse_list(a.seeds, int)
    out = _check_out(Path(a.out))
    from tqdm.auto import tqdm
    jobs = [(c, s) for s in seeds for c in curricula]
    for c, s in tqdm(jobs, desc="compare", unit="run", disable=a.no_progress):
        cfg = config_from_args(a, c, s)
        train_run(cfg, out / f"{run_curriculum(cfg.to_dict())}-s{s}", resume=True, progress=False)
    print_summary(out)
    return 0


def cmd_summary(a: argparse.Namespace) -> int:
    from .summary import summary_text
    path = Path(a.experiment)
    if not path.is_dir():
        raise FileNotFoundError(f"no experiment folder at {path}: pass a folder of run folders "
                                "(e.g. the --out of docl compare)")
    print(summary_text(path, against=_parse_list(a.against), split=a.split))
    return 0


def print_summary(exp_dir: Path) -> None:
    from .store import ExperimentReader
    exp = ExperimentReader(exp_dir)
    df = exp.rounds()
    if not len(df):
        return
    last = df.sort_values("round").groupby("run").tail(1)
    metric = "test_acc" if "test_acc" in last else "test_mse"
    if metric == "test_acc":
        from .summary import summary_text
        print("\n" + summary_text(exp_dir))
        return
    table = last.groupby("curriculum")[[metric, "steps"]].agg(["mean", "std", "count"])
    print(f"\n{exp_dir}: final {metric} by curriculum")
    print(table.to_string())


DEMOS = {  # folder under assets/demo → (what it is for, label noise, arms: (curricula, options beyond the recipe's), ...)
    # each says which lecture question it answers (docs/lecture.md walks them in this order); the
    # percentiles and ρ are measured on these runs (tests/test_app.py recomputes them)
    "clean-digits": ("Lecture question 1: does the authors' recipe beat plain SGD, and what does its score "
                     "pick? SGD, Random and DoCL driven by the authors' byproduct score, on clean labels, the "
                     "exact score logged beside it. The byproduct ranks samples against the exact score (median "
                     "Spearman ρ −0.30 to −0.43 per seed) and DoCL's subsets sit a little below the middle of "
                     "the exact score (mean percentile 45–46 per seed): the recipe does not select the learning "
                     "frontier.",
                     0.0, ((("sgd", "random", "docl"), ()),)),
    "noisy-digits": ("Lecture question 2: who picks the flipped labels, and who wins? Every curriculum on 20 % "
                     "flipped labels, under the authors' recipe. DoCL's subsets again sit near the middle of the "
                     "exact score (mean percentile 47–48 per seed).",
                     0.2, ((CURRICULA, ()),)),
    # the same recipe, epochs and data as clean-digits; only the score that drives DoCL differs
    "frontier-digits": ("Lecture question 3: what does the exact score select? DoCL driven by the exact score "
                        "a_i = r_i·v_i (the authors' byproduct logged beside it), Random beside it, on clean "
                        "labels. Selection follows a_t here: S_t's mean exact-score percentile is 57–89 in epochs "
                        "1–15 on all three seeds (Random's 48–54), highest while k_t is small.",
                        0.0, ((("random", "docl"), ("--estimator", "exact", "--log-estimators", "paper")),)),
    # the authors' order (docs/protocol.md, 'Space'): the same recipe, only the order of each subset pass differs
    "order-digits": ("Lecture question 4: does the order inside a subset pass matter? On 20 % flipped labels: "
                     "DoCL trained in its draw's own order (the authors'), the same subsets shuffled and "
                     "reversed, SGD, and SGD with every epoch ordered by DoCL's draw (the order-only arm). "
                     "Selected subsets shows the score and the flipped-label share along the pass.",
                     0.2, ((("sgd", "docl"), ()), (("docl",), ("--order", "shuffle")),
                           (("docl",), ("--order", "reversed")), (("sgd",), ("--order", "draw")))),
}
DEMO_EPOCHS = 16  # digits' test accuracy under `sgd` flattens by then (about 98%)
ABOUT_FILE = "about.md"  # an experiment folder's one-paragraph purpose; the dashboard shows it


def cmd_demo(a: argparse.Namespace) -> int:
    """The bundled demos, all under the paper protocol on digits, three seeds each (DEMOS says what
    each is for, and cmd_demo writes that into each folder's about.md for the dashboard).

    frontier-digits shows the mechanism under the paper protocol rather than the steps protocol: it
    keeps the recipe, epochs and data of clean-digits, so the score is the one thing that differs,
    and its k_t stays at most about a third of N for all 16 epochs, so S_t can follow a_t to the
    end (S_t's mean exact-score percentile 57–89 in epochs 1–15 on the three seeds, measured on the
    demo regenerated with the draw order; on seed 0 under steps it fell from 87 to 50 as k_t grew
    to N in 10 rounds). order-digits runs the same recipe in each order of the subset pass."""
    import shutil
    out = Path(a.out)
    only = _parse_list(a.only) if getattr(a, "only", None) else list(DEMOS)
    unknown = [n for n in only if n not in DEMOS]
    if unknown:
        raise ValueError(f"unknown demo {', '.join(unknown)}: choose from {', '.join(DEMOS)}")
    if out.exists() and set(only) == set(DEMOS):
        shutil.rmtree(out)
    code = 0
    for name, (purpose, noise, arms) in DEMOS.items():
        if name not in only:
            continue
        shutil.rmtree(out / name, ignore_errors=True)
        for curricula, extra in arms:
            args = build_parser().parse_args([
                "compare", "--dataset", "digits", "--curricula", ",".join(curricula), "--seeds", "0,1,2",
                "--protocol", "paper", "--epochs", str(DEMO_EPOCHS), "--log-every", "epoch",
                "--label-noise", str(noise), "--out", str(out / name), "--probe-size", "48", "--device", "cpu",
                *extra] + (["--no-progress"] if a.no_progress else []))
            code = code or cmd_compare(args)
        (out / name / ABOUT_FILE).write_text(purpose + "\n")
    for ckpt in out.glob("*/*/checkpoint.pt"):  # the demo is for looking, not resuming: keep it small
        ckpt.unlink()
    return code


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: X)" after every option that takes a value, unless its help already
    says its default in words (options whose default depends on --protocol, the dataset, ...)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (not action.option_strings or action.nargs == 0 or action.required or action.default is None
                or action.default is argparse.SUPPRESS or "default" in text.lower()):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other docl error (exit code 2).

    Sub-commands inherit it: add_subparsers makes its parsers of the parent's class.
    No abbreviations: `--epochs 3` must not silently mean `--epochs-per-round 3`.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _HelpFormatter)  # --help shows every default
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"docl: error: {message}: see `{self.prog} --help`\n")


def cmd_study(a: argparse.Namespace) -> int:
    from .study import DOCS_DIR, run_study
    path = run_study(a.suite, Path(a.out), seeds=a.seeds, n_workers=a.jobs,
                     docs=Path(a.docs) if a.docs else DOCS_DIR, progress=not a.no_progress,
                     reuse_from=Path(a.reuse_from) if a.reuse_from else None, train=not a.report_only)
    print(f"report written to {path}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .export import export_tables, export_tensorboard
    if a.to != "tensorboard":
        written = export_tables(Path(a.source), Path(a.out), a.to)
        print(f"{len(written)} run{'s' if len(written) != 1 else ''} exported to {a.out} as {a.to} "
              f"({sum(written.values())} rounds): <run>/samples.{a.to} and <run>/rounds.csv")
        return 0
    written = export_tensorboard(Path(a.source), Path(a.out))
    bare = sorted(p.name for p, mapped in written.items() if not mapped)
    print(f"{len(written)} run{'s' if len(written) != 1 else ''} exported to {a.out}: "
          f"tensorboard --logdir {a.out}")
    if bare:
        print(f"no projector for {', '.join(bare)}: no embedding maps (a model without features(x), "
              "or a run that predates them); scalars and histograms only")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="docl", description="docl: a training-dynamics lab for "
                                     "curriculum learning (DoCL, Zhou, Wang and Bilmes, AISTATS 2021)")
    sub = parser.add_subparsers(dest="command", metavar="{run,compare,demo,study,summary,export}")
    p = sub.add_parser("run", help="train one run of one curriculum")
    p.add_argument("--curriculum", default="docl", choices=(*CURRICULA, SCORE_CURRICULUM),
                   help="the curriculum to train under (score: docl's selection by --score NAME, see --prefer)")
    p.add_argument("--seed", type=int, default=0, help="seeds the model, the splits, the noise and the selection")
    p.add_argument("--name", default=None, help="run folder name (default: CURRICULUM-sSEED)")
    p.add_argument("--resume", action="store_true", help="continue the run (or start it if absent)")
    _add_run_options(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("compare", help="several curricula × seeds at an equal step budget")
    p.add_argument("--curricula", default=",".join(CURRICULA), help="comma list")
    p.add_argument("--seeds", default="0,1,2", help="comma list of seeds")
    _add_run_options(p)
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("demo", help="regenerate the bundled demo experiment (assets/demo)")
    p.add_argument("--out", default=str(DEMO_DIR), help="where the demo experiments are written")
    p.add_argument("--only", default=None, help="comma list of the demos to regenerate, the others left as they "
                   "are (default: all, the folder rewritten)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("study", help="the comparison study: tune, run, write docs/RESULTS.md")
    p.add_argument("--suite", default="paper", help="paper (the real one: both protocols, ablations, "
                   "fidelity), budget (DoCL, SGD and Random at E = 30, 100, 300), order (the order inside a subset "
                   "pass: draw, shuffled, reversed; 10 seeds), steps, or quick / order-quick (a few minutes, for tests)")
    p.add_argument("--out", default="runs/study", help="experiments land in OUT/<setting>")
    p.add_argument("--seeds", type=int, default=None, help="report seeds 0..N-1 (default: the suite's)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel, one process and thread each")
    p.add_argument("--docs", default=None, help="where RESULTS.md and the PNGs go (default: docs/)")
    p.add_argument("--reuse-from", default=None, metavar="DIR", help="another study's folder: its complete runs "
                   "with the same config are copied instead of trained (the budget suite reuses the paper study's; "
                   "default: none, every run is trained here)")
    p.add_argument("--report-only", action="store_true", help="train nothing: write the report from the runs "
                   "already complete in OUT (a study still running, or cut short); it says which are missing")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_study)
    p = sub.add_parser("summary", help="an experiment's final accuracies (last student, best of student and "
                       "teacher) and paired intervals against baselines")
    p.add_argument("experiment", metavar="EXPERIMENT", help="a folder of run folders (ARM-sSEED)")
    p.add_argument("--against", default="sgd,random", help="baseline arms, comma list (default: sgd,random)")
    p.add_argument("--split", default="test", choices=("test", "val"), help="the split to report")
    p.set_defaults(func=cmd_summary)
    p = sub.add_parser("export", help="write a run or experiment as plain tables (npz, parquet, csv) or for "
                       "TensorBoard")
    p.add_argument("source", metavar="RUN_OR_EXPERIMENT", help="a run folder or an experiment folder")
    p.add_argument("--to", required=True, choices=("npz", "parquet", "csv", "tensorboard"),
                   help="npz: N × T arrays per logged score, loss and the selected mask; parquet / csv: one row "
                   "per sample and round; tensorboard: event files (required)")
    p.add_argument("out", metavar="OUT", help="a new folder: one sub-folder per run")
    p.set_defaults(func=cmd_export)
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
        # once: torchrun may signal again while the run records why it stopped, and a second
        # interrupt there would leave the run marked "running"
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    sys.exit(main())
