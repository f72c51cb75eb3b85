"""docl_core.data: built-in sets, user files, splits, label noise, frame(), and bad input."""
from __future__ import annotations

import gzip
import io
import os
import pickle
import random
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from docl_core import data as data_module
from docl_core.data import (DATASET_DESCRIPTIONS, DATASETS, Dataset, RestrictedUnpickler,
                            load_dataset, signal_thumbnails, stratified_holdout)

# ----------------------------------------------------------------------------- file writers


def write_cifar(folder, n=20, batches=2, protocol=2, test=True, meta=True, str_keys=False):
    """A tiny CIFAR-10 python-batch folder: n images per batch, labels cycling 0..9."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    key = (lambda k: k) if str_keys else (lambda k: k.encode())
    names = [f"data_batch_{i}" for i in range(1, batches + 1)] + (["test_batch"] if test else [])
    for name in names:
        batch = {key("batch_label"): name, key("labels"): [int(v) for v in np.arange(n) % 10],
                 key("data"): rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 key("filenames"): [f"{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    if meta:
        names = [f"class{c}" for c in range(10)]
        (folder / "batches.meta").write_bytes(pickle.dumps({key("label_names"): names}, protocol=protocol))
    return folder


def py2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A CIFAR batch as Python 2's cPickle wrote it (protocol 2): str keys and raw array bytes as
    BINSTRING, globals spelled numpy.core.multiarray. Written opcode by opcode."""
    def text(b: bytes) -> bytes:  # BINSTRING: 'T', 4-byte little-endian length, bytes
        return b"T" + len(b).to_bytes(4, "little") + b

    def small(i: int) -> bytes:  # BININT (4-byte signed)
        return b"J" + i.to_bytes(4, "little", signed=True)

    dtype = (b"cnumpy\ndtype\n" + text(b"u1") + b"K\x00K\x01\x87R"  # dtype('u1', 0, 1) ...
             + b"(K\x03" + text(b"|") + b"NNN" + small(-1) + small(-1) + b"K\x00tb")  # ... + its state
    array = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + b"K\x00\x85" + text(b"b")
             + b"\x87R" + b"(K\x01" + small(data.shape[0]) + small(data.shape[1]) + b"\x86" + dtype
             + b"\x89" + text(data.tobytes()) + b"tb")
    label_list = b"](" + b"".join(small(v) for v in labels) + b"e"
    return b"\x80\x02}(" + text(b"data") + array + text(b"labels") + label_list + b"u."


