"""Per-sample scores and subset selection on your own model and data: arrays or loaders in, arrays out.

    scores(model, data, method="exact") -> (N,)            one score per sample, in data's order
    sample_scores(model, data, names=[...]) -> {name: (N,)} several at once, sharing the passes
    features(model, data) -> (N, D)                        penultimate embeddings
    select(scores, k=..., rule="top", features=..., seed=...) -> (k,) int64 sample indices

`data` is a tensor or array X (N, ...) (features only), an `(X, y)` pair of tensors or arrays, or a
re-iterable of `(x, y)` batches such as a `torch.utils.data.DataLoader` that does not shuffle
(extra batch items after y are ignored). Batches are moved to the model's device and floating
dtype one at a time: the data never has to fit in memory as one tensor. The model is scored as
given, in eval mode, and left unchanged (parameters, buffers, mode, .grad).

The exact DoCL score a_i = r_i · v_i = g_i · ḡ (docs/design.md §1) costs two passes over the data:
one backward pass for the mean gradient ḡ, accumulated over batches, and one forward-mode pass
(`torch.func.jvp` along ḡ) that gives every sample's output speed v_i = J_i ḡ.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from .dynamics import check_inputs, check_task, eval_mode, mean_gradient
from .outputs import per_sample_loss
from .scorers import GradientScore, Measuring, Scorer, make_scorers

SCORES = ("exact", "fast", "loss", "el2n", "margin", "entropy", "grand")  # what scores() computes
RULES = ("top", "draw", "modular", "facility")                             # what select() does
_TWO_PASS = ("exact", "fast")  # need ḡ first
Data = Union[torch.Tensor, np.ndarray, Sequence, Iterable]


# ----------------------------------------------------------------------------- data

def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(iter(model.parameters()), None)
    return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)


def _tensor(a: Any, what: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    if isinstance(a, np.ndarray):
        return torch.from_numpy(a)
    raise ValueError(f"{what} must be a torch.Tensor or numpy array, got {type(a).__name__}")


def _batches(data: Data, batch_size: int, device: torch.device, dtype: torch.dtype,
             need_labels: bool) -> Iterator[tuple[torch.Tensor, Optional[torch.Tensor]]]:
    """(x, y) batches of `data` on the model's device, floating inputs in the model's dtype (y None
    when data is X alone)."""
    def moved(x, y):
        x = _tensor(x, "x")
        x = x.to(device=device, dtype=dtype if x.is_floating_point() else None)
        return x, (None if y is None else _tensor(y, "y").to(device))

    if isinstance(data, (torch.Tensor, np.ndarray)):
        if need_labels:
            raise ValueError("these scores need labels: pass (X, y) or a loader of (x, y) batches, not X alone")
        X = _tensor(data, "X")
        for s in range(0, len(X), batch_size):
            yield moved(X[s:s + batch_size], None)
        return
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        X, y = _tensor(data[0], "X"), _tensor(data[1], "y")
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} samples but y has {len(y)}: pass one label per sample")
        for s in range(0, len(X), batch_size):
            yield moved(X[s:s + batch_size], y[s:s + batch_size])
        return
    sampler = getattr(data, "sampler", None)
    if isinstance(sampler, torch.utils.data.RandomSampler):
        raise ValueError("the DataLoader shuffles, so scores would not line up with your dataset's order: "
                         "pass a loader made with shuffle=False")
    try:
        it = iter(data)
    except TypeError:
        raise ValueError(f"cannot read data of type {type(data).__name__}: pass a tensor or array X, an (X, y) "
                         "pair, or a DataLoader of (x, y) batches") from None
    for batch in it:
        if isinstance(batch, (tuple, list)) and len(batch) >= 2:
            yield moved(batch[0], batch[1])
        elif isinstance(batch, (torch.Tensor, np.ndarray)) and not need_labels:
            yield moved(batch, None)
        else:
            raise ValueError("each batch must be an (x, y) pair (extra items are ignored)"
                             + ("" if need_labels else " or a tensor x"))


def _reiterable(data: Data) -> None:
    if not isinstance(data, (torch.Tensor, np.ndarray, tuple, list)) and iter(data) is data:
        raise ValueError("the exact and fast scores read the data twice (ḡ, then the speeds): pass a DataLoader "
                         "or an (X, y) pair, not a one-shot iterator or generator")


def _check_names(names: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in SCORES]
    if unknown:
        raise ValueError(f"unknown score {unknown[0]!r}: choose from {', '.join(SCORES)}")
    if not names:
        raise ValueError(f"names is empty: ask for at least one of {', '.join(SCORES)}")
    return names


def _check_batch(batch_size: int) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


# ----------------------------------------------------------------------------- scores

def sample_scores(model: nn.Module, data: Data, *, names: Sequence[str] = ("exact", "loss", "el2n", "margin"),
                  task: str = "classification", batch_size: int = 256, eps: Optional[float] = None
                  ) -> dict[str, np.ndarray]:
    """Several per-sample scores of `data` under `model` at its current weights, in data's order.

    Parameters
    ----------
    model : nn.Module
        Maps a batch (B, ...) to outputs (B, C): logits for classification, predictions for regression.
    data : tensor, array, (X, y) pair or DataLoader
        N samples with labels: (N,) integer classes, or (N, C) float targets for regression.
    names : sequence of str
        Any of SCORES. "exact": the DoCL score a_i = r_i · J_i ḡ (forward-mode, exact), "fast": the same
        by central finite differences (two forwards instead of the JVP), "loss": ℓ_i, "el2n":
        ‖softmax(f_i) − onehot(y_i)‖, "margin": f_{i,y} − max_{c≠y} f_{i,c} (low: hard), "entropy": of the
        prediction (nats), "grand": ‖∇θ ℓ_i‖ by per-sample gradients.
    task : "classification" or "regression"
    batch_size : int
        Samples per pass for (X, y) input; a DataLoader keeps its own batches. Memory O(P + batch).
    eps : float, optional
        The finite-difference step of "fast" (docl_scores).

    Returns
    -------
    dict name → (N,) float numpy array, in the model's floating dtype. The exact and fast scores
    have units of loss per unit time under gradient flow (dℓ_i/dt = −a_i); a large value is a
    sample the current step moves fast along its residual. Which end is "hard" for each score:
    config.SAMPLE_SCORES (a: high).
    """
    names = _check_names(names)
    check_task(task)
    _check_batch(batch_size)
    device, dtype = _model_device_dtype(model)
    two_pass = [n for n in names if n in _TWO_PASS]
    if len(two_pass) == 2:
        raise ValueError("ask for 'exact' or 'fast', not both: they estimate the same score")
    gbar, n_total = _mean_gradient_over(model, data, task, batch_size) if two_pass else (None, 0)
    out: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    # the tracker's scorers; these keep no per-sample state across batches, so they need no labels up front
    scorers = make_scorers([n for n in names if n != "loss"], None, 0, task, eps=eps)
    n_seen = 0
    for x, y in _batches(data, batch_size, device, dtype, need_labels=True):
        got = _measure_batch(model, x, y, task, scorers, gbar)
        for n in names:
            out[n].append(got[n])
        n_seen += len(x)
    if not n_seen:
        raise ValueError("data is empty: pass at least one sample")
    if two_pass and n_seen != n_total:
        raise ValueError(f"the data gave {n_total} samples on its first pass and {n_seen} on its second: "
                         "pass data that reads the same every time (a loader without shuffling or dropping)")
    return {n: torch.cat(v).detach().cpu().numpy() for n, v in out.items()}


def _mean_gradient_over(model: nn.Module, data: Data, task: str, batch_size: int
                        ) -> tuple[dict[str, torch.Tensor], int]:
    """ḡ over every batch of `data` (each batch's mean weighted by its size) and the number of samples."""
    _reiterable(data)
    device, dtype = _model_device_dtype(model)
    total: Optional[dict[str, torch.Tensor]] = None
    C, n_total = None, 0
    for x, y in _batches(data, batch_size, device, dtype, need_labels=True):
        if C is None:
            with eval_mode(model), torch.no_grad():
                C = model(x[:1]).shape[1]
        check_inputs(x, y, task, num_outputs=C)  # before the loss indexes a bad label
        g = mean_gradient(model, x, y, task, batch_size=len(x))
        if total is None:
            total = {k: v * len(x) for k, v in g.items()}
        else:
            for k, v in g.items():
                total[k].add_(v, alpha=len(x))
        n_total += len(x)
    if not n_total:
        raise ValueError("data is empty: pass at least one sample")
    return {k: v / n_total for k, v in total.items()}, n_total


def _measure_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, scorers: dict[str, Scorer],
                   gbar: Optional[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One batch's scores (B,) each: the exact or fast estimator first (it gives the outputs), else one
    eval forward, then the scorers that read the outputs or run the model, and the loss."""
    at = Measuring(model, x, y, y, task, batch_size=len(x), gbar=gbar)
    got: dict[str, torch.Tensor] = {}
    distinct = list({id(s): s for s in scorers.values()}.values())
    for s in distinct:
        if isinstance(s, GradientScore):
            got.update(s.measure(at))
    if at.output is None:
        with eval_mode(model), torch.no_grad():
            at.output = model(x)
        check_inputs(x, y, task, num_outputs=at.output.shape[1])
    for s in distinct:
        if not isinstance(s, GradientScore):
            got.update(s.measure(at))
    got["loss"] = per_sample_loss(at.output.detach(), y, task)
    return got


def scores(model: nn.Module, data: Data, *, method: str = "exact", task: str = "classification",
           batch_size: int = 256, eps: Optional[float] = None) -> np.ndarray:
    """One per-sample score of `data` under `model`, (N,) numpy, in data's order.

    `method` is one of SCORES (default "exact", the DoCL score a_i = g_i · ḡ computed exactly in two
    passes); every other option as in `sample_scores`, which computes several at once.
    """
    if method not in SCORES:
        raise ValueError(f"unknown method {method!r}: choose from {', '.join(SCORES)}")
    return sample_scores(model, data, names=[method], task=task, batch_size=batch_size, eps=eps)[method]


def features(model: nn.Module, data: Data, *, layer: Optional[Union[str, nn.Module]] = None,
             batch_size: int = 256) -> np.ndarray:
    """Embeddings of `data` under `model`, (N, D) numpy, in data's order (labels, if given, are unused).

    layer=None: the model's own `features(x)` when it has one (docl's models do), else the input of
    its last nn.Linear (the penultimate representation), else its outputs. A module name (as in
    `model.named_modules()`) or a module: that module's output, flattened per sample.
    """
    _check_batch(batch_size)
    device, dtype = _model_device_dtype(model)
    target = layer
    if isinstance(layer, str):
        found = dict(model.named_modules())
        if layer not in found:
            raise ValueError(f"model has no module {layer!r}: choose one of {', '.join(n for n in found if n)[:300]}")
        target = found[layer]
    use_features = target is None and callable(getattr(model, "features", None))
    take_input = False
    if target is None and not use_features:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if linears:
            target, take_input = linears[-1], True
    captured: list[torch.Tensor] = []

    def hook(_m, inputs, output):
        captured.append((inputs[0] if take_input else output).detach())

    handle = target.register_forward_hook(hook) if target is not None else None
    chunks = []
    try:
        with eval_mode(model), torch.no_grad():
            for x, _ in _batches(data, batch_size, device, dtype, need_labels=False):
                captured.clear()
                out = model.features(x) if use_features else model(x)
                z = captured[-1] if target is not None else out
                if target is not None and not captured:
                    raise ValueError("the chosen layer did not run in the model's forward: pick another layer")
                chunks.append(z.reshape(len(x), -1).float().cpu())
    finally:
        if handle is not None:
            handle.remove()
    if not chunks:
        raise ValueError("data is empty: pass at least one sample")
    return torch.cat(chunks).numpy()


# ----------------------------------------------------------------------------- selection

def select(scores: Any, *, k: Union[int, float], rule: str = "top", largest: bool = True,
           features: Any = None, lam: float = 1.0, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """Choose k samples by their scores. → (k,) int64 indices into scores, in the rule's order.

    Parameters
    ----------
    scores : (N,) array or tensor
        One finite value per sample (e.g. `scores(model, data)`).
    k : int or float
        How many to keep: an int in [1, N], or a fraction in (0, 1] of N (rounded, at least 1).
    rule : str
        "top": the k largest (best first; ties to the lower index).
        "draw": k draws without replacement with p_i ∝ exp(s_i / temperature) (Gumbel top-k), the
        weighted draw of DoCL's recipe; seeded.
        "modular": DoCL's recipe's prune, the top k of s̃_i + lam · (½ + c_i / 2N) with s̃ the scores
        min-max scaled to [0, 1] and c_i the centrality of sample i's features (needs features).
        "facility": maximise (1/k) Σ_S s̃_i + lam · F̄(S), facility location over cosine similarity of
        the features (stochastic greedy, seeded; needs features): high scores that also cover the data.
    largest : bool
        True: a large score is wanted (DoCL's a, EL2N, loss); False: a small one (margin, AUM).
    features : (N, D) array or tensor, optional
        Embeddings for "modular" and "facility" (e.g. `features(model, data)`).
    lam : float ≥ 0
        Weight of the diversity term (both terms lie in [0, 1], so lam = 1 weighs them equally).
    temperature : float > 0
        Of "draw".
    seed : int
        Of "draw" and "facility".
    """
    from . import selection
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}: choose from {', '.join(RULES)}")
    s = _tensor(np.asarray(scores) if not isinstance(scores, torch.Tensor) else scores, "scores")
    if s.ndim != 1 or not len(s):
        raise ValueError(f"scores must be a non-empty 1-D array (N,), got shape {tuple(s.shape)}")
    s = s.detach().cpu().to(torch.float64)
    if not bool(torch.isfinite(s).all()):
        bad = int(torch.nonzero(~torch.isfinite(s))[0])
        raise ValueError(f"scores[{bad}] is {float(s[bad])}: every score must be finite (drop or fill those samples)")
    n = len(s)
    if isinstance(k, float) and not isinstance(k, bool):
        if not 0 < k <= 1:
            raise ValueError(f"a fractional k must lie in (0, 1], got {k}")
        k = max(1, int(round(k * n)))
    k = selection.check_k(k, n)
    w = s if largest else -s
    if rule == "top":
        idx = selection.top_k(w, k)
    elif rule == "draw":
        idx = selection.weighted_sample(w, k, torch.Generator().manual_seed(int(seed)), temperature)
    else:
        if features is None:
            raise ValueError(f"rule {rule!r} needs features (N, D): pass features=features(model, data)")
        x = _tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features, "features")
        x = x.detach().cpu()
        x = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
        if x.ndim != 2 or len(x) != n:
            raise ValueError(f"features must have shape ({n}, D), one row per score; got {tuple(x.shape)}")
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(f"lam must be a finite number ≥ 0, got {lam}")
        if rule == "modular":
            idx = selection.modular_select(w.to(x.dtype), x, k, lam)
        else:
            idx = selection.maximize_facility(w.to(x.dtype), x, k, lam, method="stochastic",
                                              generator=torch.Generator().manual_seed(int(seed)))
    return idx.cpu().numpy().astype(np.int64)


__all__ = ["scores", "sample_scores", "features", "select", "SCORES", "RULES"]
