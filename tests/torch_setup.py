"""Fixtures for the tests of small torch models; a test module imports them to use them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """The tiny models gain nothing from a second thread, and two threads competing with another
    process for 2 cores made the overfit test 15x slower (40 s instead of 2.7 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def seeded() -> None:
    torch.manual_seed(0)
