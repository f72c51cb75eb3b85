"""Dashboard timings: the first chart a new user waits for, and every page on a large experiment.

    python benchmarks/bench_app.py --first-load [--against main] [--trials 5]
    python benchmarks/bench_app.py [--against main] [--out DIR] [--n 60000] [--rounds 50] [--trials 5] [--pages scores]
    python benchmarks/bench_app.py --real EXPERIMENT_DIR [--trials 5] [--browser-trials 1] [--pages scores]

--first-load: what `streamlit run app/main.py` on the bundled demo (assets/demo) costs before the
first chart shows. Each trial starts a fresh server, waits for its health endpoint, then opens
the page in a fresh headless-Chromium context (cold browser cache, executable /usr/bin/chromium)
and waits until the first plotly chart has drawn a line (an empty placeholder chart does not
count); requests to any host but the local server are counted. It also times the cold first script run (main.py + the Compare page) with
streamlit.testing.v1.AppTest in a fresh process, in wall-clock and process-CPU seconds, and
says whether torch was imported by then. Beside them runs a floor: a bare Streamlit app that
draws one plotly chart, measured the same way; and the seconds Chromium's page thread was busy
before the first chart (DevTools Performance metrics: parsing Streamlit's and plotly's scripts,
rendering), which the dashboard's Python cannot shorten.

Pages (default): writes (once; reused when DIR already holds it) an experiment of N samples ×
R rounds × 5 curricula with tests/synthetic_runs.py — invented numbers, test scaffolding only —
then opens every page with AppTest in one process: the first load (cold caches, reads from disk)
is timed once, then the page is rerun `trials` times and the median is reported, and a few
widget changes that read new data. Peak RSS is that of the timing process.

--real DIR: the same page timings on real runs (an experiment folder, or a run folder), nothing generated;
the widget changes move to rounds and samples that run has. Then, per page, the browser's side: a fresh
`streamlit run app/main.py` on DIR (cold caches) and a fresh headless-Chromium context open that page's
URL, and the time from navigation until the page's first plotly chart with data has drawn (Streamlit's
empty opening placeholder does not count; WebGL scatters draw through Chromium's software GL), with the
server's peak RSS (VmHWM) after it.

--against REF runs the same measurements on the git revision REF (exported with `git archive`
into a temporary folder), interleaved with this working tree trial by trial, and prints both
side by side. On a shared machine absolute seconds swing with other jobs' load: read the
interleaved medians side by side, and the CPU-time columns.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
PAGES = ["compare", "scores", "subsets", "kernel", "sample", "datamap", "embedding", "atlas", "new_run", "how_it_works"]
CHART_PAGES = [p for p in PAGES if p != "new_run"]  # pages that draw a chart (New run is a form)
PAGE_GOAL_S = 2.0                   # --real: navigation → the page's first chart drawn, per page
GOAL_S, GOAL_GB = 2.0, 1.5          # per page (first load and rerun), peak memory
FIRST_CHART_GOAL_S = 3.0            # server start → first chart visible
FIRST_CHART_GOAL_RATIO = 1.2        # … and at most this multiple of a bare app's (measured side by side)
FLOOR = "floor (bare app)"


# ----------------------------------------------------------------------------- context


def hardware() -> str:
    sys.path.insert(0, str(REPO))  # the parent process only: workers import their own tree's code
    from docl_core.envinfo import cpu_model
    cpu = cpu_model()
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1e6
    except (OSError, ValueError, IndexError):
        mem = float("nan")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{cpu}; {os.cpu_count()} logical CPUs (affinity {len(os.sched_getaffinity(0))}); "
            f"{mem:.1f} GB RAM; load average {load} at the start; {platform.platform()}")


def versions() -> str:
    from importlib.metadata import version
    names = ["streamlit", "pandas", "pyarrow", "numpy", "plotly", "torch", "playwright"]
    got = []
    for n in names:
        try:
            got.append(f"{n} {version(n)}")
        except Exception:
            got.append(f"{n} (not installed)")
    return f"python {platform.python_version()}, " + ", ".join(got)


def chromium_version() -> str:
    try:
        return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "no chromium"


def export_tree(ref: str, into: Path) -> Path:
    """`git archive REF` unpacked into `into` (the demo comes with it: it is tracked)."""
    into.mkdir(parents=True, exist_ok=True)
    tar = into / "tree.tar"
    with open(tar, "wb") as f:
        subprocess.run(["git", "-C", str(REPO), "archive", ref], stdout=f, check=True)
    with tarfile.open(tar) as t:
        t.extractall(into / "tree", filter="data")
    tar.unlink()
    return into / "tree"


def med(xs) -> float:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def spread(xs) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})"


# ----------------------------------------------------------------------------- first load


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _server(tree: Path, port: int, env: dict):
    """A Streamlit server on app/main.py of `tree`, up once its health endpoint answers (120 s at most):
    yields (process, url); stopped (terminate, then kill) on the way out."""
    log = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        while time.perf_counter() - t0 < 120:
            if proc.poll() is not None:
                log.seek(0)
                raise SystemExit(f"streamlit exited early in {tree}:\n{log.read().decode()[-2000:]}")
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def first_chart(tree: Path, browser) -> dict:
    """One trial: a fresh server on the demo, a fresh browser context; seconds to health and to the first chart."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DOCL_RUNS"}  # the product's default: the demo
    env["PYTHONPATH"] = str(tree)
    out = {"up": None, "chart": None, "renderer": None, "outside": []}
    t0 = time.perf_counter()
    with _server(tree, port, env) as (proc, url):
        out["up"] = time.perf_counter() - t0
        context = browser.new_context(viewport={"width": 1400, "height": 1000})  # empty cache: a first visit
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.on("request", lambda r: out["outside"].append(r.url)
                if urlparse(r.url).scheme in ("http", "https", "ws", "wss")
                and urlparse(r.url).hostname not in ("127.0.0.1", "localhost") else None)
        t1 = time.perf_counter()
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_selector('[data-testid="stPlotlyChart"] .scatterlayer .js-line', timeout=180_000)
        out["chart"] = time.perf_counter() - t1
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        out["renderer"] = metrics.get("TaskDuration")  # s the page's main thread was busy (parse, script, layout)
        context.close()
    return out


