"""A user's own rows traced through the lab: dataset.parquet's source_row (and, for tabular data,
the feature values as read) maps every sample back to the file it came from, and the Selected
subsets page, its download and the TensorBoard export carry it.

The files are tiny and written here, with labels that look shuffled, so that a sample's id and
its row in the file disagree: only source_row finds the row again.
"""
from __future__ import annotations

import contextlib
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from docl_core import views  # noqa: E402
from docl_core.cli import main  # noqa: E402
from docl_core.data import load_dataset  # noqa: E402
from docl_core.store import RunReader, feature_columns  # noqa: E402
from test_data import write_cifar, write_idx  # noqa: E402

TINY = ["--rounds", "1", "--probe-size", "0", "--warmup-epochs", "0", "--k-start", "0.5", "--no-progress",
        "--device", "cpu"]
BASE = ["sample_id", "split", "label", "clean_label", "noisy", "source_row"]


def write_csv(path: Path, n: int = 80) -> pd.DataFrame:
    """Features with their own units (a float with decimals, an integer, a negative float) and a
    label column of three classes in a shuffled-looking order."""
    rng = np.random.default_rng(7)
    table = pd.DataFrame({"weight_kg": rng.normal(70, 12, n).round(3),
                          "age": rng.integers(18, 90, n),
                          "label": rng.permutation(np.arange(n) % 3),
                          "balance": rng.normal(-500, 300, n).round(2)})
    table.to_csv(path, index=False)
    return pd.read_csv(path)


def write_npz(path: Path, n: int = 80, test: int = 0) -> dict:
    rng = np.random.default_rng(8)
    arrays = {"x": rng.normal(3, 2, (n, 3)).astype(np.float32), "y": rng.permutation(np.arange(n) % 3)}
    if test:
        arrays.update(x_test=rng.normal(3, 2, (test, 3)).astype(np.float32), y_test=np.arange(test) % 3)
    np.savez(path, **arrays)
    return arrays


def check_rows(frame: pd.DataFrame, labels: np.ndarray, features: np.ndarray, names: list[str],
               splits=("train", "val", "test")) -> None:
    """Every sample of the given splits: its label and features are those of its source row."""
    part = frame[frame["split"].isin(splits)]
    assert len(part) and part["source_row"].dtype == np.int64
    rows = part["source_row"].to_numpy()
    np.testing.assert_array_equal(part["label"].to_numpy(), labels[rows])
    np.testing.assert_array_equal(part[names].to_numpy(np.float64), features[rows].astype(np.float64))


# ----------------------------------------------------------------------------- the loader


def test_csv_frame_maps_every_sample_to_its_row(tmp_path):
    table = write_csv(tmp_path / "mine.csv")
    names = ["weight_kg", "age", "balance"]
    for seed in (0, 3):
        ds = load_dataset(str(tmp_path / "mine.csv"), seed=seed)
        frame = ds.frame()
        assert list(frame.columns) == BASE + names
        check_rows(frame, table["label"].to_numpy(), table[names].to_numpy(), names)
        # every row exactly once; each split in file order; ids ≠ rows (else this test proves nothing)
        assert sorted(frame["source_row"]) == list(range(len(table)))
        for _, part in frame.groupby("split"):
            assert part["source_row"].is_monotonic_increasing
        train = frame[frame["split"] == "train"]
        assert (train["label"].to_numpy() != table["label"].to_numpy()[train["sample_id"]]).mean() > 0.3


def test_csv_feature_named_like_a_frame_column_and_a_limit(tmp_path):
    rng = np.random.default_rng(1)
    n = 90
    table = pd.DataFrame({"label": rng.normal(size=n).round(3), "x0": rng.integers(0, 5, n),
                          "y": rng.permutation(np.arange(n) % 3), "source_row": np.arange(n)[::-1]})
    table.to_csv(tmp_path / "odd.csv", index=False)
    frame = load_dataset(str(tmp_path / "odd.csv"), label_column="y", limit=60).frame()
    names = ["label (feature)", "x0 (feature)", "source_row (feature)"]
    assert list(frame.columns) == BASE + names and len(frame) == 60
    check_rows(frame, table["y"].to_numpy(), table[["label", "x0", "source_row"]].to_numpy(), names)


def test_npz_frame_maps_rows_and_its_own_test_set(tmp_path):
    arrays = write_npz(tmp_path / "mine.npz", test=12)
    frame = load_dataset(str(tmp_path / "mine.npz"), seed=2).frame()
    names = ["f0", "f1", "f2"]
    assert list(frame.columns) == BASE + names
    check_rows(frame, arrays["y"], arrays["x"], names, splits=("train", "val"))
    check_rows(frame, arrays["y_test"], arrays["x_test"], names, splits=("test",))  # rows of x_test
    assert frame.loc[frame["split"] == "test", "source_row"].tolist() == list(range(12))


def test_folders_and_builtins_record_source_rows_without_pixel_columns(tmp_path):
    from sklearn.datasets import load_digits

    cifar = load_dataset(str(write_cifar(tmp_path / "c", n=20, batches=2)), seed=1)
    frame = cifar.frame()
    assert list(frame.columns) == BASE + ["thumbnail"]  # small: no pixel columns
    pool = frame[frame["split"] != "test"]
    assert sorted(pool["source_row"]) == list(range(40))  # over data_batch_1, data_batch_2 in order
    np.testing.assert_array_equal(pool["label"], pool["source_row"] % 20 % 10)  # labels cycle per batch
    test = frame[frame["split"] == "test"]
    assert test["source_row"].tolist() == list(range(20))  # rows of test_batch
    idx = load_dataset(str(write_idx(tmp_path / "fashion", n=40, n_test=0)), seed=1).frame()
    assert sorted(idx["source_row"]) == list(range(40)) and "thumbnail" in idx
    np.testing.assert_array_equal(idx["label"], idx["source_row"] % 10)  # the idx file labels row r r % 10
    digits = load_dataset("digits", seed=4).frame(thumbnails=False)
    np.testing.assert_array_equal(digits["label"], load_digits().target[digits["source_row"]])


