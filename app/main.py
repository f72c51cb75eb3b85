"""docl dashboard: `streamlit run app/main.py [-- RUNS_FOLDER]`.

Builds the navigation, draws the sidebar (runs folder, experiment, filters, run to inspect)
and runs the chosen page inside an error guard: a bad folder or a broken file shows an error
box that says what is wrong, never a traceback.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repo root, for `app` and `docl_core`

import streamlit as st  # noqa: E402

# the favicon is a local file: a :material/…: icon would be fetched from fonts.gstatic.com (fails offline)
st.set_page_config(page_title="docl — curriculum dynamics", page_icon=str(ROOT / "assets" / "favicon.png"),
                   layout="wide")
# A session's first run: an empty chart while the dashboard's modules load, so that the browser fetches
# and parses its charting code (plotly.js, the largest script on the page) while Python is still busy,
# not after the page's first chart arrives. Cleared before the page draws; later runs skip it.
_opening = st.empty()
if not st.session_state.get("_viewed"):
    _opening.plotly_chart({"data": [{"type": "bar", "x": [], "y": []}],
                           "layout": {"height": 60, "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
                                      "xaxis": {"visible": False}, "yaxis": {"visible": False},
                                      "annotations": [{"text": "Opening the experiment…", "showarrow": False,
                                                       "font": {"size": 16, "color": "#666666"}}]}},
                          theme=None, config={"staticPlot": True})

from app import common  # noqa: E402

PAGES = [
    st.Page("app_pages/compare.py", title="Compare", icon=":material/monitoring:", default=True),
    st.Page("app_pages/scores.py", title="Scores", icon=":material/thermostat:"),
    st.Page("app_pages/subsets.py", title="Selected subsets", icon=":material/filter_center_focus:"),
    st.Page("app_pages/kernel.py", title="Tangent kernel", icon=":material/grid_on:"),
    st.Page("app_pages/sample.py", title="Sample", icon=":material/search:"),
    st.Page("app_pages/datamap.py", title="Data map", icon=":material/scatter_plot:"),
    st.Page("app_pages/embedding.py", title="Embedding", icon=":material/bubble_chart:"),
    st.Page("app_pages/atlas.py", title="Score atlas", icon=":material/hub:"),
    st.Page("app_pages/new_run.py", title="New run", icon=":material/rocket_launch:"),
    st.Page("app_pages/how_it_works.py", title="How it works", icon=":material/menu_book:"),
]
# Presentation mode hides the sidebar (common.PRESENTATION_CSS): the pages move to a bar at the top
# (the switch's own widget state: it is current on the run its click starts, before the sidebar is drawn)
presenting = st.session_state.get("_w_presentation", st.session_state.get("presentation", False))
page = st.navigation(PAGES, position="top" if presenting else "sidebar")
st.sidebar.markdown("### docl\nCurriculum learning by optimising learning dynamics")

ctx = None
with common.error_box():
    ctx = common.sidebar()
st.session_state["_ctx_obj"] = ctx

_opening.empty()
common.exit_presentation_button()  # the sidebar, with its switch, is hidden while presenting
try:
    with common.error_box():
        if ctx is not None or page.title in ("New run", "How it works"):
            page.run()
finally:  # after the page, also when it stops early: torch is imported only once the first page is drawn
    common.end_of_run()  # this session's first run is over (see common.first_view)
    common.warm_up_torch_func()