def idx_bytes(arr: np.ndarray) -> bytes:
    """idx encoding of a uint8 array: magic 0x00 0x00 0x08 <ndim>, big-endian sizes, data."""
    return bytes([0, 0, 0x08, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes() + arr.tobytes()


def write_idx(folder, n=30, n_test=20, gz=False, size=28):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    ext = ".gz" if gz else ""
    for prefix, count in (("train", n), ("t10k", n_test)):
        if not count:
            continue
        images = rng.integers(0, 256, (count, size, size), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        for kind, arr, nd in (("images", images, 3), ("labels", labels, 1)):
            path = folder / f"{prefix}-{kind}-idx{nd}-ubyte{ext}"
            path.write_bytes(gzip.compress(idx_bytes(arr)) if gz else idx_bytes(arr))
    return folder


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def blob_arrays(n=60, d=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return rng.standard_normal((n, d)) + y[:, None], y


# ----------------------------------------------------------------------------- built-ins


@pytest.mark.parametrize("name, kind, task, shape, outputs", [
    ("digits", "image", "classification", (1, 8, 8), 10),
    ("moons", "points2d", "classification", (2,), 2),
    ("blobs", "points2d", "classification", (2,), 4),
    ("sine", "curve1d", "regression", (1,), 1),
    ("mnist1d", "signal", "classification", (1, 40), 10),
])
def test_builtin_shapes_and_dtypes(name, kind, task, shape, outputs):
    ds = load_dataset(name, seed=0)
    assert (ds.kind, ds.task, ds.input_shape, ds.num_outputs) == (kind, task, shape, outputs)
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        assert x.dtype == torch.float32 and x.shape[1:] == shape and len(x) == len(y) > 0
        if task == "classification":
            assert y.dtype == torch.int64 and y.ndim == 1 and 0 <= int(y.min()) and int(y.max()) < outputs
        else:
            assert y.dtype == torch.float32 and y.shape[1:] == (outputs,)
    n = len(ds.x_train) + len(ds.x_val) + len(ds.x_test)
    assert len(ds.x_test) == round(0.2 * n) and len(ds.x_val) == round(0.15 * (n - len(ds.x_test)))
    assert ds.noisy.dtype == torch.bool and ds.noisy.shape == (len(ds.x_train),)
    # Standardised with train statistics: train features have mean 0, std 1 (per channel for
    # images and signals, per feature otherwise).
    axes = {"image": (0, 2, 3), "signal": (0, 2)}.get(kind, (0,))
    assert torch.allclose(ds.x_train.mean(axes), torch.zeros(1), atol=1e-4)
    assert torch.allclose(ds.x_train.std(axes, unbiased=False), torch.ones(1), atol=1e-3)
    assert (ds.class_names is None) == (task == "regression")
    assert name in DATASETS and DATASET_DESCRIPTIONS[name]
    assert name in repr(ds) and len(repr(ds)) < 300


def test_builtin_options():
    ds = load_dataset("moons", n_samples=200, noise=0.1)
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 200
    assert int(load_dataset("sine", outliers=0.0).noisy.sum()) == 0


def test_splits_disjoint_stratified_and_deterministic():
    a, b, c = load_dataset("moons", seed=3), load_dataset("moons", seed=3), load_dataset("moons", seed=4)
    for field in ("x_train", "y_train", "x_val", "x_test", "noisy"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.x_test, c.x_test)
    # Moons points are distinct, so disjoint splits mean no repeated row across them.
    everything = torch.cat([a.x_train, a.x_val, a.x_test])
    assert len(torch.unique(everything, dim=0)) == len(everything)
    # Stratified: class shares agree across splits.
    for y in (a.y_val, a.y_test):
        assert abs(y.float().mean() - a.y_train.float().mean()) < 0.02


def test_stratified_holdout_exact_size_and_tiny_classes():
    labels = np.array([0] * 50 + [1] * 7 + [2])
    held = stratified_holdout(labels, len(labels), 0.2, np.random.default_rng(0))
    assert len(held) == round(0.2 * 58) and len(np.unique(held)) == len(held)
    assert abs((labels[held] == 1).sum() - 0.2 * 7) <= 1
    assert len(stratified_holdout(None, 10, 0.0, np.random.default_rng(0))) == 0


@pytest.mark.parametrize("fraction", [0.1, 0.35])
def test_label_noise_flips_exactly_the_fraction(fraction):
    clean = load_dataset("digits", seed=1)
    ds = load_dataset("digits", seed=1, label_noise=fraction)
    assert int(ds.noisy.sum()) == round(fraction * len(ds.y_train))
    assert torch.equal(ds.noisy, ds.y_train != ds.clean_y_train)  # every flip lands on another class
    assert torch.equal(ds.clean_y_train, clean.y_train)
    assert torch.equal(ds.x_train, clean.x_train) and torch.equal(ds.y_val, clean.y_val)
    assert torch.equal(ds.y_test, clean.y_test)
    assert int(ds.y_train.max()) < ds.num_outputs


def test_mnist1d_standard_split_classes_and_determinism():
    ds = load_dataset("mnist1d", seed=0)
    # The benchmark's 4000 / 1000 train / test split; validation is 15% of the 4000, stratified.
    assert len(ds.x_test) == 1000 and len(ds.x_val) == 600 and len(ds.x_train) == 3400
    assert ds.class_names == [str(c) for c in range(10)]
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert set(y.tolist()) == set(range(10))
    counts = torch.bincount(ds.y_train, minlength=10)
    assert int(counts.min()) >= 300 and int(counts.max()) <= 380  # about 340 per class
    again = load_dataset("mnist1d", seed=0)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(ds, field), getattr(again, field))
    # seed moves the validation slice only: the pool and the given test set are the benchmark's.
    other = load_dataset("mnist1d", seed=1)
    assert torch.allclose(other.original_x(other.x_test), ds.original_x(ds.x_test), atol=1e-5)
    assert torch.equal(other.y_test, ds.y_test) and not torch.equal(other.y_val, ds.y_val)
    pool = lambda d: torch.sort(d.original_x(torch.cat([d.x_train, d.x_val])).flatten(1).sum(1)).values
    assert torch.allclose(pool(other), pool(ds), atol=1e-4)


def test_mnist1d_generation_is_offline_deterministic_and_leaves_global_rngs(monkeypatch):
    """A fresh generation (cache cleared) gives the same arrays, never calls the package's
    download path or the network, and restores numpy's and Python's global generators."""
    import mnist1d.data
    import requests

    def forbidden(*args, **kwargs):
        raise AssertionError("mnist1d must be generated offline")

    monkeypatch.setattr(mnist1d.data, "get_dataset", forbidden)
    monkeypatch.setattr(requests, "get", forbidden)
    cached = [a.copy() for a in data_module._mnist1d_arrays(data_module.MNIST1D_SEED)]
    data_module._mnist1d_arrays.cache_clear()
    np.random.seed(123)
    random.seed(123)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        fresh = data_module._mnist1d_arrays(data_module.MNIST1D_SEED)
        assert np.random.get_state()[1].tolist() == np_state[1].tolist() and random.getstate() == py_state
        shapes = [a.shape for a in fresh]
        assert shapes == [(4000, 1, 40), (4000,), (1000, 1, 40), (1000,)]
        assert all(np.array_equal(a, b) for a, b in zip(fresh, cached))
        assert not fresh[0].flags.writeable  # the cache is shared: loads copy, never write
    finally:
        data_module._mnist1d_arrays.cache_clear()


def test_mnist1d_at_any_size_draws_from_the_same_generator():
    """n_samples draws more (or fewer) signals from the generator, split 80/20 like its default; the
    first signals are not the default set's (the generator shuffles its draw), but the distribution is:
    10 classes in about equal shares. "mnist1d-100k" is the named size whose default split trains exactly 100,000 signals."""
    ds = load_dataset("mnist1d", seed=0, n_samples=1000)
    x, y, xt, yt = data_module._mnist1d_arrays(data_module.MNIST1D_SEED, 1000)
    assert (len(x), len(xt)) == (800, 200) and x.shape[1:] == (1, 40)
    assert len(ds.y_train) + len(ds.y_val) == 800 and len(ds.y_test) == 200
    counts = np.bincount(y, minlength=10)
    assert len(counts) == 10 and counts.min() > 40                    # every digit drawn, none missing
    again = load_dataset("mnist1d", seed=0, n_samples=1000)                     # deterministic
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.y_train, ds.y_train)
    assert len(load_dataset("mnist1d", seed=0, n_samples=1200).y_test) == 240
    assert data_module._BUILTINS["mnist1d-100k"].__doc__ and "mnist1d-100k" in data_module.DATASETS
    from docl_core.data.splits import _split_sizes
    n, pool = data_module.MNIST1D_100K_SAMPLES, data_module.MNIST1D_100K_POOL
    assert n % 10 == 0 and pool <= int(n * 0.8)          # n // 10 per class; pool within the generator's 80 %
    assert _split_sizes(pool, 0.15, 0.2, own_test=n - int(n * 0.8)) == (100_000, 17_647, 30_000)
    from docl_core.data.builtin import _mnist1d
    kept = _mnist1d({"n_samples": 1000}, pool=700)          # the named size's pool cut, at a small size
    assert len(kept.x) == 700 and np.array_equal(kept.x, x[:700]) and np.array_equal(kept.y, y[:700])
    assert np.array_equal(kept.x_test, xt)                  # the test set stays whole
    with pytest.raises(ValueError, match="n_samples = 10 is too few"):
        load_dataset("mnist1d", n_samples=10)
    with pytest.raises(ValueError, match="n_samples"):
        load_dataset("mnist1d-100k", n_samples=10)                    # the named size is fixed


def test_mnist1d_arrays_are_cached_on_disk_between_processes(tmp_path, monkeypatch):
    """A fresh process (the in-process cache cleared) reads the arrays the first one generated, bit
    for bit, without calling the generator; a corrupted or wrong-sized file is generated again and
    replaced; DOCL_CACHE="" keeps nothing on disk; an unwritable folder only skips the write."""
    import mnist1d.data as gen
    monkeypatch.setenv("DOCL_CACHE", str(tmp_path / "cache"))
    data_module._mnist1d_arrays.cache_clear()
    first = data_module._mnist1d_arrays(11, 600)
    files = list((tmp_path / "cache").glob("mnist1d-*-seed11-n600.npz"))
    assert len(files) == 1 and not list((tmp_path / "cache").glob("*.tmp"))

    real = gen.make_dataset
    monkeypatch.setattr(gen, "make_dataset", lambda *a, **k: pytest.fail("generated although cached"))
    data_module._mnist1d_arrays.cache_clear()
    again = data_module._mnist1d_arrays(11, 600)
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(first, again))
    assert not again[0].flags.writeable

    monkeypatch.setattr(gen, "make_dataset", real)
    for bad in (b"not an npz", None):
        if bad is None:   # a valid npz of the wrong size
            np.savez(files[0], x=first[0][:10], y=first[1][:10], x_test=first[2], y_test=first[3])
        else:
            files[0].write_bytes(bad)
        data_module._mnist1d_arrays.cache_clear()
        fixed = data_module._mnist1d_arrays(11, 600)
        assert all(np.array_equal(a, b) for a, b in zip(first, fixed))
        with np.load(files[0]) as z:
            assert np.array_equal(z["x"], first[0])             # the file was replaced

    monkeypatch.setenv("DOCL_CACHE", "")
    data_module._mnist1d_arrays.cache_clear()
    data_module._mnist1d_arrays(12, 600)
    assert not list(tmp_path.rglob("*seed12*"))
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("DOCL_CACHE", str(blocked / "sub"))    # cannot be created: no write, no error
    data_module._mnist1d_arrays.cache_clear()
    assert len(data_module._mnist1d_arrays(13, 600)[0]) == 480
    data_module._mnist1d_arrays.cache_clear()


def test_mnist1d_without_the_package_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)  # import fails as if not installed
    with pytest.raises(ValueError, match="pip install mnist1d") as info:
        load_dataset("mnist1d", data_seed=7)  # a seed no other test caches
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fraction", [0.1, 0.3])
def test_mnist1d_label_noise(fraction):
    clean = load_dataset("mnist1d", seed=2)
    ds = load_dataset("mnist1d", seed=2, label_noise=fraction)
    assert int(ds.noisy.sum()) == round(fraction * 3400)
    assert torch.equal(ds.noisy, ds.y_train != ds.clean_y_train)  # symmetric flips, never onto itself
    assert torch.equal(ds.clean_y_train, clean.y_train) and torch.equal(ds.y_test, clean.y_test)
    flipped_to = torch.bincount(ds.y_train[ds.noisy], minlength=10)
    assert int(flipped_to.min()) > 0  # flips land on every class
    frame = ds.frame(thumbnails=False)
    assert frame["noisy"].sum() == int(ds.noisy.sum())
    assert (frame["label"] != frame["clean_label"]).sum() == int(ds.noisy.sum())


