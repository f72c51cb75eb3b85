"""The dashboard through streamlit.testing.v1.AppTest: every page opens on a synthetic experiment,
its main widgets are driven, and what it shows is checked; bad folders give error boxes, never
tracebacks. Also the frame-shaping views (docl_core.views) and the New-run command builder.

Experiments come from tests/synthetic_runs.py (invented numbers, test scaffolding only).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app import common, launch  # noqa: E402
from docl_core import views  # noqa: E402
from docl_core.store import ExperimentReader, RunReader  # noqa: E402
from synthetic_runs import PAPER_CURRICULA, SyntheticSpec, write_experiment  # noqa: E402

MAIN = str(REPO / "app" / "main.py")
PAGES = {"compare": "Compare curricula", "scores": "Scores over rounds", "subsets": "Selected subsets",
         "kernel": "Tangent kernel", "sample": "One sample's history", "datamap": "Data map",
         "new_run": "Start a new run", "how_it_works": "How it works"}


@pytest.fixture(scope="module")
def exp(tmp_path_factory) -> Path:
    return write_experiment(tmp_path_factory.mktemp("runs") / "images", SyntheticSpec(n=240, rounds=6))


@pytest.fixture(scope="module")
def exp_points(tmp_path_factory) -> Path:
    return write_experiment(tmp_path_factory.mktemp("runs") / "points", SyntheticSpec(
        n=150, rounds=4, kind="points2d", num_classes=3, seeds=(0,), running=False, failed=False))


@pytest.fixture(scope="module")
def exp_curve(tmp_path_factory) -> Path:
    return write_experiment(tmp_path_factory.mktemp("runs") / "curve", SyntheticSpec(
        n=120, rounds=4, kind="curve1d", seeds=(0,), curricula=("random", "docl"), running=False, failed=False))


@pytest.fixture(scope="module")
def exp_paper(tmp_path_factory) -> Path:
    """The authors' protocol: one row per epoch, episodes of 3 epochs, sgd among the curricula, 3 seeds
    (enough for a paired t-interval), little seed noise so DoCL's lead over SGD is clear."""
    return write_experiment(tmp_path_factory.mktemp("runs") / "paper", SyntheticSpec(
        n=160, rounds=9, seeds=(0, 1, 2), protocol="paper", curricula=PAPER_CURRICULA, acc_noise=0.001,
        probe=16, running=False, failed=False))


DEMO = REPO / "assets" / "demo"


def open_app(root: Path, monkeypatch, page: str | None = None, presentation: bool = False) -> AppTest:
    monkeypatch.setenv("DOCL_RUNS", str(root))
    at = AppTest.from_file(MAIN, default_timeout=90)
    if presentation:
        at.session_state["presentation"] = True
    at.run()
    if page and page != "compare":
        at.switch_page(f"app_pages/{page}.py")
    at.run()  # Compare's first view draws its key chart only; the browser then asks for this full run
    return at


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def chart_titles(at: AppTest) -> list[str]:
    out = []
    for el in at.get("plotly_chart"):
        title = json.loads(el.proto.spec)["layout"].get("title", {})
        out.append(title.get("text", "") if isinstance(title, dict) else str(title))
    return out


def subplot_titles(at: AppTest, title_start: str) -> list[str]:
    """The panel titles (layout annotations) of the chart whose title starts with title_start."""
    for el in at.get("plotly_chart"):
        layout = json.loads(el.proto.spec)["layout"]
        title = layout.get("title", {})
        if (title.get("text", "") if isinstance(title, dict) else str(title)).startswith(title_start):
            return [a.get("text", "") for a in layout.get("annotations", [])]
    raise AssertionError(f"no chart titled {title_start!r}")


# ----------------------------------------------------------------------------- every page


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders(exp, monkeypatch, page):
    at = open_app(exp, monkeypatch, page)
    ok(at)
    assert at.title[0].value == PAGES[page]
    assert len(at.caption) + len(at.markdown) >= 3  # every chart carries a one-line caption
    if page not in ("new_run",):
        assert len(at.get("plotly_chart")) >= 1 or page == "sample"
    if page not in ("new_run", "how_it_works"):
        assert any("Synthetic test data" in w.value for w in at.warning)


def test_compare_table_metrics_and_widgets(exp, monkeypatch):
    at = open_app(exp, monkeypatch)
    ok(at)
    assert "Test accuracy per curriculum" in chart_titles(at)
    table = at.table[0].value.reset_index()
    assert list(table["curriculum"]) == ["Random", "SPL", "MCL", "DoCL-NR", "DoCL"]
    assert all("±" in v for v in table["test acc (%)"])  # two complete seeds each
    labels = [m.label for m in at.metric]
    assert any(label.startswith("DoCL") for label in labels)
    docl = [m for m in at.metric if m.label.startswith("DoCL ★") or m.label == "DoCL"][0]
    assert "vs Random" in (docl.proto.delta or "")
    # two seeds: no paired interval to speak of, so no star and no "best", and the page says why
    assert not any("★" in m.label for m in at.metric)
    assert any("too few seeds" in m.value for m in at.markdown)
    assert not any("is best" in m.value for m in at.markdown)
    at.radio(key="cmp_x").set_value("steps").run()
    at.radio(key="cmp_metric").set_value("val_acc").run()
    ok(at)
    assert "Validation accuracy per curriculum" in chart_titles(at)
    runs = at.table[1].value
    assert set(runs["status"]) == {"complete", "running", "failed"}
    assert len(at.get("download_button")) >= 3


def test_sidebar_filters_and_run_select(exp, monkeypatch):
    at = open_app(exp, monkeypatch, "scores")
    at.multiselect(key="f_curricula").set_value(["random", "docl"]).run()
    ok(at)
    assert at.sidebar.selectbox(key="focus_run").options == [
        "Random · seed 0", "Random · seed 1", "DoCL · seed 0", "DoCL · seed 1", "DoCL · seed 2 (docl-s2-live) · ● live"]
    at.sidebar.selectbox(key="focus_run").set_value("docl-s2-live").run()
    ok(at)
    assert any("live" in m.value for m in at.markdown)  # the running run is labelled live
    assert at.title[0].value == "Scores over rounds"


def test_scores_widgets(exp, monkeypatch):
    at = open_app(exp, monkeypatch, "scores")
    at.radio(key="sc_col").set_value("score_byproduct").run()
    at.radio(key="sc_order").set_value("mean").run()
    assert at.radio(key="sc_scale").value == "rank"  # ranks by default: raw scales differ ~100× across rounds
    at.radio(key="sc_scale").set_value("raw").run()
    assert any("apart" in m.value and "not comparable" in m.value for m in at.markdown)
    at.slider(key="sc_round").set_value(2).run()
    ok(at)
    titles = chart_titles(at)
    assert "Our byproduct score: histogram, round 2" in titles
    assert any(t.startswith("Our byproduct score of 240 samples") for t in titles)
    assert "How stable is the ranking?" in titles
    assert any("vs" in t for t in titles)  # estimator agreement
    at.number_input(key="sc_add").set_value(7).run()
    ok(at)
    # the downloads: one round as CSV (the last by default) and the whole run as npz, built on click
    box = at.selectbox(key="sc_dl_round")
    assert str(box.value) == box.options[-1]
    assert {b.key for b in at.get("download_button")} >= {"sc_dl_csv", "sc_dl_npz"}


def test_scores_heatmap_downsamples_large_n(tmp_path, monkeypatch):
    big = write_experiment(tmp_path / "big", SyntheticSpec(n=1500, rounds=3, seeds=(0,), curricula=("docl",),
                                                           running=False, failed=False, probe=0, kind="points2d"))
    at = open_app(big, monkeypatch, "scores")
    ok(at)
    heat = json.loads(at.get("plotly_chart")[0].proto.spec)
    z = heat["data"][0]["z"]
    rows = int(z["shape"].split(",")[0]) if isinstance(z, dict) else len(z)
    assert rows == 400  # ≤ 400 rows by sorted-quantile binning
    assert "averaged in 400 sorted groups" in heat["layout"]["yaxis"]["title"]["text"]


def test_subsets_images(exp, monkeypatch):
    at = open_app(exp, monkeypatch, "subsets")
    ok(at)
    at.slider(key="sub_round").set_value(1).run()
    ok(at)
    run = RunReader(exp / "docl-s0")
    k = int(run.rounds().set_index("round").loc[1, "k"])
    kt = [m for m in at.metric if m.label == "selected k_t"][0]
    assert kt.value == f"{k:,}"
    titles = chart_titles(at)
    assert "Class balance, round 1" in titles
    assert "Share of S_t with flipped labels (mean over seeds)" in titles
    assert any(t.startswith("Jaccard overlap of S_t") for t in titles)
    assert len(at.get("image")) == 1  # one gallery element with the thumbnails
    at.slider(key="sub_jac_round").set_value(0).run()
    ok(at)


def test_subsets_points_and_curve(exp_points, exp_curve, monkeypatch):
    at = open_app(exp_points, monkeypatch, "subsets")
    ok(at)
    assert any("selected samples in input space" in t for t in chart_titles(at))
    at.sidebar.text_input(key="root").set_value(str(exp_curve)).run()
    ok(at)
    assert any("fitted curve" in t for t in chart_titles(at))


def test_regression_pages(exp_curve, monkeypatch):
    for page in ("compare", "scores", "datamap", "sample", "kernel"):
        at = open_app(exp_curve, monkeypatch, page)
        ok(at)
        assert at.title[0].value == PAGES[page]


def test_kernel_contributions(exp, monkeypatch):
    at = open_app(exp, monkeypatch, "kernel")
    ok(at)
    opts = at.selectbox(key="k_sample").options
    at.selectbox(key="k_sample").set_value(int(opts[3].split()[-1])).run()
    at.select_slider(key="k_round").set_value(2).run()
    ok(at)
    assert any(t.startswith("Trace kernel K on 24 probe samples, round 2") for t in chart_titles(at))
    assert "Top eigenvalues of K over rounds" in chart_titles(at)
    assert any(t.startswith("Top contributors c_ij") for t in chart_titles(at))
    # the score shown is r_i · (1/m) Σ_j H_ij r_j, recomputed in float64 from the stored kernel blocks
    # and residuals (not from the contributions array the page sums)
    K = RunReader(exp / "docl-s0").kernel(2)
    sid = at.selectbox(key="k_sample").value
    pos = int(np.flatnonzero(K["probe_ids"] == sid)[0])
    H, r = K["full"].astype(np.float64), K["residual"].astype(np.float64)   # (m, m, C, C), (m, C)
    want = float(sum(r[pos] @ H[pos, j] @ r[j] for j in range(len(r))) / len(r))
    shown = [m for m in at.metric if m.label.startswith("kernel score")][0].value
    assert float(shown) == pytest.approx(want, rel=1e-3, abs=1e-6)


