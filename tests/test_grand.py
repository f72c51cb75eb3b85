"""GraNd by hooks (docl_core.grand) against per-sample gradients by vmap(grad), float64, rtol 1e-10."""
from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from docl_core.grand import grad_norms, hook_support, vmap_grad_norms
from docl_core.models import build_model
from docl_core.tracker import per_sample_grad_norms


def reference(model, X, y, task="classification"):
    """‖∇θ ℓ_i‖ (N,) over requires_grad parameters, eval mode, by vmap(grad) of the per-sample loss."""
    trainable = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    rest = {k: p.detach() for k, p in model.named_parameters() if not p.requires_grad}
    rest.update({k: b.detach() for k, b in model.named_buffers()})
    loss = (lambda out, t: F.cross_entropy(out, t, reduction="sum")) if task == "classification" \
        else (lambda out, t: 0.5 * ((out - t) ** 2).sum())

    def one(p, x, t):
        return loss(functional_call(model, {**rest, **p}, (x.unsqueeze(0),)), t.unsqueeze(0))

    training = model.training
    model.eval()
    g = vmap(grad(one), in_dims=(None, 0, 0))(trainable, X, y)
    model.train(training)
    return torch.sqrt(sum(v.reshape(len(X), -1).pow(2).sum(1) for v in g.values()))


def hooks_only(model, X, y, task="classification", **kw):
    """grad_norms, failing if it falls back to vmap."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return grad_norms(model, X, y, task, **kw)


def randomise_norms(model):
    """Trained-looking normalisation layers: non-trivial running statistics and affine terms."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)):
                if m.weight is not None:
                    m.weight.uniform_(0.5, 1.5)
                if m.bias is not None:
                    m.bias.uniform_(-0.5, 0.5)
    return model


class SeqNet(nn.Module):
    """(B, T, 20) → Linear (ghost-norm branch) → LayerNorm → Linear (materialised branch) → mean → Linear."""

    def __init__(self):
        super().__init__()
        self.a, self.ln, self.b, self.head = nn.Linear(20, 20), nn.LayerNorm(20), nn.Linear(20, 3), nn.Linear(3, 4)

    def forward(self, x):
        return self.head(self.b(torch.tanh(self.ln(self.a(x)))).mean(1))


class EmbedNet(nn.Module):
    """(B, T) token ids → Embedding (padding_idx 0) → GroupNorm over channels → mean → Linear."""

    def __init__(self):
        super().__init__()
        self.emb, self.gn, self.head = nn.Embedding(7, 6, padding_idx=0), nn.GroupNorm(2, 6), nn.Linear(6, 3)

    def forward(self, idx):
        return self.head(torch.tanh(self.gn(self.emb(idx).mT)).mean(2))


def conv_net():
    return nn.Sequential(
        nn.Conv2d(3, 5, 3, stride=2, padding=1), nn.ReLU(inplace=True),                 # in-place after the layer
        nn.Conv2d(5, 6, (3, 2), stride=(1, 2), padding=(2, 0), dilation=(2, 1)), nn.Tanh(),
        nn.Conv2d(6, 4, 3, padding="same", padding_mode="reflect", groups=2), nn.Tanh(),
        nn.Conv2d(4, 8, 1, bias=False), nn.Flatten(), nn.LazyLinear(5))


def bn_net():
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3))


def conv1d_net():
    return nn.Sequential(nn.Conv1d(2, 4, 5, padding=2, stride=2), nn.BatchNorm1d(4), nn.ReLU(),
                         nn.Conv1d(4, 3, 3, padding="same", padding_mode="circular"), nn.Flatten(),
                         nn.Linear(3 * 6, 4))


CASES = {  # name: (model, input shape, outputs)
    "mlp": (lambda: nn.Sequential(nn.Linear(7, 9), nn.Tanh(), nn.Linear(9, 8), nn.ReLU(), nn.Linear(8, 4)),
            (7,), 4),
    "cnn": (conv_net, (3, 9, 9), 5),
    "batchnorm": (bn_net, (2, 5, 5), 3),
    "conv1d": (conv1d_net, (2, 11), 4),
    "sequence": (SeqNet, (3, 20), 4),
}


