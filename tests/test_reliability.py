"""Reliability (issue 7): kill -9 and resume, divergence, reading while writing, security.

Every training here is tiny (a 600-point .npz, an MLP, no diversity term) so the whole file
stays within a minute or so on two shared CPU cores; subprocesses run single-threaded, which
also keeps an interrupted-and-resumed run bit-identical to an uninterrupted one.
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

import docl_core.store as store
from docl_core.cli import main
from docl_core.config import RunConfig, Schedule
from docl_core.data import load_dataset
from docl_core.store import ExperimentReader, RunReader, RunStoreError, resolve_inside
from docl_core.trainer import train_run

REPO = Path(__file__).resolve().parent.parent
FRAME_COLUMNS = ["sample_id", "score", "selected", "loss"]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)  # never let a stray torchrun variable make it distributed
    return env


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 2)).astype(np.float32)
    y = ((x[:, 0] * x[:, 1] > 0) ^ (rng.random(600) < 0.1)).astype(np.int64)  # XOR, 10% flipped
    path = tmp_path_factory.mktemp("data") / "xor.npz"
    np.savez(path, x=x, y=y)
    return str(path)


def _run_args(data: str, out: Path, name: str, rounds: int = 6, seed: int = 7) -> list[str]:
    return ["run", "--dataset", data, "--model", "mlp", "--rounds", str(rounds), "--k-start", "0.3",
            "--warmup-epochs", "0", "--probe-size", "4", "--diversity", "none", "--seed", str(seed),
            "--no-progress", "--device", "cpu", "--out", str(out), "--name", name]


def _launch(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "docl_core", *args], cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _frames(run_dir: Path) -> pd.DataFrame:
    return RunReader(run_dir).samples_all(columns=FRAME_COLUMNS)


def read_everything(run_dir: Path) -> int:
    """Open the run as the app would and check what it shows; returns last_complete_round.

    A run killed before its first commit has no run.json yet: -2 (nothing to show, no error).
    """
    if not (run_dir / "run.json").exists():
        return -2
    r = RunReader(run_dir)
    t_last = r.last_complete_round
    n = int(r.meta["num_train"])
    rounds = r.rounds()
    assert list(rounds["round"]) == list(range(t_last + 1)), "rounds past the commit point are visible"
    s = r.samples_all(columns=FRAME_COLUMNS)
    assert len(s) == n * (t_last + 1)
    if t_last >= 0:
        assert np.isfinite(s["loss"].to_numpy()).all() and np.isfinite(s["score"].to_numpy()).all()
    for t in r.round_ids:
        assert r.kernel(t)["trace"].shape == (4, 4)
    assert len(r.dataset()) > 0
    ExperimentReader(run_dir.parent).summary()
    return t_last


def _wait_until(cond, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    """Poll cond() every ~2 ms while proc lives; False if proc ended first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        if cond():
            return True
        time.sleep(0.002)
    return False


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def _committed(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "run.json").read_text())["last_complete_round"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return -2


def _checkpoint_round(run_dir: Path) -> int:
    path = run_dir / "checkpoint.pt"
    if not path.exists():
        return -1
    return int(torch.load(path, map_location="cpu", weights_only=True)["round"])


# ----------------------------------------------------------------------------- kill -9 and resume

# Where each kill lands. The timing ones are drawn from a seeded generator; the others poll the
# run folder and kill at once, so they land inside the write sequence of a round.
KILL_PLAN = ["first-round", "samples-written", "checkpoint-written", "between-rounds", "random"]


def test_kill9_at_random_moments_then_resume_equals_uninterrupted(tmp_path, tiny_npz, capsys):
    t_start = time.monotonic()
    exp = tmp_path / "exp"
    run_dir = exp / "killed"
    rng = random.Random(20261128)
    # the uninterrupted reference, in-process (one torch thread, like the subprocesses)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(_run_args(tiny_npz, exp, "reference")) == 0
    assert not run_dir.exists()
    log, kills, reads = [], 0, 0
    for where in KILL_PLAN:
        if _committed(run_dir) == 5:
            break  # finished: no more moments to kill
        before = _committed(run_dir)
        ckpt_before = _mtime(run_dir / "checkpoint.pt")
        # --resume from the start: it also starts the run when none exists
        proc = _launch(_run_args(tiny_npz, exp, "killed") + ["--resume"])
        if where == "first-round":  # the run has started (dataset written), round 0 computing
            hit = _wait_until(lambda: (run_dir / "dataset.parquet").exists(), proc)
            time.sleep(rng.uniform(0.0, 0.15))
        elif where == "samples-written":  # next round's samples are on disk, run.json not yet
            nxt = run_dir / "samples" / f"round={max(before, -1) + 1:04d}.parquet"
            old = _mtime(nxt)  # a killed attempt may have left it: wait for this attempt's write
            hit = _wait_until(lambda: _mtime(nxt) != old, proc)
        elif where == "checkpoint-written":  # between the checkpoint and run.json
            hit = _wait_until(lambda: _mtime(run_dir / "checkpoint.pt") != ckpt_before, proc)
        elif where == "between-rounds":  # just after a commit
            hit = _wait_until(lambda: _committed(run_dir) > before, proc)
            time.sleep(rng.uniform(0.0, 0.01))
        else:  # a random moment after this attempt reopened the run (the import takes seconds)
            opened = _mtime(run_dir / "run.json")
            hit = _wait_until(lambda: _mtime(run_dir / "run.json") != opened, proc)
            time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is not None:  # it finished (or died) before the moment came
            assert proc.returncode == 0, proc.stderr.read().decode()
            log.append(f"{where}: finished first")
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        kills += 1
        after = read_everything(run_dir)  # every reader opens it, showing committed rounds only
        reads += 1
        if after > -2:  # status still says running, but the app must not show it as live
            assert not RunReader(run_dir).is_live
        temps = sorted(p.name for p in run_dir.rglob(".*.tmp")) if run_dir.exists() else []
        log.append(f"{where}{'' if hit else ' (timer)'}: committed {before} -> {after}, "
                   f"checkpoint round {_checkpoint_round(run_dir)}, temp files {len(temps)}")
    assert kills >= 4, log
    live_seen = False
    # finish it, reading it all the while (the app watching a live run)
    for _ in range(3):
        proc = _launch(_run_args(tiny_npz, exp, "killed") + ["--resume"])
        while proc.poll() is None:
            read_everything(run_dir)
            reads += 1
            live_seen |= (run_dir / "run.json").exists() and RunReader(run_dir).is_live
            time.sleep(0.05)  # leave the writer some CPU
        assert proc.returncode == 0, proc.stderr.read().decode()
        proc.stderr.close()
        if RunReader(run_dir).status == "complete":
            break
    done = RunReader(run_dir)
    assert done.status == "complete" and done.last_complete_round == 5
    assert live_seen and not done.is_live
    assert not list(run_dir.rglob(".*.tmp")), "temporary files left behind"
    pd.testing.assert_frame_equal(_frames(exp / "reference"), _frames(run_dir), check_exact=True)
    a, b = RunReader(exp / "reference").rounds(), done.rounds()
    pd.testing.assert_frame_equal(a[["round", "k", "steps", "noisy_selected"]],
                                  b[["round", "k", "steps", "noisy_selected"]], check_exact=True)
    with capsys.disabled():
        print(f"\n[kill -9] kills survived: {kills}; full reads after kills and during the final "
              f"resume: {reads}; {time.monotonic() - t_start:.1f}s")
        for line in log:
            print("   ", line)


# Every write boundary, deterministically: die at the n-th file write (leaving a torn
# temporary file, as a kill mid-write would), check the run reads, resume, compare.

class _Killed(BaseException):
    """Not an Exception: no handler in the trainer runs, as with kill -9."""


def _cfg(data: str, rounds: int = 2) -> RunConfig:
    return RunConfig(dataset=data, curriculum="docl", rounds=rounds, seed=3, model="mlp", probe_size=4,
                     device="cpu", diversity="none", schedule=Schedule(k_start=0.3, warmup_epochs=1))


def test_crash_at_every_write_then_resume_equals_uninterrupted(tmp_path, tiny_npz, monkeypatch, capsys):
    t_start = time.monotonic()
    ds = load_dataset(tiny_npz, seed=3)
    real = store.atomic_write_bytes
    writes: list[str] = []

    def counting(path, data):
        writes.append(Path(path).name)
        real(path, data)

    monkeypatch.setattr(store, "atomic_write_bytes", counting)
    ref = _frames(train_run(_cfg(tiny_npz), tmp_path / "ref", dataset=ds))
    ref_rounds = RunReader(tmp_path / "ref").rounds()[["round", "k", "steps"]]
    plan = list(writes)
    for n, name in enumerate(plan, start=1):
        calls = {"i": 0}

        def dying(path, data, n=n):
            calls["i"] += 1
            if calls["i"] == n:
                path = Path(path)
                path.parent.mkdir(parents=True, exist_ok=True)
                (path.parent / f".{path.name}.torn.tmp").write_bytes(data[: len(data) // 2])
                raise _Killed
            real(path, data)

        run = tmp_path / f"crash{n:02d}"
        monkeypatch.setattr(store, "atomic_write_bytes", dying)
        with pytest.raises(_Killed):
            train_run(_cfg(tiny_npz), run, dataset=ds)
        monkeypatch.setattr(store, "atomic_write_bytes", real)
        if (run / "run.json").exists():
            r = RunReader(run)
            assert list(r.rounds()["round"]) == r.round_ids
            assert len(r.samples_all(columns=["score"])) == len(ds.x_train) * len(r.round_ids)
        train_run(_cfg(tiny_npz), run, resume=True, dataset=ds)
        assert RunReader(run).status == "complete", name
        pd.testing.assert_frame_equal(ref, _frames(run), check_exact=True)
        pd.testing.assert_frame_equal(ref_rounds, RunReader(run).rounds()[["round", "k", "steps"]])
        assert not list(run.rglob(".*.tmp")), f"crash at write {n} ({name}) left temporary files"
    with capsys.disabled():
        print(f"\n[crash points] {len(plan)} write boundaries crashed and resumed "
              f"({', '.join(plan)}); {time.monotonic() - t_start:.1f}s")


def test_resume_starts_a_run_that_does_not_exist_from_the_cli(tmp_path, tiny_npz):
    assert main(_run_args(tiny_npz, tmp_path, "fresh", rounds=1) + ["--resume"]) == 0
    r = RunReader(tmp_path / "fresh")
    assert r.status == "complete" and r.last_complete_round == 0


# ----------------------------------------------------------------------------- divergence


class _Poisoned(nn.Module):
    """Wraps a model; after `after` training steps it goes non-finite in one of two ways.

    "output": outputs (so losses) become NaN.  "grad": outputs stay finite but every gradient
    is NaN — sqrt at 0 has value 0 and derivative inf, times 0 — so scores turn NaN while
    losses do not (only in eval mode, i.e. while the tracker scores).
    """

    def __init__(self, inner: nn.Module, after: int, how: str):
        super().__init__()
        self.inner, self.after, self.how, self.steps = inner, after, how, 0
        self.zero = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        out = self.inner(x)
        if self.training:
            self.steps += 1
        if self.steps < self.after:
            return out
        if self.how == "output":
            return out * float("nan")
        if not self.training:
            return out + 0.0 * torch.sqrt(self.zero - self.zero.detach())
        return out

    def features(self, x):
        return self.inner.features(x)


@pytest.mark.parametrize("how, reason", [("output", "non-finite (training )?loss"),
                                         ("grad", "non-finite exact scores")])
def test_non_finite_values_fail_the_run_with_a_reason(tmp_path, tiny_npz, monkeypatch, capsys, how, reason):
    import docl_core.trainer as trainer
    real = trainer.build_model
    monkeypatch.setattr(trainer, "build_model", lambda name, ds: _Poisoned(real(name, ds), 6, how))
    code = main(_run_args(tiny_npz, tmp_path, "poisoned", rounds=6))
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    meta = json.loads((tmp_path / "poisoned" / "run.json").read_text())
    assert meta["status"] == "failed" and meta["error"], meta
    import re
    assert re.search(reason, meta["error"]) and "--lr" in meta["error"], meta["error"]
    t_last = read_everything(tmp_path / "poisoned")  # committed rounds are all finite
    assert 0 <= t_last < 5, "the poison should strike after a round or two"


def test_huge_learning_rate_fails_the_run_and_commits_no_nan_round(tmp_path, tiny_npz, capsys):
    code = main(_run_args(tiny_npz, tmp_path, "boom", rounds=3) + ["--lr", "1e30", "--lr-min", "1e29"])
    err = capsys.readouterr().err.strip()
    assert code == 3 and err.startswith("docl: run failed:") and len(err.splitlines()) == 1
    r = RunReader(tmp_path / "boom")
    assert r.status == "failed" and "learning rate" in r.meta["error"]
    read_everything(tmp_path / "boom")


# ----------------------------------------------------------------------------- reading while writing

WRITER = textwrap.dedent("""
    import sys, numpy as np, pandas as pd
    from docl_core.store import RunWriter
    run, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(0)
    w = RunWriter(run)
    w.start({"name": "live", "num_train": n, "config": {"curriculum": "docl", "seed": 0}})
    w.write_dataset(pd.DataFrame({"sample_id": np.arange(n), "label": rng.integers(0, 2, n), "split": "train"}))
    order = list(range(rounds)) + list(range(rounds - 5, rounds))  # then rewrite 5, as a resume does
    for t in order:
        samples = pd.DataFrame({"sample_id": np.arange(n), "loss": rng.random(n, dtype=np.float32),
                                "score": rng.normal(size=n).astype(np.float32), "selected": rng.random(n) < 0.3})
        kernel = {"probe_ids": np.arange(16), "trace": rng.normal(size=(16, 16)).astype(np.float32)}
        w.write_round(t, {"k": int(samples.selected.sum()), "steps": 10 * t}, samples, kernel,
                      checkpoint=rng.bytes(200_000))
    w.finish()
""")


def test_readers_never_error_while_a_run_is_written(tmp_path, capsys):
    t_start = time.monotonic()
    run, n, rounds = tmp_path / "exp" / "live", 4000, 40
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(run), str(n), str(rounds)], cwd=REPO,
                            env=_env(), stderr=subprocess.PIPE)
    assert _wait_until(lambda: (run / "run.json").exists(), proc, timeout=60) or proc.returncode == 0
    reads, seen, rng = 0, set(), random.Random(0)
    while proc.poll() is None:
        exp = ExperimentReader(run.parent)
        r = exp.run("live")
        t_last = r.last_complete_round
        rounds_df = r.rounds()
        assert list(rounds_df["round"]) == list(range(t_last + 1))
        if t_last >= 0:
            s = r.samples_all(columns=["sample_id", "score"], rounds=sorted({0, t_last, rng.randint(0, t_last)}))
            assert s.groupby("round").size().eq(n).all()
            assert r.kernel(rng.randint(0, t_last))["trace"].shape == (16, 16)
        reads += 1
        seen.add(t_last)
    assert proc.returncode == 0, proc.stderr.read().decode()
    proc.stderr.close()
    done = RunReader(run)
    assert done.status == "complete" and len(done.samples_all(columns=["score"])) == n * rounds
    assert reads >= 10 and len(seen) >= 3, (reads, seen)
    with capsys.disabled():
        print(f"\n[concurrency] reads during writes: {reads} (each: run.json, rounds, up to 3 sample "
              f"frames, 1 kernel; {len(seen)} distinct commit points seen); {time.monotonic() - t_start:.1f}s")


# ----------------------------------------------------------------------------- security


def test_dashboard_binds_to_localhost():
    conf = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert conf["server"]["address"] in ("localhost", "127.0.0.1")


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            kw = {k.arg: k.value for k in node.keywords}
            yield node, owner, name, kw


def _is_const(node, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def test_no_user_file_is_ever_unpickled():
    files = sorted((REPO / "docl_core").rglob("*.py")) + sorted((REPO / "app").rglob("*.py"))
    assert files
    problems, np_loads = [], 0
    for path in files:
        text = path.read_text()
        tree = ast.parse(text)
        where = path.relative_to(REPO)
        for node, owner, name, kw in _calls(tree):
            at = f"{where}:{node.lineno}"
            if owner == "torch" and name == "load" and not _is_const(kw.get("weights_only"), True):
                problems.append(f"{at}: torch.load without weights_only=True")
            if owner in ("np", "numpy") and name == "load":
                np_loads += 1
                if not _is_const(kw.get("allow_pickle"), False):
                    problems.append(f"{at}: np.load without allow_pickle=False")
            if owner in ("pickle", "dill", "cloudpickle", "joblib") and name in ("load", "loads"):
                problems.append(f"{at}: {owner}.{name}")
            if owner == "pd" and name == "read_pickle":
                problems.append(f"{at}: pd.read_pickle")
        if "allow_pickle=True" in text:
            problems.append(f"{where}: allow_pickle=True")
        # a pickle.Unpickler subclass must restrict what it resolves
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any("Unpickler" in ast.unparse(b) for b in node.bases):
                if not any(isinstance(f, ast.FunctionDef) and f.name == "find_class" for f in node.body):
                    problems.append(f"{where}:{node.lineno}: Unpickler subclass without find_class")
    assert not problems, problems
    assert np_loads >= 2  # the .npz loader and the kernel reader


def test_a_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path, tiny_npz, capsys):
    assert main(_run_args(tiny_npz, tmp_path, "r", rounds=1)) == 0
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import pickle
    with open(tmp_path / "r" / "checkpoint.pt", "wb") as f:
        pickle.dump({"round": 0, "evil": Evil()}, f)
    before = (tmp_path / "r" / "run.json").read_bytes()
    assert main(_run_args(tiny_npz, tmp_path, "r", rounds=2) + ["--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "checkpoint.pt" in err and "delete it" in err and len(err.splitlines()) == 1
    assert not marker.exists()
    assert (tmp_path / "r" / "run.json").read_bytes() == before


@pytest.mark.parametrize("name", ["..", "../other", "../../etc/passwd", "/etc", "runs/../../x", "", "a\x00b"])
def test_resolve_inside_refuses_escapes(tmp_path, name):
    root = tmp_path / "runs"
    root.mkdir()
    (tmp_path / "other").mkdir()
    with pytest.raises(RunStoreError) as e:
        resolve_inside(root, name)
    assert len(str(e.value).splitlines()) == 1


def test_resolve_inside_refuses_symlinks_out_and_accepts_names_inside(tmp_path):
    root = tmp_path / "runs"
    (root / "exp" / "docl-s0").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (root / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(RunStoreError, match="outside"):
        resolve_inside(root, "link")
    assert resolve_inside(root, "exp/docl-s0") == (root / "exp" / "docl-s0").resolve()
    assert resolve_inside(root, "exp/../exp") == (root / "exp").resolve()
    assert resolve_inside(str(root), ".") == root.resolve()


def test_a_model_with_an_unused_parameter_is_scored():
    # mean_gradient used to raise "appears to not have been used in the graph" (a traceback
    # out of DynamicsTracker for any model with a spare head)
    from docl_core.dynamics import docl_scores

    class SpareHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.head, self.spare = nn.Linear(2, 3), nn.Linear(2, 3)

        def forward(self, x):
            return self.head(x)

    d = docl_scores(SpareHead(), torch.randn(10, 2), torch.randint(0, 3, (10,)))
    assert torch.isfinite(d.score).all()


def test_sigterm_landing_while_a_failure_is_recorded_still_leaves_a_stopped_run(tmp_path, monkeypatch):
    """A peer dies under torchrun: this rank's collective raises, and torchrun's SIGTERM can land
    while the failure is being written. The run must end marked stopped, never "running"."""
    from docl_core.trainer import Trainer
    trainer = Trainer(RunConfig(dataset="moons", curriculum="docl", rounds=3, seed=0, probe_size=4,
                                device="cpu"), tmp_path / "r")

    def peer_died(*a, **kw):
        raise RuntimeError("[gloo] Connection closed by peer")

    def sigterm_mid_record(reason):
        trainer.tracker.writer.meta["status"] = "failed"  # set in memory, never committed
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.tracker, "end_round", peer_died)
    monkeypatch.setattr(trainer.tracker.writer, "fail", sigterm_mid_record)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert RunReader(tmp_path / "r").status == "interrupted"


def test_sigterm_interrupts_once_then_is_ignored():
    """torchrun may signal again while a rank records why it stopped; only the first one raises."""
    from docl_core.cli import _terminate_as_interrupt
    previous = _terminate_as_interrupt()
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)  # ignored: the test process lives on
        time.sleep(0.2)
    finally:
        signal.signal(signal.SIGTERM, previous)
