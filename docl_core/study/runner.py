"""Running a suite: tune on validation, then the report, ablation and fidelity runs, in processes.

Folders under OUT:
    <setting>/<curriculum>-s<seed>                       report runs (the Compare page opens OUT/<setting>)
    tuning/<setting>/<curriculum>-<knobs>-s<seed>        grid points on the tuning seeds
    ablation/<setting>/<curriculum>-<variant>-s<seed>    the recipe with one ingredient off
    fidelity/<setting>/<curriculum>-<variant>-s<seed>    exact score logged every epoch

A run whose run.json is complete with the same config is reused, so an interrupted study
continues where it stopped. Workers are spawned processes of one thread each; they import
docl_core from the parent's sys.path (run from the repository root to use its code).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from ..names import arm_of
from .suites import ARMS, TUNED_AS, Suite, grid_points, knob_tag

Job = tuple[dict, str]


def _same_config(run_dir: Path, cfg_dict: dict) -> bool:
    path = run_dir / "run.json"
    if not path.exists():
        return False
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if meta.get("status") != "complete":
        return False
    from ..config import config_differences
    # a field added to RunConfig since the run was made counts as its default, as on resume
    return not config_differences(meta.get("config") or {}, json.loads(json.dumps(cfg_dict)))


def run_job(job: Job) -> tuple[str, float, Optional[str], str]:
    """Train one run (a process-pool worker). → (run_dir, seconds, error or None, docl_core's path)."""
    import torch
    import docl_core
    from ..config import RunConfig
    from ..trainer import train_run
    torch.set_num_threads(1)  # one core per run: parallelism comes from --jobs
    cfg_dict, run_dir = job
    run_dir = Path(run_dir)
    if _same_config(run_dir, cfg_dict):
        return str(run_dir), 0.0, None, docl_core.__file__
    shutil.rmtree(run_dir, ignore_errors=True)  # a stale or half-written run: start it over
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train_run(RunConfig.from_dict(cfg_dict), run_dir)
    except Exception as e:  # a diverged run is a result (reported as failed), not a crash
        return str(run_dir), time.perf_counter() - t0, f"{type(e).__name__}: {e}", docl_core.__file__
    return str(run_dir), time.perf_counter() - t0, None, docl_core.__file__


def run_jobs(jobs: list[Job], n_workers: int, desc: str, progress: bool) -> dict:
    """Run jobs in n_workers processes (1: in this process). → {run_dir: (seconds, error)}."""
    from tqdm.auto import tqdm
    import docl_core
    out = {}
    bar = tqdm(total=len(jobs), desc=desc, unit="run", disable=not progress)

    def done(result):
        d, s, err, where = result
        if Path(where).resolve() != Path(docl_core.__file__).resolve():
            raise RuntimeError(f"a worker imported docl_core from {where}, not {docl_core.__file__}: "
                               "run the study from the repository root")
        out[d] = (s, err)
        bar.update()

    if n_workers <= 1:
        for job in jobs:
            done(run_job(job))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed
        with ProcessPoolExecutor(n_workers, mp_context=mp.get_context("spawn")) as pool:
            for f in as_completed([pool.submit(run_job, job) for job in jobs]):
                done(f.result())
    bar.close()
    for d, (_, err) in out.items():
        if err:
            print(f"study: run {d} failed: {err}", file=sys.stderr)
    return out


def final_metric(run_dir: Path, split: str = "val") -> Optional[float]:
    """The last round's accuracy (or MSE) on a split of a complete run; None otherwise."""
    from ..store import RunReader, RunStoreError
    try:
        r = RunReader(run_dir)
        df = r.rounds()
    except (RunStoreError, OSError):
        return None
    if r.status != "complete" or not len(df):
        return None
    last = df.sort_values("round").iloc[-1]
    for col in (f"{split}_acc", f"{split}_mse"):
        if col in df and np.isfinite(last[col]):
            return float(last[col])
    return None


def tuning_jobs(suite: Suite, out: Path) -> tuple[list[Job], list[tuple]]:
    jobs, where = [], []
    for s in suite.settings:
        for c in suite.curricula_of(s):
            points = grid_points(suite.grids.get(s.protocol, {}).get(c, {}))
            if len(points) <= 1:
                continue  # nothing to choose
            for knobs in points:
                for seed in suite.tuning_seeds:
                    d = out / "tuning" / s.name / f"{c}-{knob_tag(knobs)}-s{seed}"
                    jobs.append((s.config(c, seed, knobs).to_dict(), str(d)))
                    where.append((s, c, knobs, seed, d))
    return jobs, where


def choose(suite: Suite, where: list[tuple]) -> tuple[dict, pd.DataFrame]:
    """Best grid point per setting × curriculum by mean final validation metric (ties: the default).
    → ({setting: {curriculum: knobs}}, a frame of every candidate)."""
    rows = [{"setting": s.name, "curriculum": c, "knobs": knob_tag(k), "seed": seed, "val": final_metric(d)}
            for s, c, k, seed, d in where]
    cand = pd.DataFrame(rows, columns=["setting", "curriculum", "knobs", "seed", "val"])
    chosen = {}
    for s in suite.settings:
        chosen[s.name] = {}
        higher = s.dataset != "sine"
        for c in suite.curricula_of(s):
            points = grid_points(suite.grids.get(s.protocol, {}).get(c, {}))
            sub = cand[(cand.setting == s.name) & (cand.curriculum == c)]
            mean = sub.groupby("knobs", sort=False)["val"].mean() if len(sub) else pd.Series(dtype=float)
            best, best_v = points[0], None
            for knobs in points:  # grid order: ties go to the earlier (default) point
                v = mean.get(knob_tag(knobs), np.nan)
                if np.isfinite(v) and (best_v is None or (v > best_v if higher else v < best_v)):
                    best, best_v = knobs, v
            chosen[s.name][c] = best
        for c in suite.curricula_of(s):  # an order arm trains with its base arm's tuned knobs
            if TUNED_AS.get(c) in chosen[s.name]:
                chosen[s.name][c] = chosen[s.name][TUNED_AS[c]]
    return chosen, cand


def report_jobs(suite: Suite, out: Path, chosen: dict) -> list[Job]:
    return [(s.config(c, seed, chosen[s.name][c]).to_dict(), str(out / s.name / f"{c}-s{seed}"))
            for s in suite.settings for c in suite.curricula_of(s) for seed in range(suite.seeds_of(s, c))]


def ablation_jobs(suite: Suite, out: Path, chosen: dict) -> list[Job]:
    from ..curricula import make_curriculum
    jobs = []
    for a in suite.ablations:
        s = suite.setting(a.setting)
        for c in a.curricula:
            uses_f = make_curriculum(ARMS.get(c, (c, {}))[0]).uses_diversity
            for variant, switch in a.variants.items():
                if "diversity" in switch and not uses_f:
                    continue  # the curriculum has no diversity term: the variant is the full recipe
                for seed in range(a.seeds or suite.seeds_of(s)):
                    cfg = s.config(c, seed, {**chosen[s.name].get(c, {}), **switch})
                    jobs.append((cfg.to_dict(), str(out / "ablation" / s.name / f"{c}-{variant}-s{seed}")))
    return jobs


def fidelity_jobs(suite: Suite, out: Path, chosen: dict) -> list[Job]:
    jobs = []
    for f in suite.fidelity:
        s = suite.setting(f.setting)
        logging = ({"log_every": "epoch", "log_estimators": ["exact"]} if f.protocol == "paper"
                   else {"log_estimators": ["paper", "byproduct"]})
        for variant, knobs in f.variants.items():
            for seed in f.seeds:
                cfg = s.config(f.curriculum, seed, {**chosen.get(s.name, {}).get(f.curriculum, {}), **knobs,
                                                    **logging})
                jobs.append((cfg.to_dict(), str(out / "fidelity" / s.name / f"{f.curriculum}-{variant}-s{seed}")))
    return jobs


CORE_ARMS = ("sgd", "random", "docl", "docl-none")  # the comparisons a study never cuts: trained first


def _order(job: Job) -> tuple:
    """Report runs of the core arms first (so an interrupted study has its main comparisons), then
    the other report runs, then ablation and fidelity runs; the longest first within each group."""
    where = Path(job[1])
    arm = arm_of(where.name)
    group = 2 if where.parent.parent.name in ("ablation", "fidelity") else (0 if arm in CORE_ARMS else 1)
    return group, -_cost(job)


def _cost(job: Job) -> float:
    """A rough relative cost, to start the longest runs first (better packing on few workers)."""
    cfg = job[0]
    size = {"mnist1d": 3.0, "digits": 1.5}.get(cfg["dataset"], 1.0)
    length = cfg["paper"]["epochs"] if cfg["protocol"] == "paper" else cfg["rounds"] * 1.5
    return size * length * (2.0 if cfg.get("log_every") == "epoch" else 1.0)


def _key(cfg: dict) -> tuple:
    return (cfg.get("dataset"), cfg.get("curriculum"), cfg.get("seed"), cfg.get("protocol"),
            cfg.get("label_noise"), (cfg.get("paper") or {}).get("epochs"), cfg.get("estimator"))


def reuse_runs(jobs: list[Job], source: Path) -> int:
    """Copy into place every job's run that `source` (another study's folder) already holds complete
    with the same config, so it is not trained again. → how many were copied."""
    from ..config import config_differences
    found: dict = {}
    for f in source.rglob("run.json"):
        try:
            meta = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("status") == "complete" and isinstance(meta.get("config"), dict):
            found.setdefault(_key(meta["config"]), []).append((f.parent, meta["config"]))
    copied = 0
    for cfg, run_dir in jobs:
        run_dir = Path(run_dir)
        if _same_config(run_dir, cfg):
            continue
        want = json.loads(json.dumps(cfg))
        for src, have in found.get(_key(want), []):
            if src.resolve() != run_dir.resolve() and not config_differences(have, want):
                shutil.rmtree(run_dir, ignore_errors=True)
                run_dir.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(src, run_dir)
                copied += 1
                break
    return copied


def remove_strays(folder: Path, wanted: set) -> None:
    """Drop run folders no longer in the suite (a curriculum, seed or variant removed)."""
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_dir() and p not in wanted and (p / "run.json").exists():
                shutil.rmtree(p)


def run_suite(suite: Suite, out: Path, n_workers: int, progress: bool, reuse_from: Optional[Path] = None,
              train: bool = True) -> dict:
    """Tune, then run everything else; runs that `reuse_from` holds with the same config are copied
    instead of trained. train=False trains nothing and removes nothing: the report is written from
    the runs already complete (a study still running, or one cut short), and `missing` lists the
    planned runs that are not. → {chosen, candidates, timing, missing}."""
    if reuse_from is not None and not Path(reuse_from).is_dir():
        raise ValueError(f"--reuse-from {reuse_from}: no such folder; give the folder of a finished study "
                         "(e.g. runs/study) or leave the option out")
    if set(suite.tuning_seeds) & set(range(max(suite.seeds_of(s) for s in suite.settings))):
        raise ValueError("tuning seeds overlap the report seeds: the report would be tuned on itself")
    out.mkdir(parents=True, exist_ok=True)
    started, t0 = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    tjobs, where = tuning_jobs(suite, out)
    reused = reuse_runs(tjobs, Path(reuse_from)) if reuse_from is not None else 0
    times = run_jobs(sorted(tjobs, key=_cost, reverse=True), n_workers, "tuning", progress) \
        if tjobs and train else {}
    chosen, cand = choose(suite, where)
    groups = {"report": report_jobs(suite, out, chosen), "ablation": ablation_jobs(suite, out, chosen),
              "fidelity": fidelity_jobs(suite, out, chosen)}
    jobs = sorted((j for g in groups.values() for j in g), key=_order)
    reused += reuse_runs(jobs, Path(reuse_from)) if reuse_from is not None else 0
    if train:
        times.update(run_jobs(jobs, n_workers, "runs", progress))
        wanted = {Path(d) for _, d in jobs}
        for s in suite.settings:
            remove_strays(out / s.name, wanted)
            remove_strays(out / "ablation" / s.name, wanted)
            remove_strays(out / "fidelity" / s.name, wanted)
    missing = [d for cfg, d in [*tjobs, *jobs] if not _same_config(Path(d), cfg)]
    executed = sum(1 for sec, _ in times.values() if sec > 0)
    timing = {"started": started, "invocation_s": time.perf_counter() - t0, "executed": executed,
              "reused_from": str(reuse_from) if reused else None, "reused": reused,
              "n_workers": n_workers, "load": load, "load_end": os.getloadavg()[0] if hasattr(os, "getloadavg")
              else float("nan")}
    saved = out / "study-timing.json"  # the invocation that trained the runs; kept for regenerations
    if executed:
        saved.write_text(json.dumps(timing))
    elif saved.exists():
        try:
            timing = {**json.loads(saved.read_text()), "regenerated": started}
        except ValueError:
            pass
    if not train and not saved.exists():
        timing = {**timing, "regenerated": started, "started": "(still running or cut short: no record)"}
    return {"chosen": chosen, "candidates": cand, "timing": timing, "missing": [str(m) for m in missing]}
