"""The bad-input catalogue (issue 7): every wrong thing a user can hand docl, one row each.

Each row is run the way a user meets it — the CLI in-process (`docl_core.cli.main`), the run
reader the app uses, or a public function — and must give a one-line message that names the
problem and the fix (the row's regexes), a non-zero exit code (CLI) or a ValueError/RunStoreError
(library), no traceback, and leave every file already on disk byte-for-byte as it was.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import pytest
import torch

from docl_core.cli import main
from docl_core.store import ExperimentReader, RunReader, RunStoreError, resolve_inside

FAST = ["--model", "mlp", "--rounds", "1", "--k-start", "0.3", "--warmup-epochs", "0", "--probe-size", "4",
        "--diversity", "none", "--no-progress", "--device", "cpu"]
FAST_PAPER = [a for a in FAST if a not in ("--rounds", "1", "--warmup-epochs", "0")]
REDO = r"delete the run folder and run it again"


@dataclass
class Case:
    id: str
    kind: str                     # "cli": argv for main; "read": the run reader; "api": a library call
    what: object                  # cli: list of args ({placeholders}); read/api: callable(root) -> None
    expect: tuple[str, ...]       # regexes the message must match: the problem, then the fix
    setup: Optional[Callable[[Path], None]] = None  # builds this row's damaged copy first


# ----------------------------------------------------------------------------- the bad files


def _save(path: Path, **arrays) -> None:
    np.savez(path, **arrays)


def _xy(n=120, d=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _cifar_batch(n=30, labels=None, data=None) -> dict:
    rng = np.random.default_rng(1)
    return {"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8) if data is None else data,
            "labels": list(rng.integers(0, 10, n)) if labels is None else labels}


def _idx(array: np.ndarray) -> bytes:
    code = {np.uint8: 0x08}[array.dtype.type]
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def make_files(d: Path) -> None:
    x, y = _xy()
    _save(d / "good.npz", x=x, y=y)
    _save(d / "wide.npz", x=np.concatenate([x, x[:, :1]], 1), y=y)  # one more feature
    _save(d / "more.npz", x=np.concatenate([x, x[:80]]), y=np.concatenate([y, y[:80]]))  # more samples
    edited = x.copy()
    edited[3, 0] += 1.0
    _save(d / "edited.npz", x=edited, y=y)                                 # same shape, one value changed
    _save(d / "shape5d.npz", x=np.zeros((120, 1, 2, 2, 2), np.float32), y=y)
    _save(d / "mismatch.npz", x=x, y=y[:100])
    xn = x.copy(); xn[3, 1] = np.nan
    _save(d / "nan.npz", x=xn, y=y)
    xi = x.copy(); xi[7, 0] = np.inf
    _save(d / "inf.npz", x=xi, y=y)
    _save(d / "negative.npz", x=x, y=y - 1)
    _save(d / "unseen_test_class.npz", x=x, y=y, x_test=x[:20], y_test=np.full(20, 7))
    _save(d / "empty.npz", x=np.zeros((0, 2), np.float32), y=np.zeros(0, np.int64))
    _save(d / "one_class.npz", x=x, y=np.zeros(120, np.int64))
    _save(d / "no_y.npz", x=x)
    _save(d / "x_test_only.npz", x=x, y=y, x_test=x[:10])
    _save(d / "text_features.npz", x=np.array([["a", "b"]] * 120), y=y)
    _save(d / "ids_as_labels.npz", x=x, y=np.arange(120))
    _save(d / "regression.npz", x=x, y=x[:, 0] * 2.5)
    np.savez(d / "object.npz", x=np.array([{"a": 1}] * 120, dtype=object), y=y)
    good = (d / "good.npz").read_bytes()
    (d / "truncated.npz").write_bytes(good[: len(good) // 2])
    (d / "garbage.npz").write_bytes(b"\x00\x01not a zip at all" * 50)
    (d / "zero_bytes.npz").write_bytes(b"")
    (d / "notes.txt").write_text("hello")
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": y}).to_csv(d / "good.csv", index=False)
    (d / "empty.csv").write_text("")
    (d / "header_only.csv").write_text("a,b,label\n")
    pd.DataFrame({"a": x[:, 0], "b": ["t"] * 120, "label": y}).to_csv(d / "text.csv", index=False)
    lab = y.astype(float); lab[5] = np.nan
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": lab}).to_csv(d / "missing_label.csv", index=False)
    pd.DataFrame({"label": y}).to_csv(d / "label_only.csv", index=False)
    xa = x[:, 0].copy(); xa[2] = np.nan
    pd.DataFrame({"a": xa, "b": x[:, 1], "label": y}).to_csv(d / "nan_feature.csv", index=False)
    (d / "binary.csv").write_bytes(bytes(range(256)) * 20)
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "cls": y}).to_csv(d / "no_label.csv", index=False)
    pd.DataFrame({"a": x[:4, 0], "label": [0, 1, 0, 1]}).to_csv(d / "four_rows.csv", index=False)
    # CIFAR-10 python-batch folders
    cifar = {
        "cifar_garbage": b"\x80\x04garbage" * 30,
        "cifar_truncated": pickle.dumps(_cifar_batch())[:500],
        "cifar_malicious": pickle.dumps(_Evil()),
        "cifar_not_a_dict": pickle.dumps([1, 2, 3]),
        "cifar_mismatch": pickle.dumps(_cifar_batch(labels=[1, 2, 3])),
        "cifar_wrong_width": pickle.dumps(_cifar_batch(data=np.zeros((30, 100), np.uint8))),
    }
    for name, blob in cifar.items():
        (d / name).mkdir()
        (d / name / "data_batch_1").write_bytes(blob)
        (d / name / "test_batch").write_bytes(pickle.dumps(_cifar_batch()))
    # Fashion-MNIST idx folders
    imgs = np.zeros((40, 28, 28), np.uint8)
    labels = (np.arange(40) % 10).astype(np.uint8)
    idx = {
        "idx_bad_magic": {"train-images-idx3-ubyte": b"\x12\x34" + _idx(imgs)[2:],
                          "train-labels-idx1-ubyte": _idx(labels)},
        "idx_truncated": {"train-images-idx3-ubyte": _idx(imgs)[:3000], "train-labels-idx1-ubyte": _idx(labels)},
        "idx_no_labels": {"train-images-idx3-ubyte": _idx(imgs)},
        "idx_count_mismatch": {"train-images-idx3-ubyte": _idx(imgs), "train-labels-idx1-ubyte": _idx(labels[:30])},
        "idx_bad_gzip": {"train-images-idx3-ubyte.gz": gzip.compress(_idx(imgs))[:-40],
                         "train-labels-idx1-ubyte": _idx(labels)},
        "idx_swapped": {"train-images-idx3-ubyte": _idx(labels), "train-labels-idx1-ubyte": _idx(imgs)},
    }
    for name, files in idx.items():
        (d / name).mkdir()
        for fname, blob in files.items():
            (d / name / fname).write_bytes(blob)
    (d / "plain_folder").mkdir()
    (d / "plain_folder" / "readme.md").write_text("nothing here")


@pytest.fixture(scope="module")
def root(tmp_path_factory, one_thread) -> Path:
    root = tmp_path_factory.mktemp("catalogue")
    (root / "data").mkdir()
    make_files(root / "data")
    (root / "a_file").write_text("a regular file, not a folder")
    # the run that must survive every row untouched (default name docl-s0)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", "--dataset", str(root / "data" / "good.npz"), "--out", str(root / "exp"), *FAST]) == 0
    (root / "empty_exp").mkdir()
    return root


def _copy(root: Path, case_id: str) -> Path:
    """A private copy of the good run, under cases/<id>/docl-s0, for a row to damage."""
    dst = root / "cases" / case_id / "docl-s0"
    if not dst.exists():
        shutil.copytree(root / "exp" / "docl-s0", dst)
    return dst


def damaged(case_id: str, relpath: str, how: Callable[[bytes], Optional[bytes]]):
    """setup(): copy the run, then replace relpath's bytes by how(bytes) (None deletes it)."""
    def setup(root: Path) -> None:
        run = _copy(root, case_id)
        p = run / relpath
        new = how(p.read_bytes())
        if new is None:
            p.unlink()
        else:
            p.write_bytes(new)
    return setup


