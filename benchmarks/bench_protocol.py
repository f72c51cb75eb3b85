"""What DoCL costs under the authors' protocol, next to the paper's baseline (`sgd`), in one process.

    python benchmarks/bench_protocol.py [--dataset digits] [--epochs 20] [--trials 2] [--models mlp,cnn]

Each trial trains, interleaved, `sgd` (every sample every epoch) and `docl` (the authors'
recipe: their byproduct score from mean-teacher logits, centrality, a subset per epoch, a
full pass per episode) under `--protocol paper` on the same data, seed and epoch budget,
with no extra logging (no exact score, no kernel probe), as a user measuring cost would.
The breakdown comes from the times each run logged in rounds.parquet:
  training     passes over the data (full passes included)
  measuring    the per-epoch eval forward over N (losses for the samples frame)
  selection    the curriculum's choice of S_t
  episode      episode starts: the teacher's features and the centrality
  evaluation   val and test sets (student and teacher)
  other        the rest of the wall time: writing the run, progress, Python
Prints hardware, versions, trials, medians, DoCL/sgd ratios, samples seen and final accuracy.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from docl_core.config import RunConfig
from docl_core.envinfo import cpu_model, versions
from docl_core.protocol import PaperSchedule
from docl_core.store import RunReader
from docl_core.trainer import train_run

PARTS = {"training": "train_time_s", "measuring": "score_time_s", "selection": "select_time_s",
         "episode": "episode_time_s", "evaluation": "eval_time_s"}


def one_run(curriculum: str, model: str, dataset: str, epochs: int, seed: int, out: Path) -> dict:
    cfg = RunConfig(dataset=dataset, curriculum=curriculum, protocol="paper", model=model, seed=seed,
                    probe_size=0, log_estimators=[], device="cpu", schedule=PaperSchedule(epochs=epochs))
    t0 = time.perf_counter()
    run_dir = train_run(cfg, out / f"{curriculum}-{model}-s{seed}")
    wall = time.perf_counter() - t0
    rounds = RunReader(run_dir).rounds()
    row = {name: float(rounds[col].sum()) for name, col in PARTS.items()}
    row["other"] = wall - sum(row.values())
    row.update(wall=wall, samples=int(rounds["samples_seen"].iloc[-1]), acc=float(rounds["test_acc"].iloc[-1]))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--models", default="mlp,cnn")
    a = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    v = versions()
    print(f"# bench_protocol: {a.dataset}, --protocol paper --epochs {a.epochs}, {a.trials} trials (seeds 0..)")
    print(f"# {cpu_model()}, {torch.get_num_threads()} threads; python {v['python']}, torch {v['torch']}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in a.models.split(","):
            res = {"sgd": [], "docl": []}
            for seed in range(a.trials):
                for c in ("sgd", "docl"):  # interleaved: machine noise hits both alike
                    res[c].append(one_run(c, model, a.dataset, a.epochs, seed, Path(tmp)))
            med = {c: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for c, rows in res.items()}
            print(f"\n## model {model} (medians over {a.trials} trials; seconds)")
            print(f"{'':12s} {'sgd':>9s} {'docl':>9s} {'docl/sgd':>9s}")
            for k in (*PARTS, "other", "wall"):
                s, d = med["sgd"][k], med["docl"][k]
                print(f"{k:12s} {s:9.2f} {d:9.2f} {d / s if s > 0 else float('nan'):9.2f}")
            print(f"{'samples seen':12s} {med['sgd']['samples']:9.0f} {med['docl']['samples']:9.0f} "
                  f"{med['docl']['samples'] / med['sgd']['samples']:9.2f}")
            print(f"{'test acc':12s} {med['sgd']['acc']:9.3f} {med['docl']['acc']:9.3f}")


if __name__ == "__main__":
    main()
