"""A worker that tests/test_distributed.py launches under torchrun (or alone, as one process).

    python tests/dist_worker.py measure OUT MODEL [DATASET]
        fixed weights: every rank builds MODEL ("mlp" | "cnn") on DATASET (default digits)
        with seed 0 and takes the same 40 single-process SGD steps (identical on every rank:
        no collective involved), then the tracker measures the training set with the run's
        sharding (ḡ all-reduced, rows all-gathered); rank 0 saves the measurement to
        OUT/measure.pt and every rank saves its weights and buffers to OUT/rank<r>.pt.
    python tests/dist_worker.py train OUT CONFIG_JSON
        trains one run (Trainer, RunConfig.from_dict(CONFIG_JSON)) into OUT/run; every rank
        then saves its model's state dict (and its mean teacher's, keys "teacher.*") to OUT/rank<r>.pt.
    python tests/dist_worker.py paper_state OUT MODEL
        the paper protocol's state from fixed weights: a paper Trainer (digits, MODEL) whose model
        takes 40 single-process SGD steps (identical on every rank), teacher ← student; then two
        passes in which each rank records its rows rank::world of every 64-batch's teacher logits
        (the tracker gathers them, as training does), 10 more identical steps between them; then
        the measurement, the centrality from the teacher's features (sharded, gathered), the
        teacher's evaluation and one DoCL selection from the shared generator. Every rank saves
        what it selected to OUT/sel<r>.pt; rank 0 saves the state to OUT/state.pt.
"""
import json
import os
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
        state = dict(trainer.model.state_dict())
        if trainer.teacher is not None:
            state.update({f"teacher.{k}": v for k, v in trainer.teacher.model.state_dict().items()})
        torch.save(state, out / f"rank{ctx.rank}.pt")
    except BaseException:
        shutdown(ctx, finished=False)
        raise
    shutdown(ctx)


def paper_state(out: Path, model_name: str) -> None:
    from docl_core.recipe import paper_centrality
    ctx = init_from_env("cpu")
    cfg = RunConfig(dataset="digits", model=model_name, protocol="paper", probe_size=0, device="cpu",
                    log_estimators=["exact"])
    trainer = Trainer(cfg, out / "run", dist=ctx)
    model, X, y = trainer.model, trainer.X, trainer.y
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)

    def sgd(steps):  # same ops on every rank, no collective: identical weights and buffers everywhere
        model.train()
        for _ in range(steps):
            batch = torch.randperm(len(X), generator=g)[:64]
            loss = per_sample_loss(model(X[batch]), y[batch], "classification").mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    sgd(40)
    trainer.teacher.update(model, 0)  # counter 0: the teacher takes the student's whole state
    for _ in range(2):
        order = torch.randperm(len(X), generator=g)
        for s in range(0, len(X), 64):
            batch = order[s:s + 64][ctx.rank::ctx.world]
            trainer.tracker.on_batch(batch, trainer.teacher.logits(X[batch]), 0.05)
        trainer.tracker.end_pass()
        sgd(10)
        trainer.teacher.update(model, 1)
    measured = trainer._measure()
    trainer.centrality = paper_centrality(trainer._features(trainer.teacher.model))
    state = trainer._round_state(1, 200, measured, pool=400, mod=0.1)
    selected = trainer.curriculum.select(state).indices
    torch.save(selected, out / f"sel{ctx.rank}.pt")
    evals = trainer.tracker.evaluate(trainer.teacher.model)
    if ctx.is_writer:
        torch.save({"paper": measured.scores["paper"], "exact": measured.scores["exact"], "loss": measured.loss,
                    "centrality": trainer.centrality, "selected": selected, "teacher_evals": evals},
                   out / "state.pt")
    shutdown(ctx)


if __name__ == "__main__":
    what, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    if what == "measure":
        measure(out, *sys.argv[3:])
    elif what == "paper_state":
        paper_state(out, *sys.argv[3:])
    else:
        train(out, sys.argv[3])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # as docl_core/__main__.py: skip C++ teardown at exit
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