half = lambda b: b[: len(b) // 2]  # noqa: E731
garbage = lambda b: b"\x00garbage\xff" * 40  # noqa: E731
empty = lambda b: b""  # noqa: E731
gone = lambda b: None  # noqa: E731


def wrong_schema(b: bytes) -> bytes:
    buf = io.BytesIO()
    pd.DataFrame({"epoch": [0], "acc": [0.5]}).to_parquet(buf)
    return buf.getvalue()


def pickled_npz(b: bytes) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, trace=np.array([{"x": 1}], dtype=object))
    return buf.getvalue()


def run_of(case_id: str) -> Callable[[Path], Path]:
    return lambda root: root / "cases" / case_id / "docl-s0"


# ----------------------------------------------------------------------------- the catalogue

D = "{data}"
CASES: list[Case] = []


def cli(id, args, *expect, setup=None):
    CASES.append(Case(id, "cli", args, expect, setup))


def read(id, call, *expect, setup=None):
    CASES.append(Case(id, "read", call, expect, setup))


def api(id, call, *expect):
    CASES.append(Case(id, "api", call, expect))


# --- names and numbers on the command line
cli("unknown-dataset", ["--dataset", "mnistt"], r"unknown dataset 'mnistt'", r"use one of digits")
cli("empty-dataset", ["--dataset", ""], r"dataset must be a name", r"or a path")
cli("unknown-curriculum", ["--curriculum", "hardest"], r"invalid choice: 'hardest'", r"choose from .*docl")
cli("unknown-estimator", ["--estimator", "magic"], r"invalid choice: 'magic'", r"choose from .*exact")
cli("unknown-logged-estimator", ["--log-estimators", "exact,magic"], r"unknown estimator 'magic'", r"choose from")
cli("unknown-model", ["--model", "transformer"], r"unknown model 'transformer'", r"use one of mlp")
cli("unknown-device", ["--device", "tpu"], r"unknown device 'tpu'", r"use auto, cpu")
cli("unknown-diversity", ["--diversity", "max"], r"invalid choice: 'max'", r"choose from")
cli("unknown-subcommand", ["train"], r"invalid choice: 'train'", r"choose from 'run'")
cli("unknown-flag", ["--epoch", "3"], r"unrecognized arguments: --epoch", r"--help")
cli("rounds-zero", ["--rounds", "0"], r"rounds must be ≥ 1, got 0", r"≥ 1")
cli("rounds-negative", ["--rounds", "-2"], r"rounds must be ≥ 1, got -2", r"≥ 1")
cli("rounds-not-a-number", ["--rounds", "ten"], r"invalid int value: 'ten'", r"--help")
cli("label-noise-negative", ["--label-noise", "-0.1"], r"label_noise .* got -0.1", r"fraction in \[0, 1\)")
cli("label-noise-oversized", ["--label-noise", "1.5"], r"label_noise .* got 1.5", r"fraction in \[0, 1\)")
cli("val-fraction-zero", ["--val-fraction", "0"], r"val_fraction .* got 0.0", r"validation split needs samples")
cli("val-fraction-whole", ["--val-fraction", "1"], r"val_fraction .* got 1.0", r"fraction in \(0, 1\)")
cli("label-noise-on-regression", ["--dataset", D + "/regression.npz", "--label-noise", "0.2"],
    r"label_noise applies to classification only", r"label_noise=0")
