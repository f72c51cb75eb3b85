"""MNIST-1D end to end: a one-round run from the CLI, its dataset.parquet, and the Selected-subsets
gallery drawing the signals' line-plot thumbnails (streamlit.testing AppTest).

The loader and the model have their unit tests in test_data.py and test_models.py.
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from docl_core.cli import main  # noqa: E402

TINY = ["--rounds", "1", "--k-start", "0.05", "--warmup-epochs", "0", "--epochs-per-round", "1",
        "--probe-size", "6", "--log-estimators", "", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def mnist1d_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "mnist1d"
    assert main(["run", "--dataset", "mnist1d", "--curriculum", "docl", "--out", str(out), *TINY]) == 0
    return out


def test_cli_run_on_mnist1d(mnist1d_run):
    run = mnist1d_run / "docl-s0"
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "complete" and meta["last_complete_round"] == 0
    assert meta["dataset_kind"] == "signal" and meta["num_train"] == 3400
    assert meta["class_names"] == [str(c) for c in range(10)]
    samples = pd.read_parquet(run / "samples" / "round=0000.parquet")
    assert len(samples) == 3400 and int(samples["selected"].sum()) == round(0.05 * 3400)
    assert np.isfinite(samples["score"]).all()
    rounds = pd.read_parquet(run / "rounds.parquet")
    assert 0.0 <= float(rounds["test_acc"].iloc[0]) <= 1.0
    dataset = pd.read_parquet(run / "dataset.parquet")
    assert len(dataset) == 5000 and set(dataset["split"]) == {"train", "val", "test"}
    img = Image.open(io.BytesIO(dataset["thumbnail"].iloc[0]))
    assert img.format == "PNG" and img.size == (48, 48)


def test_cli_unknown_model_on_a_signal_dataset(tmp_path, capsys):
    assert main(["run", "--dataset", "mnist1d", "--model", "transformer", "--out", str(tmp_path), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown model 'transformer'" in err and "cnn" in err
    assert main(["run", "--dataset", "mnist1d", "--model", "resnet", "--out", str(tmp_path), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "1-D signal" in err


def test_subsets_gallery_shows_signal_thumbnails(mnist1d_run, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DOCL_RUNS", str(mnist1d_run))
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=90)
    at.run()
    at.switch_page("app_pages/subsets.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Selected subsets"
    gallery = at.get("image")
    assert len(gallery) == 1  # one gallery element holding the line-plot thumbnails
    shown = gallery[0].proto.imgs
    assert len(shown) == min(40, round(0.05 * 3400))
    assert all(i.caption.startswith("#") for i in shown)
    assert any("highest-scoring" in m.value for m in at.markdown)
    assert any("line plot" in c.value for c in at.caption)