def _data(shape, n, outputs, task="classification", seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, outputs, (n,), generator=g) if task == "classification" \
        else torch.randn(n, outputs, generator=g, dtype=torch.float64)
    return X, y


@pytest.mark.parametrize("name", sorted(CASES))
def test_hooks_match_vmap_per_sample_gradients(name):
    torch.manual_seed(1)
    make, shape, outputs = CASES[name]
    X, y = _data(shape, 23, outputs)
    model = make().double()
    model(X[:2])  # materialise lazy layers
    randomise_norms(model).train()
    got = hooks_only(model, X, y, batch_size=7)
    torch.testing.assert_close(got, reference(model, X, y), rtol=1e-10, atol=0)
    # a budget of a few bytes: every per-layer product one sample at a time
    torch.testing.assert_close(hooks_only(model, X, y, batch_size=64, memory_budget_bytes=8), got,
                               rtol=1e-12, atol=0)


def test_embedding_and_groupnorm():
    torch.manual_seed(2)
    model = randomise_norms(EmbedNet().double())
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, 7, (19, 5), generator=g)  # repeats and the padding id within a sample
    y = torch.randint(0, 3, (19,), generator=g)
    torch.testing.assert_close(hooks_only(model, idx, y, batch_size=8), reference(model, idx, y), rtol=1e-10, atol=0)


def test_regression_loss():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    X, y = _data((4,), 17, 2, task="regression")
    torch.testing.assert_close(hooks_only(model, X, y, "regression"), reference(model, X, y, "regression"),
                               rtol=1e-10, atol=0)


def test_frozen_parameters_do_not_count():
    torch.manual_seed(4)
    model = randomise_norms(bn_net().double())
    model[0].weight.requires_grad_(False)   # a frozen convolution weight (its bias still trains)
    model[5].bias.requires_grad_(False)     # half of a BatchNorm's affine pair
    for p in model[4].parameters():         # a wholly frozen Linear
        p.requires_grad_(False)
    X, y = _data((2, 5, 5), 15, 3)
    got = hooks_only(model, X, y, batch_size=4)
    torch.testing.assert_close(got, reference(model, X, y), rtol=1e-10, atol=0)
    for p in model.parameters():
        p.requires_grad_(True)
    assert (reference(model, X, y) > got).all()  # the frozen ones were left out, not ignored by accident


def _dataset(kind, shape, outputs=10):
    return SimpleNamespace(name=kind, kind=kind, input_shape=shape, num_outputs=outputs)


DOCL_MODELS = {
    "mlp": ("mlp", _dataset("tabular", (40,)), {}),
    "cnn-digits": ("cnn", _dataset("image", (1, 8, 8)), {"width": 4}),
    "cnn-signal": ("cnn", _dataset("signal", (1, 40)), {"width": 4}),
    "resnet": ("resnet", _dataset("image", (3, 8, 8)), {"widths": (4, 8, 8)}),
    "wrn": ("wrn-16-4", _dataset("image", (3, 8, 8)), {"depth": 10, "widen": 1}),
}


@pytest.mark.parametrize("key", sorted(DOCL_MODELS))
def test_docl_models(key):
    torch.manual_seed(5)
    name, ds, options = DOCL_MODELS[key]
    model = randomise_norms(build_model(name, ds, **options).double())
    X, y = _data(ds.input_shape, 12, ds.num_outputs)
    assert hook_support(model) is None
    got = hooks_only(model, X, y, batch_size=5)
    torch.testing.assert_close(got, reference(model, X, y), rtol=1e-10, atol=0)
    # the tracker's name goes the same way
    torch.testing.assert_close(per_sample_grad_norms(model, X, y, "classification", 5), got, rtol=0, atol=0)