cli("k-start-zero", ["--k-start", "0"], r"k_start", r"choose values in \(0, 1\]")
cli("k-start-above-one", ["--k-start", "1.5"], r"k_start", r"choose values in \(0, 1\]")
cli("k-cap-zero", ["--k-cap", "0"], r"k_cap", r"choose values in \(0, 1\]")
cli("k-growth-shrinks", ["--k-growth", "0.5"], r"k_growth must be ≥ 1", r"got 0.5")
cli("k-growth-infinite", ["--k-growth", "inf"], r"k_growth must be a finite number", r"--k-growth")
cli("batch-zero", ["--batch-size", "0"], r"batch sizes", r"positive integers")
cli("batch-negative", ["--batch-size", "-8"], r"batch sizes", r"positive integers")
cli("probe-negative", ["--probe-size", "-1"], r"probe_size must be ≥ 0", r"0 turns kernel logging off")
cli("lr-nan", ["--lr", "nan"], r"lr must be a finite number, got nan", r"--lr")
cli("lr-zero", ["--lr", "0"], r"lr > 0", r"0 ≤ lr_min ≤ lr")
cli("temperature-zero", ["--temperature", "0"], r"temperature must be positive", r"got 0")
cli("pool-factor-below-one", ["--pool-factor", "0.5"], r"pool_factor must be ≥ 1", r"got 0.5")
cli("epochs-per-round-zero", ["--epochs-per-round", "0"], r"epochs_per_round", r"must be positive")
cli("warmup-negative", ["--warmup-epochs", "-1"], r"warmup_epochs", r"≥ 0")
# --- the paper protocol's options
P = ["--protocol", "paper"]
cli("unknown-protocol", ["--protocol", "authors"], r"invalid choice: 'authors'", r"choose from 'steps', 'paper'")
cli("episodes-decrease", [*P, "--epochs", "10", "--episodes", "0,4,2"], r"must strictly increase", r"--episodes")
cli("episodes-past-budget", [*P, "--epochs", "4", "--episodes", "0,2,6"], r"past the last epoch", r"raise --epochs")
cli("epochs-fewer-than-episodes", [*P, "--epochs", "1"], r"--epochs ≥ 2", r"warm start")
cli("episodes-not-numbers", [*P, "--episodes", "0,two"], r"could not read the list", r"comma-separated")
cli("paper-switch-under-steps", ["--no-mixup"], r"--no-mixup applies to --protocol paper only", r"drop it")
cli("paper-flags-under-steps", ["--epochs", "5", "--mod", "0.2"], r"--epochs, --mod apply to --protocol paper",
    r"drop them")
