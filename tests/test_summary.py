"""`docl summary`: both reports of a run's accuracy and seed-paired intervals, against hand arithmetic."""
import math

import pandas as pd
import pytest

from docl_core.cli import main
from docl_core.store import RunReader, RunWriter
from docl_core.summary import final_table, paired_table


def _run(exp, arm, seed, student, teacher=None):
    w = RunWriter(exp / f"{arm}-s{seed}")
    w.start({"name": f"{arm}-s{seed}", "config": {"curriculum": arm if arm != "none" else "docl", "seed": seed}})
    for t, acc in enumerate(student):
        row = {"test_acc": acc, "val_acc": acc}
        if teacher is not None:
            row["teacher_test_acc"] = teacher[t]
        w.write_round(t, row, pd.DataFrame({"sample_id": [0], "loss": [0.0]}))
    w.finish()


@pytest.fixture
def experiment(tmp_path):
    exp = tmp_path / "exp"
    # sgd: last student 0.90/0.91/0.92; the teacher peaks at 0.95 in seed 0's round 1
    _run(exp, "sgd", 0, [0.80, 0.93, 0.90], [0.70, 0.95, 0.89])
    _run(exp, "sgd", 1, [0.80, 0.90, 0.91], [0.70, 0.88, 0.90])
    _run(exp, "sgd", 2, [0.80, 0.90, 0.92], [0.70, 0.88, 0.91])
    # docl: 3, 4 and 5 points above sgd on the last student
    _run(exp, "docl", 0, [0.50, 0.60, 0.93], [0.50, 0.60, 0.92])
    _run(exp, "docl", 1, [0.50, 0.60, 0.95], [0.50, 0.60, 0.94])
    _run(exp, "docl", 2, [0.50, 0.60, 0.97], [0.50, 0.60, 0.96])
    _run(exp, "none", 0, [0.90], None)                         # no teacher: best = best student
    return exp


def test_last_student_and_best_of_both_by_hand(experiment):
    r = RunReader(experiment / "sgd-s0")
    assert r.final_accuracy("last") == pytest.approx(0.90)
    assert r.final_accuracy("best") == pytest.approx(0.95)     # the teacher's round 1
    assert RunReader(experiment / "none-s0").final_accuracy("best") == pytest.approx(0.90)
    with pytest.raises(ValueError, match="unknown report"):
        r.final_accuracy("median")
    f = final_table(experiment).set_index(["arm", "seed"])
    assert f.loc[("none", 0), "curriculum"] == "docl"          # an arm is the folder, not the curriculum
    assert f.loc[("sgd", 1), "best"] == pytest.approx(91.0)


def test_paired_intervals_by_hand(experiment):
    pairs = paired_table(final_table(experiment), ["sgd"]).set_index(["report", "arm"])
    row = pairs.loc[("last", "docl")]
    # differences 3, 4, 5 points: mean 4, sd 1, half-width t_{.975,2}·1/√3 = 4.303/√3 ≈ 2.48
    half = 4.303 / math.sqrt(3)
    assert row["mean"] == pytest.approx(4.0) and row["n"] == 3 and row["wins"] == 3
    assert row["low"] == pytest.approx(4 - half, abs=2e-3) and row["high"] == pytest.approx(4 + half, abs=2e-3)
    assert row["verdict"] == "beats"
    # sgd's best-of-both: 95/91/92 against docl's 93/95/97 → 2 of 3, interval contains 0
    assert pairs.loc[("best", "docl"), "verdict"] == "no clear difference"
    assert pairs.loc[("last", "none"), "verdict"] == "too few seeds"   # one seed only
    best = pairs.loc[("best", "docl")]
    assert best["mean"] == pytest.approx((93 - 95 + 95 - 91 + 97 - 92) / 3) and best["wins"] == 2


def test_summary_command_prints_both_reports(experiment, capsys):
    assert main(["summary", str(experiment)]) == 0
    out = capsys.readouterr().out
    assert "last student" in out and "best of max(student, teacher)" in out and "docl − sgd" in out
    assert main(["summary", str(experiment / "missing")]) == 2
    assert "no experiment folder" in capsys.readouterr().err
    assert main(["summary", str(experiment / "sgd-s0" / "samples")]) == 2
    assert "holds no docl runs" in capsys.readouterr().err
