"""DynamicsTracker: three calls in someone else's loop produce a complete docl run, and change nothing."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from docl_core import DynamicsTracker, RunReader
from docl_core.dynamics import docl_scores


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 6, generator=g)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).long() + (X[:, 2] > 1).long()
    return X, y


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))


def _loop(model, X, y, tracker=None, epochs=3, seed=1):
    """A user's own loop: shuffled mini-batches, SGD with momentum, a step lr."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(seed)
    for epoch in range(epochs):
        for ids in torch.randperm(len(X)).split(16):
            out = model(X[ids])
            loss = nn.functional.cross_entropy(out, y[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if tracker:
                tracker.on_batch(ids, out, lr=opt.param_groups[0]["lr"])
        if tracker:
            tracker.end_round(metrics={"epoch": epoch})
    return opt


def test_three_calls_write_a_complete_run(tmp_path):
    X, y = _data()
    model = _model()
    tracker = DynamicsTracker(tmp_path / "mine" / "run-0", model, X, y, probe_size=12)
    _loop(model, X, y, tracker)
    tracker.close()
    r = RunReader(tmp_path / "mine" / "run-0")
    assert r.status == "complete" and r.round_ids == [0, 1, 2]
    rounds = r.rounds()
    assert list(rounds["epoch"]) == [0, 1, 2] and (rounds["k"] == len(X)).all()
    assert list(rounds["steps"]) == [6, 12, 18]
    s = r.samples(2)
    for col in ["sample_id", "label", "loss", "correct", "p_true", "residual_norm", "speed_norm", "score",
                "score_exact", "score_byproduct", "selected", "weight", "times_selected"]:
        assert col in s.columns, col
    assert (s["times_selected"] == 3).all() and s["selected"].all()
    # the logged score is the exact score of the final weights
    exact = docl_scores(model, X, y).score.numpy()
    np.testing.assert_allclose(s["score"].to_numpy(), exact, rtol=1e-4, atol=1e-7)
    k = r.kernel(2)
    assert k["trace"].shape == (12, 12) and k["contributions"].shape == (12, 12)
    np.testing.assert_allclose(k["contributions"].sum(1), k["kernel_score"], rtol=1e-4, atol=1e-7)
    assert (np.diff(k["labels"]) >= 0).all()  # probe ordered by class
    assert set(r.dataset().columns) >= {"sample_id", "label", "split"}


def test_in_memory_in_a_plain_loader_loop_logs_what_a_run_folder_holds(tmp_path):
    """DynamicsTracker(None, ...) keeps the run in memory; fed from a `for x, y, ids in loader` loop it
    logs exactly what the same loop logs into a folder (timings aside), and writes no file."""
    from torch.utils.data import DataLoader, TensorDataset
    X, y = _data()
    logs = []
    for out_dir in (None, tmp_path / "disk"):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        tracker = DynamicsTracker(out_dir, model, X, y, probe_size=8, embedding=False)
        loader = DataLoader(TensorDataset(X, y, torch.arange(len(X))), batch_size=16, shuffle=True,
                            generator=torch.Generator().manual_seed(3))
        for epoch in range(2):
            for xb, yb, ids in loader:                       # the dataset hands back each row's id
                out = model(xb)
                loss = nn.functional.cross_entropy(out, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                tracker.on_batch(ids, out, lr=0.1)
            tracker.end_round(metrics={"epoch": epoch})
        tracker.close()
        logs.append(tracker.run)
    mem, disk = logs
    assert mem.status == disk.status == "complete" and mem.round_ids == disk.round_ids == [0, 1]
    timing = [c for c in disk.rounds().columns if c.endswith("_time_s")]
    pd.testing.assert_frame_equal(mem.rounds().drop(columns=timing).reset_index(drop=True),
                                  disk.rounds().drop(columns=timing).reset_index(drop=True), check_dtype=False)
    for t in (0, 1):
        pd.testing.assert_frame_equal(mem.samples(t).reset_index(drop=True), disk.samples(t).reset_index(drop=True),
                                      check_dtype=False)
        for k, v in disk.kernel(t).items():
            np.testing.assert_array_equal(mem.kernel(t)[k], v)
    assert not any(p.name == "<in memory>" for p in tmp_path.rglob("*")) and not Path("<in memory>").exists()
    with pytest.raises(ValueError, match="resume needs a run folder"):
        DynamicsTracker(None, _model(), X, y, resume=True)


def test_tracker_changes_nothing_in_the_users_training(tmp_path):
    X, y = _data(seed=3)
    plain, tracked = _model(5), _model(5)
    opt_plain = _loop(plain, X, y)
    rng_plain = torch.get_rng_state()
    tracker = DynamicsTracker(tmp_path / "run", tracked, X, y, probe_size=8)
    opt_tracked = _loop(tracked, X, y, tracker)
    rng_tracked = torch.get_rng_state()
    tracker.close()
    assert torch.equal(rng_plain, rng_tracked)
    for (n, a), (_, b) in zip(plain.state_dict().items(), tracked.state_dict().items()):
        assert torch.equal(a, b), n
    assert tracked.training  # mode restored after every end_round
    sp, st = opt_plain.state_dict()["state"], opt_tracked.state_dict()["state"]
    for i in sp:
        assert torch.equal(sp[i]["momentum_buffer"], st[i]["momentum_buffer"])


def test_regression_and_bad_calls(tmp_path):
    X = torch.randn(40, 3)
    Y = torch.randn(40, 2)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2))
    tr = DynamicsTracker(tmp_path / "reg", model, X, Y, task="regression", probe_size=5,
                         eval_sets={"test": (X[:10], Y[:10])})
    out = model(X[:8])
    with pytest.raises(ValueError, match="ids"):
        tr.on_batch(torch.arange(4), out, lr=0.1)
    tr.on_batch(torch.arange(8), out.detach(), lr=0.1)
    tr.end_round()
    tr.close()
    r = RunReader(tmp_path / "reg")
    s = r.samples(0)
    assert s["selected"].sum() == 8 and "output0" in s.columns
    assert "test_mse" in r.rounds().columns
    with pytest.raises(ValueError, match="regression"):
        DynamicsTracker(tmp_path / "bad", model, X, torch.arange(40), task="regression")
    with pytest.raises(ValueError, match="unknown task"):
        DynamicsTracker(tmp_path / "bad2", model, X, Y, task="ranking")


def test_kernel_contribution_rows_sum_to_the_exact_score_when_the_probe_is_all_of_the_data(tmp_path):
    """c_ij = r_iᵀ H_ij r_j / m with the probe set = D: Σ_j c_ij = r_i · (1/N) Σ_j H_ij r_j = a_i, the
    exact score computed by the JVP route — two independent computations of the same number."""
    torch.manual_seed(0)
    X = torch.randn(24, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (24,))
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    tr = DynamicsTracker(tmp_path / "r", model, X, y, estimator="exact", log_estimators=(), probe_size=24)
    m = tr.measure(kernel=True)
    k = m.kernel
    assert sorted(k["probe_ids"]) == list(range(24))
    exact = m.scores["exact"].numpy()[k["probe_ids"]]
    np.testing.assert_allclose(k["contributions"].sum(1), exact, rtol=1e-5, atol=1e-7)
    assert np.abs(exact).max() > 1e-3


def test_flipped_labels_log_p_of_the_clean_label_too(tmp_path):
    """With noisy and clean_labels, each round logs p_clean = softmax(output)[clean label] beside
    p_true = softmax(output)[given label]; equal on unflipped samples; no column without a flip."""
    X, clean = _data()
    y = clean.clone()
    flipped = torch.zeros(len(y), dtype=torch.bool)
    flipped[::7] = True
    y[flipped] = (y[flipped] + 1) % 3
    model = _model()
    tracker = DynamicsTracker(tmp_path / "e" / "noisy", model, X, y, probe_size=0, noisy=flipped,
                              clean_labels=clean)
    _loop(model, X, y, tracker, epochs=2)
    tracker.close()
    s = RunReader(tmp_path / "e" / "noisy").samples(1)
    model.eval()
    with torch.no_grad():
        p = torch.softmax(model(X), 1)
    np.testing.assert_allclose(s["p_clean"].to_numpy(), p[torch.arange(len(y)), clean].numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(s["p_true"].to_numpy(), p[torch.arange(len(y)), y].numpy(), rtol=1e-5, atol=1e-7)
    keep = ~flipped.numpy()
    assert (s["p_clean"].to_numpy()[keep] == s["p_true"].to_numpy()[keep]).all()
    assert not np.allclose(s["p_clean"].to_numpy()[~keep], s["p_true"].to_numpy()[~keep])
    # nothing flipped: p_clean would repeat p_true, so it is not logged
    tracker = DynamicsTracker(tmp_path / "e" / "clean", _model(), X, clean, probe_size=0,
                              noisy=torch.zeros(len(y), dtype=torch.bool), clean_labels=clean)
    _loop(tracker.model, X, clean, tracker, epochs=1)
    tracker.close()
    assert "p_clean" not in RunReader(tmp_path / "e" / "clean").samples(0).columns
    with pytest.raises(ValueError, match=r"clean_labels must have shape \(96,\)"):
        DynamicsTracker(tmp_path / "e" / "bad", _model(), X, y, probe_size=0, noisy=flipped, clean_labels=clean[:5])
    with pytest.raises(ValueError, match=r"clean_labels must lie in \[0, 3\)"):
        DynamicsTracker(tmp_path / "e" / "bad2", _model(), X, y, probe_size=0, noisy=flipped, clean_labels=clean + 5)