cli("steps-flag-under-paper", [*P, "--rounds", "4"], r"--rounds applies to --protocol steps only", r"drop it")
cli("negative-rate", [*P, "--k-growth", "-1.1"], r"k_growth must be ≥ 0", r"cannot be negative")
cli("mixup-alpha-zero", [*P, "--mixup-alpha", "0"], r"mixup's α must be positive", r"--no-mixup")
cli("log-every-unknown", [*P, "--log-every", "step"], r"invalid choice: 'step'", r"choose from")
cli("resume-other-options", ["--name", "docl-s0", "--resume", "--lr", "0.5", "--curriculum", "spl"],
    r"was made with other options: curriculum 'docl' \(now 'spl'\); schedule.lr 0.05 \(now 0.5\)",
    r"same options")
cli("cuda-absent", ["--device", "cuda"], r"CUDA is not available", r"--device cpu")
# --- precision and presets (issue 24)
cli("unknown-precision", ["--precision", "fp8"], r"invalid choice: 'fp8'", r"choose from 'fp32', 'bf16', 'fp16'")
cli("unknown-preset", ["--preset", "imagenet"], r"invalid choice: 'imagenet'", r"choose from 'cifar10-paper'")
# --- the score curriculum (issue 25)
cli("unknown-score", ["--curriculum", "score", "--score", "hardness"], r"invalid choice: 'hardness'",
    r"choose from .*'el2n'")
cli("unknown-prefer", ["--curriculum", "score", "--prefer", "middle"], r"invalid choice: 'middle'",
    r"choose from 'hard', 'easy'")
cli("score-without-score-curriculum", ["--score", "el2n"], r"drives --curriculum score only",
    r"add --curriculum score, or drop --score")
cli("prefer-without-score-curriculum", ["--prefer", "easy"], r"--prefer applies to --curriculum score only",
    r"drop it")
cli("score-and-estimator-disagree", ["--score", "exact", "--estimator", "byproduct"], r"name two estimators",
    r"give one")
cli("compare-score-without-score-arm", ["compare", "--dataset", D + "/good.npz", "--out", "{root}/exp",
                                        "--curricula", "docl", "--seeds", "0", "--score", "aum", *FAST],
    r"drive --curricula score only", r"add score to --curricula")
# --- where the run goes
cli("out-under-a-file", ["--out", "{root}/a_file/runs"], r"cannot write to .*a_file/runs", r"writable --out")
cli("out-is-a-file", ["--out", "{root}/a_file"], r"cannot write to .*a_file", r"writable --out")
cli("existing-run-without-resume", ["--name", "docl-s0"], r"already holds a run", r"--resume")
cli("name-is-a-file", ["--name", "taken"], r"exp/taken is a file, not a run folder", r"another --name",
    setup=lambda root: (root / "exp" / "taken").write_text("not a run"))
cli("name-escapes", ["--name", "../elsewhere"], r"run name '../elsewhere'", r"plain folder name")
cli("name-hidden", ["--name", ".hidden"], r"run name '.hidden'", r"plain folder name")
cli("resume-corrupted-checkpoint", ["--out", "{root}/cases/ckpt-torn", "--resume", "--name", "docl-s0"],
    r"checkpoint.pt is corrupted", r"delete it", setup=damaged("ckpt-torn", "checkpoint.pt", half))
cli("resume-garbage-checkpoint", ["--out", "{root}/cases/ckpt-garbage", "--resume", "--name", "docl-s0"],
    r"checkpoint.pt is corrupted", r"delete it", setup=damaged("ckpt-garbage", "checkpoint.pt", garbage))
cli("resume-corrupted-run-json", ["--out", "{root}/cases/json-resume", "--resume", "--name", "docl-s0"],
    r"run.json is corrupted", REDO, setup=damaged("json-resume", "run.json", half))


def moved_to(case_id: str, data: str):
    """setup(): copy the run and record `data` (a file under data/) as the dataset it was made with,
    as if that file had been edited since: same path, other contents."""
    def setup(root: Path) -> None:
        run = _copy(root, case_id)
        meta = json.loads((run / "run.json").read_text())
        meta["config"]["dataset"] = str(root / "data" / data)
        (run / "run.json").write_text(json.dumps(meta, indent=2))
    return setup


# issue 17: a resume that gets past the config check but cannot continue says so in one line and
# leaves the run as it was (before: a load_state_dict traceback, and the run stuck at "running")
cli("resume-data-changed-shape", ["--out", "{root}/cases/wide", "--resume", "--name", "docl-s0",
                                  "--dataset", D + "/wide.npz"],
    r"checkpoint.pt does not fit the model", r"same data and options, or start a new run",
    setup=moved_to("wide", "wide.npz"))
