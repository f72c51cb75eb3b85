"""One real-browser pass: `streamlit run app/main.py` as a new user starts it (no argument, so it
opens the bundled demo, assets/demo), driven by Debian's Chromium through Playwright through
every page. Fails on any Streamlit exception element, error box, missing chart or empty page;
then clicks one Data-map point and follows it to its Sample page; then points the sidebar's Runs
folder box at a small synthetic experiment with a run that is still training and checks that the run
renders, labelled live. A second pass switches Presentation mode on and, at 1920×1080, walks every
chart page on every bundled experiment (picked in the presentation bar): each page's key chart and its
takeaway callout end within the screen, unscrolled; no downloads, no sidebar. Saves a screenshot per
page (env DOCL_SCREENSHOTS, default a temp dir); DOCL_LECTURE_SHOTS=docs/lecture also writes the
lecture's screens there (LECTURE below names them). The demo is only read: the test checks it is unchanged.

Skipped when /usr/bin/chromium is missing, unless DOCL_REQUIRE_BROWSER=1 (CI), then it fails.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from synthetic_runs import SyntheticSpec, write_experiment

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "assets" / "demo"
CHROMIUM = "/usr/bin/chromium"
# (url path, title, text the page must show on the demo)
PAGES = [("", "Compare curricula", "DoCL"), ("scores", "Scores over rounds", "Rank churn"),
         ("subsets", "Selected subsets", "flipped label"), ("kernel", "Tangent kernel", "Why does a sample score high"),
         ("sample", "One sample's history", "Kernel neighbours"), ("datamap", "Data map", "flipped labels gather here"),
         ("embedding", "Embedding", "projected to 2-D on the principal axes of the shown"),
         ("new_run", "Start a new run", "the bundled demo stays as it is"),
         ("how_it_works", "How it works", "computed now")]

# Presentation mode, page by page: (name, its link in the top bar, CSS selector of its key chart). On
# every bundled experiment, the key chart and the page's first takeaway callout (common.takeaway, a
# container keyed takeaway_…) must both end within a 1920×1080 screen, unscrolled.
PRESENTED = [("compare", "Compare", ".st-key-cmp_curve"),
             ("scores", "Scores", ".st-key-sc_heat"),
             ("subsets", "Selected subsets", '[data-testid="stImage"]'),
             ("kernel", "Tangent kernel", ".st-key-k_heat"),
             ("sample", "Sample", ".st-key-smp_hist"),
             ("datamap", "Data map", ".st-key-dm_scatter"),
             ("embedding", "Embedding", ".st-key-emb_scatter"),
             ("atlas", "Score atlas", ".st-key-at_rho"),
             ("how_it_works", "How it works", ".st-key-hw_rv")]
EXPERIMENTS = sorted(p.parent.name for p in DEMO.glob("*/about.md"))
# DOCL_LECTURE_SHOTS=docs/lecture: the screens docs/lecture.md shows, in the lecture's order
# ((experiment, page) → file name), written as 256-colour PNGs
LECTURE = {("clean-digits", "compare"): "01-clean-compare", ("clean-digits", "how_it_works"): "02-clean-how-it-works",
           ("clean-digits", "scores"): "03-clean-scores", ("clean-digits", "atlas"): "04-clean-atlas",
           ("noisy-digits", "compare"): "05-noisy-compare", ("noisy-digits", "subsets"): "06-noisy-subsets",
           ("noisy-digits", "datamap"): "07-noisy-datamap", ("frontier-digits", "subsets"): "08-frontier-subsets",
           ("frontier-digits", "kernel"): "09-frontier-kernel", ("frontier-digits", "embedding"): "10-frontier-embedding",
           ("order-digits", "compare"): "11-order-compare", ("order-digits", "sample"): "12-order-sample"}
SCREEN = {"width": 1920, "height": 1080}
TITLES = {"compare": "Compare curricula", "scores": "Scores over rounds", "subsets": "Selected subsets",
          "kernel": "Tangent kernel", "sample": "One sample's history", "datamap": "Data map",
          "embedding": "Embedding", "atlas": "Score atlas", "how_it_works": "How it works"}

pytestmark = pytest.mark.browser


def _need_browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("DOCL_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing and DOCL_REQUIRE_BROWSER=1: apt-get install -y chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("DOCL_REQUIRE_BROWSER") == "1":
            pytest.fail("playwright is not installed: pip install playwright")
        pytest.skip("playwright is not installed")
    if not (DEMO / "clean-digits" / "docl-s0" / "run.json").is_file():
        pytest.fail(f"the bundled demo is missing ({DEMO}): create it with `python -m docl_core demo`")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _snapshot(folder: Path) -> dict:
    """{relative path: (size, mtime_ns)} of every file: the demo must come out of the test unchanged."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _need_browser()
    port = _free_port()
    log = open(tmp_path_factory.mktemp("log") / "streamlit.log", "w+")
    env = {k: v for k, v in os.environ.items() if k != "DOCL_RUNS"}  # the product's default: the demo
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"streamlit exited early:\n{log.read()[-3000:]}")
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not answer within 90 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def _settle(page, timeout_s: float = 90.0, chart: bool = False) -> None:
    """Wait until the script has finished running and the page has drawn (spinners appear after a
    short delay, so a page that should draw a chart is waited on until one is there)."""
    page.wait_for_selector("h1", timeout=timeout_s * 1000)
    if chart:
        page.wait_for_selector('[data-testid="stPlotlyChart"], [data-testid="stImage"]', timeout=timeout_s * 1000)
    deadline = time.time() + timeout_s
    quiet = 0
    while time.time() < deadline and quiet < 3:
        busy = (page.locator('[data-testid="stStatusWidget"]').filter(has_text="Running").count()
                + page.locator('[data-testid="stSpinner"]').count())
        quiet = quiet + 1 if busy == 0 else 0
        time.sleep(0.3)
    page.wait_for_timeout(700)  # plotly draws after the script finishes


