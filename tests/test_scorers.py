"""The scorers (scorers.py) and the tracker's public surface built on them (issue 30, item 4).

The registry covers every score of names.SCORES; each scorer's checkpoint state restores the same
scores; the tracker's options may come as a TrackerOptions or as keywords, alike; and the calls the
trainer makes (meta, update_meta, resume_at) are the ones users get.
"""
import numpy as np
import pytest
import torch
import torch.nn as nn

from docl_core import names
from docl_core.scorers import SCORERS, GradientScore, Measuring, make_scorers
from docl_core.tracker import DynamicsTracker, RunInfo, TrackerOptions


def _setup(n=48, d=5, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, c))
    return model, X, y


def test_the_registry_covers_every_score_but_the_loss():
    assert set(SCORERS) == set(names.SCORES) - {"loss"}  # the loss is the measurement's own (outputs.py)
    for name, cls in SCORERS.items():
        assert cls is GradientScore or name in cls.names, name
    made = make_scorers(["exact", "fast", "el2n", "margin", "aum"], torch.zeros(4, dtype=torch.long), 3,
                        "classification")
    assert made["el2n"] is made["margin"] and made["exact"] is not made["fast"]  # one object per class, per estimator
    with pytest.raises(ValueError, match="unknown score 'loss'"):
        make_scorers(["loss"], torch.zeros(4, dtype=torch.long), 3, "classification")


def test_each_scorers_state_restores_its_scores():
    model, X, y = _setup()
    score_names = ["byproduct", "paper", "forgetting", "confidence"]
    a = make_scorers(score_names, y, 3, "classification")
    distinct = list({id(s): s for s in a.values()}.values())
    gen = torch.Generator().manual_seed(1)
    for lr in (0.1, 0.05, 0.02):
        for ids in torch.randperm(len(X), generator=gen).split(16):
            out = model(X[ids]).detach() + lr * torch.randn(len(ids), 3, generator=gen)
            for s in distinct:
                s.observe(ids, out, lr, lr)
        for s in distinct:
            s.end_pass()
            s.end_round(model(X).detach())
    b = make_scorers(score_names, y, 3, "classification")
    state = {k: v for s in distinct for k, v in s.state().items()}
    for s in {id(s): s for s in b.values()}.values():
        s.load_state(state)
    at = Measuring(model, X, y, y, "classification", output=model(X).detach())
    for name in score_names:
        want, got = a[name].measure(at), b[name].measure(at)
        assert want.keys() == got.keys()
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, equal_nan=True)


def test_options_and_keywords_make_the_same_tracker(tmp_path):
    model, X, y = _setup()
    frames = []
    for name, kw in (("kw", dict(probe_size=6, estimator="byproduct", log_estimators=("exact",), embedding=False)),
                     ("opt", dict(options=TrackerOptions(probe_size=6, estimator="byproduct",
                                                         log_estimators=("exact",), embedding=False)))):
        tr = DynamicsTracker(tmp_path / name, model, X, y, **kw)
        tr.on_batch(torch.arange(16), model(X[:16]).detach(), lr=0.1)
        tr.end_round()
        tr.close()
        frames.append(tr.run.samples(0))
    assert list(frames[0].columns) == list(frames[1].columns)
    for c in frames[0].columns:
        np.testing.assert_array_equal(frames[0][c].to_numpy(), frames[1][c].to_numpy())
    with pytest.raises(TypeError, match="unexpected keyword 'probe'.*probe_size"):
        DynamicsTracker(None, model, X, y, probe=4)


def test_meta_update_meta_and_resume_at_are_the_trainers_calls(tmp_path):
    model, X, y = _setup()
    tr = DynamicsTracker(tmp_path / "r", model, X, y, info=RunInfo(meta={"note": "mine"}), probe_size=0)
    assert tr.meta["note"] == "mine" and tr.meta["last_complete_round"] == -1 and tr.round == 0
    tr.update_meta(extended=[{"rounds": 3}])
    assert tr.run.meta["extended"] == [{"rounds": 3}]  # committed to run.json
    tr.end_round()
    tr.resume_at(3)  # a checkpoint after round 2 whose run.json commit was lost: committed now
    assert tr.round == 3 and tr.run.last_complete_round == 2
    tr.resume_at(0)  # the commit point never moves back
    assert tr.round == 0 and tr.run.last_complete_round == 2
