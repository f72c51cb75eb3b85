"""`docl export RUN_OR_EXPERIMENT --to tensorboard OUT` and DynamicsTracker(..., tensorboard=writer).

The event files are read back with TensorBoard's own reader (EventAccumulator): every scalar
matches rounds.parquet, every round has its score histograms, and the projector files list
every training sample. Bad inputs (a missing run, a corrupted run, an OUT that already holds
files) give one-line errors and leave the disk as it was.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from docl_core.cli import main  # noqa: E402
from docl_core.store import RunReader  # noqa: E402
from synthetic_runs import SyntheticSpec, write_experiment  # noqa: E402
from test_bad_input import tree_hash  # noqa: E402
from test_embedding import FeatureNet, own_loop  # noqa: E402


@pytest.fixture(scope="module")
def exp(tmp_path_factory) -> Path:
    return write_experiment(tmp_path_factory.mktemp("runs") / "images", SyntheticSpec(
        n=120, rounds=4, seeds=(0,), curricula=("random", "docl"), running=True, failed=False))


def cli(*args) -> tuple[int, str, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(list(map(str, args)))
        except SystemExit as e:  # argparse
            code = e.code
    return code, out.getvalue().strip(), err.getvalue().strip()


def accumulator(logdir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def check_scalars(acc: EventAccumulator, run: RunReader) -> None:
    rounds = run.rounds()
    tags = set(acc.Tags()["scalars"])
    numeric = [c for c in rounds.columns if c != "round" and pd.api.types.is_numeric_dtype(rounds[c])]
    for col in numeric:
        want = rounds[["round", col]].dropna()
        if not len(want):
            continue
        assert f"docl/{col}" in tags, col
        got = acc.Scalars(f"docl/{col}")
        assert [e.step for e in got] == want["round"].tolist(), col
        np.testing.assert_allclose([e.value for e in got], want[col].astype(float), rtol=1e-6, err_msg=col)
    share = [e.value for e in acc.Scalars("docl/noisy_share_selected")]
    np.testing.assert_allclose(share, rounds["noisy_selected"] / rounds["k"], rtol=1e-6)


def test_export_experiment_reads_back_with_tensorboard(exp, tmp_path):
    out = tmp_path / "tb" / "images"
    code, stdout, stderr = cli("export", exp, "--to", "tensorboard", out)
    assert code == 0, stderr
    assert "tensorboard --logdir" in stdout
    runs = sorted(p.name for p in exp.iterdir() if (p / "run.json").exists())
    assert sorted(p.name for p in out.iterdir()) == runs
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temp folder left behind"
    for name in runs:
        run = RunReader(exp / name)
        acc = accumulator(out / name)
        check_scalars(acc, run)
        hist = acc.Histograms("docl/hist/score")
        assert [e.step for e in hist] == run.round_ids
        assert hist[0].histogram_value.num == 120
        assert "docl/hist/score_byproduct" in acc.Tags()["histograms"]
        # the projector: the last committed round's map, every training sample, with metadata and sprite
        t = run.embedding_rounds()[-1]
        assert t == run.last_complete_round  # a live run exports its committed rounds only
        config = (out / name / "projector_config.pbtxt").read_text()
        assert f'tensor_name: "penultimate_pca:{t:05d}"' in config and "sprite" in config
        folder = out / name / f"{t:05d}" / "penultimate_pca"
        meta = pd.read_csv(folder / "metadata.tsv", sep="\t")
        assert meta["sample_id"].tolist() == list(range(120))
        samples = run.samples(t).set_index("sample_id")
        assert meta["selected"].tolist() == samples.loc[meta["sample_id"], "selected"].tolist()
        np.testing.assert_allclose(meta["score"], samples.loc[meta["sample_id"], "score"], rtol=1e-3)
        tensors = np.loadtxt(folder / "tensors.tsv", delimiter="\t")
        emb = run.embedding(t)
        assert tensors.shape == (120, 8)
        np.testing.assert_allclose(tensors[:, :2], emb[["x", "y"]].to_numpy(), rtol=1e-5, atol=1e-6)
        assert (folder / "sprite.png").stat().st_size > 0


def test_export_own_loop_run_and_tracker_tensorboard_writer(tmp_path):
    """A user's loop that already logs to TensorBoard gets docl's scalars beside its own curves; the
    export of the same run writes the same scalars."""
    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(str(tmp_path / "mine-tb"))
    writer.add_scalar("my/own_curve", 1.0, 0)
    tr = own_loop(tmp_path / "mine" / "run-0", FeatureNet(), epochs=2, tensorboard=writer)
    tr.close()
    writer.close()
    run = RunReader(tmp_path / "mine" / "run-0")
    acc = accumulator(tmp_path / "mine-tb")
    assert "my/own_curve" in acc.Tags()["scalars"]
    check_scalars(acc, run)
    assert [e.step for e in acc.Histograms("docl/hist/score")] == [0, 1]

    code, _, stderr = cli("export", run.dir, "--to", "tensorboard", tmp_path / "tb")
    assert code == 0, stderr
    check_scalars(accumulator(tmp_path / "tb" / "run-0"), run)
    meta = pd.read_csv(tmp_path / "tb" / "run-0" / "00001" / "penultimate_pca" / "metadata.tsv", sep="\t")
    assert len(meta) == 240


def test_export_run_without_map_writes_scalars_only(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    own_loop(tmp_path / "plain" / "run-0", model, epochs=1).close()
    code, stdout, stderr = cli("export", tmp_path / "plain", "--to", "tensorboard", tmp_path / "tb")
    assert code == 0, stderr
    assert "no projector for run-0" in stdout
    assert not (tmp_path / "tb" / "run-0" / "projector_config.pbtxt").exists()
    assert accumulator(tmp_path / "tb" / "run-0").Scalars("docl/test_acc")


# ----------------------------------------------------------------------------- bad input


def _corrupt_rounds(root: Path) -> Path:
    run = root / "exp" / "docl-s0"
    (run / "rounds.parquet").write_bytes(b"PAR1 not really")
    return root / "exp" / "docl-s0"


def _corrupt_round_file(root: Path) -> Path:
    run = root / "exp" / "docl-s0"
    (run / "samples" / "round=0002.parquet").write_bytes(b"garbage")
    return root / "exp"


def _corrupt_run_json(root: Path) -> Path:
    (root / "exp" / "random-s0" / "run.json").write_text("{not json")
    return root / "exp"


def _corrupt_map(root: Path) -> Path:
    (root / "exp" / "docl-s0" / "embedding" / "round=0003.parquet").write_bytes(b"garbage")
    return root / "exp" / "docl-s0"


def _missing(root: Path) -> Path:
    return root / "exp" / "no-such-run"


def _not_a_run(root: Path) -> Path:
    (root / "empty").mkdir()
    return root / "empty"


BAD = [("missing-run", _missing, (r"does not exist", r"point at a run")),
       ("not-a-run", _not_a_run, (r"holds no docl runs", r"point at")),
       ("corrupted-rounds", _corrupt_rounds, (r"rounds.parquet is corrupted", r"delete the run folder")),
       ("corrupted-round-file", _corrupt_round_file, (r"round=0002.parquet is corrupted", r"run it again")),
       ("corrupted-run-json", _corrupt_run_json, (r"random-s0.*corrupted", r"export the other runs")),
       ("corrupted-map", _corrupt_map, (r"embedding/round=0003.parquet is corrupted", r"run it again"))]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
@pytest.mark.parametrize("nested", [False, True], ids=["out", "out-in-new-folders"])
def test_export_bad_input_one_line_and_writes_nothing(exp, tmp_path, case, nested):
    import re
    import shutil
    _, setup, expect = case
    root = tmp_path / "root"
    shutil.copytree(exp, root / "exp")
    source = setup(root)
    before = tree_hash(root)
    out = root / "new" / "deeper" / "tb" if nested else root / "tb"
    code, stdout, stderr = cli("export", source, "--to", "tensorboard", out)
    assert code == 2, (code, stderr)
    assert stderr.startswith("docl: error: ") and len(stderr.splitlines()) == 1, stderr
    assert "Traceback" not in stderr
    for pattern in expect:
        assert re.search(pattern, stderr), (pattern, stderr)
    assert tree_hash(root) == before, "export wrote something"


def test_export_refuses_an_out_folder_with_files(exp, tmp_path):
    out = tmp_path / "tb"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, stderr = cli("export", exp, "--to", "tensorboard", out)
    assert code == 2 and "already exists" in stderr and "choose a new OUT" in stderr
    assert [p.name for p in tmp_path.iterdir()] == ["tb"] and (out / "keep.txt").read_text() == "mine"


def test_export_needs_a_format(exp, tmp_path):
    code, _, stderr = cli("export", exp, tmp_path / "tb")
    assert code == 2 and stderr.startswith("docl: error: ") and "--to" in stderr
    assert not (tmp_path / "tb").exists()


def test_export_of_a_live_run_stops_at_its_commit_point(tmp_path):
    """Rounds written after the last commit (a writer mid-round) are not exported."""
    exp = write_experiment(tmp_path / "exp", SyntheticSpec(n=60, rounds=3, seeds=(0,), curricula=("docl",),
                                                           running=False, failed=False))
    run = exp / "docl-s0"
    meta = json.loads((run / "run.json").read_text())
    meta["last_complete_round"], meta["status"] = 1, "running"
    (run / "run.json").write_text(json.dumps(meta))  # round 2's files exist but are not committed
    code, _, stderr = cli("export", run, "--to", "tensorboard", tmp_path / "tb")
    assert code == 0, stderr
    acc = accumulator(tmp_path / "tb" / "docl-s0")
    assert [e.step for e in acc.Scalars("docl/k")] == [0, 1]
    assert (tmp_path / "tb" / "docl-s0" / "00001").is_dir() and not (tmp_path / "tb" / "docl-s0" / "00002").exists()
