"""The README's code examples run as written."""
import re
from pathlib import Path

from docl_core import RunReader

README = Path(__file__).resolve().parent.parent / "README.md"


def test_own_loop_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    block = re.search(r"## Your own loop.*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    r = RunReader(tmp_path / "runs" / "my-loop" / "run-0")
    assert r.status == "complete" and r.round_ids == [0, 1, 2, 3, 4]
