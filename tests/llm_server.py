"""The fake LLM server as a pytest fixture (the server lives in pokedreamer.bench.fake_llm, beside
the planner bench that ships it), and a URL where no server listens.

from llm_server import llm_server_fixture  # noqa: F401 (registers the fixture)

def test_x(llm_server: FakeLLMServer) -> None:
    llm_server.script(completion(plan_json), error(429, headers={"Retry-After": "1"}))
    ...
    assert llm_server.requests[0].body["response_format"]["type"] == "json_schema"

llm_server.dialect = "llama.cpp" makes it refuse json_schema with the 500 that llama-cpp-python's
server sends; llm_server.kinds lists how each request asked for JSON.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from pokedreamer.bench.fake_llm import (  # noqa: F401 (re-exported for the tests)
    Dialect,
    FakeLLMServer,
    Reply,
    Request,
    answer,
    completion,
    error,
    llama_cpp_validation_error,
    replaying,
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


def closed_port_url() -> str:
    """The URL of a port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Closed without listen(): the port is free and refuses connections until someone takes it.
    return f"http://127.0.0.1:{port}/v1"


def holding(reply: Reply) -> tuple[Callable[[Request], Reply], threading.Event, threading.Event]:
    """A script step that answers ``reply`` only once ``release`` is set; ``arrived`` is set as
    soon as a request waits on it (a call held in flight for as long as a test needs)."""
    arrived, release = threading.Event(), threading.Event()

    def held(request: Request) -> Reply:
        arrived.set()
        release.wait(timeout=60)  # only keeps a broken test from hanging
        return reply

    return held, arrived, release
