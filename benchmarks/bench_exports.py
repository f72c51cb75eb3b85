"""What the exports cost on a real run: the dashboard's downloads and `docl export` (issue 33).

    python benchmarks/bench_exports.py RUN [RUN ...] [--trials 3]

For each run folder it prints, medians over --trials:

- the Scores page's two downloads, built in this process as the page builds them on click: the
  whole run as N × T arrays (`export.run_npz_bytes`) and one round's table as CSV
  (`export.round_table(...).to_csv()`, the last round): seconds, megabytes, and this process's
  peak RSS after them (it includes reading the run);
- `python -m docl_core export RUN OUT --to npz|parquet|csv` in a child process under
  `/usr/bin/time -v`: wall seconds, the child's peak RSS, bytes and files written.

Timings on a shared machine swing with other jobs' load: the load average is printed beside them.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_large import load, med, time_v_figures  # noqa: E402
from docl_core import export  # noqa: E402
from docl_core.envinfo import cpu_model  # noqa: E402
from docl_core.store import RunReader  # noqa: E402

FORMATS = ("npz", "parquet", "csv")


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


def _downloads(run: RunReader, trials: int) -> None:
    t_last = run.last_complete_round
    for label, build in (("whole run (npz)", lambda: export.run_npz_bytes(run)),
                         (f"round {t_last} (csv)", lambda: export.round_table(run, t_last).to_csv(index=False).encode())):
        secs, size = [], 0
        for _ in range(trials):
            t0 = time.perf_counter()
            size = len(build())
            secs.append(time.perf_counter() - t0)
        print(f"  dashboard download, {label:<18} {med(secs):6.2f} s  {size / 1e6:7.1f} MB   "
              f"(this process's peak RSS so far {_peak_gb():.2f} GB; load {load()})")


def _cli(run_dir: Path, fmt: str, trials: int) -> None:
    secs, peaks, size, files = [], [], 0, 0
    for _ in range(trials):
        tmp = Path(tempfile.mkdtemp(prefix="docl-bench-export-"))
        try:
            p = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "docl_core", "export", str(run_dir),
                                str(tmp / "out"), "--to", fmt], capture_output=True, text=True, cwd=REPO)
            if p.returncode != 0:
                raise SystemExit(f"docl export --to {fmt} failed ({p.returncode}):\n{p.stderr[-1500:]}")
            figures = time_v_figures(p.stderr)
            secs.append(figures["wall_s"])
            peaks.append(figures["peak_gb"])
            written = [f for f in (tmp / "out").rglob("*") if f.is_file()]
            size, files = sum(f.stat().st_size for f in written), len(written)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"  docl export --to {fmt:<8} {med(secs):6.2f} s  {size / 1e6:7.1f} MB in {files} files, "
          f"peak RSS {med(peaks):.2f} GB (load {load()})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (each with run.json)")
    ap.add_argument("--trials", type=int, default=1, help="repeats per measurement (medians)")
    a = ap.parse_args(argv)
    if not Path("/usr/bin/time").exists():
        raise SystemExit("/usr/bin/time is missing (apt-get install -y time): it measures the children's peak RSS")
    import numpy as np
    import pandas as pd
    import pyarrow
    print("docl bench_exports: the dashboard's downloads and docl export on real runs")
    print(f"hardware : {cpu_model()}; {os.cpu_count()} logical CPUs; {platform.platform()}")
    print(f"versions : python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
          f"pyarrow {pyarrow.__version__}; trials {a.trials} (medians)")
    for run_dir in a.runs:
        run = RunReader(run_dir)
        n = int((run.dataset(thumbnails=False)["split"] == "train").sum())
        print(f"\n=== {run_dir}: N = {n:,} training samples, {run.last_complete_round + 1} rounds")
        _downloads(run, a.trials)
        for fmt in FORMATS:
            _cli(run_dir, fmt, a.trials)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
