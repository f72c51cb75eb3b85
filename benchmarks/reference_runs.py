"""Reference runs: record a fixed matrix of short runs, then check that a fresh run of each is identical.

    python benchmarks/reference_runs.py record runs/reference        # on the code to keep (e.g. before a refactor)
    python benchmarks/reference_runs.py compare runs/reference       # on the changed code: identical, run by run
    python benchmarks/reference_runs.py compare runs/reference --only paper-docl-digits,loop
    python benchmarks/reference_runs.py compare runs/reference --skip embedding,embedding_var_2d  # a known change
    python benchmarks/reference_runs.py record runs/reference --at f56f27d  # the code of a past commit

The matrix covers both protocols and every curriculum on digits, both protocols on MNIST-1D, the
paper protocol in each subset order, the score curriculum, DynamicsTracker in a plain loop (the
README's own-loop example), and torchrun with 2 CPU processes under both protocols. `compare`
retrains every entry into a scratch folder and compares rounds.parquet, every samples/ and
embedding/ parquet file and every kernel/ npz array with the recorded ones, column by column and
bit for bit (timing columns, *_time_s, excluded: they measure the machine). It prints one line per run and the first difference found, and exits 1
when any run differs. CPU only, one thread per run; a reference is valid on the same kind of
machine and library builds (record.json keeps the git revision and versions).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
PAPER = ["--protocol", "paper", "--epochs", "4", "--probe-size", "16"]
STEPS = ["--protocol", "steps", "--rounds", "3", "--probe-size", "16"]
CURRICULA = ("sgd", "random", "spl", "mcl", "docl-nr", "docl")


def matrix() -> dict[str, tuple[str, list[str]]]:
    """name → (kind, arguments): "run" (python -m docl_core run ARGS), "torchrun" (the same under
    torchrun with 2 processes) or "loop" (the README's own-loop example)."""
    m: dict[str, tuple[str, list[str]]] = {}
    for c in CURRICULA:
        m[f"steps-{c}-digits"] = ("run", [*STEPS, "--dataset", "digits", "--label-noise", "0.2", "--curriculum", c])
        m[f"paper-{c}-digits"] = ("run", [*PAPER, "--dataset", "digits", "--label-noise", "0.2", "--curriculum", c])
    for order in ("shuffle", "reversed"):
        m[f"paper-docl-digits-{order}"] = ("run", [*PAPER, "--dataset", "digits", "--label-noise", "0.2",
                                                   "--curriculum", "docl", "--order", order])
    m["paper-sgd-digits-draw"] = ("run", [*PAPER, "--dataset", "digits", "--label-noise", "0.2", "--curriculum", "sgd",
                                          "--order", "draw"])
    m["paper-score-el2n-digits"] = ("run", [*PAPER, "--dataset", "digits", "--label-noise", "0.2", "--curriculum",
                                            "score", "--score", "el2n", "--prefer", "easy", "--log-grad-norms"])
    m["steps-docl-mnist1d"] = ("run", [*STEPS, "--dataset", "mnist1d", "--label-noise", "0.2", "--curriculum", "docl",
                                       "--log-estimators", "byproduct,fast,paper"])
    m["paper-docl-mnist1d"] = ("run", [*PAPER, "--dataset", "mnist1d", "--label-noise", "0.2", "--curriculum", "docl",
                                       "--log-every", "epoch"])
    m["torchrun-steps-docl"] = ("torchrun", [*STEPS, "--dataset", "digits", "--curriculum", "docl"])
    m["torchrun-paper-docl"] = ("torchrun", [*PAPER, "--dataset", "digits", "--curriculum", "docl"])
    m["loop"] = ("loop", [])
    return m


CODE = REPO  # the tree whose docl_core trains (record --at REV: a worktree of REV)


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(CODE), "CUDA_VISIBLE_DEVICES": ""}


