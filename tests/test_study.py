"""The comparison study: the quick suite regenerates a report with the right structure, the
statistics are right, and tuning never touches the report seeds."""
import math
import re

import numpy as np
import pandas as pd
import pytest

from docl_core import study
from docl_core.cli import main
from docl_core.store import ExperimentReader


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """2 curricula × 2 seeds × 1 setting × 2 rounds, through the CLI."""
    root = tmp_path_factory.mktemp("study")
    out, docs = root / "runs", root / "docs"
    assert main(["study", "--suite", "quick", "--out", str(out), "--docs", str(docs), "--no-progress"]) == 0
    return out, docs, (docs / "RESULTS-quick.md").read_text()


def test_report_has_the_table_differences_and_tuning(quick):
    out, docs, text = quick
    suite = study.SUITES["quick"]
    s = suite.settings[0]
    for heading in ("## Table 1, small scale", "## Paired differences: DoCL − X", "## Reading",
                    "## Tuning (validation only, then frozen)", "## How this was made",
                    "## Comparison with the seed's Table 1"):
        assert heading in text
    # one row per curriculum, a mean ± std cell in the setting's column, one bold best
    table = text.split("## Table 1, small scale")[1].split("##")[0]
    rows = [ln for ln in table.splitlines() if ln.startswith("| Random") or ln.startswith("| DoCL")]
    assert len(rows) == 2
    for ln in rows:
        assert re.search(r"\d+\.\d\d ± \d+\.\d\d", ln)
    assert table.count("**") == 2
    assert s.title in table
    # the paired difference DoCL − Random with an interval [low, high] and wins out of 2
    assert re.search(r"\| blobs, 20% flipped \| \*{0,2}[+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\], wins \d/2", text)
    # the chosen values are written down, and the exact command
    assert "λ₀ = 1, τ = " in text
    assert "python -m docl_core study --suite quick" in text
    assert "Hardware:" in text and "torch" in text


def test_runs_land_where_the_dashboard_opens_them(quick):
    out, docs, text = quick
    exp = ExperimentReader(out / "blobs-noise20")
    summary = exp.summary()
    assert sorted(summary["run"]) == ["docl-s0", "docl-s1", "random-s0", "random-s1"]
    assert (summary["status"] == "complete").all()
    final = exp.rounds().sort_values("round").groupby("run").tail(1)
    assert final["steps"].nunique() == 1  # equal gradient steps across curricula
    # tuning ran on its own seed, in its own folder, never on a report seed
    tuned = [p.name for p in (out / "tuning" / "blobs-noise20").iterdir()]
    assert tuned and all(name.endswith("-s100") for name in tuned)


def test_figures_are_pngs(quick):
    out, docs, text = quick
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (docs / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_reuses_complete_runs(quick, capsys):
    out, docs, _ = quick
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/*/run.json")}
    assert main(["study", "--suite", "quick", "--out", str(out), "--docs", str(docs), "--no-progress"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/run.json")} == before


def test_t_quantile_table_matches_known_values():
    for df, t in [(1, 12.706), (4, 2.776), (9, 2.262), (30, 2.042)]:
        assert study.t_quantile_975(df) == pytest.approx(t, abs=2e-3)
        assert study._T975[df - 1] == pytest.approx(t, abs=1e-9)
    assert study.t_quantile_975(200) == pytest.approx(1.972, abs=2e-3)
    assert math.isnan(study.t_quantile_975(0))


def test_paired_ci_against_a_hand_computation():
    d = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    m, lo, hi, n = study.paired_ci(d)
    half = 2.776 * np.std(d, ddof=1) / math.sqrt(5)
    assert (m, n) == (3.0, 5)
    assert lo == pytest.approx(3 - half, abs=1e-2) and hi == pytest.approx(3 + half, abs=1e-2)
    assert math.isnan(study.paired_ci(np.array([1.0]))[1])


def test_equal_steps_are_asserted():
    frame = pd.DataFrame({"run": ["a", "b"], "steps": [10, 11]})
    with pytest.raises(AssertionError, match="different numbers of gradient steps"):
        study.check_equal_steps({"x": {"final": frame}})


def test_bad_suite_and_seeds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown suite"):
        study.run_study("nope", tmp_path)
    with pytest.raises(ValueError, match="seeds must be"):
        study.run_study("quick", tmp_path, seeds=1)


def test_grid_points_put_the_default_first():
    pts = study.grid_points({"lam_start": [1.0, 0.1], "temperature": [0.5, 2.0]})
    assert pts[0] == {"lam_start": 1.0, "temperature": 0.5} and len(pts) == 4
    assert study.grid_points({}) == [{}]
