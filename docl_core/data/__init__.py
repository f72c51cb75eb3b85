"""Datasets: built-in toy sets, MNIST-1D, a user's arrays, local CIFAR-10 and Fashion-MNIST folders.

`load_dataset(name_or_path, seed, label_noise)` returns a `Dataset`: train/val/test tensors
(features standardised with train statistics), the label-noise record, each sample's row in its
source (`source_row`, so a run's samples map back to the user's file), and `frame()`, the
contents of a run's dataset.parquet. Everything is offline and deterministic in `seed`.

Reading user files never executes code from them: `.npz` is read with allow_pickle=False,
and CIFAR-10's pickled batches go through `RestrictedUnpickler`, which only rebuilds numpy
arrays. Any bad input ends in a one-line `ValueError` that names the problem and the fix.

One module per concern; every name is importable from `docl_core.data` as before:
    builtin     the built-in sets (digits, moons, blobs, sine, MNIST-1D)
    files       a user's .npz, .csv, CIFAR-10 and Fashion-MNIST files, read without executing them
    source      raw arrays (`_Source`) and the checks every loader shares (features, labels, targets)
    splits      stratified hold-outs and caps, label flips and outliers, split sizes, standardising
    thumbnails  PNG thumbnails of images and signals
This module: `Dataset`, `load_dataset` (detect → read → label → cap → split → noise → scale) and
`check_dataset`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch

from ..store import DATASET_COLUMNS
from .builtin import (_BUILTINS, DATASET_DESCRIPTIONS, DATASETS, MNIST1D_100K_POOL, MNIST1D_100K_SAMPLES, MNIST1D_SEED,  # noqa: F401
                      _mnist1d_arrays)
from .files import (_READERS, CIFAR10_CLASSES, FASHION_MNIST_CLASSES, PATH_HELP,  # noqa: F401
                    ForbiddenPickle, RestrictedUnpickler, _check_label_column, _cifar_folder, _idx_file, read_idx,
                    restricted_load, source_digest)
from .source import (MAX_CLASSES, TASKS, _check_features, _check_fraction, _labelled,  # noqa: F401
                     _positive_int, _Source, _why)
from .splits import (_STREAM_LIMIT, _STREAM_NOISE, _STREAM_OUTLIERS, _STREAM_TEST,  # noqa: F401
                     _STREAM_TEST_LIMIT, _STREAM_VAL, MIN_EVAL, _cap, _check_split_sizes, _holdout, _standardise,
                     add_outliers, flip_labels, holdout_count, stratified_holdout)
from .thumbnails import png_thumbnails, signal_thumbnails  # noqa: F401

KINDS = ("image", "signal", "points2d", "curve1d", "tabular")  # signal: 1-D sequences (N, c, L)


@dataclass(repr=False, eq=False)  # tensors make field-wise == ambiguous: compare by identity
class Dataset:
    """A dataset split into train / val / test, ready for a model.

    x tensors are float32 (N, *input_shape), standardised with train statistics; y is int64 (N,)
    for classification and float32 (N, C) for regression.
    """

    name: str
    task: str                    # "classification" | "regression"
    kind: str                    # "image" | "signal" | "points2d" | "curve1d" | "tabular"
    x_train: torch.Tensor        # (N, *input_shape) float32
    y_train: torch.Tensor        # (N,) int64 (given, possibly noisy) or (N, C) float32
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_outputs: int             # classes, or target dimension
    noisy: torch.Tensor          # (N,) bool: the train label was corrupted (flipped, or an outlier)
    clean_y_train: torch.Tensor  # train labels before noise, like y_train
    class_names: Optional[list[str]]
    input_shape: tuple           # per sample, e.g. (1, 8, 8), (1, 40) or (2,)
    x_mean: Optional[torch.Tensor] = None  # train statistics, broadcastable to input_shape:
    x_std: Optional[torch.Tensor] = None   # original x = x · x_std + x_mean
    digest: Optional[str] = None           # a user's file or folder: hash of the arrays read (`source_digest`)
    # Per sample in sample_id order (train, then val, then test); None when not recorded:
    source_row: Optional[np.ndarray] = None      # (N_all,) int64: the sample's row in its source (load_dataset)
    raw_features: Optional[np.ndarray] = None    # (N_all, d) float64, tabular only: the features as read, unscaled
    feature_names: Optional[list[str]] = None    # d names for raw_features: the CSV header, or f0, f1, ... (npz)

    @property
    def num_train(self) -> int:
        return len(self.x_train)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, {self.task}, {self.kind}, input {self.input_shape}, "
                f"outputs {self.num_outputs}, train/val/test {len(self.x_train)}/{len(self.x_val)}/"
                f"{len(self.x_test)}, noisy {int(self.noisy.sum())})")

    def original_x(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the standardisation: features (B, *input_shape) in the source's own units."""
        if self.x_mean is None or self.x_std is None:
            return x
        return x * self.x_std.to(x.device) + self.x_mean.to(x.device)

    def frame(self, thumbnails: bool = True) -> pd.DataFrame:
        """One row per sample: the contents of a run's dataset.parquet.

        Columns: sample_id (train 0..N−1, then val, then test), split, label (given; −1 for
        regression), clean_label, noisy, source_row (int64, the sample's row in its source: see
        load_dataset; absent when not recorded), and by kind: x0, x1 (points2d), x0, target
        (curve1d), thumbnail (PNG bytes, image and signal; about 0.2 KB for a digit or a signal's
        line plot, 2–3 KB for a CIFAR image and 0.3–1 ms each to encode, so thumbnails=False skips
        them for very large sets), the feature values as read (tabular: one float64 column per
        feature, named after the CSV header or f0, f1, ... for an .npz; a name that clashes with a
        column above gets " (feature)" appended). Images never get pixel columns.
        """
        xs = [t.detach().cpu() for t in (self.x_train, self.x_val, self.x_test)]
        ys = [t.detach().cpu() for t in (self.y_train, self.y_val, self.y_test)]
        sizes = [len(x) for x in xs]
        n = sum(sizes)
        split = np.repeat(np.array(["train", "val", "test"], dtype=object), sizes)
        noisy = np.zeros(n, dtype=bool)
        noisy[:sizes[0]] = self.noisy.cpu().numpy()
        if self.task == "classification":
            label = torch.cat(ys).numpy().astype(np.int64)
            clean = torch.cat([self.clean_y_train.cpu(), ys[1], ys[2]]).numpy().astype(np.int64)
        else:
            label = clean = np.full(n, -1, dtype=np.int64)
        frame = pd.DataFrame({"sample_id": np.arange(n, dtype=np.int64), "split": split,
                              "label": label, "clean_label": clean, "noisy": noisy})
        if self.source_row is not None:
            frame["source_row"] = np.asarray(self.source_row, dtype=np.int64)
        wanted = ("points2d", "curve1d", "image", "signal") if thumbnails else ("points2d", "curve1d")
        x = self.original_x(torch.cat(xs)).numpy() if self.kind in wanted else None
        if self.kind == "points2d":
            frame["x0"], frame["x1"] = x[:, 0].astype(np.float64), x[:, 1].astype(np.float64)
        elif self.kind == "curve1d":
            frame["x0"] = x[:, 0].astype(np.float64)
            frame["target"] = torch.cat(ys)[:, 0].numpy().astype(np.float64)
        elif self.kind == "image" and thumbnails:
            frame["thumbnail"] = png_thumbnails(x)
        elif self.kind == "signal" and thumbnails:
            frame["thumbnail"] = signal_thumbnails(x)
        elif self.kind == "tabular" and self.raw_features is not None:
            names = _feature_column_names(self.feature_names or [f"f{j}" for j in range(self.raw_features.shape[1])])
            features = pd.DataFrame(np.asarray(self.raw_features, dtype=np.float64), columns=names)
            frame = pd.concat([frame, features], axis=1)
        return frame