def cold_script(tree: Path) -> dict:
    """The first script run (main.py + Compare) in a fresh process: {wall, cpu, torch}."""
    env = {k: v for k, v in os.environ.items() if k != "DOCL_RUNS"}
    env["PYTHONPATH"] = str(tree)
    p = subprocess.run([sys.executable, __file__, "--cold-script-worker", str(tree)], cwd=tree, env=env,
                       capture_output=True, text=True, timeout=600)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise SystemExit(f"the cold-script worker failed in {tree}:\n{p.stdout[-1500:]}\n{p.stderr[-1500:]}")


def cold_script_worker(tree: Path) -> None:
    sys.path.insert(0, str(tree))
    from streamlit.testing.v1 import AppTest
    c0, t0 = time.process_time(), time.perf_counter()
    at = AppTest.from_file(str(tree / "app" / "main.py"), default_timeout=600)
    at.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if at.exception or at.error:
        raise SystemExit(f"page failed: {[e.value for e in at.exception] + [e.value for e in at.error]}")
    print(json.dumps({"wall": wall, "cpu": cpu, "torch": "torch" in sys.modules}))


FLOOR_APP = """import plotly.graph_objects as go
import streamlit as st

st.title("floor")
st.plotly_chart(go.Figure(go.Scatter(x=[0, 1, 2], y=[0, 2, 1])))
"""


def floor_tree(into: Path) -> Path:
    """A bare Streamlit app drawing one plotly chart: what Streamlit and the browser cost on this machine
    now, whatever the dashboard does (the lowest first-chart time any page could reach)."""
    (into / "floor" / "app").mkdir(parents=True, exist_ok=True)
    (into / "floor" / "app" / "main.py").write_text(FLOOR_APP)
    return into / "floor"