def test_signal_thumbnails_are_line_plots():
    length, size = 40, 48
    ramp = np.linspace(-1.0, 1.0, length)[None, None]  # rises left to right
    flat = np.zeros((1, 1, length))
    pngs = signal_thumbnails(np.concatenate([ramp, -ramp, flat]), size=size)
    images = [np.array(Image.open(io.BytesIO(b))) for b in pngs]
    for img in images:
        assert img.shape == (size, size) and img.dtype == np.uint8
        dark = img < 100
        assert dark.any(axis=0)[3:size - 3].all()  # a line across the whole width, no gaps
        assert (dark.sum(0) <= 8).all()  # a line, not a filled area
    top_row = lambda img, col: int(np.flatnonzero(img[:, col] < 100)[0])
    rise, fall = images[0], images[1]
    assert top_row(rise, 3) > top_row(rise, size - 4)  # high values are drawn at the top
    assert top_row(fall, 3) < top_row(fall, size - 4)
    # Every value is drawn inside the canvas, even one far outside the others' range.
    spike = np.zeros((50, 1, length))
    spike[0, 0, 5] = 1e6
    assert len(signal_thumbnails(spike, size=size)) == 50


def test_sine_outliers_marked_noisy_in_train_only():
    ds = load_dataset("sine", seed=0)
    assert int(ds.noisy.sum()) == round(0.05 * len(ds.y_train))
    gap = (ds.y_train - ds.clean_y_train).abs().squeeze(1)
    assert bool((gap[ds.noisy] >= 1.0).all()) and bool((gap[~ds.noisy] == 0).all())


