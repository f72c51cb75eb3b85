"""The score atlas: per-sample scores of the data-pruning literature against plain oracles, the
`score` curriculum against brute force, and the atlas computations and page on real and synthetic runs."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from docl_core import DynamicsTracker, RunReader
from docl_core.tracker import PresentationLog, output_scores, per_sample_grad_norms


def _data(n=60, d=5, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    return X, y


def _model(d=5, c=3, seed=0, bn=True):
    torch.manual_seed(seed)
    layers = [nn.Linear(d, 16)] + ([nn.BatchNorm1d(16)] if bn else []) + [nn.Tanh(), nn.Linear(16, c)]
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- EL2N, margin, entropy


def test_el2n_margin_entropy_against_hand_computation():
    g = torch.Generator().manual_seed(11)
    out = torch.randn(40, 4, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 4, (40,), generator=g)
    s = output_scores(out, y, "classification")
    for i in range(40):
        f = out[i].tolist()
        z = max(f)
        e = [math.exp(v - z) for v in f]
        p = [v / sum(e) for v in e]
        onehot = [1.0 if c == int(y[i]) else 0.0 for c in range(4)]
        el2n = math.sqrt(sum((p[c] - onehot[c]) ** 2 for c in range(4)))
        margin = f[int(y[i])] - max(f[c] for c in range(4) if c != int(y[i]))
        entropy = -sum(q * math.log(q) for q in p)
        assert abs(float(s["el2n"][i]) - el2n) < 1e-12
        assert abs(float(s["margin"][i]) - margin) < 1e-12
        assert abs(float(s["entropy"][i]) - entropy) < 1e-12


def test_regression_scores():
    out, y = torch.randn(7, 2, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
    s = output_scores(out, y, "regression")
    torch.testing.assert_close(s["el2n"], (out - y).norm(dim=1))
    assert torch.isnan(s["margin"]).all() and torch.isnan(s["entropy"]).all()


# ----------------------------------------------------------------------------- forgetting and AUM


def _plain_forgetting_and_aum(batches, y, n):
    """Forgetting counts and AUM by a plain loop over the recorded presentations."""
    last, count, forgets, margins = [None] * n, [0] * n, [0] * n, [[] for _ in range(n)]
    for ids, out in batches:
        for row, i in enumerate(ids.tolist()):
            f = out[row].tolist()
            lab = int(y[i])
            pred = max(range(len(f)), key=lambda c: (f[c], -c))  # argmax, first on ties
            correct = pred == lab
            if last[i] is True and not correct:
                forgets[i] += 1
            last[i] = correct
            count[i] += 1
            margins[i].append(f[lab] - max(f[c] for c in range(len(f)) if c != lab))
    aum = [sum(m) / len(m) if m else float("nan") for m in margins]
    return forgets, aum, count


def test_forgetting_and_aum_against_a_plain_loop():
    n, c = 30, 4
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, c, (n,), generator=g)
    log = PresentationLog(y, "classification")
    batches = []
    for _ in range(25):  # random batches of distinct ids; outputs lean to the label so both states occur
        ids = torch.randperm(n, generator=g)[:int(torch.randint(1, 12, (1,), generator=g))]
        out = torch.randn(len(ids), c, generator=g)
        out[torch.arange(len(ids)), y[ids]] += 0.8
        batches.append((ids, out))
        log.record(ids, out)
    forgets, aum, count = _plain_forgetting_and_aum(batches, y, n)
    s = log.scores()
    assert s["forgetting"].tolist() == forgets
    assert s["presentations"].tolist() == count
    np.testing.assert_allclose(s["aum"].numpy(), np.array(aum), rtol=1e-6, atol=1e-6, equal_nan=True)
    assert sum(forgets) > 0  # the sequence exercised forgetting at all


def test_presentations_survive_a_checkpoint():
    y = torch.tensor([0, 1, 2, 1])
    a = PresentationLog(y, "classification")
    a.record(torch.tensor([0, 1]), torch.eye(3)[[0, 1]])
    b = PresentationLog(y, "classification")
    b.load_state_dict(a.state_dict())
    for k in ("forgetting", "presentations"):
        assert torch.equal(a.scores()[k], b.scores()[k])


# ----------------------------------------------------------------------------- GraNd


@pytest.mark.parametrize("bn", [True, False])
def test_grand_against_per_sample_autograd_float64(bn):
    X, y = _data()
    model = _model(bn=bn).double()
    X = X.double()
    with torch.no_grad():  # a trained-looking BatchNorm: non-trivial running statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model.train()
    got = per_sample_grad_norms(model, X, y, "classification", batch_size=7, memory_budget_bytes=10 ** 9)
    assert model.training  # mode restored
    model.eval()
    want = []
    for i in range(len(X)):
        loss = nn.functional.cross_entropy(model(X[i:i + 1]), y[i:i + 1])
        grads = torch.autograd.grad(loss, [p for p in model.parameters()])
        want.append(torch.sqrt(sum((g ** 2).sum() for g in grads)))
    torch.testing.assert_close(got, torch.stack(want), rtol=1e-10, atol=1e-12)
    assert all(p.grad is None for p in model.parameters())


# ----------------------------------------------------------------------------- the tracker's frames


def _loop(model, X, y, tracker, epochs=3, seed=1):
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    torch.manual_seed(seed)
    recorded = []
    for _ in range(epochs):
        for ids in torch.randperm(len(X)).split(16):
            out = model(X[ids])
            loss = nn.functional.cross_entropy(out, y[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
            recorded.append((ids.clone(), out.detach().clone()))
            tracker.on_batch(ids, out, lr=0.2)
        tracker.end_round()
    return recorded


def test_tracker_frames_carry_the_atlas_columns(tmp_path):
    X, y = _data(n=64)
    model = _model()
    tracker = DynamicsTracker(tmp_path / "e" / "r", model, X, y, probe_size=0, log_grad_norms=True)
    recorded = _loop(model, X, y, tracker)
    tracker.close()
    r = RunReader(tmp_path / "e" / "r")
    frames = [r.samples(t) for t in r.round_ids]
    s = frames[-1]
    for col in ("el2n", "margin", "entropy", "forgetting", "presentations", "aum", "grand",
                "confidence", "variability", "correctness"):
        assert col in s.columns, col
    # EL2N is the residual norm under cross-entropy
    np.testing.assert_allclose(s["el2n"], s["residual_norm"], rtol=1e-5, atol=1e-6)
    # forgetting and AUM from the outputs on_batch received
    forgets, aum, count = _plain_forgetting_and_aum(recorded, y, len(X))
    assert s["forgetting"].tolist() == forgets and s["presentations"].tolist() == count
    np.testing.assert_allclose(s["aum"], aum, rtol=1e-5, atol=1e-5)
    # the data map over the rounds so far, as the Data map page computes it over all rounds
    P = np.stack([f["p_true"].to_numpy() for f in frames]).astype(np.float64)
    C = np.stack([f["correct"].to_numpy() for f in frames]).astype(np.float64)
    np.testing.assert_allclose(s["confidence"], P.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s["variability"], P.std(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s["correctness"], C.mean(0), atol=1e-6)
    np.testing.assert_allclose(frames[0]["variability"], 0, atol=1e-6)
    # GraNd at the final weights
    want = per_sample_grad_norms(model, X, y).numpy()
    np.testing.assert_allclose(s["grand"], want, rtol=1e-4, atol=1e-6)


def test_grand_is_opt_in(tmp_path):
    X, y = _data(n=32)
    model = _model()
    tracker = DynamicsTracker(tmp_path / "e" / "r", model, X, y, probe_size=0)
    _loop(model, X, y, tracker, epochs=1)
    tracker.close()
    s = RunReader(tmp_path / "e" / "r").samples(0)
    assert "grand" not in s.columns and "el2n" in s.columns


# ----------------------------------------------------------------------------- the score curriculum


def _round_state(n, k, score, paper=False, pool=None, seed=0):
    from docl_core.curricula import RoundState
    g = torch.Generator().manual_seed(seed)
    return RoundState(t=0, k=k, lam=0.0, temperature=10.0 if paper else 1.0, pool_factor=1e6,
                      loss=torch.rand(n, generator=g), score=score, features=None,
                      generator=torch.Generator().manual_seed(seed), pool=pool,
                      sampling="paper" if paper else "standardized")


@pytest.mark.parametrize("paper", [False, True])
@pytest.mark.parametrize("name,prefer", [("el2n", "hard"), ("el2n", "easy"), ("margin", "hard"),
                                         ("aum", "easy"), ("exact", "hard"), ("forgetting", "easy")])
def test_score_curriculum_picks_against_brute_force(name, prefer, paper):
    """With the pool the whole set and no diversity, the machinery keeps the k most preferred samples."""
    from docl_core.config import SAMPLE_SCORES
    from docl_core.curricula import make_curriculum
    n, k = 23, 7
    g = torch.Generator().manual_seed(hash((name, prefer, paper)) % 1000)
    values = torch.randn(n, generator=g, dtype=torch.float64)
    values[3] = float("nan")  # not measured yet: explored first
    cur = make_curriculum("score", diversity="none", score=name, prefer=prefer)
    picked = cur.select(_round_state(n, k, values, paper=paper, pool=n)).indices.tolist()
    hard_high = SAMPLE_SCORES.get(name, "high") == "high"
    want_high = hard_high == (prefer == "hard")
    finite = [i for i in range(n) if not math.isnan(float(values[i]))]
    ranked = sorted(finite, key=lambda i: float(values[i]), reverse=want_high)
    assert sorted(picked) == sorted([3] + ranked[:k - 1])


@pytest.mark.parametrize("prefer", ["hard", "easy"])
def test_score_curriculum_is_docls_machinery(prefer):
    """Driven by an estimator, `score` draws exactly what DoCL draws with ±a (pool, prune, generator)."""
    from docl_core.curricula import make_curriculum
    n, k = 40, 8
    a = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    for paper in (False, True):
        docl = make_curriculum("docl", diversity="none").select(
            _round_state(n, k, a if prefer == "hard" else -a, paper=paper, pool=20))
        score = make_curriculum("score", diversity="none", score="exact", prefer=prefer).select(
            _round_state(n, k, a, paper=paper, pool=20))
        assert docl.indices.tolist() == score.indices.tolist()


def test_trainer_selects_by_the_logged_score(tmp_path):
    """End to end: under the steps protocol, with the pool the whole set and no diversity, each round
    selects the k lowest EL2N of the state its samples frame logged."""
    from docl_core.config import RunConfig, Schedule
    from docl_core.trainer import train_run
    cfg = RunConfig(dataset="moons", curriculum="score", score="el2n", prefer="easy", diversity="none",
                    rounds=2, probe_size=0, device="cpu",
                    schedule=Schedule(pool_factor=1000.0, k_start=0.3, warmup_epochs=1))
    r = RunReader(train_run(cfg, tmp_path / "score-s0"))
    assert r.meta["config"]["score"] == "el2n" and r.meta["config"]["prefer"] == "easy"
    for t in r.round_ids:
        s = r.samples(t)
        k = int(s["selected"].sum())
        assert k == cfg.schedule.k(t, len(s))
        lowest = set(s.sort_values("el2n", kind="stable")["sample_id"].head(k))
        assert set(s.loc[s["selected"], "sample_id"]) == lowest
