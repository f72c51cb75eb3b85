"""The README's code examples run as written."""
from docl_core import RunReader


def test_own_loop_example_runs(readme_loop_runs):
    r = RunReader(readme_loop_runs / "run-0")
    assert r.status == "complete" and r.round_ids == [0, 1, 2, 3, 4]
    assert "test_acc" in r.rounds().columns


def test_readme_says_how_to_show_the_dashboard_on_another_machine():
    """.streamlit/config.toml serves on localhost only: the README says how to reach it from another
    machine, and what serving it on the network exposes."""
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("## Opening the dashboard on another screen"):text.index("## A first run")]
    assert "--server.address 0.0.0.0" in section and "ssh -N -L 8501:localhost:8501" in section
    assert "anyone who can reach port 8501" in section and "start training jobs" in section
