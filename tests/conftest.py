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
