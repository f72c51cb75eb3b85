"""A worker that tests/test_distributed.py launches under torchrun (or alone, as one process).

    python tests/dist_worker.py measure OUT MODEL [DATASET]
        fixed weights: every rank builds MODEL ("mlp" | "cnn") on DATASET (default digits)
        with seed 0 and takes the same 40 single-process SGD steps (identical on every rank:
        no collective involved), then the tracker measures the training set with the run's
        sharding (ḡ all-reduced, rows all-gathered); rank 0 saves the measurement to
        OUT/measure.pt and every rank saves its weights and buffers to OUT/rank<r>.pt.
    python tests/dist_worker.py train OUT CONFIG_JSON
        trains one run (Trainer, RunConfig.from_dict(CONFIG_JSON)) into OUT/run; every rank
        then saves its model's state dict to OUT/rank<r>.pt.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's docl_core first

import torch  # noqa: E402

from docl_core.config import RunConfig  # noqa: E402
from docl_core.data import load_dataset  # noqa: E402
from docl_core.distributed import init_from_env, shutdown  # noqa: E402
from docl_core.dynamics import per_sample_loss  # noqa: E402
from docl_core.models import build_model  # noqa: E402
from docl_core.tracker import DynamicsTracker  # noqa: E402
from docl_core.trainer import Trainer  # noqa: E402


def measure(out: Path, model_name: str, dataset: str = "digits") -> None:
    ctx = init_from_env("cpu")
    ds = load_dataset(dataset, seed=0)
    torch.manual_seed(0)
    model = build_model(model_name, ds)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for _ in range(40):  # same ops on every rank: identical weights and buffers everywhere
        batch = torch.randperm(len(ds.x_train), generator=g)[:64]
        loss = per_sample_loss(model(ds.x_train[batch]), ds.y_train[batch], ds.task).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    tracker = DynamicsTracker(out / "run", model, ds.x_train, ds.y_train, ds.task, estimator="exact",
                              log_estimators=["fast"], probe_size=0, score_batch_size=256, dist=ctx,
                              eval_sets={"test": (ds.x_test, ds.y_test)})
    m = tracker.measure(features=True)
    evals = tracker.evaluate()
    if ctx.is_writer:
        torch.save({"loss": m.loss, "output": m.output, "speed": m.speed, "features": m.features,
                    "scores": m.scores, "grad_norm": m.grad_norm, "evals": evals}, out / "measure.pt")
    torch.save(model.state_dict(), out / f"rank{ctx.rank}.pt")
    shutdown(ctx)


def train(out: Path, config_json: str) -> None:
    ctx = init_from_env("cpu")
    try:
        trainer = Trainer(RunConfig.from_dict(json.loads(config_json)), out / "run", dist=ctx)
        trainer.run()
        torch.save(trainer.model.state_dict(), out / f"rank{ctx.rank}.pt")
    except BaseException:
        shutdown(ctx, finished=False)
        raise
    shutdown(ctx)


if __name__ == "__main__":
    what, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    if what == "measure":
        measure(out, *sys.argv[3:])
    else:
        train(out, sys.argv[3])
