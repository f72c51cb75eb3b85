"""Splits and label noise: stratified hold-outs and caps, label flips and regression outliers,
the split sizes a pool gives and the minimum sizes they must reach, and train statistics for
standardising. Each purpose draws from its own random stream (`_STREAM_*`)."""
from __future__ import annotations

import itertools
from typing import Optional

import numpy as np

# Independent random streams per purpose, so changing one step never reshuffles another.
_STREAM_TEST, _STREAM_VAL, _STREAM_NOISE, _STREAM_LIMIT, _STREAM_OUTLIERS, _STREAM_TEST_LIMIT = range(6)


def holdout_count(n: int, fraction: float) -> int:
    """How many of n samples a held-out fraction takes: round(fraction · n), at least one when > 0."""
    return 0 if fraction <= 0 else max(1, int(round(fraction * n)))


def stratified_holdout(labels: Optional[np.ndarray], n: int, fraction: float,
                       rng: np.random.Generator) -> np.ndarray:
    """Indices of round(fraction · n) held-out samples (at least one when fraction > 0).

    Stratified when labels are given: each class is shuffled, its j-th member gets rank
    (j + ½)/n_c, and the smallest ranks are held out, so every class gives up close to
    `fraction` of its members and the total is exact. Returns sorted indices.
    """
    m = holdout_count(n, fraction)
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    if labels is None:
        return np.sort(rng.permutation(n)[:m])
    rank = np.empty(n)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        rank[members] = (np.arange(len(members)) + 0.5) / len(members)
    tiebreak = rng.permutation(n)  # classes of equal size tie on rank: break ties at random
    order = np.lexsort((tiebreak, rank))
    return np.sort(order[:m])


def _complement(n: int, held: np.ndarray) -> np.ndarray:
    keep = np.ones(n, dtype=bool)
    keep[held] = False
    return np.flatnonzero(keep)


def flip_labels(y: np.ndarray, num_classes: int, fraction: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly round(fraction · N) labels, each to a different class chosen uniformly.

    Returns (noisy labels, flipped mask), both (N,).
    """
    n = len(y)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, size=int(round(fraction * n)), replace=False)] = True
    y = y.copy()
    # Adding 1..K−1 modulo K lands on every other class with equal chance, never on y itself.
    y[flipped] = (y[flipped] + rng.integers(1, num_classes, size=int(flipped.sum()))) % num_classes
    return y, flipped


def add_outliers(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shift exactly round(fraction · N) regression targets (N, C) by ±(1..2): (targets, outlier mask)."""
    n = len(y)
    hit = np.zeros(n, dtype=bool)
    hit[rng.choice(n, size=int(round(fraction * n)), replace=False)] = True
    y = y.copy()
    size = (int(hit.sum()), y.shape[1])
    shift = rng.choice([-1.0, 1.0], size=size) * rng.uniform(1.0, 2.0, size)  # sign × magnitude
    y[hit] += shift.astype(y.dtype)
    return y, hit


def _standardise(x_train: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Train mean and std, per feature (tabular, points, curves) or per channel (images, signals:
    one scale along the sequence keeps a convolution's view the same at every position)."""
    axes = {"image": (0, 2, 3), "signal": (0, 2)}.get(kind, (0,))
    mean = x_train.mean(axis=axes, keepdims=True, dtype=np.float64)[0]
    std = x_train.std(axis=axes, keepdims=True, dtype=np.float64)[0]
    std[std < 1e-8] = 1.0  # constant features stay constant (zero) instead of dividing by zero
    return mean.astype(np.float32), std.astype(np.float32)


MIN_EVAL = 2  # samples the validation and test splits need at least: one scores only 0 % or 100 %


def _split_sizes(n: int, val_fraction: float, test_fraction: float, own_test: Optional[int]) -> tuple[int, int, int]:
    """(train, val, test) sizes the splits give n samples (the pool, when the source has its own
    test set of own_test samples): the counts stratified_holdout takes."""
    test = own_test if own_test is not None else holdout_count(n, test_fraction)
    val = holdout_count(n - (0 if own_test is not None else test), val_fraction)
    return n - (0 if own_test is not None else test) - val, val, test


def _check_split_sizes(sizes: tuple[int, int, int], num_classes: Optional[int], val_fraction: float,
                       test_fraction: float, own_test: bool, where: str) -> None:
    """Refuse splits too small to mean anything: training needs a sample per class (K), validation
    and test MIN_EVAL each (validation none when val_fraction is 0)."""
    need_train = max(MIN_EVAL, num_classes or 0)
    ok = lambda tr, va, te: (tr >= need_train and te >= MIN_EVAL  # noqa: E731
                             and (va >= MIN_EVAL or val_fraction == 0))
    train, val, test = sizes
    if ok(train, val, test):
        return
    n = train + val + (0 if own_test else test)
    if own_test and test < MIN_EVAL:
        fix = f"give the test set at least {MIN_EVAL} samples"
    else:  # the smallest pool whose splits all reach their minimum (split sizes grow with n)
        smallest = next(m for m in itertools.count(n)
                        if ok(*_split_sizes(m, val_fraction, test_fraction, test if own_test else None)))
        fix = (f"with val_fraction {val_fraction:g} and test_fraction {test_fraction:g} that takes at least "
               f"{smallest} samples{' besides the test set' if own_test else ''}: provide more data")
    per_class = " (one per class)" if num_classes else ""
    raise ValueError(f"{where} has too few samples ({n}{f' + {test} test' if own_test else ''}) to split "
                     f"into train, validation and test ({train}/{val}/{test}): training needs at least "
                     f"{need_train}{per_class}, validation and test at least {MIN_EVAL} each; {fix}")


def _cap(y: np.ndarray, classes: bool, limit: int, entropy) -> Optional[np.ndarray]:
    """Sorted indices of at most `limit` of the samples labelled y, drawn stratified by class (or
    uniformly for regression); None when all len(y) fit (no copy needed)."""
    if limit >= len(y):
        return None
    return stratified_holdout(y if classes else None, len(y), limit / len(y), np.random.default_rng(entropy))


def _holdout(y: np.ndarray, classes: bool, fraction: float, entropy) -> tuple[np.ndarray, np.ndarray]:
    """Split off a held-out fraction (stratified by class): sorted indices (rest, held)."""
    held = stratified_holdout(y if classes else None, len(y), fraction, np.random.default_rng(entropy))
    return _complement(len(y), held), held