def train(name: str, kind: str, args: list[str], out: Path) -> float:
    """Train one entry into out/name with the code in CODE; → seconds."""
    t0 = time.perf_counter()
    common = [*args, "--out", str(out), "--name", name, "--device", "cpu", "--no-progress"]
    if kind == "run":
        cmd = [sys.executable, "-m", "docl_core", "run", *common]
    elif kind == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "docl_core", "run", *common]
    else:
        readme = (CODE / "README.md").read_text()
        block = readme.split("## Your own loop", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
        code = block.replace('"runs/my-loop/run-0"', repr(str(out / name)))
        cmd = [sys.executable, "-c", "import torch; torch.set_num_threads(1)\n" + code]
    p = subprocess.run(cmd, cwd=CODE, env=_env(), capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{name}: training failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return time.perf_counter() - t0


def _frames(run: Path) -> dict[str, pd.DataFrame]:
    """rounds.parquet, every samples/ and embedding/ parquet file, and every kernel/ npz array (one
    column per array, flattened), keyed by their path in the run."""
    out = {"rounds.parquet": pd.read_parquet(run / "rounds.parquet")}
    for sub in ("samples", "embedding"):
        for f in sorted((run / sub).glob("*.parquet")):
            out[f"{sub}/{f.name}"] = pd.read_parquet(f)
    for f in sorted((run / "kernel").glob("*.npz")):
        with np.load(f) as z:
            for name in z.files:
                out[f"kernel/{f.name}:{name}"] = pd.DataFrame({name: z[name].ravel()})
    return out


def first_difference(ref: Path, new: Path, skip: tuple[str, ...] = ()) -> str | None:
    """The first difference between two runs' frames (None: identical), timing columns excluded, and
    files under a folder named in `skip` (e.g. "embedding") and columns named in it left out."""
    a, b = _frames(ref), _frames(new)
    for frames in (a, b):
        for key in [k for k in frames if k.split("/")[0] in skip]:
            del frames[key]
        for key, f in frames.items():
            frames[key] = f.drop(columns=[c for c in f.columns if c in skip])
    if sorted(a) != sorted(b):
        return f"files differ: {sorted(set(a) ^ set(b))[:4]}"
    for key in a:
        fa, fb = a[key], b[key]
        ca = [c for c in fa.columns if not c.endswith("_time_s")]
        cb = [c for c in fb.columns if not c.endswith("_time_s")]
        if ca != cb:
            return f"{key}: columns differ: {sorted(set(ca) ^ set(cb))}"
        if len(fa) != len(fb):
            return f"{key}: {len(fa)} rows against {len(fb)}"
        for c in ca:
            x, y = fa[c].to_numpy(), fb[c].to_numpy()
            same = np.array_equal(x, y, equal_nan=True) if x.dtype.kind == "f" else np.array_equal(x, y)
            if not same:
                i = int(np.flatnonzero(~((x == y) | (pd.isna(x) & pd.isna(y))))[0]) if len(x) else 0
                return f"{key}: column {c} first differs at row {i}: {x[i]!r} against {y[i]!r}"
    return None


def _versions() -> dict:
    import torch
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=CODE, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "docl_core"], cwd=CODE, capture_output=True,
                                text=True).stdout.strip())
    return {"git": rev + ("+uncommitted" if dirty else ""), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "machine": platform.processor() or platform.machine()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("record", "compare"))
    ap.add_argument("folder", help="where the reference runs are (record: written; compare: read)")
    ap.add_argument("--only", default=None, help="comma list of entries (default: the whole matrix)")
    ap.add_argument("--skip", default="", help="compare: comma list of run folders (samples, embedding, kernel) "
                    "and columns left out, for a change known to touch only them (say which in the commit)")
    ap.add_argument("--at", default=None, metavar="REV", help="record: train with the code of this git revision "
                    "(a temporary worktree) instead of the working tree")
    a = ap.parse_args()
    global CODE
    if a.at:
        if a.action != "record":
            raise SystemExit("--at applies to record: compare always trains the working tree")
        tmp = Path(tempfile.mkdtemp(prefix="docl-ref-"))
        subprocess.run(["git", "worktree", "add", "--detach", str(tmp / "tree"), a.at], cwd=REPO, check=True,
                       capture_output=True)
        CODE = tmp / "tree"
        try:
            return _main(a)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(CODE)], cwd=REPO, capture_output=True)
            shutil.rmtree(tmp, ignore_errors=True)
    return _main(a)


def _main(a: argparse.Namespace) -> int:
    m = matrix()
    names = a.only.split(",") if a.only else list(m)
    unknown = [n for n in names if n not in m]
    if unknown:
        raise SystemExit(f"unknown entries {unknown}: choose from {', '.join(m)}")
    folder = Path(a.folder)
    print(f"reference_runs {a.action}: {len(names)} runs; {_versions()}")
    if a.action == "record":
        if folder.exists() and not a.only:
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for n in names:
            shutil.rmtree(folder / n, ignore_errors=True)
            print(f"  {n:28s} recorded in {train(n, *m[n], folder):5.1f} s", flush=True)
        (folder / "record.json").write_text(json.dumps({**_versions(), "entries": names}, indent=1))
        return 0
    rec = json.loads((folder / "record.json").read_text()) if (folder / "record.json").exists() else {}
    print(f"recorded at {rec.get('git', '?')} with torch {rec.get('torch', '?')}, numpy {rec.get('numpy', '?')}")
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            if not (folder / n / "rounds.parquet").exists():
                print(f"  {n:28s} MISSING from the reference: record it first")
                bad += 1
                continue
            secs = train(n, *m[n], Path(tmp))
            diff = first_difference(folder / n, Path(tmp) / n, tuple(x for x in a.skip.split(",") if x))
            bad += diff is not None
            print(f"  {n:28s} {'identical' if diff is None else 'DIFFERENT: ' + diff} ({secs:.1f} s)", flush=True)
    print(f"{len(names) - bad} of {len(names)} identical" + (f" (left out: {a.skip})" if a.skip else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
