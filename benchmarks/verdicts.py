"""The same verdict from the study's tables, Compare's view and `docl summary`, on real runs.

    python benchmarks/verdicts.py assets/demo/noisy-digits runs/study-order/mnist1d-noise20

Copies DoCL's and SGD's runs of the first seeds into a scratch folder (2 and 3 seeds of the first
experiment, 2 and 5 of the second) and prints DoCL − SGD on the last epoch's student as each of the
three computes it: one interval, one verdict ("too few seeds" below 3). tests/test_stats.py checks
the same on synthetic runs.
"""
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from docl_core import views
from docl_core.store import ExperimentReader
from docl_core.study import tables
from docl_core.summary import final_table, paired_table

def three(exp):
    r = tables.read_rounds(exp, arms=True)
    study = tables.pairs(tables.finals(r), [("docl", "sgd")], "test_acc", 100.0)[("docl", "sgd")]
    dash = views.paired_differences(ExperimentReader(exp).rounds(), "test_acc", "sgd", final=True).set_index("curriculum").loc["docl"]
    summ = paired_table(final_table(exp), ["sgd"]).set_index(["report", "arm"]).loc[("last", "docl")]
    print(f"  study:     {study['mean']:+.2f} [{study['low']:+.2f}, {study['high']:+.2f}] n={study['n']} {study['verdict']}")
    print(f"  dashboard: {100*dash['mean']:+.2f} [{100*dash['lo']:+.2f}, {100*dash['hi']:+.2f}] n={dash['seeds']} {dash['verdict']}")
    print(f"  summary:   {summ['mean']:+.2f} [{summ['low']:+.2f}, {summ['high']:+.2f}] n={summ['n']} {summ['verdict']}")



def first_seeds(exp: Path, seeds: int) -> Path:
    """DoCL's and SGD's runs of seeds 0 .. seeds−1 of `exp`, copied into a scratch experiment."""
    tmp = Path(tempfile.mkdtemp()) / "exp"
    tmp.mkdir()
    for arm in ("docl", "sgd"):
        for s in range(seeds):
            shutil.copytree(exp / f"{arm}-s{s}", tmp / f"{arm}-s{s}")
    return tmp


if __name__ == "__main__":
    for arg, counts in ((sys.argv[1], (2, 3)), (sys.argv[2], (2, 5))):
        for seeds in counts:
            print(f"{arg}, DoCL − SGD, last epoch, seeds 0-{seeds - 1}:")
            three(first_seeds(Path(arg), seeds))
