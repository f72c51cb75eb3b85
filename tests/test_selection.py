"""selection.py against naive oracles: brute force, explicit n×n similarities, explicit Gram sums."""
import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from docl_core import selection as sel

# ----------------------------------------------------------------------------- naive oracles (tests only)


def naive_cosine(x):
    """cos from the explicit n×n Gram matrix of normalised rows. (n, D) → (n, n)"""
    xh = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return xh @ xh.T


def naive_similarity(x):
    """s = max(0, cos), clipped at 1, from the explicit n×n matrix. (n, D) → (n, n)"""
    return naive_cosine(x).clamp(0, 1)


def naive_gains(x, cover):
    """Σ_i max(0, s_ci − cover_i) for every row c, from the explicit matrix. → (n,)"""
    return (naive_similarity(x) - cover[None, :]).clamp(min=0).sum(1)


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


def unit(sim):
    """The similarity unit of a `_Similarity`: its integers times this are similarities."""
    return 2.0 ** -sim.bits


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
    for k in (1, 6, 40):
        assert sel.lazy_greedy(w, x, k, 2.0).tolist() == sel.greedy(w, x, k, 2.0).tolist()


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


def test_chunked_values_equal_naive_n_by_n():
    w, x = problem(11, 57, D=5)
    S = torch.tensor([3, 17, 40, 41, 56])
    naive = float(naive_similarity(x)[:, S].amax(1).mean())
    assert math.isclose(sel.facility_location(x, S), naive, rel_tol=1e-12)
    xh = sel.normalize_features(x)
    cover = sel.coverage(xh, xh[S])                                       # similarity units
    assert torch.allclose(cover, naive_similarity(x)[:, S].amax(1), rtol=0, atol=1e-15)
    expect = naive_gains(x, cover)
    with sel.block_sizes(chunk_elements=12, col_block=5):                # tiny blocks: many, ragged edges
        assert math.isclose(sel.facility_location(x, S), naive, rel_tol=1e-12)
        for budget in (0, 1 << 30):                                      # chunked, precomputed
            sim = sel.Similarity(xh, budget)
            got = torch.from_numpy(sim.gains_all(sel.quantize(cover, xh.dtype).numpy().astype(sim.dtype))).double()
            assert torch.allclose(got * unit(sim), expect, rtol=0, atol=57 * unit(sim))   # n half-units of rounding
        assert math.isclose(sel.objective(w, x, S, 1.5), naive_objective(w, x, S.tolist(), 1.5), rel_tol=1e-12)


def test_blocks_bound_memory_and_do_not_change_answers():
    """Chunked route: no similarity block larger than CHUNK_ELEMENTS or the smallest row cache
    (2·MIN_PRODUCT_ROWS rows of n), so the n×n matrix is never formed."""
    w, x = problem(5, 600, D=16, dtype=torch.float32)
    ref = sel.stochastic_greedy(w, x, 30, 1.0, torch.Generator().manual_seed(0), memory_budget_bytes=0)
    with sel.block_sizes(chunk_elements=4096, col_block=256) as blocks:
        got = sel.stochastic_greedy(w, x, 30, 1.0, torch.Generator().manual_seed(0), memory_budget_bytes=0)
    assert torch.equal(got, ref)
    assert blocks.matrices == 0                                           # the chunked route never formed q
    assert 0 < blocks.largest <= max(4096, 2 * sel.MIN_PRODUCT_ROWS * 600) < 600 * 600
    with sel.block_sizes() as blocks:                                     # the log sees the other route too
        sel.stochastic_greedy(w, x, 30, 1.0, torch.Generator().manual_seed(0))
    assert blocks.matrices == 1


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


# ----------------------------------------------------------------------------- routes (issue 14)

ROUTES = {"chunked": 0, "precomputed": 1 << 30}                          # memory_budget_bytes forcing each