cli("resume-data-changed-size", ["--out", "{root}/cases/more", "--resume", "--name", "docl-s0",
                                 "--dataset", D + "/more.npz"],
    r"was trained on \d+ samples but .*more.npz now gives \d+", r"resume with the same data",
    setup=moved_to("more", "more.npz"))
cli("resume-data-changed-contents", ["--out", "{root}/cases/edited", "--resume", "--name", "docl-s0",
                                     "--dataset", D + "/edited.npz"],
    r"was trained on other contents of .*edited.npz \(same size, other values\)", r"resume with the same data",
    setup=moved_to("edited", "edited.npz"))
cli("resume-other-model", ["--name", "docl-s0", "--resume", "--model", "cnn"],
    r"was made with other options: model 'mlp' \(now 'cnn'\)", r"same options")
cli("resume-other-dataset", ["--name", "docl-s0", "--resume", "--dataset", "moons"],
    r"was made with other options: dataset '.*good.npz' \(now 'moons'\)", r"same options")
# --- compare
cli("compare-bad-seeds", ["compare", "--seeds", "a,b", "--out", "{exp}", *FAST], r"could not read the list 'a,b'",
    r"comma-separated")
cli("compare-empty-seeds", ["compare", "--seeds", ",", "--out", "{exp}", *FAST], r"empty list", r"at least one")
cli("compare-unknown-curriculum", ["compare", "--curricula", "docl,hardest", "--out", "{exp}", *FAST],
    r"unknown curriculum 'hardest'", r"choose from")
# --- .npz files
cli("npz-missing-file", ["--dataset", D + "/nowhere.npz"], r"no such file or folder: .*nowhere.npz", r"check the path")
cli("npz-5d-features", ["--dataset", D + "/shape5d.npz"], r"has shape \(120, 1, 2, 2, 2\)", r"use \(N, d\)")
cli("npz-length-mismatch", ["--dataset", D + "/mismatch.npz"], r"x has 120 samples but y has 100",
    r"one label per sample")
cli("npz-nan-features", ["--dataset", D + "/nan.npz"], r"NaN or inf", r"nan.npz")
cli("npz-inf-features", ["--dataset", D + "/inf.npz"], r"NaN or inf", r"inf.npz")
cli("npz-negative-labels", ["--dataset", D + "/negative.npz"], r"negative labels", r"class ids must be 0, 1, 2")
cli("npz-test-label-out-of-range", ["--dataset", D + "/unseen_test_class.npz"], r"y_test has class\(es\) 7",
    r"drop those test samples")
cli("npz-empty", ["--dataset", D + "/empty.npz"], r"is empty", r"at least one sample")
cli("npz-one-class", ["--dataset", D + "/one_class.npz"], r"only one class", r"needs ≥ 2 classes")
cli("npz-no-y", ["--dataset", D + "/no_y.npz"], r"has no array\(s\) 'y'", r"np.savez\(path, x=..., y=...\)")
cli("npz-x-test-without-y-test", ["--dataset", D + "/x_test_only.npz"], r"only one of x_test / y_test",
    r"save both or neither")
cli("npz-text-features", ["--dataset", D + "/text_features.npz"], r"dtype <U1", r"features must be numbers")
cli("npz-ids-as-labels", ["--dataset", D + "/ids_as_labels.npz"], r"120 distinct labels for 120 samples",
    r"regression")
cli("npz-object-arrays", ["--dataset", D + "/object.npz"], r"object \(pickled\) arrays", r"plain numeric arrays")
cli("npz-truncated", ["--dataset", D + "/truncated.npz"], r"corrupted or truncated", r"re-save it")
cli("npz-garbage", ["--dataset", D + "/garbage.npz"], r"not a .npz archive", r"numpy.savez")
cli("npz-zero-bytes", ["--dataset", D + "/zero_bytes.npz"], r"zero_bytes.npz", r"numpy.savez")
cli("unsupported-extension", ["--dataset", D + "/notes.txt"], r"unsupported file type .txt", r"use .npz or .csv")
# --- .csv files
cli("csv-empty", ["--dataset", D + "/empty.csv"], r"empty.csv is empty", r"header row")
cli("csv-header-only", ["--dataset", D + "/header_only.csv"], r"header but no rows", r"add samples")
cli("csv-text-feature", ["--dataset", D + "/text.csv"], r"column\(s\) b are not numeric", r"encode them")
cli("csv-missing-label", ["--dataset", D + "/missing_label.csv"], r"1 missing value", r"fill or drop")
cli("csv-label-only", ["--dataset", D + "/label_only.csv"], r"only the label column", r"add feature columns")
cli("csv-nan-feature", ["--dataset", D + "/nan_feature.csv"], r"NaN or inf", r"nan_feature.csv")
# issue 17: no guessing the label column (it took the last one), no splits of one sample
cli("csv-no-label-column", ["--dataset", D + "/no_label.csv"],
    r"no_label.csv has no column 'label' \(columns: a, b, cls\)", r"--label-column NAME")