# ----------------------------------------------------------------------------- user files


def test_npz_tabular_classification_with_given_test(tmp_path):
    x, y = blob_arrays(60)
    xt, yt = blob_arrays(15, seed=1)
    ds = load_dataset(write_npz(tmp_path / "mine.npz", x=x, y=y, x_test=xt, y_test=yt), seed=0)
    assert (ds.name, ds.kind, ds.task) == ("mine", "tabular", "classification")
    assert (ds.input_shape, ds.num_outputs) == ((3,), 3)
    assert len(ds.x_test) == 15 and len(ds.x_train) + len(ds.x_val) == 60
    # The given test set is standardised with train statistics, not its own.
    assert torch.allclose(ds.original_x(ds.x_test), torch.tensor(xt, dtype=torch.float32), atol=1e-5)


def test_npz_labels_remapped_and_named(tmp_path):
    x, _ = blob_arrays(40)
    y = np.array([3, 7] * 20)
    ds = load_dataset(write_npz(tmp_path / "a.npz", x=x, y=y))
    assert ds.num_outputs == 2 and ds.class_names == ["3", "7"]
    assert set(ds.y_train.tolist()) == {0, 1}


def test_npz_regression_and_forced_task(tmp_path):
    x, y = blob_arrays(50)
    ds = load_dataset(write_npz(tmp_path / "r.npz", x=x, y=y.astype(np.float64) * 0.5))
    assert ds.task == "regression" and ds.y_train.shape[1:] == (1,) and ds.y_train.dtype == torch.float32
    ds = load_dataset(write_npz(tmp_path / "r2.npz", x=x, y=np.stack([y, -y], 1).astype(np.float32)))
    assert ds.num_outputs == 2 and ds.frame()["label"].eq(-1).all()
    ds = load_dataset(write_npz(tmp_path / "c.npz", x=x, y=y.astype(np.float32)), task="classification")
    assert ds.task == "classification" and ds.num_outputs == 3
    ds = load_dataset(write_npz(tmp_path / "i.npz", x=x, y=y), task="regression")
    assert ds.task == "regression"


@pytest.mark.parametrize("shape, expected", [((40, 6, 6), (1, 6, 6)), ((40, 3, 5, 5), (3, 5, 5)),
                                             ((40, 5, 5, 3), (3, 5, 5)), ((40,), (1,))])
def test_npz_shapes(tmp_path, shape, expected):
    x = np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)
    ds = load_dataset(write_npz(tmp_path / "s.npz", x=x, y=np.arange(40) % 2))
    assert ds.input_shape == expected
    assert ds.kind == ("image" if len(expected) == 3 else "tabular")


def test_csv_default_label_column_and_text_labels(tmp_path):
    x, y = blob_arrays(40)
    table = pd.DataFrame({"label": np.array(["cat", "dog", "eel"])[y], "a": x[:, 0], "b": x[:, 1]})
    table.to_csv(tmp_path / "t.csv", index=False)
    ds = load_dataset(str(tmp_path / "t.csv"))
    assert ds.kind == "tabular" and ds.input_shape == (2,) and ds.class_names == ["cat", "dog", "eel"]
    # Without a "label" column nothing is guessed (issue 17: the last column was taken); label_column names it.
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "cls": y}).to_csv(tmp_path / "u.csv", index=False)
    with pytest.raises(ValueError, match=r"u.csv has no column 'label' \(columns: a, b, cls\): .*--label-column"):
        load_dataset(str(tmp_path / "u.csv"))
    assert load_dataset(str(tmp_path / "u.csv"), label_column="cls").input_shape == (2,)
    ds = load_dataset(str(tmp_path / "u.csv"), label_column="a")
    assert ds.task == "regression" and ds.input_shape == (2,)


@pytest.mark.parametrize("protocol, str_keys", [(2, False), (5, True)])
def test_cifar_folder(tmp_path, protocol, str_keys):
    folder = write_cifar(tmp_path / "cifar-10-batches-py", n=20, protocol=protocol, str_keys=str_keys)
    ds = load_dataset(str(folder))
    assert (ds.kind, ds.input_shape, ds.num_outputs) == ("image", (3, 32, 32), 10)
    assert len(ds.x_test) == 20 and len(ds.x_train) + len(ds.x_val) == 40
    assert ds.class_names == [f"class{c}" for c in range(10)]
    # The parent folder works too, and limit caps the training pool.
    limited = load_dataset(str(tmp_path), limit=30)
    assert len(limited.x_train) + len(limited.x_val) == 30


