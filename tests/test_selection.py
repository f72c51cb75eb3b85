"""selection.py against naive oracles: brute force, explicit n×n similarities, explicit Gram sums."""
import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from docl_core import selection as sel

# ----------------------------------------------------------------------------- naive oracles (tests only)


def naive_similarity(x):
    """(1 + cos) / 2 from the explicit n×n matrix. (n, D) → (n, n)"""
    xh = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return ((1 + xh @ xh.T) / 2).clamp(0, 1)


def naive_objective(w, x, S, lam):
    """J(S) = mean_{i∈S} w̃_i + λ · mean_i max_{j∈S} s_ij with w̃ min-max scaled over all n."""
    w = w.double()
    w = (w - w.min()) / (w.max() - w.min()) if w.max() > w.min() else torch.zeros_like(w)
    S = list(S)
    return float(w[S].mean()) + lam * float(naive_similarity(x)[:, S].amax(1).mean())


def brute_force(w, x, k, lam):
    n = x.shape[0]
    return max(naive_objective(w, x, S, lam) for S in itertools.combinations(range(n), k))


def problem(seed, n, D=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=dtype), torch.randn(n, D, generator=g, dtype=dtype)


def assert_valid(idx, k, n):
    assert idx.dtype == torch.int64 and idx.shape == (k,)
    assert idx.unique().numel() == k
    assert int(idx.min()) >= 0 and int(idx.max()) < n


# ----------------------------------------------------------------------------- facility location


@pytest.mark.parametrize("seed", range(12))
def test_greedy_within_one_minus_one_over_e_of_brute_force(seed):
    n, k = 6 + seed % 5, 1 + seed % 4
    lam = [0.5, 1.0, 4.0][seed % 3]
    w, x = problem(seed, n)
    opt = brute_force(w, x, k, lam)
    idx = sel.greedy(w, x, k, lam)
    assert_valid(idx, k, n)
    value = naive_objective(w, x, idx.tolist(), lam)
    assert value >= (1 - 1 / math.e) * opt - 1e-12
    assert value <= opt + 1e-12


@pytest.mark.parametrize("seed", range(6))
def test_greedy_on_facility_location_alone(seed):
    n, k = 9, 3
    _, x = problem(100 + seed, n)
    opt = brute_force(torch.zeros(n), x, k, 1.0)
    value = naive_objective(torch.zeros(n), x, sel.greedy(None, x, k, 1.0).tolist(), 1.0)
    assert (1 - 1 / math.e) * opt - 1e-12 <= value <= opt + 1e-12


@pytest.mark.parametrize("seed", range(4))
def test_lazy_greedy_equals_greedy(seed):
    w, x = problem(200 + seed, 40, D=4)
    for batch in (1, 7, 64):
        lazy = sel.lazy_greedy(w, x, 6, 2.0, batch=batch)
        assert lazy.tolist() == sel.greedy(w, x, 6, 2.0).tolist()


def test_stochastic_greedy_averages_close_to_greedy():
    n, k, lam = 10, 3, 2.0
    w, x = problem(7, n)
    opt = brute_force(w, x, k, lam)
    greedy_value = naive_objective(w, x, sel.greedy(w, x, k, lam).tolist(), lam)
    values = []
    for seed in range(30):
        idx = sel.stochastic_greedy(w, x, k, lam, torch.Generator().manual_seed(seed), epsilon=0.1)
        assert_valid(idx, k, n)
        values.append(naive_objective(w, x, idx.tolist(), lam))
    mean = sum(values) / len(values)
    assert mean >= 0.95 * greedy_value
    assert mean >= (1 - 1 / math.e - 0.1) * opt


