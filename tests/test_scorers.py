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


# ------------------------------------------------------------------ features from the exact pass


class _OffsetHead(nn.Module):
    """features(x) is not what the head receives: forward = head(features(x) + 1), or (twice) the
    head called on the features and again on their halves."""

    def __init__(self, d=5, c=3, twice=False):
        super().__init__()
        self.body, self.head, self.twice = nn.Sequential(nn.Linear(d, 8), nn.ReLU()), nn.Linear(8, c), twice

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        h = self.body(x)
        return self.head(h) + self.head(0.5 * h) if self.twice else self.head(h + 1.0)


@pytest.mark.parametrize("kind", ["mlp", "signal"])
def test_the_exact_pass_keeps_the_features(kind):
    """docl_scores(features=True) returns the head's inputs from inside the JVP pass. Against a plain
    eval forward of model.features on fresh random inputs: bit for bit without BatchNorm (MLP); with
    trained BatchNorm statistics (SignalCNN, folded into one affine map in that pass) equal to float
    rounding (float64: 1e-12 relative). Scores and outputs are those of the call without it."""
    from docl_core.dynamics import docl_scores, eval_mode
    from docl_core.measure import model_features
    from docl_core.models import MLP, SignalCNN

    for dtype in (torch.float64, torch.float32):
        torch.manual_seed(3)
        if kind == "mlp":
            model, X = MLP(5, 3), torch.randn(70, 5)
        else:
            model, X = SignalCNN(1, 3, 40), torch.randn(70, 1, 40)
        model, X = model.to(dtype), X.to(dtype)
        model.train()
        with torch.no_grad():
            for _ in range(3):
                model(3.0 * X + 1.0)       # running statistics far from (0, 1)
        y = torch.randint(0, 3, (70,))
        with_f = docl_scores(model, X, y, batch_size=32, features=True)
        without = docl_scores(model, X, y, batch_size=32)
        with torch.no_grad(), eval_mode(model):
            plain = torch.cat([model_features(model, X[s:s + 32]) for s in range(0, 70, 32)])
        assert with_f.features.shape == plain.shape
        if kind == "mlp":
            assert torch.equal(with_f.features, plain)
        else:
            bn = model.body[0][1]
            assert float((bn.running_var - 1).abs().max()) > 0.1   # BatchNorm is not near the identity
            rtol = 1e-12 if dtype == torch.float64 else 1e-5
            torch.testing.assert_close(with_f.features, plain, rtol=rtol, atol=rtol * float(plain.abs().max()))
        assert torch.equal(with_f.score, without.score) and torch.equal(with_f.output, without.output)
        assert without.features is None
        assert docl_scores(model, X, y, batch_size=32, estimator="fast", features=True).features is None


def _count_feature_calls(model):
    calls = []
    inner = model.features
    model.features = lambda x: (calls.append(len(x)), inner(x))[1]
    return calls


@pytest.mark.parametrize("offset", [False, True, "twice"])
def test_the_measurer_maps_from_the_exact_pass_only_when_the_head_sees_the_features(offset):
    """With the exact estimator the Measurer takes the map's features from the scoring pass (one
    check batch the first time, no features forward after); a model whose head sees something else
    keeps the separate forward. Either way the features equal model.features(X)."""
    from docl_core.dynamics import eval_mode
    from docl_core.measure import Measurer
    from docl_core.models import MLP

    _, X, y = _setup(n=100)
    torch.manual_seed(1)
    model = _OffsetHead(twice=offset == "twice") if offset else MLP(5, 3)
    with torch.no_grad(), eval_mode(model):   # in the Measurer's batches of 40: the same products, bit for bit
        truth = torch.cat([model.features(X[s:s + 40]) for s in range(0, len(X), 40)])
    counts, checked = [], []
    for known in (None, False):                    # the check as it runs; the separate forward forced
        calls = _count_feature_calls(model)
        m = Measurer(model, X, y, "classification", make_scorers(["exact"], y, 3, "classification"),
                     ["exact"], batch_size=40)
        m.head_gives_features = known
        first, second = m.measure(features=True), m.measure(features=True)
        assert torch.equal(first.features, truth) and torch.equal(second.features, truth)
        counts.append(len(calls))
        checked.append(m.head_gives_features)
        del model.features
    assert checked == [not offset, False]
    # 100 samples in batches of 40: the separate forward is 3 calls of features per measurement; the
    # check is one call, once. Offset: the check fails, the separate forward stays (one call more).
    assert counts[0] - counts[1] == (1 if offset else 1 - 2 * 3)
