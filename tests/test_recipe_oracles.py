"""The recipe's ingredients against independent oracles written by hand from docs/protocol.md.

Every expected value here is computed in plain numpy / Python loops from the facts in
docs/protocol.md, never by calling the helper under test and never by replaying
values our code recorded: swarp and the centrality, the full pass's loss, the mean teacher,
the sampling distribution, the pool-and-prune draw (by simulation of the authors' numpy rule),
the mod rescale, mixup, the shuffled subset order (order="shuffle"), the score a selection reads, and mixup's α.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import docl_core.train_pass as train_pass_module
from docl_core.config import RunConfig
from docl_core.curricula import RoundState, make_curriculum
from docl_core.protocol import PaperSchedule
from docl_core.recipe import (MeanTeacher, mixup_batch, paper_centrality, probability_square_loss,
                              sampling_probability, sampling_spread, swarp)
from docl_core.trainer import Trainer

# ----------------------------------------------------------------------------- hand oracles


def _np_swarp(v, alpha=2.0, beta=0.75):
    """swarp(v) = 1 / (1 + (v^(1/log2 β) − 1)^α) entry by entry for v > 1e-30; 0 stays 0."""
    v = np.asarray(v, dtype=np.float64)
    out = np.zeros_like(v)
    expo = 1.0 / math.log2(beta)
    for idx in np.ndindex(v.shape):
        x = float(v[idx])
        if x > 1e-30:
            out[idx] = 1.0 / (1.0 + (x ** expo - 1.0) ** alpha)
    return out


def _np_centrality(features, alpha=2.0, beta=0.75, gamma=2.0):
    """Per column: − min, ÷ (max + 1e-5), swarp, ^γ, × (max + 1e-5); c_i = Σ_j (F Fᵀ)_ij, sum 1."""
    f = np.array(features, dtype=np.float64)
    n, d = f.shape
    for j in range(d):
        col = f[:, j] - f[:, j].min()
        top = col.max() + 1e-5
        f[:, j] = _np_swarp(col / top, alpha, beta) ** gamma * top
    c = np.zeros(n)
    for i in range(n):
        for j in range(n):
            c[i] += sum(f[i, m] * f[j, m] for m in range(d))   # (F Fᵀ)_ij
    return c / c.sum()


def _np_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _np_sampling_p(a, scale=0.1):
    """p_i ∝ exp(scale · (a_i − max_j a_j)) over a shifted to a minimum of 0 (the authors' rand_prob)."""
    a = np.asarray(a, dtype=np.float64)
    a = a - a.min()
    w = np.exp(scale * (a - a.max()))
    return w / w.sum()


def _spearman(x, y):
    rx = np.argsort(np.argsort(np.asarray(x, dtype=np.float64), kind="stable"), kind="stable").astype(float)
    ry = np.argsort(np.argsort(np.asarray(y, dtype=np.float64), kind="stable"), kind="stable").astype(float)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / math.sqrt((rx * rx).sum() * (ry * ry).sum()))


# ----------------------------------------------------------------------------- 1. swarp and centrality


