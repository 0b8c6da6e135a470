"""Fixtures shared by the encoder tests."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: on a small shared machine OpenMP's spinning threads slow tiny
    forwards down many times over when other processes hold the cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
