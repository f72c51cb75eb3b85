"""Per-sample learning dynamics: residuals, output speeds, DoCL scores, tangent-kernel blocks.

Notation (docs/design.md §1): r_i = ∂ℓ_i/∂f(x_i) (residual), J_i = ∂f(x_i)/∂θ, H_ij = J_i J_jᵀ,
v_i = (1/N) Σ_j H_ij r_j (output speed), a_i = r_i · v_i (DoCL score).

The identity r_iᵀ H_ij r_j = g_i · g_j (g_i = ∇θ ℓ_i) gives a_i = g_i · ḡ and v_i = J_i ḡ with
ḡ the full-data mean gradient, so exact scores for all N samples cost one backward pass (ḡ)
plus one forward-mode pass (`torch.func.jvp` along ḡ), in batches: no per-sample gradient
and no N×N kernel is ever formed. Scoring runs with eval-mode normalisation (batch statistics
would couple samples) and leaves the model's parameters, buffers, mode and .grad untouched.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn as nn
from torch.func import functional_call, jacrev, jvp, vmap

from .outputs import per_sample_loss, residual_and_loss, toward_target

TASKS = ("classification", "regression")


@dataclass
class Dynamics:
    """Per-sample dynamics at one set of weights (all tensors on the inputs' device and dtype)."""

    score: torch.Tensor     # (N,)   a_i = r_i · v_i
    residual: torch.Tensor  # (N, C) r_i = ∂ℓ_i/∂f(x_i)
    speed: torch.Tensor     # (N, C) v_i = J_i ḡ, so ∂f(x_i)/∂t = −v_i under gradient flow
    loss: torch.Tensor      # (N,)   ℓ_i
    output: torch.Tensor    # (N, C) f(x_i)
    grad_norm: float        # ‖ḡ‖, the mean-gradient norm
    estimator: str = "exact"
    features: Optional[torch.Tensor] = None  # (N, D) the head's inputs, when asked for and available


# ----------------------------------------------------------------------------- checks


def check_task(task: str) -> str:
    """Return `task` if it is "classification" or "regression", else raise ValueError."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: use 'classification' or 'regression'")
    return task


def check_inputs(X: torch.Tensor, y: Optional[torch.Tensor] = None, task: str = "classification",
                 num_outputs: Optional[int] = None, check_finite: bool = True) -> None:
    """Raise ValueError with a short fix when X (N, ...), y ((N,) labels or (N, C) targets) cannot be scored."""
    check_task(task)
    if not isinstance(X, torch.Tensor):
        raise ValueError(f"X must be a torch.Tensor, got {type(X).__name__}")
    if X.ndim < 1 or X.shape[0] == 0:
        raise ValueError("X is empty: pass at least one sample (first dimension N ≥ 1)")
    if check_finite and X.is_floating_point() and not bool(torch.isfinite(X).all()):
        raise ValueError("X contains NaN or inf: clean or impute the features first")
    if y is None:
        return
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]}: pass one target per sample")
    if task == "classification":
        if y.is_floating_point() or y.ndim != 1:
            raise ValueError("classification needs integer class labels of shape (N,); "
                             "use task='regression' for float targets")
        if int(y.min()) < 0 or (num_outputs is not None and int(y.max()) >= num_outputs):
            raise ValueError(f"labels must lie in [0, {num_outputs}) for a model with {num_outputs} "
                             f"outputs; found labels in [{int(y.min())}, {int(y.max())}]")
    else:
        if not y.is_floating_point():
            raise ValueError("regression needs float targets of shape (N, C)")
        if check_finite and not bool(torch.isfinite(y).all()):
            raise ValueError("y contains NaN or inf: clean the targets first")
        if num_outputs is not None and (y.ndim != 2 or y.shape[1] != num_outputs):
            raise ValueError(f"regression targets must have shape (N, {num_outputs}) to match the "
                             f"model's outputs; got {tuple(y.shape)}")


def _check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


# ----------------------------------------------------------------------------- model state


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval-mode normalisation and no dropout while scoring; restores every submodule's mode."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


class _ChannelAffine(torch.autograd.Function):
    """y = x · scale + shift with per-channel scale, shift shaped (1, C, 1, ...): eval-mode BatchNorm.

    Its forward-mode rule is two fused passes, y' = x'·scale + x·scale' + shift', where the
    built-in batch-norm JVP takes about eight: on the benchmark CNN this cut the JVP pass by
    ~20%. Used only inside the JVP of `docl_scores`.
    """

    @staticmethod
    def forward(x, scale, shift):
        return torch.addcmul(shift, x, scale)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, scale, _ = inputs
        ctx.save_for_forward(x, scale)

    @staticmethod
    def jvp(ctx, x_t, scale_t, shift_t):
        x, scale = ctx.saved_tensors
        out = shift_t
        if scale_t is not None:
            out = torch.addcmul(out, x, scale_t) if out is not None else x * scale_t
        if x_t is not None:
            out = torch.addcmul(out, x_t, scale) if out is not None else x_t * scale
        return out if out is not None else torch.zeros_like(x)

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - scoring only runs this forward-mode
        raise RuntimeError("_ChannelAffine is forward-mode only (used inside docl_scores' JVP)")


def _batchnorm_eval_forward(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    # eval-mode BatchNorm as a per-channel affine map; weights come from `bn`'s attributes, which
    # functional_call has swapped for the (dual) tensors being differentiated
    scale = torch.rsqrt(bn.running_var + bn.eps)  # (C,)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return _ChannelAffine.apply(x, scale.view(shape), shift.view(shape))


@contextlib.contextmanager
def _lean_batchnorm_jvp(model: nn.Module) -> Iterator[None]:
    """Inside: every eval-mode BatchNorm that uses running statistics runs `_batchnorm_eval_forward`."""
    patched = []
    for m in model.modules():
        # only stock BatchNorm{1,2,3}d: a subclass with its own forward keeps it
        if (isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.training
                and type(m).forward is nn.modules.batchnorm._BatchNorm.forward
                and m.running_mean is not None and m.running_var is not None and "forward" not in vars(m)):
            m.forward = _batchnorm_eval_forward.__get__(m)
            patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


def _memory_format(X: torch.Tensor) -> torch.memory_format:
    # image batches (B, C, H, W) on CPU: oneDNN convolutions run ~1.5x faster in NHWC
    # (measured on this project's benchmark CNN); values are unchanged, only strides differ
    if X.ndim == 4 and X.device.type == "cpu":
        return torch.channels_last
    return torch.contiguous_format


def _weights(model: nn.Module, memory_format: torch.memory_format = torch.contiguous_format
             ) -> tuple[dict, dict, dict]:
    """Detached (trainable params, frozen params, buffers) name → tensor dicts.

    4-D weights are laid out in `memory_format`; the model's own tensors are never touched.
    """
    def lay(t: torch.Tensor) -> torch.Tensor:
        t = t.detach()
        return t.contiguous(memory_format=memory_format) if t.ndim == 4 else t

    trainable = {k: lay(p) for k, p in model.named_parameters() if p.requires_grad}
    frozen = {k: lay(p) for k, p in model.named_parameters() if not p.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    return trainable, frozen, buffers


def _norm(tensors: dict[str, torch.Tensor]) -> float:
    # ‖θ‖ over a dict of tensors, with one host sync
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors.values()])))


def _batches(n: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _num_outputs(model: nn.Module, X: torch.Tensor) -> int:
    # one sample is enough to learn C; never a forward over all of X
    with torch.no_grad(), eval_mode(model):
        out = model(X[:1])
    if out.ndim != 2:
        raise ValueError(f"the model must return outputs of shape (B, C); got {tuple(out.shape)}")
    return out.shape[1]


def mean_gradient(model: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str = "classification",
                  batch_size: int = 256) -> dict[str, torch.Tensor]:
    """ḡ = (1/N) Σ_i ∇θ ℓ_i over the trainable parameters, as a dict name → tensor (param's shape).

    X: (N, ...) inputs; y: (N,) labels or (N, C) targets. One backward pass over X in batches,
    eval-mode; the model's parameters, buffers, mode and .grad are not touched.
    """
    check_task(task)
    _check_batch_size(batch_size)
    total = _mean_gradient(model, X, y, task, batch_size, _memory_format(X))
    return {k: g.contiguous() for k, g in total.items()}


def _mean_gradient(model: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str, batch_size: int,
                   memory_format: torch.memory_format) -> dict[str, torch.Tensor]:
    trainable, frozen, buffers = _weights(model, memory_format)
    leaves = {k: p.requires_grad_() for k, p in trainable.items()}  # fresh leaves, not the model's
    weights = {**frozen, **leaves}
    total = {k: torch.zeros_like(p) for k, p in leaves.items()}
    with eval_mode(model), torch.enable_grad():
        for sl in _batches(len(X), batch_size):
            xb = X[sl].contiguous(memory_format=memory_format)
            loss = per_sample_loss(functional_call(model, (weights, buffers), (xb,)), y[sl], task).sum()
            # a parameter the forward does not use (a spare head, say) has gradient zero
            grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True, materialize_grads=True)
            for acc, g in zip(total.values(), grads):
                acc.add_(g)
    for g in total.values():
        g.div_(len(X))
    return total


# ----------------------------------------------------------------------------- scores


def docl_scores(model: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str = "classification",
                batch_size: int = 256, estimator: str = "exact", eps: Optional[float] = None,
                gbar: Optional[dict[str, torch.Tensor]] = None, features: bool = False) -> Dynamics:
    """DoCL scores a_i = r_i · v_i for every sample, with residuals and output speeds.

    Args:
        model: any nn.Module mapping a batch (B, ...) to outputs (B, C); scored as given in
            eval mode, left unchanged (parameters, buffers, mode, .grad).
        X: (N, ...) inputs on the model's device and dtype.
        y: (N,) integer labels (classification) or (N, C) float targets (regression).
        task: "classification" (softmax cross-entropy) or "regression" (½‖f − y‖²).
        batch_size: samples per pass; memory is O(P + batch_size). On CPU 128-256 ran fastest
            (cache-resident activations; 512 cost ~15% more in the JVP pass, 1024 ~30%);
            on a GPU pass a larger one.
        estimator: "exact" (forward-mode JVP along ḡ, default) or "fast" (central finite
            differences of outputs along ḡ: two plain forwards instead of the JVP, error O(ε²)).
        eps: finite-difference step for "fast": θ moves by ±eps·max(‖θ‖, 1) along ḡ/‖ḡ‖.
            Default 1e-4 in float32, 1e-6 in float64. Smooth nets have error O(eps²) plus
            rounding; ReLU/max-pool nets add O(eps) from units that cross a kink, so the
            default is smaller than the smooth optimum (cube root of machine epsilon).
        gbar: a precomputed mean gradient over the trainable parameters, name → tensor (e.g.
            all-reduced across ranks); computed if None.
        features: also return what the model's `head` module receives, (N, D), taken inside the
            exact estimator's pass at no extra forward (its primal values, at the same weights).
            For models whose forward is head(features(x)) (the built-in ones) that is features(x)
            up to float rounding (eval BatchNorm runs as one affine map in this pass, as for the
            outputs); the caller checks. None under "fast" or without a `head` module.

    Returns:
        Dynamics with score (N,), residual (N, C), speed (N, C), loss (N,), output (N, C),
        features (N, D) or None.
        Frozen parameters (requires_grad False) do not move under gradient flow: speeds and
        scores count the trainable ones only.
    """
    if estimator not in ("exact", "fast"):
        raise ValueError(f"unknown estimator {estimator!r}: use 'exact' or 'fast' "
                         "(the byproduct estimator is ByproductEstimator, fed by the training loop)")
    _check_batch_size(batch_size)
    check_inputs(X, y, task)
    C = _num_outputs(model, X)
    check_inputs(X, y, task, num_outputs=C, check_finite=False)
    fmt = _memory_format(X)
    if gbar is None:
        gbar = _mean_gradient(model, X, y, task, batch_size, fmt)
    params, frozen, buffers = _weights(model, fmt)
    missing = set(params) - set(gbar)
    if missing:
        raise ValueError(f"gbar lacks trainable parameters {sorted(missing)[:3]}...: pass "
                         "mean_gradient(model, X, y) or None")
    tangent = {k: gbar[k].to(params[k].dtype).contiguous(memory_format=fmt) if gbar[k].ndim == 4
               else gbar[k].to(params[k].dtype) for k in params}
    gnorm = _norm(tangent)

    def f(p, xb):
        # frozen weights ride along as constants: no tangent work is spent on them
        return functional_call(model, ({**frozen, **p}, buffers), (xb,))

    head = getattr(model, "head", None)
    capture = features and estimator == "exact" and isinstance(head, nn.Module)
    with eval_mode(model), torch.no_grad():
        if estimator == "exact":
            outputs, speeds, feats = _jvp_pass(f, params, tangent, X, batch_size, fmt, model,
                                               head if capture else None)
        else:
            outputs, speeds = _difference_pass(f, params, tangent, gnorm, X, batch_size, fmt, eps)
    output = torch.cat(outputs)  # (N, C)
    speed = torch.cat(speeds)  # (N, C)
    residual, loss = residual_and_loss(output, y, task)  # (N, C), (N,)
    return Dynamics(score=(residual * speed).sum(1), residual=residual, speed=speed, loss=loss,
                    output=output, grad_norm=gnorm, estimator=estimator,
                    features=torch.cat(feats) if capture else None)


def _jvp_pass(f, params: dict, tangent: dict, X: torch.Tensor, batch_size: int, fmt, model: nn.Module,
              head: Optional[nn.Module]) -> tuple[list, list, list]:
    """The exact estimator's forward-mode pass along ḡ, in batches: → (outputs, speeds, head inputs)
    per batch, (B, C), (B, C), (B, D); the head inputs only when `head` is given (primal values)."""
    outputs, speeds, feats = [], [], []
    with _lean_batchnorm_jvp(model), _head_inputs(head) as seen:
        for sl in _batches(len(X), batch_size):
            xb = X[sl].contiguous(memory_format=fmt)

            def f_aux(p):
                out = f(p, xb)
                # aux comes back primal only; a head called other than once gives the outputs, which
                # the caller's check against the model's features then refuses
                got = seen[0] if len(seen) == 1 else out
                seen.clear()
                return out, got

            out, dout, aux = jvp(f_aux, (params,), (tangent,), has_aux=True)
            outputs.append(out)
            speeds.append(dout)
            if head is not None:
                feats.append(aux)
    return outputs, speeds, feats


def _difference_pass(f, params: dict, tangent: dict, gnorm: float, X: torch.Tensor, batch_size: int, fmt,
                     eps: Optional[float]) -> tuple[list, list]:
    """The fast estimator: central differences of the outputs along ḡ → (outputs, speeds) per batch."""
    if eps is None:
        eps = 1e-6 if X.dtype == torch.float64 else 1e-4
    h = eps * max(_norm(params), 1.0) / max(gnorm, 1e-30)
    plus = {k: params[k] + h * tangent[k] for k in params}
    minus = {k: params[k] - h * tangent[k] for k in params}
    outputs, speeds = [], []
    for sl in _batches(len(X), batch_size):
        xb = X[sl].contiguous(memory_format=fmt)
        fp, fm = f(plus, xb), f(minus, xb)
        outputs.append(0.5 * (fp + fm))  # f(θ) + O(h²): no third forward needed
        speeds.append((fp - fm) / (2 * h))
    return outputs, speeds


@contextlib.contextmanager
def _head_inputs(head: Optional[nn.Module]) -> Iterator[list]:
    """Inside: each call of `head` appends its input to the yielded list (nothing when head is None)."""
    seen: list = []
    if head is None:
        yield seen
        return
    handle = head.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    try:
        yield seen
    finally:
        handle.remove()


# ----------------------------------------------------------------------------- kernel


def jacobians(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Output Jacobians J_i = ∂f(x_i)/∂θ over the trainable parameters, flattened: (B, C, P). Eval mode."""
    params, frozen, buffers = _weights(model)

    def f_one(p, x):
        return functional_call(model, ({**frozen, **p}, buffers), (x.unsqueeze(0),)).squeeze(0)

    with eval_mode(model):
        jac = vmap(jacrev(f_one), (None, 0))(params, X)  # name → (B, C, *shape)
    B = X.shape[0]
    return torch.cat([j.reshape(B, j.shape[1], -1) for j in jac.values()], dim=2)


def kernel_block(model: nn.Module, X_probe: torch.Tensor, reduce: str = "trace",
                 memory_budget_bytes: int = 1 << 30) -> torch.Tensor:
    """Tangent-kernel blocks H_ij = J_i J_jᵀ on a probe set, by Jacobian contraction in chunks.

    Args:
        model: scored in eval mode, left unchanged.
        X_probe: (m, ...) probe inputs.
        reduce: "trace" for K_ij = tr H_ij, shape (m, m); "full" for H, shape (m, m, C, C).
        memory_budget_bytes: bound on the Jacobians held at once. When all m Jacobians fit,
            they are computed once; otherwise chunk pairs are contracted (Jacobians recomputed).

    Returns:
        (m, m) or (m, m, C, C) tensor on X_probe's device and dtype.
    """
    if reduce not in ("trace", "full"):
        raise ValueError(f"unknown reduce {reduce!r}: use 'trace' or 'full'")
    check_inputs(X_probe)
    m = X_probe.shape[0]
    C = _num_outputs(model, X_probe)
    P = sum(p.numel() for p in model.parameters() if p.requires_grad)
    row_bytes = C * P * X_probe.element_size()
    chunk = max(1, min(m, memory_budget_bytes // (2 * row_bytes)))
    eq = "acp,bcp->ab" if reduce == "trace" else "acp,bdp->abcd"
    shape = (m, m) if reduce == "trace" else (m, m, C, C)
    out = torch.empty(shape, dtype=X_probe.dtype, device=X_probe.device)
    with torch.no_grad():
        if chunk >= m:
            J = jacobians(model, X_probe)  # (m, C, P)
            return torch.einsum(eq, J, J)
        starts = list(range(0, m, chunk))
        for a in starts:
            Ja = jacobians(model, X_probe[a:a + chunk])
            for b in starts:
                if b < a:
                    continue
                Jb = Ja if b == a else jacobians(model, X_probe[b:b + chunk])
                blk = torch.einsum(eq, Ja, Jb)
                out[a:a + chunk, b:b + chunk] = blk
                if b != a:  # H_ji = H_ijᵀ
                    out[b:b + chunk, a:a + chunk] = blk.transpose(0, 1) if reduce == "trace" \
                        else blk.permute(1, 0, 3, 2)
    return out


def kernel_eigenvalues(K: torch.Tensor, top: int = 20) -> torch.Tensor:
    """The `top` largest eigenvalues (top,), descending, of a trace kernel (m, m) or of full
    blocks (m, m, C, C) read as the (m·C, m·C) matrix [H_ij]_{(i,c),(j,d)}."""
    if K.ndim == 4:
        m, _, C, _ = K.shape
        K = K.permute(0, 2, 1, 3).reshape(m * C, m * C)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"expected a square kernel (m, m) or blocks (m, m, C, C); got {tuple(K.shape)}")
    ev = torch.linalg.eigvalsh(0.5 * (K + K.T))
    return ev.flip(0)[:top]


def score_contributions(H: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """c_ij = r_iᵀ H_ij r_j / m (m, m): sample j's share of probe sample i's kernel score.

    Args:
        H: full kernel blocks (m, m, C, C).
        residual: (m, C) residuals of the probe samples.
    Row sums give the `kernel` estimator r_i · (1/m) Σ_j H_ij r_j, which equals the exact
    score when the probe set is the whole training set.
    """
    if H.ndim != 4 or residual.ndim != 2 or H.shape[0] != residual.shape[0] or H.shape[2] != residual.shape[1]:
        raise ValueError(f"need blocks (m, m, C, C) and residuals (m, C); got {tuple(H.shape)} "
                         f"and {tuple(residual.shape)}")
    m = H.shape[0]
    return torch.einsum("ic,ijcd,jd->ij", residual, H, residual) / m


def kernel_scores(model: nn.Module, X_probe: torch.Tensor, y_probe: torch.Tensor,
                  task: str = "classification", memory_budget_bytes: int = 1 << 30) -> torch.Tensor:
    """The `kernel` estimator on a probe set: a_i = r_i · (1/m) Σ_j H_ij r_j, shape (m,).

    X_probe: (m, ...); y_probe: (m,) labels or (m, C) targets. Explicit full blocks H (m, m, C, C)
    from `kernel_block` (memory_budget_bytes bounds the Jacobians held at once). Equals
    `docl_scores(...).score` when the probe set is the whole training set.
    """
    check_inputs(X_probe, y_probe, task)
    check_inputs(X_probe, y_probe, task, num_outputs=_num_outputs(model, X_probe), check_finite=False)
    with torch.no_grad(), eval_mode(model):
        residual, _ = residual_and_loss(model(X_probe), y_probe, task)
    H = kernel_block(model, X_probe, reduce="full", memory_budget_bytes=memory_budget_bytes)  # (m, m, C, C)
    return score_contributions(H, residual).sum(1)


# ----------------------------------------------------------------------------- byproduct


class ByproductEstimator:
    """The `byproduct` score from outputs training already computed (our simple variant; the
    authors' estimator, with mean-teacher logits and pace normalisation, is recipe.PaperByproduct).

    For a sample seen at step t' with outputs f_{t'} and again at step t with outputs f_t:
        â_i = (onehot(y_i) − p_i) · (f_t − f_{t'}) / (Σ lr between t' and t)^lr_power
    (regression: (y_i − f_t) · ...), then smoothed: score ← β·score + (1 − β)·â.
    It costs no extra forward or backward, but goes stale for samples not selected.

    Feed it after each optimiser step with `update(ids, outputs, lr)`; `lr` is the learning
    rate of the step the batch was used for.
    """

    def __init__(self, y: torch.Tensor, num_outputs: int, task: str = "classification",
                 ema: float = 0.9, temperature: float = 1.0, lr_power: float = 1.0):
        check_task(task)
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must lie in [0, 1), got {ema}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.task, self.ema, self.temperature, self.lr_power = task, ema, temperature, lr_power
        self.y = y
        N = y.shape[0]
        dev = y.device
        self.last_output = torch.zeros(N, num_outputs, device=dev)  # (N, C) f at last visit
        self.lr_since = torch.zeros(N, dtype=torch.float64, device=dev)  # (N,) Σ lr since last visit
        self.seen = torch.zeros(N, dtype=torch.bool, device=dev)
        self.score = torch.zeros(N, device=dev)  # (N,) smoothed estimate
        self.observed = torch.zeros(N, dtype=torch.long, device=dev)  # estimates so far

    def update(self, ids: torch.Tensor, outputs: torch.Tensor, lr: float) -> None:
        """Record one step: ids (B,) sample indices, outputs (B, C) their f before the step, lr the step's rate."""
        ids = ids.to(self.y.device)
        out = outputs.detach().to(self.last_output.device, torch.float32)  # (B, C)
        y = self.y[ids]
        toward = toward_target(out, y, self.task, temperature=self.temperature)  # (B, C) onehot − p, or y − f
        again = self.seen[ids] & (self.lr_since[ids] > 0)
        if bool(again.any()):
            i = ids[again]
            step = (self.lr_since[i] ** self.lr_power).to(out.dtype)
            est = (toward[again] * (out[again] - self.last_output[i])).sum(1) / step
            first = self.observed[i] == 0
            self.score[i] = torch.where(first, est, self.ema * self.score[i] + (1 - self.ema) * est)
            self.observed[i] += 1
        self.last_output[ids] = out
        self.lr_since[ids] = 0.0
        self.seen[ids] = True
        self.lr_since += lr
