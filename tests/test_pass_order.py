"""The order of a subset pass under the paper protocol, against numpy oracles written from
docs/protocol.md ('Space'): the authors draw the pool with `np.random.choice(n, k0, replace=False,
p=p)`, keep `np.argpartition(mod·p + c, −k)[−k:]` of it, and train the survivors in that order.

Every expected distribution here is simulated with numpy's own weighted draw; nothing replays a
value our code recorded. p is computed by hand from the score the selection saw.
"""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from docl_core.config import RunConfig
from docl_core.curricula import RoundState, make_curriculum
from docl_core.names import curriculum_display, run_curriculum
from docl_core.protocol import PaperSchedule
from docl_core.store import RunReader, RunStoreError
from docl_core.trainer import Trainer, train_run
from test_recipe_oracles import _spearman  # rank correlation by hand (ranks by a stable argsort)


def _np_p(a, scale):
    """p_i ∝ exp(scale · (a_i − max_j a_j)) (docs/protocol.md, 'Space')."""
    a = np.asarray(a, dtype=np.float64)
    w = np.exp(scale * (a - a.max()))
    return w / w.sum()


def _np_authors_order(rng, p, c, mod, k0, k):
    """The authors' subset in the order they train it: the weighted draw's order, then the survivors
    of argpartition over mod·p + c in the order it leaves them (applied even when k = k0)."""
    pool = rng.choice(len(p), k0, replace=False, p=p)
    if c is None:
        return pool
    return pool[np.argpartition(mod * p[pool] + c[pool], -k)[-k:]]


def _agree(ours, oracle):
    """Two samples of a statistic come from one distribution: means within 5 standard errors, and
    the 10th, 50th and 90th percentiles within a tolerance of the spread."""
    ours, oracle = np.asarray(ours), np.asarray(oracle)
    se = math.sqrt(ours.var() / len(ours) + oracle.var() / len(oracle))
    assert abs(ours.mean() - oracle.mean()) < 5 * se + 1e-9, (ours.mean(), oracle.mean(), se)
    spread = oracle.std() + 1e-9
    for q in (10, 50, 90):
        a, b = np.percentile(ours, q), np.percentile(oracle, q)
        assert abs(a - b) < 0.25 * spread + 0.01, (q, a, b)


N, K0, K, MOD = 120, 80, 48, 0.5


def _problem(spread):
    rng = np.random.default_rng(5)
    a = rng.uniform(0.0, spread, N)        # scale 0.1: spread 2 → max/min p 1.2; spread 60 → 400
    c = rng.uniform(0.3, 1.7, N)
    return a, c / c.sum()


@pytest.mark.parametrize("spread", [2.0, 60.0], ids=["flat-p", "peaked-p"])
@pytest.mark.parametrize("rule", ["draw", "pool-prune", "no-subsample"])
def test_the_selections_own_order_is_distributed_as_the_authors_numpy_draw(rule, spread):
    """Over many draws, Spearman(position, p) of our selection's order has the distribution of the
    authors' numpy order: the plain weighted draw, the pool pruned by argpartition (its order, not a
    sort by mod·p + c), and docl-nr's draw from q ∝ mod·p + c."""
    a, c = _problem(spread)
    p = _np_p(a, 0.1)
    rng = np.random.default_rng(17)
    if rule == "draw":
        oracle_draw = lambda: rng.choice(N, K, replace=False, p=p)                       # noqa: E731
    elif rule == "pool-prune":
        oracle_draw = lambda: _np_authors_order(rng, p, c, MOD, K0, K)                   # noqa: E731
    else:
        q = MOD * p + c
        oracle_draw = lambda: rng.choice(N, K, replace=False, p=q / q.sum())             # noqa: E731
    oracle = [_spearman(np.arange(K), p[oracle_draw()]) for _ in range(1500)]

    name = "docl-nr" if rule == "no-subsample" else "docl"
    cur = make_curriculum(name, diversity="none" if rule == "draw" else "centrality", protocol="paper")
    gen = torch.Generator().manual_seed(3)
    ours = []
    for _ in range(1000):
        st = RoundState(t=1, k=K, lam=1.0, temperature=10.0, pool_factor=1.0, loss=torch.zeros(N),
                        score=torch.tensor(a), features=None, generator=gen,
                        pool=K if rule == "draw" else K0, centrality=torch.tensor(c),
                        mod=MOD, random_subsample=rule != "no-subsample")
        ids = cur.select(st).indices.numpy()
        assert len(ids) == K and len(set(ids.tolist())) == K
        ours.append(_spearman(np.arange(K), p[ids]))
    _agree(ours, oracle)
    if spread > 10 and rule == "draw":  # the test has power: high p comes first, clearly
        assert np.mean(oracle) < -0.3