def run_method(method, w, x, k, lam, budget, seed=0, **kw):
    return sel.maximize_facility(w, x, k, lam, method, torch.Generator().manual_seed(seed),
                                 epsilon=kw.get("epsilon", 0.01), memory_budget_bytes=budget)


def test_route_follows_the_memory_budget():
    assert sel.facility_route(100, torch.float32, 100 * 100 * 4) == "precomputed"
    assert sel.facility_route(100, torch.float32, 100 * 100 * 4 - 1) == "chunked"
    assert sel.facility_route(100, torch.float64, 100 * 100 * 4) == "chunked"
    assert sel.facility_route(16_384, torch.float32) == "precomputed"     # default 1 GiB
    assert sel.facility_route(16_385, torch.float32) == "chunked"


@pytest.mark.parametrize("seed", range(6))
def test_both_routes_return_identical_answers_for_every_method(seed):
    """Fresh random inputs, float64 (so no near-tie hides in the last bit): same indices, same order."""
    g = torch.Generator().manual_seed(1000 + seed)
    n, D = [60, 150, 301][seed % 3], [3, 8, 32][seed % 3]
    x = torch.randn(n, D, generator=g, dtype=torch.float64)
    if seed % 2:
        x = x.relu()                                                      # post-ReLU, as the models give
    w = torch.randn(n, generator=g, dtype=torch.float64) if seed % 3 else None
    k, lam = [5, 17, 40][seed % 3], [0.5, 1.0, 4.0][seed % 3]
    for method in sel.METHODS:
        a = run_method(method, w, x, k, lam, ROUTES["chunked"], seed=seed)
        b = run_method(method, w, x, k, lam, ROUTES["precomputed"], seed=seed)
        assert_valid(a, k, n)
        assert a.tolist() == b.tolist(), method
    # and lazy is plain greedy on either route
    assert run_method("lazy", w, x, k, lam, 0).tolist() == run_method("greedy", w, x, k, lam, 0).tolist()


def test_routes_agree_with_tiny_blocks_and_ragged_edges():
    w, x = problem(21, 45, D=6)
    with sel.block_sizes(chunk_elements=37, col_block=7):
        for method in sel.METHODS:
            a = run_method(method, w, x, 9, 2.0, ROUTES["chunked"], seed=3, epsilon=0.2)
            b = run_method(method, w, x, 9, 2.0, ROUTES["precomputed"], seed=3, epsilon=0.2)
            assert a.tolist() == b.tolist(), method


@pytest.mark.parametrize("route", ROUTES)
def test_gains_on_each_route_equal_the_explicit_matrix(route):
    with sel.block_sizes(chunk_elements=50, col_block=9):
        _, x = problem(31, 40, D=5)
        xh = sel.normalize_features(x)
        sim = sel.Similarity(xh, ROUTES[route])
        assert sim.route == route
        cover = sel.coverage(xh, xh[torch.tensor([2, 11, 30])])
        expect = naive_gains(x, cover)
        cover = sel.quantize(cover, xh.dtype).numpy().astype(sim.dtype)      # units 2^-bits, the route's dtype
        all_gains = sim.gains_all(cover)
        assert all_gains.dtype == np.int64
        for j in (39, 0, 5, 11, 17):
            assert math.isclose(sim.gain(j, cover) * unit(sim), float(expect[j]), rel_tol=0, abs_tol=40 * unit(sim))
            assert sim.gain(j, cover) == all_gains[j]                         # exact integers alone or in a block
        assert torch.allclose(torch.from_numpy(all_gains).double() * unit(sim), expect, rtol=0, atol=40 * unit(sim))
        before = torch.from_numpy(cover.copy())
        sim.add_to_cover(cover, 7)
        assert torch.equal(torch.from_numpy(cover), torch.maximum(before, torch.from_numpy(sim.row(7).copy())))
        assert torch.allclose(torch.from_numpy(cover).double() * unit(sim), torch.maximum(before.double() * unit(sim), naive_similarity(x)[:, 7]),
                              rtol=0, atol=unit(sim))
        if route == "precomputed":
            q = torch.from_numpy(sim.matrix)
            assert torch.equal(q, q.T)                                        # symmetric by construction
            assert torch.allclose(q.double() * unit(sim), naive_similarity(x), rtol=0, atol=unit(sim))