def test_swarp_and_centrality_match_a_numpy_oracle():
    """docs/protocol.md, 'Centrality': per-column min/max, swarp(α=2, β=0.75), γ=2, c ∝ Σ_j (F Fᵀ)_ij."""
    assert float(swarp(torch.tensor([0.75], dtype=torch.float64))[0]) == pytest.approx(0.5, abs=1e-12)
    assert float(swarp(torch.tensor([1.0], dtype=torch.float64))[0]) == pytest.approx(1.0, abs=1e-12)
    assert float(swarp(torch.tensor([0.0], dtype=torch.float64))[0]) == 0.0
    v = np.array([0.0, 1e-31, 1e-6, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    np.testing.assert_allclose(swarp(torch.tensor(v)).numpy(), _np_swarp(v), rtol=1e-12, atol=0)
    # a hand 4×3 matrix (post-ReLU features, ≥ 0); the last column is constant, so it drops out
    hand = np.array([[0.0, 1.5, 2.0],
                     [0.3, 0.0, 2.0],
                     [1.2, 0.7, 2.0],
                     [0.6, 2.2, 2.0]])
    rng = np.random.default_rng(11)
    rand = rng.uniform(0.0, 3.0, size=(7, 5)) * (rng.uniform(size=(7, 5)) > 0.2)   # some exact zeros
    # (paper_centrality first clips features to [1e-10, 1e10], as docl.py does: on exact zeros that
    # moves the result by ~1e-10 relative, hence the looser tolerance there; the models' features
    # are post-ReLU, so the clip never changes anything else)
    positive = rng.uniform(0.01, 3.0, size=(6, 4))
    for feats, rtol in ((hand, 1e-8), (rand, 1e-8), (positive, 1e-12)):
        want = _np_centrality(feats)
        got = paper_centrality(torch.tensor(feats, dtype=torch.float64))
        assert got.dtype == torch.float64 and got.shape == (len(feats),)
        np.testing.assert_allclose(got.numpy(), want, rtol=rtol, atol=1e-14)
        assert got.sum().item() == pytest.approx(1.0, abs=1e-12)
    # float32 features (the models' dtype) land on the same values within float32 precision
    got32 = paper_centrality(torch.tensor(rand, dtype=torch.float32))
    np.testing.assert_allclose(got32.numpy(), _np_centrality(rand), rtol=1e-5)


# ----------------------------------------------------------------------------- 2. the full pass's loss


def test_probability_square_loss_matches_numpy():
    """docs/protocol.md, 'Space': the full pass's loss ½(Σ_c p_c² + 1) − p_y on softmax probabilities."""
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=3.0, size=(32, 7))
    y = rng.integers(0, 7, size=32)
    p = _np_softmax(logits)
    want = np.array([0.5 * (sum(p[i, c] ** 2 for c in range(7)) + 1.0) - p[i, y[i]] for i in range(32)])
    # the same thing written as ½‖p − onehot(y)‖²
    onehot = np.eye(7)[y]
    np.testing.assert_allclose(want, 0.5 * ((p - onehot) ** 2).sum(1), rtol=1e-12)
    got = probability_square_loss(torch.tensor(logits), torch.tensor(y))
    assert got.shape == (32,)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- 3. the mean teacher


class _Tiny(nn.Module):
    """Two parameters in a Linear, two in a BatchNorm1d, its float running stats and integer count."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(1, 1)
        self.bn = nn.BatchNorm1d(1)

    def forward(self, x):
        return self.bn(self.lin(x))


def _np_state(model):
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


@torch.no_grad()
def _perturb(model, gen):
    """New random parameters and new BatchNorm statistics (one training-mode forward)."""
    for p in model.parameters():
        p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    model.train()
    model(torch.randn(8, 1, generator=gen, dtype=torch.float64) * 3 + 1)


@pytest.mark.parametrize("decay, table", [
    (0.5, [0.0, 0.5, 0.5, 0.5]),                           # min(1 − 1/(t+1), 0.5)
    (0.7, [0.0, 0.5, 2.0 / 3.0, 0.7, 0.7]),                # the true average until the cap
])
def test_mean_teacher_update_is_the_hand_recurrence(decay, table):
    """docs/protocol.md, 'The score' / 'Details': EMA over the whole state, d_t = min(1 − 1/(t+1), decay);
    t = 0 copies the student (BatchNorm statistics included); integer buffers are copied."""
    gen = torch.Generator().manual_seed(5)
    student = _Tiny().double()
    _perturb(student, gen)
    teacher = MeanTeacher(student, decay)
    _perturb(student, gen)
    teacher.model.bn.running_mean.fill_(-7.0)            # make sure t = 0 really overwrites everything
    teacher.model.bn.num_batches_tracked.fill_(99)
    hand = _np_state(teacher.model)
    for t, d in enumerate(table):
        assert MeanTeacher.weight(t, decay) == pytest.approx(d, abs=1e-15)
        _perturb(student, gen)
        s = _np_state(student)
        teacher.update(student, t)
        for name, value in s.items():
            if np.issubdtype(value.dtype, np.floating):
                hand[name] = d * hand[name] + (1.0 - d) * value
            else:
                hand[name] = value.copy()
        got = _np_state(teacher.model)
        assert set(got) == set(hand) == {"lin.weight", "lin.bias", "bn.weight", "bn.bias", "bn.running_mean",
                                         "bn.running_var", "bn.num_batches_tracked"}
        for name in hand:
            if t == 0:   # an exact copy
                np.testing.assert_array_equal(got[name], s[name], err_msg=f"t=0 {name}")
            np.testing.assert_allclose(got[name], hand[name], rtol=1e-13, atol=1e-15, err_msg=f"t={t} {name}")
        assert got["bn.num_batches_tracked"] == s["bn.num_batches_tracked"]


def test_mean_teacher_copy_from_and_restart_student():
    """docs/protocol.md, 'Details': the teacher takes the student's parameters at episode 1; later the
    student restarts as teacher·(1 + 0.01·ε), ε ~ N(0, 1), parameters only (it keeps its own BN stats)."""
    gen = torch.Generator().manual_seed(8)
    student = _Tiny().double()
    teacher = MeanTeacher(student, 0.5)
    _perturb(student, gen)
    _perturb(teacher.model, gen)
    _perturb(teacher.model, gen)                      # two BatchNorm batches: its count differs too
    before_teacher, s = _np_state(teacher.model), _np_state(student)
    teacher.copy_from(student)
    after = _np_state(teacher.model)
    for name in ("lin.weight", "lin.bias", "bn.weight", "bn.bias"):
        np.testing.assert_array_equal(after[name], s[name], err_msg=name)
    for name in ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked"):
        np.testing.assert_array_equal(after[name], before_teacher[name], err_msg=name)
        assert not np.array_equal(after[name], s[name]), name        # the test would see a copy

    # restart: ε from the generator as it stands at the call
    _perturb(teacher.model, gen)
    _perturb(student, gen)
    t_state, s_state = _np_state(teacher.model), _np_state(student)
    g = torch.Generator().manual_seed(1234)
    clone = torch.Generator().set_state(g.get_state())
    noise = 0.01
    teacher.restart_student(student, noise, g)
    got = _np_state(student)
    for name, p in teacher.model.named_parameters():
        eps = torch.randn(p.shape, generator=clone, dtype=torch.float64).numpy()
        want = t_state[name] * (1.0 + noise * eps)
        np.testing.assert_allclose(got[name], want, rtol=1e-14, atol=0, err_msg=name)
        assert not np.array_equal(got[name], t_state[name]), name     # the noise is there
    for name in ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked"):
        np.testing.assert_array_equal(got[name], s_state[name], err_msg=name)
    assert torch.equal(g.get_state(), clone.get_state())               # one N(0, 1) draw per weight
    for name, value in _np_state(teacher.model).items():               # the teacher is untouched
        np.testing.assert_array_equal(value, t_state[name], err_msg=name)


# ----------------------------------------------------------------------------- 4. sampling distribution


def test_sampling_probability_and_spread_match_numpy():
    """docs/protocol.md, 'Space': p_i ∝ exp(0.1·(a_i − max a)), no overflow; spread = max/min p, 1/Σp²."""
    rng = np.random.default_rng(4)
    a = rng.normal(scale=20.0, size=50)
    want = np.array([math.exp(0.1 * (x - a.max())) for x in a])
    want /= want.sum()
    got = sampling_probability(torch.tensor(a), 0.1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(got.numpy(), _np_sampling_p(a), rtol=1e-12)   # a shifted to min 0: the same
    for shift in (-1e4, 3.7, 1e5):                                             # shift invariance
        np.testing.assert_allclose(sampling_probability(torch.tensor(a + shift), 0.1).numpy(), want, rtol=1e-9)
    huge = np.array([1e300, 1e300 - 1e290, 5e299, 1e300])          # exp(0.1·a) alone would overflow
    ph = sampling_probability(torch.tensor(huge), 0.1).numpy()
    assert np.isfinite(ph).all() and ph == pytest.approx([0.5, 0.0, 0.0, 0.5])
    big = np.array([1e6, 1e6 - 10.0, 1e6 - 20.0])
    hand = np.array([1.0, math.exp(-1.0), math.exp(-2.0)])
    np.testing.assert_allclose(sampling_probability(torch.tensor(big), 0.1).numpy(), hand / hand.sum(), rtol=1e-12)
    # float32 scores give float32 p of the same values
    p32 = sampling_probability(torch.tensor(a, dtype=torch.float32), 0.1)
    assert p32.dtype == torch.float32
    np.testing.assert_allclose(p32.numpy(), want, rtol=1e-5)

    spread = sampling_spread(got)
    assert spread["sampling_p_ratio"] == pytest.approx(want.max() / want.min(), rel=1e-12)
    assert spread["sampling_ess"] == pytest.approx(1.0 / sum(x * x for x in want), rel=1e-12)
    uni = sampling_spread(torch.full((37,), 1.0 / 37, dtype=torch.float64))
    assert uni["sampling_p_ratio"] == pytest.approx(1.0) and uni["sampling_ess"] == pytest.approx(37.0)
    assert sampling_spread(None, 37) == {"sampling_p_ratio": 1.0, "sampling_ess": 37.0}
    unnorm = sampling_spread(torch.tensor([2.0, 2.0, 4.0], dtype=torch.float64))   # normalised first
    assert unnorm["sampling_p_ratio"] == pytest.approx(2.0)
    assert unnorm["sampling_ess"] == pytest.approx(1.0 / (0.25 ** 2 * 2 + 0.5 ** 2))


# ----------------------------------------------------------------------------- 5. pool and prune


N5, K0, K5, MOD5 = 12, 6, 3, 1.0


def _problem5():
    rng = np.random.default_rng(55)
    a = rng.uniform(0.0, 40.0, N5)                   # exp(0.1·40) ≈ 55: p spans well over a decade
    c = rng.uniform(0.3, 1.7, N5)
    c /= c.sum()
    return a, c


def _np_authors_pool_prune(rng, p, c, mod, k0, k):
    """docl.py's rule, use_random_subsample on: k0 from p without replacement, keep the k largest mod·p + c."""
    pool = rng.choice(len(p), k0, p=p, replace=False)
    keep = np.argpartition(mod * p[pool] + c[pool], -k)[-k:]
    return pool[keep]


def _np_authors_no_pool(rng, p, c, mod, k):
    """use_random_subsample off: k drawn without replacement from q ∝ mod·p + c."""
    q = mod * p + c
    return rng.choice(len(p), k, p=q / q.sum(), replace=False)


def _frequencies(draw, times, n):
    counts = np.zeros(n)
    for _ in range(times):
        ids = np.asarray(draw())
        assert len(ids) == len(set(ids.tolist()))
        counts[ids] += 1
    return counts / times


def _our_draw(name, a, c, k, random_subsample, seed):
    cur = make_curriculum(name, diversity="centrality", protocol="paper")
    gen = torch.Generator().manual_seed(seed)
    probs = []

    def draw():
        state = RoundState(t=1, k=k, lam=1.0, temperature=10.0, pool_factor=1.0, loss=torch.zeros(N5),
                           score=torch.tensor(a), features=None, generator=gen, pool=K0,
                           centrality=torch.tensor(c), mod=MOD5, random_subsample=random_subsample)
        sel = cur.select(state)
        assert sel.indices.dtype == torch.int64 and len(sel.indices) == k
        if len(probs) < 3:
            probs.append(sel.probability.numpy().copy())
        return sel.indices.numpy()

    return draw, probs


@pytest.mark.parametrize("name, random_subsample", [("docl", True), ("docl", False), ("docl-nr", True)])
def test_pool_and_prune_frequencies_match_a_simulation_of_the_authors_rule(name, random_subsample):
    """docs/protocol.md, 'Space': draw k0 from p without replacement, keep the k largest mod·p + c; without
    the random subsample (docl-nr always) draw k from q ∝ mod·p + c. Selection.probability is p."""
    a, c = _problem5()
    p = _np_sampling_p(a)
    rng = np.random.default_rng(99)
    pooled = name == "docl" and random_subsample
    if pooled:
        oracle = _frequencies(lambda: _np_authors_pool_prune(rng, p, c, MOD5, K0, K5), 20000, N5)
    else:
        oracle = _frequencies(lambda: _np_authors_no_pool(rng, p, c, MOD5, K5), 20000, N5)
    draw, probs = _our_draw(name, a, c, K5, random_subsample, seed=7)
    ours = _frequencies(draw, 4000, N5)
    for q in probs:
        np.testing.assert_allclose(q, p, rtol=1e-12)
    assert np.abs(ours - oracle).max() < 0.03, (ours.round(3), oracle.round(3))
    # the oracle has the power to tell the rules apart: each wrong variant misses by far more
    wrong = {
        "prune by c only": lambda: _np_authors_pool_prune(rng, p, c, 0.0, K0, K5),
        "prune by p only": lambda: _np_authors_pool_prune(rng, p, c * 1e-9, MOD5, K0, K5),
        "uniform pool": lambda: _np_authors_pool_prune(rng, np.full(N5, 1.0 / N5), c, MOD5, K0, K5),
        "draw from p": lambda: rng.choice(N5, K5, p=p, replace=False),
        "no pool": lambda: _np_authors_no_pool(rng, p, c, MOD5, K5),
        "pool and prune": lambda: _np_authors_pool_prune(rng, p, c, MOD5, K0, K5),
    }
    for label, f in wrong.items():
        if label == ("pool and prune" if pooled else "no pool"):
            continue
        assert np.abs(_frequencies(f, 4000, N5) - oracle).max() > 0.08, label


# ----------------------------------------------------------------------------- instrumented docl run


def _instrument(trainer, events):
    """Record, in order: each epoch's plan, pass starts/ends, mixup's α, mini-batches, score updates
    (the paper score right after each end_pass), and every selection with the state it received."""
    real_plan = trainer.protocol.plan
    state = {"epoch": None}

    def plan(e):
        state["epoch"] = e
        events.append(("epoch", e))
        return real_plan(e)

    real_pass = trainer.train_pass

    def train_pass(spec):
        events.append(("pass", state["epoch"], spec.full))
        out = real_pass(spec)
        events.append(("pass_end", state["epoch"], spec.full))
        return out

    real_select = trainer.curriculum.select

    def select(st):
        sel = real_select(st)
        events.append(("select", state["epoch"], {
            "score": None if st.score is None else st.score.detach().clone(),
            "loss": st.loss.detach().clone(), "labels": None if st.labels is None else st.labels.clone(),
            "centrality": None if st.centrality is None else st.centrality.detach().clone(),
            "mod": st.mod, "k": st.k, "pool": st.pool, "indices": sel.indices.clone(),
            "probability": None if sel.probability is None else sel.probability.clone()}))
        return sel

    paper = trainer.tracker.scorers["paper"].estimator  # the recipe.PaperByproduct the run updates
    real_end = paper.end_pass

    def end_pass():
        opened = paper.pass_open
        out = real_end()
        if opened:
            events.append(("score", state["epoch"], paper.score.detach().clone()))
        return out

    real_on_batch = trainer.tracker.on_batch

    def on_batch(batch, outputs, lr, **kw):
        events.append(("batch", state["epoch"], batch.detach().cpu().clone()))
        return real_on_batch(batch, outputs, lr, **kw)

    trainer.protocol.plan = plan
    trainer.train_pass = train_pass
    trainer.curriculum.select = select
    paper.end_pass = end_pass
    trainer.tracker.on_batch = on_batch


def _run_instrumented(cfg, run_dir):
    events = []
    real_mixup = train_pass_module.mixup_batch

    def mixup(x, alpha, gen):
        events.append(("mixup", alpha))
        return real_mixup(x, alpha, gen)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_pass_module, "mixup_batch", mixup)
        trainer = Trainer(cfg, run_dir)
        _instrument(trainer, events)
        trainer.run()
    return events


