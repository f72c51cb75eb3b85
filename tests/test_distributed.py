"""torchrun with 2 CPU processes (gloo) writes the same run as one process; a dying rank ends the job."""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from docl_core.distributed import DistContext
from docl_core.store import RunReader

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or shutil.which("pgrep") is None,
                                reason="needs torch.distributed and pgrep")

ARGS = ["--dataset", "digits", "--model", "mlp", "--rounds", "3", "--k-start", "0.3", "--probe-size", "4",
        "--warmup-epochs", "1", "--no-progress", "--device", "cpu", "--log-estimators", "byproduct"]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


def _torchrun(nproc, args, **kw):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "docl_core", "run", *args]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_shards_cover_every_sample_once():
    for n in [1, 2, 7, 10, 1001]:
        for world in [1, 2, 3, 4]:
            covered = np.concatenate([np.arange(n)[DistContext(r, world).shard(n)] for r in range(world)])
            assert np.array_equal(covered, np.arange(n))


@pytest.mark.parametrize("curriculum", ["docl", "mcl"])
def test_two_processes_match_one(tmp_path, curriculum):
    args = [*ARGS, "--curriculum", curriculum, "--out", str(tmp_path)]
    single = subprocess.run([sys.executable, "-m", "docl_core", "run", *args, "--name", "one"],
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    p = _torchrun(2, [*args, "--name", "two"])
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    one, two = RunReader(tmp_path / "one"), RunReader(tmp_path / "two")
    assert two.meta["world_size"] == 2 and two.status == "complete"
    assert one.round_ids == two.round_ids == [0, 1, 2]
    for t in one.round_ids:
        a, b = one.samples(t), two.samples(t)
        assert (a["selected"] == b["selected"]).all(), f"round {t}: selections differ"
        for col in ["score", "score_byproduct", "loss"]:
            scale = max(float(np.abs(a[col]).max()), 1e-12)
            rel = float(np.abs(a[col] - b[col]).max()) / scale
            assert rel < 1e-5, f"round {t}: {col} differs by {rel:.2e} relative"
    ra, rb = one.rounds(), two.rounds()
    assert list(ra["steps"]) == list(rb["steps"])
    np.testing.assert_allclose(ra["test_acc"], rb["test_acc"], atol=1e-9)


def test_a_dying_rank_ends_the_job_with_a_clear_error(tmp_path):
    args = [*ARGS, "--rounds", "200", "--curriculum", "docl", "--out", str(tmp_path), "--name", "r"]
    p = _torchrun(2, args)
    run_json = tmp_path / "r" / "run.json"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until round 0 is committed: both ranks are mid-run
        if run_json.exists() and json.loads(run_json.read_text() or "{}").get("last_complete_round", -1) >= 0:
            break
        time.sleep(0.2)
    else:
        p.kill()
        pytest.fail("the 2-process run never committed a round")
    workers = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True)  # torchrun's workers
    pids = sorted(int(x) for x in workers.stdout.split())
    assert len(pids) >= 2, workers.stdout
    os.kill(pids[-1], signal.SIGKILL)  # one worker dies as if OOM-killed
    try:
        out, _ = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        for pid in [p.pid, *pids]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pytest.fail("the job hung after a rank died")
    assert p.returncode != 0
    r = RunReader(tmp_path / "r")
    assert r.status in ("failed", "interrupted"), r.status
    assert r.last_complete_round >= 0 and len(r.rounds()) == r.last_complete_round + 1
