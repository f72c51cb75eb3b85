"""Starting training runs from the dashboard: validate the form, build the CLI command, launch it.

Pure functions (validation, command building, path resolution) are separate from the one that
spawns a process, so tests check the command without running the trainer.
"""
from __future__ import annotations

import functools
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from docl_core.config import CURRICULA, ESTIMATORS, PREFER, PROTOCOLS, SCORE_CURRICULUM, SELECTION_SCORES
from docl_core.names import run_curriculum
from docl_core.data import DATASETS, check_dataset, load_dataset
from docl_core.store import is_run_dir

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
REPO = Path(__file__).resolve().parents[1]


@dataclass
class RunRequest:
    dataset: str = "digits"      # a built-in dataset name or a path the CLI understands
    curriculum: str = "docl"     # one of CURRICULA
    rounds: int = 10             # curriculum rounds
    seed: int = 0
    label_noise: float = 0.0     # fraction of training labels flipped, [0, 1)
    estimator: str = "exact"     # score that drives selection (ESTIMATORS)
    k_start: float = 0.2         # fraction of N selected in round 0, (0, 1]
    lr: float = 0.05             # peak learning rate
    name: str = ""               # run folder name; "" → <curriculum>-s<seed>
    device: str = "cpu"          # cpu | auto | cuda
    protocol: str = "steps"      # steps (rounds, k_start, lr above) | paper (epochs; the authors' schedule)
    epochs: int = 16             # paper protocol: total epochs
    model: str = ""              # "" → the dataset's default; mlp | cnn | resnet
    probe_size: int = 64         # kernel probe samples (0: no kernel)
    log_every: str = ""          # paper: "epoch" logs the exact score and kernel every epoch ("": episodes)
    label_column: str = ""       # a .csv dataset's column of labels ("": the column named "label")
    score: str = "el2n"          # curriculum "score" only: the logged score it selects by (SELECTION_SCORES)
    prefer: str = "hard"         # curriculum "score" only: hard or easy samples first

    @property
    def stem(self) -> str:
        """The curriculum as runs are compared: "docl", or "score-el2n-hard" (names.run_curriculum)."""
        return run_curriculum({"curriculum": self.curriculum, "score": self.score, "prefer": self.prefer})

    @property
    def run_name(self) -> str:
        return self.name.strip() or f"{self.stem}-s{self.seed}"


def validate(req: RunRequest) -> list[str]:
    """Everything wrong with the request, one message each (empty when it can start)."""
    errs = []
    if not req.dataset.strip():
        errs.append("Dataset is empty: type a built-in name (e.g. digits) or a path to a .npz/.csv file.")
    if req.curriculum not in (*CURRICULA, SCORE_CURRICULUM):
        errs.append(f"Unknown curriculum {req.curriculum!r}: choose one of {', '.join((*CURRICULA, SCORE_CURRICULUM))}.")
    elif req.curriculum == SCORE_CURRICULUM and req.score not in SELECTION_SCORES:
        errs.append(f"Unknown score {req.score!r}: choose one of {', '.join(SELECTION_SCORES)}.")
    elif req.curriculum == SCORE_CURRICULUM and req.prefer not in PREFER:
        errs.append(f"First must be hard or easy, got {req.prefer!r}.")
    if req.estimator not in ESTIMATORS:
        errs.append(f"Unknown estimator {req.estimator!r}: choose one of {', '.join(ESTIMATORS)}.")
    if req.protocol not in PROTOCOLS:
        errs.append(f"Unknown protocol {req.protocol!r}: choose steps or paper.")
    if req.protocol == "steps" and not 1 <= int(req.rounds) <= 1000:
        errs.append(f"Rounds must be between 1 and 1000, got {req.rounds}.")
    if req.protocol == "paper" and not 2 <= int(req.epochs) <= 1000:
        errs.append(f"Epochs must be between 2 and 1000 (a warm start and one episode), got {req.epochs}.")
    if int(req.seed) < 0:
        errs.append(f"Seed must be ≥ 0, got {req.seed}.")
    if not 0.0 <= float(req.label_noise) < 1.0:
        errs.append(f"Label noise is a fraction in [0, 1), got {req.label_noise}.")
    if not 0.0 < float(req.k_start) <= 1.0:
        errs.append(f"k_start is the fraction of N selected in round 0: choose a value in (0, 1], got {req.k_start}.")
    if not float(req.lr) > 0:
        errs.append(f"Learning rate must be positive, got {req.lr}.")
    if req.device not in ("cpu", "auto", "cuda"):
        errs.append(f"Device must be cpu, auto or cuda, got {req.device!r}.")
    if not NAME_RE.match(req.run_name) or ".." in req.run_name:
        errs.append(f"Run name {req.run_name!r} is not allowed: use letters, digits, '.', '_' and '-' "
                    "(up to 64 characters, no '..' and no '/').")
    return errs


