"""The built-in datasets: scikit-learn's digits, moons, blobs, a sine regression and MNIST-1D,
each a function options → `_Source` whose source row is the index in its generator's output."""
from __future__ import annotations

import contextlib
import functools
import io
import os
from pathlib import Path
from typing import Optional

import numpy as np

from ..store import atomic_write_bytes
from .source import _Source, _check_fraction, _data_seed, _nonnegative, _positive_int

# Built-in datasets, for CLI help and the app.
DATASET_DESCRIPTIONS = {
    "digits": "scikit-learn's 8×8 handwritten digits, 10 classes, 1797 images",
    "moons": "two interleaved half-moons in 2-D (noise 0.25), 2 classes, 1500 points",
    "blobs": "four overlapping Gaussian blobs in 2-D, 4 classes, 1500 points",
    "sine": "1-D regression y = sin(x) + heteroscedastic noise, 5% outliers in train, 1000 points",
    "mnist1d": "MNIST-1D (Greydanus 2020): procedurally generated 1-D digits, length-40 signals, "
               "10 classes, 4000 train / 1000 test",
    "mnist1d-100k": "MNIST-1D at the size researchers train on: the same generator drawing 150,000 "
                    "signals, 100,000 train + 17,647 validation (the default 15 %) / 30,000 test "
                    "(about 45 s to generate the first time, then read from the disk cache)",
}
DATASETS = tuple(DATASET_DESCRIPTIONS)


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


MNIST1D_SAMPLES = 5000      # the generator's default: 4000 train / 1000 test
# The generator draws n // 10 signals per class, shuffles them and keeps int(0.8 n) as its training
# pool: 150,000 → 120,000 pool / 30,000 test. The named size keeps the pool's first 117,647 (a
# uniform draw, the pool being shuffled) so that the default 15 % validation, round(0.15 · 117,647)
# = 17,647, leaves exactly 100,000 to train on.
MNIST1D_100K_SAMPLES = 150_000
MNIST1D_100K_POOL = 117_647


def mnist1d_cache_dir() -> Optional[Path]:
    """Where generated MNIST-1D arrays are kept between processes: $DOCL_CACHE, else
    ~/.cache/docl; None (no cache) when DOCL_CACHE is set to the empty string."""
    env = os.environ.get("DOCL_CACHE")
    if env == "":
        return None
    return Path(env) if env else Path.home() / ".cache" / "docl"


def _cache_file(data_seed: int, num_samples: int, version: str) -> Optional[Path]:
    folder = mnist1d_cache_dir()
    return None if folder is None else folder / f"mnist1d-{version}-seed{data_seed}-n{num_samples}.npz"


def _read_cache(path: Optional[Path], num_samples: int) -> Optional[tuple[np.ndarray, ...]]:
    """The arrays a previous process generated, or None (no cache, no file, or a file that is not
    exactly what the generator gives: then it is generated again and the file replaced)."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = tuple(z[k] for k in ("x", "y", "x_test", "y_test"))
    except Exception:  # truncated or foreign file: many exception types
        return None
    n_train = int(num_samples // 10 * 10 * 0.8)
    shapes_ok = (arrays[0].dtype == np.float32 and arrays[1].dtype == np.int64 and arrays[0].ndim == 3
                 and len(arrays[0]) == len(arrays[1]) == n_train and len(arrays[2]) == len(arrays[3]))
    return arrays if shapes_ok and all(np.isfinite(a).all() for a in arrays[::2]) else None


def _write_cache(path: Optional[Path], arrays: tuple[np.ndarray, ...]) -> None:
    """Atomically (the run store's write), best effort: an unwritable cache folder only costs the
    next process the generation."""
    if path is None:
        return
    buf = io.BytesIO()
    np.savez(buf, **dict(zip(("x", "y", "x_test", "y_test"), arrays)))
    with contextlib.suppress(OSError):
        atomic_write_bytes(path, buf.getvalue())


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(data_seed: int, num_samples: int = MNIST1D_SAMPLES) -> tuple[np.ndarray, ...]:
    """(x, y, x_test, y_test) from the mnist1d package's own generator, read-only, cached per process
    and on disk (`mnist1d_cache_dir`, keyed by the package's version, the seed and the size).

    Generating 5000 takes about a second (plus a second to import the package and scipy), 150,000
    about a minute: a process generates each (data_seed, num_samples) once, and later processes read
    the cached file (the same arrays, bit for bit). The generator's defaults define the
    benchmark: 5000 samples, 10 templates, length-40 signals, 80/20 split (4000 train / 1000
    test); num_samples draws more signals from the same distribution, split the same way. Its
    download path (`get_dataset`) is never called: nothing here touches the network.
    """
    import random

    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise ValueError("the mnist1d dataset needs the mnist1d package (its generator defines the "
                         "benchmark): pip install mnist1d") from None
    from importlib.metadata import PackageNotFoundError, version
    try:
        package_version = version("mnist1d")
    except PackageNotFoundError:
        package_version = "unknown"
    cache = _cache_file(data_seed, int(num_samples), package_version)
    arrays = _read_cache(cache, int(num_samples))
    if arrays is not None:
        for a in arrays:
            a.setflags(write=False)
        return arrays
    args = get_dataset_args()
    args.seed, args.num_samples = data_seed, int(num_samples)
    # make_dataset reseeds numpy's and Python's global generators: restore them afterwards, so
    # loading data never changes what other code draws from them.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    arrays = (data["x"].astype(np.float32)[:, None], data["y"].astype(np.int64),  # (0.8 n, 1, 40), (0.8 n,)
              data["x_test"].astype(np.float32)[:, None], data["y_test"].astype(np.int64))
    _write_cache(cache, arrays)
    for a in arrays:
        a.setflags(write=False)  # shared by every load in this process
    return arrays


def _mnist1d(options: dict, name: str = "mnist1d", default_n: int = MNIST1D_SAMPLES,
             pool: Optional[int] = None) -> _Source:
    """MNIST-1D; source row: the index in the generator's x (train) or x_test (test samples).
    n_samples: how many signals the generator draws in all (80 % train, 20 % test); pool: keep
    only the first `pool` of its (shuffled) training signals."""
    seed = _data_seed(options) if "data_seed" in options else MNIST1D_SEED
    n = _positive_int(options.get("n_samples", default_n), "n_samples")
    if n < 50:
        raise ValueError(f"n_samples = {n} is too few for MNIST-1D's 10 classes and its 80/20 split: give ≥ 50")
    x, y, x_test, y_test = _mnist1d_arrays(seed, n)
    return _Source(name, "signal", x[:pool], y[:pool], "classification", x_test, y_test,
                   class_names=[str(c) for c in range(10)])


def _mnist1d_100k(options: dict) -> _Source:
    """MNIST-1D with exactly 100,000 training signals at the default validation share: 150,000
    drawn, the first 117,647 of the 120,000-signal pool kept, the 30,000 test signals whole."""
    return _mnist1d(options, "mnist1d-100k", MNIST1D_100K_SAMPLES, MNIST1D_100K_POOL)


_BUILTINS = {"digits": _digits, "moons": _moons, "blobs": _blobs, "sine": _sine, "mnist1d": _mnist1d,
             "mnist1d-100k": _mnist1d_100k}