def test_lazy_equals_greedy_under_exact_ties_on_both_routes():
    """Duplicated rows and equal weights make many gains tie exactly: all maximisers break ties
    the same way (lowest index), whichever route and lazy batch."""
    g = torch.Generator().manual_seed(4)
    base = torch.randn(12, 4, generator=g, dtype=torch.float64).relu()
    x = base.repeat(5, 1)                                                 # (60, 4): each row 5 times
    w = torch.ones(60, dtype=torch.float64)
    ref = sel.greedy(w, x, 10, 1.0, memory_budget_bytes=0)
    for budget in ROUTES.values():
        assert sel.greedy(w, x, 10, 1.0, memory_budget_bytes=budget).tolist() == ref.tolist()
        assert sel.lazy_greedy(w, x, 10, 1.0, memory_budget_bytes=budget).tolist() == ref.tolist()
    assert all(int(i) < 12 for i in ref)                                  # first copies win the ties


@pytest.mark.parametrize("seed", range(8))
def test_compiled_exact_greedy_equals_plain_greedy_to_the_last_pick(seed):
    """The precomputed route's incremental gains (greedy_kernels.exact_greedy) against plain greedy,
    which recomputes every gain from scratch each step, on fresh random inputs: k = n (every late
    step with its few covered rows), ragged 64-value blocks, float32 and float64, with and
    without duplicated rows (exact ties)."""
    g = torch.Generator().manual_seed(3000 + seed)
    dtype = (torch.float32, torch.float64)[seed % 2]
    n, D = [70, 129, 200, 257][seed % 4], [4, 16][seed % 2]
    x = torch.randn(n, D, generator=g, dtype=dtype).relu() + (0.02 if seed % 3 else 0.0)
    if seed >= 4:
        x[n // 2:] = x[:n - n // 2].clone()                               # duplicated rows: exact ties
    w = torch.randn(n, generator=g, dtype=torch.float64) if seed % 4 != 1 else None
    lam = [0.3, 2.0, 25.0][seed % 3]
    for k in (1, n // 3, n):
        fast = sel.lazy_greedy(w, x, k, lam, memory_budget_bytes=ROUTES["precomputed"])
        assert fast.tolist() == sel.greedy(w, x, k, lam, memory_budget_bytes=ROUTES["precomputed"]).tolist()
    assert sorted(fast.tolist()) == list(range(n))


def test_integer_similarity_is_symmetric_and_equals_the_chunked_rows():
    """similarity_units builds the lower triangle in slabs and mirrors it; every row equals the row
    the chunked route computes on its own, bit for bit (small slabs: many of them, ragged)."""
    with sel.block_sizes(chunk_elements=300):                            # slabs of 64 rows at n = 150
        for dtype in (torch.float32, torch.float64):
            x = sel.normalize_features(torch.randn(150, 9, generator=torch.Generator().manual_seed(8), dtype=dtype).relu() + 0.01)
            q = sel.similarity_units(x)
            assert q.dtype == (np.int32 if dtype == torch.float32 else np.int64)
            assert (q == q.T).all()
            chunked = sel.Similarity(x, 0)
            rows = chunked.rows(torch.arange(150))
            assert (rows == q).all() and (rows == np.round(rows)).all()      # the same integers
            one = 1 << sel.UNIT_BITS[dtype]
            assert (np.abs(np.diag(q) - one) <= 1 + 8 * one * torch.finfo(dtype).eps).all()   # s_ii = 1 up to rounding
            assert torch.allclose(torch.from_numpy(q).double() * 2.0 ** -sel.UNIT_BITS[dtype],
                                  naive_similarity(x.double()), rtol=0,
                                  atol=2.0 ** -sel.UNIT_BITS[dtype] + 8 * torch.finfo(dtype).eps)   # unit + rounding


@pytest.mark.parametrize("D, n", [(64, 258), (128, 257), (128, 70), (256, 513)])
def test_routes_agree_at_model_feature_sizes_with_exact_ties(D, n):
    """At the feature sizes the models give (D = 64, 128, 256) BLAS computes few-row products with
    another kernel whose last bit can differ; every product has ≥ MIN_PRODUCT_ROWS rows, so a row
    is the same integers however it was computed: single rows, a last slab of 1–2 rows (n = 257,
    258, 513), and exact duplicates tie exactly (the first copy wins) on both routes."""
    g = torch.Generator().manual_seed(D + n)
    h = n - n // 2
    base = (torch.randn(h, D, generator=g) + 0.3).relu()
    x = torch.cat([base, base[:n // 2]])                                  # float32 (n, D): row h + i duplicates row i
    xh = sel.normalize_features(x)
    q = sel.similarity_units(xh)
    chunked = sel.Similarity(xh, 0)
    for j in (0, 5, h + 5, n - 1, n - 2):
        assert (chunked.rows(torch.tensor([j])) == q[j]).all(), j        # a single-row product
    assert (q[h:h + 3] == q[:3]).all()                                    # duplicates: identical rows
    for method in sel.METHODS:
        a = run_method(method, None, x, 25, 1.0, ROUTES["chunked"], seed=1)
        b = run_method(method, None, x, 25, 1.0, ROUTES["precomputed"], seed=1)
        assert a.tolist() == b.tolist(), method
    fast = sel.lazy_greedy(None, x, 25, 1.0)
    assert fast.tolist() == sel.greedy(None, x, 25, 1.0).tolist()
    assert all(int(i) < h for i in fast)                                  # a copy never beats its original


def test_float32_similarity_is_exact_whatever_computes_the_products():
    """For float32 features (the models' dtype) the integer similarity is a function of the features
    alone: the same integers with 1 or 2 BLAS threads, from the full product, from slabs and from
    single chunked rows, because every dot of `_operand` rows is an integer below 2^53 that float64
    sums exactly in any order; it stays within a few units of round(cos · 2^24)."""
    x = sel.normalize_features((torch.randn(300, 128, generator=torch.Generator().manual_seed(4)) + 0.3).relu())
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = sel.similarity_units(x)
        torch.set_num_threads(2)
        two = sel.similarity_units(x)
    finally:
        torch.set_num_threads(threads)
    op = sel._operand(x)
    assert op.dtype == torch.float64 and torch.equal(op, op.round()) and float(op.abs().max()) <= 2 ** 26
    assert float((op * op).sum(1).max()) < 2 ** 53                       # every partial sum is exact
    full = sel._units_(op @ op.T, torch.float32).numpy()
    rows = sel.Similarity(x, 0).rows(torch.tensor([0, 7, 299]))
    assert (one == two).all() and (one == full).all() and (rows == one[[0, 7, 299]]).all()
    cos = sel.quantize(x.double() @ x.double().T, torch.float64).double() * 2.0 ** -40 * 2 ** 24
    assert float((torch.from_numpy(one).double() - cos).abs().max()) <= 128 ** 0.5   # √D units of 2^-24


def test_quantize_rounds_to_units_and_clamps():
    s = torch.tensor([-1.0, -0.3, 0.0, 0.4, 1.0, 1.0 + 1e-6])
    assert sel.quantize(s, torch.float32).tolist() == [0, 0, 0, round(0.4 * (1 << 24)), 1 << 24, 1 << 24]
    assert sel.quantize(s.double(), torch.float64).tolist() == [0, 0, 0, round(float(s[3]) * (1 << 40)), 1 << 40, 1 << 40]
    assert sel.quantize(s, torch.float32).dtype == torch.int32
    assert sel.quantize(s.double(), torch.float64).dtype == torch.int64


def test_a_released_matrix_is_reused_and_never_shared():
    """The precomputed matrix's memory goes to the next call (no page faults every round), but two
    live similarities never share it."""
    x = sel.normalize_features(torch.rand(40, 3, generator=torch.Generator().manual_seed(1)))
    y = sel.normalize_features(torch.rand(30, 3, generator=torch.Generator().manual_seed(2)))
    a = sel.Similarity(x, ROUTES["precomputed"])
    b = sel.Similarity(y, ROUTES["precomputed"])
    assert not np.shares_memory(a.matrix, b.matrix)
    qa, qb = a.matrix.copy(), b.matrix.copy()
    a_memory, b_bytes = a.matrix.ctypes.data, b.buffer_bytes
    a.release()
    c = sel.Similarity(y, ROUTES["precomputed"])                         # takes a's memory
    assert c.matrix.ctypes.data == a_memory
    assert (c.matrix == qb).all() and (b.matrix == qb).all()
    assert (sel.similarity_units(x) == qa).all()
    c.release()
    b.release()
    assert sel.spare_buffer_bytes() == b_bytes                           # one buffer kept: the last given back


# ----------------------------------------------------------------------------- similarity and λ (issue 13.9)


def test_similarity_of_post_relu_features_spans_zero_to_one():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 16, generator=g).relu()                          # (n, D) post-ReLU
    x[0] = 0.0
    x[0, :8] = 1.0
    x[1] = 0.0
    x[1, 8:] = 1.0                                                        # disjoint supports: cos = 0
    s = sel.similarity_matrix(sel.normalize_features(x))
    assert float(s.min()) == 0.0 and float(s[0, 1]) == 0.0
    assert math.isclose(float(s.max()), 1.0, rel_tol=1e-6)
    assert torch.allclose(s, naive_cosine(x).clamp(0, 1), atol=1e-6)      # non-negative features: s = cos
    lo, hi = s.quantile(0.01), s.quantile(0.99)
    assert float(hi - lo) > 0.6                                            # (1 + cos)/2 would squeeze it into [0.5, 1]
    # negative cosines cover nothing
    assert float(sel.similarity(torch.tensor([-1.0, -0.3, 0.0, 0.4, 1.0 + 1e-7])).min()) == 0.0
    assert sel.similarity(torch.tensor([-1.0, -0.3, 0.0, 0.4, 1.0 + 1e-7])).tolist() == [0.0, 0.0, 0.0, 0.4000000059604645, 1.0]


def test_orthogonal_samples_do_not_cover_each_other():
    x = torch.eye(6, dtype=torch.float64)                                  # one-hot: post-ReLU, orthogonal
    for m in range(1, 7):
        assert math.isclose(sel.facility_location(x, torch.arange(m)), m / 6, rel_tol=1e-12)


@pytest.mark.parametrize("route", ROUTES)
def test_lambda_keeps_its_meaning(route):
    """λ = 0: top-k on the weights. Large λ: the set of largest coverage (brute force), on post-ReLU
    clusters whose best cover needs one sample per cluster while the weights favour one cluster.
    Cluster c lives on features {2c, 2c + 1}: clusters are orthogonal (s = 0 across), so the best
    cover is the best single cover of each cluster, which greedy finds."""
    g = torch.Generator().manual_seed(2)
    x = torch.zeros(12, 8, dtype=torch.float64)                            # (n, D) post-ReLU
    for i in range(12):
        c = i // 3
        x[i, 2 * c:2 * c + 2] = torch.tensor([1.0, 0.0]) + torch.rand(2, generator=g, dtype=torch.float64)
    w = torch.cat([torch.full((3,), 5.0), torch.zeros(9)]).double() + 0.01 * torch.rand(12, generator=g)
    budget = ROUTES[route]
    for method in sel.METHODS:
        assert sorted(run_method(method, w, x, 4, 0.0, budget).tolist()) == sorted(sel.top_k(w, 4).tolist())
    best_cover = max(sel.facility_location(x, torch.tensor(S)) for S in itertools.combinations(range(12), 4))
    for method in sel.METHODS:
        idx = run_method(method, w, x, 4, 1e4, budget, epsilon=0.001)
        assert sorted(int(i) // 3 for i in idx) == [0, 1, 2, 3]           # one per cluster
        assert math.isclose(sel.facility_location(x, idx), best_cover, rel_tol=1e-9)
    # λ = 1 trades both terms in the same units: J's optimum by brute force vs greedy's value
    opt = brute_force(w, x, 4, 1.0)
    value = naive_objective(w, x, sel.greedy(w, x, 4, 1.0, memory_budget_bytes=budget).tolist(), 1.0)
    assert (1 - 1 / math.e) * opt <= value <= opt + 1e-12


# ----------------------------------------------------------------------------- stochastic sampling (issue 13.10)


def test_candidate_sampling_is_partial_fisher_yates_on_the_uniforms():
    """The candidates follow from the uniforms exactly; entries past r stay put."""
    r, s = 50, 7
    pool = list(range(100, 100 + r)) + [-1, -2]
    u = torch.rand(3 * s, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    targets = sel.swap_targets(u, r, s).tolist()                         # steps with r, r − 1, r − 2 left
    for step, uu in enumerate(u.reshape(3, s).tolist()):
        assert targets[step] == [i + int(ui * (r - step - i)) for i, ui in enumerate(uu)]
    u = u[:s].tolist()
    sel.partial_shuffle(pool, targets[0])
    expect = list(range(100, 100 + r))
    for i, ui in enumerate(u):
        p = i + int(ui * (r - i))
        expect[i], expect[p] = expect[p], expect[i]
    assert pool[:r] == expect and pool[r:] == [-1, -2]


def naive_stochastic_greedy(w, x, k, lam, generator, epsilon):
    """The obvious slow version: every step evaluates all s candidates from the explicit matrix."""
    n = x.shape[0]
    wt = sel.scale_weights(w, n).double()
    sim = naive_similarity(x).double()
    s = max(1, math.ceil(n / k * math.log(1 / epsilon)))
    u = torch.rand(s * min(k, max(0, n - s)), generator=generator, dtype=torch.float64).tolist()
    remaining, cover, picked = list(range(n)), torch.zeros(n, dtype=torch.float64), []
    for step in range(k):
        r = n - step
        if s < r:
            for i, ui in enumerate(u[step * s:(step + 1) * s]):          # partial Fisher–Yates
                p = i + int(ui * (r - i))
                remaining[i], remaining[p] = remaining[p], remaining[i]
        cand = remaining[:min(s, r)]
        values = [float(wt[j]) / k + lam / n * float((sim[j] - cover).clamp(min=0).sum()) for j in cand]
        pos = values.index(max(values))                                   # first sampled among ties
        picked.append(remaining[pos])
        cover = torch.maximum(cover, sim[remaining[pos]])
        remaining[pos] = remaining[r - 1]
        remaining.pop()
    return picked


@pytest.mark.parametrize("seed", range(6))
def test_stochastic_greedy_equals_evaluating_every_candidate(seed):
    """Lazy evaluation inside a step (bounds from earlier steps) picks what evaluating all s
    candidates picks, on fresh random inputs and on both routes; exactly the uniforms it needs
    are drawn."""
    g = torch.Generator().manual_seed(500 + seed)
    n, D = [40, 90, 200][seed % 3], [3, 6, 16][seed % 3]
    x = torch.randn(n, D, generator=g, dtype=torch.float64).relu() + (0.05 if seed % 2 else 0.0)
    w = torch.randn(n, generator=g, dtype=torch.float64)
    k, lam, eps = [4, 30, 150][seed % 3], [0.5, 2.0, 8.0][seed % 3], [0.2, 0.01, 0.05][seed % 3]
    expect = naive_stochastic_greedy(w, x, k, lam, torch.Generator().manual_seed(seed), eps)
    for budget in ROUTES.values():
        gen = torch.Generator().manual_seed(seed)
        assert sel.stochastic_greedy(w, x, k, lam, gen, eps, memory_budget_bytes=budget).tolist() == expect
        s = max(1, math.ceil(n / k * math.log(1 / eps)))
        ref = torch.Generator().manual_seed(seed)
        torch.rand(s * min(k, max(0, n - s)), generator=ref, dtype=torch.float64)
        assert torch.equal(gen.get_state(), ref.get_state())


def test_candidate_sampling_is_uniform_without_replacement():
    r, s, trials = 10, 3, 6000
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(r)
    pool = list(range(r))
    for _ in range(trials):
        sel.partial_shuffle(pool, sel.swap_targets(torch.rand(s, generator=g, dtype=torch.float64), r, s)[0].tolist())
        assert len(set(pool[:s])) == s and sorted(pool) == list(range(r))
        counts[pool[:s]] += 1
    assert torch.allclose(counts / trials, torch.full((r,), s / r), atol=0.03)  # each in with p = s/r


# ----------------------------------------------------------------------------- centrality


def test_centrality_equals_explicit_gram_row_sums():
    _, x = problem(1, 33, D=6)
    xh = x / x.norm(dim=1, keepdim=True)
    assert torch.allclose(sel.centrality(x), (xh @ xh.T).sum(1), rtol=1e-12, atol=1e-10)


def test_modular_select_is_top_k_of_weights_plus_mean_half_cosine_similarity():
    w, x = problem(2, 25, D=4)
    wt = (w - w.min()) / (w.max() - w.min())
    singleton = ((1 + naive_cosine(x)) / 2).mean(0)                       # the proxy's definition
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
    (lambda w, x: sel.maximize_facility(w, x, 2, 1.0, "lazy", memory_budget_bytes=-1), "memory_budget_bytes"),
    (lambda w, x: sel.greedy(w, x, 2, 1.0, memory_budget_bytes=1.5), "integer number of bytes"),
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


def test_class_balanced_bottom_k_against_a_plain_loop():
    """SPL's class balance under the paper protocol: within-class rank r (smallest first), key
    (r + ½)/share_c, the k smallest keys (ties: lowest index), written as plain Python loops."""
    rng = np.random.default_rng(7)
    for trial in range(200):
        n, C = int(rng.integers(1, 60)), int(rng.integers(1, 6))
        values = rng.integers(0, 8, n).astype(float) if trial % 2 else rng.random(n)
        labels = rng.integers(0, C, n)
        shares = rng.random(C + int(rng.integers(0, 3)))
        if trial % 3 == 0:
            shares[0] = 0.0
        k = int(rng.integers(1, n + 1))
        keys = []
        for i in range(n):
            r = sum(1 for j in range(n) if labels[j] == labels[i]
                    and (values[j] < values[i] or (values[j] == values[i] and j < i)))
            s = shares[labels[i]] if labels[i] < len(shares) else 0.0
            keys.append(((r + 0.5) / s if s > 0 else math.inf, i))
        want = [i for _, i in sorted(keys)[:k]]
        got = sel.class_balanced_bottom_k(torch.tensor(values), torch.tensor(labels), k, torch.tensor(shares))
        assert got.tolist() == want, trial
    # proportional: class c gets k·share_c ± 1 while it has members
    labels = torch.arange(1000) % 4
    got = sel.class_balanced_bottom_k(torch.rand(1000, generator=torch.Generator().manual_seed(1)), labels, 100,
                                      sel.class_shares(labels))
    assert torch.bincount(labels[got]).tolist() == [25, 25, 25, 25]
