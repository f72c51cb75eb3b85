"""The training loop and CLI end to end: every curriculum on every kind of data, determinism, resume."""
import json

import numpy as np
import pandas as pd
import pytest

from docl_core.cli import main
from docl_core.config import CURRICULA, RunConfig, Schedule
from docl_core.protocol import PaperSchedule
from docl_core.store import ExperimentReader, RunReader
from docl_core.trainer import Trainer, train_run

FAST = ["--rounds", "2", "--k-start", "0.3", "--warmup-epochs", "0", "--probe-size", "6",
        "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def user_npz(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] ** 2 > 1).astype(np.int64)
    path = tmp_path_factory.mktemp("data") / "mine.npz"
    np.savez(path, x=x, y=y)
    return str(path)


@pytest.mark.parametrize("dataset", ["digits", "moons", "sine", "npz"])
def test_every_curriculum_runs_from_the_cli(tmp_path, dataset, user_npz):
    ds = user_npz if dataset == "npz" else dataset
    out = tmp_path / "exp"
    for c in CURRICULA:
        assert main(["run", "--dataset", ds, "--curriculum", c, "--out", str(out), *FAST]) == 0
    exp = ExperimentReader(out)
    assert sorted(r.curriculum for r in exp.runs) == sorted(CURRICULA)
    steps = set()
    for r in exp.runs:
        # the contract, read with plain pandas / numpy / json only
        meta = json.loads((r.dir / "run.json").read_text())
        assert meta["status"] == "complete" and meta["last_complete_round"] == 1
        rounds = pd.read_parquet(r.dir / "rounds.parquet")
        assert {"round", "k", "lr", "steps", "test_loss", "score_time_s", "select_time_s"} <= set(rounds.columns)
        if r.curriculum != "sgd":  # sgd trains on all N every round: more steps by design
            steps.add(int(rounds["steps"].iloc[-1]))
        s = pd.read_parquet(r.dir / "samples" / "round=0001.parquet")
        assert {"sample_id", "round", "label", "loss", "correct", "p_true", "residual_norm", "speed_norm",
                "score", "selected", "weight", "times_selected"} <= set(s.columns)
        assert s["selected"].sum() == rounds["k"].iloc[1]
        with np.load(r.dir / "kernel" / "round=0000.npz", allow_pickle=False) as z:
            assert z["trace"].shape == (6, 6)
        assert len(pd.read_parquet(r.dir / "dataset.parquet")) >= len(s)
    assert len(steps) == 1, f"curricula took different step counts: {steps}"


def _cfg(curriculum="docl", rounds=4, **kw):
    return RunConfig(dataset="moons", curriculum=curriculum, rounds=rounds, seed=3, probe_size=4,
                     device="cpu", schedule=Schedule(k_start=0.3, warmup_epochs=1), **kw)


def _frames(run_dir):
    r = RunReader(run_dir)
    return r.samples_all(columns=["sample_id", "score", "selected", "loss"])


@pytest.mark.parametrize("curriculum", ["docl", "mcl"])
def test_same_seed_same_selections_and_scores(tmp_path, curriculum):
    a = _frames(train_run(_cfg(curriculum), tmp_path / "a"))
    b = _frames(train_run(_cfg(curriculum), tmp_path / "b"))
    pd.testing.assert_frame_equal(a, b)
    assert a["selected"].any()


def test_resume_after_interrupt_matches_uninterrupted(tmp_path, monkeypatch):
    full = _frames(train_run(_cfg(), tmp_path / "full"))
    trainer = Trainer(_cfg(), tmp_path / "cut")
    real = trainer.tracker.end_round
    calls = {"n": 0}

    def interrupted(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(trainer.tracker, "end_round", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    cut = RunReader(tmp_path / "cut")
    assert cut.last_complete_round == 1 and cut.status == "interrupted"
    train_run(_cfg(), tmp_path / "cut", resume=True)
    pd.testing.assert_frame_equal(full, _frames(tmp_path / "cut"))
    assert RunReader(tmp_path / "cut").status == "complete"


def test_resume_starts_a_run_that_does_not_exist(tmp_path):
    train_run(_cfg(rounds=1), tmp_path / "new", resume=True)
    assert RunReader(tmp_path / "new").status == "complete"


def test_divergence_marks_the_run_failed(tmp_path):
    code = main(["run", "--dataset", "moons", "--out", str(tmp_path), "--name", "boom", "--lr", "1e30",
                 "--lr-min", "1e29", *FAST])
    assert code == 3
    meta = json.loads((tmp_path / "boom" / "run.json").read_text())
    assert meta["status"] == "failed" and "learning rate" in meta["error"]


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    args = ["run", "--dataset", "moons", "--out", str(tmp_path), *FAST]
    assert main(args) == 0
    before = (tmp_path / "docl-s0" / "rounds.parquet").read_bytes()
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert (tmp_path / "docl-s0" / "rounds.parquet").read_bytes() == before


# ----------------------------------------------------------------------------- review fixes (issue 13)


def test_resume_refuses_other_options_and_records_an_extension(tmp_path, capsys):
    args = ["run", "--dataset", "moons", "--out", str(tmp_path), *FAST]
    assert main(args) == 0
    before = (tmp_path / "docl-s0" / "rounds.parquet").read_bytes()
    assert main([*args, "--resume", "--name", "docl-s0", "--curriculum", "spl", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "curriculum 'docl' (now 'spl')" in err and "schedule.lr 0.05 (now 0.5)" in err
    assert (tmp_path / "docl-s0" / "rounds.parquet").read_bytes() == before
    meta = json.loads((tmp_path / "docl-s0" / "run.json").read_text())
    assert meta["config"]["curriculum"] == "docl" and meta["status"] == "complete"
    # raising the number of rounds extends a finished run, and run.json says so
    longer = [a if a != "2" else "3" for a in args]
    assert main([*longer, "--resume"]) == 0
    meta = json.loads((tmp_path / "docl-s0" / "run.json").read_text())
    assert meta["config"]["rounds"] == 3 and meta["extended"] == [{"rounds": 3, "from": 2}]
    assert meta["last_complete_round"] == 2


def test_compare_into_a_folder_of_other_runs_says_so(tmp_path, capsys):
    args = ["compare", "--dataset", "moons", "--curricula", "random", "--seeds", "0", "--out", str(tmp_path), *FAST]
    assert main(args) == 0
    assert main([*args, "--label-noise", "0.2"]) == 2
    assert "random-s0 was made with other options: label_noise 0.0 (now 0.2)" in capsys.readouterr().err


def test_kernel_and_samples_of_a_round_share_one_set_of_weights(tmp_path):
    for protocol in ("steps", "paper"):
        kw = dict(protocol="paper", schedule=PaperSchedule(epochs=3, episodes=[0, 1])) if protocol == "paper" \
            else dict(rounds=3)
        cfg = RunConfig(dataset="moons", curriculum="docl", seed=1, probe_size=6, device="cpu", **kw)
        r = RunReader(train_run(cfg, tmp_path / protocol))
        assert r.kernel_rounds(), protocol
        for t in r.kernel_rounds():
            k = r.kernel(t)
            frame = r.samples(t).set_index("sample_id")
            np.testing.assert_allclose(np.linalg.norm(k["residual"], axis=1),
                                       frame.loc[k["probe_ids"], "residual_norm"], rtol=1e-5, atol=1e-6)


def test_every_measurement_is_used_and_the_last_round_scores_nothing_extra(tmp_path, monkeypatch):
    from docl_core.scorers import GradientScore
    calls = []
    real = GradientScore.measure
    monkeypatch.setattr(GradientScore, "measure", lambda self, at: (calls.append(1), real(self, at))[1])
    r = RunReader(train_run(_cfg(rounds=3), tmp_path / "r"))
    assert len(calls) == 3 == len(r.round_ids)  # one exact measurement per round's frame, none thrown away


def test_old_configs_with_step_budget_still_load():
    cfg = RunConfig.from_dict({**RunConfig().to_dict(), "step_budget": 100})
    assert not hasattr(cfg, "step_budget") and cfg.protocol == "steps"


# ----------------------------------------------------------------------------- resume (issue 17)


def test_a_failure_after_the_resume_check_marks_the_run_failed(tmp_path, monkeypatch):
    from docl_core.tracker import DynamicsTracker
    train_run(_cfg(rounds=2), tmp_path / "r")
    longer = _cfg(rounds=3)

    def broken(self, state):
        raise RuntimeError("tracker state does not fit\nsecond line")

    monkeypatch.setattr(DynamicsTracker, "load_state_dict", broken)
    with pytest.raises(RuntimeError, match="does not fit"):
        train_run(longer, tmp_path / "r", resume=True)
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["status"] == "failed"  # never left "running" with nobody training it
    assert meta["error"] == "RuntimeError while resuming: tracker state does not fit"
    assert meta["last_complete_round"] == 1  # the committed rounds are kept
    monkeypatch.undo()
    train_run(longer, tmp_path / "r", resume=True)  # and the run continues once the cause is gone
    assert RunReader(tmp_path / "r").status == "complete" and RunReader(tmp_path / "r").last_complete_round == 2


def test_help_shows_every_default(capsys, monkeypatch):
    """Issue 17: `--help` of every sub-command says each value option's default."""
    import argparse
    from docl_core.cli import build_parser
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: no wrapping inside a phrase
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = []
    for name, sub in commands.items():
        with pytest.raises(SystemExit):
            sub.parse_args(["--help"])
        text = capsys.readouterr().out
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.option_strings or action.nargs == 0 or action.required:
                continue  # positionals, switches, and --to (required) have no default to show
            shown = formatter._expand_help(action) if action.help else ""
            if "default" not in shown.lower() or shown not in text:
                missing.append(f"{name} {action.option_strings[0]}")
    assert not missing, f"no default shown for {', '.join(missing)}"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    out = capsys.readouterr().out
    for shown in ("(default: runs/default)", "default: 0.05 under steps", "default: 0.2 under steps",
                  "fraction of train labels flipped (default: 0.0)"):
        assert shown in out, shown


def test_label_column_names_a_csv_files_labels(tmp_path):
    """Issue 17: a .csv without a 'label' column trains only when --label-column names the labels."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 3))
    table = pd.DataFrame({"a": x[:, 0], "cls": (x[:, 0] + x[:, 1] > 0).astype(int), "b": x[:, 1], "c": x[:, 2]})
    table.to_csv(tmp_path / "mine.csv", index=False)
    args = ["run", "--dataset", str(tmp_path / "mine.csv"), "--out", str(tmp_path / "exp"), "--model", "mlp", *FAST]
    assert main(args) == 2  # no 'label' column: refused, never a guess
    assert main([*args, "--label-column", "cls"]) == 0
    r = RunReader(tmp_path / "exp" / "docl-s0")
    assert r.meta["config"]["label_column"] == "cls" and r.meta["num_train"] == 102  # 150 − 30 test − 18 val
    assert r.meta["task"] == "classification" and r.meta["num_outputs"] == 2


@pytest.mark.parametrize("protocol", ["steps", "paper"])
def test_no_pass_is_sorted_by_loss_or_id(tmp_path, monkeypatch, protocol):
    """SPL picks the lowest losses (best first); the mini-batches must not follow that ranking
    (under `paper` they follow the draw, which only leans towards low loss): each pass's first
    mini-batch holds several classes and no pass is sorted by loss or id."""
    from docl_core.tracker import DynamicsTracker
    batches = []
    real = DynamicsTracker.on_batch

    def spy(self, ids, outputs, lr, **kw):
        batches.append((self.round, ids.detach().cpu().numpy().copy()))
        return real(self, ids, outputs, lr, **kw)

    monkeypatch.setattr(DynamicsTracker, "on_batch", spy)
    opts = dict(schedule=PaperSchedule(epochs=4, episodes=[0, 1, 2, 3])) if protocol == "paper" else \
        dict(rounds=3, schedule=Schedule(warmup_epochs=0, k_start=0.5))
    cfg = RunConfig(dataset="digits", curriculum="spl", protocol=protocol, seed=3, label_noise=0.2,
                    probe_size=0, log_estimators=[], device="cpu", **opts)
    run = RunReader(train_run(cfg, tmp_path / "spl"))
    labels = run.dataset(thumbnails=False).query("split == 'train'")["label"].to_numpy()
    for t in range(1 if protocol == "paper" else 0, run.last_complete_round + 1):
        mine = [ids for r, ids in batches if r == t]
        selected = set(run.samples(t).query("selected")["sample_id"])
        last = [ids for ids in mine if set(ids) <= selected]     # the subset pass (after any full pass)
        first = next(ids for ids in mine if set(ids) <= selected and len(ids) > 8)
        assert len(np.unique(labels[first])) >= 4, (t, labels[first])
        order = np.concatenate(last[-(len(selected) // 64 + 1):])
        loss = run.samples(t).set_index("sample_id").loc[order, "loss"].to_numpy()
        assert not (np.all(np.diff(loss) >= 0) or np.all(np.diff(loss) <= 0)), t
        assert not np.all(np.diff(order) > 0), t