def test_cifar_python2_pickles(tmp_path):
    """The official batches are Python 2 pickles; they must load through the restricted unpickler."""
    data = np.random.default_rng(0).integers(0, 256, (20, 3072), dtype=np.uint8)
    labels = [i % 10 for i in range(20)]
    (tmp_path / "data_batch_1").write_bytes(py2_batch(data, labels))
    (tmp_path / "test_batch").write_bytes(py2_batch(data[:10], labels[:10]))
    assert pickle.loads(py2_batch(data, labels), encoding="latin1")["data"].shape == (20, 3072)
    ds = load_dataset(str(tmp_path), val_fraction=0.0)
    assert ds.input_shape == (3, 32, 32) and len(ds.x_train) == 20 and len(ds.x_test) == 10
    pixels = ds.original_x(ds.x_test).round().to(torch.uint8).reshape(10, 3072).numpy()
    assert np.array_equal(pixels, data[:10])


def test_cifar_without_test_batch_or_meta(tmp_path):
    ds = load_dataset(str(write_cifar(tmp_path / "c", n=30, batches=1, test=False, meta=False)))
    assert len(ds.x_test) == 6 and ds.class_names[0] == "airplane"


def test_restricted_unpickler_rejects_code(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "data_batch_1").write_bytes(pickle.dumps({"data": Exploit()}))
    with pytest.raises(ValueError, match="system"):
        load_dataset(str(tmp_path / "evil"))
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):
        RestrictedUnpickler(io.BytesIO(pickle.dumps(eval))).load()
    # Plain containers of numpy arrays pass.
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    back = RestrictedUnpickler(io.BytesIO(pickle.dumps({"a": [arr, np.int64(3)]}))).load()
    assert np.array_equal(back["a"][0], arr) and back["a"][1] == 3


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder(tmp_path, gz):
    ds = load_dataset(str(write_idx(tmp_path / "fashion-mnist", n=30, n_test=20, gz=gz)))
    assert (ds.kind, ds.input_shape, ds.num_outputs) == ("image", (1, 28, 28), 10)
    assert len(ds.x_test) == 20 and ds.class_names[0] == "T-shirt/top"
    ds = load_dataset(str(write_idx(tmp_path / "plain", n=40, n_test=0)), limit=20)
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 20 and ds.class_names[0] == "0"


# ----------------------------------------------------------------------------- frame()


def test_frame_columns_per_kind():
    expected = {"points2d": {"x0", "x1"}, "curve1d": {"x0", "target"}, "image": {"thumbnail"},
                "signal": {"thumbnail"}}
    base = ["sample_id", "split", "label", "clean_label", "noisy", "source_row"]
    for name in ("digits", "moons", "sine", "mnist1d"):
        ds = load_dataset(name, label_noise=0.2 if name == "digits" else 0.0)
        frame = ds.frame()
        assert list(frame.columns[:6]) == base and set(frame.columns[6:]) == expected[ds.kind]
        n = (len(ds.x_train), len(ds.x_val), len(ds.x_test))
        assert frame["sample_id"].tolist() == list(range(sum(n)))
        assert frame["split"].tolist() == ["train"] * n[0] + ["val"] * n[1] + ["test"] * n[2]
        assert frame["noisy"].sum() == int(ds.noisy.sum())
        if ds.task == "classification":
            assert (frame["label"] != frame["clean_label"]).sum() == int(ds.noisy.sum())
    frame = load_dataset("moons").frame()
    assert frame[["x0", "x1"]].abs().max().max() < 4  # original units, not standardised


def test_frame_tabular_and_regression(tmp_path):
    x, y = blob_arrays(40)
    frame = load_dataset(write_npz(tmp_path / "t.npz", x=x, y=y)).frame()
    assert list(frame.columns) == ["sample_id", "split", "label", "clean_label", "noisy", "source_row", "f0", "f1", "f2"]
    assert frame["label"].between(0, 2).all() and not frame["noisy"].any()
    frame = load_dataset(write_npz(tmp_path / "r.npz", x=x[:, :1], y=np.sin(x[:, 0]))).frame()
    assert frame["label"].eq(-1).all() and frame["clean_label"].eq(-1).all() and "thumbnail" not in frame


def test_frame_thumbnails_are_png_and_parquet_small(tmp_path):
    frame = load_dataset("digits").frame()
    img = Image.open(io.BytesIO(frame["thumbnail"].iloc[0]))
    assert img.format == "PNG" and img.size == (32, 32) and img.mode == "L"
    frame.to_parquet(tmp_path / "dataset.parquet")
    assert os.path.getsize(tmp_path / "dataset.parquet") < 1_000_000
    back = pd.read_parquet(tmp_path / "dataset.parquet")
    assert back["thumbnail"].iloc[5] == frame["thumbnail"].iloc[5]
    cifar = load_dataset(str(write_cifar(tmp_path / "c", n=20, batches=1)))
    img = Image.open(io.BytesIO(cifar.frame()["thumbnail"].iloc[0]))
    assert img.size == (32, 32) and img.mode == "RGB"
    assert "thumbnail" not in cifar.frame(thumbnails=False)