# warm start 1 epoch; episode 1 = epochs 1–3, episode 2 = epoch 4, episode 3 = epoch 5; with
# explore_episodes = 2 the centrality is recomputed at episodes 1 and 2 and frozen at episode 3
DOCL_SCHEDULE = dict(epochs=6, episodes=[0, 1, 4, 5], explore_episodes=2)


@pytest.fixture(scope="module")
def docl_events(tmp_path_factory):
    cfg = RunConfig(dataset="moons", curriculum="docl", protocol="paper", seed=3, probe_size=0, device="cpu",
                    log_estimators=[], schedule=PaperSchedule(**DOCL_SCHEDULE))
    return _run_instrumented(cfg, tmp_path_factory.mktemp("docl") / "r")


def _selects(events):
    return [(ev[1], ev[2]) for ev in events if ev[0] == "select"]


# ----------------------------------------------------------------------------- 6. mod rescale


def test_mod_is_rescaled_by_the_previous_subsets_centrality_over_p(docl_events):
    """docs/protocol.md, 'Space': mod = 0.1·1.5^i, × Σ_S c / Σ_S p of the previous subset S (docl.py resets
    the ratio to 1 whenever it recomputes the centrality, i.e. at episode starts while exploring)."""
    sels = _selects(docl_events)
    assert [e for e, _ in sels] == [1, 2, 3, 4, 5]
    episode_mod = {i: 0.1 * 1.5 ** i for i in (1, 2, 3)}

    def ratio(rec):
        p = _np_sampling_p(rec["score"].double().numpy())      # the previous state's p, by hand
        c = rec["centrality"].double().numpy()
        s = rec["indices"].numpy()
        assert len(set(s.tolist())) == len(s)
        return sum(c[i] for i in s) / sum(p[i] for i in s)

    by_epoch = dict(sels)
    for e, rec in by_epoch.items():
        assert rec["centrality"] is not None and rec["probability"] is not None
        np.testing.assert_allclose(rec["probability"].numpy(), _np_sampling_p(rec["score"].double().numpy()),
                                   rtol=1e-6)
    # epoch 1 (episode 1 starts, centrality computed): the ratio starts at 1
    assert by_epoch[1]["mod"] == pytest.approx(episode_mod[1], rel=1e-12)
    # epochs 2 and 3 (same episode): episode mod × the ratio of the previous epoch's subset only
    # (docl.py: mod = args.mod · Σc/Σp, not a running product of ratios)
    r1, r2 = ratio(by_epoch[1]), ratio(by_epoch[2])
    assert abs(r1 - 1.0) > 1e-3 and abs(r2 - 1.0) > 1e-3 and abs(r1 * r2 - r2) > 1e-3 * r2  # visible
    assert by_epoch[2]["mod"] == pytest.approx(episode_mod[1] * r1, rel=1e-6)
    assert by_epoch[3]["mod"] == pytest.approx(episode_mod[1] * r2, rel=1e-6)
    # epoch 4 (episode 2 starts, still exploring: centrality recomputed, ratio reset)
    assert not torch.equal(by_epoch[4]["centrality"], by_epoch[1]["centrality"])
    assert by_epoch[4]["mod"] == pytest.approx(episode_mod[2], rel=1e-12)
    # epoch 5 (episode 3 starts, centrality frozen): the ratio of epoch 4's subset carries over
    assert torch.equal(by_epoch[5]["centrality"], by_epoch[4]["centrality"])
    r4 = ratio(by_epoch[4])
    assert by_epoch[5]["mod"] == pytest.approx(episode_mod[3] * r4, rel=1e-6)