def first_load(trees: dict[str, Path], trials: int) -> None:
    browser_error = None
    try:
        from playwright.sync_api import sync_playwright
        if not Path(CHROMIUM).exists():
            browser_error = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    except ImportError:
        browser_error = "playwright is not installed (pip install playwright)"
    names = list(trees)
    res = {n: {"up": [], "chart": [], "total": [], "renderer": [], "outside": set(), "wall": [], "cpu": [], "torch": set()}
           for n in names}
    for name, tree in trees.items():  # untimed: byte-compile each tree, fill the OS file cache
        cold_script(tree)
    pw = browser = None
    if browser_error is None:
        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
    try:
        if browser is not None:  # untimed warm-up of the browser itself
            first_chart(trees[names[-1]], browser)
        for trial in range(trials):
            order = names if trial % 2 == 0 else names[::-1]  # interleaved, the order alternating
            for name in order:
                r = res[name]
                if browser is not None:
                    t = first_chart(trees[name], browser)
                    r["up"].append(t["up"])
                    r["chart"].append(t["chart"])
                    r["total"].append(t["up"] + t["chart"])
                    r["renderer"].append(t["renderer"])
                    r["outside"].update(t["outside"])
                c = cold_script(trees[name])
                r["wall"].append(c["wall"])
                r["cpu"].append(c["cpu"])
                r["torch"].add(c["torch"])
                print(f"  trial {trial + 1}/{trials} {name}: "
                      + (f"server up {t['up']:.2f} s, first chart {t['chart']:.2f} s later; " if browser else "")
                      + f"cold first script {c['wall']:.2f} s (CPU {c['cpu']:.2f} s)", flush=True)
    finally:
        if browser is not None:
            browser.close()
            pw.stop()

    print()
    print("docl dashboard: first chart of the bundled demo (assets/demo)")
    print(f"hardware : {hardware()}")
    print(f"versions : {versions()}; {chromium_version()}")
    print(f"method   : {trials} interleaved trials per tree, medians (min–max); a fresh `streamlit run app/main.py` "
          "and a fresh headless-Chromium context per trial; cold script = AppTest's first run in a fresh process")
    if browser_error:
        print(f"browser  : skipped: {browser_error}")
    w = 30
    print()
    print(f"{'':<34}" + "".join(f"{n:>{w}}" for n in names))
    rows = [("server start → health (s)", "up"), ("health → first chart drawn (s)", "chart"),
            ("server start → first chart (s)", "total"), ("  browser main thread busy (s)", "renderer"),
            ("cold first script, wall (s)", "wall"),
            ("cold first script, CPU (s)", "cpu")]
    for label, key in rows:
        if key in ("up", "chart", "total", "renderer") and browser is None:
            continue
        print(f"{label:<34}" + "".join(f"{spread(res[n][key]):>{w}}" for n in names))
    print(f"{'torch imported by the first page':<34}" + "".join(
        f"{'/'.join('yes' if x else 'no' for x in sorted(res[n]['torch'])):>{w}}" for n in names))
    if browser is not None:
        print(f"{'requests to other hosts':<34}" + "".join(f"{len(res[n]['outside']):>{w}}" for n in names))
        for n in names:
            for u in sorted(res[n]["outside"]):
                print(f"  {n}: {u}")
        if FLOOR in res:  # per trial: the tree's time over the floor's in the same trial (interleaved), then the median
            print(f"{'first chart ÷ bare app, per trial':<34}" + "".join(
                f"{spread([a / b for a, b in zip(res[n]['total'], res[FLOOR]['total'])]):>{w}}" for n in names))
            for n in names:
                if n != FLOOR:
                    ratio = med([a / b for a, b in zip(res[n]['total'], res[FLOOR]['total'])])
                    print(f"ratio    : {n}: server start → first chart = {ratio:.2f}× the bare app's (median of "
                          f"{trials} paired trials; goal ≤ {FIRST_CHART_GOAL_RATIO:g}×: "
                          f"{'ok' if ratio <= FIRST_CHART_GOAL_RATIO else 'SLOW'})")
        print(f"\ngoal: server start → first chart < {FIRST_CHART_GOAL_S:g} s; "
              + ", ".join(f"{n}: {'ok' if med(res[n]['total']) < FIRST_CHART_GOAL_S else 'SLOW'}" for n in names))


# ----------------------------------------------------------------------------- pages


