"""Shared test settings."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """The tests run tiny tensors: one thread is fastest for them, and on the 2-core CI machine two
    threads only wait on each other (measured: 10x slower convolutions under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
