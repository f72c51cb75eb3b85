"""GraNd, ‖∇θ ℓ_i‖ for every sample, from per-layer hooks, without per-sample gradients.

One forward over a chunk records each parameterised module's input a and the gradient edge of
its output; one backward of the SUMMED per-sample loss (so sample i's gradient is its own)
asks autograd for the output gradients b only (no parameter gradients are formed); each
module's per-sample squared gradient norm is then read off (a, b):

  Linear   a (B, T, d_in), b (B, T, d_out) (T = 1 without a sequence dim):
           ‖g_i^W‖² = ‖Σ_t b_it a_itᵀ‖²_F, as ‖a_i‖²‖b_i‖² for T = 1, else by the ghost norm
           Σ_{t,s} (a_it·a_is)(b_it·b_is) or by forming the (d_out, d_in) product per sample,
           whichever costs fewer flops (T²(d_in + d_out) against T·d_in·d_out); bias ‖Σ_t b_it‖²
  Conv1d/2d  the same on the unfolded input (im2col, (B, L, c_in/G·k), any stride, padding,
           dilation, padding mode, groups) and the output gradient (B, L, c_out/G); bias ‖Σ_L b‖²
  BatchNorm1d/2d/3d (running statistics: eval mode makes samples independent), GroupNorm,
  LayerNorm  γ: Σ_spatial x̂·b per channel (feature), β: Σ_spatial b, x̂ the normalised input
  Embedding  Σ_{t,s} [i_t = i_s ≠ padding_idx] (b_t·b_s)

Anything else falls back to `vmap_grad_norms` (torch.func per-sample gradients) for the whole
model, with a warning naming why: a module of another type holding trainable parameters, a
parameter shared between modules, a module called more than once per forward, a parameter
used outside its module's forward (e.g. a tied weight read by F.linear), BatchNorm without
running statistics, Conv3d/ConvTranspose, Embedding with max_norm or scale_grad_by_freq.

Both routes run the model in eval mode, count trainable parameters only (requires_grad), and
leave the model's parameters, buffers, modes and .grad untouched; hooks are always removed.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.graph import get_gradient_edge
from torch.func import functional_call, grad, vmap

from .dynamics import eval_mode
from .outputs import per_sample_loss

__all__ = ["grad_norms", "vmap_grad_norms", "hook_support"]


class _Unsupported(Exception):
    """The hook route cannot give this model's per-sample norms; the message says why."""


