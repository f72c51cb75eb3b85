"""The run store: plain files one folder per run, written atomically, read by the app.

    runs/<experiment>/<run>/
      run.json                    config, versions, seed, status, last complete round, error
      rounds.parquet              one row per round
      samples/round=NNNN.parquet  one row per training sample per round
      kernel/round=NNNN.npz       probe ids, trace block (m, m), optional full blocks, eigenvalues
      embedding/round=NNNN.parquet  sample_id, x, y (+ pc2 …): features on a fixed PCA basis (embedding.py)
      embedding/basis.npz         that basis (fitted once per run; run.json's `embedding` describes it)
      dataset.parquet             sample id, source row, label, split, label-noise flag, thumbnail bytes
                                  (images) or feature values (a user's tabular file)
      checkpoint.pt               model, optimiser, schedules and generator state

Every file is written to a temporary name and renamed into place. `run.json` is written last
in a round: it is the commit point. Readers trust only rounds ≤ `last_complete_round`, so a
run can be read while it trains, and a killed run resumes from its last complete round.
"""
from __future__ import annotations

import io
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .names import run_curriculum

FORMAT = "docl-run/1"
RUN_FILE = "run.json"
# --resume continues after the last committed round; it never rewrites committed files
REDO = "delete the run folder and run it again (the same seed reproduces it)"
# dataset.parquet's own columns (each present or not, by kind and age of the run); any other column
# is a feature of a user's tabular data, named after the file's header (`feature_columns`)
DATASET_COLUMNS = ("sample_id", "split", "label", "clean_label", "noisy", "source_row", "x0", "x1", "target",
                   "thumbnail")


def feature_columns(columns: Iterable[str]) -> list[str]:
    """The feature-value columns among dataset.parquet's (tabular data from a user's .csv or .npz;
    none for other kinds and for runs made before features were recorded), in file order."""
    return [c for c in columns if c not in DATASET_COLUMNS]


class RunStoreError(ValueError):
    """A folder that is not a readable docl run (message says what is wrong and what to do)."""


# ----------------------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; runs are meant to be read by others too
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return True


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, default=_json_default).encode())


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", **parquet_encodings(table.schema))
    atomic_write_bytes(path, buf.getvalue())


def parquet_encodings(schema: pa.Schema) -> dict[str, Any]:
    """Encodings that suit a run's columns: float columns byte-stream-split without a dictionary
    (scores hardly repeat; splitting the bytes lets zstd find the shared exponents), `sample_id`
    (0..N-1) delta-packed, dictionaries for the rest. On a 85,000-sample round (MNIST-1D, 24 columns)
    this writes 4.3 MB instead of 7.0, faster to write and to read; any Parquet reader opens it."""
    floats = [f.name for f in schema if pa.types.is_floating(f.type)]
    delta = [f.name for f in schema if f.name == "sample_id" and pa.types.is_integer(f.type)]
    rest = [f.name for f in schema if f.name not in floats and f.name not in delta]
    return {"use_dictionary": rest, "use_byte_stream_split": floats,
            "column_encoding": {c: "DELTA_BINARY_PACKED" for c in delta} or None}


def atomic_write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def best_of_student_and_teacher(rounds: pd.DataFrame, split: str = "test") -> pd.Series:
    """Per round, max(student, mean teacher) accuracy on `split`: the value the authors' report
    takes the best epoch of (the student alone in runs without a teacher). NaN where neither is
    logged. The one definition: RunReader.final_accuracy("best") and the study's tables use it."""
    col = f"{split}_acc"
    student = rounds[col].astype(float) if col in rounds else pd.Series(np.nan, index=rounds.index)
    teacher = rounds.get(f"teacher_{col}")
    return student if teacher is None else np.fmax(student, teacher.astype(float))


def round_name(t: int) -> str:
    return f"round={t:04d}"


# ----------------------------------------------------------------------------- writer


