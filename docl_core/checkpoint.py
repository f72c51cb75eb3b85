"""A run's checkpoint: what `checkpoint.pt` holds for a Trainer, and the checks that refuse a resume.

A resume continues a run only under the options, data size and data contents it was made with
(growing the number of rounds is allowed and recorded in run.json); each check raises
RunStoreError with what differs and what to do. Everything that can refuse runs before the run
is reopened, so a refused resume leaves run.json as it was.

The checkpoint holds the round, the weights, the optimiser, the run's generator and the tracker's
state; under the paper protocol also the gradient the last pass left (the next full pass's first
step applies it, as the authors' code does), the mean teacher, the authors' centrality and the
score weight's ratio; under fp16 the gradient scaler.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Optional

import torch

from .config import RunConfig, config_differences
from .distributed import DistContext
from .store import RunStoreError, read_run_json


def _existing_meta(run_dir: Path, dist: DistContext) -> Optional[dict]:
    """run.json of the run being resumed, read by the writing process only (None otherwise)."""
    if not (run_dir / "run.json").exists() or not dist.is_writer:
        return None
    return read_run_json(run_dir)


def check_same_options(run_dir: Path, cfg: RunConfig, dist: DistContext) -> Optional[dict]:
    """Refuse to resume under other options; returns the extension record when only the number of
    rounds grew (allowed, and recorded in run.json)."""
    meta = _existing_meta(run_dir, dist)
    if meta is None:
        return None
    diffs = config_differences(meta.get("config") or {}, cfg.to_dict())
    grew = [d for d in diffs if d[0] == "rounds" and isinstance(d[1], int) and d[2] > d[1]]
    bad = [d for d in diffs if d not in grew]
    if bad:
        listed = "; ".join(f"{k} {a!r} (now {b!r})" for k, a, b in bad)
        raise RunStoreError(f"{run_dir} was made with other options: {listed}: resume with the same "
                            "options, or choose another --out/--name")
    return {"rounds": grew[0][2], "from": grew[0][1]} if grew else None


def check_same_data(run_dir: Path, cfg: RunConfig, ds, dist: DistContext) -> None:
    """Refuse to resume on data of another size than the run was made with (a file edited since):
    its per-sample state and rounds would no longer line up."""
    meta = _existing_meta(run_dir, dist)
    before = None if meta is None else meta.get("num_train")
    if before is not None and int(before) != len(ds.y_train):
        raise RunStoreError(f"{run_dir} was trained on {before} samples but {cfg.dataset} now gives "
                            f"{len(ds.y_train)}: the data changed since the run was made; resume with the same "
                            "data, or start a new run under another --name")


def check_same_contents(run_dir: Path, cfg: RunConfig, ds, dist: DistContext) -> None:
    """Refuse to resume on a user's file or folder whose contents changed since the run was made
    (same size and shapes, other values): run.json's data_digest, the hash of the arrays read
    (`data.source_digest`), against this read's. Runs from before digests are not checked."""
    meta = _existing_meta(run_dir, dist)
    digest = None if meta is None else meta.get("data_digest")
    if digest and ds.digest and digest != ds.digest:
        raise RunStoreError(f"{run_dir} was trained on other contents of {cfg.dataset} (same size, "
                            "other values): the data changed since the run was made; resume with the "
                            "same data, or start a new run under another --name")


def load(run_dir: Path, device: torch.device) -> Optional[dict]:
    """checkpoint.pt's state on `device`; None without one; RunStoreError when it cannot be read."""
    path = run_dir / "checkpoint.pt"
    if not path.exists():
        return None
    try:
        with warnings.catch_warnings():  # a foreign pickle also warns: the error below says it all
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(path.read_bytes()), map_location=device, weights_only=True)
    except Exception as e:  # truncated/corrupted file: many exception types
        raise RunStoreError(f"{path} is corrupted ({e.__class__.__name__}): delete it to "
                            "restart the run from round 0") from None


def checkpoint_bytes(state: dict) -> bytes:
    """Serialise a checkpoint of tensors and plain values (loadable with weights_only=True)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def trainer_state(tr, t: int) -> dict:
    """What a Trainer's checkpoint after round t holds."""
    state = {"round": t, "model": tr.model.state_dict(), "optimizer": tr.opt.state_dict(),
             "generator": tr.gen.get_state(), "tracker": tr.tracker.state_dict()}
    if tr.paper:
        state["mod_ratio"] = tr.mod_ratio
        # the gradient a pass leaves is applied by the next full pass's first step (the authors')
        state["grads"] = [p.grad for p in tr.model.parameters()]
        if tr.teacher is not None:
            state["teacher"] = tr.teacher.model.state_dict()
        if tr.centrality is not None:
            state["centrality"] = tr.centrality.cpu()
    if tr.scaler is not None:
        state["grad_scaler"] = tr.scaler.state_dict()
    return state


def apply(tr, state: Optional[dict]) -> None:
    """Load the checkpoint's weights, optimiser and generator into the Trainer; RunStoreError when
    they do not fit the model its options build."""
    if state is None:
        return
    try:
        tr.model.load_state_dict(state["model"])
        tr.opt.load_state_dict(state["optimizer"])
        tr.gen.set_state(state["generator"])
        if tr.teacher is not None and "teacher" in state:
            tr.teacher.model.load_state_dict(state["teacher"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        first = " ".join(str(e).split())[:160]
        raise RunStoreError(f"{tr.dir / 'checkpoint.pt'} does not fit the model these options build "
                            f"({type(e).__name__}: {first}): was the data at {tr.cfg.dataset} changed? "
                            "Resume with the same data and options, or start a new run under another "
                            "--name") from None
    tr.mod_ratio = float(state.get("mod_ratio", 1.0))
    for p, g in zip(tr.model.parameters(), state.get("grads") or []):
        p.grad = None if g is None else g.to(p.device)
    if "centrality" in state:
        tr.centrality = state["centrality"].to(tr.device)
    if tr.scaler is not None and state.get("grad_scaler"):
        tr.scaler.load_state_dict(state["grad_scaler"])


def restore(tr, state: Optional[dict]) -> int:
    """The tracker's part of the checkpoint (the weights are already loaded by `apply`); → the round
    to continue from."""
    if state is None:
        if read_run_json(tr.dir)["last_complete_round"] >= 0:
            # rounds exist but no weights to continue from: start over, rewriting them
            tr.tracker.resume_at(0)
        return 0
    tr.tracker.load_state_dict(state["tracker"])
    t = int(state["round"])
    tr.tracker.resume_at(t + 1)  # killed after the checkpoint but before run.json: commits round t
    return t + 1