def generate(out: Path, n: int, rounds: int) -> None:
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tests"))
    from synthetic_runs import SyntheticSpec, write_experiment
    spec = SyntheticSpec(n=n, rounds=rounds, seeds=(0,), kind="image", num_classes=10, probe=64,
                         full_kernel=False, thumb=28, eval_size=2000, running=False, failed=False,
                         label_noise=0.1)
    t0 = time.perf_counter()
    write_experiment(out, spec)
    (out / ".bench.json").write_text(json.dumps({"n": n, "rounds": rounds, "seconds": time.perf_counter() - t0}))


def timed(fn) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def widget_values(data: Path, real: bool) -> dict:
    """Rounds and a sample id the widget changes move to: the synthetic experiment's fixed ones, or for
    real runs the middle of what the first run (the one the sidebar opens) holds."""
    if not real:
        return {"emb_round": 20, "sc_round": 10, "sub_round": 20, "k_round": 25, "smp_id": 12345}
    from docl_core.store import ExperimentReader
    run = ExperimentReader(data).runs[0]
    ids, kr, er = run.round_ids, run.kernel_rounds(), run.embedding_rounds()
    mid = lambda xs: xs[len(xs) // 2] if xs else None  # noqa: E731
    return {"emb_round": mid(er), "sc_round": mid(ids), "sub_round": mid(ids), "k_round": mid(kr),
            "smp_id": int(run.meta.get("num_train") or 1) // 2}


def pages_worker(tree: Path, data: Path, pages: list[str], trials: int, real: bool = False) -> None:
    """In a fresh process, on `tree`'s code: every page's first load and reruns; prints one JSON line."""
    sys.path.insert(0, str(tree))
    values = widget_values(data, real)
    os.environ["DOCL_RUNS"] = str(data)
    from streamlit.testing.v1 import AppTest
    t0 = time.perf_counter()
    at = AppTest.from_file(str(tree / "app" / "main.py"), default_timeout=600)
    at.run()
    startup = time.perf_counter() - t0
    # the app warms torch.func up in a background thread once per server; it would charge its few
    # seconds of CPU (and the GIL) to whichever page runs beside it: let it finish before timing pages
    import threading
    t1 = time.perf_counter()
    for t in threading.enumerate():
        if t.name == "docl-warm-up":
            t.join(300)
    warm_up = time.perf_counter() - t1

    def check():
        if at.exception or at.error:
            raise SystemExit(f"page failed: {[e.value for e in at.exception] + [e.value for e in at.error]}")

    rows = {}
    for page in pages:
        at.switch_page(f"app_pages/{page}.py")
        first, first_cpu = timed(at.run)
        check()
        reruns = [timed(at.run)[0] for _ in range(trials)]
        check()
        rows[page] = {"first": first, "first_cpu": first_cpu, "rerun": statistics.median(reruns), "rerun_max": max(reruns)}

    def interact(page, label, action, needs=None):
        if page not in pages or (needs is not None and values.get(needs) is None):
            return None
        at.switch_page(f"app_pages/{page}.py")
        at.run()
        dt = timed(lambda: action().run())[0]
        check()
        return [f"{page}: {label}", dt]

    v = values
    inter = [i for i in [
        interact("embedding", f"round slider → {v['emb_round']} (a slice of the cached maps)",
                 lambda: at.select_slider(key="emb_round").set_value(v["emb_round"]), "emb_round"),
        interact("embedding", "colour by → class", lambda: at.radio(key="emb_color").set_value("class")),
        interact("embedding", "score as → size", lambda: at.radio(key="emb_emph").set_value("size")),
        interact("scores", f"round slider → {v['sc_round']}", lambda: at.slider(key="sc_round").set_value(v["sc_round"])),
        interact("scores", "score column → byproduct", lambda: at.radio(key="sc_col").set_value("score_byproduct"),
                 None if "score_byproduct" in _columns(data) else "missing"),
        interact("subsets", f"round slider → {v['sub_round']} (new round read)",
                 lambda: at.slider(key="sub_round").set_value(v["sub_round"])),
        interact("kernel", f"kernel round → {v['k_round']}", lambda: at.select_slider(key="k_round").set_value(v["k_round"]),
                 "k_round"),
        interact("sample", f"sample id → {v['smp_id']} (slice of cached matrices)",
                 lambda: at.number_input(key="smp_id").set_value(v["smp_id"])),
        interact("datamap", "colour by → label noise", lambda: at.radio(key="dm_color").set_value("noisy")),
        interact("compare", "against → gradient steps", lambda: at.radio(key="cmp_x").set_value("steps")),
    ] if i is not None]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KB on Linux
    print(json.dumps({"startup": startup, "warm_up": warm_up, "rows": rows, "inter": inter, "peak": peak}))


def _columns(data: Path) -> list[str]:
    """The per-sample columns of the first run's round 0 (no docl_core needed)."""
    import pyarrow.parquet as pq
    runs = [data] if (data / "run.json").exists() else sorted(p for p in data.iterdir() if (p / "run.json").exists())
    f = runs[0] / "samples" / "round=0000.parquet" if runs else None
    return pq.read_schema(f).names if f is not None and f.exists() else []


def pages_run(tree: Path, data: Path, pages: list[str], trials: int, real: bool = False) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    p = subprocess.run([sys.executable, __file__, "--pages-worker", str(tree), "--data", str(data),
                        "--pages", ",".join(pages), "--trials", str(trials)] + (["--real-worker"] if real else []),
                       cwd=tree, env=env,
                       capture_output=True, text=True)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise SystemExit(f"the pages worker failed on {tree}:\n{p.stdout[-1500:]}\n{p.stderr[-2500:]}")


def describe_real(out: Path) -> str:
    sys.path.insert(0, str(REPO))
    from docl_core.store import ExperimentReader
    exp = ExperimentReader(out)
    parts = []
    for r in exp.runs:
        cfg = r.meta.get("config") or {}
        parts.append(f"{r.dir.name}: {cfg.get('dataset')}, {cfg.get('protocol')} protocol, "
                     f"N = {int(r.meta.get('num_train') or 0):,}, {r.last_complete_round + 1} rounds, {r.status}")
    return "; ".join(parts)


def _vm_hwm(pid: int) -> float:
    """Peak resident memory (GB) of a process and its children so far (VmHWM of each)."""
    total = 0.0
    try:
        import psutil
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        pids = [p.pid for p in procs]
    except Exception:
        pids = [pid]
    for q in pids:
        try:
            for line in Path(f"/proc/{q}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1e6
        except OSError:
            pass
    return total


# a page's first chart has drawn: a plotly graph div with a trace holding data (the opening placeholder's
# empty bar chart does not count) and its layout drawn
DRAWN_JS = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')].some(el =>
  el._fullLayout && el.querySelector('.main-svg') && (el._fullData || []).some(t =>
    (t._length || 0) > 0 || (t.z && t.z.length > 0) || (t.values && t.values.length > 0)))"""
# (plotly's full traces: `_length` points per scatter/bar trace, whatever the JSON's array encoding; z for heatmaps)


def page_chart(tree: Path, browser, data: Path, page: str) -> dict:
    """One trial: a fresh server on `data` (cold caches), a fresh browser context opening `page`; seconds
    to health, navigation → first chart drawn, the page's main-thread busy time, the server's peak RSS."""
    port = _free_port()
    env = dict(os.environ, DOCL_RUNS=str(data), PYTHONPATH=str(tree))
    out = {"load": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    t0 = time.perf_counter()
    with _server(tree, port, env) as (proc, url):
        out["up"] = time.perf_counter() - t0
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        cdp = context.new_cdp_session(tab)
        cdp.send("Performance.enable")
        t1 = time.perf_counter()
        tab.goto(f"{url}/{'' if page == 'compare' else page}", wait_until="domcontentloaded")
        tab.wait_for_function(DRAWN_JS, timeout=300_000, polling=50)
        out["chart"] = time.perf_counter() - t1
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        out["renderer"] = metrics.get("TaskDuration")
        errors = tab.locator('[data-testid="stException"]').count()
        if errors:
            raise SystemExit(f"page {page} showed {errors} exception(s) in the browser")
        out["server_gb"] = _vm_hwm(proc.pid)
        context.close()
    return out


def browser_pages(tree: Path, data: Path, pages: list[str], trials: int) -> dict[str, list[dict]]:
    from playwright.sync_api import sync_playwright
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    res: dict[str, list[dict]] = {p: [] for p in [*pages, FLOOR]}
    floor = floor_tree(Path(tempfile.mkdtemp(prefix="docl-bench-floor-")))
    with sync_playwright() as pw:
        # software WebGL (SwiftShader) so Scattergl draws without a GPU, as on a laptop without one
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        try:
            page_chart(tree, browser, data, pages[0])  # untimed warm-up: byte-compiled code, OS file cache
            for trial in range(trials):
                for page in ([*pages, FLOOR] if trial % 2 == 0 else [FLOOR, *pages[::-1]]):
                    # the floor: a bare Streamlit app drawing one small chart, the same way (browser + Streamlit alone)
                    r = page_chart(floor, browser, data, "compare") if page == FLOOR else page_chart(tree, browser, data, page)
                    res[page].append(r)
                    print(f"  browser trial {trial + 1}/{trials} {page}: server up {r['up']:.2f} s, first chart "
                          f"{r['chart']:.2f} s, server peak {r['server_gb']:.2f} GB (load {r['load']})", flush=True)
        finally:
            browser.close()
    return res


def pages_bench(trees: dict[str, Path], a) -> None:
    real = a.real is not None
    if real:
        out = Path(a.real).resolve()
        if not out.is_dir():
            raise SystemExit(f"{out} is not a folder: give --real an experiment folder or a run folder")
    else:
        out = Path(a.out) / f"synthetic-n{a.n}-r{a.rounds}"
        meta = out / ".bench.json"
        if meta.exists() and not any(out.glob("*/embedding/round=*.parquet")):
            print(f"{out} predates embedding maps: generating it again", flush=True)
            shutil.rmtree(out)
        if not meta.exists():
            print(f"generating {a.n:,} samples × {a.rounds} rounds × 5 curricula into {out} (once) …", flush=True)
            subprocess.run([sys.executable, __file__, "--generate-only", "--out", a.out, "--n", str(a.n),
                            "--rounds", str(a.rounds)], check=True)
        gen = json.loads(meta.read_text())
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e9
    pages = [p for p in PAGES if p in a.pages.split(",")]
    names = list(trees)
    runs = {n: [] for n in names}
    for rep in range(a.repeats):  # each repeat: one fresh process per tree, the order alternating
        for name in (names if rep % 2 == 0 else names[::-1]):
            runs[name].append(pages_run(trees[name], out, pages, a.trials, real))
            print(f"  repeat {rep + 1}/{a.repeats} {name}: " + ", ".join(
                f"{p} {runs[name][-1]['rows'][p]['first']:.2f} s" for p in pages), flush=True)

    browser = {}
    if real and a.browser_trials > 0:
        browser = browser_pages(trees[names[-1]], out, [p for p in pages if p in CHART_PAGES], a.browser_trials)
    print()
    print("docl dashboard benchmark (" + (f"REAL runs in {out}" if real else
                                        "SYNTHETIC experiment: invented numbers, timing only") + ")")
    print(f"hardware : {hardware()}")
    print(f"versions : {versions()}" + (f"; {chromium_version()}" if browser else ""))
    if real:
        print(f"data     : {describe_real(out)}; {size:.2f} GB on disk")
    else:
        print(f"data     : {a.n:,} training samples × {a.rounds} rounds × 5 curricula (1 seed), 28×28 PNG thumbnails, "
              f"64-sample kernel probe; {size:.2f} GB on disk; generated in {gen['seconds']:.0f} s")
    print(f"method   : AppTest, one fresh process per tree and repeat ({a.repeats} repeat(s), trees interleaved); "
          f"first load = first render of the page after main + Compare and the app's torch warm-up thread (cold "
          f"caches), its wall and process-CPU seconds; rerun = median of {a.trials} reruns after it. Medians over repeats.")
    for name in names:
        rs = runs[name]
        print(f"\n[{name}] app start (main + Compare, cold, includes imports): {med([r['startup'] for r in rs]):.2f} s; "
              f"then waited {med([r['warm_up'] for r in rs]):.2f} s for the torch.func warm-up thread; "
              f"peak RSS {med([r['peak'] for r in rs]):.2f} GB (goal < {GOAL_GB:g} GB)")
    print()
    w = 34  # one column pair per tree: first load wall (CPU) and rerun median
    print(f"{'':<14}" + "".join(f"{n:>{w}}" for n in names))
    print(f"{'page':<14}" + "".join(f"{'first load s (CPU s)':>22}{'rerun s':>12}" for _ in names)
          + f"  goal < {GOAL_S:g} s")
    for page in pages:
        cells = ""
        for n in names:
            rows = [r["rows"][page] for r in runs[n]]
            first, cpu = med([x["first"] for x in rows]), med([x["first_cpu"] for x in rows])
            cells += f"{f'{first:.2f} ({cpu:.2f})':>22}{med([x['rerun'] for x in rows]):>12.3f}"
        last = [r["rows"][page] for r in runs[names[-1]]]
        ok = lambda key: "ok" if med([x[key] for x in last]) < GOAL_S else "SLOW"  # noqa: E731
        print(f"{page:<14}{cells}  rerun {ok('rerun')}, first {ok('first')}")
    print()
    print(f"{'interaction':<56}" + "".join(f"{n + ' s':>{w}}" for n in names))
    labels = [i[0] for i in runs[names[-1]][0]["inter"]]
    for k, label in enumerate(labels):
        print(f"{label:<56}" + "".join(f"{med([r['inter'][k][1] for r in runs[n]]):>{w}.2f}" for n in names))
    if browser:
        print(f"\nbrowser ({names[-1]}; headless Chromium, a fresh server per page and trial, cold caches; "
              f"{a.browser_trials} trial(s), medians (min–max)):")
        print(f"{'page':<18}{'server up s':>14}{'first chart s':>22}{'main thread busy s':>22}{'server peak GB':>16}"
              f"{'load at start':>16}  goal ≤ {PAGE_GOAL_S:g} s")
        for page, rs in browser.items():
            chart = [r["chart"] for r in rs]
            ok = "" if page == FLOOR else "ok" if med(chart) <= PAGE_GOAL_S else "SLOW"
            print(f"{page:<18}{spread([r['up'] for r in rs]):>14}{spread(chart):>22}"
                  f"{spread([r['renderer'] for r in rs]):>22} {spread([r['server_gb'] for r in rs]):>16}"
                  f"{rs[0]['load']:>16}  {ok}")


# ----------------------------------------------------------------------------- entry point


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--first-load", action="store_true", help="time server start → first chart on the demo")
    ap.add_argument("--against", metavar="REF", help="also measure git revision REF, interleaved (e.g. main)")
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "docl-bench-app"))
    ap.add_argument("--n", type=int, default=60_000)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--trials", type=int, default=5, help="first load: trials per tree; pages: reruns per page")
    ap.add_argument("--repeats", type=int, default=1, help="pages: fresh processes per tree (first loads)")
    ap.add_argument("--pages", default=",".join(PAGES), help="comma list of pages to time (default: all)")
    ap.add_argument("--real", metavar="DIR", help="time every page on real runs in DIR (an experiment or run folder)")
    ap.add_argument("--browser-trials", type=int, default=1,
                    help="--real: browser trials per page (a fresh server each; 0: the Python side only)")
    ap.add_argument("--real-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pages-worker", help=argparse.SUPPRESS)
    ap.add_argument("--cold-script-worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.generate_only:
        generate(Path(a.out) / f"synthetic-n{a.n}-r{a.rounds}", a.n, a.rounds)
        return 0
    if a.cold_script_worker:
        cold_script_worker(Path(a.cold_script_worker))
        return 0
    if a.pages_worker:
        pages_worker(Path(a.pages_worker), Path(a.data), a.pages.split(","), a.trials, a.real_worker)
        return 0
    with tempfile.TemporaryDirectory(prefix="docl-bench-ref-") as tmp:
        trees = {}
        if a.against:
            print(f"exporting {a.against} into {tmp} …", flush=True)
            trees[f"{a.against} (before)"] = export_tree(a.against, Path(tmp))
        trees["this tree" + (" (after)" if a.against else "")] = REPO
        if a.first_load:
            trees[FLOOR] = floor_tree(Path(tmp))
            first_load(trees, a.trials)
        else:
            pages_bench(trees, a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
