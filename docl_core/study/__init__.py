"""The comparison study: the seed's Table 1 on data that fits on a laptop, told honestly.

    python -m docl_core study --suite paper --out runs/study --jobs 2   # docs/RESULTS.md + docs/study_*.png
    python -m docl_core study --suite budget --out runs/study-budget --reuse-from runs/study --jobs 2
                                                                        # docs/RESULTS-budget.md: E = 30, 100, 300
    python -m docl_core study --suite quick --out runs/quick            # a small report, minutes

    suites.py   what runs, as data: Setting (either protocol), grids, ablations, fidelity runs
    runner.py   tuning on validation (tuning seeds), then report/ablation/fidelity runs in processes
    stats.py    paired t-intervals, verdicts, SGD's convergence check
    reading.py  sentences from those numbers (nothing hand-written about results)
    figures.py  plotly figures exported as PNG
    report.py   reads the run folders and writes RESULTS.md
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .report import DOCS_DIR, write_report
from .runner import run_suite
from .stats import convergence, paired_ci, t_quantile_975, verdict
from .suites import SUITES, Ablation, FidelityRun, Setting, Suite, grid_points, knob_tag, with_seeds

__all__ = ["run_study", "SUITES", "Setting", "Suite", "Ablation", "FidelityRun", "paired_ci", "t_quantile_975",
           "verdict", "convergence", "grid_points", "knob_tag", "write_report", "DOCS_DIR"]


def run_study(suite_name: str, out: Path, seeds: Optional[int] = None, n_workers: int = 1,
              docs: Path = DOCS_DIR, progress: bool = True, command: Optional[str] = None,
              reuse_from: Optional[Path] = None, train: bool = True) -> Path:
    """Tune, run, and write the report from the run folders. → the RESULTS.md path."""
    if suite_name not in SUITES:
        raise ValueError(f"unknown suite {suite_name!r}: choose one of {', '.join(SUITES)}")
    suite = with_seeds(SUITES[suite_name], seeds)
    out, docs = Path(out), Path(docs)
    docs.mkdir(parents=True, exist_ok=True)
    res = run_suite(suite, out, n_workers, progress, reuse_from=reuse_from, train=train)
    cmd = command or (f"python -m docl_core study --suite {suite.name} --out {out}"
                      + (f" --seeds {seeds}" if seeds else "") + f" --jobs {n_workers}"
                      + (f" --reuse-from {reuse_from}" if reuse_from else "") + ("" if train else " --report-only"))
    return write_report(suite, out, docs, res["chosen"], res["candidates"], res["timing"], cmd,
                        missing=res["missing"], out_root=out)