# ----------------------------------------------------------------------------- 7. mixup


def test_mixup_batch_is_a_convex_mix_with_a_permutation():
    """docs/protocol.md, 'Other ingredients': mixup, inputs λx + (1 − λ)x[perm], λ ~ Beta(α, α)."""
    rng = np.random.default_rng(7)
    x_np = rng.normal(size=(10, 3, 2))
    x = torch.tensor(x_np)
    gen = torch.Generator().manual_seed(3)
    lams = {0.2: [], 1.0: []}
    for alpha in (0.2, 1.0):
        for _ in range(3000):
            out, perm, lam = mixup_batch(x, alpha, gen)
            lams[alpha].append(lam)
        perm_np = perm.numpy()
        assert sorted(perm_np.tolist()) == list(range(10))
        assert 0.0 < lam < 1.0
        want = np.empty_like(x_np)
        for i in range(10):
            want[i] = lam * x_np[i] + (1.0 - lam) * x_np[perm_np[i]]
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-13, atol=1e-15)
    for alpha, ls in lams.items():
        ls = np.array(ls)
        assert ((ls > 0) & (ls < 1)).all()
        # Beta(α, α): mean ½, variance 1 / (4(2α + 1))
        assert ls.mean() == pytest.approx(0.5, abs=0.03)
        assert ls.var() == pytest.approx(1.0 / (4.0 * (2.0 * alpha + 1.0)), rel=0.1), alpha
    for alpha in (0.0, -1.0):
        out, perm, lam = mixup_batch(x, alpha, gen)
        assert lam == 1.0 and torch.equal(out, x) and perm.tolist() == list(range(10))


