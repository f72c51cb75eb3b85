"""The comparison study: the quick suite regenerates a report of both protocols with an ablation
and a fidelity section; the statistics are right; tuning never touches the report seeds; and
every verdict of the reading flips with the numbers it is computed from."""
import math
import re

import numpy as np
import pandas as pd
import pytest

from docl_core import study
from docl_core.cli import main
from docl_core.store import ExperimentReader
from docl_core.study import reading, stats, tables
from docl_core.study.suites import Setting


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The quick suite through the CLI: blobs under both protocols, 2 seeds, tiny ablation and fidelity."""
    root = tmp_path_factory.mktemp("study")
    out, docs = root / "runs", root / "docs"
    assert main(["study", "--suite", "quick", "--out", str(out), "--docs", str(docs), "--no-progress"]) == 0
    return out, docs, (docs / "RESULTS-quick.md").read_text()


def test_report_has_both_protocols_ablation_and_fidelity(quick):
    out, docs, text = quick
    for heading in ("## At a glance (computed)", "## Paper protocol: final test accuracy",
                    "## Paired differences against SGD and against Random", "## Has SGD converged?",
                    "## Accuracy against epochs and against samples seen", "## Computation each curriculum used",
                    "## Ablations of the recipe", "## How far the byproduct is from the exact score",
                    "## Steps protocol (equal gradient steps)", "## Tuning (validation only, then frozen)",
                    "## How much the score itself matters", "## How hard the selected samples are",
                    "## How this was made"):
        assert heading in text, heading
    # both reports: the last epoch's student and the best epoch of max(student, teacher), with their verdicts
    assert "**Last epoch, student**" in text and "**Best epoch of max(student, teacher)**" in text
    assert re.search(r"\| blobs, 20% flipped \| − SGD \| best \| ", text)
    assert "Verdicts that differ between the two reports:" in text
    assert re.search(r"\| DoCL vs SGD, equal epochs, last epoch's student \| ", text)
    assert re.search(r"\| blobs, 20% flipped \| [+-]\d+\.\d\d \[.*\| \d+\.\d\d \| \d+\.\d\d \| \d+\.\d%", text)
    assert "CPU-hours" in text
    atlas = text.split("## Which known score DoCL's selection resembles")[1].split("\n## ")[0]
    assert re.search(r"\| blobs, 20% flipped \| [+-]\d\.\d\d \|.* \(\d+ of \d+; overlap \d\.\d\d vs \d\.\d\d by chance\) \|",
                     atlas)
    assert "authors' byproduct score" not in atlas.split("|---")[0]  # the driving score's ρ with itself is left out
    table = text.split("## Paper protocol: final test accuracy")[1].split("##")[0]
    rows = [ln for ln in table.splitlines() if re.match(r"\| (SGD|Random|DoCL) \|", ln)]
    assert len(rows) == 6 and all(re.search(r"\d+\.\d\d ± \d+\.\d\d", ln) for ln in rows)  # both reports
    # the numbers, not only the layout: the DoCL and SGD cells of both tables recomputed from the run
    # folders with plain pandas (the last epoch's student; the best epoch of max(student, teacher))
    last_t, best_t = table.split("**Best epoch of max(student, teacher)**")
    lasts = {}
    for arm, label in (("docl", "DoCL"), ("sgd", "SGD")):
        last, best = lasts.setdefault(arm, []), []
        for run in sorted((out / "blobs-noise20").glob(f"{arm}-s*")):
            r = pd.read_parquet(run / "rounds.parquet").sort_values("round")
            last.append(100 * r["test_acc"].iloc[-1])
            best.append(100 * np.fmax(r["test_acc"], r.get("teacher_test_acc", r["test_acc"])).max())
        for part, vals in ((last_t, last), (best_t, best)):
            row = next(ln for ln in part.splitlines() if ln.startswith(f"| {label} |"))
            cell = row.split("|")[2].strip().strip("*")
            assert cell.startswith(f"{np.mean(vals):.2f} ± {np.std(vals, ddof=1):.2f}"), (label, cell, vals)
    # the same comparison in the JSON beside the report (what Compare quotes): 2 seeds give no verdict
    import json
    doc = json.loads((docs / "RESULTS-quick.json").read_text())
    setting = next(st for st in doc["settings"] if st["name"] == "blobs-noise20")
    pair = next(p for p in setting["pairs"] if (p["a"], p["b"], p["report"]) == ("docl", "sgd", "last"))
    assert pair["mean"] == pytest.approx(np.mean(np.subtract(lasts["docl"], lasts["sgd"])))
    assert pair["n"] == 2 and pair["verdict"] == "too few seeds"
    # DoCL against both baselines, with an interval and wins out of 2
    assert re.search(r"\| − SGD \| .*[+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\] \(\d/2\)", text)
    assert re.search(r"\| − Random \| last \| ·", text)
    assert "| no-mixup |" in text and "median ρ" in text
    assert "python -m docl_core study --suite quick" in text and "Hardware:" in text


def test_runs_land_where_the_dashboard_opens_them(quick):
    out, docs, text = quick
    summary = ExperimentReader(out / "blobs-noise20").summary()
    assert sorted(summary["run"]) == ["docl-none-s0", "docl-none-s1", "docl-s0", "docl-s1", "random-s0",
                                      "random-s1", "sgd-s0", "sgd-s1"]
    assert (summary["status"] == "complete").all()
    runs = {r.dir.name: r.meta["config"] for r in ExperimentReader(out / "blobs-noise20").runs}
    assert runs["docl-none-s0"]["curriculum"] == "docl" and runs["docl-none-s0"]["estimator"] == "none"
    assert runs["docl-s0"]["estimator"] != "none"
    # the tables name an arm by its folder: DoCL without its score is not pooled with DoCL
    arms = tables.read_rounds(out / "blobs-noise20", arms=True)
    assert set(arms["curriculum"]) == {"sgd", "random", "docl", "docl-none"}
    final = ExperimentReader(out / "blobs-noise20-steps").rounds().sort_values("round").groupby("run").tail(1)
    assert final["steps"].nunique() == 1  # equal gradient steps across curricula under steps
    tuned = [p.name for p in (out / "tuning" / "blobs-noise20").iterdir()]
    assert tuned and all(name.endswith("-s100") for name in tuned)
    assert sorted(p.name for p in (out / "ablation" / "blobs-noise20").iterdir()) == [
        "docl-no-mixup-s0", "docl-no-mixup-s1", "random-no-mixup-s0", "random-no-mixup-s1"]
    fid = ExperimentReader(out / "fidelity" / "blobs-noise20").runs[0]
    assert fid.meta["config"]["log_every"] == "epoch"


def test_figures_are_pngs(quick):
    out, docs, text = quick
    names = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(names) >= 3
    for name in names:
        assert (docs / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_reuses_complete_runs(quick):
    out, docs, _ = quick
    before = {p: p.stat().st_mtime_ns for p in out.rglob("run.json")}
    assert main(["study", "--suite", "quick", "--out", str(out), "--docs", str(docs), "--no-progress"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("run.json")} == before


def test_budget_section_compares_the_same_data_at_several_epoch_budgets(tmp_path):
    from docl_core.study.report import write_report
    from docl_core.study.runner import run_suite
    from docl_core.study.suites import Suite
    suite = Suite("b", tuple(Setting(f"blobs-e{e}", f"blobs, 20% flipped, E = {e}", "blobs", label_noise=0.2,
                                     epochs=e) for e in (3, 5)),
                  curricula={"paper": ("sgd", "random", "docl")}, seeds=2, grids={})
    res = run_suite(suite, tmp_path / "runs", 1, False)
    text = write_report(suite, tmp_path / "runs", tmp_path, res["chosen"], res["candidates"], res["timing"],
                        "cmd").read_text()
    part = text.split("## Does the answer change with the budget?")[1].split("\n## ")[0]
    rows = [ln for ln in part.splitlines() if re.match(r"\| [35] \| ", ln)]
    assert len(rows) == 2 and all(ln.count("[") == 4 for ln in rows)  # four intervals per budget
    assert "- DoCL − SGD (last): E = 3: " in part and "E = 5: " in part
    assert re.search(r"!\[DoCL's difference against E\]\(study-b_budget_blobs\.png\)", part)


def test_report_only_trains_nothing_and_names_the_missing_runs(quick, tmp_path):
    import shutil
    out, _, _ = quick
    part = tmp_path / "runs"
    shutil.copytree(out, part)
    shutil.rmtree(part / "blobs-noise20" / "docl-s1")
    before = sorted(p.relative_to(part) for p in part.rglob("run.json"))
    assert main(["study", "--suite", "quick", "--out", str(part), "--docs", str(tmp_path), "--report-only",
                 "--no-progress"]) == 0
    assert sorted(p.relative_to(part) for p in part.rglob("run.json")) == before  # nothing trained or removed
    text = (tmp_path / "RESULTS-quick.md").read_text()
    assert "**Partial report**: 1 planned runs were not complete" in text and "blobs-noise20: docl ×1" in text
    assert "--report-only" in text
    assert re.search(r"\| DoCL \| \d+\.\d\d ± nan \(n=1\) \|", text) or "(n=1)" in text


def test_reuse_copies_complete_runs_with_the_same_config(quick, tmp_path):
    from docl_core.study import runner
    from docl_core.study.suites import SUITES
    suite = SUITES["quick"]
    chosen = {s.name: {c: {} for c in suite.curricula_of(s)} for s in suite.settings}
    jobs = runner.report_jobs(suite, tmp_path, chosen)
    out, _, _ = quick
    copied = runner.reuse_runs(jobs, out)
    # every default-knob job the quick study ran is copied (tuned knobs may differ for DoCL)
    assert copied >= len([j for j in jobs if "/docl-s" not in j[1] and "/docl-none" not in j[1]])
    assert (tmp_path / "blobs-noise20" / "sgd-s0" / "run.json").exists()
    assert runner.reuse_runs(jobs, out) == 0  # already in place: nothing copied twice
    with pytest.raises(ValueError, match="no such folder"):
        runner.run_suite(suite, tmp_path / "x", 1, False, reuse_from=tmp_path / "missing")


def test_arms_are_a_curriculum_with_switches_and_core_arms_run_first():
    from docl_core.study import runner
    s = Setting("x", "x", "blobs", label_noise=0.2, epochs=6)
    none, decay, docl = s.config("docl-none", 0), s.config("sgd-decay", 0), s.config("docl", 0)
    assert (none.curriculum, none.estimator, none.log_estimators) == ("docl", "none", [])
    assert docl.log_estimators == ["exact"] and docl.estimator != "none"
    assert (decay.curriculum, decay.schedule.baseline_alpha_decay) == ("sgd", True)
    assert s.config("sgd", 0).schedule.baseline_alpha_decay is False
    jobs = [({"dataset": "mnist1d", "protocol": "paper", "paper": {"epochs": 100}}, f"/o/{d}")
            for d in ("ablation/x/docl-no-mixup-s0", "x/spl-s0", "x/docl-none-s1", "x/sgd-s0")]
    assert [j[1] for j in sorted(jobs, key=runner._order)][:2] == ["/o/x/docl-none-s1", "/o/x/sgd-s0"]
    assert sorted(jobs, key=runner._order)[-1][1].endswith("docl-no-mixup-s0")


def test_a_setting_expresses_either_protocol():
    paper = Setting("x", "x", "blobs", label_noise=0.2, epochs=6, overrides={"mixup": False})
    cfg = paper.config("docl", 3, {"score_scale": 1.0, "diversity": "none", "k_start": 0.3})
    assert (cfg.protocol, cfg.schedule.epochs, cfg.schedule.mixup, cfg.schedule.score_scale) == ("paper", 6, False, 1.0)
    assert cfg.diversity == "none" and cfg.schedule.k_start == 0.3 and cfg.seed == 3
    steps = Setting("y", "y", "blobs", protocol="steps", rounds=4, overrides={"k_start": 0.3})
    cfg = steps.config("mcl", 0, {"lam_start": 0.1})
    assert (cfg.protocol, cfg.rounds, cfg.schedule.k_start, cfg.schedule.lam_start) == ("steps", 4, 0.3, 0.1)
    with pytest.raises(ValueError, match="unknown knob"):
        steps.config("docl", 0, {"mixup": False})
    with pytest.raises(ValueError, match="unknown knob"):
        paper.config("docl", 0, {"no_such_knob": 1})


def test_t_quantile_and_paired_ci_against_hand_computations():
    for df, t in [(1, 12.706), (4, 2.776), (9, 2.262), (30, 2.042)]:
        assert study.t_quantile_975(df) == pytest.approx(t, abs=2e-3)
    assert math.isnan(study.t_quantile_975(0))
    d = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    m, lo, hi, n = study.paired_ci(d)
    half = 2.776 * np.std(d, ddof=1) / math.sqrt(5)
    assert (m, n) == (3.0, 5) and lo == pytest.approx(3 - half, abs=1e-2) and hi == pytest.approx(3 + half, abs=1e-2)
    assert math.isnan(study.paired_ci(np.array([1.0]))[1])


def _result(diffs):
    m, lo, hi, n = stats.paired_ci(diffs)
    return {"mean": m, "low": lo, "high": hi, "n": n, "wins": int((np.asarray(diffs) > 0).sum()), "higher": True}


def test_comparison_sentences_flip_with_the_interval():
    assert reading.compare("DoCL", "SGD", _result([1.0, 1.2, 0.9, 1.1, 1.0])).startswith("DoCL beats SGD")
    assert reading.compare("DoCL", "SGD", _result([-1.0, -1.2, -0.9, -1.1, -1.0])).startswith("DoCL trails SGD")
    tie = reading.compare("DoCL", "SGD", _result([1.0, -1.0, 0.5, -0.6, 0.1]))
    assert tie.startswith("no clear difference") and "beats" not in tie and "trails" not in tie
    # lower-is-better metrics flip the direction
    assert stats.verdict(-2.0, -1.0, higher_is_better=False) == "beats"
    assert stats.verdict(float("nan"), 1.0) == "no clear difference"


def test_convergence_and_noise_sentences_flip():
    def curves(final_jump):
        rows = [{"seed": s, "epoch": e, "test_acc": 0.9 + (final_jump if e == 19 else 0) + 0.001 * s}
                for s in range(5) for e in range(20)]
        return pd.DataFrame(rows)
    flat, rising = stats.convergence(curves(0.001)), stats.convergence(curves(0.02))
    assert flat["converged"] and not rising["converged"]
    assert flat["gain"] == pytest.approx(0.1) and rising["gain"] == pytest.approx(2.0)
    assert "has converged" in reading.convergence("SGD", "x", flat)
    assert "**not** converged" in reading.convergence("SGD", "x", rising)
    # a mean below the threshold whose interval reaches above it is no verdict
    noisy = pd.DataFrame([{"seed": s, "epoch": e, "test_acc": 0.9 + ((0.02 if s % 2 else -0.015) if e == 19 else 0)}
                          for s in range(5) for e in range(20)])
    unclear = stats.convergence(noisy)
    assert unclear["gain"] < stats.CONVERGED_POINTS < unclear["high"] and unclear["state"] == "unclear"
    assert not unclear["converged"] and "cannot be told" in reading.convergence("SGD", "x", unclear)
    base = pd.Series([0.2] * 5)
    low = stats.share_vs_base(pd.Series([0.10, 0.12, 0.09, 0.11, 0.10]), base)
    high = stats.share_vs_base(pd.Series([0.30, 0.32, 0.29, 0.31, 0.30]), base)
    same = stats.share_vs_base(pd.Series([0.19, 0.21, 0.20, 0.22, 0.18]), base)
    assert "filters noisy labels" in reading.noisy_share("DoCL", low)
    assert "chases noisy labels" in reading.noisy_share("DoCL", high)
    assert "about their share" in reading.noisy_share("DoCL", same)


def test_relation_sentence_needs_a_significant_rank_correlation():
    x = np.arange(20.0)
    assert "higher" in reading.relation("lr", "ρ", reading.rank_correlation_test(x, 2 * x))
    assert "lower" in reading.relation("lr", "ρ", reading.rank_correlation_test(x, -x))
    noise = np.random.default_rng(0).permutation(20).astype(float)
    r = reading.rank_correlation_test(x, noise)
    assert r["significant"] == (abs(r["rho"]) > 0.444)  # t_{0.975,18} ↔ |ρ| > 0.444 at n = 20
    assert "no clear relation" in reading.relation("lr", "ρ", {"rho": 0.1, "n": 20, "significant": False})


def test_equal_steps_are_asserted():
    frame = pd.DataFrame({"run": ["a", "b"], "steps": [10, 11]})
    with pytest.raises(AssertionError, match="different numbers of gradient steps"):
        tables.check_equal_steps(frame, "x")


def test_bad_suite_and_seeds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown suite"):
        study.run_study("nope", tmp_path)
    with pytest.raises(ValueError, match="seeds must be"):
        study.run_study("quick", tmp_path, seeds=1)


def test_grid_points_put_the_default_first():
    pts = study.grid_points({"score_scale": [0.1, 1.0], "mod": [0.1, 1.0]})
    assert pts[0] == {"score_scale": 0.1, "mod": 0.1} and len(pts) == 4
    assert study.grid_points({}) == [{}]


def test_the_paper_suite_is_consistent():
    suite = study.SUITES["paper"]
    assert not set(suite.tuning_seeds) & set(range(suite.seeds))
    for s in suite.settings:
        for c in suite.curricula_of(s):
            for knobs in study.grid_points(suite.grids[s.protocol].get(c, {})):
                s.config(c, 0, knobs)  # every grid point is a valid config
    for a in suite.ablations:
        for v in a.variants.values():
            suite.setting(a.setting).config("docl", 0, v)
    assert {s.dataset for s in suite.by_protocol("paper")} == {"digits", "mnist1d"}
    assert {s.label_noise for s in suite.by_protocol("paper")} == {0.0, 0.2, 0.4}


def test_a_run_made_before_a_config_field_existed_is_reused(tmp_path):
    import json
    from docl_core.config import RunConfig
    from docl_core.study.runner import _same_config
    cfg = RunConfig(dataset="moons", curriculum="random", rounds=1).to_dict()
    old = {k: v for k, v in cfg.items() if k != "deterministic"}  # written by an older docl
    (tmp_path / "run.json").write_text(json.dumps({"status": "complete", "config": old}))
    assert _same_config(tmp_path, cfg)
    assert not _same_config(tmp_path, {**cfg, "label_noise": 0.2})
