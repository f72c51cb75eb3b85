"""docl_core/stats.py: ranks, Spearman and t-intervals against scipy on fresh random inputs, and
the same verdict from the study, the dashboard's Compare and `docl summary` on the same runs."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from docl_core import stats, views
from docl_core.store import ExperimentReader, RunWriter
from docl_core.study import reading, tables
from docl_core.study.report import _cell
from docl_core.summary import final_table, paired_table


def test_average_ranks_and_spearman_against_scipy_with_ties_and_nan():
    rng = np.random.default_rng()
    for _ in range(30):
        n = int(rng.integers(3, 60))
        a = rng.integers(0, 6, n).astype(float)            # few distinct values: many ties
        b = a + rng.normal(size=n) * rng.uniform(0, 3)
        a[rng.random(n) < 0.15] = np.nan
        b[rng.random(n) < 0.1] = np.inf
        ok = np.isfinite(a) & np.isfinite(b)
        fin = np.isfinite(a)
        np.testing.assert_allclose(stats.average_ranks(a)[fin], sp.rankdata(a[fin]))
        assert np.isnan(stats.average_ranks(a)[~fin]).all()
        if ok.sum() >= 3 and np.ptp(a[ok]) > 0 and np.ptp(b[ok]) > 0:
            assert stats.spearman(a, b) == pytest.approx(sp.spearmanr(a[ok], b[ok]).statistic, abs=1e-12)
    assert math.isnan(stats.spearman([1.0, 2.0], [2.0, 1.0]))          # two points: always ±1, no evidence
    assert math.isnan(stats.spearman([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]))   # constant: no ranking
    assert stats.spearman([1.0, 2.0, np.nan, 3.0], [3.0, 2.0, 5.0, 1.0]) == pytest.approx(-1.0)


def test_rank_correlation_test_against_scipy():
    rng = np.random.default_rng()
    for n in (4, 7, 30, 200):
        x = rng.normal(size=n)
        y = 0.3 * x + rng.normal(size=n)
        r = stats.rank_correlation_test(x, y)
        ref = sp.spearmanr(x, y)
        assert r["rho"] == pytest.approx(ref.statistic, abs=1e-12) and r["n"] == n
        assert r["significant"] == (ref.pvalue < 0.05)
    assert stats.rank_correlation_test([1, 2, 3], [1, 2, 3])["significant"] is False   # below 4 pairs


def test_t_quantile_and_paired_interval_against_scipy():
    for df in (1, 2, 3, 4, 9, 29, 30, 31, 100, 2.5, 1e4):
        for p in (0.5, 0.6, 0.9, 0.975, 0.995, 0.9995, 0.025):
            assert stats.t_quantile(p, df) == pytest.approx(float(sp.t.ppf(p, df)), rel=1e-9, abs=1e-12)
    assert math.isnan(stats.t_quantile_975(0))
    with pytest.raises(ValueError):
        stats.t_quantile(1.0, 3)
    rng = np.random.default_rng()
    for n in (2, 3, 5, 10):
        d = rng.normal(0.5, 1.0, n)
        m, lo, hi, k = stats.paired_ci(d)
        elo, ehi = sp.t.interval(0.95, n - 1, loc=d.mean(), scale=sp.sem(d))
        assert (k, m) == (n, pytest.approx(d.mean())) and lo == pytest.approx(elo) and hi == pytest.approx(ehi)
    m, lo, hi, k = stats.paired_ci([1.0, np.nan])
    assert (m, k) == (1.0, 1) and math.isnan(lo) and math.isnan(hi)


def test_verdict_rule():
    assert stats.verdict(0.1, 2.0, n=3) == "beats"
    assert stats.verdict(-2.0, -0.1, n=3) == "trails"
    assert stats.verdict(-2.0, -0.1, higher_is_better=False, n=3) == "beats"
    assert stats.verdict(-1.0, 2.0, n=10) == "no clear difference"
    assert stats.verdict(0.0, 2.0, n=10) == "no clear difference"      # an interval touching 0 holds it
    assert stats.verdict(0.1, 2.0, n=2) == "too few seeds"
    assert stats.verdict(float("nan"), float("nan")) == "no clear difference"
    assert set(stats.VERDICTS) == {"beats", "trails", "no clear difference", "too few seeds"}


def _experiment(root, diffs, base=0.80):
    """sgd and docl runs, one per seed; docl's last test accuracy = sgd's + diffs[seed] (fractions)."""
    for seed, d in enumerate(diffs):
        for arm, acc in (("sgd", base + 0.01 * seed), ("docl", base + 0.01 * seed + d)):
            w = RunWriter(root / f"{arm}-s{seed}")
            w.start({"name": f"{arm}-s{seed}", "config": {"curriculum": arm, "seed": seed}})
            for t, a in enumerate((0.5, acc)):
                w.write_round(t, {"test_acc": a, "val_acc": a}, pd.DataFrame({"sample_id": [0], "loss": [0.0]}))
            w.finish()
    return root


@pytest.mark.parametrize("diffs, expected", [
    ((0.030, 0.040), "too few seeds"),                      # 2 seeds: an interval, no verdict
    ((0.030, 0.040, 0.050), "beats"),
    ((0.030, 0.040, 0.050, 0.035, 0.045), "beats"),
    ((0.020, -0.015, 0.010, -0.010, 0.005), "no clear difference"),
    ((-0.030, -0.040, -0.050), "trails"),
])
def test_study_dashboard_and_summary_give_the_same_verdict(tmp_path, diffs, expected):
    exp = _experiment(tmp_path / "exp", diffs)
    d = np.asarray(diffs) * 100
    m, lo, hi, n = stats.paired_ci(d)                       # the hand reference, in points
    # the study: its tables and its words
    study = tables.pairs(tables.finals(tables.read_rounds(exp, arms=True)), [("docl", "sgd")], "test_acc", 100.0)
    r = study[("docl", "sgd")]
    assert r["verdict"] == expected and r["n"] == len(d)
    assert (r["mean"], r["low"], r["high"]) == (pytest.approx(m), pytest.approx(lo, nan_ok=True),
                                                 pytest.approx(hi, nan_ok=True))
    sentence = reading.compare("DoCL", "SGD", r)
    assert {"beats": "DoCL beats SGD", "trails": "DoCL trails SGD", "no clear difference": "no clear difference",
            "too few seeds": "DoCL against SGD"}[expected] in sentence
    assert ("too few seeds" in sentence) == (expected == "too few seeds")
    assert _cell(r).startswith("**") == (expected == "beats")
    # the dashboard's Compare
    dash = views.paired_differences(ExperimentReader(exp).rounds(), "test_acc", "sgd", final=True).iloc[0]
    assert dash["verdict"] == expected and int(dash["seeds"]) == len(d)
    assert 100 * dash["mean"] == pytest.approx(m)
    if len(d) >= 2:
        assert (100 * dash["lo"], 100 * dash["hi"]) == (pytest.approx(lo), pytest.approx(hi))
    # docl summary
    summ = paired_table(final_table(exp), ["sgd"]).set_index(["report", "arm"]).loc[("last", "docl")]
    assert summ["verdict"] == expected and int(summ["n"]) == len(d)
    assert (summ["mean"], summ["low"], summ["high"]) == (pytest.approx(m), pytest.approx(lo, nan_ok=True),
                                                         pytest.approx(hi, nan_ok=True))


def test_compare_quotes_the_studys_answer_to_the_same_question(tmp_path):
    """views.study_answer picks the study's setting with the experiment's dataset, noise and protocol
    (the main report first) from RESULTS*.json; study_sentence quotes its DoCL pairs with intervals."""
    import json
    pair = {"a": "docl", "b": "sgd", "report": "last", "mean": 0.21, "low": -0.4, "high": 0.82, "n": 5, "wins": 3,
            "verdict": "no clear difference"}
    setting = {"name": "digits-noise20", "title": "digits, 20% flipped", "dataset": "digits", "label_noise": 0.2,
               "protocol": "paper", "epochs": 100, "seeds": {"docl": 5, "sgd": 5}, "unit": "points", "pairs": [pair]}
    (tmp_path / "RESULTS.json").write_text(json.dumps({"report": "RESULTS.md", "settings": [setting]}))
    other = {**setting, "seeds": {"docl": 10}, "pairs": [{**pair, "mean": 9.0}]}
    (tmp_path / "RESULTS-order.json").write_text(json.dumps({"report": "RESULTS-order.md", "settings": [other]}))
    (tmp_path / "RESULTS-broken.json").write_text("{")
    ans = views.study_answer("digits", 0.2, "paper", docs=tmp_path)
    assert ans["report"] == "RESULTS.md" and ans["setting"]["pairs"][0]["mean"] == 0.21
    assert views.study_answer("digits", 0.0, "paper", docs=tmp_path) is None
    assert views.study_answer("digits", 0.2, "steps", docs=tmp_path) is None
    text = views.study_sentence(ans, {"docl": "DoCL", "sgd": "SGD"}.get, 16, 3)
    assert text.startswith("This experiment: 16 epochs, 3 seeds. The study asks the same question at 100 epochs "
                           "over 5 seeds (docs/RESULTS.md, digits, 20% flipped")
    assert "DoCL − SGD = +0.21 [-0.40, +0.82] points, no clear difference" in text
