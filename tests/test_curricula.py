"""The five curricula behind select(state): what each picks, flags, errors, colours, properties."""
import re
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from docl_core import config
from docl_core.curricula import (CURRICULA, CURRICULUM_COLORS, CURRICULUM_LABELS, DIVERSITIES, RoundState,
                                 Selection, make_curriculum)


def state(n=30, k=5, seed=0, lam=1.0, temperature=1.0, pool_factor=2.0, D=4, features=True, **kw):
    g = torch.Generator().manual_seed(1000 + seed)
    fields = dict(t=0, k=k, lam=lam, temperature=temperature, pool_factor=pool_factor,
                  loss=torch.rand(n, generator=g), score=torch.randn(n, generator=g),
                  features=(features if isinstance(features, torch.Tensor)
                            else torch.randn(n, D, generator=g) if features else None),
                  generator=torch.Generator().manual_seed(seed))
    fields.update(kw)
    return RoundState(**fields)


def assert_valid(s, k, n):
    assert isinstance(s, Selection)
    assert s.indices.dtype == torch.int64 and s.indices.shape == (k,)
    assert s.indices.unique().numel() == k and 0 <= int(s.indices.min()) and int(s.indices.max()) < n
    assert s.weights.shape == (k,) and bool((s.weights == 1.0).all())


def test_names_match_config_and_display_tables():
    for c in CURRICULA:  # every listed name builds its own class and is a valid run config
        assert make_curriculum(c).name == c
        config.RunConfig(curriculum=c).validate()
    assert set(CURRICULUM_COLORS) == set(CURRICULUM_LABELS) == set(CURRICULA)
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in CURRICULUM_COLORS.values())
    assert len(set(CURRICULUM_COLORS.values())) == 6
    assert [CURRICULUM_LABELS[c] for c in CURRICULA] == ["SGD", "Random", "SPL", "MCL", "DoCL-NR", "DoCL"]


SUBSET = tuple(c for c in CURRICULA if c != "sgd")  # the curricula that follow k_t


def test_sgd_takes_every_sample_in_a_seeded_random_order():
    c = make_curriculum("sgd")
    a, b = c.select(state(seed=3, k=4)), c.select(state(seed=3, k=4))
    assert_valid(a, 30, 30)
    assert torch.equal(a.indices, b.indices)
    assert not torch.equal(a.indices, c.select(state(seed=4)).indices)
    assert not torch.equal(a.indices, torch.arange(30))


def test_flags():
    flags = {n: (make_curriculum(n).needs_scores, make_curriculum(n).needs_features) for n in CURRICULA}
    assert flags == {"sgd": (False, False), "random": (False, False), "spl": (False, False), "mcl": (False, True),
                     "docl-nr": (True, True), "docl": (True, True)}
    from docl_core.names import SELECTS_BY_SCORE  # the dashboard's torch-free copy of needs_scores
    assert SELECTS_BY_SCORE == {n for n, (scores, _) in flags.items() if scores}
    for n in CURRICULA:
        c = make_curriculum(n, diversity="none")
        assert not c.needs_features and c.name == n
    assert make_curriculum("docl", diversity="centrality").needs_features


def test_random_is_uniform_and_seeded():
    c = make_curriculum("random")
    a, b = c.select(state(seed=3)), c.select(state(seed=3))
    assert torch.equal(a.indices, b.indices)
    assert not torch.equal(a.indices, c.select(state(seed=4)).indices)
    counts = torch.zeros(30)
    for seed in range(300):
        counts[c.select(state(seed=seed)).indices] += 1
    assert counts.min() > 20 and counts.max() < 80                      # expect 50 each


def test_k_may_be_a_numpy_or_torch_integer():
    import numpy as np
    for k in (np.int64(4), torch.tensor(4)):
        for name in SUBSET:
            assert_valid(make_curriculum(name).select(state(k=k)), 4, 30)


def test_spl_picks_the_k_smallest_losses():
    s = state(n=40, k=7)
    got = make_curriculum("spl").select(s).indices
    assert sorted(got.tolist()) == sorted(s.loss.argsort()[:7].tolist())


@pytest.mark.parametrize("name, key", [("docl-nr", "score"), ("mcl", "loss")])
def test_without_diversity_docl_nr_and_mcl_are_top_k(name, key):
    s = state(n=40, k=9)
    got = make_curriculum(name, diversity="none").select(s).indices
    assert sorted(got.tolist()) == sorted(getattr(s, key).topk(9).indices.tolist())


