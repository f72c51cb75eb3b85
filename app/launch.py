"""Starting training runs from the dashboard: validate the form, build the CLI command, launch it.

Pure functions (validation, command building, path resolution) are separate from the one that
spawns a process, so tests check the command without running the trainer.
"""
from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from docl_core.config import CURRICULA, ESTIMATORS

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

    @property
    def run_name(self) -> str:
        return self.name.strip() or f"{self.curriculum}-s{self.seed}"


def validate(req: RunRequest) -> list[str]:
    """Everything wrong with the request, one message each (empty when it can start)."""
    errs = []
    if not req.dataset.strip():
        errs.append("Dataset is empty: type a built-in name (e.g. digits) or a path to a .npz/.csv file.")
    if req.curriculum not in CURRICULA:
        errs.append(f"Unknown curriculum {req.curriculum!r}: choose one of {', '.join(CURRICULA)}.")
    if req.estimator not in ESTIMATORS:
        errs.append(f"Unknown estimator {req.estimator!r}: choose one of {', '.join(ESTIMATORS)}.")
    if not 1 <= int(req.rounds) <= 1000:
        errs.append(f"Rounds must be between 1 and 1000, got {req.rounds}.")
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

    Raises ValueError (all messages joined) when the request is invalid or the run exists.
    """
    errs = validate(req)
    if errs:
        raise ValueError(" ".join(errs))
    run_dir = resolve_run_dir(exp_dir, req.run_name)
    if run_dir.exists():
        raise ValueError(f"{run_dir.name} already exists in {Path(exp_dir).name}: choose another run name or seed.")
    cmd = [python, "-m", "docl_core", "run",
           "--dataset", req.dataset.strip(), "--curriculum", req.curriculum,
           "--rounds", str(int(req.rounds)), "--seed", str(int(req.seed)),
           "--out", str(Path(exp_dir).resolve()), "--name", req.run_name,
           "--label-noise", f"{float(req.label_noise):g}", "--estimator", req.estimator,
           "--k-start", f"{float(req.k_start):g}", "--lr", f"{float(req.lr):g}", "--device", req.device,
           "--no-progress"]  # the output goes to a log file: no progress bars
    log = Path(exp_dir).resolve() / ".logs" / f"{req.run_name}.log"
    return cmd, run_dir, log


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
