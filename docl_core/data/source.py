"""Raw arrays as a source gives them (`_Source`) and the checks every loader shares: numeric
features, class labels mapped to ids 0..K−1, regression targets, and one-line messages for bad input."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

TASKS = ("classification", "regression")
MAX_CLASSES = 1000  # more distinct labels than this are almost surely targets, not classes


@dataclass
class _Source:
    """Raw arrays as a source provides them, before splitting and standardisation."""

    name: str
    kind: str
    x: np.ndarray                      # (N, *input_shape)
    y: np.ndarray                      # (N,) labels (any integer-like or string) or (N,)/(N, C) targets
    task: Optional[str] = None         # None: infer from y's dtype
    x_test: Optional[np.ndarray] = None
    y_test: Optional[np.ndarray] = None
    class_names: Optional[list[str]] = None  # names indexed by the raw integer label
    origin: str = ""                   # how error messages name the source (a file name)
    outliers: float = 0.0              # regression: fraction of train targets to corrupt (marked noisy)
    feature_names: Optional[list[str]] = None  # tabular: one name per feature (a CSV's header)


def _why(e: Exception) -> str:
    """A short, single-line description of a third-party exception."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:120]}" if text else type(e).__name__


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _nonnegative(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a non-negative number, got {value!r}")
    return float(value)


def _data_seed(options: dict) -> int:
    seed = options.get("data_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"data_seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_dtype(x: np.ndarray, where: str) -> None:
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{where} has dtype {x.dtype}: features must be numbers (int, float or bool)")
    if x.ndim == 0:
        raise ValueError(f"{where} is a single number: pass an array with one row per sample")
    if len(x) == 0 or x[0].size == 0:
        raise ValueError(f"{where} is empty: provide at least one sample with at least one feature")


def _check_features(x: np.ndarray, where: str) -> np.ndarray:
    """float32 copy of x; ValueError when empty or not finite."""
    _check_dtype(x, where)
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(1).sum())
        raise ValueError(f"{where} has NaN or inf in {bad} sample(s) (or values beyond float32): "
                         "clean or impute the features first")
    return x


def _check_fraction(value, what: str, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(value) or value < 0 or value >= 1 or (low_open and value == 0):
        interval = "(0, 1)" if low_open else "[0, 1)"
        raise ValueError(f"{what} must be a fraction in {interval}, got {value!r}")
    return float(value)


def _resolve_task(y: np.ndarray, task: Optional[str]) -> str:
    if task is not None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}: use 'classification' or 'regression'")
        return task
    # Integers, booleans and text are classes; floats are regression targets.
    return "regression" if y.dtype.kind == "f" else "classification"


def _class_ids(ys: list[np.ndarray], names: Optional[list[str]],
               where: str) -> tuple[list[np.ndarray], list[str]]:
    """Map raw labels (ints ≥ 0, integer-valued floats, bools or text) to ids 0..K−1."""
    for y in ys:
        if y.ndim != 1:
            raise ValueError(f"{where}: class labels must have shape (N,), got {y.shape}: "
                             "use task='regression' for target vectors")
        if y.dtype.kind == "f":
            if not np.isfinite(y).all() or (y != np.round(y)).any():
                raise ValueError(f"{where}: labels are non-integer floats, not class ids: "
                                 "pass task='regression' or round them to integers")
        elif y.dtype.kind not in "biuUS":
            raise ValueError(f"{where}: labels have dtype {y.dtype}: use integer class ids or text")
        if y.dtype.kind in "iuf" and (y < 0).any():
            raise ValueError(f"{where}: negative labels (min {y.min():g}): class ids must be 0, 1, 2, ...")
    both = np.concatenate(ys)
    if both.dtype.kind == "f":
        both = both.astype(np.int64)
    values, ids = np.unique(both, return_inverse=True)
    if len(values) < 2:
        raise ValueError(f"{where}: only one class ({values[0]}) in the labels: "
                         "classification needs ≥ 2 classes")
    if len(values) > MAX_CLASSES or (len(values) > 20 and 2 * len(values) > len(both)):
        raise ValueError(f"{where}: {len(values)} distinct labels for {len(both)} samples do not look like "
                         "classes: pass task='regression' for numeric targets")
    if values.dtype.kind in "iub" and names is not None and int(values.max()) < len(names):
        class_names = [names[int(v)] for v in values]
    else:
        class_names = [str(v) for v in values]
    out, start = [], 0
    for y in ys:
        out.append(ids[start:start + len(y)].astype(np.int64))
        start += len(y)
    return out, class_names


def _targets(y: np.ndarray, where: str) -> np.ndarray:
    if y.dtype.kind not in "biuf":
        raise ValueError(f"{where}: regression targets have dtype {y.dtype}: use numbers")
    y = y.astype(np.float32)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"{where}: regression targets must be (N,) or (N, C), got {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError(f"{where}: targets contain NaN or inf: clean them first")
    return y


def _labelled(src: _Source, where: str):
    """Check lengths and labels: (x, y, x_test, y_test, task, num_outputs, class_names).

    Classification labels become ids 0..K−1 (int64, (N,)); regression targets float32 (N, C).
    x stays in the source's dtype (checked for a numeric dtype and at least one sample).
    """
    x, y = np.asarray(src.x), np.asarray(src.y)
    _check_dtype(x, f"x in {where}")
    if y.ndim == 0 or len(y) != len(x):
        raise ValueError(f"{where}: x has {len(x)} samples but y has {y.size}: pass one label per sample")
    x_test = y_test = None
    if src.x_test is not None:
        x_test, y_test = np.asarray(src.x_test), np.asarray(src.y_test)
        _check_dtype(x_test, f"x_test in {where}")
        if y_test.ndim == 0 or len(y_test) != len(x_test):
            raise ValueError(f"{where}: x_test has {len(x_test)} samples but y_test has {y_test.size}: "
                             "pass one label per test sample")
    task = _resolve_task(y, src.task)
    if task == "classification":
        ids, class_names = _class_ids([y] if y_test is None else [y, y_test], src.class_names, where)
        y, y_test = ids[0], (ids[1] if y_test is not None else None)
        if y_test is not None:  # a class no training sample has cannot be learned: out of range
            unseen = np.setdiff1d(y_test, y)
            if len(unseen):
                shown = ", ".join(class_names[i] for i in unseen[:5])
                raise ValueError(f"{where}: y_test has class(es) {shown} that no training label has: "
                                 "drop those test samples or add training samples of those classes")
        return x, y, x_test, y_test, task, len(class_names), class_names
    y = _targets(y, where)
    if y_test is not None:
        y_test = _targets(y_test, f"{where} (y_test)")
        if y_test.shape[1] != y.shape[1]:
            raise ValueError(f"{where}: y has {y.shape[1]} target(s) per sample but y_test has "
                             f"{y_test.shape[1]}: make them match")
    return x, y, x_test, y_test, task, y.shape[1], None
