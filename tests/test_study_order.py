"""The ordering study: the order-quick suite writes the ordering section and the command behind each
row; a printed command reproduces its cell bit for bit; every suite's commands parse back to the exact
configs; the reading of where the gain comes from flips with its intervals."""
import shlex

import numpy as np
import pandas as pd
import pytest

from docl_core.cli import main, run_command
from docl_core.config import RunConfig
from docl_core.study import report
from docl_core.study.runner import choose, report_jobs, tuning_jobs
from docl_core.study.suites import ORDER_ARMS, SUITES


@pytest.fixture(scope="module")
def order_quick(tmp_path_factory):
    root = tmp_path_factory.mktemp("order-study")
    out, docs = root / "runs", root / "docs"
    assert main(["study", "--suite", "order-quick", "--out", str(out), "--docs", str(docs), "--no-progress",
                 "--jobs", "2"]) == 0
    return out, (docs / "RESULTS-order-quick.md").read_text()


def test_the_report_has_the_ordering_ablation_and_a_command_per_row(order_quick):
    out, text = order_quick
    assert "## The order inside a subset pass" in text and "## The command behind each row" in text
    section = text.split("## The order inside a subset pass")[1].split("\n## ")[0]
    for row in ("| DoCL |", "| DoCL (no score) |", "| Random |", "SGD in DoCL's order − SGD",
                "| arm | first quarter | last quarter |", "**Reading (computed from the intervals above).**"):
        assert row in section, row
    commands = text.split("## The command behind each row")[1].split("\n## ")[0]
    assert commands.count("`python -m docl_core run ") == len(ORDER_ARMS)
    assert "--order shuffle" in commands and "--order reversed" in commands and "--order draw" in commands
    # the runs record their order, and the order arms carry it in their config
    import json
    for arm, order in (("docl", "draw"), ("docl-shuffle", "shuffle"), ("docl-none-reversed", "reversed"),
                       ("sgd", "shuffle"), ("sgd-draw", "draw")):
        cfg = json.loads((out / "blobs-noise20" / f"{arm}-s1" / "run.json").read_text())["config"]
        assert cfg["order"] == order, arm


def test_a_printed_command_reproduces_its_cell_bit_for_bit(order_quick, tmp_path):
    out, text = order_quick
    line = next(ln for ln in text.splitlines() if ln.startswith("- DoCL: `python -m docl_core run "))
    args = shlex.split(line.split("`")[1])[3:]                        # after "python -m docl_core"
    args[args.index("--out") + 1] = str(tmp_path)
    assert main(args) == 0
    ours = pd.read_parquet(tmp_path / "docl-s0" / "rounds.parquet")
    theirs = pd.read_parquet(out / "blobs-noise20" / "docl-s0" / "rounds.parquet")
    for col in ("test_acc", "val_acc", "train_loss", "teacher_test_acc", "k"):
        assert ours[col].tolist() == theirs[col].tolist(), col
    a = pd.read_parquet(tmp_path / "docl-s0" / "samples" / "round=0003.parquet")
    b = pd.read_parquet(out / "blobs-noise20" / "docl-s0" / "samples" / "round=0003.parquet")
    assert a["pass_position"].tolist() == b["pass_position"].tolist() and a["score"].tolist() == b["score"].tolist()


@pytest.mark.parametrize("name", sorted(SUITES))
def test_every_suites_commands_parse_back_to_their_exact_configs(name, tmp_path):
    suite = SUITES[name]
    tjobs, where = tuning_jobs(suite, tmp_path)
    chosen, _ = choose(suite, where)
    for cfg, run_dir in tjobs + report_jobs(suite, tmp_path, chosen):
        run_command(RunConfig.from_dict(cfg))  # raises when the command would give another config


def test_a_config_no_flag_can_give_is_refused():
    with pytest.raises(ValueError, match="score_batch_size"):
        run_command(RunConfig(score_batch_size=7))


