"""The local model for the tests that need it.

A test that needs the real local model server (the local-llm extra and its model) is marked
``@pytest.mark.local_llm`` and is skipped, with the reason, when they are not installed: by the
``local_server`` fixture, which starts one server for the module, or, for a test that starts its
own (through the CLI), by ``skip_without_local_model`` from conftest's collection hook.

from local_llm import local_server_fixture  # noqa: F401 (registers the fixture)

@pytest.mark.local_llm
def test_x(local_server: LocalModelServer) -> None: ...
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

import pytest

from pokedreamer.config import LocalLLMSettings
from pokedreamer.planner.local import LocalModelServer, local_model_available

MARKER = "local_llm"
# One thread, as the agent runs it: with two, a machine busy with anything else stalls
# llama.cpp's threads at every step (one plan took 144 s on a loaded machine, 38 s with one).
TEST_THREADS = 1


@cache
def unavailable() -> str | None:
    """Why the local model cannot run here, or None; asked once per session."""
    return local_model_available(LocalLLMSettings())


def skip_without_local_model(items: list[pytest.Item]) -> None:
    """Marks the ``local_llm`` tests among ``items`` to be skipped, with the reason, when the local
    model is not installed (for conftest's pytest_collection_modifyitems)."""
    marked = [item for item in items if item.get_closest_marker(MARKER) is not None]
    reason = unavailable() if marked else None
    for item in marked if reason else []:
        item.add_marker(pytest.mark.skip(reason=f"no local model: {reason}"))


@pytest.fixture(name="local_server", scope="module")
def local_server_fixture() -> Iterator[LocalModelServer]:
    """The real local model server, started once for the module; skips when not installed."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"no local model: {reason}")
    server = LocalModelServer.start(LocalLLMSettings(threads=TEST_THREADS))
    try:
        yield server
    finally:
        server.close()