cli("csv-label-column-absent", ["--dataset", D + "/no_label.csv", "--label-column", "y"], r"has no column 'y'",
    r"a column that exists")
cli("label-column-on-npz", ["--label-column", "y"], r"--label-column applies to .csv datasets only", r"drop it")
cli("csv-too-small-to-split", ["--dataset", D + "/four_rows.csv"],
    r"too few samples \(4\) to split into train, validation and test \(2/1/1\)",
    r"training needs at least 2 \(one per class\), validation and test at least 2 each; .* at least 12 samples")
cli("csv-binary", ["--dataset", D + "/binary.csv"], r"binary.csv", r"comma-separated|text")
# --- CIFAR-10 / Fashion-MNIST folders
cli("cifar-garbage", ["--dataset", D + "/cifar_garbage"], r"data_batch_1", r"re-download|CIFAR")
cli("cifar-truncated", ["--dataset", D + "/cifar_truncated"], r"corrupted or truncated pickle", r"data_batch_1")
cli("cifar-malicious-pickle", ["--dataset", D + "/cifar_malicious"], r"asks for .*system", r"only loads numpy")
cli("cifar-not-a-dict", ["--dataset", D + "/cifar_not_a_dict"], r"not a CIFAR batch", r"data.*labels")
cli("cifar-count-mismatch", ["--dataset", D + "/cifar_mismatch"], r"30 images but 3 labels", r"re-download")
cli("cifar-wrong-width", ["--dataset", D + "/cifar_wrong_width"], r"lacks 'data' \(N, 3072\)", r"CIFAR-10")
cli("idx-bad-magic", ["--dataset", D + "/idx_bad_magic"], r"not an idx file", r"original")
cli("idx-truncated", ["--dataset", D + "/idx_truncated"], r"truncated", r"re-download")
cli("idx-no-labels", ["--dataset", D + "/idx_no_labels"], r"but no train-labels-idx1-ubyte", r"add the missing")
cli("idx-count-mismatch", ["--dataset", D + "/idx_count_mismatch"], r"40 images but .* 30 labels",
    r"matching files")
cli("idx-bad-gzip", ["--dataset", D + "/idx_bad_gzip"], r"corrupted or truncated gzip", r"re-download")
cli("idx-swapped-files", ["--dataset", D + "/idx_swapped"], r"holds a 1-D array, expected 3-D",
    r"which file is which")
cli("folder-of-nothing", ["--dataset", D + "/plain_folder"], r"holds neither CIFAR-10", r"point at one")

# --- the run reader (what the app calls)
R = lambda case_id: run_of(case_id)  # noqa: E731
read("run-json-garbage", lambda root: RunReader(R("j1")(root)), r"run.json is corrupted", REDO,
     setup=damaged("j1", "run.json", garbage))
read("run-json-truncated", lambda root: RunReader(R("j2")(root)), r"run.json is corrupted", REDO,
     setup=damaged("j2", "run.json", half))
read("run-json-empty", lambda root: RunReader(R("j3")(root)), r"run.json is corrupted", REDO,
     setup=damaged("j3", "run.json", empty))
read("run-json-a-list", lambda root: RunReader(R("j4")(root)), r"not a docl run file", r"written by `docl run`",
     setup=damaged("j4", "run.json", lambda b: b"[1, 2, 3]"))
read("run-json-missing", lambda root: RunReader(R("j5")(root)), r"not a docl run \(no run.json\)",
     r"point at a folder written by", setup=damaged("j5", "run.json", gone))
read("not-a-run-folder", lambda root: RunReader(root / "data" / "plain_folder"), r"not a docl run",
     r"point at a folder")
read("run-path-missing", lambda root: RunReader(root / "nowhere"), r"nowhere is not a folder", r"point at a run")
read("run-path-is-a-file", lambda root: RunReader(root / "a_file"), r"a_file is not a folder", r"point at a run")
read("rounds-truncated", lambda root: RunReader(R("p1")(root)).rounds(), r"rounds.parquet is corrupted", REDO,
     setup=damaged("p1", "rounds.parquet", half))
read("rounds-garbage", lambda root: RunReader(R("p2")(root)).rounds(), r"rounds.parquet is corrupted", REDO,
     setup=damaged("p2", "rounds.parquet", garbage))
