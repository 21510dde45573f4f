"""The fake LLM server as a pytest fixture (the server lives in pokedreamer.planner.fake_llm).

from llm_server import llm_server_fixture  # noqa: F401 (registers the fixture)

def test_x(llm_server: FakeLLMServer) -> None:
    llm_server.script(completion(plan_json), error(429, headers={"Retry-After": "1"}))
    ...
    assert llm_server.requests[0].body["response_format"]["type"] == "json_schema"
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pokedreamer.planner.fake_llm import (  # noqa: F401 (re-exported for the tests)
    FakeLLMServer,
    Reply,
    Request,
    answer,
    closed_port_url,
    completion,
    error,
    slow,
)


# Named apart from the fixture so that a test module can import it and still take `llm_server`
# as an argument without shadowing the import.
@pytest.fixture(name="llm_server")
def llm_server_fixture() -> Iterator[FakeLLMServer]:
    """A FakeLLMServer, closed after the test."""
    server = FakeLLMServer()
    try:
        yield server
    finally:
        server.close()
