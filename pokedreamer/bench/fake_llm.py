"""A real OpenAI-compatible chat-completions server on 127.0.0.1, scripted reply by reply.

``pokedreamer bench planner`` needs an endpoint with a known, slow answer time, so the server
ships with the bench; the planner's tests use it too (openai 3.x sends through httpx2, which respx
cannot intercept, so they talk HTTP to this, through ``tests/llm_server.py``). A script queues the
replies, one per request, in order; afterwards every request's body, headers and arrival time can
be read back. A **dialect** makes it take ``response_format`` the way a kind of real server does,
before the script is consulted.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import cycle
from typing import Any, Literal

Dialect = Literal["openai", "llama.cpp", "plain"]
"""How the fake server takes ``response_format``:

- ``openai``: every kind, and the script answers;
- ``llama.cpp``: as llama-cpp-python's server (0.3) does: json_schema is not in its request
  model, and the validation error comes back as HTTP 500; json_object with a ``schema`` is
  answered by the script (the real server constrains the model by a grammar); json_object
  without one is answered ``{}``, as a tiny model there answers it;
- ``plain``: any response_format is refused with 400; only requests without one are answered.
"""


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP response."""

    status: int = 200
    body: Any = None
    """JSON-encoded unless it is a str, which is sent as it is (to send broken bodies)."""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Seconds to wait before answering: longer than the client's timeout makes it time out."""


@dataclass(frozen=True)
class Request:
    """One request as the server received it."""

    time: float
    """time.monotonic() on arrival, to measure the client's waits between attempts."""
    method: str
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: Any

    @property
    def response_format(self) -> str | None:
        """The request's response_format type: "json_schema", "json_object" or None."""
        fmt = self.body.get("response_format") if isinstance(self.body, dict) else None
        return fmt.get("type") if isinstance(fmt, dict) else None

    @property
    def format_schema(self) -> Any:
        """The ``schema`` a json_object response_format carries, or None."""
        fmt = self.body.get("response_format") if isinstance(self.body, dict) else None
        return fmt.get("schema") if isinstance(fmt, dict) else None

    @property
    def kind(self) -> str:
        """How the request asked for JSON, in the planner's words: "structured" (json_schema),
        "schema" (json_object with a schema), "json" (json_object) or "prompt" (neither)."""
        fmt = self.response_format
        if fmt == "json_schema":
            return "structured"
        if fmt == "json_object":
            return "schema" if self.format_schema is not None else "json"
        return "prompt" if fmt is None else fmt


# A script entry is a fixed reply or a function of the request (to answer by what was sent).
Step = Reply | Callable[[Request], Reply]


def completion(
    content: str | None,
    *,
    prompt_tokens: int = 100,
    completion_tokens: int = 20,
    finish_reason: str = "stop",
    refusal: str | None = None,
) -> Reply:
    """A chat.completion whose single choice answers ``content``."""
    return Reply(
        body={
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "test-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                    "finish_reason": finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def answer(plan: Any, **kwargs: Any) -> Reply:
    """A completion whose content is ``plan`` as JSON (a dict) or as given (a str)."""
    return completion(plan if isinstance(plan, str) else json.dumps(plan), **kwargs)


def error(
    status: int,
    message: str = "scripted error",
    *,
    headers: dict[str, str] | None = None,
    delay_s: float = 0.0,
) -> Reply:
    """An error in OpenAI's shape: {"error": {"message", "type", "code"}}."""
    return Reply(
        status=status,
        body={"error": {"message": message, "type": "test_error", "param": None, "code": None}},
        headers=headers or {},
        delay_s=delay_s,
    )


def slow(reply: Reply, delay_s: float) -> Reply:
    """``reply`` sent after ``delay_s`` seconds."""
    return Reply(reply.status, reply.body, reply.headers, delay_s)


def replaying(reply: Reply, latencies_s: Sequence[float]) -> Callable[[Request], Reply]:
    """A script step that answers every request with ``reply``, each after the next of
    ``latencies_s`` (seconds, as measured of a real model), starting over when they run out."""
    if not latencies_s:
        raise ValueError("replaying needs at least one latency")
    delays = cycle(latencies_s)
    lock = threading.Lock()

    def step(request: Request) -> Reply:
        with lock:  # the server answers requests on several threads
            delay = next(delays)
        return slow(reply, delay)

    return step


def llama_cpp_validation_error(field_type: str) -> Reply:
    """What llama-cpp-python's server answers a response_format type its request model lacks:
    FastAPI's validation error, caught by its route's error handler and sent as a 500."""
    detail = (
        "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', "
        f"'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': '{field_type}', "
        "'ctx': {'expected': \"'text' or 'json_object'\"}}"
    )
    return Reply(
        status=500,
        body={
            "error": {
                "message": detail,
                "type": "internal_server_error",
                "param": None,
                "code": None,
            }
        },
    )


class FakeLLMServer:
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) answering POST /v1/chat/completions."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.structured_outputs = True
        """False makes every request asking for response_format json_schema fail with 400, the
        way servers without structured outputs answer, without consuming the script."""
        self.dialect: Dialect = "openai"
        """Which kind of server's handling of response_format to play (see ``Dialect``)."""
        self.default: Step = error(500, "the fake server's script is empty")
        """What answers once the script has run out (set it for a persistent failure)."""
        self._script: deque[Step] = deque()
        self._lock = threading.Lock()
        # Set on close, or by release(), so that slow replies stop waiting.
        self._wake = threading.Event()
        self._closed = False
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        # A short poll interval: shutdown() waits for it, and every test shuts a server down.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def script(self, *steps: Step) -> None:
        """Queue the replies to the next requests, in order."""
        with self._lock:
            self._script.extend(steps)

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        with self._lock:
            return len(self._script)

    @property
    def kinds(self) -> list[str]:
        """Each request's ``Request.kind``, in order of arrival."""
        with self._lock:
            return [request.kind for request in self.requests]

    def release(self) -> None:
        """Sends every slow reply at once, those waiting and those to come (so that a bench can
        end a round without waiting out a planner call in flight)."""
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()  # slow replies stop waiting and the handler threads end promptly
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next_reply(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            refused = self._refusal(request)
            if refused is not None:
                return refused
            step = self._script.popleft() if self._script else self.default
        return step(request) if callable(step) else step

    def _refusal(self, request: Request) -> Reply | None:
        """The dialect's own answer to the request's response_format, if it has one."""
        fmt = request.response_format
        if not self.structured_outputs and fmt == "json_schema":
            return error(400, "response_format json_schema is not supported")
        if self.dialect == "plain" and fmt is not None:
            return error(400, f"response_format {fmt!r} is not supported by this server")
        if self.dialect == "llama.cpp":
            if fmt not in (None, "text", "json_object"):
                return llama_cpp_validation_error(str(fmt))
            if fmt == "json_object" and request.format_schema is None:
                return completion("{}")
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0 closes each connection after its response, so a reply the client gave up
            # on never leaves a half-used connection in the client's pool.
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                request = Request(
                    time=arrived,
                    method="POST",
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                if self.path.rstrip("/") != "/v1/chat/completions":
                    reply = error(404, f"no route {self.path}")
                    with server._lock:
                        server.requests.append(request)
                else:
                    reply = server._next_reply(request)
                if reply.delay_s:
                    server._wake.wait(reply.delay_s)
                    if server._closed:
                        return
                payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                data = payload.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and hung up: that is the point of a slow reply

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest's output to the tests' own

        return Handler
