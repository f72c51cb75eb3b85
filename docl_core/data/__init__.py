"""Datasets: built-in toy sets, MNIST-1D, a user's arrays, local CIFAR-10 and Fashion-MNIST folders.

`load_dataset(name_or_path, seed, label_noise)` returns a `Dataset`: train/val/test tensors
(features standardised with train statistics), the label-noise record, each sample's row in its
source (`source_row`, so a run's samples map back to the user's file), and `frame()`, the
contents of a run's dataset.parquet. Everything is offline and deterministic in `seed`.

Reading user files never executes code from them: `.npz` is read with allow_pickle=False,
and CIFAR-10's pickled batches go through `RestrictedUnpickler`, which only rebuilds numpy
arrays. Any bad input ends in a one-line `ValueError` that names the problem and the fix.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import io
import itertools
import math
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch

from .store import DATASET_COLUMNS

TASKS = ("classification", "regression")
KINDS = ("image", "signal", "points2d", "curve1d", "tabular")  # signal: 1-D sequences (N, c, L)

# Built-in datasets, for CLI help and the app.
DATASET_DESCRIPTIONS = {
    "digits": "scikit-learn's 8×8 handwritten digits, 10 classes, 1797 images",
    "moons": "two interleaved half-moons in 2-D (noise 0.25), 2 classes, 1500 points",
    "blobs": "four overlapping Gaussian blobs in 2-D, 4 classes, 1500 points",
    "sine": "1-D regression y = sin(x) + heteroscedastic noise, 5% outliers in train, 1000 points",
    "mnist1d": "MNIST-1D (Greydanus 2020): procedurally generated 1-D digits, length-40 signals, "
               "10 classes, 4000 train / 1000 test",
}
DATASETS = tuple(DATASET_DESCRIPTIONS)
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
MAX_CLASSES = 1000  # more distinct labels than this are almost surely targets, not classes
PATH_HELP = ("a path to a .npz (x, y[, x_test, y_test]), a .csv with a label column, a CIFAR-10 "
             "python-batch folder or a Fashion-MNIST idx folder")

# Independent random streams per purpose, so changing one step never reshuffles another.
_STREAM_TEST, _STREAM_VAL, _STREAM_NOISE, _STREAM_LIMIT, _STREAM_OUTLIERS, _STREAM_TEST_LIMIT = range(6)


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


# ----------------------------------------------------------------------------- thumbnails


def png_thumbnails(images: np.ndarray, size: int = 32) -> list[bytes]:
    """PNG bytes per image (N, c, H, W): grayscale for c = 1, RGB for c = 3.

    Intensities are scaled by the range over all images (not per image, so contrast is
    comparable across the gallery); images smaller than `size` are upscaled by an integer
    factor with nearest-neighbour so pixels stay crisp.
    """
    from PIL import Image

    lo, hi = float(images.min()), float(images.max())
    pixels = np.clip((images - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if pixels.shape[1] not in (1, 3):  # other channel counts: show the first channel
        pixels = pixels[:, :1]
    pixels = pixels.transpose(0, 2, 3, 1)  # (N, H, W, c), PIL's layout
    factor = max(1, size // max(pixels.shape[1], pixels.shape[2]))
    if factor > 1:
        pixels = pixels.repeat(factor, axis=1).repeat(factor, axis=2)
    out = []
    for img in pixels:
        buf = io.BytesIO()
        Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def signal_thumbnails(signals: np.ndarray, size: int = 48) -> list[bytes]:
    """PNG bytes per 1-D signal (N, c, L) or (N, L): a dark line plot on white, size × size, grayscale.

    Only the first channel is drawn. The vertical range is shared by all signals (like
    png_thumbnails' intensity range, so amplitudes compare across the gallery): the 0.1–99.9 %
    quantiles of all values, so one extreme sample does not flatten the rest (values beyond are
    clipped to the edge). A light grey line marks zero. Drawn with numpy: each segment between
    neighbouring samples is sampled at `size` points, dense enough that steep ones leave no gaps.
    """
    from PIL import Image

    y = np.asarray(signals, dtype=np.float64).reshape(len(signals), -1, signals.shape[-1])[:, 0]  # (N, L)
    n, length = y.shape
    lo, hi = (float(v) for v in np.quantile(y, [0.001, 0.999]))
    margin = 2  # pixels kept free at each edge
    span = size - 1 - 2 * margin
    to_row = lambda v: margin + (hi - v) / max(hi - lo, 1e-12) * span  # high values at the top
    cols = margin + np.arange(length) / max(length - 1, 1) * span  # (L,)
    rows = np.clip(to_row(y), margin, size - 1 - margin)  # (N, L)
    s = np.linspace(0.0, 1.0, size)[:, None]  # (S, 1) positions along each segment
    seg_c = cols[:-1] + s * np.diff(cols)  # (S, L−1)
    seg_r = rows[:, None, :-1] + s * np.diff(rows, axis=1)[:, None, :]  # (N, S, L−1)
    r = np.rint(seg_r).astype(np.int64).reshape(n, -1)
    c = np.broadcast_to(np.rint(seg_c).astype(np.int64).reshape(-1), r.shape)
    pixels = np.full((n, size, size), 255, dtype=np.uint8)
    if lo < 0 < hi:
        pixels[:, int(round(to_row(0.0))), margin:size - margin] = 200
    pixels[np.arange(n)[:, None], r, c] = 0
    out = []
    for img in pixels:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


# ----------------------------------------------------------------------------- sources


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


def _digits(options: dict) -> _Source:
    """scikit-learn's digits; source row: the index in load_digits()'s arrays."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None] / 16.0  # (1797, 1, 8, 8), pixel values 0..16
    return _Source("digits", "image", x, bunch.target.astype(np.int64), "classification",
                   class_names=[str(c) for c in range(10)])


def _moons(options: dict) -> _Source:
    """Two half-moons; source row: the index in make_moons' output (data_seed fixes it)."""
    from sklearn.datasets import make_moons

    n = _positive_int(options.get("n_samples", 1500), "n_samples")
    noise = _nonnegative(options.get("noise", 0.25), "noise")
    # The points are drawn with data_seed, not seed: 'moons' is one fixed set, and seed varies
    # the splits and the label noise.
    x, y = make_moons(n, noise=noise, random_state=_data_seed(options))
    return _Source("moons", "points2d", x.astype(np.float32), y.astype(np.int64), "classification",
                   class_names=["upper", "lower"])


def _blobs(options: dict) -> _Source:
    """Four Gaussian blobs; source row: the index in make_blobs' output (data_seed fixes it)."""
    from sklearn.datasets import make_blobs

    n = _positive_int(options.get("n_samples", 1500), "n_samples")
    centers = np.array([[-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0], [2.0, 2.0]])
    std = _nonnegative(options.get("noise", 1.4), "noise")  # wide enough that neighbouring blobs overlap
    x, y = make_blobs(n, centers=centers, cluster_std=std, random_state=_data_seed(options))
    return _Source("blobs", "points2d", x.astype(np.float32), y.astype(np.int64), "classification",
                   class_names=[f"blob {c}" for c in range(4)])


def _sine(options: dict) -> _Source:
    """y = sin(x) + noise; source row: the index in the generated arrays (data_seed fixes them)."""
    n = _positive_int(options.get("n_samples", 1000), "n_samples")
    rng = np.random.default_rng(_data_seed(options))
    x = rng.uniform(-3.0, 3.0, size=(n, 1))
    noise_std = _nonnegative(options.get("noise", 0.1), "noise") * (0.5 + np.abs(x) / 3.0)  # grows with |x|
    y = np.sin(x) + noise_std * rng.standard_normal((n, 1))
    outliers = _check_fraction(options.get("outliers", 0.05), "outliers")
    return _Source("sine", "curve1d", x.astype(np.float32), y.astype(np.float32), "regression",
                   outliers=outliers)


MNIST1D_SEED = 42  # the generator's own default seed, part of the benchmark's definition


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(data_seed: int) -> tuple[np.ndarray, ...]:
    """(x, y, x_test, y_test) from the mnist1d package's own generator, read-only, cached per process.

    Generating takes about a second (plus a second to import the package and scipy), so a
    process generates each data_seed once. The generator's defaults define the benchmark:
    5000 samples, 10 templates, length-40 signals, 80/20 split (4000 train / 1000 test). Its
    download path (`get_dataset`) is never called: nothing here touches the network.
    """
    import random

    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise ValueError("the mnist1d dataset needs the mnist1d package (its generator defines the "
                         "benchmark): pip install mnist1d") from None
    args = get_dataset_args()
    args.seed = data_seed
    # make_dataset reseeds numpy's and Python's global generators: restore them afterwards, so
    # loading data never changes what other code draws from them.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    arrays = (data["x"].astype(np.float32)[:, None], data["y"].astype(np.int64),  # (4000, 1, 40), (4000,)
              data["x_test"].astype(np.float32)[:, None], data["y_test"].astype(np.int64))
    for a in arrays:
        a.setflags(write=False)  # shared by every load in this process
    return arrays


