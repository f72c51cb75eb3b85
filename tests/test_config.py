"""RunConfig holds one schedule: the steps protocol's or the paper protocol's, never both."""
import json

import pytest

from docl_core.cli import build_parser, config_from_args, run_command
from docl_core.config import RunConfig, Schedule, config_differences
from docl_core.protocol import PaperSchedule


def test_a_config_holds_the_schedule_of_its_protocol_only():
    steps, paper = RunConfig(), RunConfig(protocol="paper")
    assert isinstance(steps.schedule, Schedule) and isinstance(paper.schedule, PaperSchedule)
    assert not hasattr(paper, "paper")
    d = paper.to_dict()
    assert "paper" in d and "schedule" not in d             # run.json keeps the key runs always used
    assert "schedule" in steps.to_dict() and "paper" not in steps.to_dict()
    # a PaperSchedule names its protocol
    assert RunConfig(schedule=PaperSchedule(epochs=4)).protocol == "paper"
    with pytest.raises(ValueError, match="runs on a PaperSchedule"):
        RunConfig(protocol="paper", schedule=Schedule(k_start=0.3)).validate()


def test_a_config_round_trips_through_run_json():
    for cfg in (RunConfig(schedule=Schedule(k_start=0.3, lam_start=0.2)),
                RunConfig(curriculum="mcl", schedule=PaperSchedule(epochs=6, lam_decay=0.5, mixup=False))):
        back = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert back == cfg and config_differences(cfg.to_dict(), back.to_dict()) == []


def test_a_run_made_when_configs_held_both_schedules_reads_as_its_protocols():
    """Runs before one schedule stored "schedule" and "paper" both, and a paper run's λ under
    "schedule" (the CLI's --lam went there under either protocol)."""
    old = RunConfig(protocol="paper").to_dict()
    for k in ("lam_start", "lam_decay"):                          # a PaperSchedule had no λ then
        del old["paper"][k]
    old["schedule"] = {**Schedule().__dict__, "lam_start": 0.25, "lr": 0.7}
    cfg = RunConfig.from_dict(old)
    assert isinstance(cfg.schedule, PaperSchedule) and cfg.schedule.lam_start == 0.25
    assert cfg.schedule.lr_max == PaperSchedule().lr_max          # the steps lr of an old paper run is not read
    same = RunConfig(protocol="paper", schedule=PaperSchedule(lam_start=0.25)).to_dict()
    assert config_differences(old, same) == []                    # a resume or --reuse-from still matches
    assert config_differences(old, RunConfig(protocol="paper").to_dict()) == [("paper.lam_start", 0.25, 1.0)]


def test_the_command_line_builds_one_schedule_and_lam_reaches_either():
    parse = build_parser().parse_args
    paper = config_from_args(parse(["run", "--protocol", "paper", "--lam", "0.3", "--lr", "0.2"]), "docl", 0)
    steps = config_from_args(parse(["run", "--lam", "0.3", "--lr", "0.2"]), "docl", 0)
    assert (paper.schedule.lam_start, paper.schedule.lr_max) == (0.3, 0.2)
    assert (steps.schedule.lam_start, steps.schedule.lr) == (0.3, 0.2)
    cmd = run_command(paper)
    assert "--lam 0.3" in cmd and "--lr 0.2" in cmd
    with pytest.raises(ValueError, match="apply to --protocol steps only|applies to --protocol steps only"):
        config_from_args(parse(["run", "--protocol", "paper", "--pool-factor", "3"]), "docl", 0)


def test_val_fraction_sets_the_validation_split_a_run_trains_beside(tmp_path):
    """--val-fraction reaches load_dataset: the run's train and validation sizes are those of the
    stratified hold-out computed here by hand, and run.json keeps the fraction."""
    from sklearn.datasets import load_digits
    from docl_core.trainer import Trainer
    args = build_parser().parse_args(["run", "--dataset", "digits", "--val-fraction", "0.3", "--rounds", "1",
                                      "--probe-size", "0", "--out", str(tmp_path)])
    cfg = config_from_args(args, "docl", 0)
    assert cfg.val_fraction == 0.3
    tr = Trainer(cfg, tmp_path / "run")
    counts = set(load_digits().target)
    pool = len(load_digits().target) - len(tr.ds.x_test)          # digits has no test set: 20 % went first
    assert len(tr.ds.x_val) == pytest.approx(0.3 * pool, abs=len(counts))
    assert len(tr.ds.x_train) + len(tr.ds.x_val) == pool
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).val_fraction == 0.3
    assert RunConfig.from_dict({k: v for k, v in RunConfig().to_dict().items() if k != "val_fraction"}
                               ).val_fraction == 0.15               # runs from before the flag: the old split