class RunWriter:
    """Writes one run folder. Call `start`, then `write_round` per round, then `finish` or `fail`.

    Only the process that owns the run writes (rank 0 under torch.distributed).
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.dir = Path(run_dir)
        self.meta: dict[str, Any] = {}

    def start(self, meta: dict[str, Any], resume: bool = False) -> dict[str, Any]:
        """Create (or, with resume=True, reopen) the run. Returns the run.json contents."""
        path = self.dir / RUN_FILE
        self._remove_stale_temps()
        if path.exists():
            old = read_run_json(self.dir)
            if not resume:  # the CLI refuses before this, in its own words (trainer.py)
                raise RunStoreError(f"{self.dir} already holds a run: give DynamicsTracker a new folder, "
                                    "or pass resume=True to continue that run")
            self.meta = old
            self.meta["status"] = "running"
            self.meta["error"] = None
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.meta = {"format": FORMAT, "status": "running", "last_complete_round": -1,
                         "error": None, "created": time.time(), **meta}
        # who writes: a reader on this machine can tell a killed run from a live one
        self.meta["writer"] = {"pid": os.getpid(), "host": socket.gethostname()}
        self._commit()
        return self.meta

    def _remove_stale_temps(self) -> None:
        """Delete temporary files a killed writer left behind (only one process writes a run)."""
        for folder in (self.dir, self.dir / "samples", self.dir / "kernel", self.dir / "embedding"):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    with _suppress():
                        tmp.unlink()

    def write_dataset(self, df: pd.DataFrame) -> None:
        atomic_write_parquet(self.dir / "dataset.parquet", df)

    def write_round(self, t: int, round_row: dict[str, Any], samples: pd.DataFrame,
                    kernel: Optional[dict[str, np.ndarray]] = None,
                    checkpoint: Optional[bytes] = None, embedding: Optional[pd.DataFrame] = None) -> None:
        """Write everything for round t, then commit it by rewriting run.json."""
        samples = samples.copy()
        samples["round"] = np.int32(t)
        atomic_write_parquet(self.dir / "samples" / f"{round_name(t)}.parquet", samples)
        if kernel is not None:
            atomic_write_npz(self.dir / "kernel" / f"{round_name(t)}.npz", kernel)
        if embedding is not None:  # sample_id, x, y, pc2 …: the round's map (embedding.py)
            atomic_write_parquet(self.dir / "embedding" / f"{round_name(t)}.parquet", embedding)
        rounds_path = self.dir / "rounds.parquet"
        old = pd.read_parquet(rounds_path) if rounds_path.exists() else pd.DataFrame()
        if len(old):
            # a rewritten round replaces its row; rows past the last commit (a killed attempt)
            # stay invisible to readers until their round is committed again
            old = old[old["round"] != t]
        row = pd.DataFrame([{"round": t, **round_row}])
        rounds = pd.concat([old, row], ignore_index=True) if len(old) else row
        atomic_write_parquet(rounds_path, rounds.sort_values("round", kind="stable"))
        if checkpoint is not None:
            atomic_write_bytes(self.dir / "checkpoint.pt", checkpoint)
        # a resumed run may rewrite rounds it had committed (identical under the same seed):
        # the commit point never moves backwards, so readers never see rounds vanish
        self.meta["last_complete_round"] = max(int(t), int(self.meta.get("last_complete_round", -1)))
        self._commit()

    def write_embedding_basis(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        """The run's fixed PCA basis (written once); `info` lands in run.json at the next commit."""
        atomic_write_npz(self.dir / "embedding" / "basis.npz", arrays)
        self.meta["embedding"] = info

    def finish(self, status: str = "complete") -> None:
        self.meta["status"] = status
        self._commit()

    def fail(self, reason: str) -> None:
        self.meta["status"] = "failed"
        self.meta["error"] = reason
        self._commit()

    def update_meta(self, **fields) -> None:
        self.meta.update(fields)
        self._commit()

    def _commit(self) -> None:
        self.meta["updated"] = time.time()
        atomic_write_json(self.dir / RUN_FILE, self.meta)


# ----------------------------------------------------------------------------- readers


