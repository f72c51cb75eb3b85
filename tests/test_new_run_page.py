"""The New run page through streamlit.testing.v1.AppTest: where the quick run goes (a new folder of its
own, named before the start, offered to open), that a run finishing or training leaves no error box
under the form, when the form's problems show (after Start, until fixed), and the estimator's labels.

No training runs here: launch.start is replaced by a fake process, and the run folders it would
write come from tests/synthetic_runs.py (invented numbers, test scaffolding only).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app import launch  # noqa: E402
from synthetic_runs import SyntheticSpec, make_dataset, write_experiment, write_run  # noqa: E402

MAIN = str(REPO / "app" / "main.py")
SMALL = SyntheticSpec(n=60, rounds=3, curricula=("random", "docl"), seeds=(0,), probe=0, running=False,
                      failed=False, embedding=False, eval_size=20)


class _Proc:
    """A started job, as the page sees it: running until `code` is set. Its pid is this process's,
    the writer pid synthetic runs record, so the page trusts their run.json as the job's own."""

    def __init__(self):
        self.pid, self.code = os.getpid(), None

    def poll(self):
        return self.code


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return write_experiment(tmp_path_factory.mktemp("runs") / "images", SMALL)


@pytest.fixture
def runs(images, tmp_path) -> Path:
    """A fresh folder of experiments holding a copy of `images`, someone's own runs."""
    shutil.copytree(images, tmp_path / "runs" / "images")
    return tmp_path / "runs"


@pytest.fixture
def started(monkeypatch) -> list:
    """(cmd, proc) of every job the page starts; nothing runs."""
    jobs = []

    def fake_start(cmd, log, cwd=launch.REPO):
        jobs.append((cmd, _Proc()))
        return jobs[-1][1]

    monkeypatch.setattr(launch, "start", fake_start)
    return jobs