def test_stochastic_greedy_is_seeded():
    w, x = problem(3, 300, D=8)
    a = sel.stochastic_greedy(w, x, 20, 1.0, torch.Generator().manual_seed(5))
    b = sel.stochastic_greedy(w, x, 20, 1.0, torch.Generator().manual_seed(5))
    c = sel.stochastic_greedy(w, x, 20, 1.0, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_chunked_values_equal_naive_n_by_n(monkeypatch):
    w, x = problem(11, 57, D=5)
    S = torch.tensor([3, 17, 40, 41, 56])
    naive = float(naive_similarity(x)[:, S].amax(1).mean())
    assert math.isclose(sel.facility_location(x, S), naive, rel_tol=1e-12)
    xh = sel.normalize_features(x)
    cover = sel.coverage(xh, xh[S])                                       # cosine units
    naive_gains = (naive_similarity(x) - ((1 + cover) / 2)[None, :]).clamp(min=0).sum(1)
    # tiny blocks: many row and column blocks, ragged edges
    monkeypatch.setattr(sel, "CHUNK_ELEMENTS", 12)
    monkeypatch.setattr(sel, "COL_BLOCK", 5)
    assert math.isclose(sel.facility_location(x, S), naive, rel_tol=1e-12)
    assert torch.allclose(sel.coverage_gains(xh, xh, cover), naive_gains, rtol=1e-12, atol=1e-12)
    assert math.isclose(sel.objective(w, x, S, 1.5), naive_objective(w, x, S.tolist(), 1.5), rel_tol=1e-12)


def test_blocks_bound_memory_and_do_not_change_answers(monkeypatch):
    """No similarity block larger than CHUNK_ELEMENTS, so the n×n matrix is never formed."""
    w, x = problem(5, 600, D=16, dtype=torch.float32)
    ref = sel.stochastic_greedy(w, x, 30, 1.0, torch.Generator().manual_seed(0))
    monkeypatch.setattr(sel, "CHUNK_ELEMENTS", 4096)
    monkeypatch.setattr(sel, "COL_BLOCK", 256)
    largest = []
    real_addmm = torch.addmm

    def spy(*args, **kw):
        out = real_addmm(*args, **kw)
        largest.append(out.numel())
        return out

    monkeypatch.setattr(sel.torch, "addmm", spy)
    got = sel.stochastic_greedy(w, x, 30, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(got, ref)
    assert max(largest) <= 4096 < 600 * 600


def test_lambda_zero_is_top_k():
    w, x = problem(9, 50)
    top = sel.top_k(w, 7)
    for idx in (sel.greedy(w, x, 7, 0.0), sel.lazy_greedy(w, x, 7, 0.0), sel.modular_select(w, x, 7, 0.0),
                sel.stochastic_greedy(w, x, 7, 0.0, torch.Generator().manual_seed(1))):
        assert sorted(idx.tolist()) == sorted(top.tolist())


def test_diversity_picks_one_per_cluster():
    """Two tight clusters, weights favour cluster A: with a strong λ the second pick leaves A."""
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([1.0, 0.0]) + 0.01 * torch.randn(10, 2, generator=g)
    b = torch.tensor([-1.0, 0.0]) + 0.01 * torch.randn(10, 2, generator=g)
    x, w = torch.cat([a, b]), torch.cat([torch.full((10,), 1.0), torch.full((10,), 0.0)]) + 0.01 * torch.rand(20, generator=g)
    assert all(i < 10 for i in sel.top_k(w, 2).tolist())
    for idx in (sel.greedy(w, x, 2, 10.0), sel.lazy_greedy(w, x, 2, 10.0),
                sel.stochastic_greedy(w, x, 2, 10.0, torch.Generator().manual_seed(0), epsilon=0.001)):
        assert sorted(i < 10 for i in idx.tolist()) == [False, True]


# ----------------------------------------------------------------------------- centrality


def test_centrality_equals_explicit_gram_row_sums():
    _, x = problem(1, 33, D=6)
    xh = x / x.norm(dim=1, keepdim=True)
    assert torch.allclose(sel.centrality(x), (xh @ xh.T).sum(1), rtol=1e-12, atol=1e-10)


def test_modular_select_is_top_k_of_weights_plus_singleton_coverage():
    w, x = problem(2, 25, D=4)
    wt = (w - w.min()) / (w.max() - w.min())
    singleton = naive_similarity(x).mean(0)                               # F̄({j})
    expect = (wt + 0.7 * singleton).topk(5).indices
    assert sel.modular_select(w, x, 5, 0.7).tolist() == expect.tolist()


# ----------------------------------------------------------------------------- sampling


def test_weighted_sample_frequencies_follow_the_weights():
    logits = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    g = torch.Generator().manual_seed(0)
    trials, counts, first = 3000, torch.zeros(6), torch.zeros(6)
    for _ in range(trials):
        idx = sel.weighted_sample(logits, 2, g)
        assert_valid(idx, 2, 6)
        counts[idx] += 1
        first[sel.weighted_sample(logits, 1, g)] += 1
    freq = counts / trials
    assert all(freq[i] < freq[i + 1] + 0.02 for i in range(5))           # ordered by weight, loosely
    assert freq[5] > 2 * freq[0]
    assert torch.allclose(first / trials, logits.softmax(0), atol=0.03)  # one draw: p ∝ exp(a)


def test_weighted_sample_temperature_and_extremes():
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([1e300, -1e300, 3.0, 2.0, 1e-300], dtype=torch.float64)
    idx = sel.weighted_sample(a, 2, g, temperature=1e-3)
    assert_valid(idx, 2, 5) and 0 in idx.tolist()
    # τ → 0: the top-k; τ → ∞: uniform-ish but still valid
    b = torch.arange(10.0)
    assert sorted(sel.weighted_sample(b, 3, g, temperature=1e-4).tolist()) == [7, 8, 9]
    assert_valid(sel.weighted_sample(b, 10, g, temperature=1e6), 10, 10)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("call, message", [
    (lambda w, x: sel.greedy(w, x, 6, 1.0), "k=6 exceeds the n=5 samples: lower k"),
    (lambda w, x: sel.stochastic_greedy(w, x, 0, 1.0, torch.Generator()), "k=0"),
    (lambda w, x: sel.top_k(w, 9), "k=9 exceeds the n=5 samples"),
    (lambda w, x: sel.weighted_sample(w, 6, torch.Generator()), "exceeds"),
    (lambda w, x: sel.greedy(torch.tensor([1.0, float("nan"), 0, 0, 0]), x, 2, 1.0), "NaN or inf"),
    (lambda w, x: sel.top_k(torch.tensor([1.0, float("inf"), 0, 0, 0]), 2), "NaN or inf"),
    (lambda w, x: sel.weighted_sample(torch.tensor([float("-inf"), 0.0]), 1, torch.Generator()), "NaN or inf"),
    (lambda w, x: sel.greedy(w, x[:4], 2, 1.0), "rows"),
    (lambda w, x: sel.modular_select(w, x[:, 0], 2, 1.0), "shape (n, D)"),
    (lambda w, x: sel.lazy_greedy(w, x.masked_fill(x > 0.5, float("nan")), 2, 1.0), "NaN or inf"),
    (lambda w, x: sel.greedy(w, x, 2, -1.0), "λ"),
    (lambda w, x: sel.weighted_sample(w, 2, torch.Generator(), temperature=0.0), "temperature"),
    (lambda w, x: sel.maximize_facility(w, x, 2, 1.0, method="fastest"), "unknown greedy method"),
    (lambda w, x: sel.maximize_facility(w, x, 2, 1.0, method="stochastic"), "Generator"),
])
def test_errors_say_what_to_fix(call, message):
    w, x = problem(0, 5, dtype=torch.float32)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(w, x)


# ----------------------------------------------------------------------------- properties (issue 7)

finite64 = st.floats(allow_nan=False, allow_infinity=False)
finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


@st.composite
def instances(draw):
    n = draw(st.integers(1, 24))
    k = draw(st.integers(1, n))
    w = torch.tensor(draw(st.lists(finite64, min_size=n, max_size=n)), dtype=torch.float64)
    D = draw(st.integers(1, 3))
    x = torch.tensor(draw(st.lists(finite32, min_size=n * D, max_size=n * D)),
                     dtype=torch.float32).reshape(n, D)
    lam = draw(st.sampled_from([0.0, 0.3, 1.0, 25.0]))
    return w, x, k, lam, draw(st.integers(0, 2**32 - 1))


METHOD_CALLS = {
    "stochastic": lambda w, x, k, lam, g: sel.stochastic_greedy(w, x, k, lam, g),
    "lazy": lambda w, x, k, lam, g: sel.lazy_greedy(w, x, k, lam),
    "greedy": lambda w, x, k, lam, g: sel.greedy(w, x, k, lam),
    "centrality": lambda w, x, k, lam, g: sel.modular_select(w, x, k, lam),
    "top_k": lambda w, x, k, lam, g: sel.top_k(w, k),
    "weighted_sample": lambda w, x, k, lam, g: sel.weighted_sample(w, k, g, temperature=0.5),
}


@settings(max_examples=40, deadline=None)
@given(instances())
def test_every_method_returns_k_distinct_valid_indices_reproducibly(inst):
    w, x, k, lam, seed = inst
    n = w.shape[0]
    for name, call in METHOD_CALLS.items():
        a = call(w, x, k, lam, torch.Generator().manual_seed(seed))
        b = call(w, x, k, lam, torch.Generator().manual_seed(seed))
        assert_valid(a, k, n)
        assert torch.equal(a, b), name
