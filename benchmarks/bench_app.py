"""Dashboard page-render times on a large SYNTHETIC experiment (issue 4's goal: < 2 s per page after
the first load, < 1.5 GB memory).

    python benchmarks/bench_app.py [--out DIR] [--n 60000] [--rounds 50] [--trials 5] [--pages embedding,datamap]

Writes (once; reused when DIR already holds it) an experiment of N samples × R rounds × 5
curricula with tests/synthetic_runs.py — invented numbers, test scaffolding only — then opens
every page with streamlit.testing.v1.AppTest: the first load (cold caches, reads from disk) is
timed once, then the page is rerun `trials` times and the median is reported. A few widget
changes that read new data (another round, another sample) are timed as well. Peak RSS is
that of this process (the generator runs in a child process and is not counted).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from docl_core.envinfo import cpu_model  # noqa: E402

PAGES = ["compare", "scores", "subsets", "kernel", "sample", "datamap", "embedding", "new_run", "how_it_works"]
GOAL_S, GOAL_GB = 2.0, 1.5


def generate(out: Path, n: int, rounds: int) -> None:
    from synthetic_runs import SyntheticSpec, write_experiment
    spec = SyntheticSpec(n=n, rounds=rounds, seeds=(0,), kind="image", num_classes=10, probe=64,
                         full_kernel=False, thumb=28, eval_size=2000, running=False, failed=False,
                         label_noise=0.1)
    t0 = time.perf_counter()
    write_experiment(out, spec)
    (out / ".bench.json").write_text(json.dumps({"n": n, "rounds": rounds, "seconds": time.perf_counter() - t0}))


def hardware() -> str:
    cpu = cpu_model()
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1e6
    except (OSError, ValueError, IndexError):
        mem = float("nan")
    return (f"{cpu}; {os.cpu_count()} logical CPUs (affinity {len(os.sched_getaffinity(0))}); "
            f"{mem:.1f} GB RAM; {platform.platform()}")


def versions() -> str:
    import numpy, pandas, plotly, pyarrow, streamlit, torch
    return (f"python {platform.python_version()}, streamlit {streamlit.__version__}, pandas {pandas.__version__}, "
            f"pyarrow {pyarrow.__version__}, numpy {numpy.__version__}, plotly {plotly.__version__}, "
            f"torch {torch.__version__}")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KB on Linux


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "docl-bench-app"))
    ap.add_argument("--n", type=int, default=60_000)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--pages", default=",".join(PAGES), help="comma list of pages to time (default: all)")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    out = Path(a.out) / f"synthetic-n{a.n}-r{a.rounds}"
    if a.generate_only:
        generate(out, a.n, a.rounds)
        return 0
    meta = out / ".bench.json"
    if meta.exists() and not any(out.glob("*/embedding/round=*.parquet")):
        print(f"{out} predates embedding maps: generating it again", flush=True)
        import shutil
        shutil.rmtree(out)
    if not meta.exists():
        print(f"generating {a.n:,} samples × {a.rounds} rounds × 5 curricula into {out} (once) …", flush=True)
        subprocess.run([sys.executable, __file__, "--generate-only", "--out", a.out, "--n", str(a.n),
                        "--rounds", str(a.rounds)], check=True)
    gen = json.loads(meta.read_text())
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e9

    os.environ["DOCL_RUNS"] = str(out)
    from streamlit.testing.v1 import AppTest
    t0 = time.perf_counter()
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=600)
    at.run()
    startup = time.perf_counter() - t0

    def check():
        if at.exception or at.error:
            raise SystemExit(f"page failed: {[e.value for e in at.exception] + [e.value for e in at.error]}")

    pages = [p for p in PAGES if p in a.pages.split(",")]
    rows = []
    for page in pages:
        at.switch_page(f"app_pages/{page}.py")
        first = timed(at.run)
        check()
        reruns = [timed(at.run) for _ in range(a.trials)]
        check()
        rows.append((page, first, statistics.median(reruns), max(reruns)))

    def interact(page, label, action):
        if page not in pages:
            return None
        at.switch_page(f"app_pages/{page}.py")
        at.run()
        dt = timed(lambda: action().run())
        check()
        return (f"{page}: {label}", dt)

    inter = [i for i in [
        interact("embedding", "round slider → 20 (a slice of the cached maps)",
                 lambda: at.select_slider(key="emb_round").set_value(20)),
        interact("embedding", "colour by → class", lambda: at.radio(key="emb_color").set_value("class")),
        interact("embedding", "score as → size", lambda: at.radio(key="emb_emph").set_value("size")),
        interact("scores", "round slider → 10", lambda: at.slider(key="sc_round").set_value(10)),
        interact("scores", "score column → byproduct", lambda: at.radio(key="sc_col").set_value("score_byproduct")),
        interact("subsets", "round slider → 20 (new round read)", lambda: at.slider(key="sub_round").set_value(20)),
        interact("kernel", "kernel round → 25", lambda: at.select_slider(key="k_round").set_value(25)),
        interact("sample", "sample id → 12345 (slice of cached matrices)", lambda: at.number_input(key="smp_id").set_value(12345)),
        interact("datamap", "colour by → label noise", lambda: at.radio(key="dm_color").set_value("noisy")),
        interact("compare", "against → gradient steps", lambda: at.radio(key="cmp_x").set_value("steps")),
    ] if i is not None]
    peak = peak_rss_gb()

    print("docl dashboard benchmark (SYNTHETIC experiment: invented numbers, timing only)")
    print(f"hardware : {hardware()}")
    print(f"versions : {versions()}")
    print(f"data     : {a.n:,} training samples × {a.rounds} rounds × 5 curricula (1 seed), 28×28 PNG thumbnails, "
          f"64-sample kernel probe; {size:.2f} GB on disk; generated in {gen['seconds']:.0f} s")
    print(f"method   : AppTest, one session; first load = first render of the page (cold caches); "
          f"rerun = median of {a.trials} reruns after it")
    print(f"app start (main + Compare, cold, includes imports): {startup:.2f} s")
    print()
    print(f"{'page':<14}{'first load s':>14}{'rerun median s':>16}{'rerun max s':>13}  goal < {GOAL_S:g} s")
    for page, first, med, mx in rows:
        print(f"{page:<14}{first:>14.2f}{med:>16.3f}{mx:>13.3f}  {'ok' if med < GOAL_S else 'SLOW'}")
    print()
    print(f"{'interaction':<56}{'seconds':>10}")
    for label, dt in inter:
        print(f"{label:<56}{dt:>10.2f}  {'ok' if dt < GOAL_S else 'SLOW'}")
    print()
    print(f"peak RSS of this process: {peak:.2f} GB  (goal < {GOAL_GB:g} GB: {'ok' if peak < GOAL_GB else 'OVER'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