def _mnist1d(options: dict) -> _Source:
    """MNIST-1D; source row: the index in the generator's x (train) or x_test (test samples)."""
    seed = _data_seed(options) if "data_seed" in options else MNIST1D_SEED
    x, y, x_test, y_test = _mnist1d_arrays(seed)
    return _Source("mnist1d", "signal", x, y, "classification", x_test, y_test,
                   class_names=[str(c) for c in range(10)])


_BUILTINS = {"digits": _digits, "moons": _moons, "blobs": _blobs, "sine": _sine, "mnist1d": _mnist1d}
# Options each source understands, besides the generic ones (limit, test_limit).
_OPTIONS = {"digits": set(), "moons": {"n_samples", "noise", "data_seed"},
            "blobs": {"n_samples", "noise", "data_seed"},
            "sine": {"n_samples", "noise", "data_seed", "outliers"}, "mnist1d": {"data_seed"},
            "npz": {"task"}, "csv": {"task", "label_column"}, "cifar": set(), "idx": set()}
_GENERIC_OPTIONS = {"limit", "test_limit"}


class _NotNpz(Exception):
    pass


def _npz(path: Path, options: dict) -> _Source:
    """A user's arrays: x, y and optional x_test, y_test. Source row: the index along the first
    axis of x (of x_test for test samples when the archive has its own test set). A 2-D x (or 1-D,
    one feature) is tabular; its features are named f0, f1, ... in dataset.parquet."""
    try:
        # We own the file handle: np.load leaks its own when a truncated archive fails to open.
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive; np.load would try pickle next
                raise _NotNpz()
            f.seek(0)
            with np.load(f, allow_pickle=False) as archive:
                names = set(archive.files)
                arrays = {k: archive[k] for k in ("x", "y", "x_test", "y_test") if k in names}
    except _NotNpz:
        raise ValueError(f"{path.name} is not a .npz archive (no zip header): save it with numpy.savez") from None
    except ValueError as e:
        if "Object arrays" in str(e):
            raise ValueError(f"{path.name} holds object (pickled) arrays, which docl never loads: "
                             "save plain numeric arrays") from None
        raise ValueError(f"cannot read {path.name}: not a valid .npz ({_why(e)}): "
                         "re-save it with numpy.savez") from None
    except (PermissionError, FileNotFoundError, IsADirectoryError):
        raise  # not the file's content: _read reports it
    except Exception as e:  # zipfile, zlib, EOF and OS errors from a corrupted or truncated file
        raise ValueError(f"cannot read {path.name}: corrupted or truncated .npz ({_why(e)}): "
                         "re-save it with numpy.savez") from None
    missing = {"x", "y"} - names
    if missing:
        raise ValueError(f"{path.name} has no array(s) {' and '.join(map(repr, sorted(missing)))} "
                         f"(found {sorted(names) or 'none'}): save with np.savez(path, x=..., y=...)")
    if ("x_test" in names) != ("y_test" in names):
        raise ValueError(f"{path.name} has only one of x_test / y_test: save both or neither")
    x = arrays["x"]
    kind = "tabular"
    x_test = arrays.get("x_test")
    if x.ndim == 1:  # one feature per sample
        x, x_test = x[:, None], (None if x_test is None else x_test[:, None])
    elif x.ndim == 3:  # (N, H, W) grayscale images
        kind, x, x_test = "image", x[:, None], (None if x_test is None else x_test[:, None])
    elif x.ndim == 4:
        kind = "image"
        if x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):  # channels last → channels first
            x, x_test = x.transpose(0, 3, 1, 2), (None if x_test is None else x_test.transpose(0, 3, 1, 2))
    elif x.ndim != 2:
        raise ValueError(f"x in {path.name} has shape {x.shape}: use (N, d) features or "
                         "(N, H, W) / (N, c, H, W) images")
    if x_test is not None and x_test.shape[1:] != x.shape[1:]:
        raise ValueError(f"x_test in {path.name} has per-sample shape {x_test.shape[1:]} but x has "
                         f"{x.shape[1:]}: make them match")
    return _Source(path.stem, kind, x, arrays["y"], options.get("task"), x_test, arrays.get("y_test"),
                   origin=path.name)