def _shoot(page, path: Path) -> None:
    """Screenshot the whole page: Streamlit scrolls inside its main block, so grow the viewport."""
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], "
                           "[data-testid=\"stAppViewContainer\"]')].map(e => e.scrollHeight), 800)")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 12000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


def _key_chart_bottom(page, selector: str):
    """Where the page's key chart ends (px from the top of the unscrolled viewport): the lowest bottom
    edge of every element the selector matches (a gallery is many images); None when none is drawn."""
    return page.evaluate("""(sel) => {
        const boxes = [...document.querySelectorAll(sel)].map(e => e.getBoundingClientRect()).filter(r => r.height > 0);
        return boxes.length ? Math.max(...boxes.map(r => r.bottom)) : null;
    }""", selector)


def _takeaway_bottom(page):
    """Where the page's first takeaway callout (in reading order) ends; None when it shows none."""
    return page.evaluate("""() => {
        const boxes = [...document.querySelectorAll('[class*="st-key-takeaway_"]')]
            .map(e => e.getBoundingClientRect()).filter(r => r.height > 0);
        if (!boxes.length) return null;
        boxes.sort((a, b) => a.top - b.top);
        return boxes[0].bottom;
    }""")


def _settle_presented(page, selector: str, timeout_s: float = 90.0):
    """Presentation walk's wait, shorter than _settle: the key chart is there, the script is done,
    and the chart's and the takeaway's bottoms hold still for two looks 0.25 s apart (plotly draws
    after the script ends). Returns (chart bottom, takeaway bottom)."""
    page.wait_for_selector(selector, timeout=timeout_s * 1000)
    deadline, last, same = time.time() + timeout_s, None, 0
    while time.time() < deadline and same < 2:
        time.sleep(0.25)
        busy = (page.locator('[data-testid="stStatusWidget"]').filter(has_text="Running").count()
                + page.locator('[data-testid="stSpinner"]').count()
                + page.locator('[data-stale="true"]').count())
        drawn = page.evaluate("(sel) => [...document.querySelectorAll(sel)].every(e => !e.matches("
                              "'[data-testid=\"stPlotlyChart\"], :has([data-testid=\"stPlotlyChart\"])') "
                              "|| e.querySelector('.main-svg'))", selector)
        now = (_key_chart_bottom(page, selector), _takeaway_bottom(page))
        same = same + 1 if (busy == 0 and drawn and now == last) else 0
        last = now
    return last