def _feature_column_names(names: list) -> list[str]:
    """dataset.parquet column names for features: the file's own, as text; one that clashes with a
    column of the frame's own (DATASET_COLUMNS) or an earlier feature gets " (feature)" appended."""
    taken, out = set(DATASET_COLUMNS), []
    for name in map(str, names):
        while name in taken:
            name += " (feature)"
        taken.add(name)
        out.append(name)
    return out


# Options each source understands, besides the generic ones (limit, test_limit).
_OPTIONS = {"digits": set(), "moons": {"n_samples", "noise", "data_seed"},
            "blobs": {"n_samples", "noise", "data_seed"},
            "sine": {"n_samples", "noise", "data_seed", "outliers"}, "mnist1d": {"data_seed", "n_samples"},
            "mnist1d-100k": {"data_seed"},
            "npz": {"task"}, "csv": {"task", "label_column"}, "cifar": set(), "idx": set()}
_GENERIC_OPTIONS = {"limit", "test_limit"}


def check_dataset(name_or_path, label_column: Optional[str] = None) -> str:
    """Whether `load_dataset` can find this dataset, without loading it: a built-in name or an
    existing path of a kind docl reads and, for a .csv, a header with the label column.
    Returns the source type ("digits", ..., "npz", "csv", "cifar", "idx"); ValueError otherwise.
    Cheap (reads a .csv's header only), so a form can check as the user types."""
    source_type, path = _detect(name_or_path)
    if label_column and source_type != "csv":
        raise ValueError(f"a label column applies to .csv datasets only, and {name_or_path} is not one: "
                         "leave it empty")
    if source_type == "csv":
        try:
            header = pd.read_csv(path, nrows=0).columns
        except pd.errors.EmptyDataError:
            raise ValueError(f"{path.name} is empty: write a header row and at least one sample") from None
        except Exception as e:  # parser, encoding and OS errors
            raise ValueError(f"cannot read {path.name} as CSV ({_why(e)}): save it as comma-separated "
                             "text with a header row") from None
        _check_label_column(path, header, label_column)
    return source_type