def _csv(path: Path, options: dict) -> _Source:
    """A user's table: one sample per row, a label column, numeric feature columns (named as in
    the header). Source row: the 0-based position among the data rows as pandas reads them, the
    header not counted (row r is the file's line r + 2 when no record spans lines)."""
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path.name} is empty: write a header row and at least one sample") from None
    except Exception as e:  # parser, encoding and OS errors
        raise ValueError(f"cannot read {path.name} as CSV ({_why(e)}): save it as comma-separated "
                         "text with a header row") from None
    if len(table) == 0:
        raise ValueError(f"{path.name} has a header but no rows: add samples")
    # The labels are the "label" column, or the one named: never a guess (the last column of a
    # file without one is as likely a feature, and training on it says nothing is wrong).
    label_column = _check_label_column(path, table.columns, options.get("label_column"))
    features = table.drop(columns=[label_column])
    if features.shape[1] == 0:
        raise ValueError(f"{path.name} has only the label column {label_column!r}: add feature columns")
    text = [str(c) for c in features.columns if not (pd.api.types.is_numeric_dtype(features[c])
                                                     or pd.api.types.is_bool_dtype(features[c]))]
    if text:
        raise ValueError(f"{path.name}: feature column(s) {', '.join(text[:5])} are not numeric: "
                         "encode them as numbers or drop them")
    labels = table[label_column]
    if labels.isna().any():
        raise ValueError(f"{path.name}: label column {label_column!r} has {int(labels.isna().sum())} "
                         "missing value(s): fill or drop those rows")
    y = labels.to_numpy()
    if y.dtype == object:  # class names as text
        y = y.astype(str)
    return _Source(path.stem, "tabular", features.to_numpy(dtype=np.float64), y, options.get("task"),
                   origin=path.name, feature_names=[str(c) for c in features.columns])