def _check(page, where: str, chart: bool = True) -> str:
    """No exception, no error box, something drawn; returns the main block's text."""
    exc = page.locator('[data-testid="stException"]')
    assert exc.count() == 0, f"{where} shows an exception: {exc.first.inner_text()[:500]}"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{where} shows an error box: {errors.first.inner_text()[:300]}"
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert len(body.strip()) > 200, f"{where} looks empty"
    if chart:
        assert page.locator('[data-testid="stPlotlyChart"], [data-testid="stImage"]').count() > 0, \
            f"{where} drew no chart"
    return body


def _click_a_data_map_point(page, server: str, shots: Path) -> None:
    """One real click on a Data-map point (the page's caption invites it): the page then names
    the clicked sample, with no error box, and its button opens that sample's history."""
    page.goto(f"{server}/datamap", wait_until="domcontentloaded")
    _settle(page, chart=True)
    # the point farthest right on the top trace, where points are sparse, so the click is unambiguous;
    # its pixel position from plotly's own axes, its sample id from the trace's customdata
    where = page.evaluate("""() => {
        const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
        const fl = gd._fullLayout, tr = gd._fullData[gd._fullData.length - 1];
        let best = 0;
        for (let i = 0; i < tr.x.length; i++) if (tr.x[i] > tr.x[best]) best = i;
        const box = gd.getBoundingClientRect();
        return {x: box.left + fl._size.l + fl.xaxis.l2p(tr.x[best]), y: box.top + fl._size.t + fl.yaxis.l2p(tr.y[best]),
                sample: Number(tr.customdata[best][0])};
    }""")
    page.mouse.move(where["x"], where["y"])
    page.wait_for_timeout(300)
    page.mouse.click(where["x"], where["y"])
    page.get_by_text(f"Picked sample {where['sample']}").wait_for(timeout=60_000)
    _settle(page, chart=True)
    _shoot(page, shots / "datamap-clicked.png")
    body = _check(page, "/datamap after clicking a point")
    assert f"Picked sample {where['sample']}" in body, body[-600:]
    page.get_by_role("button", name=f"Open sample {where['sample']}").click()
    _settle(page, chart=True)
    assert "One sample's history" in page.locator("h1").first.inner_text()
    _check(page, "/sample opened from the data map")
    assert page.get_by_text(f"Sample {where['sample']} in ").count() > 0, "the Sample page shows another sample"


