"""Selection on a real run's rounds: this checkout's maximisers against a git revision's, back to back.

    python benchmarks/bench_rounds.py --baseline f741cfc [--dataset mnist1d] [--trials 3] [--threads 2]

Trains one DoCL-NR run under the `steps` protocol of `bench_training.py --end-to-end` (30 rounds of
3 epochs over S_t, k 0.2 ×1.1 → 0.9, exact scores) and records, every round, what the curricula
select from: losses, scores, penultimate features, k_t, λ_t, the generator. Then, for every round,
it times the three facility-location selections of that run's curricula on those inputs:
  mcl      max (1/k) Σ ℓ̃ + λ F̄ over all N, stochastic greedy (ε = 0.01)
  docl     pool of 2k drawn by the scores, then the same objective inside it, stochastic greedy
  docl-nr  the same objective over all N, lazy greedy
with this checkout's `docl_core.selection` and with the one at `--baseline` (loaded from git into
its own module), alternating old/new inside every trial so load drifts hit both alike. Prints
per-curriculum totals over the 30 rounds (median over trials of wall-clock and process CPU time),
the ratio old/new, whether both picked the same indices, the largest relative gap between their
objectives J, and, for the stochastic curricula, the worst round's J against lazy greedy's (exact
greedy) on the same inputs. No asserts.
On a shared machine trust the CPU-time column and the ratios, not absolute seconds.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))                                              # this checkout's docl_core first

import torch

from docl_core import curricula
from docl_core import selection as sel
from docl_core.config import RunConfig, Schedule
from docl_core.envinfo import cpu_model, versions
from docl_core.trainer import train_run


def load_revision(rev: str):
    """docl_core/selection.py as of git revision `rev`, imported as its own module."""
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:docl_core/selection.py"],
                          check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="docl-rev-")) / "selection_baseline.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("selection_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def record_rounds(dataset: str) -> list[dict]:
    """One DoCL-NR run; every round's selection inputs, copied as the curriculum saw them."""
    rounds = []
    real = curricula.Curriculum.select

    def spy(self, state):
        rounds.append({"t": state.t, "k": state.k, "lam": state.lam, "temperature": state.temperature,
                       "pool_factor": state.pool_factor, "loss": state.loss.clone(),
                       "score": state.score.clone(), "features": state.features.clone(),
                       "generator": state.generator.get_state()})
        return real(self, state)

    curricula.Curriculum.select = spy
    try:
        with tempfile.TemporaryDirectory() as tmp:
            train_run(RunConfig(dataset=dataset, curriculum="docl-nr", model="mlp", rounds=30, seed=0,
                                probe_size=0, log_estimators=[], device="cpu",
                                schedule=Schedule(k_start=0.2, k_growth=1.1, k_cap=0.9, epochs_per_round=3)),
                      Path(tmp) / "run")
    finally:
        curricula.Curriculum.select = real
    return rounds


def selection_inputs(r: dict, name: str):
    """(weights, features, k, λ, method, generator) as curriculum `name` would pass them."""
    g = torch.Generator()
    g.set_state(r["generator"])
    if name == "docl":
        n = r["score"].shape[0]
        m = min(n, max(r["k"], math.ceil(r["pool_factor"] * r["k"])))
        pool = sel.weighted_sample(sel.standardize(r["score"]), m, g, r["temperature"])
        return r["score"][pool], r["features"][pool], r["k"], r["lam"], "stochastic", g
    weights = r["loss"] if name == "mcl" else r["score"]
    return weights, r["features"], r["k"], r["lam"], "stochastic" if name == "mcl" else "lazy", g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="git revision whose selection.py is the baseline")
    ap.add_argument("--dataset", default="mnist1d")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    old = load_revision(a.baseline)
    rounds = record_rounds(a.dataset)
    names = ("mcl", "docl", "docl-nr")
    wall = {(c, v): [0.0] * a.trials for c in names for v in ("old", "new")}
    cpu = {(c, v): [0.0] * a.trials for c in names for v in ("old", "new")}
    same = {c: 0 for c in names}
    gap = {c: [] for c in names}
    vs_lazy = {c: [] for c in names}
    for trial in range(a.trials):
        for r in rounds:
            for c in names:
                picks = {}
                order = (("old", old), ("new", sel)) if (trial + r["t"]) % 2 else (("new", sel), ("old", old))
                for v, mod in order:
                    w, f, k, lam, method, g = selection_inputs(r, c)
                    t0, c0 = time.perf_counter(), time.process_time()
                    picks[v] = mod.maximize_facility(w, f, k, lam, method, g)
                    wall[c, v][trial] += time.perf_counter() - t0
                    cpu[c, v][trial] += time.process_time() - c0
                if trial == 0:
                    same[c] += picks["old"].tolist() == picks["new"].tolist()
                    j_old = sel.objective(w.double(), f.double(), picks["old"], lam)
                    j_new = sel.objective(w.double(), f.double(), picks["new"], lam)
                    gap[c].append((j_new - j_old) / j_old)
                    if method == "stochastic":                           # quality against exact greedy
                        j_lazy = sel.objective(w.double(), f.double(), sel.lazy_greedy(w, f, k, lam), lam)
                        vs_lazy[c].append((j_new - j_lazy) / j_lazy)
    med = {key: (statistics.median(wall[key]), statistics.median(cpu[key])) for key in wall}
    v = versions()
    n = rounds[0]["features"].shape[0]
    print(f"hardware: {cpu_model()}, {torch.get_num_threads()} torch threads; python {v['python']}, "
          f"torch {v['torch']}, numpy {v['numpy']}")
    print(f"{a.dataset}: one DoCL-NR run's {len(rounds)} rounds (N = {n}, k {rounds[0]['k']} → {rounds[-1]['k']}); "
          f"baseline {a.baseline}; {a.trials} trials, old/new alternating; median seconds summed over the rounds")
    print(f"{'curriculum':10s} {'old wall':>9s} {'new wall':>9s} {'old cpu':>9s} {'new cpu':>9s} "
          f"{'old/new cpu':>12s} {'same picks':>11s} {'J gap new-old':>14s} {'J vs lazy, worst':>17s}")
    for c in names:
        (ow, oc), (nw, nc) = med[c, "old"], med[c, "new"]
        worst = max(gap[c], key=abs)                                      # J relative gap, largest |.|
        print(f"{c:10s} {ow:9.2f} {nw:9.2f} {oc:9.2f} {nc:9.2f} {oc / nc:12.2f} "
              f"{same[c]:>6d}/{len(rounds):<4d} {worst:+14.2e} "
              + (f"{min(vs_lazy[c]):+17.2e}" if vs_lazy[c] else f"{'(is lazy)':>17s}"))


if __name__ == "__main__":
    main()