# ----------------------------------------------------------------------------- 8. order="shuffle"


def test_shuffled_subset_passes_train_in_an_order_unrelated_to_any_key(tmp_path):
    """docs/protocol.md, 'Space': under order="shuffle" the subset is trained in a fresh random order (no
    sorting by loss, centrality, id or the selection's own order): the first mini-batch is class-mixed
    and its losses are not monotone. (The default, "draw", is tested in test_pass_order.py.)"""
    cfg = RunConfig(dataset="digits", curriculum="spl", protocol="paper", seed=2, probe_size=0, device="cpu",
                    log_estimators=[], label_noise=0.2, order="shuffle",
                    schedule=PaperSchedule(epochs=4, episodes=[0, 1, 2, 3]))
    events = _run_instrumented(cfg, tmp_path / "r")
    checked = 0
    for i, ev in enumerate(events):
        if ev[0] != "select":
            continue
        e, rec = ev[1], ev[2]
        # the subset pass follows: its mini-batches, in order, until the pass ends
        start = next(j for j in range(i + 1, len(events)) if events[j][0] == "pass")
        assert events[start][1:] == (e, False)
        end = next(j for j in range(start, len(events)) if events[j][0] == "pass_end")
        batches = [events[j][2].numpy() for j in range(start, end) if events[j][0] == "batch"]
        order = np.concatenate(batches)
        chosen = rec["indices"].numpy()
        assert sorted(order.tolist()) == sorted(chosen.tolist())          # each selected sample once
        loss, labels = rec["loss"].double().numpy(), rec["labels"].numpy()
        first = batches[0]
        assert len(first) >= 32 and len(batches) >= 2
        assert len(set(labels[first].tolist())) >= 5, labels[first]       # class-mixed
        d = np.diff(loss[first])
        assert (d > 0).any() and (d < 0).any()                             # not monotone in loss
        assert (np.diff(order) < 0).any() and (np.diff(order) > 0).any()   # not sorted by id
        pos = np.arange(len(order))
        where = {s: j for j, s in enumerate(chosen.tolist())}
        for key, values in (("loss", loss[order]), ("id", order),
                            ("selection order", [where[s] for s in order.tolist()])):
            assert abs(_spearman(pos, values)) < 0.35, key
        checked += 1
    assert checked == 3