def _check_label_column(path: Path, columns, label_column: Optional[str]) -> str:
    """The label column's name ("label" unless named); ValueError when the file lacks it."""
    label_column = label_column or "label"
    if label_column not in columns:
        shown = ", ".join(map(str, list(columns)[:12])) + (", ..." if len(columns) > 12 else "")
        fix = ("name the label column 'label', or pass its name with --label-column NAME (label_column= "
               "in Python)") if label_column == "label" else "pass the name of a column that exists"
        raise ValueError(f"{path.name} has no column {label_column!r} (columns: {shown}): {fix}")
    return label_column


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


# --- CIFAR-10 python batches (pickles) ---


class ForbiddenPickle(pickle.UnpicklingError):
    """A pickle asked for a global outside the allowlist."""


def _numpy_attr(module: str, name: str):
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers of numpy arrays and nothing else.

    A pickle can call any importable function (os.system, ...) through the globals it names;
    this unpickler resolves only the few names numpy's array reconstruction needs, under both
    numpy 1 (numpy.core) and numpy 2 (numpy._core) spellings, and raises `ForbiddenPickle`
    for anything else. Dicts, lists, strings and numbers need no globals at all.
    """

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how Python 3 spells bytes in protocol-2 pickles
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise ForbiddenPickle(f"{module}.{name}")
        if module == "_codecs":
            import codecs
            return codecs.encode
        # Import from the spelling this numpy has (numpy.core is a deprecated alias in numpy 2).
        spellings = (module.replace("numpy.core", "numpy._core"), module.replace("numpy._core", "numpy.core"))
        for spelling in spellings:
            obj = _numpy_attr(spelling, name)
            if obj is not None:
                return obj
        raise ForbiddenPickle(f"{module}.{name} (not available in this numpy)")


def restricted_load(path: Path):
    """Unpickle a file with `RestrictedUnpickler`; ValueError on anything else."""
    try:
        with open(path, "rb") as f:
            # latin1: CIFAR's batches are Python 2 pickles; numpy rebuilds arrays from latin1 text.
            return RestrictedUnpickler(f, encoding="latin1").load()
    except ForbiddenPickle as e:
        raise ValueError(f"{path.name} is a pickle that asks for {e} — docl only loads numpy arrays "
                         "from CIFAR batches: use the official CIFAR-10 python files") from None
    except Exception as e:  # truncated or corrupted pickles fail in many ways
        raise ValueError(f"cannot read {path.name}: corrupted or truncated pickle ({_why(e)}): "
                         "re-download the CIFAR-10 python batches") from None


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = restricted_load(path)
    if not isinstance(batch, dict):
        raise ValueError(f"{path.name} is not a CIFAR batch (a dict with 'data' and 'labels'): "
                         "use the CIFAR-10 python version")
    batch = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or labels is None:
        raise ValueError(f"{path.name} lacks 'data' (N, 3072) uint8 or 'labels': use the CIFAR-10 "
                         "python version")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{path.name}: 'labels' are not integers: use the CIFAR-10 python version") from None
    if labels.shape != (len(data),):
        raise ValueError(f"{path.name} has {len(data)} images but {labels.size} labels: re-download it")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_batches(folder: Path) -> list[Path]:
    """data_batch_1, data_batch_2, ... in numeric order (stray files such as data_batch_1.bak ignored)."""
    found = [p for p in folder.glob("data_batch_*") if p.name[len("data_batch_"):].isdigit() and p.is_file()]
    return sorted(found, key=lambda p: int(p.name[len("data_batch_"):]))


def _cifar_folder(folder: Path) -> Optional[Path]:
    """The folder that holds data_batch_N files: `folder` or its cifar-10-batches-py child."""
    for candidate in (folder, folder / "cifar-10-batches-py"):
        if candidate.is_dir() and _cifar_batches(candidate):
            return candidate
    return None


def _cifar(folder: Path, options: dict) -> _Source:
    """CIFAR-10 python batches. Source row: the index over data_batch_1, data_batch_2, ...
    concatenated in numeric order (image i of data_batch_b is row (b − 1)·10000 + i for the
    official 10000-image batches); for test samples, the index in test_batch."""
    root = _cifar_folder(folder)
    parts = [_cifar_batch(p) for p in _cifar_batches(root)]
    x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    x_test = y_test = None
    if (root / "test_batch").exists():
        x_test, y_test = _cifar_batch(root / "test_batch")
    names = CIFAR10_CLASSES
    if (root / "batches.meta").exists():
        meta = restricted_load(root / "batches.meta")
        if isinstance(meta, dict):
            meta = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in meta.items()}
            found = meta.get("label_names")
            if isinstance(found, list) and found:
                names = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in found]
    return _Source(folder.name, "image", x, y, "classification", x_test, y_test, list(names))


# --- Fashion-MNIST idx files ---

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an idx file (plain or .gz): magic 0x00 0x00 <dtype> <ndim>, ndim big-endian sizes, data."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"cannot read {path.name}: corrupted or truncated gzip ({_why(e)}): "
                         "re-download it") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path.name} is not an idx file (bad magic number): use the original "
                         "Fashion-MNIST files")
    if raw[3] != ndim:
        raise ValueError(f"{path.name} holds a {raw[3]}-D array, expected {ndim}-D: "
                         "check which file is which")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path.name} is truncated (header cut short): re-download it")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path.name} has {len(raw)} bytes but its header {shape} implies {expected}: "
                         "the file is truncated or corrupted, re-download it")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _idx_file(folder: Path, prefix: str, ndim: int) -> Optional[Path]:
    for sep in ("-", "."):
        for suffix in ("", ".gz"):
            p = folder / f"{prefix}{sep}idx{ndim}-ubyte{suffix}"
            if p.exists():
                return p
    return None


def _idx(folder: Path, options: dict) -> _Source:
    """Fashion-MNIST (or MNIST) idx files. Source row: the index in train-images / train-labels,
    or in t10k-images / t10k-labels for test samples."""
    def pair(prefix):
        images, labels = _idx_file(folder, f"{prefix}-images", 3), _idx_file(folder, f"{prefix}-labels", 1)
        if (images is None) != (labels is None):
            if images is not None:
                have, need = images, f"{prefix}-labels-idx1-ubyte"
            else:
                have, need = labels, f"{prefix}-images-idx3-ubyte"
            raise ValueError(f"{folder.name} has {have.name} but no {need}[.gz]: add the missing file")
        if images is None:
            return None, None
        x, y = read_idx(images, 3), read_idx(labels, 1)
        if len(x) != len(y):
            raise ValueError(f"{images.name} has {len(x)} images but {labels.name} has {len(y)} labels: "
                             "use matching files")
        return x[:, None], y  # labels are validated with every other source's

    x, y = pair("train")
    if x is None:
        raise ValueError(f"{folder} has no train-images-idx3-ubyte[.gz]: point at a Fashion-MNIST folder")
    x_test, y_test = pair("t10k")
    # Same file format as MNIST: the clothing names only when the folder says Fashion-MNIST.
    fashion = "fashion" in str(folder.resolve()).lower()
    names = FASHION_MNIST_CLASSES if fashion else [str(c) for c in range(10)]
    return _Source(folder.name, "image", x, y, "classification", x_test, y_test, names)


# ----------------------------------------------------------------------------- validation


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


# ----------------------------------------------------------------------------- splits


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


# ----------------------------------------------------------------------------- entry point


def _check_fraction(value, what: str, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(value) or value < 0 or value >= 1 or (low_open and value == 0):
        interval = "(0, 1)" if low_open else "[0, 1)"
        raise ValueError(f"{what} must be a fraction in {interval}, got {value!r}")
    return float(value)


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


_READERS = {"npz": _npz, "csv": _csv, "cifar": _cifar, "idx": _idx}


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


def source_digest(*arrays: Optional[np.ndarray]) -> str:
    """A 128-bit BLAKE2b hash of arrays as a source's reader returned them (shape, dtype and bytes of
    each; object arrays, such as string labels, by their values; None counts as absent): two reads
    of the same file give the same digest, an edit almost surely not. Hashed before labels are
    mapped, targets converted or features standardised, so no rounding hides a change."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape};{a.dtype.str};".encode())
        h.update(a.reshape(-1).view(np.uint8) if a.dtype != object else repr(a.tolist()).encode())
    return h.hexdigest()


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
        default 42 is the benchmark's own generator seed); outliers (sine, fraction of
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
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    label_noise = _check_fraction(label_noise, "label_noise")
    val_fraction = _check_fraction(val_fraction, "val_fraction")
    test_fraction = _check_fraction(test_fraction, "test_fraction", low_open=True)
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves no "
                         "training data: keep their sum below 1")
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

    # Cap the pools before converting to float32 (a full CIFAR-10 in float32 is 600 MB);
    # stratified, so classes keep their shares.
    if options.get("limit") is not None:
        keep = _cap(y, classes, _positive_int(options["limit"], "limit"), [seed, _STREAM_LIMIT])
        if keep is not None:
            x, y, rows = x[keep], y[keep], rows[keep]
    if x_test is not None and options.get("test_limit") is not None:
        keep = _cap(y_test, classes, _positive_int(options["test_limit"], "test_limit"), [seed, _STREAM_TEST_LIMIT])
        if keep is not None:
            x_test, y_test, rows_test = x_test[keep], y_test[keep], rows_test[keep]
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

    clean, noisy = y_train, np.zeros(len(y_train), dtype=bool)
    if label_noise > 0:
        y_train, noisy = flip_labels(y_train, num_outputs, label_noise,
                                     np.random.default_rng([seed, _STREAM_NOISE]))
    if src.outliers > 0:  # train only, so validation and test measure the clean curve
        y_train, noisy = add_outliers(y_train, src.outliers, np.random.default_rng([seed, _STREAM_OUTLIERS]))

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
    per_class = f" (one per class)" if num_classes else ""
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