# ----------------------------------------------------------------------------- a run


def run_on(dataset: Path, out: Path) -> Path:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", "--dataset", str(dataset), "--out", str(out), *TINY])
    assert code == 0, err.getvalue()
    return next(p for p in out.iterdir() if (p / "run.json").exists())


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("rows")
    table = write_csv(root / "patients.csv")
    return run_on(root / "patients.csv", root / "exp"), table


def test_run_dataset_parquet_maps_train_rows_to_the_csv(csv_run):
    run_dir, table = csv_run
    frame = pd.read_parquet(run_dir / "dataset.parquet")  # the contract, read with plain pandas
    names = ["weight_kg", "age", "balance"]
    assert feature_columns(frame.columns) == names
    check_rows(frame, table["label"].to_numpy(), table[names].to_numpy(), names, splits=("train",))
    # the labels the run trained on are the file's: samples' label column agrees row by row
    samples = RunReader(run_dir).samples(0).merge(frame, on="sample_id", suffixes=("", "_ds"))
    assert len(samples) == (frame["split"] == "train").sum()
    np.testing.assert_array_equal(samples["label"], table["label"].to_numpy()[samples["source_row"]])


def test_run_on_npz_maps_train_rows(tmp_path):
    arrays = write_npz(tmp_path / "mine.npz")
    frame = pd.read_parquet(run_on(tmp_path / "mine.npz", tmp_path / "exp") / "dataset.parquet")
    check_rows(frame, arrays["y"], arrays["x"], ["f0", "f1", "f2"], splits=("train",))


def test_selection_frame_and_table_carry_rows_and_features(csv_run):
    run_dir, table = csv_run
    reader = RunReader(run_dir)
    sel = views.selection_frame(reader, 0, reader.dataset(thumbnails=False))
    assert {"source_row", "weight_kg", "age", "balance"} <= set(sel.columns)
    shown = views.selection_table(sel, reader.meta["class_names"])
    assert list(shown.columns[:3]) == ["sample_id", "source_row", "label"]
    assert len(shown) == int(sel["selected"].sum()) and shown["score"].is_monotonic_decreasing
    np.testing.assert_array_equal(shown[["weight_kg", "age", "balance"]].to_numpy(np.float64),
                                  table.loc[shown["source_row"], ["weight_kg", "age", "balance"]].to_numpy(np.float64))
    assert shown["label"].tolist() == [str(v) for v in table.loc[shown["source_row"], "label"]]


def _subsets_page(root: Path, monkeypatch):
    from test_app import ok, open_app
    at = open_app(root, monkeypatch, "subsets")
    ok(at)
    return at


def test_subsets_page_shows_the_selected_rows_for_tabular_data(csv_run, monkeypatch):
    run_dir, table = csv_run
    at = _subsets_page(run_dir.parent, monkeypatch)
    tables = [d.value for d in at.dataframe if "source_row" in d.value.columns]
    assert len(tables) == 1, "no table of the selected rows"
    shown = tables[0]
    assert {"sample_id", "source_row", "label", "score", "weight_kg", "age", "balance"} <= set(shown.columns)
    sel = RunReader(run_dir).samples(0)
    assert len(shown) == int(sel["selected"].sum())
    np.testing.assert_allclose(shown["balance"], table.loc[shown["source_row"], "balance"])
    assert not [i for i in at.info if "tables below" in i.value]
    assert any("source_row is the sample's row in your file" in c.value for c in at.caption)


def test_subsets_page_and_export_on_a_run_from_before_source_rows(csv_run, tmp_path, monkeypatch):
    """An older run's dataset.parquet has neither source_row nor features: it still opens."""
    run_dir, _ = csv_run
    old = tmp_path / "old" / run_dir.name
    shutil.copytree(run_dir, old)
    frame = pd.read_parquet(old / "dataset.parquet")
    frame[["sample_id", "split", "label", "clean_label", "noisy"]].to_parquet(old / "dataset.parquet")
    at = _subsets_page(old.parent, monkeypatch)
    assert [d.value for d in at.dataframe if "score" in d.value.columns and "source_row" not in d.value.columns]
    assert any("before docl recorded" in c.value for c in at.caption)
    pytest.importorskip("tensorboard")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["export", str(old), "--to", "tensorboard", str(tmp_path / "tb")]) == 0
    meta = next((tmp_path / "tb").rglob("metadata.tsv"))
    assert "source_row" not in pd.read_csv(meta, sep="\t").columns


def test_export_metadata_carries_source_row(csv_run, tmp_path):
    pytest.importorskip("tensorboard")
    run_dir, table = csv_run
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["export", str(run_dir), "--to", "tensorboard", str(tmp_path / "tb")]) == 0
    meta = pd.read_csv(next((tmp_path / "tb").rglob("metadata.tsv")), sep="\t")
    assert list(meta.columns[:3]) == ["sample_id", "source_row", "label"]
    frame = RunReader(run_dir).dataset().set_index("sample_id")
    assert meta["source_row"].tolist() == frame.loc[meta["sample_id"], "source_row"].tolist()
    assert meta["label"].astype(str).tolist() == [str(v) for v in table.loc[meta["source_row"], "label"]]
