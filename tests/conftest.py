"""Shared test settings."""
import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    # tiny models on a 2-core machine: torch's own threads only oversubscribe the cores
    # (about 10x slower when other processes run), so every test uses one
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def mnist1d_cache(tmp_path_factory):
    # generated MNIST-1D arrays are cached on disk between processes (data/builtin.py): the suite
    # (and the processes it starts) keeps them in its own folder, never in the user's ~/.cache
    import os
    before = os.environ.get("DOCL_CACHE")
    os.environ["DOCL_CACHE"] = str(tmp_path_factory.mktemp("docl-cache"))
    yield
    if before is None:
        os.environ.pop("DOCL_CACHE", None)
    else:
        os.environ["DOCL_CACHE"] = before


@pytest.fixture(scope="session")
def readme_loop_runs(tmp_path_factory):
    """Runs the README's 'Your own loop' example as written, in a fresh folder; returns its
    experiment folder (runs/my-loop)."""
    import os
    import re
    from pathlib import Path
    readme = Path(__file__).resolve().parent.parent / "README.md"
    block = re.search(r"## Your own loop.*?```python\n(.*?)```", readme.read_text(), re.S).group(1)
    root = tmp_path_factory.mktemp("own-loop")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    return root / "runs" / "my-loop"


# Whole modules whose tests start processes (torchrun, the study's workers, a browser, a server), run
# the dashboard through AppTest, or train end to end: `pytest -m "not slow"` leaves them out.
SLOW_MODULES = {"test_app", "test_browser", "test_distributed", "test_study", "test_study_order",
                "test_new_run_page", "test_own_loop_app", "test_lightning"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