def test_every_page_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright
    shots = Path(os.environ.get("DOCL_SCREENSHOTS") or tempfile.mkdtemp(prefix="docl-shots-"))
    shots.mkdir(parents=True, exist_ok=True)
    before = _snapshot(DEMO)
    outside = []  # URLs the page requested from any host but the local server
    # one run, still training, with a seed the demo does not have (so stale seed filters would hide it)
    live_exp = write_experiment(tmp_path / "synthetic", SyntheticSpec(n=200, rounds=4, curricula=(), seeds=(5,),
                                                                       failed=False))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # the dashboard must work with no internet: every request goes to the local server
            local = urlparse(server).hostname
            page.on("request", lambda r: outside.append(r.url) if urlparse(r.url).scheme in ("http", "https", "ws", "wss")
                    and urlparse(r.url).hostname != local else None)
            t0 = time.perf_counter()
            page.goto(server, wait_until="domcontentloaded")
            page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=90_000)
            # measured, never asserted (benchmarks/bench_app.py --first-load times it properly)
            print(f"first chart drawn {time.perf_counter() - t0:.1f} s after the first page was opened")
            for i, (path, title, must_show) in enumerate(PAGES):
                page.goto(f"{server}/{path}", wait_until="domcontentloaded")
                # the Embedding page draws a map only once the demo is regenerated with embeddings
                drawn = path != "new_run"
                _settle(page, chart=drawn)
                _shoot(page, shots / f"{i:02d}-{path or 'compare'}.png")
                body = _check(page, f"page /{path}", chart=drawn)
                heading = page.locator("h1").first.inner_text()
                assert title in heading, f"page /{path}: expected title {title!r}, got {heading!r}"
                assert must_show in body, f"page /{path} on the demo does not show {must_show!r}"
                assert "Synthetic test data" not in body, f"page /{path}: the demo is real, not synthetic"
            # the front door opened the bundled demo, with no prompt
            side = page.locator('[data-testid="stSidebar"]').inner_text()
            assert "clean-digits: 9 runs" in side, f"the sidebar did not open the bundled demo: {side[:300]}"

            _click_a_data_map_point(page, server, shots)

            # the sidebar's links work, not only the URLs; then the Runs folder box opens another
            # experiment, whose one run is still training: it renders and is labelled live
            page.get_by_role("link", name="Scores").first.click()
            _settle(page, chart=True)
            assert "Scores over rounds" in page.locator("h1").first.inner_text()
            box = page.get_by_role("textbox", name="Runs folder")
            box.fill(str(live_exp))
            box.press("Enter")
            _settle(page, chart=True)
            side = page.locator('[data-testid="stSidebar"]').inner_text()
            shown = re.search(r"synthetic: (\d+) runs?, (\d+) shown", side)
            assert shown and shown.group(1) == shown.group(2), f"the new folder's runs are not all shown: {side[-300:]}"
            _shoot(page, shots / f"{len(PAGES):02d}-scores-live-run.png")
            body = _check(page, "scores on a live run")
            assert "● live" in body, "the running run is not labelled live"

            # the quick New-run preset, end to end: it trains into a new folder of its own, named
            # under its button before the start, and finishes; the folder on screen stays as it was
            page.get_by_role("link", name="New run").first.click()
            _settle(page)
            quick = Path(live_exp).parent / "quick-digits-1"
            assert str(quick) in page.locator('[data-testid="stMain"]').inner_text(), "the quick run's folder is not named"
            mine = sorted(p.name for p in Path(live_exp).iterdir())
            page.get_by_role("button", name="Start the quick run").click()
            _settle(page)
            run_json = quick / "docl-s0" / "run.json"
            deadline, t0 = time.time() + 600, time.time()
            while time.time() < deadline:
                meta = json.loads(run_json.read_text()) if run_json.is_file() else {}
                if meta.get("status") in ("complete", "failed"):
                    break
                time.sleep(1)
            assert meta.get("status") == "complete", f"the quick run did not finish: {meta.get('status')}, {meta.get('error')}"
            print(f"quick preset: {time.time() - t0:.0f} s from the click to a complete run")
            assert sorted(p.name for p in Path(live_exp).iterdir()) == mine, "the quick run wrote into the folder on screen"
            page.get_by_role("link", name="New run").first.click()
            _settle(page)
            _shoot(page, shots / f"{len(PAGES) + 1:02d}-new-run-quick.png")
            _check(page, "New run after the quick run", chart=False)  # a finished run leaves no error box
            side = page.locator('[data-testid="stSidebar"]').inner_text()  # the sidebar follows the started run
            assert "quick-digits-1: 1 run" in side, f"the sidebar did not follow the quick run: {side[-300:]}"
            page.get_by_role("link", name="Scores").first.click()
            _settle(page, chart=True)
            body = _check(page, "scores after the quick run")
            assert "mixes 2 settings" not in body, "the quick run was pooled with other runs"
            assert "Run: DoCL · seed 0 — ✓ complete" in body, f"the quick run is not the one shown: {body[:600]}"
        finally:
            browser.close()
    assert not outside, f"the page requested other hosts (it must work offline): {sorted(set(outside))}"
    assert _snapshot(DEMO) == before, "the browser pass changed files in assets/demo"
    print(f"screenshots in {shots}")


def _pick_experiment(page, name: str) -> None:
    """The presentation bar's Experiment box (the sidebar is hidden)."""
    box = page.locator(".st-key-present_experiment input")
    if box.input_value() == name:
        return
    box.click()
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_function("(n) => document.querySelector('.st-key-present_experiment input').value === n",
                           arg=name, timeout=30_000)