def _r(mean, low, high, n=10):
    from docl_core.study.stats import verdict
    return {"mean": mean, "low": low, "high": high, "n": n, "wins": n // 2, "higher": True,
            "verdict": verdict(low, high, True)}


def test_the_order_reading_flips_with_its_intervals():
    gain, none = _r(1.2, 0.4, 2.0), _r(0.1, -0.3, 0.5)
    order_wins = {("docl", "sgd"): gain, ("docl", "docl-shuffle"): _r(0.6, 0.1, 1.0),
                  ("docl-shuffle", "docl-none-shuffle"): none, ("docl", "docl-none"): none,
                  ("sgd-draw", "sgd"): none}
    text = " ".join(report.order_reading(order_wins, {}, pd.DataFrame()))
    assert "DoCL's gain lives in **the order**" in text and "matters less than the order" in text
    assert "**The order of the pass matters**" in text and "beats the same subsets shuffled for DoCL" in text
    assert "does not lift it" in text
    no_order = {**order_wins, ("docl", "docl-shuffle"): _r(0.1, -0.4, 0.6)}
    text = " ".join(report.order_reading(no_order, {}, pd.DataFrame()))
    assert "lives in" not in text and "makes no clear difference" in text and "matters**" not in text
    # what the study found: DoCL's draw no better than a shuffle, but its reverse worse; the order
    # helps DoCL without its score (an ordering by centrality); Random's orders agree
    found = {**no_order, ("docl", "docl-reversed"): _r(0.86, 0.45, 1.27),
             ("docl-none", "docl-none-shuffle"): _r(0.57, 0.01, 1.14),
             ("random", "random-shuffle"): _r(0.05, -0.36, 0.46), ("random", "random-reversed"): _r(0.1, -0.2, 0.4)}
    text = " ".join(report.order_reading(found, {}, pd.DataFrame()))
    assert "beats the same subsets shuffled for DoCL without its score" in text
    assert "beats them reversed for DoCL" in text and "its reverse is worse" in text
    assert "an ordering by centrality" in text and "a check on the comparison" in text
    broken = {**found, ("random", "random-shuffle"): _r(0.6, 0.2, 1.0)}
    assert "a check on the comparison" not in " ".join(report.order_reading(broken, {}, pd.DataFrame()))
    both = {**order_wins, ("docl-shuffle", "docl-none-shuffle"): _r(0.5, 0.1, 0.9)}
    assert "adds to what the score's selection gives" in " ".join(report.order_reading(both, {}, pd.DataFrame()))
    shared = {**order_wins, ("random", "sgd"): _r(0.7, 0.2, 1.2), ("docl", "random"): _r(0.2, -0.2, 0.6)}
    assert "shared by uniform subsets under the same recipe" in " ".join(report.order_reading(shared, {}, pd.DataFrame()))
    assert "shared by uniform" not in " ".join(report.order_reading(
        {**shared, ("docl", "random"): _r(0.6, 0.2, 1.0)}, {}, pd.DataFrame()))
    prof = pd.DataFrame({"arm": "docl", "seed": range(5), "first_noisy": [30.0, 31, 29, 33, 30],
                         "last_noisy": [10.0, 12, 9, 11, 10], "rho": -0.3, "epochs": 90})
    text = " ".join(report.order_reading(order_wins, {}, prof))
    assert "last quarter of a pass holds fewer flipped labels than the first" in text
    assert "high scores come first" in text
    prof["rho"] = [0.2, 0.25, 0.18, 0.22, 0.21]
    assert "high scores come last" in " ".join(report.order_reading(order_wins, {}, prof))
    prof["rho"] = [0.2, -0.25, 0.1, -0.1, 0.0]
    assert "no consistent direction" in " ".join(report.order_reading(order_wins, {}, prof))
    prof["last_noisy"] = prof["first_noisy"] + np.array([0.5, -0.5, 0.2, -0.2, 0.0])
    assert "about as many flipped labels" in " ".join(report.order_reading(order_wins, {}, prof))