def test_docl_nr_is_deterministic_given_scores():
    c, s = make_curriculum("docl-nr"), state()
    a = c.select(s)
    s.generator = torch.Generator().manual_seed(12345)                   # same scores, other generator
    b = c.select(s)
    assert torch.equal(a.indices, b.indices)


def test_docl_pool_then_objective():
    n, k = 40, 5
    s = state(n=n, k=k, pool_factor=1.0, temperature=1e-4, score=torch.linspace(0, 1, n))
    # a pool of exactly k drawn at τ → 0 is the top-k of the scores
    assert sorted(make_curriculum("docl").select(s).indices.tolist()) == list(range(n - k, n))
    # a pool of all N: the same set as DoCL-NR with the same maximiser
    s = state(n=n, k=k, pool_factor=n / k)
    docl = make_curriculum("docl", method="greedy").select(s).indices
    nr = make_curriculum("docl-nr", method="greedy").select(state(n=n, k=k)).indices
    assert sorted(docl.tolist()) == sorted(nr.tolist())


def test_docl_picks_from_high_scores():
    n, k = 200, 10
    s = state(n=n, k=k, score=torch.linspace(-3, 3, n), temperature=0.5)
    picked = torch.cat([make_curriculum("docl").select(state(n=n, k=k, seed=i, score=s.score,
                                                               temperature=0.5)).indices for i in range(20)])
    assert picked.float().mean() > 0.7 * n                               # uniform would be 0.5 n


@pytest.mark.parametrize("name", ["mcl", "docl-nr", "docl"])
def test_facility_diversity_spreads_the_selection(name):
    """Two clusters, all high weights in A: strong λ sends one pick to B; diversity none does not."""
    g = torch.Generator().manual_seed(0)
    feats = torch.cat([torch.tensor([1.0, 0.0]) + 0.01 * torch.randn(10, 2, generator=g),
                       torch.tensor([-1.0, 0.0]) + 0.01 * torch.randn(10, 2, generator=g)])
    w = torch.cat([torch.ones(10), torch.zeros(10)]) + 0.01 * torch.rand(20, generator=g)
    s = state(n=20, k=2, lam=10.0, features=feats, pool_factor=10.0, loss=w, score=w)
    for diversity, from_b in (("facility", 1), ("none", 0)):
        got = make_curriculum(name, diversity=diversity, epsilon=0.001).select(s).indices
        assert sum(i >= 10 for i in got.tolist()) == from_b, diversity