def test_sample_page(exp, monkeypatch):
    at = open_app(exp, monkeypatch, "sample")
    ok(at)
    ds = RunReader(exp / "docl-s0").dataset()
    noisy_id = int(ds[(ds["split"] == "train") & ds["noisy"]]["sample_id"].iloc[0])
    at.number_input(key="smp_id").set_value(noisy_id).run()
    ok(at)
    assert any(t.startswith(f"Sample {noisy_id} in DoCL") for t in chart_titles(at))
    assert any("noisy label" in m.value and "p(clean label" in m.value for m in at.markdown)
    assert any(m.label == "times selected" for m in at.metric)
    # a flipped sample gets a p(clean label) panel beside p(given label), with the logged values
    panels = subplot_titles(at, f"Sample {noisy_id} in DoCL")
    assert panels[:3] == ["loss ℓ_i", "p(given label)", "p(clean label)"]
    hist = views.sample_history(RunReader(exp / "docl-s0"), noisy_id)
    assert hist["p_clean"].notna().all() and not np.allclose(hist["p_clean"], hist["p_true"])
    # a clean sample's p(clean label) is its p(given label): no second panel
    clean_id = int(ds[(ds["split"] == "train") & ~ds["noisy"]]["sample_id"].iloc[0])
    at.number_input(key="smp_id").set_value(clean_id).run()
    assert "p(clean label)" not in subplot_titles(at, f"Sample {clean_id} in DoCL")


def test_sample_reachable_from_kernel(exp, monkeypatch):
    at = open_app(exp, monkeypatch, "kernel")
    sid = at.selectbox(key="k_sample").value
    at.button(key="k_open").click().run()
    ok(at)
    assert at.title[0].value == "One sample's history"
    assert at.number_input(key="smp_id").value == sid


def test_datamap_colour_by(exp, monkeypatch):
    at = open_app(exp, monkeypatch, "datamap")
    for choice in ("noisy", "times_selected", "correctness"):
        at.radio(key="dm_color").set_value(choice).run()
        ok(at)
    assert at.dataframe[0].value["region"].tolist() == ["ambiguous", "easy-to-learn", "hard-to-learn"]
    assert any("240 samples" in t for t in chart_titles(at))


def test_how_it_works_identity(exp, monkeypatch):
    at = open_app(exp, monkeypatch, "how_it_works")
    ok(at)
    diff = [m for m in at.metric if m.label.startswith("max |a_i")][0].value
    assert float(diff) < 1e-4
    assert len(at.latex) >= 5
    at.slider(key="hw_n").set_value(20).run()
    ok(at)
    assert "20 points in 2-D, MLP 2→16→3, coloured by a_i" in chart_titles(at)


# ----------------------------------------------------------------------------- New run


def test_new_run_form_rejects_bad_name(exp, monkeypatch):
    started = []
    monkeypatch.setattr(launch, "start", lambda *a, **k: started.append(a))
    at = open_app(exp, monkeypatch, "new_run")
    at.text_input(key="nr_name").input("../escape")
    at.button(key="nr_submit").click().run()
    assert not at.exception
    assert any("not allowed" in e.value for e in at.error)
    assert not started
    assert not at.session_state["jobs"] if "jobs" in at.session_state else True


class _FakeProc:
    pid = 4242

    def poll(self):
        return 2


def test_new_run_starts_command_and_shows_failure(exp, monkeypatch, tmp_path):
    calls = []

    def fake_start(cmd, log, cwd=launch.REPO):
        calls.append((cmd, log))
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("usage: docl ...\ndocl: error: invalid choice: 'run'\n")
        return _FakeProc()

    target = tmp_path / "exp"
    shutil.copytree(exp, target)
    monkeypatch.setattr(launch, "start", fake_start)
    at = open_app(target, monkeypatch, "new_run")
    at.selectbox(key="nr_curriculum").set_value("spl")
    at.number_input(key="nr_seed").set_value(7)
    at.button(key="nr_submit").click().run()
    assert not at.exception
    assert len(calls) == 1
    cmd, log = calls[0]
    assert cmd[1:4] == ["-m", "docl_core", "run"]
    assert cmd[cmd.index("--out") + 1] == str(target.resolve())
    assert cmd[cmd.index("--name") + 1] == "spl-s7"
    assert cmd[cmd.index("--curriculum") + 1] == "spl" and cmd[cmd.index("--seed") + 1] == "7"
    assert log == target.resolve() / ".logs" / "spl-s7.log"
    # the failure shows the log tail in an error box
    assert any("stopped" in e.value for e in at.error)
    assert any("invalid choice" in c.value for c in at.code)


def test_build_command_pure(tmp_path):
    req = launch.RunRequest(dataset="digits", curriculum="docl", rounds=5, seed=3, label_noise=0.2,
                            estimator="fast", k_start=0.3, lr=0.1)
    cmd, run_dir, log = launch.build_command(req, tmp_path, python="python")
    assert cmd == ["python", "-m", "docl_core", "run", "--dataset", "digits", "--curriculum", "docl",
                   "--rounds", "5", "--seed", "3", "--out", str(tmp_path.resolve()), "--name", "docl-s3",
                   "--label-noise", "0.2", "--estimator", "fast", "--k-start", "0.3", "--lr", "0.1",
                   "--device", "cpu", "--no-progress"]
    assert run_dir == tmp_path.resolve() / "docl-s3"
    assert log == tmp_path.resolve() / ".logs" / "docl-s3.log"
    (tmp_path / "docl-s3").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        launch.build_command(req, tmp_path)


@pytest.mark.parametrize("field,value,msg", [
    ("dataset", "  ", "Dataset is empty"), ("curriculum", "magic", "Unknown curriculum"),
    ("estimator", "guess", "Unknown estimator"), ("rounds", 0, "Rounds must be"),
    ("label_noise", 1.0, "Label noise"), ("k_start", 0.0, "k_start"), ("lr", 0.0, "Learning rate"),
    ("name", "../up", "not allowed"), ("name", "a/b", "not allowed"), ("name", "/abs", "not allowed"),
    ("seed", -1, "Seed"),
])
def test_validate_rejects(field, value, msg):
    req = launch.RunRequest(**{field: value})
    assert any(msg in e for e in launch.validate(req))


def test_resolve_run_dir_stays_inside(tmp_path):
    assert launch.resolve_run_dir(tmp_path, "ok-name") == tmp_path.resolve() / "ok-name"
    for bad in ("..", "../x", "a/../../b", "/etc", ".hidden/.."):
        with pytest.raises(ValueError):
            launch.resolve_run_dir(tmp_path, bad)
    (tmp_path / "link").symlink_to("/tmp")
    with pytest.raises(ValueError, match="outside"):
        launch.resolve_run_dir(tmp_path, "link")


# ----------------------------------------------------------------------------- New run (issue 17)


class _Proc:
    """A started job: running until finish() sets its exit code."""

    def __init__(self, pid, code=None):
        self.pid, self.code = pid, code

    def poll(self):
        return self.code


def test_new_run_checks_as_you_type_and_starts_only_on_the_button(exp, monkeypatch, tmp_path):
    """Item 6: Enter in a field (AppTest: a committed value and a rerun) starts nothing; the
    problem shows in an error box once Start is pressed, and is checked again on every change
    after that; only the button starts a job, and only a valid one."""
    started = []
    monkeypatch.setattr(launch, "start", lambda cmd, log, cwd=launch.REPO: (started.append(cmd), _Proc(4000))[1])
    target = tmp_path / "exp"
    shutil.copytree(exp, target)
    at = open_app(target, monkeypatch, "new_run")
    ok(at)  # the defaults can start: a dataset that resolves here, a free seed
    assert not (target / f"docl-s{at.number_input(key='nr_seed').value}").exists()
    at.text_input(key="nr_dataset").input("digitz").run()  # typed, then Enter
    assert not at.exception and not started and not at.error  # problems wait for the button
    at.button(key="nr_submit").click().run()  # the button with a problem starts nothing, and says why
    assert not started
    assert any("unknown dataset 'digitz'" in e.value for e in at.error)
    at.text_input(key="nr_dataset").input(str(tmp_path / "nowhere.csv")).run()
    assert any("no such file or folder" in e.value and "nowhere.csv" in e.value for e in at.error)
    at.text_input(key="nr_dataset").input("digits").run()
    at.text_input(key="nr_label_column").input("y").run()
    assert any("label column applies to .csv datasets only" in e.value for e in at.error)
    at.text_input(key="nr_label_column").input("").run()
    taken = next(p.name for p in sorted(target.iterdir()) if p.name.startswith("docl-s"))
    at.number_input(key="nr_seed").set_value(int(taken.split("-s")[1])).run()
    assert any(f"{taken} already exists" in e.value and "is free" in e.value for e in at.error)
    assert not started
    at.number_input(key="nr_seed").set_value(77).run()
    ok(at)
    at.button(key="nr_submit").click().run()
    assert len(started) == 1 and started[0][started[0].index("--name") + 1] == "docl-s77"
    at.run()  # after a start the form moves to a free seed, and shows no problem
    ok(at)
    moved = at.number_input(key="nr_seed").value
    assert moved != 77 and not (target / f"docl-s{moved}").exists()
    # while the job starts (no folder yet), its folder cannot be asked for again
    at.number_input(key="nr_seed").set_value(77).run()
    at.button(key="nr_submit").click().run()
    assert len(started) == 1 and any("docl-s77 already exists" in e.value for e in at.error)


def test_job_status_is_one_status_from_its_own_run():
    """Item 7: a card reads run.json only when its own process wrote it."""
    theirs = {"status": "complete", "last_complete_round": 3, "rounds_planned": 4, "writer": {"pid": 2}}
    state = launch.job_status(2, theirs, pid=1)  # failed attempt; a later one completed the folder
    assert state == {"own": False, "status": "failed", "done": 0, "planned": None,
                     "error": "the process exited with code 2"}
    assert launch.job_status(0, theirs, pid=2)["status"] == "complete"
    assert launch.job_status(None, None, pid=3)["status"] == "starting"
    failed = {**theirs, "status": "failed", "error": "non-finite losses", "writer": {"pid": 5}}
    assert launch.job_status(3, failed, pid=5) == {"own": True, "status": "failed", "done": 4, "planned": 4,
                                                   "error": "non-finite losses"}


def test_retry_under_the_default_name_shows_one_card_with_its_own_log(exp, monkeypatch, tmp_path):
    """Item 7: a failed start, then a retry under the same name that completes: one card, one
    status (complete, no exit code), the retry's own log; the first log stays on disk; wrapped."""
    target = tmp_path / "exp"
    shutil.copytree(exp, target)
    procs = iter([_Proc(5001, code=2), _Proc(5002)])
    logs = []

    def fake_start(cmd, log, cwd=launch.REPO):
        logs.append(log)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("docl: error: a very long message that goes on " + "and on " * 40 + "\n"
                       if len(logs) == 1 else "run written\n")
        return next(procs)

    monkeypatch.setattr(launch, "start", fake_start)
    at = open_app(target, monkeypatch, "new_run")
    at.button(key="nr_submit").click().run()
    assert any("exited with code 2" in e.value for e in at.error)
    code = next(c for c in at.code if "very long message" in c.value)
    assert code.proto.wrap_lines  # long lines wrap instead of running off the right edge
    name = logs[0].stem
    at.button(key="nr_submit").click().run()  # retry: same default name (the first made no folder)
    assert logs[1] != logs[0] and logs[0].read_text().startswith("docl: error")  # nothing lost
    run = target / name
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"format": "docl-run/1", "name": name, "status": "complete",
                                              "last_complete_round": 3, "rounds_planned": 4,
                                              "writer": {"pid": 5002}, "config": {"curriculum": "docl"}}))
    at.run()
    cards = [m.value for m in at.markdown if m.value.startswith(f"**{name}**")]
    assert cards == [f"**{name}** — complete, 4/4 rounds"], cards
    assert not any("exited with code" in e.value for e in at.error)
    assert not any("very long message" in c.value for c in at.code)