def open_new_run(root: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("DOCL_RUNS", str(root))
    at = AppTest.from_file(MAIN, default_timeout=90)
    at.run()
    at.switch_page("app_pages/new_run.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def errors(at: AppTest) -> list[str]:
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.error]


def arg(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def write_the_run(exp_dir: Path, name: str, running: bool = False) -> Path:
    """What the started job would have written: a run folder in exp_dir (still training: 1 round committed)."""
    spec = SyntheticSpec(**{**SMALL.__dict__, "curricula": ("docl",)})
    return write_run(exp_dir, make_dataset(spec), spec, "docl", 0, name=name, stop_after=1 if running else None)


def listing(folder: Path) -> set:
    return {p.relative_to(folder) for p in folder.rglob("*")}


# ----------------------------------------------------------------------------- the quick run


def test_quick_run_goes_into_a_new_folder_named_before_the_start(runs, started, monkeypatch):
    mine = runs / "images"
    (runs / "quick-digits-1").mkdir()  # someone's folder under that name already: never written into
    before = listing(mine)
    at = open_new_run(mine, monkeypatch)
    target = runs / "quick-digits-2"
    assert any(f"`{target}`" in c.value for c in at.caption), [c.value for c in at.caption]
    at.button(key="nr_quick").click().run()
    assert len(started) == 1
    cmd = started[0][0]
    assert arg(cmd, "--out") == str(target.resolve()) and arg(cmd, "--name") == "docl-s0"
    assert arg(cmd, "--epochs") == "8"  # still the quick preset
    assert listing(mine) == before and not any((runs / "quick-digits-1").iterdir())
    assert not errors(at)
    at.run()  # the next quick run is named before it starts too, and goes into a folder of its own again
    assert any(f"`{runs / 'quick-digits-3'}`" in c.value for c in at.caption)


def card(at: AppTest, name: str) -> str:
    """The progress card's first line for the job `name` ("" when it has none)."""
    return next((m.value for m in at.markdown if m.value.startswith(f"**{name}** — ")), "")


def run_label(at: AppTest) -> str:
    """The sidebar's label for the run to inspect."""
    box = at.sidebar.selectbox(key="focus_run")
    return box.options[box.index]


def test_quick_run_sidebar_follows_it_and_says_complete_and_progress_has_one_unit(runs, started, monkeypatch):
    """Issue 32, item 6: once the quick run has written run.json the sidebar shows its folder and it
    (● live); when it ends the app reruns and the sidebar says ✓ complete, no longer live; its card
    counts epochs, the quick preset's unit, from the start (it read "0/8 rounds", then "8/8 epochs")."""
    mine = runs / "images"
    at = open_new_run(mine, monkeypatch)
    form_seed = at.number_input(key="nr_seed").value
    at.button(key="nr_quick").click().run()
    assert card(at, "quick-digits-1/docl-s0") == "**quick-digits-1/docl-s0** — starting, 0/8 epochs"
    quick = runs / "quick-digits-1"
    run = write_the_run(quick, arg(started[0][0], "--name"), running=True)
    at.run()  # its run.json appeared: the page reruns the app once, the sidebar following the run
    assert not errors(at)
    assert Path(at.session_state["root"]) == quick and at.session_state["_exp_dir"] == str(quick)
    assert at.sidebar.selectbox(key="focus_run").value == "docl-s0" and run_label(at).endswith("● live")
    assert card(at, "quick-digits-1/docl-s0").startswith("**quick-digits-1/docl-s0** — running, 1/3 epochs; about")
    assert any("is the experiment on screen" in c.value for c in at.caption)
    shutil.rmtree(run)
    write_the_run(quick, run.name)
    started[0][1].code = 0
    at.run()  # it ended: the app reruns, so the sidebar is drawn from the run's run.json as it is now
    assert not errors(at)  # the finished quick run leaves no "already exists" box under the form
    assert at.number_input(key="nr_seed").value == form_seed  # and the form was never moved by it
    assert run_label(at) == "DoCL · seed 0 · ✓ complete"
    assert not any("live" in c.value for c in at.sidebar.caption)
    assert card(at, "quick-digits-1/docl-s0") == "**quick-digits-1/docl-s0** — complete, 3/3 epochs"
    assert any("quick-digits-1/docl-s0 finished" in s.value for s in at.success)


def test_the_sidebar_picks_the_quick_folder_in_the_experiment_list(runs, started, monkeypatch):
    """With a folder of experiments open, following the quick run moves the Experiment picker (the
    runs folder stays); picked away again, the card offers to open it."""
    at = open_new_run(runs, monkeypatch)  # a folder of experiments: a picker once it holds two
    at.button(key="nr_quick").click().run()
    write_the_run(runs / "quick-digits-1", "docl-s0", running=True)
    at.run()
    assert not errors(at)
    assert at.session_state["root"] == str(runs)  # the runs folder stays, the picker moves
    assert at.selectbox(key="experiment").value == "quick-digits-1"
    at.selectbox(key="experiment").set_value("images").run()
    started[0][1].code = 0
    at.run()
    assert at.selectbox(key="experiment").value == "images"  # the user's pick stands: following happens once
    next(b for b in at.button if b.label == "Open quick-digits-1").click().run()
    assert not errors(at)
    assert at.session_state["root"] == str(runs) and at.selectbox(key="experiment").value == "quick-digits-1"


def test_a_form_run_becomes_the_run_to_inspect_and_says_complete(runs, started, monkeypatch):
    mine = runs / "images"
    at = open_new_run(mine, monkeypatch)
    at.button(key="nr_submit").click().run()
    name = arg(started[0][0], "--name")
    assert card(at, name) == f"**{name}** — starting, 0/3 rounds"  # the experiment's own rounds
    run = write_the_run(mine, name, running=True)
    at.run()
    assert not errors(at) and at.sidebar.selectbox(key="focus_run").value == name
    assert run_label(at).endswith("● live")
    shutil.rmtree(run)
    write_the_run(mine, name)
    started[0][1].code = 0
    at.run()
    assert not errors(at) and run_label(at).endswith("· ✓ complete") and "live" not in run_label(at)


def test_quick_dir_is_a_fresh_folder_beside_the_experiment(runs):
    mine = runs / "images"
    assert launch.quick_dir(mine) == runs / "quick-digits-1"
    (runs / "quick-digits-1").mkdir()
    assert launch.quick_dir(mine) == runs / "quick-digits-2"
    assert launch.quick_dir(mine / "docl-s0") == runs / "quick-digits-2"  # one run opened alone: beside its experiment


# ----------------------------------------------------------------------------- the form


def test_form_problems_show_after_start_and_go_once_fixed(runs, started, monkeypatch):
    at = open_new_run(runs / "images", monkeypatch)
    assert not errors(at)
    at.text_input(key="nr_dataset").input("digitz").run()  # typed, then Enter: not a submission
    assert not errors(at) and not started
    at.button(key="nr_submit").click().run()
    assert not started and any("unknown dataset 'digitz'" in e for e in errors(at))
    at.text_input(key="nr_label_column").input("y").run()  # after a Start, every change is checked again
    assert any("label column" in e for e in errors(at)) and any("digitz" in e for e in errors(at))
    at.text_input(key="nr_dataset").input("digits").run()
    at.text_input(key="nr_label_column").input("").run()
    assert not errors(at)  # fixed: the box goes before the next Start
    at.button(key="nr_submit").click().run()
    assert len(started) == 1 and arg(started[0][0], "--dataset") == "digits"
    at.run()
    at.text_input(key="nr_dataset").input("digitz").run()  # a fresh form after the start
    assert not errors(at)
    at.button(key="nr_submit").click().run()
    assert len(started) == 1 and any("unknown dataset 'digitz'" in e for e in errors(at))


def test_a_seed_the_page_picked_moves_when_its_folder_is_taken(runs, started, monkeypatch):
    mine = runs / "images"
    at = open_new_run(mine, monkeypatch)
    seed = at.number_input(key="nr_seed").value
    write_the_run(mine, f"docl-s{seed}")  # a run started elsewhere (the CLI, another tab) takes it
    at.run()
    assert not errors(at) and at.number_input(key="nr_seed").value == seed + 1
    at.number_input(key="nr_seed").set_value(seed).run()  # a seed the user typed stays as typed
    assert not errors(at) and at.number_input(key="nr_seed").value == seed
    at.button(key="nr_submit").click().run()
    assert not started and any(f"docl-s{seed} already exists" in e and f"seed {seed + 1} is free" in e
                               for e in errors(at))


def test_estimator_options_say_what_each_is(runs, started, monkeypatch):
    at = open_new_run(runs / "images", monkeypatch)
    box = at.selectbox(key="nr_estimator")
    labels = list(box.proto.options)
    assert labels == ["exact — exact score a_i = r_i·v_i",
                      "byproduct — byproduct score (our estimate from training's outputs)",
                      "fast — fast score (finite differences, an approximation)",
                      "paper — authors' byproduct score (teacher logits recorded in training)",
                      "none — no score (a uniform draw: the score's ablation)"]
    for words in ("a_i = r_i·v_i", "finite differences", "approximation", "our free estimate",
                  "the authors' byproduct", "uniform draw", "ablation"):
        assert words in box.proto.help
    box.set_value("none").run()
    at.button(key="nr_submit").click().run()
    assert len(started) == 1 and arg(started[0][0], "--estimator") == "none"


def test_estimator_starts_on_the_experiments_own(monkeypatch):
    """On the bundled paper-protocol demo the form offers the estimator its runs used (the authors'
    byproduct), not `exact`, so a run added there matches the experiment."""
    at = open_new_run(REPO / "assets" / "demo" / "noisy-digits", monkeypatch)
    assert at.selectbox(key="nr_estimator").value == "paper"
    assert at.selectbox(key="nr_protocol").value == "paper"


def test_the_score_curriculum_starts_with_its_score_and_direction(runs, started, monkeypatch):
    """New run offers `--curriculum score`: picking it shows the score and the direction, and the
    command and the default folder name carry both."""
    at = open_new_run(runs / "images", monkeypatch)
    assert not [s for s in at.selectbox if s.key == "nr_score"]  # only for the score curriculum
    at.selectbox(key="nr_curriculum").set_value("score").run()
    assert not errors(at)
    at.selectbox(key="nr_score").set_value("forgetting").run()
    at.selectbox(key="nr_prefer").set_value("easy").run()
    at.button(key="nr_submit").click().run()
    assert not errors(at) and len(started) == 1
    cmd = started[0][0]
    assert arg(cmd, "--curriculum") == "score" and arg(cmd, "--score") == "forgetting" and arg(cmd, "--prefer") == "easy"
    assert arg(cmd, "--name") == f"score-forgetting-easy-s{arg(cmd, '--seed')}"


def test_score_requests_are_checked():
    ok = launch.RunRequest(curriculum="score", score="aum", prefer="easy")
    assert ok.run_name == "score-aum-easy-s0" and not launch.validate(ok)
    assert any("Unknown score 'nope'" in e for e in launch.validate(launch.RunRequest(curriculum="score", score="nope")))
    assert any("hard or easy" in e for e in launch.validate(launch.RunRequest(curriculum="score", prefer="first")))
    assert launch.RunRequest(curriculum="docl", score="aum").run_name == "docl-s0"  # the score fields apply to score only


# ----------------------------------------------------------------------------- bad data files, before a start


def _table(tmp: Path, name: str, edit) -> Path:
    """A 40-row CSV (features a, b; labels 0/1) after `edit(frame)`."""
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40), "label": np.arange(40) % 2})
    df = edit(df) if edit else df
    df.to_csv(tmp / name, index=False)
    return tmp / name


