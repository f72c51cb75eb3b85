"""Issue 8's promise end to end: a plain loop outside the package, given only DynamicsTracker's
three calls, writes a run that the dashboard opens on every page (AppTest, no exception, no error box)."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]
MAIN = str(REPO / "app" / "main.py")
PAGES = ["compare", "scores", "subsets", "kernel", "sample", "datamap", "new_run", "how_it_works"]


@pytest.mark.parametrize("page", PAGES)
def test_dashboard_opens_a_user_loop_run_on_every_page(readme_loop_runs, monkeypatch, page):
    monkeypatch.setenv("DOCL_RUNS", str(readme_loop_runs))
    at = AppTest.from_file(MAIN, default_timeout=90)
    at.run()
    if page != "compare":
        at.switch_page(f"app_pages/{page}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title, f"{page} shows no title"
    if page not in ("new_run", "how_it_works"):
        assert at.get("plotly_chart"), f"{page} draws no chart for the user's run"