def _detect(name_or_path) -> tuple[str, Optional[Path]]:
    """What kind of source this is: a built-in name, "npz", "csv", "cifar" or "idx" (with its path)."""
    if not isinstance(name_or_path, (str, Path)) or str(name_or_path).strip() == "":
        raise ValueError(f"dataset must be a name ({', '.join(DATASETS)}) or {PATH_HELP}; "
                         f"got {name_or_path!r}")
    key = str(name_or_path)
    if key in _BUILTINS:
        return key, None
    path = Path(key).expanduser()
    if not path.exists():
        if path.suffix or "/" in key or "\\" in key:
            raise ValueError(f"no such file or folder: {key}: check the path")
        raise ValueError(f"unknown dataset {key!r}: use one of {', '.join(DATASETS)}, or {PATH_HELP}")
    if path.is_dir():
        if _cifar_folder(path) is not None:
            return "cifar", path
        if _idx_file(path, "train-images", 3) is not None or _idx_file(path, "train-labels", 1) is not None:
            return "idx", path
        raise ValueError(f"folder {key} holds neither CIFAR-10 python batches (data_batch_1.., test_batch) "
                         "nor Fashion-MNIST idx files (train-images-idx3-ubyte, ...): point at one of those")
    suffix = path.suffix.lower()
    if suffix in (".npz", ".csv"):
        return suffix[1:], path
    raise ValueError(f"unsupported file type {path.suffix or '(none)'} for {path.name}: use .npz or .csv, "
                     "or a CIFAR-10 / Fashion-MNIST folder")


def _read(source_type: str, path: Optional[Path], options: dict) -> _Source:
    unknown = set(options) - _OPTIONS[source_type] - _GENERIC_OPTIONS
    if unknown:
        allowed = sorted(_OPTIONS[source_type] | _GENERIC_OPTIONS)
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))} for {source_type} data: "
                         f"use {', '.join(allowed)}")
    if path is None:
        return _BUILTINS[source_type](options)
    try:
        return _READERS[source_type](path, options)
    except OSError as e:  # permissions, a file vanishing mid-read, a full disk cache, ...
        raise ValueError(f"cannot read {path}: {_why(e)}: check that the file is readable") from None


