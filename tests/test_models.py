"""docl_core.models: shapes per data kind, defaults, determinism, torch.func compatibility, errors."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch.func import functional_call, jacrev, jvp, vmap

from torch.func import grad

from docl_core.data import load_dataset
from docl_core.dynamics import docl_scores
from docl_core.models import MODELS, SignalCNN, build_model, count_parameters, default_model


def fake(kind: str, shape: tuple, outputs: int = 3, name: str = "fake"):
    """The three attributes build_model reads, without loading data."""
    return SimpleNamespace(name=name, kind=kind, input_shape=shape, num_outputs=outputs)


SMALL = {"mlp": {"width": 16}, "cnn": {"width": 4}, "resnet": {"widths": (4, 8, 8)},  # quick torch.func checks
         "wrn-16-4": {"depth": 10, "widen": 1}, "wrn-28-10": {"depth": 10, "widen": 1}}


def test_wide_resnets_have_the_published_sizes():
    """WRN-28-10: 36.5M parameters (Zagoruyko & Komodakis, Table 1), 640 features; WRN-16-4: 2.7M."""
    ds = fake("image", (3, 32, 32), 10)
    big, small = build_model("wrn-28-10", ds), build_model("wrn-16-4", ds)
    assert round(count_parameters(big) / 1e6, 1) == 36.5 and big.feature_dim == 640
    assert round(count_parameters(small) / 1e6, 1) == 2.7 and small.feature_dim == 256
    assert sum(isinstance(m, torch.nn.Dropout) for m in big.modules()) == 12  # 4 blocks × 3 stages, p = 0.3
    assert all(m.p == 0.3 for m in big.modules() if isinstance(m, torch.nn.Dropout))

CASES = [  # (dataset stand-in, default model)
    (fake("image", (1, 8, 8), 10), "cnn"),
    (fake("image", (1, 28, 28), 10), "cnn"),
    (fake("image", (3, 32, 32), 10), "resnet"),
    (fake("image", (3, 5, 7), 2), "cnn"),
    (fake("points2d", (2,), 4), "mlp"),
    (fake("curve1d", (1,), 1), "mlp"),
    (fake("tabular", (13,), 3), "mlp"),
    (fake("signal", (1, 40), 10), "cnn"),
    (fake("signal", (2, 1), 3), "cnn"),  # two channels, length 1: no max-pool
]


@pytest.mark.parametrize("ds, expected", CASES, ids=[f"{c[0].kind}{c[0].input_shape}" for c in CASES])
def test_default_model_shapes(ds, expected):
    assert default_model(ds) == expected
    torch.manual_seed(0)
    model = build_model(None, ds)
    assert model.name == expected
    x = torch.randn(2, *ds.input_shape)
    assert model(x).shape == (2, ds.num_outputs)
    assert model.features(x).shape == (2, model.feature_dim)
    model.eval()  # eval-mode BatchNorm: one sample works too (as when scoring)
    assert model(x[:1]).shape == (1, ds.num_outputs)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_on_images(name):
    ds = fake("image", (3, 32, 32), 10)
    torch.manual_seed(0)
    model = build_model(name, ds)
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10) and model.features(x).shape[0] == 2


def test_real_datasets():
    for name, expected in (("digits", "cnn"), ("moons", "mlp"), ("sine", "mlp"), ("mnist1d", "cnn")):
        ds = load_dataset(name, limit=100) if name in ("digits", "mnist1d") else load_dataset(name, n_samples=100)
        model = build_model(None, ds)
        assert model.name == expected and model(ds.x_train[:4]).shape == (4, ds.num_outputs)
    signal = load_dataset("mnist1d", limit=100)
    assert isinstance(build_model("cnn", signal), SignalCNN)
    assert build_model("mlp", signal)(signal.x_train[:4]).shape == (4, 10)


def test_parameter_counts():
    digits = build_model("cnn", fake("image", (1, 8, 8), 10))
    assert 10_000 <= count_parameters(digits) <= 100_000
    resnet = build_model("resnet", fake("image", (3, 32, 32), 10))
    assert 300_000 <= count_parameters(resnet) <= 1_000_000
    signal = build_model("cnn", fake("signal", (1, 40), 10))
    assert 5_000 <= count_parameters(signal) <= 30_000  # an epoch over 4000 signals: well under 1 s on CPU
    mlp = build_model("mlp", fake("points2d", (2,), 2), width=8)
    assert count_parameters(mlp) == (2 * 8 + 8) + (8 * 8 + 8) + (8 * 2 + 2)
    for p in mlp.parameters():
        p.requires_grad_(False)
    assert count_parameters(mlp) == 0 and count_parameters(mlp, trainable_only=False) > 0


@pytest.mark.parametrize("name", MODELS)
def test_init_is_deterministic_under_manual_seed(name):
    ds = fake("image", (1, 8, 8), 10)
    states = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        states.append(build_model(name, ds).state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


FUNC_CASES = [(name, fake("image", (1, 8, 8), 4)) for name in MODELS] + [
    (name, fake("signal", (1, 40), 4)) for name in ("cnn", "mlp")]
FUNC_IDS = [f"{name}-{ds.kind}" for name, ds in FUNC_CASES]


@pytest.mark.parametrize("name, ds", FUNC_CASES, ids=FUNC_IDS)
def test_forward_mode_through_functional_call(name, ds):
    """The dynamics engine runs jvp through functional_call in eval mode: every model must allow it."""
    torch.manual_seed(0)
    model = build_model(name, ds, **SMALL[name]).eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    tangent = {k: torch.randn_like(v) for k, v in params.items()}
    x = torch.randn(3, *ds.input_shape)
    out, speed = jvp(lambda p: functional_call(model, (p, buffers), (x,)), (params,), (tangent,))
    assert out.shape == speed.shape == (3, 4)
    # Against a finite difference along the same tangent (float64 for a tight check).
    model.double()
    p64 = {k: v.detach().double() for k, v in model.named_parameters()}
    b64 = {k: v.detach() for k, v in model.named_buffers()}
    eps = 1e-6
    f = lambda p: functional_call(model, (p, b64), (x.double(),))
    plus = f({k: p64[k] + eps * tangent[k].double() for k in p64})
    minus = f({k: p64[k] - eps * tangent[k].double() for k in p64})
    assert torch.allclose((plus - minus) / (2 * eps), speed.double(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name, ds", FUNC_CASES, ids=FUNC_IDS)
def test_per_sample_jacobians_under_vmap(name, ds):
    """Kernel blocks use vmap(jacrev) over single samples: J_i · t must equal the jvp along t."""
    torch.manual_seed(0)
    model = build_model(name, ds, **SMALL[name]).eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    tangent = {k: torch.randn_like(v) for k, v in params.items()}
    x = torch.randn(2, *ds.input_shape)
    one = lambda p, xi: functional_call(model, (p, buffers), (xi.unsqueeze(0),)).squeeze(0)
    jac = vmap(jacrev(one), in_dims=(None, 0))(params, x)  # {name: (B, C, *param shape)}
    via_jac = sum((jac[k].flatten(2) * tangent[k].flatten()).sum(-1) for k in params)  # (B, C)
    _, speed = jvp(lambda p: functional_call(model, (p, buffers), (x,)), (params,), (tangent,))
    assert torch.allclose(via_jac, speed, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_exact_scores_on_signal_models_match_per_sample_gradients(name):
    """docl_scores on the MNIST-1D models against the slow oracle a_i = g_i · ḡ, v_i = J_i ḡ, with
    g_i by vmap(grad) and J_i by vmap(jacrev), in float64, BatchNorm in eval mode with warmed-up
    running statistics (as tests/test_dynamics.py does for its tiny models)."""
    ds = fake("signal", (1, 40), 10)
    torch.manual_seed(0)
    model = build_model(name, ds, **SMALL[name]).double()
    g = torch.Generator().manual_seed(0)
    X = torch.randn(11, 1, 40, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (11,), generator=g)
    model.train()
    with torch.no_grad():  # non-trivial running statistics
        for _ in range(3):
            model(X + 0.5 * torch.randn(X.shape, generator=g, dtype=X.dtype))
    d = docl_scores(model, X, y, batch_size=4)  # 11 = 4 + 4 + 3

    oracle = copy.deepcopy(model).eval()
    params = {k: v.detach() for k, v in oracle.named_parameters()}
    buffers = {k: v.detach() for k, v in oracle.named_buffers()}

    def loss_one(p, x, t):
        out = functional_call(oracle, (p, buffers), (x.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(out, t.unsqueeze(0))

    def out_one(p, x):
        return functional_call(oracle, (p, buffers), (x.unsqueeze(0),)).squeeze(0)

    gs = vmap(grad(loss_one), (None, 0, 0))(params, X, y)
    G = torch.cat([gs[k].reshape(len(X), -1) for k in params], 1)  # (N, P) per-sample gradients
    jac = vmap(jacrev(out_one), (None, 0))(params, X)
    J = torch.cat([jac[k].reshape(len(X), 10, -1) for k in params], 2)  # (N, C, P)
    gbar = G.mean(0)  # (P,)
    torch.testing.assert_close(d.score, G @ gbar, rtol=1e-8, atol=1e-10 * float((G @ gbar).abs().max()))
    torch.testing.assert_close(d.speed, J @ gbar, rtol=1e-8, atol=1e-10 * float((J @ gbar).abs().max()))
    assert d.grad_norm == pytest.approx(float(gbar.norm()), rel=1e-8)


@pytest.mark.parametrize("name, ds, needle", [
    ("transformer", fake("image", (1, 8, 8)), "unknown model"),
    ("cnn", fake("points2d", (2,)), "needs images"),
    ("resnet", fake("tabular", (5,)), "needs images"),
    ("transformer", fake("signal", (1, 40)), "unknown model"),
    ("resnet", fake("signal", (1, 40)), "1-D signal.*use 'cnn'.*or 'mlp'"),
])
def test_build_model_errors(name, ds, needle):
    with pytest.raises(ValueError, match=needle) as info:
        build_model(name, ds)
    assert "\n" not in str(info.value)
    if needle == "unknown model":
        assert all(m in str(info.value) for m in MODELS)


def test_build_model_rejects_unknown_options():
    with pytest.raises(ValueError, match="does not take option.*kernel_size.*use width, depth"):
        build_model("mlp", fake("tabular", (3,)), kernel_size=3)
    assert build_model("MLP", fake("tabular", (3,)), width=4).feature_dim == 4
    # kernel_size is the 1-D CNN's own option: images' CNN does not take it
    assert build_model("cnn", fake("signal", (1, 40)), kernel_size=3, width=4).feature_dim == 16
    with pytest.raises(ValueError, match="does not take option.*kernel_size.*use width"):
        build_model("cnn", fake("image", (1, 8, 8)), kernel_size=3)


@pytest.mark.parametrize("name, shape", [(n, (3, 32, 32)) for n in MODELS] + [("cnn", (1, 40))],
                         ids=list(MODELS) + ["cnn-signal"])
def test_no_hard_coded_device(name, shape):
    """Every tensor a forward pass makes follows the input's device (meta stands in for CUDA here)."""
    kind = "image" if len(shape) == 3 else "signal"
    model = build_model(name, fake(kind, shape, 5), **SMALL[name]).to("meta")
    x = torch.empty(2, *shape, device="meta")
    assert model(x).shape == (2, 5) and model(x).device.type == "meta"
    assert model.features(x).device.type == "meta"
