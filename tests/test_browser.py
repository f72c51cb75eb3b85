"""One real-browser pass: `streamlit run app/main.py` on a synthetic experiment, driven by
Debian's Chromium through Playwright, through every page. Fails on any Streamlit exception
element or an empty page; saves a screenshot per page (env DOCL_SCREENSHOTS, default a temp dir).

Skipped when /usr/bin/chromium is missing, unless DOCL_REQUIRE_BROWSER=1 (CI), then it fails.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from synthetic_runs import SyntheticSpec, write_experiment

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
PAGES = [("", "Compare curricula"), ("scores", "Scores over rounds"), ("subsets", "Selected subsets"),
         ("kernel", "Tangent kernel"), ("sample", "One sample's history"), ("datamap", "Data map"),
         ("new_run", "Start a new run"), ("how_it_works", "How it works")]

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _need_browser()
    exp = write_experiment(tmp_path_factory.mktemp("runs") / "synthetic", SyntheticSpec(n=400, rounds=8))
    port = _free_port()
    log = open(tmp_path_factory.mktemp("log") / "streamlit.log", "w+")
    env = {**os.environ, "DOCL_RUNS": str(exp), "PYTHONPATH": str(REPO)}
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
        time.sleep(0.4)
    page.wait_for_timeout(1000)  # plotly draws after the script finishes


def _shoot(page, path: Path) -> None:
    """Screenshot the whole page: Streamlit scrolls inside its main block, so grow the viewport."""
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], "
                           "[data-testid=\"stAppViewContainer\"]')].map(e => e.scrollHeight), 800)")
    page.set_viewport_size({"width": 1440, "height": min(int(height) + 40, 12000)})
    page.wait_for_timeout(600)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 1000})


def test_every_page_in_chromium(server):
    from playwright.sync_api import sync_playwright
    shots = Path(os.environ.get("DOCL_SCREENSHOTS") or tempfile.mkdtemp(prefix="docl-shots-"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            for i, (path, title) in enumerate(PAGES):
                page.goto(f"{server}/{path}", wait_until="domcontentloaded")
                _settle(page, chart=path != "new_run")
                _shoot(page, shots / f"{i:02d}-{path or 'compare'}.png")
                exc = page.locator('[data-testid="stException"]')
                assert exc.count() == 0, f"page /{path} shows an exception: {exc.first.inner_text()[:500]}"
                heading = page.locator("h1").first.inner_text()
                assert title in heading, f"page /{path}: expected title {title!r}, got {heading!r}"
                body = page.locator('[data-testid="stMain"]').inner_text()
                assert len(body.strip()) > 200, f"page /{path} looks empty"
                if path not in ("new_run",):
                    assert page.locator('[data-testid="stPlotlyChart"], [data-testid="stImage"]').count() > 0, \
                        f"page /{path} drew no chart"
                errors = page.locator('[data-testid="stAlertContentError"]')
                assert errors.count() == 0, f"page /{path} shows an error box: {errors.first.inner_text()[:300]}"
            # navigate by the sidebar too: the links work, not only the URLs
            page.goto(server, wait_until="domcontentloaded")
            _settle(page)
            page.get_by_role("link", name="Tangent kernel").first.click()
            _settle(page)
            assert "Tangent kernel" in page.locator("h1").first.inner_text()
            # a running run renders and is labelled live
            page.goto(f"{server}/scores?run=docl-s2-live", wait_until="domcontentloaded")
            _settle(page)
            _shoot(page, shots / "08-scores-live-run.png")
            assert page.locator('[data-testid="stException"]').count() == 0
            assert "live" in page.locator('[data-testid="stMain"]').inner_text()
        finally:
            browser.close()
    print(f"screenshots in {shots}")