def _check_split_options(seed, label_noise, val_fraction, test_fraction) -> tuple[float, float, float]:
    """load_dataset's seed and fractions checked: → (label_noise, val_fraction, test_fraction) as floats."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    label_noise = _check_fraction(label_noise, "label_noise")
    val_fraction = _check_fraction(val_fraction, "val_fraction")
    test_fraction = _check_fraction(test_fraction, "test_fraction", low_open=True)
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves no "
                         "training data: keep their sum below 1")
    return label_noise, val_fraction, test_fraction


def _cap_pools(pool: tuple, test: tuple, classes: bool, seed: int, options: dict) -> tuple[tuple, tuple]:
    """(x, y, rows) of the pool and of the source's own test set (all None without one), capped to
    options' limit and test_limit, stratified so classes keep their shares. Done before the
    conversion to float32 (a full CIFAR-10 in float32 is 600 MB)."""
    x, y, rows = pool
    if options.get("limit") is not None:
        keep = _cap(y, classes, _positive_int(options["limit"], "limit"), [seed, _STREAM_LIMIT])
        if keep is not None:
            pool = (x[keep], y[keep], rows[keep])
    x_test, y_test, rows_test = test
    if x_test is not None and options.get("test_limit") is not None:
        keep = _cap(y_test, classes, _positive_int(options["test_limit"], "test_limit"), [seed, _STREAM_TEST_LIMIT])
        if keep is not None:
            test = (x_test[keep], y_test[keep], rows_test[keep])
    return pool, test


def _corrupt(y_train: np.ndarray, num_outputs: int, label_noise: float, outliers: float,
             seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flipped labels (classification) or outlier targets (regression), train only, so validation and
    test measure the clean curve: → (y_train as trained on, (N,) bool mask of the corrupted samples)."""
    noisy = np.zeros(len(y_train), dtype=bool)
    if label_noise > 0:
        y_train, noisy = flip_labels(y_train, num_outputs, label_noise, np.random.default_rng([seed, _STREAM_NOISE]))
    if outliers > 0:
        y_train, noisy = add_outliers(y_train, outliers, np.random.default_rng([seed, _STREAM_OUTLIERS]))
    return y_train, noisy