def test_the_authors_prune_keeps_argpartitions_order_even_when_it_keeps_the_whole_pool():
    """select_ratio = 1 (k = k0): the authors still call argpartition, which rearranges the pool."""
    a, c = _problem(60.0)
    p = _np_p(a, 0.1)
    cur = make_curriculum("docl", diversity="centrality", protocol="paper")
    gen = torch.Generator().manual_seed(8)
    twin = torch.Generator().manual_seed(8)
    st = RoundState(t=1, k=K0, lam=1.0, temperature=10.0, pool_factor=1.0, loss=torch.zeros(N),
                    score=torch.tensor(a), features=None, generator=gen, pool=K0,
                    centrality=torch.tensor(c), mod=MOD)
    ids = cur.select(st).indices.numpy()
    # the same pool, drawn with the same generator state, then numpy's rule by hand
    drawn = make_curriculum("docl", diversity="none", protocol="paper").select(
        RoundState(t=1, k=K0, lam=1.0, temperature=10.0, pool_factor=1.0, loss=torch.zeros(N),
                   score=torch.tensor(a), features=None, generator=twin, pool=K0)).indices.numpy()
    want = drawn[np.argpartition(MOD * p[drawn] + c[drawn], -K0)[-K0:]]
    assert ids.tolist() == want.tolist()
    assert sorted(ids.tolist()) == sorted(drawn.tolist())


# ----------------------------------------------------------------------------- the trainer's passes

def _recorder(trainer):
    """Record every selection (the state it saw and its ids) and every mini-batch's ids, in order,
    through the public select/on_batch surfaces."""
    events = []
    cur, tracker = trainer.curriculum, trainer.tracker
    real_select, real_on_batch = cur.select, tracker.on_batch
    real_order = getattr(cur, "order", None)

    def select(state):
        sel = real_select(state)
        events.append(("select", state, sel.indices.clone()))
        return sel

    def order(state):
        sel = real_order(state)
        events.append(("select", state, sel.indices.clone()))
        return sel

    def on_batch(batch, outputs, lr, **kw):
        events.append(("batch", batch.detach().cpu().clone()))
        return real_on_batch(batch, outputs, lr, **kw)

    cur.select, tracker.on_batch = select, on_batch
    if real_order is not None:
        cur.order = order
    return events


def _passes(events):
    """(state, selected ids, ids in the order trained) per selection: the mini-batches right after it."""
    out = []
    for i, ev in enumerate(events):
        if ev[0] != "select":
            continue
        k = len(ev[2])
        trained = []
        for nxt in events[i + 1:]:
            if nxt[0] != "batch" or sum(map(len, trained)) >= k:
                break
            trained.append(nxt[1].numpy())
        out.append((ev[1], ev[2].numpy(), np.concatenate(trained), trained))
    return out


SCHEDULE = dict(epochs=12, score_scale=40.0)   # a peaked p: the order visibly follows the score


def _run(tmp_path, curriculum="docl", order=None, name="r", diversity=None, **kw):
    cfg = RunConfig(dataset="digits", curriculum=curriculum, protocol="paper", seed=1, probe_size=0, device="cpu",
                    log_estimators=[], label_noise=0.2, order=order, diversity=diversity,
                    schedule=PaperSchedule(**{**SCHEDULE, **kw}))
    tr = Trainer(cfg, tmp_path / name)
    events = _recorder(tr)
    tr.run()
    return tr, _passes(events)


@pytest.fixture(scope="module")
def docl_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("order")
    runs = {o: _run(base, order=o, name=o) for o in ("draw", "reversed", "shuffle")}
    runs["draw, no prune"] = _run(base, order="draw", name="no-prune", diversity="none")
    return runs


def test_a_draw_pass_trains_the_selection_in_its_own_order_in_consecutive_mini_batches(docl_runs):
    tr, passes = docl_runs["draw"]
    assert tr.cfg.order == "draw" and RunConfig(protocol="paper").order == "draw"   # the default
    assert len(passes) == 11
    for state, ids, trained, batches in passes:
        assert trained.tolist() == ids.tolist()
        bs = tr.cfg.batch_size
        assert [len(b) for b in batches] == [min(bs, len(ids) - s) for s in range(0, len(ids), bs)]


def test_reversed_is_the_exact_reverse_and_shuffle_a_fresh_random_order(docl_runs):
    _, passes = docl_runs["reversed"]
    for _, ids, trained, _ in passes:
        assert trained.tolist() == ids[::-1].tolist()
    _, passes = docl_runs["shuffle"]
    for _, ids, trained, _ in passes:
        assert sorted(trained.tolist()) == sorted(ids.tolist()) and trained.tolist() != ids.tolist()
        where = {s: j for j, s in enumerate(ids.tolist())}
        assert abs(_spearman(np.arange(len(trained)), [where[s] for s in trained.tolist()])) < 0.2