def _step(n_per_sample: int, element_size: int, budget: int) -> int:
    """Samples per sub-chunk so that n_per_sample elements each stay within budget bytes."""
    return max(1, budget // max(1, n_per_sample * element_size))


def _outer_sq(a: torch.Tensor, b: torch.Tensor, budget: int) -> torch.Tensor:
    """‖Σ_t b_t a_tᵀ‖²_F per sample (B,) from a (B, T, Da), b (B, T, Db)."""
    B, T, Da = a.shape
    Db = b.shape[2]
    if T == 1:
        return a.pow(2).sum((1, 2)) * b.pow(2).sum((1, 2))
    ghost = T * T * (Da + Db) <= T * Da * Db  # flops of two Gram matrices vs one outer product
    step = _step(2 * T * T if ghost else Da * Db, a.element_size(), budget)
    out = []
    for s in range(0, B, step):
        a_, b_ = a[s:s + step], b[s:s + step]
        out.append(((a_ @ a_.mT) * (b_ @ b_.mT)).sum((1, 2)) if ghost else (b_.mT @ a_).pow(2).sum((1, 2)))
    return torch.cat(out)


def _sq_linear(m: nn.Linear, a: torch.Tensor, b: torch.Tensor, budget: int) -> torch.Tensor:
    B = a.shape[0]
    a, b = a.reshape(B, -1, a.shape[-1]), b.reshape(B, -1, b.shape[-1])  # (B, T, d_in), (B, T, d_out)
    sq = torch.zeros(B, dtype=b.dtype, device=b.device)
    if m.weight.requires_grad:
        sq = sq + _outer_sq(a, b, budget)
    if m.bias is not None and m.bias.requires_grad:
        sq = sq + b.sum(1).pow(2).sum(1)
    return sq


def _sq_conv(m: nn.Conv1d | nn.Conv2d, x: torch.Tensor, b: torch.Tensor, budget: int) -> torch.Tensor:
    padding = m.padding
    if m.padding_mode != "zeros" or isinstance(padding, str):  # pad as the layer does, then none
        mode = "constant" if m.padding_mode == "zeros" else m.padding_mode
        x, padding = F.pad(x, m._reversed_padding_repeated_twice, mode=mode), (0,) * len(m.kernel_size)
    kernel, dilation, stride = m.kernel_size, m.dilation, m.stride
    if isinstance(m, nn.Conv1d):  # a 1-D convolution is a 2-D one over a (1, L) image
        x, b = x.unsqueeze(2), b.unsqueeze(2)
        kernel, dilation, padding, stride = (1, *kernel), (1, *dilation), (0, *padding), (1, *stride)
    B, G = x.shape[0], m.groups
    b = b.reshape(B, G, m.out_channels // G, -1)  # (B, G, c_out/G, L)
    L, Da = b.shape[-1], m.in_channels // G * kernel[0] * kernel[1]
    sq = torch.zeros(B, dtype=b.dtype, device=b.device)
    if m.weight.requires_grad:
        per = Da * L + min(2 * L * L, Da * b.shape[2]) if L > 1 else Da
        step = _step(G * per, x.element_size(), budget)
        parts = []
        for s in range(0, B, step):
            u = F.unfold(x[s:s + step], kernel, dilation, padding, stride)  # (b, c_in·k, L), channel-major
            n = u.shape[0]
            u = u.reshape(n * G, Da, L).mT  # (n·G, L, Da)
            parts.append(_outer_sq(u, b[s:s + step].reshape(n * G, -1, L).mT, budget).reshape(n, G).sum(1))
        sq = sq + torch.cat(parts)
    if m.bias is not None and m.bias.requires_grad:
        sq = sq + b.sum(3).pow(2).sum((1, 2))
    return sq


def _sq_affine(m: nn.Module, xhat: torch.Tensor, b: torch.Tensor, channel_dims: int) -> torch.Tensor:
    """γ, β of a normalisation: the last `channel_dims` dims after the batch dim(s) hold the
    parameters' shape; all other non-batch dims are summed over."""
    B = b.shape[0]
    keep = {1} if channel_dims == 0 else set(range(b.dim() - channel_dims, b.dim()))
    spatial = tuple(d for d in range(1, b.dim()) if d not in keep)
    sq = torch.zeros(B, dtype=b.dtype, device=b.device)
    if m.weight is not None and m.weight.requires_grad:
        g = (xhat * b).sum(spatial) if spatial else xhat * b
        sq = sq + g.reshape(B, -1).pow(2).sum(1)
    if m.bias is not None and m.bias.requires_grad:
        g = b.sum(spatial) if spatial else b
        sq = sq + g.reshape(B, -1).pow(2).sum(1)
    return sq


def _sq_batchnorm(m, x, b, budget):
    xhat = F.batch_norm(x, m.running_mean, m.running_var, None, None, False, 0.0, m.eps)
    return _sq_affine(m, xhat, b, 0)  # channel dim 1


def _sq_groupnorm(m, x, b, budget):
    return _sq_affine(m, F.group_norm(x, m.num_groups, None, None, m.eps), b, 0)


def _sq_layernorm(m, x, b, budget):
    shape = tuple(m.normalized_shape)
    return _sq_affine(m, F.layer_norm(x, shape, None, None, m.eps), b, len(shape))


def _sq_embedding(m: nn.Embedding, idx: torch.Tensor, b: torch.Tensor, budget: int) -> torch.Tensor:
    B = idx.shape[0]
    idx, b = idx.reshape(B, -1), b.reshape(B, -1, b.shape[-1])  # (B, T), (B, T, D)
    keep = torch.ones_like(idx, dtype=torch.bool) if m.padding_idx is None else idx != m.padding_idx
    b = b * keep.unsqueeze(2).to(b.dtype)  # the padding row gets no gradient
    if idx.shape[1] == 1:
        return b.pow(2).sum((1, 2))
    step, out = _step(2 * idx.shape[1] ** 2, b.element_size(), budget), []
    for s in range(0, B, step):
        i_, b_ = idx[s:s + step], b[s:s + step]
        same = (i_.unsqueeze(2) == i_.unsqueeze(1)).to(b.dtype)  # rows shared by positions t, s
        out.append((same * (b_ @ b_.mT)).sum((1, 2)))
    return torch.cat(out)


_BN = nn.modules.batchnorm._BatchNorm
# (class, rule, the methods a subclass must not override for the rule to hold)
_RULES = ((nn.Linear, _sq_linear, ("forward",)),
          (nn.Conv1d, _sq_conv, ("forward", "_conv_forward")),
          (nn.Conv2d, _sq_conv, ("forward", "_conv_forward")),
          (_BN, _sq_batchnorm, ("forward",)),
          (nn.GroupNorm, _sq_groupnorm, ("forward",)),
          (nn.LayerNorm, _sq_layernorm, ("forward",)),
          (nn.Embedding, _sq_embedding, ("forward",)))


def _rule(m: nn.Module):
    for cls, rule, methods in _RULES:
        if isinstance(m, cls) and all(getattr(type(m), f) is getattr(cls, f) for f in methods):
            return rule
    return None


def _hooked_modules(model: nn.Module) -> list[tuple[str, nn.Module, object]]:
    """(name, module, rule) for every module holding trainable parameters; raises _Unsupported."""
    owners: dict[int, str] = {}
    out = []
    for name, m in model.named_modules(remove_duplicate=False):
        own = [(k, p) for k, p in m.named_parameters(recurse=False) if p.requires_grad]
        if not own:
            continue
        label = f"module {name or '(the model)'!r} ({type(m).__name__})"
        for k, p in own:
            if id(p) in owners:
                raise _Unsupported(f"parameter {name}.{k} is shared with {owners[id(p)]}")
            owners[id(p)] = f"{name}.{k}"
        rule = _rule(m)
        if rule is None:
            raise _Unsupported(f"{label} holds trainable parameters and has no per-sample rule")
        if any(k not in ("weight", "bias") for k, _ in own):
            raise _Unsupported(f"{label} holds trainable parameters other than weight and bias")
        if isinstance(m, _BN) and m.running_mean is None:
            raise _Unsupported(f"{label} has no running statistics, so eval mode still mixes samples")
        if isinstance(m, nn.Embedding) and (m.max_norm is not None or m.scale_grad_by_freq):
            raise _Unsupported(f"{label} uses max_norm or scale_grad_by_freq")
        out.append((name, m, rule))
    return out


def hook_support(model: nn.Module) -> str | None:
    """None when `grad_norms` can take the hook route for this model's modules, else why not
    (checked from the modules alone; uses found during the forward are checked there)."""
    try:
        _hooked_modules(model)
    except _Unsupported as e:
        return str(e)
    return None


def _parameter_uses(loss: torch.Tensor) -> dict[int, int]:
    """How many graph edges reach each leaf tensor's accumulator, by id of the leaf."""
    uses: dict[int, int] = {}
    seen, stack = set(), [loss.grad_fn]
    while stack:
        for nxt, _ in stack.pop().next_functions:
            if nxt is None:
                continue
            var = getattr(nxt, "variable", None)
            if var is not None:
                uses[id(var)] = uses.get(id(var), 0) + 1
            elif nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return uses


def _hook_norms(model, modules, X, y, task, batch_size, budget) -> torch.Tensor:
    """Squared-norm sums per chunk through forward hooks; raises _Unsupported."""
    seen: dict[nn.Module, tuple] = {}
    label = {m: f"module {name or '(the model)'!r} ({type(m).__name__})" for name, m, _ in modules}

    def record(m, inputs, output):
        if m in seen:
            raise _Unsupported(f"{label[m]} is called more than once per forward")
        if not inputs or not isinstance(output, torch.Tensor):
            raise _Unsupported(f"{label[m]} is called without a positional input tensor")
        # the edge, not the tensor: an in-place op after the module (ReLU(inplace)) would move it
        seen[m] = (inputs[0].detach(), get_gradient_edge(output) if output.requires_grad else None)

    owner = {id(p): m for _, m, _ in modules for p in m.parameters(recurse=False) if p.requires_grad}
    handles = [m.register_forward_hook(record) for _, m, _ in modules]
    norms = []
    try:
        with eval_mode(model), torch.enable_grad():
            for s in range(0, len(X), batch_size):
                seen.clear()
                loss = per_sample_loss(model(X[s:s + batch_size]), y[s:s + batch_size], task).sum()
                B = min(batch_size, len(X) - s)
                sq = torch.zeros(B, dtype=loss.dtype, device=loss.device)
                if loss.grad_fn is None:
                    norms.append(sq)
                    continue
                for pid, n in _parameter_uses(loss).items():
                    if pid in owner and (n > 1 or owner[pid] not in seen):
                        raise _Unsupported(f"a parameter of {label[owner[pid]]} is used outside its "
                                           "module's forward or more than once")
                live = [(m, a, e) for m, (a, e) in seen.items() if e is not None]
                bs = torch.autograd.grad(loss, [e for _, _, e in live], allow_unused=True) if live else []
                with torch.no_grad():
                    for (m, a, _), b in zip(live, bs):
                        if b is not None:
                            sq = sq + _rule(m)(m, a, b, budget)
                norms.append(sq.detach())
                seen.clear()
    finally:
        for h in handles:
            h.remove()
        seen.clear()
    return torch.cat(norms) if norms else torch.zeros(0, dtype=X.dtype, device=X.device)


def grad_norms(model: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str = "classification",
               batch_size: int = 512, memory_budget_bytes: int = 1 << 28) -> torch.Tensor:
    """GraNd ‖∇θ ℓ_i‖ (N,) over the trainable parameters, in eval mode, ℓ = `per_sample_loss`.

    X (N, *input_shape), y (N,) int64 labels or (N, C) regression targets. Chunks of
    `batch_size` samples go forward and backward together; the per-layer work holds about
    `memory_budget_bytes` at a time (the vmap fallback's per-sample gradients too). Supported
    modules and the fallback: see the module docstring (`hook_support(model)` says which route).
    """
    try:
        modules = _hooked_modules(model)
        if not modules:
            return torch.zeros(len(X), dtype=X.dtype, device=X.device)
        return _hook_norms(model, modules, X, y, task, max(1, batch_size), memory_budget_bytes).sqrt()
    except _Unsupported as e:
        warnings.warn(f"GraNd by per-sample gradients (vmap), slower than the hook route: {e}", stacklevel=2)
        return vmap_grad_norms(model, X, y, task, batch_size, memory_budget_bytes)


def vmap_grad_norms(model: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str = "classification",
                    batch_size: int = 512, memory_budget_bytes: int = 1 << 28) -> torch.Tensor:
    """GraNd (N,) by per-sample gradients (`vmap(grad)`) in eval mode, in chunks holding at most
    `memory_budget_bytes` of gradients: any model torch.func can trace; the reference route."""
    trainable = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    frozen = {k: p.detach() for k, p in model.named_parameters() if not p.requires_grad}
    buffers = {k: b.detach() for k, b in model.named_buffers()}
    P = sum(p.numel() for p in trainable.values())
    chunk = max(1, min(batch_size, memory_budget_bytes // max(1, P * X.element_size())))

    def loss_one(params, x, t):
        out = functional_call(model, ({**frozen, **params}, buffers), (x.unsqueeze(0),))
        return per_sample_loss(out, t.unsqueeze(0), task).sum()

    norms = []
    with eval_mode(model), torch.enable_grad():
        for s in range(0, len(X), chunk):
            g = vmap(grad(loss_one), in_dims=(None, 0, 0))(trainable, X[s:s + chunk], y[s:s + chunk])
            sq = sum(v.reshape(v.shape[0], -1).pow(2).sum(1) for v in g.values())  # (B,)
            norms.append(sq.sqrt().detach())
    return torch.cat(norms) if norms else torch.zeros(0, dtype=X.dtype, device=X.device)
