"""docl_core.scores / sample_scores / features / select: the public calls, against independent
computations (per-sample gradients by autograd one sample at a time, softmax by hand in numpy,
brute force over subsets), on fresh random models and data, in float64."""
import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import docl_core
from docl_core import features, sample_scores, scores, select


def _problem(n=50, d=6, c=3, seed=None):
    g = torch.Generator().manual_seed(int(np.random.default_rng(seed).integers(1 << 31)))
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    model = nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, c)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.7)
    return model, X, y


def _per_sample_grads(model, X, y) -> np.ndarray:
    """(N, P) ∇θ ℓ_i, one backward pass per sample (no vmap, no jvp: nothing shared with the code)."""
    rows = []
    for i in range(len(X)):
        model.zero_grad()
        nn.functional.cross_entropy(model(X[i:i + 1]), y[i:i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy().copy())
    model.zero_grad()
    return np.stack(rows)


def test_exact_scores_from_a_loader_equal_g_i_dot_mean_gradient():
    model, X, y = _problem()
    G = _per_sample_grads(model, X, y)
    want = G @ G.mean(0)                                      # a_i = g_i · ḡ (docs/design.md §1)
    before = [p.detach().clone() for p in model.parameters()]
    loader = DataLoader(TensorDataset(X, y), batch_size=7)   # 50 = 7·7 + 1: a short last batch
    got = scores(model, loader)
    assert got.shape == (50,) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(scores(model, (X, y), batch_size=16), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(scores(model, (X.numpy(), y.numpy())), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(scores(model, loader, method="fast"), want, rtol=1e-5, atol=1e-8)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())) and model.training
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_output_scores_and_grand_against_numpy():
    model, X, y = _problem(n=40, c=4)
    got = sample_scores(model, DataLoader(TensorDataset(X, y), batch_size=9),
                        names=["loss", "el2n", "margin", "entropy", "grand"])
    with torch.no_grad():
        f = model(X).numpy()
    yy = y.numpy()
    z = f - f.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    onehot = np.eye(4)[yy]
    others = np.where(onehot > 0, -np.inf, f)
    np.testing.assert_allclose(got["loss"], -np.log(p[np.arange(40), yy]), rtol=1e-10)
    np.testing.assert_allclose(got["el2n"], np.linalg.norm(p - onehot, axis=1), rtol=1e-10)
    np.testing.assert_allclose(got["margin"], f[np.arange(40), yy] - others.max(1), rtol=1e-10)
    np.testing.assert_allclose(got["entropy"], -(p * np.log(p)).sum(1), rtol=1e-10)
    np.testing.assert_allclose(got["grand"], np.linalg.norm(_per_sample_grads(model, X, y), axis=1), rtol=1e-9)


def test_exact_with_other_scores_shares_its_passes_and_agrees():
    model, X, y = _problem(n=30)
    both = sample_scores(model, (X, y), names=["exact", "el2n"], batch_size=8)
    np.testing.assert_allclose(both["exact"], scores(model, (X, y)), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(both["el2n"], scores(model, (X, y), method="el2n"), rtol=1e-12)


def test_regression_exact_score():
    g = torch.Generator().manual_seed(3)
    X, Y = torch.randn(20, 4, generator=g, dtype=torch.float64), torch.randn(20, 2, generator=g, dtype=torch.float64)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    rows = []
    for i in range(20):
        model.zero_grad()
        (0.5 * ((model(X[i:i + 1]) - Y[i:i + 1]) ** 2).sum()).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy().copy())
    G = np.stack(rows)
    np.testing.assert_allclose(scores(model, (X, Y), task="regression", batch_size=6), G @ G.mean(0), rtol=1e-10)


class _WithFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Sequential(nn.Linear(5, 7), nn.ReLU()), nn.Linear(7, 3)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


def test_features_default_layer_and_named_layer():
    torch.manual_seed(0)
    X = torch.randn(23, 5)
    m = _WithFeatures()
    with torch.no_grad():
        own = m.body(X).numpy()
    np.testing.assert_allclose(features(m, X, batch_size=4), own, rtol=1e-5, atol=1e-6)  # float32, other batches
    seq = nn.Sequential(nn.Linear(5, 9), nn.ReLU(), nn.Linear(9, 3))
    with torch.no_grad():
        penultimate = torch.relu(seq[0](X)).numpy()
        first = seq[0](X).numpy()
    np.testing.assert_allclose(features(seq, DataLoader(TensorDataset(X, torch.zeros(23)), batch_size=5)),
                               penultimate, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features(seq, X.numpy().astype(np.float64), layer="0"), first, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no module 'nope'"):
        features(seq, X, layer="nope")


def test_select_top_and_fraction_against_sorting():
    rng = np.random.default_rng()
    s = rng.integers(0, 20, 60).astype(float)              # ties: the lower index first
    want = sorted(range(60), key=lambda i: (-s[i], i))[:9]
    assert select(s, k=9).tolist() == want
    assert select(s, k=0.15).tolist() == want                # 15 % of 60 = 9
    assert select(s, k=9, largest=False).tolist() == sorted(range(60), key=lambda i: (s[i], i))[:9]


def test_select_draw_is_seeded_distinct_and_follows_the_weights():
    s = np.r_[np.full(5, 12.0), np.zeros(95)]
    a, b = select(s, k=5, rule="draw", seed=1), select(s, k=5, rule="draw", seed=1)
    assert a.tolist() == b.tolist() and len(set(a)) == 5
    assert sorted(a.tolist()) == [0, 1, 2, 3, 4]  # e^12 ≈ 163,000× the others' weight: P(another) < 0.3 %


def _scaled(s):
    return (s - s.min()) / (s.max() - s.min())   # min-max to [0, 1], as select's weights


def _unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_select_modular_against_the_formula_in_numpy():
    rng = np.random.default_rng()
    n, k, lam = 40, 6, 0.7
    s, x = rng.normal(size=n), np.abs(rng.normal(size=(n, 5)))
    w, xh = _scaled(s), _unit_rows(x)
    c = xh @ xh.sum(0)
    val = w + lam * (0.5 + c / (2 * n))
    want = sorted(range(n), key=lambda i: (-val[i], i))[:k]
    assert select(s, k=k, rule="modular", features=x, lam=lam).tolist() == want


def test_select_facility_reaches_most_of_the_brute_force_optimum():
    rng = np.random.default_rng()
    n, k, lam = 10, 3, 1.0
    s, x = rng.normal(size=n), np.abs(rng.normal(size=(n, 4)))
    w, xh = _scaled(s), _unit_rows(x)
    sim = np.maximum(0.0, xh @ xh.T)

    def J(S):
        return w[list(S)].mean() + lam * sim[:, list(S)].max(1).mean()

    best = max(J(S) for S in itertools.combinations(range(n), k))
    got = select(s, k=k, rule="facility", features=x, lam=lam, seed=0)
    assert len(set(got.tolist())) == k
    assert J(got) >= (1 - 1 / math.e) * best


@pytest.mark.parametrize("call, message", [
    (lambda m, X, y: scores(m, DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True)), "shuffles"),
    (lambda m, X, y: scores(m, ((a, b) for a, b in zip(X.split(8), y.split(8)))), "read the data twice"),
    (lambda m, X, y: scores(m, X), "need labels"),
    (lambda m, X, y: scores(m, (X, y), method="vog"), "unknown method 'vog'"),
    (lambda m, X, y: sample_scores(m, (X, y), names=["exact", "fast"]), "not both"),
    (lambda m, X, y: scores(m, (X, y[:-1])), "one label per sample"),
    (lambda m, X, y: scores(m, (X[:0], y[:0])), "empty"),
    (lambda m, X, y: scores(m, (X, y + 5)), r"labels must lie in \[0, 3\)"),
    (lambda m, X, y: scores(m, (X, y), method="el2n", batch_size=0), "batch_size"),
    (lambda m, X, y: select(np.r_[1.0, np.nan, 2.0], k=1), r"scores\[1\] is nan"),
    (lambda m, X, y: select(np.ones(5), k=6), "k"),
    (lambda m, X, y: select(np.ones(5), k=2, rule="facility"), "needs features"),
    (lambda m, X, y: select(np.ones(5), k=2, rule="modular", features=np.ones((4, 3))), r"shape \(5, D\)"),
    (lambda m, X, y: select(np.ones(5), k=2, rule="best"), "unknown rule"),
])
def test_bad_input_says_what_to_do(call, message):
    model, X, y = _problem(n=20)
    with pytest.raises(ValueError, match=message):
        call(model, X, y)


def test_the_readme_first_code_block_runs():
    """The README's 'Scores on your own model' block, executed as written."""
    readme = Path(__file__).resolve().parents[1] / "README.md"
    block = re.search(r"## Scores on your own model.*?```python\n(.*?)```", readme.read_text(), re.S).group(1)
    env: dict = {}
    exec(compile(block, "README.md", "exec"), env)
    assert env["a"].shape == (env["N"],) and env["keep"].shape == (env["N"] // 10,)
    assert set(env["table"]) >= {"exact", "el2n", "margin"}
    assert docl_core.scores is scores