read("rounds-missing", lambda root: RunReader(R("p3")(root)).rounds(), r"rounds.parquet is missing", REDO,
     setup=damaged("p3", "rounds.parquet", gone))
read("rounds-foreign-schema", lambda root: RunReader(R("p4")(root)).rounds(), r"no 'round' column", REDO,
     setup=damaged("p4", "rounds.parquet", wrong_schema))
read("samples-truncated", lambda root: RunReader(R("s1")(root)).samples(0), r"round=0000.parquet is corrupted",
     REDO, setup=damaged("s1", "samples/round=0000.parquet", half))
read("samples-empty-file", lambda root: RunReader(R("s2")(root)).samples_all(), r"round=0000.parquet is corrupted",
     REDO, setup=damaged("s2", "samples/round=0000.parquet", empty))
read("samples-missing", lambda root: RunReader(R("s3")(root)).samples_all(columns=["score"]),
     r"round=0000.parquet is missing", REDO, setup=damaged("s3", "samples/round=0000.parquet", gone))
read("samples-uncommitted-round", lambda root: RunReader(root / "exp" / "docl-s0").samples(3),
     r"round 3 of docl-s0 is not committed", r"rounds 0..0 are")
read("kernel-truncated", lambda root: RunReader(R("k1")(root)).kernel(0), r"round=0000.npz is corrupted", REDO,
     setup=damaged("k1", "kernel/round=0000.npz", half))
read("kernel-garbage", lambda root: RunReader(R("k2")(root)).kernel(0), r"round=0000.npz is corrupted", REDO,
     setup=damaged("k2", "kernel/round=0000.npz", garbage))
read("kernel-pickled", lambda root: RunReader(R("k3")(root)).kernel(0), r"round=0000.npz is corrupted", REDO,
     setup=damaged("k3", "kernel/round=0000.npz", pickled_npz))
read("kernel-missing", lambda root: RunReader(R("k4")(root)).kernel(0), r"logged no kernel", r"kernel logging on",
     setup=damaged("k4", "kernel/round=0000.npz", gone))
read("dataset-corrupted", lambda root: RunReader(R("d1")(root)).dataset(), r"dataset.parquet is corrupted", REDO,
     setup=damaged("d1", "dataset.parquet", half))
read("experiment-with-no-runs", lambda root: ExperimentReader(root / "empty_exp"), r"holds no docl runs",
     r"point at a folder written by")
read("experiment-missing", lambda root: ExperimentReader(root / "nowhere"), r"does not exist", r"pick an experiment")
read("experiment-only-broken-runs", lambda root: ExperimentReader(root / "cases" / "j1"), r"no readable run",
     r"corrupted", setup=damaged("j1", "run.json", garbage))
read("experiment-unknown-run", lambda root: ExperimentReader(root / "exp").run("spl-s9"), r"no run named 'spl-s9'",
     r"runs: docl-s0")
read("run-name-escapes-root", lambda root: resolve_inside(root / "exp", "../data"), r"points outside",
     r"inside it")


# --- library calls a user's own loop makes
def _state(**kw):
    from docl_core.curricula import RoundState
    n = 10
    fields = dict(t=0, k=3, lam=0.0, temperature=1.0, pool_factor=2.0, loss=torch.rand(n), score=torch.rand(n),
                  features=None, generator=torch.Generator().manual_seed(0))
    fields.update(kw)
    return RoundState(**fields)


def _select(name, **kw):
    from docl_core.curricula import make_curriculum
    return lambda root: make_curriculum(name, diversity="none").select(_state(**kw))


api("k-larger-than-n-docl", _select("docl", k=11), r"k", r"10|N")
api("k-larger-than-n-spl", _select("spl", k=50), r"k", r"10|N")
api("k-zero", _select("random", k=0), r"k", r"1|positive")
api("scores-with-nan", _select("docl-nr", score=torch.tensor([float("nan")] * 10)), r"NaN or inf", r"score")
api("score-curriculum-without-values",
    lambda root: __import__("docl_core.curricula", fromlist=["x"]).make_curriculum(
        "score", diversity="none", score="margin").select(_state(score=torch.full((10,), float("nan")))),
    r"'margin' has no finite value", r"choose another --score")
api("score-curriculum-unknown-score",
    lambda root: __import__("docl_core.curricula", fromlist=["x"]).make_curriculum("score", score="hardness"),
    r"unknown score 'hardness'", r"choose one of .*el2n")
api("score-curriculum-estimator-not-logged",
    lambda root: __import__("docl_core.config", fromlist=["x"]).RunConfig(curriculum="score", score="fast").validate(),
    r"'fast' estimator, which this run does not log", r"--log-estimators")