def _nan_b(df):
    df["b"] = df["b"].astype(object)
    df.loc[7, "b"] = None  # an empty cell: data row 7, line 9 of the file
    return df


BAD_CSVS = [  # (file, how to spoil it, what the form must say)
    ("text.csv", lambda df: df.assign(b=["x"] * 40), "feature column(s) b are not numeric"),
    ("one_class.csv", lambda df: df.assign(label=0), "only one class"),
    ("nan.csv", _nan_b, "column 'b' is not a finite number (empty, NaN or inf, or beyond float32) at line 9 "
                        "(data row 7, counted from 0 after the header, as source_row counts)"),
    ("no_label.csv", lambda df: df.rename(columns={"label": "y"}), "has no column 'label'"),
]


@pytest.mark.parametrize("name, spoil, says", BAD_CSVS, ids=[c[0] for c in BAD_CSVS])
def test_a_bad_csv_starts_no_process_and_the_form_says_why(runs, started, monkeypatch, tmp_path, name, spoil, says):
    """Issue 32, item 6: every problem the run's loader finds in a CSV (a text feature, one class, a
    NaN, no label column) is found by the form when Start is pressed, before any process starts
    (a text feature, one class and a NaN used to start one, which then exited with code 2)."""
    bad = _table(tmp_path, name, spoil)
    at = open_new_run(runs / "images", monkeypatch)
    at.text_input(key="nr_dataset").input(str(bad)).run()
    assert not errors(at)  # typed: problems wait for the button
    at.button(key="nr_submit").click().run()
    assert started == []  # no process
    assert any(says in e and f"Dataset: {name}" in e for e in errors(at)), errors(at)
    assert not at.session_state["jobs"] if "jobs" in at.session_state else True
    good = _table(tmp_path, name, None)  # the file fixed in place: the box goes, and Start starts
    at.run()
    assert not errors(at), f"{good} is fine now"
    at.button(key="nr_submit").click().run()
    assert len(started) == 1 and arg(started[0][0], "--dataset") == str(good)


def test_build_command_reads_a_data_file_whole_and_problems_only_when_asked(tmp_path):
    """launch.build_command refuses what the run would (the file read through load_dataset, with the
    request's seed, noise and label column); problems() reads only the header unless load=True."""
    one = _table(tmp_path, "one.csv", lambda df: df.assign(label=0))
    req = launch.RunRequest(dataset=str(one))
    assert not launch.problems(req, tmp_path)  # the header is fine
    assert any("only one class" in e for e in launch.problems(req, tmp_path, load=True))
    with pytest.raises(ValueError, match="only one class"):
        launch.build_command(req, tmp_path)
    ok = _table(tmp_path, "ok.csv", lambda df: df.rename(columns={"label": "y"}))
    assert launch.build_command(launch.RunRequest(dataset=str(ok), label_column="y"), tmp_path)[0]
    noisy = launch.RunRequest(dataset=str(_table(tmp_path, "reg.csv", lambda df: df.assign(label=df["a"]))),
                              label_noise=0.2)  # float labels: a regression set, where label noise is refused
    assert any("label_noise applies to classification only" in e for e in launch.problems(noisy, tmp_path, load=True))