def test_mnist1d_thumbnails_are_png_line_plots_and_parquet_small(tmp_path):
    ds = load_dataset("mnist1d", limit=400, test_limit=100)
    frame = ds.frame()
    assert len(frame) == 500
    for png in frame["thumbnail"].iloc[[0, 250, 499]]:
        img = Image.open(io.BytesIO(png))
        assert img.format == "PNG" and img.size == (48, 48) and img.mode == "L"
        pixels = np.array(img)
        assert 20 < (pixels < 100).sum() < 48 * 12  # a drawn line, not a blank or filled tile
    frame.to_parquet(tmp_path / "dataset.parquet")
    assert os.path.getsize(tmp_path / "dataset.parquet") < 300 * len(frame)
    assert "thumbnail" not in ds.frame(thumbnails=False)


# ----------------------------------------------------------------------------- bad input


def _npz(**arrays):
    return lambda tmp: write_npz(tmp / "bad.npz", **arrays)


def _file(name, content: bytes):
    def make(tmp):
        (tmp / name).write_bytes(content)
        return str(tmp / name)
    return make


def _truncated_npz(tmp):
    x, y = blob_arrays(200)
    write_npz(tmp / "full.npz", x=x, y=y)
    data = (tmp / "full.npz").read_bytes()
    (tmp / "cut.npz").write_bytes(data[: len(data) // 2])
    return str(tmp / "cut.npz")


def _object_npz(tmp):
    np.savez(tmp / "obj.npz", x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4))
    return str(tmp / "obj.npz")


def _csv(text):
    return _file("bad.csv", text.encode())


def _cifar_variant(content):
    def make(tmp):
        folder = write_cifar(tmp / "cifar", n=10, batches=1)
        (folder / "data_batch_1").write_bytes(content(folder / "data_batch_1"))
        return str(folder)
    return make


def _batch(obj):
    """A CIFAR folder whose data_batch_1 holds `obj` instead."""
    return _cifar_variant(lambda p: pickle.dumps(obj))


def _idx_variant(edit):
    def make(tmp):
        folder = write_idx(tmp / "fmnist", n=10, n_test=0)
        edit(folder)
        return str(folder)
    return make


def _edit(name, change):
    def edit(folder):
        path = folder / name
        path.write_bytes(change(path.read_bytes()))
    return edit


X, Y = blob_arrays(30)
IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
BAD_INPUTS = [
    # (case id, make(tmp_path) -> name_or_path, kwargs, words the message must contain)
    ("unknown name", lambda tmp: "mnist_please", {}, "unknown dataset"),
    ("empty name", lambda tmp: "", {}, "dataset must be"),
    ("missing path", lambda tmp: str(tmp / "nope.npz"), {}, "no such file"),
    ("unsupported suffix", _file("data.txt", b"1,2\n"), {}, "unsupported file type"),
    ("folder with nothing", lambda tmp: str(tmp), {}, "neither CIFAR"),
    ("npz not a zip", _file("junk.npz", b"this is not a zip archive"), {}, "not a .npz"),
    ("npz truncated", _truncated_npz, {}, "cannot read"),
    ("npz without y", _npz(x=X), {}, "no array(s) 'y'"),
    ("npz without x and y", _npz(a=X), {}, "'x' and 'y'"),
    ("npz only x_test", _npz(x=X, y=Y, x_test=X), {}, "only one of x_test"),
    ("npz object arrays", _object_npz, {}, "object"),
    ("npz mismatched lengths", _npz(x=X, y=Y[:-3]), {}, "30 samples but y has 27"),
    ("npz mismatched test lengths", _npz(x=X, y=Y, x_test=X, y_test=Y[:5]), {}, "x_test has 30 samples"),
    ("npz test shape", _npz(x=X, y=Y, x_test=X[:, :2], y_test=Y), {}, "per-sample shape"),
    ("npz NaN features", _npz(x=np.where(np.eye(30, 3) > 0, np.nan, X), y=Y), {}, "NaN or inf"),
    ("npz inf features", _npz(x=np.where(np.eye(30, 3) > 0, np.inf, X), y=Y), {}, "NaN or inf"),
    ("npz text features", _npz(x=np.array([["a"]] * 30), y=Y), {}, "features must be numbers"),
    ("npz 5-D x", _npz(x=np.zeros((30, 1, 2, 2, 2)), y=Y), {}, "shape"),
    ("npz empty", _npz(x=np.zeros((0, 3)), y=np.zeros(0, dtype=int)), {}, "empty"),
    ("npz negative labels", _npz(x=X, y=Y - 1), {}, "negative labels"),
    ("npz float labels as classes", _npz(x=X, y=Y + 0.5), {"task": "classification"}, "non-integer"),
    ("npz one class", _npz(x=X, y=np.zeros(30, dtype=int)), {}, "only one class"),
    ("npz NaN targets", _npz(x=X, y=np.where(Y == 0, np.nan, 1.0)), {}, "NaN or inf"),
    ("npz ids as labels", _npz(x=np.zeros((60, 2)), y=np.arange(60)), {}, "do not look like classes"),
    ("npz 2-D class labels", _npz(x=X, y=np.stack([Y, Y], 1)), {}, "shape (N,)"),
    ("npz unknown task", _npz(x=X, y=Y), {"task": "ranking"}, "unknown task"),
    ("csv empty", _csv(""), {}, "empty"),
    ("csv header only", _csv("a,b,label\n"), {}, "no rows"),
    ("csv not text", _file("bin.csv", bytes(range(128, 256)) * 4), {}, "cannot read"),
    ("csv text feature", _csv("a,b,label\n1,x,0\n2,y,1\n"), {}, "not numeric"),
    ("csv NaN feature", _csv("a,label\n1,0\n,1\n3,0\n4,1\n"), {}, "NaN or inf"),
    ("csv missing label", _csv("a,label\n1,0\n2,\n3,1\n"), {}, "missing value"),
    ("csv no such label column", _csv("a,b\n1,0\n2,1\n"), {"label_column": "y"}, "no column 'y'"),
    ("csv only a label column", _csv("label\n0\n1\n"), {}, "only the label column"),
    ("cifar forbidden pickle", _batch({"data": os.system}), {}, "system"),
    ("cifar truncated", _cifar_variant(lambda p: p.read_bytes()[:500]), {}, "truncated"),
    ("cifar not a dict", _batch([1, 2, 3]), {}, "not a CIFAR batch"),
    ("cifar wrong data shape", _batch({"data": np.zeros((2, 5)), "labels": [0, 1]}), {}, "lacks 'data'"),
    ("cifar label count", _batch({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}), {}, "2 images but 1 labels"),
    ("cifar text labels", _batch({"data": np.zeros((2, 3072), np.uint8), "labels": ["a", "b"]}), {}, "not integers"),
    ("idx bad magic", _idx_variant(_edit(IMAGES, lambda b: b"\x01\x02" + b[2:])), {}, "magic"),
    ("idx truncated", _idx_variant(_edit(IMAGES, lambda b: b[:-100])), {}, "truncated"),
    ("idx wrong ndim", _idx_variant(_edit(LABELS, lambda b: b[:3] + b"\x03" + b[4:])), {}, "expected 1-D"),
    ("idx corrupted gzip", _idx_variant(lambda f: (f / LABELS).rename(f / (LABELS + ".gz"))), {}, "gzip"),
    ("idx missing labels", _idx_variant(lambda f: (f / LABELS).unlink()), {}, "no train-labels"),
    ("idx count mismatch", _idx_variant(lambda f: (f / LABELS).write_bytes(idx_bytes(np.zeros(7, np.uint8)))),
     {}, "10 images but"),
    ("label_noise 1", lambda tmp: "digits", {"label_noise": 1.0}, "label_noise"),
    ("label_noise negative", lambda tmp: "digits", {"label_noise": -0.1}, "label_noise"),
    ("label_noise NaN", lambda tmp: "digits", {"label_noise": float("nan")}, "label_noise"),
    ("label_noise on regression", lambda tmp: "sine", {"label_noise": 0.1}, "classification only"),
    ("fractions leave no train", lambda tmp: "moons", {"val_fraction": 0.5, "test_fraction": 0.5}, "below 1"),
    ("test_fraction zero", lambda tmp: "moons", {"test_fraction": 0.0}, "test_fraction"),
    ("unknown option", lambda tmp: "digits", {"n_sample": 5}, "unknown option"),
    ("noise not a number", lambda tmp: "moons", {"noise": "lots"}, "noise must be"),
    ("data_seed not an int", lambda tmp: "sine", {"data_seed": 1.5}, "data_seed"),
    ("outliers too many", lambda tmp: "sine", {"outliers": 1.0}, "outliers"),
    ("limit zero", lambda tmp: "moons", {"limit": 0}, "limit"),
    ("n_samples negative", lambda tmp: "moons", {"n_samples": -3}, "n_samples"),
    ("negative seed", lambda tmp: "moons", {"seed": -1}, "seed"),
    ("too few samples", _npz(x=X[:2], y=Y[:2]), {}, "too few samples"),
    ("mnist1d unknown option", lambda tmp: "mnist1d", {"noise": 0.1}, "unknown option"),
    ("mnist1d bad data_seed", lambda tmp: "mnist1d", {"data_seed": -1}, "data_seed"),
]


@pytest.mark.parametrize("make, kwargs, needle", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_one_line_value_error(tmp_path, make, kwargs, needle):
    source = make(tmp_path)
    with pytest.raises(ValueError) as info:
        load_dataset(source, **kwargs)
    message = str(info.value)
    assert needle.lower() in message.lower(), message
    assert "\n" not in message and len(message) < 400
    assert type(info.value) is ValueError  # ours, not a numpy/pandas subclass leaking out


def test_dataset_is_a_dataclass_with_the_contract_fields():
    fields = set(Dataset.__dataclass_fields__)
    assert {"name", "task", "kind", "x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "num_outputs",
            "noisy", "clean_y_train", "class_names", "input_shape"} <= fields


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """Truncate, overwrite a few bytes, or cut a slice out."""
    how, b = rng.integers(3), bytearray(data)
    if how == 0:
        return bytes(b[: rng.integers(0, len(b))])
    if how == 1:
        for _ in range(rng.integers(1, 8)):
            b[rng.integers(len(b))] = rng.integers(256)
        return bytes(b)
    i = rng.integers(len(b))
    return bytes(b[:i] + b[i + rng.integers(1, 50):])


def test_corrupted_files_only_raise_value_error(tmp_path):
    """Randomly damaged npz / csv / CIFAR / idx files load or raise a one-line ValueError, nothing else."""
    x, y = blob_arrays(40)
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": y}).to_csv(tmp_path / "a.csv", index=False)
    targets = {  # file to damage -> what to load
        tmp_path / "a.npz": write_npz(tmp_path / "a.npz", x=x, y=y),
        tmp_path / "a.csv": str(tmp_path / "a.csv"),
        write_cifar(tmp_path / "c", n=20, batches=1) / "data_batch_1": str(tmp_path / "c"),
        write_idx(tmp_path / "i", n=20, n_test=0, gz=True) / "train-images-idx3-ubyte.gz": str(tmp_path / "i"),
        write_idx(tmp_path / "j", n=20, n_test=0) / "train-labels-idx1-ubyte": str(tmp_path / "j"),
    }
    originals = {path: path.read_bytes() for path in targets}
    rng = np.random.default_rng(0)
    for trial in range(150):
        path = list(targets)[trial % len(targets)]
        path.write_bytes(_mutate(originals[path], rng))
        try:
            load_dataset(targets[path])
        except ValueError as e:
            assert type(e) is ValueError and "\n" not in str(e), repr(e)


def test_a_user_files_digest_follows_its_contents(tmp_path):
    """run.json's data_digest: the same file read twice (any seed, any limit) gives the same digest,
    one changed value or label another; a CSV and its folder sources too; built-ins have none."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(90, 3)).astype(np.float32), rng.integers(0, 3, 90)
    path = write_npz(tmp_path / "d.npz", x=x, y=y)
    first = load_dataset(path, seed=0).digest
    assert isinstance(first, str) and len(first) == 32
    assert load_dataset(path, seed=5, limit=60).digest == first          # what was read, not what was kept
    x2 = x.copy()
    x2[7, 1] = np.nextafter(x2[7, 1], np.float32(np.inf))               # one value, one ulp
    assert load_dataset(write_npz(tmp_path / "d.npz", x=x2, y=y), seed=0).digest != first
    y2 = y.copy()
    y2[0] = (y2[0] + 1) % 3
    assert load_dataset(write_npz(tmp_path / "d.npz", x=x, y=y2), seed=0).digest != first
    assert load_dataset(write_npz(tmp_path / "d.npz", x=x, y=y), seed=0).digest == first
    pd.DataFrame({"a": x[:, 0], "label": y}).to_csv(tmp_path / "d.csv", index=False)
    assert load_dataset(str(tmp_path / "d.csv")).digest == load_dataset(str(tmp_path / "d.csv"), seed=3).digest
    # regression targets in float64: a one-ulp edit of a target (lost in float32) still shows
    t = x[:, 0].astype(np.float64) * 3.0
    before = load_dataset(write_npz(tmp_path / "r.npz", x=x, y=t), seed=0).digest
    t[4] = np.nextafter(t[4], np.inf)
    assert load_dataset(write_npz(tmp_path / "r.npz", x=x, y=t), seed=0).digest != before
    # string labels (object arrays)
    names = np.array(["cat", "dog", "owl"])[y]
    pd.DataFrame({"a": x[:, 0], "label": names}).to_csv(tmp_path / "s.csv", index=False)
    first_s = load_dataset(str(tmp_path / "s.csv")).digest
    names[0] = "emu"
    pd.DataFrame({"a": x[:, 0], "label": names}).to_csv(tmp_path / "s.csv", index=False)
    assert load_dataset(str(tmp_path / "s.csv")).digest != first_s
    assert load_dataset("digits").digest is None


@pytest.mark.parametrize("text, column, line, row, later", [
    ("a,b,label\n1,2,0\n3,,1\n4,5,0\n6,7,1\n", "b", 3, 1, 0),                  # an empty cell
    ("a,b,label\n1,2,0\n3,4,1\n\nnan,5,0\n6,inf,1\n", "a", 5, 2, 1),            # NaN after a blank line
    ('a,b,label\n1,2,"x\ny"\n3,4,z\n5,1e300,x\n6,7,z\n', "b", 5, 2, 0),        # a record spanning lines; beyond float32
])
def test_a_csv_feature_that_is_not_a_number_is_named_by_line_row_and_column(tmp_path, text, column, line, row, later):
    """The CSV loader names the first bad value's column, its line in the file (as an editor or a
    spreadsheet numbers it) and its data row counted from 0 after the header, which is what
    dataset.parquet's source_row calls it: pandas.read_csv(path).iloc[row] is that row."""
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_dataset(str(path))
    message = str(info.value)
    assert message.startswith(f"bad.csv: column {column!r} is not a finite number")
    assert f"at line {line} (data row {row}, counted from 0 after the header, as source_row counts)" in message
    assert "NaN or inf" in message and "\n" not in message
    bad = pd.read_csv(path).iloc[row][column]
    assert not abs(float(bad)) <= float(np.finfo(np.float32).max)  # the row named is the bad one, by source_row's numbering
    assert (f"; {later} later row(s) have such values too" in message) == (later > 0)


def test_a_csv_label_that_is_missing_is_named_by_line_and_row(tmp_path):
    path = tmp_path / "lab.csv"
    path.write_text("a,label\n1,0\n2,1\n3,\n4,\n5,0\n")
    with pytest.raises(ValueError, match=r"lab.csv: label column 'label' has 2 missing value\(s\), the first at "
                                         r"line 4 \(data row 2, counted from 0 after the header"):
        load_dataset(str(path))
