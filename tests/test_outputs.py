"""docl_core.outputs against plain numpy written here: float64, fresh random outputs, labels and targets.

No expected value calls the module under test; the last tests pin the two things numpy cannot
see (the sign of an exact zero in onehot − p) and that dynamics, recipe, the scorers, the
measurement and the frames use these functions rather than copies.
"""
import numpy as np
import torch

import docl_core.dynamics as dynamics
import docl_core.outputs as outputs
import docl_core.recipe as recipe
import docl_core.frames as frames
import docl_core.measure as measure
import docl_core.scorers as scorers
from docl_core.outputs import (at_label, margin, output_scores, per_sample_loss, probabilities,
                               probability_square_loss, residual_and_loss, toward_target)

B, C, D = 37, 5, 3


def _data(seed):
    rng = np.random.default_rng(seed)
    f = rng.normal(scale=3.0, size=(B, C))                        # logits
    y = rng.integers(0, C, size=B)                                # labels
    reg_f, reg_y = rng.normal(size=(B, D)), rng.normal(size=(B, D))  # regression outputs, targets
    return f, y, reg_f, reg_y


def _softmax(f):
    e = np.exp(f - f.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _t(a):
    return torch.tensor(a)


def test_probabilities_and_at_label():
    f, y, _, _ = _data(0)
    np.testing.assert_allclose(probabilities(_t(f)).numpy(), _softmax(f), rtol=1e-12)
    np.testing.assert_allclose(probabilities(_t(f), temperature=2.5).numpy(), _softmax(f / 2.5), rtol=1e-12)
    np.testing.assert_allclose(probabilities(_t(f), scale=0.4, centre=True).numpy(), _softmax(0.4 * f), rtol=1e-12)
    p = _softmax(f)
    np.testing.assert_allclose(at_label(_t(p), _t(y)).numpy(), p[np.arange(B), y], rtol=0)


def test_residual_loss_and_toward_target_classification():
    f, y, _, _ = _data(1)
    p, onehot = _softmax(f), np.eye(C)[y]
    r, loss = residual_and_loss(_t(f), _t(y), "classification")
    assert r.shape == (B, C) and loss.shape == (B,)
    np.testing.assert_allclose(r.numpy(), p - onehot, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(loss.numpy(), -np.log(p[np.arange(B), y]), rtol=1e-12)
    np.testing.assert_allclose(per_sample_loss(_t(f), _t(y), "classification").numpy(),
                               -np.log(p[np.arange(B), y]), rtol=1e-12)
    np.testing.assert_allclose(toward_target(_t(f), _t(y), "classification", temperature=0.7).numpy(),
                               onehot - _softmax(f / 0.7), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(toward_target(_t(f), _t(y), "classification", scale=0.4, centre=True).numpy(),
                               onehot - _softmax(0.4 * f), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(probability_square_loss(_t(f), _t(y)).numpy(),
                               0.5 * ((p - onehot) ** 2).sum(1), rtol=1e-12, atol=1e-15)


def test_regression():
    _, _, f, y = _data(2)
    r, loss = residual_and_loss(_t(f), _t(y), "regression")
    np.testing.assert_allclose(r.numpy(), f - y, rtol=0)
    np.testing.assert_allclose(loss.numpy(), 0.5 * ((f - y) ** 2).sum(1), rtol=1e-12)
    np.testing.assert_allclose(per_sample_loss(_t(f), _t(y), "regression").numpy(),
                               0.5 * ((f - y) ** 2).sum(1), rtol=1e-12)
    # the knobs are for probabilities: a regression target direction is y − f whatever they are
    np.testing.assert_allclose(toward_target(_t(f), _t(y), "regression", temperature=3.0, scale=0.4).numpy(),
                               y - f, rtol=0)
    s = output_scores(_t(f), _t(y), "regression")
    np.testing.assert_allclose(s["el2n"].numpy(), np.sqrt(((f - y) ** 2).sum(1)), rtol=1e-12)
    assert s["margin"].isnan().all() and s["entropy"].isnan().all()


def test_output_scores_and_margin():
    f, y, _, _ = _data(3)
    p, onehot = _softmax(f), np.eye(C)[y]
    others = np.where(onehot > 0, -np.inf, f)
    want_margin = f[np.arange(B), y] - others.max(1)
    s = output_scores(_t(f), _t(y), "classification")
    np.testing.assert_allclose(s["el2n"].numpy(), np.sqrt(((p - onehot) ** 2).sum(1)), rtol=1e-12)
    np.testing.assert_allclose(s["margin"].numpy(), want_margin, rtol=1e-12)
    np.testing.assert_allclose(s["entropy"].numpy(), -(p * np.log(p)).sum(1), rtol=1e-12)
    np.testing.assert_allclose(margin(_t(f), _t(y)).numpy(), want_margin, rtol=1e-12)
    assert margin(_t(f[:, :1]), torch.zeros(B, dtype=torch.long)).isnan().all()  # one output: no other class


def test_toward_target_is_plus_zero_at_a_certain_label():
    """p_y = 1 exactly (float32) gives onehot − p = +0 at the label, as −p + 1 does; −(p − onehot) would give −0."""
    f = torch.tensor([[200.0, 0.0, -5.0]])
    t = toward_target(f, torch.tensor([0]), "classification")
    assert float(t[0, 0]) == 0.0 and not torch.signbit(t[0, 0])


def test_callers_use_this_module():
    assert dynamics.residual_and_loss is outputs.residual_and_loss
    assert dynamics.per_sample_loss is outputs.per_sample_loss
    assert recipe.probability_square_loss is outputs.probability_square_loss
    assert scorers.output_scores is outputs.output_scores
    assert scorers.probabilities is outputs.probabilities  # the data map
    assert measure.residual_and_loss is outputs.residual_and_loss
    assert frames.probabilities is outputs.probabilities