def dataset_arg(text: str, cwd: Path = REPO) -> str:
    """What --dataset gets: a built-in name as typed, a path made absolute (relative paths start at
    `cwd`, where the run's process starts), so what the form checked is what the run reads."""
    text = text.strip()
    if text in DATASETS or not text:
        return text
    path = Path(text).expanduser()
    if path.is_absolute():
        return str(path)
    looks_like_a_path = path.suffix or "/" in text or "\\" in text or (Path(cwd) / path).exists()
    return str(Path(cwd) / path) if looks_like_a_path else text  # else: a mistyped name, said so


def problems(req: RunRequest, exp_dir: Path, busy: tuple = (), load: bool = False) -> list[str]:
    """Everything that stops the request from starting, one message each: `validate`'s checks,
    then whether the dataset resolves (a .csv's label column included) and the run folder is free
    (not on disk, and not in `busy`, the run folders of jobs this page started that still run).

    load: also read a .csv or .npz file whole through the loader the run uses (`load_file_problem`),
    so what it would refuse once started (a text feature, one class, a NaN, too few samples to
    split) is said before a process starts; without it only the header is read, cheap enough to
    check as the user types."""
    errs = validate(req)
    if req.dataset.strip():
        try:
            arg, label_column = dataset_arg(req.dataset), req.label_column.strip() or None
            kind = check_dataset(arg, label_column=label_column)
            if load and kind in ("csv", "npz"):
                stat = Path(arg).stat()
                why = load_file_problem(arg, (stat.st_mtime_ns, stat.st_size), label_column, int(req.seed),
                                        float(req.label_noise))
                if why:
                    raise ValueError(why)
        except (ValueError, OSError) as e:
            errs.append(f"Dataset: {e}.")
    if not any(e.startswith("Run name") for e in errs):
        try:
            run_dir = resolve_run_dir(exp_dir, req.run_name)
        except ValueError as e:
            errs.append(f"Run name: {e}.")
        else:
            if run_taken(exp_dir, run_dir.name, busy):
                hint = "" if req.name.strip() else \
                    f" (seed {next_free_seed(exp_dir, req.stem, taken=busy)} is free)"
                errs.append(f"{run_dir.name} already exists in {Path(exp_dir).name}: choose another run "
                            f"name or seed{hint}.")
    return errs


@functools.lru_cache(maxsize=8)
def load_file_problem(path: str, stamp: tuple, label_column, seed: int, label_noise: float) -> str:
    """Why the run would refuse the data file at `path` ("" when it loads): the trainer's own call,
    load_dataset(path, seed, label_noise, label_column=...), so every check the run makes is made
    here, once per file version (`stamp`: its mtime and size) and settings. Folders (CIFAR-10,
    Fashion-MNIST) are not read whole here: that would hold the dataset in the dashboard's memory."""
    try:
        load_dataset(path, seed=seed, label_noise=label_noise,
                     **({"label_column": label_column} if label_column else {}))
    except ValueError as e:
        return str(e)
    return ""


def resolve_run_dir(exp_dir: Path, name: str) -> Path:
    """exp_dir/name, refusing names that would leave exp_dir (.., /, symlinks out)."""
    if not NAME_RE.match(name) or ".." in name:
        raise ValueError(f"run name {name!r} is not allowed: use letters, digits, '.', '_' and '-'")
    base = Path(exp_dir).resolve()
    target = (base / name).resolve()
    if target.parent != base:
        raise ValueError(f"run name {name!r} resolves outside {base}: choose a plain folder name")
    return target


def build_command(req: RunRequest, exp_dir: Path, python: str = sys.executable) -> tuple[list[str], Path, Path]:
    """The CLI command for the request, the run folder it will write, and its log file.

    Raises ValueError (all messages joined) when the request is invalid, its data file would be
    refused by the run (read whole: problems' load), or the run exists.
    """
    errs = problems(req, exp_dir, load=True)
    if errs:
        raise ValueError(" ".join(errs))
    run_dir = resolve_run_dir(exp_dir, req.run_name)
    budget = ["--rounds", str(int(req.rounds))] if req.protocol == "steps" else \
        ["--protocol", "paper", "--epochs", str(int(req.epochs))]
    cmd = [python, "-m", "docl_core", "run",
           "--dataset", dataset_arg(req.dataset), "--curriculum", req.curriculum,
           *budget, "--seed", str(int(req.seed)),
           "--out", str(Path(exp_dir).resolve()), "--name", req.run_name,
           "--label-noise", f"{float(req.label_noise):g}", "--estimator", req.estimator]
    if req.curriculum == SCORE_CURRICULUM:
        cmd += ["--score", req.score, "--prefer", req.prefer]
    if req.protocol == "steps":  # under paper the authors' k and learning-rate schedules apply
        cmd += ["--k-start", f"{float(req.k_start):g}", "--lr", f"{float(req.lr):g}"]
    if req.label_column.strip():
        cmd += ["--label-column", req.label_column.strip()]
    if req.model:
        cmd += ["--model", req.model]
    if req.probe_size != RunRequest.probe_size:
        cmd += ["--probe-size", str(int(req.probe_size))]
    if req.protocol == "paper" and req.log_every:
        cmd += ["--log-every", req.log_every]
    cmd += ["--device", req.device, "--no-progress"]  # the output goes to a log file: no progress bars
    return cmd, run_dir, free_log(exp_dir, req.run_name)


