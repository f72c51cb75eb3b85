"""The run store: atomic writes, the commit point, readers, and clear errors on bad folders."""
import json

import numpy as np
import pandas as pd
import pytest

from docl_core.store import (ExperimentReader, RunReader, RunStoreError, RunWriter, atomic_write_bytes,
                             list_experiments)


def _samples(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"sample_id": np.arange(n), "loss": rng.random(n), "score": rng.random(n),
                         "selected": rng.random(n) > 0.5})


def _write_run(path, rounds=3, status="complete"):
    w = RunWriter(path)
    w.start({"name": path.name, "config": {"curriculum": "docl", "seed": 1}})
    w.write_dataset(pd.DataFrame({"sample_id": np.arange(5), "label": [0, 1, 0, 1, 0], "split": "train"}))
    for t in range(rounds):
        w.write_round(t, {"k": 2, "test_acc": 0.5 + 0.1 * t}, _samples(seed=t),
                      kernel={"probe_ids": np.arange(3), "trace": np.eye(3)})
    if status == "complete":
        w.finish()
    return w


def test_roundtrip_with_plain_pandas_and_numpy(tmp_path):
    run = tmp_path / "exp" / "docl-s1"
    _write_run(run)
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "complete" and meta["last_complete_round"] == 2
    rounds = pd.read_parquet(run / "rounds.parquet")
    assert list(rounds["round"]) == [0, 1, 2]
    s = pd.read_parquet(run / "samples" / "round=0001.parquet")
    assert list(s.columns[:2]) == ["sample_id", "loss"] and (s["round"] == 1).all()
    with np.load(run / "kernel" / "round=0002.npz", allow_pickle=False) as z:
        assert z["trace"].shape == (3, 3)
    r = RunReader(run)
    assert r.curriculum == "docl" and r.seed == 1 and r.round_ids == [0, 1, 2]
    assert len(r.samples_all(columns=["score"])) == 15
    assert r.kernel_rounds() == [0, 1, 2]


def test_reader_trusts_only_committed_rounds(tmp_path):
    run = tmp_path / "r"
    w = _write_run(run, rounds=2, status="running")
    # a killed attempt: round 2's files are written but run.json was not rewritten
    meta = dict(w.meta)
    w.write_round(2, {"k": 2}, _samples())
    (run / "run.json").write_text(json.dumps(meta))
    r = RunReader(run)
    assert r.last_complete_round == 1 and r.is_live
    assert list(r.rounds()["round"]) == [0, 1]
    with pytest.raises(RunStoreError, match="not committed"):
        r.samples(2)


def test_rewriting_a_round_replaces_its_row_and_never_moves_commit_back(tmp_path):
    run = tmp_path / "r"
    w = _write_run(run, rounds=3, status="running")
    w.write_round(1, {"k": 9}, _samples())
    rounds = RunReader(run).rounds()
    assert list(rounds["round"]) == [0, 1, 2] and rounds.loc[1, "k"] == 9
    assert RunReader(run).last_complete_round == 2


def test_start_refuses_to_overwrite_without_resume(tmp_path):
    run = tmp_path / "r"
    _write_run(run)
    with pytest.raises(RunStoreError, match="new folder, or pass resume=True"):
        RunWriter(run).start({})
    assert RunReader(run).last_complete_round == 2  # nothing lost


@pytest.mark.parametrize("damage, match", [
    (lambda run: (run / "run.json").write_text("{not json"), "corrupted"),
    (lambda run: (run / "run.json").unlink(), "not a docl run"),
    (lambda run: (run / "run.json").write_text("[1, 2]"), "not a docl run file"),
])
def test_damaged_run_json_gives_clear_error(tmp_path, damage, match):
    run = tmp_path / "r"
    _write_run(run)
    damage(run)
    with pytest.raises(RunStoreError, match=match):
        RunReader(run)


def test_truncated_parquet_and_npz_give_clear_errors(tmp_path):
    run = tmp_path / "r"
    _write_run(run)
    p = run / "samples" / "round=0001.parquet"
    p.write_bytes(p.read_bytes()[:40])
    k = run / "kernel" / "round=0001.npz"
    k.write_bytes(k.read_bytes()[:30])
    r = RunReader(run)
    with pytest.raises(RunStoreError, match="corrupted"):
        r.samples(1)
    with pytest.raises(RunStoreError, match="corrupted"):
        r.kernel(1)
    assert len(r.samples(0)) == 5  # the rest still reads


def test_experiment_reader_skips_bad_runs_and_reports_them(tmp_path):
    exp = tmp_path / "exp"
    _write_run(exp / "a")
    _write_run(exp / "b")
    (exp / "b" / "run.json").write_text("garbage")
    (exp / "notes").mkdir()
    e = ExperimentReader(exp)
    assert [r.dir.name for r in e.runs] == ["a"] and "b" in e.errors
    assert set(e.rounds().columns) >= {"round", "run", "curriculum", "seed", "test_acc"}
    assert list_experiments(tmp_path) == [exp]
    with pytest.raises(RunStoreError, match="no docl runs"):
        ExperimentReader(tmp_path / "exp" / "notes")
    with pytest.raises(RunStoreError, match="does not exist"):
        ExperimentReader(tmp_path / "nowhere")


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")
    import os
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