def load_dataset(name_or_path: str, seed: int = 0, label_noise: float = 0.0, val_fraction: float = 0.15,
                 test_fraction: float = 0.2, **options) -> Dataset:
    """Load a built-in dataset (see DATASETS) or a user's file/folder, split and standardise it.

    name_or_path: a built-in name, a .npz (x, y, optional x_test, y_test), a .csv with a label
        column, a CIFAR-10 python-batch folder or a Fashion-MNIST idx folder.
    seed: drives the splits and the label noise (built-in points are drawn with data_seed=0).
    label_noise: fraction of train labels flipped to another class (classification only).
    val_fraction: share of the training pool held out for validation (stratified).
    test_fraction: share held out for testing when the source has no test set of its own.
    options: n_samples, noise, data_seed (moons, blobs, sine; data_seed also for mnist1d, whose
        default 42 is the benchmark's own generator seed, and n_samples, the signals it draws in
        all, 80 % of them train: "mnist1d-100k" is n_samples = 150,000 with its pool cut to 117,647: 100,000 train); outliers (sine, fraction of
        train targets replaced by outliers, marked noisy; default 0.05); task, label_column
        (.npz/.csv); limit (cap on samples read from the training pool, stratified) and
        test_limit (cap on a given test set), for any source.
    Raises ValueError with a one-line message for any bad input.

    Sample ids and source rows. The pool (the source's samples, or its training samples when it
    has its own test set) is first capped to `limit` (stratified), then split: a test set of
    round(test_fraction · n) samples (unless the source has its own), then a validation set of
    round(val_fraction · rest); both held out stratified by label (regression: uniformly) with
    generators seeded by `seed`, so each class gives up close to that fraction. Each split keeps
    its samples in source order, and sample_id counts train 0..N−1, then val, then test.
    `Dataset.source_row` records each sample's row in its source (each loader's docstring says
    what a row is): train sample i is the i-th training row of the file, not row i.
    """
    label_noise, val_fraction, test_fraction = _check_split_options(seed, label_noise, val_fraction, test_fraction)
    source_type, path = _detect(name_or_path)
    src = _read(source_type, path, options)
    where = src.origin or src.name
    x, y, x_test, y_test, task, num_outputs, class_names = _labelled(src, where)
    digest = (source_digest(src.x, src.y, src.x_test, src.y_test,
                            None if src.class_names is None else np.asarray(src.class_names, dtype=object))
              if path is not None else None)                             # built-ins: their code defines them
    if task == "regression" and label_noise > 0:
        raise ValueError(f"label_noise applies to classification only; {where} is a regression set: "
                         "use label_noise=0")
    classes = task == "classification"

    # Each sample's row in its source, carried through every cap and split below; tabular data
    # also keeps its features as read (x_read, x_test_read), unscaled, for dataset.parquet.
    rows = np.arange(len(x))                                        # (n,) the pool's rows
    rows_test = None if x_test is None else np.arange(len(x_test))  # the source's own test set
    x_read, x_test_read = x, x_test

    (x, y, rows), (x_test, y_test, rows_test) = _cap_pools((x, y, rows), (x_test, y_test, rows_test), classes,
                                                          seed, options)
    x = _check_features(x, f"x in {where}")
    own_test = x_test is not None
    if x_test is None:
        rest, held = _holdout(y, classes, test_fraction, [seed, _STREAM_TEST])
        x, y, rows, x_test, y_test, rows_test = x[rest], y[rest], rows[rest], x[held], y[held], rows[held]
    else:
        x_test = _check_features(x_test, f"x_test in {where}")
    rest, held = _holdout(y, classes, val_fraction, [seed, _STREAM_VAL])
    x_train, y_train, rows_train, x_val, y_val, rows_val = x[rest], y[rest], rows[rest], x[held], y[held], rows[held]
    _check_split_sizes((len(x_train), len(x_val), len(x_test)), num_outputs if classes else None,
                       val_fraction, test_fraction, own_test, where)
    if classes and len(np.unique(y_train)) < 2:
        raise ValueError(f"{where}: the training split has fewer than 2 classes: "
                         "provide more samples per class")

    clean = y_train
    y_train, noisy = _corrupt(y_train, num_outputs, label_noise, src.outliers, seed)
    mean, std = _standardise(x_train, src.kind)

    def as_x(a: np.ndarray) -> torch.Tensor:  # a is a fresh float32 copy (fancy indexing): scale in place
        a -= mean
        a /= std
        return torch.from_numpy(np.ascontiguousarray(a))

    as_y = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    raw_features = feature_names = None
    if src.kind == "tabular":
        test_read = x_test_read if own_test else x_read
        raw_features = np.concatenate([x_read[rows_train], x_read[rows_val], test_read[rows_test]]).astype(np.float64)
        feature_names = src.feature_names or [f"f{j}" for j in range(raw_features.shape[1])]
    return Dataset(
        name=src.name, task=task, kind=src.kind,
        x_train=as_x(x_train), y_train=as_y(y_train), x_val=as_x(x_val), y_val=as_y(y_val),
        x_test=as_x(x_test), y_test=as_y(y_test), num_outputs=int(num_outputs),
        noisy=torch.from_numpy(noisy), clean_y_train=as_y(clean), class_names=class_names,
        input_shape=tuple(int(s) for s in x_train.shape[1:]),
        x_mean=torch.from_numpy(mean), x_std=torch.from_numpy(std), digest=digest,
        source_row=np.concatenate([rows_train, rows_val, rows_test]).astype(np.int64),
        raw_features=raw_features, feature_names=feature_names,
    )
