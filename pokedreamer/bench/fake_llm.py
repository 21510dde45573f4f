"""A real OpenAI-compatible chat-completions server on 127.0.0.1, scripted reply by reply.

``pokedreamer bench planner`` needs an endpoint with a known, slow answer time, so the server
ships with the bench; the planner's tests use it too (openai 3.x sends through httpx2, which respx
cannot intercept, so they talk HTTP to this, through ``tests/llm_server.py``). A script queues the
replies, one per request, in order; afterwards every request's body, headers and arrival time can
be read back.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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


class FakeLLMServer:
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) answering POST /v1/chat/completions."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.structured_outputs = True
        """False makes every request asking for response_format json_schema fail with 400, the
        way servers without structured outputs answer, without consuming the script."""
        self.default: Step = error(500, "the fake server's script is empty")
        """What answers once the script has run out (set it for a persistent failure)."""
        self._script: deque[Step] = deque()
        self._lock = threading.Lock()
        # Set on close so that slow replies stop waiting and the handler threads end promptly.
        self._closing = threading.Event()
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

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next_reply(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if not self.structured_outputs and request.response_format == "json_schema":
                return error(400, "response_format json_schema is not supported")
            step = self._script.popleft() if self._script else self.default
        return step(request) if callable(step) else step

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
                if reply.delay_s and server._closing.wait(reply.delay_s):
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
