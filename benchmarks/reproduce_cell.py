"""Rerun one cell of a study report from the command the report prints, and compare bit for bit.

    python benchmarks/reproduce_cell.py                                    # DoCL, MNIST-1D 20 %, seed 0
    python benchmarks/reproduce_cell.py --row "DoCL, shuffled" --seed 3
    python benchmarks/reproduce_cell.py --results docs/RESULTS-order.md --study runs/study-order

It reads the row's command from the report's "The command behind each row" section (written for
seed 0), sets --seed and --name for the seed asked, points --out at a scratch folder, trains it
(one thread, as the study's workers), and compares every epoch's test and validation accuracy,
training loss and teacher accuracy with the study's run of that cell, and the final weights'
checkpoint when the study kept it. Prints the first difference, or that the run is identical.
Bit-identity holds on the same kind of machine (CPU model, numpy/torch builds): run.json records
the versions of both runs, printed below.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COLUMNS = ("test_acc", "val_acc", "train_loss", "teacher_test_acc", "teacher_val_acc", "k", "samples_seen")


def command_of(results: Path, setting: str, row: str) -> list[str]:
    """The argument list (after `python -m docl_core`) of a report row's command."""
    text = results.read_text()
    if "## The command behind each row" not in text:
        raise SystemExit(f"{results} has no 'The command behind each row' section: regenerate it with "
                         "`python -m docl_core study --suite ... --report-only`")
    section = text.split("## The command behind each row", 1)[1].split("\n## ", 1)[0]
    block = None
    for part in section.split("\n**")[1:]:
        title, _, body = part.partition("**")
        if title.startswith(setting):
            block = body
            break
    if block is None:
        raise SystemExit(f"no setting starting with {setting!r} in {results}")
    for line in block.splitlines():
        if line.startswith(f"- {row}: `"):
            return shlex.split(line.split("`")[1])[3:]
    raise SystemExit(f"no row {row!r} under {setting!r} in {results}")


def with_seed(args: list[str], seed: int, out: Path) -> list[str]:
    args = list(args)
    args[args.index("--seed") + 1] = str(seed)
    name = args[args.index("--name") + 1]
    args[args.index("--name") + 1] = name.rsplit("-s", 1)[0] + f"-s{seed}"
    args[args.index("--out") + 1] = str(out)
    return args + ["--no-progress"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default="docs/RESULTS-order.md", help="the report (default: %(default)s)")
    ap.add_argument("--study", default="runs/study-order", help="the study's folder (default: %(default)s)")
    ap.add_argument("--setting", default="MNIST-1D, 20% flipped", help="a setting title (default: %(default)s)")
    ap.add_argument("--row", default="DoCL", help="a row label of the tables (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    from docl_core.cli import main as docl
    args = command_of(Path(a.results), a.setting, a.row)
    study_out = Path(args[args.index("--out") + 1])
    if not study_out.is_absolute() and a.study != "runs/study-order":
        study_out = Path(a.study) / study_out.name
    with tempfile.TemporaryDirectory() as tmp:
        run_args = with_seed(args, a.seed, Path(tmp))
        name = run_args[run_args.index("--name") + 1]
        print("command: python -m docl_core " + " ".join(shlex.quote(x) for x in run_args))
        t0 = time.perf_counter()
        if docl(run_args) != 0:
            return 1
        secs = time.perf_counter() - t0
        mine, theirs = Path(tmp) / name, study_out / name
        if not (theirs / "rounds.parquet").exists():
            print(f"the study's run {theirs} is not there: nothing to compare ({secs:.0f} s)")
            return 1
        r1, r2 = (pd.read_parquet(d / "rounds.parquet").sort_values("round").reset_index(drop=True)
                  for d in (mine, theirs))
        v1, v2 = (json.loads((d / "run.json").read_text()).get("versions") for d in (mine, theirs))
        print(f"versions: rerun {v1}; study {v2}")
        print(f"hardware: {platform.processor() or platform.machine()}, {secs:.0f} s for the rerun")
        same = len(r1) == len(r2)
        for col in COLUMNS:
            if col in r1 and col in r2 and not r1[col].equals(r2[col]):
                diff = (r1[col] != r2[col]).to_numpy().nonzero()[0]
                print(f"DIFFERENT: {col} first differs at epoch {int(diff[0])}: {r1[col].iloc[diff[0]]!r} "
                      f"vs {r2[col].iloc[diff[0]]!r}")
                same = False
        last = float(r1["test_acc"].iloc[-1]) * 100
        print(f"{a.row}, {a.setting}, seed {a.seed}: final test accuracy {last:.2f} % "
              + ("— bit-identical to the study's run on every epoch." if same else "— differs from the study's run."))
        return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