# ----------------------------------------------------------------------------- bad input


def test_missing_folder_shows_error(tmp_path, monkeypatch):
    at = open_app(tmp_path / "nope", monkeypatch)
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error)


def test_folder_that_is_not_a_run(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "sub").mkdir()
    at = open_app(tmp_path, monkeypatch)
    assert not at.exception
    assert any("holds no docl runs" in e.value for e in at.error)


def test_default_demo_missing_gives_friendly_info(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCL_RUNS", raising=False)
    monkeypatch.setattr(common, "DEFAULT_ROOT", tmp_path / "assets" / "demo")
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    assert not at.exception and not at.error
    assert any("python -m docl_core demo" in i.value for i in at.info)
    at.switch_page("app_pages/how_it_works.py")
    at.run()  # the teaching page works without any experiment
    assert not at.exception and at.title[0].value == "How it works"


def test_typed_path_in_sidebar(exp, tmp_path, monkeypatch):
    at = open_app(exp, monkeypatch)
    at.sidebar.text_input(key="root").set_value(str(tmp_path / "missing")).run()
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error)
    at.sidebar.text_input(key="root").set_value(str(exp)).run()
    ok(at)


def test_folder_of_experiments(tmp_path, monkeypatch):
    small = dict(n=60, rounds=2, seeds=(0,), curricula=("random", "docl"), running=False, failed=False, probe=8)
    write_experiment(tmp_path / "alpha", SyntheticSpec(kind="points2d", num_classes=3, **small))
    write_experiment(tmp_path / "beta", SyntheticSpec(kind="curve1d", **small))
    at = open_app(tmp_path, monkeypatch)
    ok(at)
    assert at.sidebar.selectbox(key="experiment").options == ["alpha", "beta"]
    at.sidebar.selectbox(key="experiment").set_value("beta").run()
    ok(at)
    assert at.sidebar.caption[-1].value.startswith("beta:")


def test_single_run_folder_opens(exp, monkeypatch):
    at = open_app(exp / "docl-s0", monkeypatch, "scores")
    ok(at)
    assert at.sidebar.selectbox(key="focus_run").options == ["DoCL · seed 0"]


def test_corrupted_files(exp, tmp_path, monkeypatch):
    bad = tmp_path / "exp"
    shutil.copytree(exp, bad)
    (bad / "spl-s1" / "run.json").write_text("{ not json")
    (bad / "docl-s0" / "samples" / "round=0002.parquet").write_bytes(b"PAR1 garbage")
    np_path = bad / "docl-s0" / "kernel" / "round=0005.npz"
    np_path.write_bytes(b"not a zip")
    at = open_app(bad, monkeypatch)
    assert not at.exception
    assert any("Skipped unreadable runs" in w.value and "corrupted" in w.value for w in at.sidebar.warning)
    for page in ("scores", "kernel", "datamap", "sample", "subsets"):
        at.switch_page(f"app_pages/{page}.py")
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        if page in ("scores", "datamap", "kernel"):
            assert any("corrupted" in e.value for e in at.error), page


def test_unexpected_error_is_boxed(exp, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("synthetic failure for the test")
    monkeypatch.setattr(views, "default_trajectory_samples", boom)
    at = open_app(exp, monkeypatch, "scores")
    assert not at.exception
    assert any("Something went wrong" in e.value and "RuntimeError" in e.value for e in at.error)


def test_running_run_renders_everywhere(exp, monkeypatch):
    at = open_app(exp, monkeypatch)
    at.sidebar.selectbox(key="focus_run").set_value("docl-s2-live").run()
    for page in ("scores", "subsets", "kernel", "sample", "datamap"):
        at.switch_page(f"app_pages/{page}.py")
        at.run()
        ok(at)
        assert any("live" in m.value for m in at.markdown), page


def test_failed_run_renders(exp, monkeypatch):
    at = open_app(exp, monkeypatch)
    at.sidebar.selectbox(key="focus_run").set_value("mcl-s2-failed").run()
    at.switch_page("app_pages/scores.py")
    at.run()
    ok(at)
    assert any("failed" in m.value and "non-finite" in m.value for m in at.markdown)


# ----------------------------------------------------------------------------- views


def test_heatmap_bins_preserve_means():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(5, 1003)).astype(np.float32)
    Z, info = views.heatmap_bins(M, order="last", max_rows=400)
    assert Z.shape == (400, 5) and info["samples"].sum() == 1003
    np.testing.assert_allclose((Z * info["samples"].to_numpy()[:, None]).sum(0), M.sum(1), rtol=1e-4)
    assert Z[0, -1] >= Z[-1, -1]  # sorted, highest first
    Z2, info2 = views.heatmap_bins(M[:, :50], max_rows=400)
    assert Z2.shape == (50, 5) and (info2["samples"] == 1).all()


def test_views_on_a_run(exp):
    run = RunReader(exp / "docl-s0")
    M = views.round_matrix(run, "score")
    assert M.shape == (6, 240) and M.dtype == np.float32
    churn = views.rank_churn(M, run.round_ids)
    assert len(churn) == 5 and churn["spearman"].between(-1, 1).all()
    hist = views.sample_history(run, 5)
    assert hist["round"].tolist() == list(range(6))
    K = run.kernel(3)
    c = views.contributions_for(K, 0)
    assert c["contribution"].sum() == pytest.approx(float(K["kernel_score"][0]), rel=1e-4, abs=1e-6)
    exp_r = ExperimentReader(exp)
    curves = views.accuracy_curves(exp_r.rounds(), "test_acc", "steps")
    assert set(curves["curriculum"]) == {"random", "spl", "mcl", "docl-nr", "docl"}
    dm = views.data_map(views.round_matrix(run, "p_true"), views.round_matrix(run, "correct"))
    assert dm["confidence"].between(0, 1).all()


def test_jaccard_and_downsample():
    a = np.array([1, 1, 0, 0], bool)
    b = np.array([1, 0, 1, 0], bool)
    J = views.jaccard_matrix({"a": a, "b": b})
    assert J.loc["a", "b"] == pytest.approx(1 / 3) and J.loc["a", "a"] == 1
    df = pd.DataFrame({"x": np.arange(10_000), "keep": np.arange(10_000) % 1000 == 0})
    out = views.downsample_rows(df, 500, keep=df["keep"])
    assert len(out) == 500 and out["keep"].sum() == 10
    # groups: small groups (flipped labels, selected or not) are drawn whole, the large ones share the rest
    sel, flip = np.arange(10_000) % 3 == 0, np.arange(10_000) % 97 == 0
    df = pd.DataFrame({"sel": sel, "flip": flip})
    out = views.downsample_rows(df, 600, groups=df["sel"].astype(int) * 2 + df["flip"].astype(int))
    assert len(out) == 600 and out["flip"].sum() == flip.sum() and out.index.is_monotonic_increasing
    assert (out["sel"] & out["flip"]).sum() == (sel & flip).sum() and out["sel"].sum() > 100


def test_curriculum_colours_are_consistent():
    names = ["random", "spl", "mcl", "docl-nr", "docl"]
    colors = [common.curriculum_color(n) for n in names]
    assert len(set(colors)) == 5
    assert [common.curriculum_label(n) for n in names] == ["Random", "SPL", "MCL", "DoCL-NR", "DoCL"]
    # a curriculum the core does not name gets its own colour, the same one every time it is asked
    extra = common.curriculum_color("docl@shuffle")
    assert extra not in colors and common.curriculum_color("docl@shuffle") == extra
    assert common.curriculum_color("score-el2n-hard") not in (*colors, extra)


def test_rank_views_match_scipy_oracle():
    from scipy.stats import spearmanr
    rng = np.random.default_rng(1)
    M = rng.normal(size=(5, 700)).astype(np.float32)
    B = M + 0.7 * rng.normal(size=M.shape).astype(np.float32)
    churn = views.rank_churn(M, list(range(5)), top_frac=0.1)
    agree = views.estimator_agreement(M, B, list(range(5)))
    for r in range(1, 5):
        assert churn["spearman"][r - 1] == pytest.approx(spearmanr(M[r - 1], M[r]).statistic, abs=1e-9)
        a, b = set(np.argsort(-M[r - 1])[:70]), set(np.argsort(-M[r])[:70])
        assert churn["top_overlap"][r - 1] == pytest.approx(len(a & b) / len(a | b))
    for r in range(5):
        assert agree["spearman"][r] == pytest.approx(spearmanr(M[r], B[r]).statistic, abs=1e-9)
        assert agree["pearson"][r] == pytest.approx(np.corrcoef(M[r], B[r])[0, 1], abs=1e-6)


# ----------------------------------------------------------------------------- issue 16: honest lessons


def _paired_rounds(diffs_by_seed: dict[int, float], base: float = 0.80) -> pd.DataFrame:
    rows = []
    for seed, d in diffs_by_seed.items():
        for t in range(3):
            rows.append({"run": f"random-s{seed}", "curriculum": "random", "seed": seed, "round": t, "test_acc": base})
            rows.append({"run": f"docl-s{seed}", "curriculum": "docl", "seed": seed, "round": t,
                         "test_acc": base + (d if t == 2 else -0.3)})
    return pd.DataFrame(rows)


def test_star_rule_paired_t_interval():
    from scipy import stats
    # 3 seeds, all clearly above: the interval excludes zero → beats, and a star
    clear = _paired_rounds({0: 0.010, 1: 0.012, 2: 0.011})
    final = views.paired_differences(clear, "test_acc", "random", final=True)
    row = final.iloc[0]
    d = np.array([0.010, 0.012, 0.011])
    lo, hi = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
    assert row["verdict"] == "beats" and row["seeds"] == 3
    assert row["lo"] == pytest.approx(lo) and row["hi"] == pytest.approx(hi)
    assert views.winner(final, {"random": 0.8, "docl": 0.811}, "random") == "docl"
    # per round: DoCL trails in rounds 0-1 (by 30 points) and the sentence says so
    per = views.paired_differences(clear, "test_acc", "random")
    assert per.set_index("round").loc[0, "verdict"] == "trails"
    assert "trails Random in rounds 0–1" in views.lead_sentence(per, "docl", common.curriculum_label, "random")
    # 4 seeds that disagree in sign: no clear difference, no star
    mixed = _paired_rounds({0: 0.02, 1: -0.015, 2: 0.01, 3: -0.01})
    final = views.paired_differences(mixed, "test_acc", "random", final=True)
    assert final.iloc[0]["verdict"] == "no clear difference"
    assert views.winner(final, {"random": 0.8, "docl": 0.801}, "random") is None
    # 2 seeds: too few, whatever the gap
    two = _paired_rounds({0: 0.05, 1: 0.06})
    final = views.paired_differences(two, "test_acc", "random", final=True)
    assert final.iloc[0]["verdict"] == "too few seeds"
    assert views.winner(final, {"random": 0.8, "docl": 0.855}, "random") is None
    assert "too few seeds" in views.verdict_sentence(final.iloc[0], common.curriculum_label, "random")