# ----------------------------------------------------------------------------- 9. score after the full pass


def test_selection_reads_the_score_after_the_full_pass(docl_events):
    """docs/protocol.md, 'Space': at an episode's first epoch the full pass (which updates every score) runs
    first, then the selection reads the updated score; a 1-epoch warm start leaves all scores 0."""
    last_score, seen = None, []
    episode_starts = {1, 4, 5}
    for i, ev in enumerate(docl_events):
        if ev[0] == "score":
            seen.append((ev[1], ev[2]))
            last_score = ev[2]
        elif ev[0] == "select":
            e, rec = ev[1], ev[2]
            assert last_score is not None
            assert torch.equal(rec["score"], last_score.to(rec["score"].dtype)), e
            if e in episode_starts:
                # the latest score update is this epoch's full pass, which ran before the selection
                passes = [x for x in docl_events[:i] if x[0] == "pass" and x[1] == e]
                assert passes == [("pass", e, True)], e
                assert seen[-1][0] == e
                before = seen[-2][1]               # the score before the full pass
                assert not torch.equal(before, rec["score"]), e
    # warm start (epoch 0): one pass, every sample's first visit only stores its logits
    assert seen[0][0] == 0 and float(seen[0][1].abs().max()) == 0.0
    first = next(ev[2] for ev in docl_events if ev[0] == "select")
    assert float(first["score"].abs().max()) > 0.0
    assert (first["score"] != 0).float().mean() > 0.9       # the full pass estimated (nearly) every sample