def _snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()],
            [None if p.grad is None else p.grad.clone() for p in model.parameters()])


def _assert_untouched(model, before):
    state, modes, grads = before
    after = model.state_dict()
    assert state.keys() == after.keys() and all(torch.equal(state[k], after[k]) for k in state)
    assert [m.training for m in model.modules()] == modes
    for p, g in zip(model.parameters(), grads):
        assert (p.grad is None) if g is None else torch.equal(p.grad, g)
    for m in model.modules():
        assert not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks


def test_model_untouched_and_hooks_removed():
    torch.manual_seed(6)
    model = randomise_norms(bn_net().double()).train()
    model[1].eval()  # mixed modes come back as they were
    model[4].weight.grad = torch.ones_like(model[4].weight)  # an existing .grad stays
    X, y = _data((2, 5, 5), 10, 3)
    before = _snapshot(model)
    hooks_only(model, X, y, batch_size=4)
    _assert_untouched(model, before)
    with pytest.raises(Exception):  # a bad label fails inside the forward/backward: hooks still go
        grad_norms(model, X, torch.full((10,), 99), batch_size=4)
    _assert_untouched(model, before)


class Tied(nn.Module):
    """A weight used twice (tied): per-layer norms do not add up, so the vmap route answers."""

    def __init__(self):
        super().__init__()
        self.emb, self.mid = nn.Embedding(5, 4), nn.Linear(4, 4)

    def forward(self, idx):
        return F.linear(torch.tanh(self.mid(self.emb(idx))), self.emb.weight)


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        return self.lin(torch.tanh(self.lin(x)))


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.s = nn.Parameter(torch.tensor([0.5, 2.0, 1.5]))

    def forward(self, x):
        return x * self.s


@pytest.mark.parametrize("make,shape,why", [
    (Tied, None, "outside its module"), (Twice, (3,), "more than once"),
    (lambda: nn.Sequential(nn.Linear(3, 3), Scale()), (3,), "no per-sample rule"),
    (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False), nn.Flatten(),
                           nn.Linear(12, 3)), (1, 4, 5), "running statistics"),
])
def test_unsupported_models_fall_back_to_vmap_with_a_reason(make, shape, why):
    torch.manual_seed(7)
    model = make().double()
    X = torch.randint(0, 5, (9,)) if make is Tied else torch.randn(9, *shape, dtype=torch.float64)
    y = torch.randint(0, 3, (9,))
    with pytest.warns(UserWarning, match=why):
        got = grad_norms(model, X, y, batch_size=4)
    torch.testing.assert_close(got, vmap_grad_norms(model, X, y), rtol=1e-10, atol=0)
    if make is not Tied:
        torch.testing.assert_close(got, reference(model, X, y), rtol=1e-10, atol=0)
    for m in model.modules():
        assert not m._forward_hooks


def test_empty_and_float32():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert grad_norms(model, torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)).shape == (0,)
    X, y = torch.randn(50, 3), torch.randint(0, 2, (50,))
    got = hooks_only(model, X, y)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, vmap_grad_norms(model, X, y), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("T,Da,Db", [(1, 5, 4), (3, 20, 20), (6, 20, 3), (9, 2, 2)])
def test_both_norm_routes_against_the_outer_product(T, Da, Db):
    """‖Σ_t b_t a_tᵀ‖²_F by the ghost norm (T²(Da + Db) ≤ T·Da·Db) or the formed product."""
    from docl_core.grand import _outer_sq
    g = torch.Generator().manual_seed(T)
    a = torch.randn(5, T, Da, generator=g, dtype=torch.float64)
    b = torch.randn(5, T, Db, generator=g, dtype=torch.float64)
    want = torch.einsum("btj,bti->bji", b, a).pow(2).sum((1, 2))
    for budget in (1 << 28, 1):
        torch.testing.assert_close(_outer_sq(a, b, budget), want, rtol=1e-12, atol=0)
