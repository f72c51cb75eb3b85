"""A user's files and folders: .npz arrays, a .csv with a label column, CIFAR-10 python batches
(through `RestrictedUnpickler`, which only rebuilds numpy arrays) and Fashion-MNIST idx files;
`source_digest` hashes what was read. Nothing here executes code from a file."""
from __future__ import annotations

import csv
import gzip
import hashlib
import math
import pickle
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from .source import _Source, _why

PATH_HELP = ("a path to a .npz (x, y[, x_test, y_test]), a .csv with a label column, a CIFAR-10 "
             "python-batch folder or a Fashion-MNIST idx folder")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]


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
    header not counted (row r is the file's line r + 2 when no record spans lines and no line is
    blank); a message about one row gives both, the line found by `_csv_row`."""
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
    X = features.to_numpy(dtype=np.float64)  # (n, d)
    bad = ~np.isfinite(X) | (np.abs(X) > np.finfo(np.float32).max)  # beyond float32: inf once trained on
    if bad.any():
        r, j = np.argwhere(bad)[0]  # the first bad row, its first bad column
        rows = int(bad.any(axis=1).sum())
        raise ValueError(f"{path.name}: column {str(features.columns[j])!r} is not a finite number (empty, NaN or "
                         f"inf, or beyond float32) at {_csv_row(path, int(r), len(table))}"
                         + (f"; {rows - 1} later row(s) have such values too" if rows > 1 else "")
                         + ": fill or impute the value, or drop the row")
    labels = table[label_column]
    if labels.isna().any():
        first = int(np.flatnonzero(labels.isna().to_numpy())[0])
        raise ValueError(f"{path.name}: label column {label_column!r} has {int(labels.isna().sum())} "
                         f"missing value(s), the first at {_csv_row(path, first, len(table))}: fill or drop "
                         "those rows")
    y = labels.to_numpy()
    if y.dtype == object:  # class names as text
        y = y.astype(str)
    return _Source(path.stem, "tabular", X, y, options.get("task"),
                   origin=path.name, feature_names=[str(c) for c in features.columns])


def _csv_row(path: Path, row: int, rows: int) -> str:
    """Where data row `row` (0-based, header not counted: source_row's numbering) is in the file, for
    a message: "line 5 (data row 3, counted from 0 after the header, as source_row counts)". The
    line is found by reading the file's records as pandas does (blank lines skipped, a quoted field
    may span lines); when that count disagrees with pandas' `rows`, only the data row is given."""
    where = f"data row {row}, counted from 0 after the header, as source_row counts"
    starts, before = [], 0  # the line each non-blank record starts on, the header's first
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            for record in reader:
                if record:
                    starts.append(before + 1)
                before = reader.line_num
    except (OSError, UnicodeDecodeError, csv.Error):
        return where
    return f"line {starts[row + 1]} ({where})" if len(starts) == rows + 1 else where


def _check_label_column(path: Path, columns, label_column: Optional[str]) -> str:
    """The label column's name ("label" unless named); ValueError when the file lacks it."""
    label_column = label_column or "label"
    if label_column not in columns:
        shown = ", ".join(map(str, list(columns)[:12])) + (", ..." if len(columns) > 12 else "")
        fix = ("name the label column 'label', or pass its name with --label-column NAME (label_column= "
               "in Python)") if label_column == "label" else "pass the name of a column that exists"
        raise ValueError(f"{path.name} has no column {label_column!r} (columns: {shown}): {fix}")
    return label_column


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


_READERS = {"npz": _npz, "csv": _csv, "cifar": _cifar, "idx": _idx}


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