api("tracker-length-mismatch",
    lambda root: __import__("docl_core.tracker", fromlist=["x"]).DynamicsTracker(
        root / "cases" / "tracker", torch.nn.Linear(2, 2), torch.randn(10, 2), torch.randint(0, 2, (9,))),
    r"10|9", r"one|same|per")
api("tracker-into-an-existing-run",  # issue 17: Python's words, not the CLI's
    lambda root: __import__("docl_core.tracker", fromlist=["x"]).DynamicsTracker(
        root / "exp" / "docl-s0", torch.nn.Linear(2, 2), torch.randn(10, 2), torch.randint(0, 2, (10,))),
    r"docl-s0 already holds a run", r"new folder, or pass resume=True")
api("check-dataset-csv-without-label",  # issue 17: what the New-run page asks as the user types
    lambda root: __import__("docl_core.data", fromlist=["x"]).check_dataset(root / "data" / "no_label.csv"),
    r"no_label.csv has no column 'label'", r"--label-column NAME")
api("load-dataset-unknown-option", lambda root: __import__("docl_core.data", fromlist=["x"]).load_dataset(
    "moons", colour="red"), r"unknown option\(s\) colour", r"use ")


# issue 32, item 6: a CSV's bad value is named by its column, its line and its data row (source_row's numbering)
cli("csv-nan-feature-names-row-and-column", ["--dataset", D + "/nan_feature.csv"], r"column 'a' is not a finite number",
    r"at line 4 \(data row 2, counted from 0 after the header, as source_row counts\)", r"fill or impute")
cli("csv-missing-label-names-its-row", ["--dataset", D + "/missing_label.csv"],
    r"1 missing value\(s\), the first at line 7 \(data row 5, counted from 0", r"fill or drop")

# ----------------------------------------------------------------------------- the test


def tree_hash(root: Path) -> dict[str, str]:
    """Every file and folder under root → content hash ('dir' for folders)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _fill(arg: str, root: Path) -> str:
    return arg.format(root=root, data=root / "data", exp=root / "exp")


def _one_line(message: str, case: Case) -> None:
    assert message and len(message.splitlines()) == 1, f"{case.id}: not one line: {message!r}"
    assert "Traceback" not in message and 'File "' not in message, f"{case.id}: traceback: {message}"
    for pattern in case.expect:
        assert re.search(pattern, message, re.IGNORECASE), f"{case.id}: {pattern!r} not in {message!r}"


TRIED: list[str] = []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, root: Path):
    if case.id == "cuda-absent" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    if case.setup:
        case.setup(root)
    before = tree_hash(root)
    if case.kind == "cli":
        args = [_fill(a, root) for a in case.what]
        if args[0] not in ("compare", "train"):
            base = FAST_PAPER if "paper" in args else FAST
            args = ["run", "--dataset", _fill(D + "/good.npz", root), "--out", str(root / "exp"), "--name",
                    f"fresh-{case.id}", *base, *args]
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(args)
            except SystemExit as e:  # argparse
                code = e.code
        message = err.getvalue().strip()
        assert code not in (0, None), f"{case.id}: exit code {code}; stderr {message!r}"
        assert message.startswith("docl: error: "), f"{case.id}: {message!r}"
        _one_line(message, case)
    else:
        with pytest.raises(ValueError) as info:  # RunStoreError is a ValueError
            case.what(root)
        if case.kind == "read":
            assert isinstance(info.value, RunStoreError), f"{case.id}: {type(info.value).__name__}"
        _one_line(str(info.value), case)
    assert tree_hash(root) == before, f"{case.id}: files on disk changed"
    TRIED.append(case.id)


def test_catalogue_size(capsys):
    kinds = {k: sum(c.kind == k for c in CASES) for k in ("cli", "read", "api")}
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
    with capsys.disabled():
        print(f"\n[bad input] {len(CASES)} inputs in the catalogue ({kinds['cli']} CLI, {kinds['read']} "
              f"run reader, {kinds['api']} library); {len(TRIED)} tried and passed in this session")


def test_out_folder_check_holds_when_several_processes_check_one_folder_at_once(tmp_path):
    """torchrun's ranks and a run beside them check the same --out at the same moment.

    With one shared probe name, one process unlinked another's probe and the second failed
    with "cannot write to ... (No such file or directory)" on a writable folder (a CI
    failure of the 3-rank test). 4 threads × 300 checks must all pass and leave nothing.
    """
    import threading
    from docl_core.cli import _check_out
    errors: list = []

    def check():
        for _ in range(300):
            try:
                _check_out(tmp_path / "shared")
            except ValueError as e:
                errors.append(str(e))

    threads = [threading.Thread(target=check) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list((tmp_path / "shared").iterdir()) == []