@pytest.mark.parametrize("run", ["draw", "draw, no prune"])
def test_the_trained_order_follows_the_score_as_the_authors_numpy_draw_does(docl_runs, run):
    """Each epoch's pass, from the state its selection saw: Spearman(position, p) of the order we
    trained lies inside the oracle's 0.5–99.5 % band (numpy's draw, then argpartition when the
    recipe prunes, 400 times), and over the epochs the trained orders sit where the oracle's means
    say. Without the prune (--diversity none) high p comes first, far from any shuffle."""
    tr, passes = docl_runs[run]
    rng = np.random.default_rng(23)
    z, strong = [], 0
    for state, ids, trained, _ in passes:
        p = _np_p(state.score.double().numpy(), tr.cfg.schedule.score_scale)
        c = None if state.centrality is None else state.centrality.double().numpy()
        k0 = min(len(p), max(state.k, state.pool))
        oracle = np.array([_spearman(np.arange(state.k), p[_np_authors_order(rng, p, c, state.mod, k0, state.k)])
                           for _ in range(400)])
        rho = _spearman(np.arange(len(trained)), p[trained])
        lo, hi = np.percentile(oracle, [0.5, 99.5])
        assert lo - 0.02 <= rho <= hi + 0.02, (state.t, rho, lo, hi)
        z.append((rho - oracle.mean()) / (oracle.std() + 1e-9))
        strong += abs(oracle.mean()) > (0.12 if run == "draw" else 0.3)
    assert abs(np.mean(z)) < 3.0 / math.sqrt(len(z)) + 0.5
    # the check has power: the oracle's order carries the score (with the prune, numpy's argpartition
    # rearranges the survivors and leaves less of it, in either direction)
    assert strong >= (1 if run == "draw" else 9)


def test_the_store_records_each_samples_position_in_the_pass(docl_runs):
    for order in ("draw", "reversed"):
        tr, passes = docl_runs[order]
        reader = RunReader(tr.dir)
        for e, (_, _, trained, _) in zip(range(1, 12), passes):
            df = reader.samples(e)
            pos = df["pass_position"].to_numpy()
            assert (pos[trained] == np.arange(len(trained))).all()
            assert (pos >= 0).sum() == len(trained) and df.loc[pos >= 0, "selected"].all()


def test_sgd_drawn_in_docls_order_is_the_order_only_arm(tmp_path):
    """sgd --order draw: all N every epoch, ordered by one weighted draw from the score (numpy's
    np.random.choice(N, N, replace=False, p=p) order, by hand); sgd's default stays a shuffle."""
    assert RunConfig(protocol="paper", curriculum="sgd").order == "shuffle"
    tr, passes = _run(tmp_path, curriculum="sgd", order="draw")
    assert len(passes) == 11
    rng = np.random.default_rng(5)
    for state, ids, trained, _ in passes:
        assert trained.tolist() == ids.tolist() and sorted(ids.tolist()) == list(range(tr.N))
        p = _np_p(state.score.double().numpy(), tr.cfg.schedule.score_scale)
        oracle = np.array([_spearman(np.arange(tr.N), p[rng.choice(tr.N, tr.N, replace=False, p=p)])
                           for _ in range(200)])
        rho = _spearman(np.arange(tr.N), p[trained])
        lo, hi = np.percentile(oracle, [0.5, 99.5])
        assert lo - 0.02 <= rho <= hi + 0.02, (state.t, rho, lo, hi)
    assert run_curriculum(json.loads((tr.dir / "run.json").read_text())["config"]) == "sgd@draw"
    assert curriculum_display("sgd@draw") == "SGD in DoCL's draw order"


# ----------------------------------------------------------------------------- the switch

def test_order_is_recorded_and_a_resume_may_not_change_it(tmp_path):
    cfg = RunConfig(dataset="blobs", curriculum="random", protocol="paper", probe_size=0, device="cpu",
                    log_estimators=[], order="reversed", schedule=PaperSchedule(epochs=4))
    train_run(cfg, tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["config"]["order"] == "reversed"
    assert run_curriculum(meta["config"]) == "random@reversed"
    assert curriculum_display("random@reversed") == "Random, reversed order"
    with pytest.raises(RunStoreError, match="order 'reversed' \\(now 'draw'\\)"):
        Trainer(dataclasses.replace(cfg, order="draw"), tmp_path / "r", resume=True)
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "complete"


def test_runs_made_before_the_switch_read_as_shuffled():
    old = RunConfig(protocol="paper", curriculum="docl").to_dict()
    del old["order"]
    assert RunConfig.from_dict(old).order == "shuffle"
    assert run_curriculum(old) == "docl@shuffle" and curriculum_display("docl@shuffle") == "DoCL, shuffled"
    sgd = RunConfig(protocol="paper", curriculum="sgd").to_dict()
    del sgd["order"]
    assert run_curriculum(sgd) == "sgd"  # its order never changed
    from docl_core.config import config_differences
    assert config_differences(old, RunConfig(protocol="paper", curriculum="docl", order="shuffle").to_dict()) == []
    assert config_differences(old, RunConfig(protocol="paper", curriculum="docl").to_dict()) == \
        [("order", "shuffle", "draw")]


@pytest.mark.parametrize("kw, message", [
    ({"protocol": "steps", "order": "draw"}, "--order applies to --protocol paper only"),
    ({"protocol": "paper", "order": "sorted"}, "unknown --order 'sorted': choose one of draw, shuffle, reversed"),
    ({"protocol": "paper", "curriculum": "sgd", "order": "draw", "estimator": "none"}, "gives no score"),
])
def test_bad_orders_are_refused_with_a_message(kw, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**kw).validate()