class MemoryRun:
    """A run kept in memory: RunWriter's calls, nothing written, and a reader's look-ups on what was
    logged (DynamicsTracker(None, ...) makes one; `tracker.run` returns it). Frames are kept as
    logged, so memory grows by one samples frame per round (N rows)."""

    dir = Path("<in memory>")  # never created: the tracker's file checks see nothing there

    def __init__(self):
        self.meta: dict[str, Any] = {}
        self._rounds: list[dict[str, Any]] = []
        self._samples: dict[int, pd.DataFrame] = {}
        self._kernels: dict[int, dict[str, np.ndarray]] = {}
        self._embeddings: dict[int, pd.DataFrame] = {}
        self._dataset: Optional[pd.DataFrame] = None

    # --- the writer's calls
    def start(self, meta: dict[str, Any], resume: bool = False) -> dict[str, Any]:
        if resume:
            raise RunStoreError("resume needs a run folder: a run kept in memory ends with its process")
        self.meta = {"format": FORMAT, "status": "running", "last_complete_round": -1, "error": None,
                     "created": time.time(), **meta}
        return self.meta

    def write_dataset(self, df: pd.DataFrame) -> None:
        self._dataset = df.copy()

    def write_round(self, t: int, round_row: dict[str, Any], samples: pd.DataFrame,
                    kernel: Optional[dict[str, np.ndarray]] = None, checkpoint: Optional[bytes] = None,
                    embedding: Optional[pd.DataFrame] = None) -> None:
        self._samples[t] = samples.assign(round=np.int32(t))
        if kernel is not None:
            self._kernels[t] = dict(kernel)
        if embedding is not None:
            self._embeddings[t] = embedding.copy()
        self._rounds = [r for r in self._rounds if r["round"] != t] + [{"round": t, **round_row}]
        self.meta["last_complete_round"] = max(int(t), int(self.meta.get("last_complete_round", -1)))

    def write_embedding_basis(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.meta["embedding"] = info

    def finish(self, status: str = "complete") -> None:
        self.meta["status"] = status

    def fail(self, reason: str) -> None:
        self.meta.update(status="failed", error=reason)

    def update_meta(self, **fields) -> None:
        self.meta.update(fields)

    # --- a reader's look-ups (the names RunReader uses)
    @property
    def status(self) -> str:
        return self.meta.get("status", "unknown")

    @property
    def round_ids(self) -> list[int]:
        return sorted(self._samples)

    def rounds(self) -> pd.DataFrame:
        """One row per committed round, as rounds.parquet would hold it."""
        return pd.DataFrame(sorted(self._rounds, key=lambda r: r["round"]))

    def samples(self, t: int, columns: Optional[list[str]] = None) -> pd.DataFrame:
        if t not in self._samples:
            raise RunStoreError(f"round {t} was not logged: logged rounds are {self.round_ids}")
        df = self._samples[t]
        return df[columns].copy() if columns is not None else df.copy()

    def kernel(self, t: int) -> dict[str, np.ndarray]:
        if t not in self._kernels:
            raise RunStoreError(f"round {t} has no kernel: kernels were logged at {sorted(self._kernels)}")
        return dict(self._kernels[t])

    def dataset(self) -> pd.DataFrame:
        return pd.DataFrame() if self._dataset is None else self._dataset.copy()


class FollowerWriter:
    """What ranks other than 0 hold under torch.distributed instead of a writer: RunWriter's calls,
    nothing written; `start` reads the run (when resuming) so every rank knows its commit point."""

    def __init__(self, run_dir: str | os.PathLike):
        self.dir = Path(run_dir)
        self.meta: dict[str, Any] = {}

    def start(self, meta: dict[str, Any], resume: bool = False) -> dict[str, Any]:
        self.meta = read_run_json(self.dir) if resume and (self.dir / RUN_FILE).exists() \
            else {**meta, "last_complete_round": -1}
        return self.meta

    def write_dataset(self, df: pd.DataFrame) -> None:
        pass

    def write_round(self, *args, **kwargs) -> None:
        pass

    def write_embedding_basis(self, *args, **kwargs) -> None:
        pass

    def finish(self, status: str = "complete") -> None:
        pass

    def fail(self, reason: str) -> None:
        pass

    def update_meta(self, **fields) -> None:
        self.meta.update(fields)


def open_writer(out, dist):
    """What writes a run given `out`: a writer itself (anything with write_round), None (a MemoryRun),
    or a folder: a RunWriter on the writing rank, a FollowerWriter on the others."""
    if hasattr(out, "write_round"):
        return out
    if out is None and dist.active:
        raise ValueError("under torch.distributed the ranks share a run folder: give DynamicsTracker one")
    return MemoryRun() if out is None else RunWriter(out) if dist.is_writer else FollowerWriter(out)


def read_run_json(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    if not Path(run_dir).is_dir():
        raise RunStoreError(f"{run_dir} is not a folder: point at a run or experiment folder")
    if not path.exists():
        raise RunStoreError(f"{run_dir} is not a docl run (no run.json): point at a folder "
                            "written by `docl run` or DynamicsTracker")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunStoreError(f"{path} is corrupted ({e.__class__.__name__}): {REDO}") from None
    if not isinstance(meta, dict) or "last_complete_round" not in meta:
        raise RunStoreError(f"{path} is not a docl run file (no last_complete_round): point at a "
                            "folder written by `docl run` or DynamicsTracker")
    return meta


class RunReader:
    """Read-only view of one run, trusting only rounds ≤ last_complete_round.

    Call `refresh()` to pick up rounds written since the reader was made.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.dir = Path(run_dir)
        self.meta = read_run_json(self.dir)

    def refresh(self) -> "RunReader":
        self.meta = read_run_json(self.dir)
        return self

    # --- identity
    @property
    def name(self) -> str:
        return self.meta.get("name", self.dir.name)

    @property
    def curriculum(self) -> str:
        """The curriculum, or for a `score` run "score-<score>-<hard|easy>" (names.run_curriculum)."""
        cfg = self.meta.get("config") or {}
        return run_curriculum(cfg) if cfg.get("curriculum") else self.meta.get("curriculum", "custom")

    @property
    def seed(self) -> int:
        return int(self.meta.get("config", {}).get("seed", self.meta.get("seed", 0)))

    @property
    def task(self) -> str:
        return self.meta.get("task", self.meta.get("config", {}).get("task", "classification"))

    @property
    def status(self) -> str:
        return self.meta.get("status", "unknown")

    @property
    def last_complete_round(self) -> int:
        return int(self.meta.get("last_complete_round", -1))

    @property
    def is_live(self) -> bool:
        """Status running, and (when written on this machine) its writer process still exists.

        A run killed with -9 never gets to change its status; without this it looks live forever.
        """
        if self.status != "running":
            return False
        writer = self.meta.get("writer") or {}
        if writer.get("host") == socket.gethostname() and writer.get("pid"):
            return _pid_alive(int(writer["pid"]))
        return True  # another machine's process (or an older run): trust the status

    @property
    def round_ids(self) -> list[int]:
        return list(range(self.last_complete_round + 1))

    # --- frames
    def rounds(self) -> pd.DataFrame:
        """One row per committed round (columns: round, k, lr, steps, losses, accuracies, timings)."""
        path = self.dir / "rounds.parquet"
        if self.last_complete_round < 0:
            return pd.DataFrame({"round": pd.Series(dtype="int64")})
        df = _read_parquet(path)
        if "round" not in df.columns:
            raise RunStoreError(f"{path} has no 'round' column, so it was not written by docl: {REDO}")
        return df[df["round"] <= self.last_complete_round].reset_index(drop=True)

    def final_accuracy(self, report: str = "last", split: str = "test") -> float:
        """The run's accuracy on `split` (test or val) as a report gives it:

        - "last": the last committed round's student (ours: stricter),
        - "best": the best over all rounds of max(student, teacher) (the authors' report; runs
          without a mean teacher: the best student round).

        NaN when the run has no committed round or no accuracy (regression)."""
        if report not in ("last", "best"):
            raise ValueError(f"unknown report {report!r}: use last (the last student) or best "
                             "(the best epoch of max(student, teacher))")
        if split not in ("test", "val"):
            raise ValueError(f"unknown split {split!r}: use test or val")
        rounds = self.rounds()
        col = f"{split}_acc"
        if col not in rounds or rounds.empty:
            return float("nan")
        if report == "last":
            return float(rounds[col].astype(float).iloc[-1])
        return float(best_of_student_and_teacher(rounds, split).max())

    def samples(self, t: int, columns: Optional[list[str]] = None) -> pd.DataFrame:
        """Per-sample frame of round t (one row per training sample)."""
        self._check_round(t)
        return _read_parquet(self.dir / "samples" / f"{round_name(t)}.parquet", columns)

    def samples_all(self, columns: Optional[list[str]] = None,
                    rounds: Optional[Iterable[int]] = None) -> pd.DataFrame:
        """Per-sample frames of several (default: all committed) rounds, stacked."""
        ids = list(self.round_ids if rounds is None else rounds)
        if not ids:
            return pd.DataFrame(columns=columns or ["sample_id", "round"])
        cols = None if columns is None else list(dict.fromkeys(["round", *columns]))
        frames = [self.samples(t, cols) for t in ids]
        return pd.concat(frames, ignore_index=True)

    def kernel_rounds(self) -> list[int]:
        return [t for t in self.round_ids if (self.dir / "kernel" / f"{round_name(t)}.npz").exists()]

    def kernel(self, t: int) -> dict[str, np.ndarray]:
        """Kernel arrays of round t: probe_ids (m,), trace (m, m), eigenvalues, and more if logged."""
        self._check_round(t)
        path = self.dir / "kernel" / f"{round_name(t)}.npz"
        if not path.exists():
            raise RunStoreError(f"round {t} of {self.name} logged no kernel: rerun with kernel logging on")
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception as e:  # zip/npz corruption comes in many exception types
            raise RunStoreError(f"{path} is corrupted ({e.__class__.__name__}): {REDO}") from None

    def embedding_rounds(self) -> list[int]:
        """Committed rounds with a 2-D map (none for older runs, or a model without `features`)."""
        folder = self.dir / "embedding"
        if not folder.is_dir():
            return []
        return [t for t in self.round_ids if (folder / f"{round_name(t)}.parquet").exists()]

    def embedding(self, t: int, columns: Optional[list[str]] = None) -> pd.DataFrame:
        """The map of round t: sample_id, x, y (and pc2 … when stored), one row per training sample."""
        self._check_round(t)
        path = self.dir / "embedding" / f"{round_name(t)}.parquet"
        if not path.exists():
            raise RunStoreError(f"round {t} of {self.name} has no embedding: the model offered no "
                                "features(x), or the run predates embeddings; rerun it to get one")
        return _read_parquet(path, columns)

    def embedding_basis(self) -> Optional[dict[str, np.ndarray]]:
        """The fixed PCA basis (mean, components, explained_variance_ratio, fit_round), or None."""
        path = self.dir / "embedding" / "basis.npz"
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception as e:  # zip/npz corruption comes in many exception types
            raise RunStoreError(f"{path} is corrupted ({e.__class__.__name__}): {REDO}") from None

    def dataset(self, thumbnails: bool = True) -> pd.DataFrame:
        """sample_id, label, split, noisy, ... (thumbnail bytes for images, x0/x1 for 2-D data).
        thumbnails=False leaves the thumbnail column undecoded: most of the file, rarely needed."""
        path = self.dir / "dataset.parquet"
        if not path.exists():
            return pd.DataFrame(columns=["sample_id", "label", "split"])
        if thumbnails:
            return _read_parquet(path)
        try:
            names = pq.read_schema(path).names
        except (pa.ArrowException, OSError):
            names = None  # _read_parquet says what is wrong with the file
        return _read_parquet(path, None if names is None else [c for c in names if c != "thumbnail"])

    def _check_round(self, t: int) -> None:
        if not 0 <= t <= self.last_complete_round:
            raise RunStoreError(f"round {t} of {self.name} is not committed yet "
                                f"(rounds 0..{self.last_complete_round} are)")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _read_parquet(path: Path, columns: Optional[list[str]] = None) -> pd.DataFrame:
    if not path.exists():
        raise RunStoreError(f"{path} is missing from a committed round: {REDO}")
    try:
        # One read of the whole file: pyarrow opens a path more than once (footer, then pages),
        # and a writer's rename between the opens mixes two versions of the file.
        pf = pq.ParquetFile(pa.BufferReader(path.read_bytes()))
        if columns is not None:
            columns = [c for c in columns if c in set(pf.schema_arrow.names)]
        return pf.read(columns=columns).to_pandas()
    except (pa.ArrowException, OSError) as e:
        raise RunStoreError(f"{path} is corrupted ({str(e).splitlines()[0][:80]}): {REDO}") from None


def resolve_inside(root: str | os.PathLike, name: str) -> Path:
    """`root/name` for a user-typed run or experiment name, refusing any that leaves `root`.

    `..` parts, absolute paths and symlinks pointing out of root are all caught by comparing
    resolved paths, so the app can pass whatever a user typed.
    """
    base = Path(root).resolve()
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        raise RunStoreError(f"run name {name!r} is empty or not text: type the name of a folder in {root}")
    target = (base / name).resolve()
    if target != base and base not in target.parents:
        raise RunStoreError(f"{name!r} points outside {root}: type the name of a run or experiment inside it")
    return target


def is_run_dir(path: Path) -> bool:
    return (Path(path) / RUN_FILE).is_file()


class ExperimentReader:
    """A folder of runs that share a dataset and budget (or a single run folder)."""

    def __init__(self, exp_dir: str | os.PathLike):
        self.dir = Path(exp_dir)
        if not self.dir.is_dir():
            raise RunStoreError(f"{self.dir} does not exist or is not a folder: pick an experiment folder")
        if is_run_dir(self.dir):
            candidates = [self.dir]
        else:
            candidates = sorted(p for p in self.dir.iterdir() if p.is_dir() and is_run_dir(p))
        if not candidates:
            raise RunStoreError(f"{self.dir} holds no docl runs (no sub-folder with run.json): "
                                "point at a folder written by `docl run`/`docl compare`")
        self.runs: list[RunReader] = []
        self.errors: dict[str, str] = {}  # run folder name → why it was skipped
        for p in candidates:
            try:
                self.runs.append(RunReader(p))
            except RunStoreError as e:
                self.errors[p.name] = str(e)
        if not self.runs:
            raise RunStoreError(f"no readable run in {self.dir}: " + "; ".join(self.errors.values()))

    @property
    def name(self) -> str:
        return self.dir.name

    def run(self, name: str) -> RunReader:
        for r in self.runs:
            if r.name == name or r.dir.name == name:
                return r
        raise RunStoreError(f"no run named {name!r} in {self.dir}; runs: "
                            + ", ".join(r.dir.name for r in self.runs))

    def summary(self) -> pd.DataFrame:
        """One row per run: run, curriculum, seed, status, rounds done, dataset, estimator."""
        rows = []
        for r in self.runs:
            cfg = r.meta.get("config", {})
            rows.append({"run": r.dir.name, "curriculum": r.curriculum, "seed": r.seed,
                         "status": r.status, "rounds_done": r.last_complete_round + 1,
                         "rounds_planned": r.meta.get("rounds_planned", cfg.get("rounds")),
                         "dataset": cfg.get("dataset", r.meta.get("dataset")),
                         "estimator": cfg.get("estimator"), "error": r.meta.get("error")})
        return pd.DataFrame(rows)

    def rounds(self) -> pd.DataFrame:
        """All runs' round frames stacked, with run, curriculum and seed columns."""
        frames = []
        for r in self.runs:
            df = r.rounds()
            if len(df):
                frames.append(df.assign(run=r.dir.name, curriculum=r.curriculum, seed=r.seed))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["round", "run", "curriculum", "seed"])


def list_experiments(root: str | os.PathLike) -> list[Path]:
    """Experiment folders under root (folders holding run folders, or root itself)."""
    root = Path(root)
    if not root.is_dir():
        return []
    if any(is_run_dir(p) for p in root.iterdir() if p.is_dir()):
        return [root]
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and any(is_run_dir(q) for q in p.iterdir() if q.is_dir()))