# ----------------------------------------------------------------------------- 10. mixup's α


def _alpha_by_pass(events):
    """{(epoch, full): set of α} from the instrumented stream."""
    out, key = {}, None
    for ev in events:
        if ev[0] == "pass":
            key = (ev[1], ev[2])
        elif ev[0] == "pass_end":
            key = None
        elif ev[0] == "mixup":
            assert key is not None
            out.setdefault(key, set()).add(ev[1])
    return out


def test_docl_alpha_decays_in_subset_passes_and_is_02_in_full_passes(docl_events):
    """docs/protocol.md, 'Other ingredients': under the curriculum α = 1.0·0.9^i (≥ 0.2) in subset passes;
    the warm start and the episode's full pass use 0.2."""
    got = _alpha_by_pass(docl_events)
    want = {(0, False): 0.2,                                   # warm start
            (1, True): 0.2, (1, False): 0.9, (2, False): 0.9, (3, False): 0.9,   # episode 1
            (4, True): 0.2, (4, False): 0.81,                                    # episode 2
            (5, True): 0.2, (5, False): 0.729}                                   # episode 3
    assert set(got) == set(want)
    for key, alpha in want.items():
        assert len(got[key]) == 1, key
        assert got[key].pop() == pytest.approx(alpha, rel=1e-12), key