@pytest.mark.parametrize("name", ["mcl", "docl-nr", "docl"])
def test_missing_features_fall_back_to_no_diversity(name):
    s = state(n=25, k=4, features=False)
    with pytest.warns(RuntimeWarning, match="without diversity"):
        got = make_curriculum(name, diversity="facility").select(s)
    assert_valid(got, 4, 25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        none = make_curriculum(name, diversity="none").select(s)
    if name != "docl":                                                   # docl's pool is random
        assert torch.equal(got.indices, none.indices)


def test_errors_say_what_to_fix():
    with pytest.raises(ValueError, match="sgd, random, spl, mcl, docl-nr, docl"):
        make_curriculum("curriculum-of-doom")
    with pytest.raises(ValueError, match="facility, centrality, none"):
        make_curriculum("docl", diversity="variety")
    with pytest.raises(ValueError, match="unknown curriculum options"):
        make_curriculum("docl", lam=3)
    for name in SUBSET:
        c = make_curriculum(name)
        with pytest.raises(ValueError, match="k=31 exceeds the n=30 samples: lower k"):
            c.select(state(k=31))
        with pytest.raises(ValueError, match="NaN or inf"):
            c.select(state(loss=torch.tensor([0.1, float("nan"), 0.3]), k=1, score=torch.zeros(3),
                           features=False))
    with pytest.raises(ValueError, match="k must be an integer"):
        make_curriculum("spl").select(state(k=2.5))
    with pytest.raises(ValueError, match="k=0 selects nothing"):
        make_curriculum("random").select(state(k=0))
    with pytest.raises(ValueError, match="needs DoCL scores"):
        make_curriculum("docl").select(state(score=None))
    with pytest.raises(ValueError, match="NaN or inf"):
        make_curriculum("docl-nr").select(state(score=torch.full((30,), float("inf"))))
    with pytest.raises(ValueError, match="rows"):
        make_curriculum("mcl").select(state(features=torch.randn(29, 2)))
    with pytest.raises(ValueError, match="pool_factor"):
        make_curriculum("docl").select(state(pool_factor=0.5))


# ----------------------------------------------------------------------------- properties (issue 7)


@st.composite
def round_states(draw):
    n = draw(st.integers(1, 20))
    k = draw(st.integers(1, n))
    finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
    vec = lambda: torch.tensor(draw(st.lists(finite, min_size=n, max_size=n)), dtype=torch.float32)
    feats = torch.tensor(draw(st.lists(st.floats(-1e3, 1e3, width=32), min_size=2 * n, max_size=2 * n)),
                         dtype=torch.float32).reshape(n, 2)
    return dict(t=0, k=k, lam=draw(st.sampled_from([0.0, 0.5, 2.0])),
                temperature=draw(st.sampled_from([0.1, 1.0, 10.0])),
                pool_factor=draw(st.sampled_from([1.0, 1.5, 3.0])),
                loss=vec(), score=vec(), features=feats), draw(st.integers(0, 2**32 - 1))


@settings(max_examples=40, deadline=None)
@given(round_states())
def test_every_curriculum_returns_k_distinct_valid_indices_reproducibly(inst):
    fields, seed = inst
    n, k = fields["loss"].shape[0], fields["k"]
    for name in SUBSET:
        for diversity in DIVERSITIES:
            c = make_curriculum(name, diversity=diversity)
            a = c.select(RoundState(**fields, generator=torch.Generator().manual_seed(seed)))
            b = c.select(RoundState(**fields, generator=torch.Generator().manual_seed(seed)))
            assert_valid(a, k, n)
            assert torch.equal(a.indices, b.indices), (name, diversity)


# ----------------------------------------------------------------------------- the composition (issue 30)


def test_a_curriculum_is_a_score_a_pruner_and_its_protocols_sampler():
    """The score is each curriculum's own; the sampler is the protocol's, named at construction."""
    s = state(n=12, k=3)
    scores = {n: make_curriculum(n).score(s) for n in CURRICULA}
    assert scores["sgd"] is None and scores["random"] is None                 # uniform: no preference
    assert torch.equal(scores["spl"], -s.loss.double()) and torch.equal(scores["mcl"], s.loss.double())
    assert torch.equal(scores["docl"], s.score.double()) and torch.equal(scores["docl-nr"], s.score.double())
    for protocol in ("steps", "paper"):
        for n in (*CURRICULA, "score"):
            c = make_curriculum(n, protocol=protocol)
            assert c.protocol == c.sampler.name == protocol and protocol in repr(c)
    assert type(make_curriculum("spl").pruner).__name__ == "LowestLoss"
    with pytest.raises(ValueError, match="unknown protocol 'episodes': choose one of steps, paper"):
        make_curriculum("docl", protocol="episodes")


def test_the_protocol_not_the_class_picks_the_draw():
    """The same curriculum and state: steps keeps the k smallest losses (no draw), paper draws the
    recipe's pool first and returns its distribution p."""
    s = state(n=40, k=5, pool=20, temperature=10.0)
    steps = make_curriculum("spl", protocol="steps").select(s)
    assert sorted(steps.indices.tolist()) == sorted(s.loss.argsort()[:5].tolist()) and steps.probability is None
    paper = make_curriculum("spl", protocol="paper").select(s)
    assert_valid(paper, 5, 40)
    assert paper.probability is not None and paper.probability.dtype == torch.float64
    assert torch.isclose(paper.probability.sum(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("protocol", ["steps", "paper"])
def test_facility_on_the_chunked_route_says_its_cost_once(monkeypatch, protocol):
    """Past selection's memory budget (n×n similarities, here forced by the route function) facility
    location warns once per run, naming the candidates and the fast alternatives; picks are the
    same as without the warning, and the in-budget route says nothing."""
    from docl_core import selection
    kw = dict(pool=20, centrality=None) if protocol == "paper" else {}
    quiet = make_curriculum("docl", protocol=protocol)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                  # in budget: no warning at all
        expected = quiet.select(state(n=60, k=8, **kw)).indices
    monkeypatch.setattr(selection, "facility_route", lambda n, dtype=None, memory_budget_bytes=None: "chunked")
    cur = make_curriculum("docl", protocol=protocol)
    with pytest.warns(RuntimeWarning, match=r"facility location over \d+ candidates .* --diversity none") as rec:
        got = cur.select(state(n=60, k=8, **kw)).indices
        cur.select(state(n=60, k=8, seed=1, **kw))
    assert len([w for w in rec if "facility location over" in str(w.message)]) == 1
    assert torch.equal(got, expected)
