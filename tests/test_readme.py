"""The README's code examples run as written."""
import os
import re
from pathlib import Path

import pytest

from docl_core import RunReader
from docl_core.store import RunStoreError


def test_own_loop_example_runs(readme_loop_runs):
    r = RunReader(readme_loop_runs / "run-0")
    assert r.status == "complete" and r.round_ids == [0, 1, 2, 3, 4]
    assert "test_acc" in r.rounds().columns


def test_own_loop_example_run_twice_names_the_python_arguments(readme_loop_runs):
    """Issue 17: a second run of the example into the same folder refuses in Python's terms
    (a new folder, or resume=True), not with CLI flags a Python user cannot pass."""
    readme = Path(__file__).resolve().parent.parent / "README.md"
    block = re.search(r"## Your own loop.*?```python\n(.*?)```", readme.read_text(), re.S).group(1)
    before = (readme_loop_runs / "run-0" / "run.json").read_bytes()
    cwd = os.getcwd()
    os.chdir(readme_loop_runs.parent.parent)
    try:
        with pytest.raises(RunStoreError) as info:
            exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    message = str(info.value)
    assert "already holds a run" in message and "resume=True" in message and "new folder" in message
    assert "--" not in message, f"a CLI flag in a Python message: {message}"
    assert (readme_loop_runs / "run-0" / "run.json").read_bytes() == before


def test_readme_says_how_to_show_the_dashboard_on_another_machine():
    """.streamlit/config.toml serves on localhost only: the README says how to reach it from another
    machine, and what serving it on the network exposes."""
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("## Opening the dashboard on another screen"):text.index("## A first run")]
    assert "--server.address 0.0.0.0" in section and "ssh -N -L 8501:localhost:8501" in section
    assert "anyone who can reach port 8501" in section and "start training jobs" in section