@pytest.mark.parametrize("decay", [False, True])
def test_baseline_alpha_after_the_warm_start(tmp_path, decay):
    """docs/protocol.md, 'Baselines': sgd keeps the command line's α after the warm start (0.2 during it);
    with baseline_alpha_decay it decays ×0.9 per episode down to 0.2."""
    if decay:
        sched = PaperSchedule(epochs=6, episodes=[0, 1, 2, 3, 4, 5], mixup_alpha=0.3, baseline_alpha_decay=True)
        alpha, want = 0.3, {0: 0.2}
        for e in range(1, 6):                  # one episode per epoch: α ← max(0.2, 0.9·α)
            alpha = max(0.2, alpha * 0.9)
            want[e] = alpha
        assert want[4] == 0.2 and want[3] > 0.2
    else:
        sched = PaperSchedule(epochs=4, episodes=[0, 2, 3])
        want = {0: 0.2, 1: 0.2, 2: 1.0, 3: 1.0}
    cfg = RunConfig(dataset="moons", curriculum="sgd", protocol="paper", seed=1, probe_size=0, device="cpu",
                    log_estimators=[], schedule=sched)
    got = _alpha_by_pass(_run_instrumented(cfg, tmp_path / "r"))
    assert set(got) == {(e, False) for e in want}          # no extra full pass for the baseline
    for e, a in want.items():
        assert len(got[(e, False)]) == 1, e
        assert got[(e, False)].pop() == pytest.approx(a, rel=1e-12), e