def free_log(exp_dir: Path, name: str) -> Path:
    """A log file of its own for each start: .logs/NAME.log, or NAME-2.log, ... when a
    earlier attempt under the same name left one (its log stays as it was)."""
    logs = Path(exp_dir).resolve() / ".logs"
    log, n = logs / f"{name}.log", 1
    while log.exists():
        n += 1
        log = logs / f"{name}-{n}.log"
    return log


def quick_request(curriculum: str = "docl", seed: int = 0, label_noise: float = 0.0) -> RunRequest:
    """The quick live run: digits, the paper protocol, 8 epochs of a small MLP, the exact score and
    a 16-sample kernel logged every epoch; about a minute on 2 CPU cores."""
    return RunRequest(dataset="digits", curriculum=curriculum, seed=seed, label_noise=label_noise,
                      estimator="paper", protocol="paper", epochs=8, model="mlp", probe_size=16,
                      log_every="epoch", device="cpu")


def quick_dir(exp_dir: Path, dataset: str = "digits") -> Path:
    """The experiment folder a quick run writes into: a fresh quick-<dataset>-<n> beside exp_dir
    (beside its experiment when exp_dir is one run opened alone; the smallest n not on disk), so a
    quick run never lands among someone's own runs. The page creates the folder when the run
    starts, so the next quick run gets the next n."""
    parent = Path(exp_dir).parent.parent if is_run_dir(exp_dir) else Path(exp_dir).parent
    n = 1
    while (parent / f"quick-{dataset}-{n}").exists():
        n += 1
    return parent / f"quick-{dataset}-{n}"


def run_taken(exp_dir: Path, name: str, busy: tuple = ()) -> bool:
    """Whether exp_dir/name is on disk, or is the folder of a job in `busy` (run folders of jobs
    the page started that still run: their folder may not exist yet)."""
    target = Path(exp_dir).resolve() / name
    return target.exists() or str(target) in {str(Path(b)) for b in busy}


def next_free_seed(exp_dir: Path, curriculum: str, taken: tuple = ()) -> int:
    """The smallest seed whose default run name is not yet taken in exp_dir (see run_taken;
    `curriculum`: the name's stem, RunRequest.stem; `taken`: run folders of jobs that are starting)."""
    seed = 0
    while run_taken(exp_dir, f"{curriculum}-s{seed}", taken):
        seed += 1
    return seed


def job_status(code, meta, pid: int) -> dict:
    """One status for a job started from the page: its process's exit code (None while running)
    and the run.json of its folder, trusted only when this job's process wrote it (an earlier or
    later attempt under the same name has another writer). Returns own (its run.json is this
    job's), status, done, planned (None: the job's own plan), error (None, or why it stopped)."""
    own = meta if meta is not None and (meta.get("writer") or {}).get("pid") == pid else None
    done = int(own.get("last_complete_round", -1)) + 1 if own else 0
    planned = own.get("rounds_planned") if own else None
    status = (own or {}).get("status")
    error = (own or {}).get("error")
    if code is None:
        status = status or "starting"
    elif code != 0:
        if status not in ("failed", "interrupted"):
            status = "failed"
        error = error or f"the process exited with code {code}"
    else:
        status = status if status in ("complete", "failed", "interrupted") else "complete"
    return {"own": own is not None, "status": status, "done": done, "planned": planned, "error": error}


def eta_text(meta: dict, now: float) -> str:
    """'about 40 s left (≈ 12:34:56 UTC)' from a running run's run.json, or '' before a round is done."""
    import time as _time
    done = int(meta.get("last_complete_round", -1)) + 1
    planned = int(meta.get("rounds_planned") or 0)
    created = meta.get("created")
    if done <= 0 or not planned or created is None or done >= planned:
        return ""
    left = (now - float(created)) / done * (planned - done)
    finish = _time.strftime("%H:%M:%S", _time.gmtime(now + left))
    return f"about {left:.0f} s left (≈ {finish} UTC)"


def start(cmd: list[str], log: Path, cwd: Path = REPO) -> subprocess.Popen:
    """Start the command in the background, in its own session, output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        return subprocess.Popen(cmd, cwd=str(cwd), stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def log_tail(log: Path, lines: int = 25) -> str:
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return "(no log yet)"
    return "\n".join(text.splitlines()[-lines:]) or "(the log is empty)"