def test_presentation_mode_every_page_every_experiment(server):
    """Issue 32 item 1, measured: a lecturer's 1920×1080 screen in Presentation mode, on every bundled
    experiment (switched from the presentation bar) and every chart page: the key chart and the page's
    takeaway callout both end above y = 1080, unscrolled; no downloads, no sidebar. Saves the screen per
    page × experiment (DOCL_SCREENSHOTS) and, with DOCL_LECTURE_SHOTS, the lecture's screens."""
    from playwright.sync_api import sync_playwright
    from PIL import Image
    shots = Path(os.environ.get("DOCL_SCREENSHOTS") or tempfile.mkdtemp(prefix="docl-shots-"))
    shots.mkdir(parents=True, exist_ok=True)
    lecture = Path(os.environ["DOCL_LECTURE_SHOTS"]) if os.environ.get("DOCL_LECTURE_SHOTS") else None
    if lecture is not None:
        lecture = lecture if lecture.is_absolute() else REPO / lecture
        lecture.mkdir(parents=True, exist_ok=True)
    assert len(EXPERIMENTS) >= 3, EXPERIMENTS
    measured, problems = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server, wait_until="domcontentloaded")
            _settle(page, chart=True)
            page.locator('[data-testid="stSidebar"]').get_by_text("Presentation mode").click()
            page.wait_for_selector(".st-key-present_experiment", timeout=60_000)
            page.set_viewport_size(SCREEN)  # a projector's screen
            for exp in EXPERIMENTS:
                _pick_experiment(page, exp)
                for name, link, key_chart in PRESENTED:
                    page.get_by_role("link", name=link, exact=True).first.click()
                    page.wait_for_function("(t) => [...document.querySelectorAll('h1')].some(h => h.innerText.includes(t))",
                                           arg=TITLES[name], timeout=60_000)
                    chart_bottom, callout_bottom = _settle_presented(page, key_chart)
                    where = f"{exp} /{name}"
                    shot = shots / f"presentation-{exp}-{name}.png"
                    page.screenshot(path=str(shot))  # the screen as the room sees it
                    if lecture is not None and (exp, name) in LECTURE:
                        Image.open(shot).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(
                            lecture / f"{LECTURE[exp, name]}.png", optimize=True)
                    measured.append((where, chart_bottom, callout_bottom))
                    _check(page, f"{where} in presentation mode")
                    if chart_bottom is None or chart_bottom > SCREEN["height"]:
                        problems.append(f"{where}: the key chart ({key_chart}) ends at {chart_bottom}")
                    if callout_bottom is None or callout_bottom > SCREEN["height"]:
                        problems.append(f"{where}: the takeaway callout ends at {callout_bottom}")
                    assert page.locator('[data-testid="stDownloadButton"]').count() == 0, \
                        f"{where} in presentation mode still shows download buttons"
                    assert not page.locator('[data-testid="stSidebar"]').is_visible(), \
                        f"{where} in presentation mode still shows the sidebar"
            print("\n".join(f"{w}: key chart ends at {c:.0f} px, takeaway at "
                             f"{'none' if t is None else f'{t:.0f} px'}" for w, c, t in measured if c is not None))
            assert not problems, "beyond a 1920×1080 screen in presentation mode:\n" + "\n".join(problems)
            page.set_viewport_size({"width": 1400, "height": 1000})
            page.get_by_role("button", name="Exit presentation mode").click()  # the sidebar is hidden
            _settle(page, chart=True)
            assert page.locator('[data-testid="stSidebar"]').is_visible(), "the sidebar did not come back"
            assert page.locator('[data-testid="stDownloadButton"]').count() > 0, "presentation mode did not switch off"
        finally:
            browser.close()


def test_new_run_enter_on_a_bad_dataset_starts_nothing(server):
    """Issue 17 item 6: on the New-run page, a mistyped dataset and Enter start no job (and show no
    box yet: problems wait for the button); the Start button then starts nothing and an error box
    names the problem."""
    from playwright.sync_api import sync_playwright
    exp_dir = REPO / "runs" / "my-experiment"  # where the demo's New-run page starts runs
    before = _snapshot(exp_dir) if exp_dir.exists() else None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{server}/new_run", wait_until="domcontentloaded")
            _settle(page)
            _check(page, "the New-run page", chart=False)  # the defaults are fine: no error box
            box = page.get_by_role("textbox", name="Dataset", exact=True)
            box.fill("digitz")
            box.press("Enter")
            _settle(page)
            errors = page.locator('[data-testid="stAlertContentError"]')
            assert errors.count() == 0, "an error box before the Start button was pressed"
            page.get_by_role("button", name="Start training").click()
            _settle(page)
            time.sleep(2)  # a started job would have made its log and folder by now
            assert errors.count() == 1, "no error box after Start with a mistyped dataset"
            assert "unknown dataset 'digitz'" in errors.first.inner_text()
            body = page.locator('[data-testid="stMain"]').inner_text()
            assert "Runs started from this page" not in body and "Started " not in body, "a job started"
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            browser.close()
    after = _snapshot(exp_dir) if exp_dir.exists() else None
    assert after == before, "a job wrote into the experiment folder"
