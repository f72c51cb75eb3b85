"""Per-sample quantities read off a model's outputs: probabilities, residuals, losses, output scores.

Every function takes outputs f (B, C) (logits; regression: predictions (B, D)) with labels y (B,)
int64, or float targets (B, D) for regression, and returns per-sample rows; nothing here touches
a model. The one home of softmax(f) − onehot(y): dynamics, the recipe and the tracker call these,
so the op order that their logged runs depend on is fixed in one place.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def probabilities(output: torch.Tensor, temperature: float = 1.0, scale: float = 1.0,
                  centre: bool = False) -> torch.Tensor:
    """p = softmax(s · (f − max_c f) / T) over classes (B, C), from logits (B, C).

    temperature T: our estimator's (f / T); scale s: the authors' byproduct's (s · f, s = 0.4),
    two knobs because f · (1/T) rounds unlike f / T; centre: subtract each row's max first, as
    the authors' code does (softmax is shift-invariant: only the rounding moves). A knob at its
    default adds no op, so a caller's logged values keep their bits.
    """
    f = output - output.max(1, keepdim=True).values if centre else output
    if scale != 1.0:
        f = scale * f
    if temperature != 1.0:
        f = f / temperature
    return torch.softmax(f, dim=1)


def at_label(values: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """values[i, y_i] (B,) from values (B, C) and labels y (B,) int64: p_y, log p_y, ..."""
    return values.gather(1, y.view(-1, 1)).squeeze(1)


def toward_target(output: torch.Tensor, y: torch.Tensor, task: str, temperature: float = 1.0,
                  scale: float = 1.0, centre: bool = False) -> torch.Tensor:
    """−r, the direction from the output to its target (B, C): onehot(y) − p with p from
    `probabilities(output, temperature, scale, centre)`; regression y − f (the knobs unused).
    Built as −p, then +1 at the label (not −(p − onehot): a p_y of exactly 1 gives +0, not −0)."""
    if task == "classification":
        toward = -probabilities(output, temperature, scale, centre)
        toward[torch.arange(len(y), device=output.device), y] += 1.0
        return toward
    return y.to(output.dtype) - output


def _softmax_residual(output: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log p, p = exp(log p) and r = p − onehot(y), each (B, C), from logits (B, C) and labels (B,)."""
    logp = torch.log_softmax(output, dim=1)
    p = logp.exp()
    r = p.clone()
    r[torch.arange(len(y), device=output.device), y] -= 1.0
    return logp, p, r


def residual_and_loss(output: torch.Tensor, y: torch.Tensor, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual r = ∂ℓ/∂f (B, C) and per-sample loss ℓ (B,) for one batch of outputs (B, C); no gradient kept.

    classification: ℓ = softmax cross-entropy −log p_y, r = softmax(f) − onehot(y).
    regression:     ℓ = ½‖f − y‖²,                      r = f − y.
    """
    if task == "classification":
        logp, _, r = _softmax_residual(output, y)
        return r, -at_label(logp, y)
    diff = output - y
    return diff, 0.5 * (diff * diff).sum(1)


def per_sample_loss(output: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Per-sample loss ℓ (B,), differentiable (used for ḡ and by the trainer): cross-entropy, or
    ½‖f − y‖² for regression."""
    if task == "classification":
        return F.cross_entropy(output, y, reduction="none")
    return 0.5 * ((output - y) ** 2).sum(1)


def probability_square_loss(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """½‖softmax(f) − onehot(y)‖² = ½(Σ_c p_c² + 1) − p_y per sample (B,), differentiable: the
    recipe's full-pass loss (classification only)."""
    p = probabilities(output)
    return 0.5 * ((p * p).sum(1) + 1.0) - at_label(p, y)


def margin(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """f_y − max_{c≠y} f_c (B,) from logits (B, C) and labels (B,) int64; NaN with one output."""
    if output.shape[1] < 2:
        return torch.full_like(output[:, 0], float("nan"))
    rows = torch.arange(output.shape[0], device=output.device)
    others = output.clone()
    others[rows, y] = float("-inf")
    return output[rows, y] - others.max(dim=1).values


def output_scores(output: torch.Tensor, y: torch.Tensor, task: str) -> dict[str, torch.Tensor]:
    """Per-sample scores read off outputs (B, C) alone, each (B,): el2n = ‖softmax(f) − onehot(y)‖
    (regression: ‖f − y‖), margin = f_y − max_{c≠y} f_c and the prediction's entropy −Σ p log p
    (classification; NaN for regression, and margin NaN with one output)."""
    out = output.detach()
    if task != "classification":
        nan = torch.full((out.shape[0],), float("nan"), dtype=out.dtype, device=out.device)
        return {"el2n": (out - y.to(out.dtype)).norm(dim=1), "margin": nan, "entropy": nan.clone()}
    yl = y.to(out.device).long()
    logp, p, r = _softmax_residual(out, yl)
    return {"el2n": r.norm(dim=1), "margin": margin(out, yl), "entropy": -(p * logp).sum(1)}
