"""The README's code examples run as written."""
from docl_core import RunReader


def test_own_loop_example_runs(readme_loop_runs):
    r = RunReader(readme_loop_runs / "run-0")
    assert r.status == "complete" and r.round_ids == [0, 1, 2, 3, 4]
    assert "test_acc" in r.rounds().columns