def test_compare_paper_protocol_star_and_axes(exp_paper, monkeypatch):
    at = open_app(exp_paper, monkeypatch)
    ok(at)
    rounds = ExperimentReader(exp_paper).rounds()
    final = views.paired_differences(rounds, "test_acc", "sgd", final=True).set_index("curriculum")
    assert final.loc["docl", "verdict"] == "beats"  # the fixture's fiction, checked on its numbers
    assert final.loc["mcl", "verdict"] == "no clear difference"
    stars = [m.label for m in at.metric if "★" in m.label]
    assert stars == ["DoCL ★"]
    assert any("DoCL is best" in m.value for m in at.markdown)
    assert any("no clear difference" in m.value and "MCL" in m.value for m in at.markdown)
    # curricula in the core's order, sgd first and named as the paper's Random in the legend
    table = at.table[0].value.reset_index()
    assert list(table["curriculum"]) == ["SGD", "Random", "SPL", "MCL", "DoCL-NR", "DoCL"]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [tr.get("name") for tr in spec["data"] if tr.get("name")]
    assert names[0] == "SGD (the paper's Random)"
    assert spec["layout"]["xaxis"]["title"]["text"] == "epoch"
    assert at.radio(key="cmp_x").options == ["epochs", "gradient steps", "samples seen"]
    at.radio(key="cmp_x").set_value("samples_seen").run()
    ok(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["title"]["text"].startswith("samples seen")
    curves = views.accuracy_curves(views.with_samples_seen(rounds), "test_acc", "samples_seen")
    assert curves[curves["curriculum"] == "sgd"]["x"].max() == pytest.approx(9 * 160)  # all N every epoch
    assert curves[curves["curriculum"] == "docl"]["x"].max() < 9 * 160


def test_subsets_caption_matches_the_run(exp, monkeypatch):
    at = open_app(exp, monkeypatch, "subsets")
    at.slider(key="sub_round").set_value(1).run()
    ok(at)
    run = RunReader(exp / "docl-s0")
    row = run.rounds().set_index("round").loc[1]
    share = 100 * row["noisy_selected"] / row["k"]
    ds = run.dataset()
    base = 100 * ds.loc[ds["split"] == "train", "noisy"].mean()
    caption = [m.value for m in at.markdown if "S_t holds" in m.value]
    assert len(caption) == 1
    assert f"**{share:.1f} %** of S_t have flipped labels, against **{base:.1f} %**" in caption[0]
    # and the view itself, on the same round
    sel = views.selection_frame(run, 1, ds)
    about = views.subset_summary(sel, "docl", run.meta["class_names"], run.kernel(1))
    assert 100 * about["noisy_share"] == pytest.approx(share)
    assert about["noise_vs_base"] in ("above", "below", "at")
    if about["noise_vs_base"] == "above":
        assert "self term c_ii" in about["sentence"] and "self_noisy" in about
    assert about["top_share"] >= about["uniform"] >= about["low_share"]


def test_one_round_across_pages_and_play_stops(exp, monkeypatch):
    at = open_app(exp, monkeypatch, "subsets")
    at.slider(key="sub_round").set_value(2).run()
    ok(at)
    for page, key in (("scores", "sc_round"), ("kernel", "k_round")):
        at.switch_page(f"app_pages/{page}.py")
        at.run()
        ok(at)
        widget = at.slider(key=key) if page == "scores" else at.select_slider(key=key)
        assert widget.value == 2, page
    at.slider(key="sc_round") if False else None
    at.switch_page("app_pages/scores.py")
    at.run()
    at.slider(key="sc_round").set_value(4).run()
    at.switch_page("app_pages/subsets.py")
    at.run()
    assert at.slider(key="sub_round").value == 4
    # Play from the second-to-last round: one step to the last, then it stops (no wrap to round 0)
    last = RunReader(exp / "docl-s0").last_complete_round
    at.slider(key="sub_round").set_value(last - 1).run()
    at.toggle(key="sub_play").set_value(True).run()
    assert at.slider(key="sub_round").value == last - 1  # shows where it starts
    at.run()  # one tick
    at.run()
    assert at.slider(key="sub_round").value == last
    assert at.toggle(key="sub_play").value is False
    at.run()
    assert at.slider(key="sub_round").value == last
    ok(at)


def test_paper_protocol_says_epoch(exp_paper, monkeypatch):
    at = open_app(exp_paper, monkeypatch, "subsets")
    ok(at)
    assert at.slider(key="sub_round").label == "Epoch"
    assert any("this epoch" in m.value for m in at.markdown)
    at.switch_page("app_pages/scores.py")
    at.run()
    ok(at)
    assert at.slider(key="sc_round").label == "Epoch"
    heat = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert heat["layout"]["xaxis"]["title"]["text"] == "epoch"


def test_how_it_works_alignment_chart(exp, monkeypatch):
    at = open_app(exp, monkeypatch, "how_it_works")
    ok(at)
    spec = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    rv = [s for s in spec if s["layout"]["title"]["text"].startswith("Score against ‖r‖·‖v‖")][0]
    assert rv["layout"]["xaxis"]["title"]["text"].startswith("‖r_i‖ · ‖v_i‖")
    ex = views.tiny_example()
    pts = ex["points"]
    np.testing.assert_allclose(pts["score"], pts["rv_norm"] * pts["cos_rv"], rtol=1e-4, atol=1e-7)
    assert (pts["cos_rv"].abs() <= 1 + 1e-5).all()
    align = views.alignment_summary(pts)
    shown = [m.value for m in at.markdown if "The highest score" in m.value][0]
    assert f"cos(r, v) = {align['top_cos']:.2f}" in shown


def _all_pages(at: AppTest, where: str) -> None:
    for page in PAGES:
        at.switch_page(f"app_pages/{page}.py")
        at.run()
        assert not at.exception, (where, page, [e.value for e in at.exception])
        assert not at.error, (where, page, [e.value for e in at.error])
        assert at.title[0].value == PAGES[page], (where, page)


@pytest.mark.parametrize("presentation", [False, True], ids=["normal", "presentation"])
@pytest.mark.parametrize("which", ["clean-digits", "noisy-digits", "frontier-digits", "order-digits", "paper",
                                   "regression"])
def test_every_page_every_experiment(which, presentation, exp_paper, exp_curve, monkeypatch):
    """The bundled demos (clean-digits, noisy-digits, frontier-digits, order-digits), a synthetic paper
    experiment, a regression."""
    root = {"paper": exp_paper, "regression": exp_curve}.get(which, DEMO / which)
    if which.endswith("digits") and not (root / "docl-s0" / "run.json").is_file():
        pytest.fail(f"the bundled demo {root} is missing: python -m docl_core demo")
    at = open_app(root, monkeypatch, presentation=presentation)
    assert at.sidebar.toggle(key="_w_presentation").value is presentation
    _all_pages(at, which)
    # Presentation mode persists across pages; it hides downloads and shows the takeaway in a callout
    assert at.session_state["presentation"] is presentation
    at.switch_page("app_pages/compare.py")
    at.run()
    assert (len(at.get("download_button")) == 0) is presentation
    if presentation:
        assert at.info and any(w in at.info[0].value for w in ("is best", "No clear winner", "beats", "No verdict"))
        spec = json.loads(at.get("plotly_chart")[0].proto.spec)
        assert spec["layout"]["xaxis"]["tickfont"]["size"] >= 18
        assert spec["layout"]["title"]["font"]["size"] >= 20 or spec["layout"]["title_font"]["size"] >= 20


def test_presentation_toggle_in_sidebar(exp, monkeypatch):
    at = open_app(exp, monkeypatch, "subsets")
    n_charts = len(at.get("plotly_chart"))
    at.sidebar.toggle(key="_w_presentation").set_value(True).run()
    ok(at)
    assert len(at.get("plotly_chart")) < n_charts  # secondary charts hidden
    assert any("S_t holds" in i.value for i in at.info)
    at.switch_page("app_pages/scores.py")
    at.run()
    assert at.sidebar.toggle(key="_w_presentation").value is True
    ok(at)


@pytest.fixture(scope="module")
def real_paper(tmp_path_factory):
    """Real runs under --protocol paper (not synthetic): sgd, random and docl, 2 seeds, 4 epochs."""
    from docl_core.config import RunConfig
    from docl_core.protocol import PaperSchedule
    from docl_core.trainer import train_run
    out = tmp_path_factory.mktemp("real-paper")
    for seed in (0, 1):
        for c in ("sgd", "random", "docl"):
            cfg = RunConfig(dataset="digits", curriculum=c, protocol="paper", seed=seed, probe_size=8,
                            model="mlp", device="cpu", log_every="epoch",
                            schedule=PaperSchedule(epochs=4, episodes=[0, 1, 3]))
            train_run(cfg, out / f"{c}-s{seed}")
    return out


def test_every_page_renders_real_paper_runs(real_paper, monkeypatch):
    _all_pages(open_app(real_paper, monkeypatch), "real paper runs")


def test_quick_preset_command_and_eta(tmp_path):
    req = launch.quick_request("docl", seed=launch.next_free_seed(tmp_path, "docl"))
    cmd, run_dir, _ = launch.build_command(req, tmp_path, python="python")
    assert cmd[cmd.index("--protocol") + 1] == "paper" and cmd[cmd.index("--epochs") + 1] == "8"
    assert cmd[cmd.index("--model") + 1] == "mlp" and cmd[cmd.index("--log-every") + 1] == "epoch"
    assert "--rounds" not in cmd and "--k-start" not in cmd and run_dir.name == "docl-s0"
    (tmp_path / "docl-s0").mkdir()
    assert launch.next_free_seed(tmp_path, "docl") == 1
    meta = {"last_complete_round": 1, "rounds_planned": 8, "created": 1000.0}
    assert launch.eta_text(meta, 1020.0).startswith("about 60 s left")   # 10 s an epoch, 6 to go
    assert launch.eta_text({**meta, "last_complete_round": -1}, 1020.0) == ""
    # the command really runs: the CLI accepts every flag it builds
    from docl_core.cli import build_parser
    build_parser().parse_args(cmd[3:])


def test_quick_run_button_starts_the_preset(exp, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(launch, "start", lambda cmd, log, cwd=launch.REPO: (calls.append(cmd), _FakeProc())[1])
    target = tmp_path / "exp"
    shutil.copytree(exp, target)
    at = open_app(target, monkeypatch, "new_run")
    at.button(key="nr_quick").click().run()
    assert not at.exception and len(calls) == 1
    assert calls[0][calls[0].index("--epochs") + 1] == "8"


def test_representative_probe_skips_flipped_and_self_carried_samples():
    c = np.array([[5.0, 0.1, 0.1], [0.2, 0.5, 3.0], [0.1, 2.0, 1.0]])  # sample 10 carries itself
    K = {"probe_ids": np.array([10, 11, 12]), "kernel_score": c.sum(1), "contributions": c}
    assert views.representative_probe(K) == 11            # highest score among those carried by others
    assert views.representative_probe(K, noisy_ids=[11]) == 12
    assert views.representative_probe(K, noisy_ids=[11, 12]) == 10  # nothing qualifies: the top score


def test_scores_shows_the_byproduct_fidelity_on_paper_runs(real_paper, monkeypatch):
    at = open_app(real_paper, monkeypatch, "scores")
    ok(at)
    assert "How far is the authors' byproduct from the exact score?" in [h.value for h in at.subheader]
    assert any(t.startswith("Byproduct against exact") for t in chart_titles(at))


# ----------------------------------------------------------------------------- issue 17


def _selection(points: list[dict]) -> dict:
    """A plotly selection event as st.plotly_chart(on_select="rerun") returns it."""
    return {"selection": {"points": points, "point_indices": [p["point_index"] for p in points if "point_index" in p],
                          "box": [], "lasso": []}}


def test_picked_samples_reads_streamlits_click_payload():
    # a click as the browser sends it (captured from the demo's Data map): numpy customdata rows
    # arrive as typed arrays, i.e. dicts {"0": .., "1": ..}, which indexing by [0] broke (KeyError: 0)
    clicked = _selection([{"curve_number": 0, "point_number": 707, "point_index": 707, "x": 0.393, "y": 0.560,
                           "customdata": {"0": 707, "1": 8, "2": 2}, "marker_color": 0.625}])
    assert common.picked_samples(clicked, [np.arange(1222)]) == [707]
    # two traces (clean, then flipped labels), drawn from a downsampled frame: ids are not positions
    clean, flipped = np.array([5, 9, 40, 41]), np.array([3, 17, 250])
    second = _selection([{"curve_number": 1, "point_number": 2, "point_index": 2, "x": 0.1, "y": 0.05,
                          "customdata": {"0": 250, "1": 0}}])
    assert common.picked_samples(second, [clean, flipped]) == [250]
    box = _selection([{"curve_number": 0, "point_index": 1, "customdata": {"0": 9}},
                      {"curve_number": 1, "point_index": 0, "customdata": {"0": 3}}])
    assert common.picked_samples(box, [clean, flipped]) == [9, 3]
    # no trace index: customdata as a list or as the typed-array dict
    assert common.picked_samples(_selection([{"customdata": [12, 1]}]), []) == [12]
    assert common.picked_samples(_selection([{"customdata": {"0": 13.0, "1": 1}}]), []) == [13]
    # nothing picked, no event, a cleared selection
    assert common.picked_samples(_selection([]), [clean]) == []
    assert common.picked_samples(None, [clean]) == []
    assert common.picked_samples({"selection": {}}, [clean]) == []


def test_p_given_label_named_for_what_it_is(exp, monkeypatch):
    at = open_app(exp, monkeypatch, "sample")
    ds = RunReader(exp / "docl-s0").dataset()
    flipped = ds[(ds["split"] == "train") & ds["noisy"]].iloc[0]
    at.number_input(key="smp_id").set_value(int(flipped["sample_id"])).run()
    ok(at)
    spec = json.dumps([json.loads(el.proto.spec) for el in at.get("plotly_chart")])
    assert "p(given label)" in spec and "p(true" not in spec
    text = " ".join(m.value for m in at.markdown)
    assert "true class" not in text
    names = RunReader(exp / "docl-s0").meta.get("class_names") or []
    clean = names[int(flipped["clean_label"])] if names else str(int(flipped["clean_label"]))
    assert f"clean label {clean}" in text and "p(given label" in text
    at = open_app(exp, monkeypatch, "datamap")
    ok(at)
    layout = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "p(given label)" in layout["layout"]["yaxis"]["title"]["text"]
    hover = [t for tr in layout["data"] for t in tr.get("text", [])]
    assert any("(flipped)" in t and "clean label" in t for t in hover)
    flipped_ids = set(ds.loc[ds["noisy"].astype(bool), "sample_id"].astype(int))
    for t in hover:  # "(flipped)" exactly on the flipped samples, whatever the colouring
        assert ("(flipped)" in t) == (int(t.split()[1]) in flipped_ids), t
    at.radio(key="dm_color").set_value("correctness").run()
    ok(at)
    for tr in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]:
        for t in tr.get("text", []):
            assert ("(flipped)" in t) == (int(t.split()[1]) in flipped_ids), t
    assert "p(true" not in json.dumps(layout) and "p(true" not in " ".join(c.value for c in at.caption)


@pytest.fixture(scope="module")
def exp_mixed(tmp_path_factory) -> Path:
    """One folder, two settings: image runs (2 curricula × 2 seeds, 10 % flipped) and one 2-D-points
    run with clean labels, named like a third seed of DoCL; they must never be pooled."""
    from synthetic_runs import make_dataset, write_run
    folder = write_experiment(tmp_path_factory.mktemp("runs") / "mixed", SyntheticSpec(
        n=120, rounds=4, curricula=("random", "docl"), seeds=(0, 1), running=False, failed=False))
    moons = SyntheticSpec(n=90, rounds=3, kind="points2d", num_classes=2, label_noise=0.0, probe=0, embedding=False)
    write_run(folder, make_dataset(moons), moons, "docl", 2, name="docl-s2")
    return folder


def _plotly_array(v) -> np.ndarray:
    """A figure array as plotly's JSON holds it: a list, or {"dtype", "bdata" (base64), "shape"}."""
    if isinstance(v, dict) and "bdata" in v:
        import base64
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        return a.reshape([int(d) for d in str(v.get("shape", len(a))).split(",")])
    return np.asarray(v)


def test_runs_of_different_settings_are_never_pooled(exp_mixed, monkeypatch):
    exp_reader = ExperimentReader(exp_mixed)
    settings = common.run_settings(exp_reader.runs)
    assert sorted(len(g) for g in settings.values()) == [1, 4]
    assert all("dataset" in k and "label_noise" in k for k in settings)
    at = open_app(exp_mixed, monkeypatch)
    ok(at)
    mixed = [w.value for w in at.warning if "mixes 2 settings" in w.value]
    assert mixed and "never averaged together" in mixed[0]
    assert len(at.sidebar.selectbox(key="f_setting").options) == 2
    # the larger setting first: the image runs, two seeds per curriculum, its own dataset in the header
    head = next(m.value for m in at.markdown if m.value.startswith("**Experiment**"))
    assert "synthetic-image" in head and "synthetic-points2d" not in head and "2 curricula × 2 seeds" in head
    curve = json.loads(at.get("plotly_chart")[0].proto.spec)
    seeds = {tr["name"]: set(_plotly_array(tr["customdata"]).ravel().astype(int)) for tr in curve["data"]
             if tr.get("customdata") is not None}
    assert seeds["DoCL"] == {2}, seeds  # DoCL's band pools its 2 image seeds, not the points run
    # the other setting: one run, its own dataset, one seed
    other = next(k for k in settings if len(settings[k]) == 1)
    at.sidebar.selectbox(key="f_setting").set_value(other).run()
    ok(at)
    head = next(m.value for m in at.markdown if m.value.startswith("**Experiment**"))
    assert "synthetic-points2d" in head and "1 curriculum × 1 seed" in head, head
    assert any("mixes 2 settings" in w.value and other in w.value for w in at.warning)
    for page in ("subsets", "scores"):  # the single-run and subset pages keep to the setting too
        at.switch_page(f"app_pages/{page}.py").run()
        ok(at)
        assert at.sidebar.selectbox(key="focus_run").options == ["DoCL · seed 2"]
    # a run that appears later (started from New run, say) brings its own setting into view
    from synthetic_runs import make_dataset, write_run
    spec = SyntheticSpec(n=120, rounds=4, curricula=("random", "docl"), seeds=(0, 1))
    write_run(exp_mixed, make_dataset(spec), spec, "random", 7)
    try:
        at.run()
        ok(at)
        assert at.sidebar.selectbox(key="f_setting").value != other
        assert "Random · seed 7" in at.sidebar.selectbox(key="focus_run").options
    finally:
        shutil.rmtree(exp_mixed / "random-s7")


def test_one_setting_draws_no_setting_picker(exp, monkeypatch):
    at = open_app(exp, monkeypatch)
    ok(at)
    assert not any(s.key == "f_setting" for s in at.sidebar.selectbox)
    assert not any("mixes" in w.value for w in at.warning)


def test_empty_filter_says_so_and_plurals(exp, exp_curve, monkeypatch):
    at = open_app(exp, monkeypatch)
    at.multiselect(key="f_curricula").set_value([]).run()
    ok(at)
    said = " ".join(w.value for w in at.warning) + " ".join(i.value for i in at.info)
    assert "filters hide all 12 runs" in said and "No run has committed" not in said
    at.switch_page("app_pages/scores.py").run()
    ok(at)
    assert any("filters hide all" in w.value for w in at.warning)
    # one curriculum, one seed: singular nouns
    at = open_app(exp_curve, monkeypatch)
    at.multiselect(key="f_curricula").set_value(["docl"]).run()
    ok(at)
    head = next(m.value for m in at.markdown if m.value.startswith("**Experiment**"))
    assert "1 curriculum × 1 seed" in head and "1 curricula" not in head
    assert any(c.value.endswith(": 2 runs, 1 shown") for c in at.sidebar.caption)
    assert common.plural(1, "run") == "1 run" and common.plural(3, "run") == "3 runs"
    assert common.plural(1, "curriculum", "curricula") == "1 curriculum"
    assert common.plural(2, "curriculum", "curricula") == "2 curricula"
    assert common.plural(1200, "sample") == "1,200 samples"


def test_timing_table_is_a_median_with_spread_and_marks_logging():
    # Random: 9 quiet rounds at 0.2 s of training and one at 32 s (a busy machine); the mean says 3.4 s
    train = [0.2] * 9 + [32.0]
    rounds = pd.DataFrame({"curriculum": ["random"] * 10 + ["docl"] * 10,
                           "score_time_s": [5.0] * 10 + [6.0] * 10, "select_time_s": 0.001,
                           "train_time_s": train + [0.3] * 10, "eval_time_s": 0.05})
    t = views.timing_table(rounds).set_index(["curriculum", "phase"])
    assert t.loc[("random", "train"), "seconds"] == pytest.approx(0.2)
    assert t.loc[("random", "train"), "q75"] == pytest.approx(np.quantile(train, 0.75))
    assert t.loc[("random", "train"), "rounds"] == 10
    assert not t.loc[("random", "score"), "used"]  # Random does not select by score: logging
    assert t.loc[("docl", "score"), "used"] and t.loc[("random", "train"), "used"]


def test_time_chart_shows_medians_spread_and_logging(exp, monkeypatch):
    at = open_app(exp, monkeypatch)
    ok(at)
    fig = next(json.loads(el.proto.spec) for el in at.get("plotly_chart")
               if "wall-clock" in json.dumps(json.loads(el.proto.spec)["layout"].get("title", "")))
    names = [tr["name"] for tr in fig["data"]]
    assert "score pass, logging only" in names and "score pass" in names and "training" in names
    logging = next(tr for tr in fig["data"] if tr["name"] == "score pass, logging only")
    y = dict(zip(logging["x"], _plotly_array(logging["y"])))
    assert np.isfinite(y["Random"]) and not np.isfinite(y["DoCL"])  # Random's score pass is logging, DoCL's is not
    assert all(tr.get("error_y", {}).get("arrayminus") is not None for tr in fig["data"])
    text = " ".join(m.value for m in at.markdown)
    assert "wall-clock" in text and "shared with other jobs" in text and "cannot show CPU time" in text
    assert "median" in fig["layout"]["yaxis"]["title"]["text"]


# ----------------------------------------------------------------------------- issue 17.14: the first load


_NO_TORCH_WALK = r"""
import json, sys
repo, root, pages = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
sys.path.insert(0, repo)
import os
os.environ["DOCL_RUNS"] = root
import docl_core
bare = "torch" in sys.modules
from app import common
common.WARM_UP_DELAY_S = 3600.0  # the warm-up thread is started as in the product, and waits
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(repo + "/app/main.py", default_timeout=120)
at.run()
seen = {}
for page in pages:
    at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception and not at.error, (page, [e.value for e in at.exception] + [e.value for e in at.error])
    seen[page] = "torch" in sys.modules
print(json.dumps({"bare": bare, "pages": seen, "warm_up": [t.name for t in __import__("threading").enumerate()]}))
"""


def test_dashboard_pages_do_not_import_torch(exp):
    """torch takes seconds to import on a small machine: no page but How it works and New run needs it, so the
    first chart must not wait for it (the warm-up thread imports it once the first page is drawn)."""
    import subprocess
    # How it works computes with torch.func; New run checks a dataset with the loaders (docl_core.data)
    pages = [p for p in PAGES if p not in ("how_it_works", "new_run")] + ["embedding"]
    p = subprocess.run([sys.executable, "-c", _NO_TORCH_WALK, str(REPO), str(exp), ",".join(pages)],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["bare"] is False, "`import docl_core` imports torch"
    assert not any(got["pages"].values()), f"pages that import torch: {got['pages']}"
    assert "docl-warm-up" in got["warm_up"], "the torch.func warm-up thread was not started after the first page"


def test_docl_core_names_load_on_first_use():
    import docl_core
    from docl_core import Trainer, docl_scores  # noqa: F401  (the package's public names still import)
    assert set(docl_core.__all__) <= set(dir(docl_core))
    with pytest.raises(AttributeError):
        docl_core.not_a_name  # noqa: B018


def test_dataset_without_thumbnails(exp):
    run = RunReader(exp / "docl-s0")
    full, light = run.dataset(), run.dataset(thumbnails=False)
    assert "thumbnail" in full.columns and "thumbnail" not in light.columns
    pd.testing.assert_frame_equal(light, full.drop(columns="thumbnail"))


def test_row_ranks_match_scipy_oracle():
    from scipy.stats import rankdata
    rng = np.random.default_rng(2)
    M = rng.normal(size=(4, 500)).astype(np.float32)
    M[1, :7] = np.nan  # NaN ranks lowest
    R = views.row_ranks(M)
    for r in range(4):
        want = rankdata(np.where(np.isnan(M[r]), -np.inf, M[r]), method="average") - 1  # the 7 NaN tie
        np.testing.assert_array_equal(R[r], want)
    pd.testing.assert_frame_equal(views.rank_churn(M, range(4), ranks=R), views.rank_churn(M, range(4)))


# ----------------------------------------------------------------------------- issue 23: scores named by their estimator


def test_sample_and_scores_name_the_score_that_drove_selection(monkeypatch):
    """On a paper-protocol demo the plotted score is the authors' byproduct: no panel, title or caption
    calls it a_i = r_i·v_i; the exact score is shown beside it under its own name, and the captions
    about a peak come from the curve they name."""
    root = DEMO / "noisy-digits"
    at = open_app(root, monkeypatch, "sample")
    at.sidebar.selectbox(key="focus_run").set_value("docl-s0").run()
    ok(at)
    panels = subplot_titles(at, "Sample ")
    assert "authors' byproduct score · drove selection" in panels
    assert "exact score a_i = r_i·v_i" in panels
    assert not any(p.startswith("score a_i") for p in panels)
    run = RunReader(root / "docl-s0")
    sid = int(at.number_input(key="smp_id").value)
    hist = views.sample_history(run, sid)
    frames = [run.samples(t, ["sample_id", "score_exact"]).assign(round=t) for t in run.round_ids]
    exact = pd.concat([f[f["sample_id"] == sid] for f in frames], ignore_index=True).dropna()
    peak = int(exact.loc[exact["score_exact"].idxmax(), "round"])
    by_peak = int(hist.loc[hist["score"].idxmax(), "round"])
    caption = " ".join(m.value for m in at.markdown)
    assert f"The exact score peaked in epoch {peak}" in caption
    assert f"The authors' byproduct score peaked in epoch {by_peak}" in caption
    at.switch_page("app_pages/scores.py")
    at.run()
    ok(at)
    head = at.caption[0].value
    assert "authors' byproduct" in head and "a_i = r_i·v_i" in head and "selects by it" not in head
    assert at.radio(key="sc_col").value == "score"
    assert any(t.startswith("Authors' byproduct score of") for t in chart_titles(at))


def test_tied_scores_have_no_invented_ranks():
    """A round whose scores are all equal has no ranking (NaN, drawn grey) and no churn; ties share a rank."""
    from scipy.stats import rankdata, spearmanr
    rng = np.random.default_rng(3)
    M = rng.normal(size=(5, 300)).astype(np.float32)
    M[0] = 0.0                       # an all-zero round, as after a warm start
    M[3, :100] = 1.5                 # a tie group
    R = views.row_ranks(M)
    assert np.isnan(R[0]).all()
    for r in range(1, 5):
        np.testing.assert_allclose(R[r], rankdata(M[r], method="average") - 1)
    churn = views.rank_churn(M, range(5))
    assert np.isnan(churn["spearman"][0]) and np.isnan(churn["top_overlap"][0])   # 0 → 1: undefined
    for r in range(2, 5):
        assert churn["spearman"][r - 1] == pytest.approx(spearmanr(M[r - 1], M[r]).statistic, abs=1e-9)
    Z, _ = views.heatmap_bins(R / 299, order="mean")
    assert np.isnan(Z[:, 0]).all() and np.isfinite(Z[:, 1:]).all()


def test_scores_page_leaves_tied_rounds_out_of_the_churn(monkeypatch):
    """clean-digits' first epochs log all-zero byproduct scores: the churn chart skips them and the
    takeaway says so instead of reading ρ = 1 as 'the frontier stays put'."""
    root = DEMO / "clean-digits"
    run = RunReader(root / "docl-s0")
    M = views.round_matrix(run, "score")
    tied = [t for t in run.round_ids if np.nanmax(M[t]) == np.nanmin(M[t])]
    assert tied, "the demo's epoch 0 logs no byproduct estimate yet: all scores 0"
    at = open_app(root, monkeypatch, "scores")
    at.sidebar.selectbox(key="focus_run").set_value("docl-s0").run()
    ok(at)
    text = " ".join(m.value for m in at.markdown) + " ".join(i.value for i in at.info)
    assert "left out" in text
    churn = views.rank_churn(M, run.round_ids)
    assert churn.loc[churn["round"].isin([t + 1 for t in tied]), "spearman"].isna().all()


def _final(verdicts: dict) -> pd.DataFrame:
    return pd.DataFrame([{"curriculum": c, "verdict": v, "mean": 0.0, "lo": -1.0, "hi": 1.0, "seeds": 3}
                         for c, v in verdicts.items()])


def test_compare_headline_agrees_with_its_bullets():
    """The headline names every verdict the bullets give: a 'No clear winner' above bullets where
    SPL and DoCL-NR are clearly worse was a contradiction."""
    label = common.curriculum_label
    worse = _final({"random": "no clear difference", "spl": "trails", "docl-nr": "trails", "docl": "no clear difference"})
    head = views.compare_headline(worse, views.winner(worse, {}, "sgd"), label, "sgd")
    assert head.startswith("**No curriculum beats SGD**")
    assert "SPL and DoCL-NR trail it" in head and "Random and DoCL: no clear difference" in head
    assert "No clear winner" not in head
    flat = _final({"random": "no clear difference", "docl": "no clear difference"})
    assert views.compare_headline(flat, None, label, "sgd").startswith("**No clear winner**")
    best = _final({"random": "beats", "spl": "trails", "docl": "beats"})
    head = views.compare_headline(best, "docl", label, "sgd")
    assert head.startswith("**DoCL is best**") and "Random also beats SGD" in head and "SPL trails it" in head
    ref = _final({"spl": "trails", "mcl": "trails"})
    star = views.winner(ref, {}, "sgd")
    assert star == "sgd" and views.compare_headline(ref, star, label, "sgd").startswith("**SGD is best**: every other")
    few = _final({"docl": "too few seeds"})
    assert views.compare_headline(few, None, label, "sgd").startswith("**No verdict yet**")


def test_compare_page_headline_names_the_curricula_that_trail(exp_paper, monkeypatch):
    at = open_app(exp_paper, monkeypatch)
    ok(at)
    rounds = ExperimentReader(exp_paper).rounds()
    final = views.paired_differences(rounds, "test_acc", "sgd", final=True)
    head = next(m.value for m in at.markdown if "paired by seed" in m.value)
    for _, row in final.iterrows():
        name = common.curriculum_label(row["curriculum"])
        assert name in head.split("At the last")[0], (name, row["verdict"], head)


def test_what_docl_selected_here_is_computed_with_its_rules(monkeypatch):
    """Selected subsets says, with the rule that decides each word, whether S_t is harder or easier
    than the training set by loss and by exact-score percentile, and how balanced its classes are."""
    root = DEMO / "noisy-digits"
    run = RunReader(root / "docl-s0")
    t = run.kernel_rounds()[-1]                       # an epoch that logged the exact score
    df = run.samples(t)
    sel = df["selected"].to_numpy(bool)
    pct = {c: float(df[c].rank(pct=True)[sel].mean()) for c in ("loss", "score_exact")}
    base = df["label"].value_counts(normalize=True)
    tv = 0.5 * float((df.loc[sel, "label"].value_counts(normalize=True).reindex(base.index, fill_value=0) - base).abs().sum())
    at = open_app(root, monkeypatch, "subsets")
    at.sidebar.selectbox(key="focus_run").set_value("docl-s0").run()
    at.slider(key="sub_round").set_value(t).run()
    ok(at)
    text = next(m.value for m in at.markdown if "What DoCL selected here" in m.value)
    assert f"total-variation distance **{tv:.2f}**" in text
    for c, what in (("loss", "By loss"), ("score_exact", "By exact score")):
        word = ("harder" if c == "loss" else "nearer") if pct[c] > 0.55 else \
            ("easier" if c == "loss" else "further") if pct[c] < 0.45 else "about average"
        line = next(l for l in text.split("\n") if what in l)
        assert f"**{100 * pct[c]:.1f}**" in line and word in line and "the rule: above 55" in line


def test_compare_sets_the_papers_claim_beside_this_experiment(exp_paper, monkeypatch):
    """Table 1's claim (from the seed's numbers) beside DoCL's paired verdict here, computed."""
    gains = np.subtract(views.TABLE1["docl"], views.TABLE1["random"])
    assert gains.min() == pytest.approx(0.67) and gains.max() == pytest.approx(7.69)   # FMNIST, Aircraft
    at = open_app(exp_paper, monkeypatch)
    ok(at)
    text = " ".join(m.value for m in at.markdown)
    assert "+0.67 (FMNIST) to +7.69 (Aircraft)" in text
    rounds = ExperimentReader(exp_paper).rounds()
    final = views.paired_differences(rounds, "test_acc", "sgd", final=True).set_index("curriculum")
    row = final.loc["docl"]
    assert f"DoCL beats SGD (the paper's Random), {100 * row['mean']:+.2f} points" in text
    clean = views.paper_claim(final.reset_index().assign(verdict="no clear difference"), {"docl": 0.9, "sgd": 0.91},
                              "sgd", common.curriculum_label)
    assert clean["agrees"] is False and "no clear difference" in clean["here"] and "2 of 2" in clean["here"]


def test_presentation_mode_reads_from_the_back_of_the_room(exp, monkeypatch):
    """Presentation mode: body, captions and labels ≥ 20 px, chart ticks ≥ 24 px, the sidebar and
    Streamlit's Deploy button and menu hidden, and a button on the page that ends it."""
    import re
    at = open_app(exp, monkeypatch, presentation=True)
    ok(at)
    css = next(m.value for m in at.markdown if "stAppDeployButton" in m.value)
    for selector in ("[data-testid='stMain'] p", "stCaptionContainer", "stWidgetLabel"):
        rule = css[css.index(selector):]
        size = float(re.search(r"font-size: ([0-9.]+)rem", rule).group(1))
        assert size * 16 >= 20, (selector, size)
    assert "section[data-testid='stSidebar']" in css and "display: none" in css
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["tickfont"]["size"] >= 24 and spec["layout"]["yaxis"]["tickfont"]["size"] >= 24
    at.button(key="exit_presentation").click().run()
    ok(at)
    assert at.session_state["presentation"] is False
    assert not any("stAppDeployButton" in m.value for m in at.markdown)
    assert not [b for b in at.button if b.key == "exit_presentation"]


def test_every_contributor_bar_keeps_its_label_in_presentation_mode(monkeypatch):
    """Tangent kernel's contributors chart names every bar, the self term ("itself") included, with a
    row of room per bar at Presentation mode's 24 px ticks (issue 32: it labelled 6 of 12)."""
    at = open_app(DEMO / "noisy-digits", monkeypatch, "kernel", presentation=True)
    ok(at)
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if "Top contributors" in json.loads(c.proto.spec)["layout"].get("title", {}).get("text", ""))
    bars = [y for trace in spec["data"] for y in trace["y"]]
    ticks = spec["layout"]["yaxis"]["tickvals"]
    assert sorted(ticks) == sorted(bars) and any("itself" in t for t in ticks)
    assert spec["layout"]["height"] >= 140 + 48 * len(bars)


def test_scores_says_how_far_the_byproduct_agrees_instead_of_pointing_below(monkeypatch):
    """Scores gives the byproduct-vs-exact agreement as a number where Presentation mode hides the
    section it used to point to ("at the bottom of the page"), the same median as that section's."""
    from docl_core.fidelity import round_fidelity
    want = round_fidelity(DEMO / "clean-digits" / "docl-s0")["spearman_all"].median()
    for presenting in (True, False):
        at = open_app(DEMO / "clean-digits", monkeypatch, "scores", presentation=presenting)
        ok(at)
        text = " ".join(c.value for c in at.caption) + " ".join(m.value for m in at.markdown)
        assert "bottom of the page" not in text
        assert f"median Spearman ρ = {want:+.2f}" in text
        assert ("the last section of this page" in text) == (not presenting)


def test_the_experiment_switches_from_the_presentation_bar(monkeypatch):
    """Presentation mode hides the sidebar and its Experiment box: the bar at the top offers the same
    experiments, and picking one switches every page to it without leaving the mode (issue 32, item 2)."""
    at = open_app(DEMO, monkeypatch, presentation=True)
    ok(at)
    box = at.selectbox(key="present_experiment")
    assert box.options == at.sidebar.selectbox(key="experiment").options and len(box.options) == 4
    box.set_value("noisy-digits").run()
    ok(at)
    assert at.session_state["experiment"] == "noisy-digits" and at.session_state["presentation"] is True
    assert any("`noisy-digits`" in m.value for m in at.markdown)           # Compare's experiment line
    at.switch_page("app_pages/scores.py").run()
    ok(at)
    assert at.selectbox(key="present_experiment").value == "noisy-digits"
    at.selectbox(key="present_experiment").set_value("order-digits").run()
    ok(at)
    assert at.session_state["experiment"] == "order-digits" and at.title[0].value.startswith("Scores")


# ----------------------------------------------------------------------------- issue 23 items 4 and 5


def test_refit_axes_against_a_plain_pca():
    """views.refit_axes: the top two principal axes of (N, K) coordinates and their variance shares,
    against an eigen-decomposition of the covariance (signs fixed: largest loading positive)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 8)) * np.array([4.0, 1.0, 2.5, 0.3, 0.2, 0.2, 0.1, 0.1]) + 5.0
    X[:, 1] += 0.5 * X[:, 0]
    fit = views.refit_axes(X)
    w, V = np.linalg.eigh(np.cov(X, rowvar=False))  # ascending
    top = V[:, ::-1][:, :2].T
    top *= np.sign(top[np.arange(2), np.abs(top).argmax(1)])[:, None]
    assert np.allclose(fit["axes"], top, atol=1e-8)
    assert np.allclose(fit["share"], w[::-1][:2] / w.sum())
    xy = views.project(X, fit)
    assert np.allclose(xy.mean(0), 0, atol=1e-9) and np.allclose(xy.var(0, ddof=1), w[::-1][:2])
    X[5] = np.nan  # a sample missing from a round is skipped by the fit and stays NaN
    assert np.isnan(views.project(X, views.refit_axes(X))[5]).all()


def test_embedding_says_which_axes_it_uses(monkeypatch):
    """The Embedding page opens on axes refitted to the shown epoch (issue 32: the first epoch's fixed axes
    hold a few % of a late epoch's variance), offers the fixed and the last epoch's, and says which."""
    root = DEMO / "clean-digits"
    if not (root / "docl-s0" / "embedding").is_dir():
        pytest.fail(f"the bundled demo {root} has no maps: python -m docl_core demo")
    at = open_app(root, monkeypatch, "embedding")
    ok(at)
    t = at.select_slider(key="emb_round").value
    text = lambda: " ".join(m.value for m in at.markdown)  # noqa: E731
    assert at.radio(key="emb_method").value == "PCA (refit on this round)"
    assert f"Axes: refitted on epoch {t}, the two directions" in text()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["title"]["text"].startswith("refit axis 1 (")
    at.radio(key="emb_method").set_value("PCA (fixed axes)").run()
    ok(at)
    assert "Axes: the run's principal axes, fitted on epoch 0" in text()
    at.radio(key="emb_method").set_value("PCA (refit on the last round)").run()
    ok(at)
    last = max(int(p.name[6:10]) for p in (root / "docl-s0" / "embedding").glob("round=*.parquet"))
    assert f"Axes: refitted on epoch {last} (the last)" in text()


def test_experiment_box_says_what_each_experiment_is_for(tmp_path, monkeypatch):
    """An experiment folder's about.md is shown under the Experiment box (and listed in its help) and
    on Compare."""
    for name, about in (("first", "For the score itself."), ("second", "For flipped labels.")):
        write_experiment(tmp_path / name, SyntheticSpec(n=60, rounds=2, seeds=(0,), curricula=("docl",),
                                                        running=False, failed=False, probe=0))
        (tmp_path / name / "about.md").write_text(about + "\n")
    at = open_app(tmp_path, monkeypatch)
    ok(at)
    assert "For the score itself." in [c.value for c in at.sidebar.caption]
    assert "**second**: For flipped labels." in at.sidebar.selectbox(key="experiment").help
    assert any("*For:* For the score itself." in m.value for m in at.markdown)


def test_compare_names_the_curricula_it_has(exp_curve, monkeypatch):
    at = open_app(exp_curve, monkeypatch)
    ok(at)
    assert any("Does DoCL beat Random on this experiment" in c.value for c in at.caption)
    assert not any("SPL and MCL" in c.value for c in at.caption)


def test_bundled_demos_say_what_they_are_for():
    """Each bundled demo's folder carries its purpose from docl_core.cli.DEMOS (the Experiment box shows it)."""
    from docl_core.cli import DEMOS
    for name, (purpose, *_rest) in DEMOS.items():
        about = DEMO / name / "about.md"
        assert about.is_file() and about.read_text().strip() == purpose, f"regenerate the demo: {name}"


@pytest.mark.parametrize("name, pct, rho", [("clean-digits", (45, 46), (-0.43, -0.30)),
                                             ("noisy-digits", (47, 48), None)])
def test_the_recipe_demos_say_what_their_runs_show(name, pct, rho):
    """The numbers clean-digits' and noisy-digits' about text states, recomputed from the runs: per seed,
    the mean exact-score percentile of DoCL's subsets after the warm start, and the median Spearman ρ of
    the authors' byproduct with the exact score."""
    from docl_core.cli import DEMOS
    from docl_core.fidelity import round_fidelity
    text = DEMOS[name][0]
    assert f"mean percentile {pct[0]}–{pct[1]} per seed" in text
    for seed in (0, 1, 2):
        r = RunReader(DEMO / name / f"docl-s{seed}")
        means = []
        for t in r.round_ids[1:]:
            df = r.samples(t, ["score_exact", "selected"])
            sel = df["selected"].astype(bool)
            if df["score_exact"].notna().any() and 0 < sel.sum() < len(sel):
                means.append((df["score_exact"].rank(pct=True) * 100)[sel].mean())
        assert pct[0] <= round(float(np.mean(means))) <= pct[1], (name, seed, np.mean(means))
        if rho:
            med = round(float(round_fidelity(r.dir)["spearman_all"].median()), 2)
            assert rho[0] <= med <= rho[1], (name, seed, med)
    if rho:
        assert f"median Spearman ρ −{-rho[1]:.2f} to −{-rho[0]:.2f} per seed" in text


def test_frontier_demo_selection_follows_the_exact_score():
    """frontier-digits, DoCL driven by the exact score: in the epochs after the warm start, on every seed,
    S_t's mean percentile by the exact score is above the middle, by a median well above the subsets
    summary's "nearer the frontier" line, and Random's stays near the middle (what the demo is for; Selected subsets' callout computes the same numbers)."""
    root = DEMO / "frontier-digits"
    if not (root / "docl-s0" / "run.json").is_file():
        pytest.fail(f"the bundled demo {root} is missing: python -m docl_core demo")
    for seed in (0, 1, 2):
        for cur, follows in (("docl", True), ("random", False)):
            run = RunReader(root / f"{cur}-s{seed}")
            assert views.driving_estimator(run) == ("exact" if cur == "docl" else run.meta["config"]["estimator"])
            pcts = [views.subset_summary(views.selection_frame(run, t), cur)["score_exact_percentile"]
                    for t in run.round_ids[1:]]
            if follows:  # highest while k_t is small, fading as S_t grows and the learning rate falls
                assert np.median(pcts) > views.HARDER + 0.15 and min(pcts) > 0.5, (seed, pcts)
            else:  # a uniform draw of ≥ 100 samples: within 4 standard errors of the middle
                assert max(abs(p - 0.5) for p in pcts) < 0.1, (seed, pcts)


def test_a_first_view_draws_the_key_chart_then_the_whole_page_with_the_same_sidebar(exp_paper, monkeypatch):
    """A session's first run draws Compare's accuracy chart and a timer, nothing below it; the
    timer's run (here: the next run) draws the whole page with the sidebar values of the first."""
    monkeypatch.setenv("DOCL_RUNS", str(exp_paper))
    at = AppTest.from_file(MAIN, default_timeout=90)
    at.run()
    ok(at)
    assert chart_titles(at) == ["Test accuracy per curriculum"]
    assert any("Loading the rest of the page" in c.value for c in at.caption)
    assert not at.table and not at.metric and not at.subheader
    first = {k: at.session_state[k] for k in ("root", "f_curricula", "f_seeds", "focus_run")}
    assert at.session_state["_first_view_widgets"] == first
    at.run()
    ok(at)
    titles = chart_titles(at)
    assert titles[0] == "Test accuracy per curriculum" and len(titles) >= 2
    assert at.table and at.metric and "Runs in this experiment" in [s.value for s in at.subheader]
    assert not any("Loading the rest" in c.value for c in at.caption)
    assert {k: at.session_state[k] for k in first} == first
    at.run()  # and from then on every run is the whole page
    assert len(chart_titles(at)) == len(titles) and at.table


# ----------------------------------------------------------------------------- Selected subsets: order of the pass


def test_subsets_order_of_the_pass_states_its_rho(tmp_path, monkeypatch):
    """A real paper-protocol run that recorded pass_position: the shown epoch's "Order of the pass"
    chart, its caption naming the order in plain words and ρ as computed from the data."""
    from docl_core.config import RunConfig
    from docl_core.protocol import PaperSchedule
    from docl_core.trainer import train_run
    root = tmp_path / "order"
    train_run(RunConfig(dataset="blobs", curriculum="docl", protocol="paper", label_noise=0.2, probe_size=0,
                        device="cpu", log_estimators=[], schedule=PaperSchedule(epochs=4)), root / "docl-s0")
    run = RunReader(root / "docl-s0")
    at = open_app(root, monkeypatch, "subsets")
    ok(at)
    for t in (2, 0):
        at.slider(key="sub_round").set_value(t).run()
        ok(at)
        titles = chart_titles(at)
        captions = [m.value for m in at.markdown if m.value.startswith("Order: ")]
        if t == 0:  # the warm start: a shuffled pass of all samples, no selection to order
            assert not any(x.startswith("Order of the pass") for x in titles) and not captions
            assert any("is the warm start" in c.value for c in at.caption)
            continue
        assert f"Order of the pass, epoch {t}" in titles
        sel = views.selection_frame(run, t, run.dataset())
        rho = views.pass_order_rho(sel)
        assert np.isfinite(rho)
        assert len(captions) == 1
        assert "trained in the selection's own order" in captions[0]
        assert f"ρ = {rho:+.2f}" in captions[0]
        assert "flipped labels" in captions[0]  # the run has label noise: the second panel
        spec = next(json.loads(el.proto.spec) for el in at.get("plotly_chart")
                    if json.loads(el.proto.spec)["layout"].get("title", {}).get("text", "").startswith("Order"))
        frame = views.pass_order(sel, run.meta["config"]["batch_size"])
        line = [tr for tr in spec["data"] if tr.get("mode") == "lines+markers"][0]
        assert np.allclose(_plotly_array(line["y"]), frame["score_mean"])
        bars = [tr for tr in spec["data"] if tr.get("type") == "bar"][0]
        assert np.allclose(_plotly_array(bars["y"]), 100 * frame["noisy_share"])
        assert spec["layout"]["height"] == 260


def test_subsets_without_pass_order_draws_no_order_chart(exp_paper, exp, monkeypatch):
    """Runs without pass_position (synthetic paper runs stand for older ones; steps-protocol runs): no
    chart and no error, only a one-line note on paper runs."""
    at = open_app(exp_paper, monkeypatch, "subsets")
    ok(at)
    assert not any(t.startswith("Order of the pass") for t in chart_titles(at))
    assert any("did not record the order" in c.value for c in at.caption)
    at.sidebar.text_input(key="root").set_value(str(exp)).run()  # the steps protocol: nothing at all
    ok(at)
    assert not any(t.startswith("Order of the pass") for t in chart_titles(at))
    assert not any("did not record the order" in c.value for c in at.caption)
    assert not any(m.value.startswith("Order: ") for m in at.markdown)


def test_order_demo_holds_each_order_on_every_seed():
    """order-digits: DoCL in draw, shuffled and reversed order, SGD and SGD in DoCL's order, three seeds each,
    complete, each run's config naming its order, and every subset epoch's pass recorded."""
    root = DEMO / "order-digits"
    if not (root / "docl-s0" / "run.json").is_file():
        pytest.fail(f"the bundled demo {root} is missing: python -m docl_core demo --only order-digits")
    want = {"docl": "draw", "docl@shuffle": "shuffle", "docl@reversed": "reversed", "sgd": "shuffle",
            "sgd@draw": "draw"}
    for name, order in want.items():
        for seed in (0, 1, 2):
            run = RunReader(root / f"{name}-s{seed}")
            assert run.status == "complete" and run.meta["config"]["order"] == order and run.curriculum == name
            df = run.samples(run.round_ids[-1], columns=["pass_position", "selected"])
            assert (df["pass_position"] >= 0).sum() == df["selected"].sum() > 0


def test_jaccard_caption_with_two_curricula_names_their_one_overlap(monkeypatch):
    """frontier-digits has two curricula: one pair, so the caption gives its overlap once (not 'most' and
    'least' of the same pair)."""
    at = open_app(DEMO / "frontier-digits", monkeypatch, "subsets")
    ok(at)
    captions = [m.value for m in at.markdown if "1 = identical subsets" in m.value]
    assert captions and "overlap by" in captions[0] and "least" not in captions[0], captions


def test_order_of_the_pass_is_shown_in_presentation_mode_on_the_order_demo(monkeypatch):
    """The lecture's order-digits: in Presentation mode Selected subsets keeps its callout beside the
    thumbnails and draws the order of the focus run's pass below them."""
    at = open_app(DEMO / "order-digits", monkeypatch, "subsets", presentation=True)
    ok(at)
    titles = chart_titles(at)
    assert any(t.startswith("Order of the pass") for t in titles), titles
    assert at.info and any("S_t holds" in i.value or "selected" in i.value for i in at.info)


def test_order_demo_compares_every_order_in_one_setting(monkeypatch):
    """The order of a pass is part of a curriculum's name, not a setting: Compare on order-digits lists
    all five arms in one final-accuracy table (a run's `order` is a pooled config field)."""
    at = open_app(DEMO / "order-digits", monkeypatch)
    ok(at)
    table = at.table[0].value.reset_index()
    assert sorted(table["curriculum"]) == sorted(["SGD", "SGD in DoCL's draw order", "DoCL", "DoCL, shuffled",
                                                  "DoCL, reversed order"]), list(table["curriculum"])


def test_compare_gives_its_budget_and_the_studys_answer_to_the_same_question(tmp_path, monkeypatch):
    """Compare on the noisy-digits demo (16 epochs, 3 seeds) quotes the study's digits-20%-flipped
    setting from a RESULTS.json (issue 32, item 4); without one it says nothing about the study."""
    import docl_core.views.compare as vc
    pair = {"a": "docl", "b": "sgd", "report": "last", "mean": -0.5, "low": -1.4, "high": 0.4, "n": 5, "wins": 2,
            "verdict": "no clear difference"}
    setting = {"name": "digits-noise20", "title": "digits, 20% flipped", "dataset": "digits", "label_noise": 0.2,
               "protocol": "paper", "epochs": 100, "seeds": {"docl": 5}, "unit": "points", "pairs": [pair]}
    (tmp_path / "RESULTS.json").write_text(json.dumps({"report": "RESULTS.md", "settings": [setting]}))
    monkeypatch.setattr(vc, "DOCS", tmp_path)
    at = open_app(DEMO / "noisy-digits", monkeypatch)
    ok(at)
    said = [c.value for c in at.caption if "The study asks the same question" in c.value]
    assert said and said[0].startswith("This experiment: 16 epochs, 3 seeds.")
    assert "at 100 epochs over 5 seeds (docs/RESULTS.md, digits, 20% flipped" in said[0]
    assert "DoCL − SGD (the paper's Random) = -0.50 [-1.40, +0.40] points, no clear difference" in said[0]
    monkeypatch.setattr(vc, "DOCS", tmp_path / "none")
    at = open_app(DEMO / "noisy-digits", monkeypatch)
    assert not any("The study asks" in c.value for c in at.caption)


def test_data_map_and_embedding_take_away_on_every_demo(monkeypatch):
    """Issue 32 item 1: Data map and Embedding show a computed takeaway callout in Presentation mode on
    every bundled experiment (Data map's said only where labels were flipped): numbers from the page's data."""
    for which in ("clean-digits", "noisy-digits"):
        for page, want in (("datamap", "flipped label" if which == "noisy-digits" else "No label was flipped here"),
                           ("embedding", "lie nearest their own class's centre")):
            at = open_app(DEMO / which, monkeypatch, page, presentation=True)
            ok(at)
            said = [i.value for i in at.info]
            assert any(want in s for s in said), (which, page, said)
