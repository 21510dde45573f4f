"""A local model as System 2: llama.cpp's OpenAI-compatible server, from the local-llm extra, run
as a child process on 127.0.0.1 for as long as the run needs it.

``LocalModelServer.start`` picks a port, starts ``python -m llama_cpp.server`` with the model file
that ``local_model`` finds, waits until ``GET /v1/models`` answers and has the model compute one
token. Whatever stops it there (the extra or the model missing, the port taken, the server dying
or hanging while it loads or at its first request) is one UserError line, with the server's own
last line when it said something. The planner then talks to ``base_url`` like any other
endpoint, with no key, asking for ``plan_grammar_schema()``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pokedreamer.errors import UserError, one_line
from pokedreamer.planner.local_model import (
    INSTALL_HINT,
    locate_model,
    model_problem,
    packaged_model,
)
from pokedreamer.planner.subgoals import SUBGOAL_TYPES, Plan

if TYPE_CHECKING:
    from pokedreamer.config import LocalLLMSettings, PlannerSettings

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
SERVER_MODULE = "llama_cpp.server"
# What `python -m llama_cpp.server` imports: llama-cpp-python and its [server] extra.
SERVER_IMPORTS = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
EXTRA_MISSING = f"the local model needs the local-llm extra: {INSTALL_HINT}"

# llama_cpp.server 0.3.36 reads each of its settings from a variable of that name as well
# (pydantic-settings, no prefix), and HOST, PORT and CONFIG_FILE even override its command line:
# a PORT or API_KEY in the user's shell must not reach it, nor HF_MODEL_REPO_ID (a download).
# fmt: off
_SERVER_SETTINGS = frozenset({
    "api_key", "cache", "cache_size", "cache_type", "chat_format", "chat_template_kwargs",
    "clip_model_path", "config_file", "disable_ping_events", "draft_model",
    "draft_model_num_pred_tokens", "embedding", "flash_attn", "hf_model_repo_id",
    "hf_pretrained_model_name_or_path", "hf_tokenizer_config_path", "host", "interrupt_requests",
    "kv_overrides", "last_n_tokens_size", "logits_all", "lora_base", "lora_path", "main_gpu",
    "model", "model_alias", "mul_mat_q", "n_batch", "n_ctx", "n_gpu_layers", "n_threads",
    "n_threads_batch", "n_ubatch", "numa", "offload_kqv", "port", "root_path", "rope_freq_base",
    "rope_freq_scale", "rope_scaling_type", "rpc_servers", "seed", "split_mode", "ssl_certfile",
    "ssl_keyfile", "tensor_split", "type_k", "type_v", "use_mlock", "use_mmap", "verbose",
    "vocab_only", "yarn_attn_factor", "yarn_beta_fast", "yarn_beta_slow", "yarn_ext_factor",
    "yarn_orig_ctx"
})
# fmt: on
_GRAMMAR_MAX_LENGTH = 64
_POLL_S = 0.2
_STOP_S = 10.0
_TAIL_LINES = 40


def plan_grammar_schema() -> dict[str, Any]:
    """The Plan schema for ``response_format`` ``{"type": "json_object", "schema": ...}``, which
    llama.cpp's server turns into a grammar: with the short string limits that OpenAI's strict
    subset leaves out (``read_text.contains``), so that the grammar enforces them.

    Long limits (the goal's 200 characters, the rationale's 600) stay out: llama-cpp-python's
    grammar sampler slows with bounded repetitions that long (one 137-token plan from SmolLM2 took
    97 s with them and 5 s without), and a model rarely writes that much anyway.
    """
    schema = Plan.model_json_schema()
    for model in (Plan, *SUBGOAL_TYPES):
        where = schema if model is Plan else schema["$defs"][model.__name__]
        for name, field in model.model_fields.items():
            prop = where["properties"][name]
            if prop.get("type") != "string":
                continue
            # Pydantic keeps Field(max_length=...) as annotated_types' MaxLen in the metadata.
            for rule in field.metadata:
                most = getattr(rule, "max_length", None)
                if most is not None and most <= _GRAMMAR_MAX_LENGTH:
                    prop["maxLength"] = most
    return schema


def _extra_missing(python: str) -> bool:
    """Whether ``python`` lacks a module the server imports (looked up, not imported)."""
    if not python:
        return any(find_spec(name) is None for name in SERVER_IMPORTS)
    probe = (
        "import importlib.util, sys; "
        f"sys.exit(any(importlib.util.find_spec(n) is None for n in {SERVER_IMPORTS!r}))"
    )
    try:
        done = subprocess.run(
            [python, "-c", probe], capture_output=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return True
    return done.returncode != 0


def local_model_available(settings: LocalLLMSettings) -> str | None:
    """None when ``LocalModelServer.start`` has what it needs (the extra and a model file), else
    the one-line reason. Cheap: it imports nothing and reads no model bytes."""
    python = str(Path(settings.python).expanduser()) if settings.python else ""
    if python and not Path(python).is_file():
        return f"local_llm.python: no such interpreter: {settings.python}"
    if _extra_missing(python):
        return EXTRA_MISSING
    return model_problem(settings)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (another process may take it before the
    server does; the server then fails to bind and says so)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_problem(port: int) -> str | None:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            return (
                f"cannot listen on {HOST}:{port} ({exc.strerror or exc}): set local_llm.port "
                "to a free port, or to 0 to pick one"
            )
    return None


class LocalModelServer:
    """llama-cpp-python's server in a child process, answering at ``base_url`` as ``model``."""

    def __init__(
        self, process: subprocess.Popen[str], base_url: str, model: str, tail: deque[str]
    ) -> None:
        """Use ``start``; this only wraps a process that is already answering."""
        self.process = process
        self.base_url = base_url
        self.model = model
        self._tail = tail
        self._closed = False
        self._lock = threading.Lock()
        atexit.register(self.close)

    @classmethod
    def start(
        cls, settings: LocalLLMSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> LocalModelServer:
        """Starts the server and waits until it answers; a one-line UserError when it cannot.

        Raises before anything starts when the extra or the model is missing or the port is
        taken; after that, when the server exits or has not answered within
        ``start_timeout_s`` (then it is stopped). Never downloads anything.
        """
        python = str(Path(settings.python).expanduser()) if settings.python else sys.executable
        if settings.python and not Path(python).is_file():
            raise UserError(f"local_llm.python: no such interpreter: {settings.python}")
        if _extra_missing(python if settings.python else ""):
            raise UserError(EXTRA_MISSING)
        model_path = locate_model(settings)
        if settings.port:
            problem = _port_problem(settings.port)
            if problem:
                raise UserError(problem)
        port = settings.port or free_port()
        name = model_path.stem if settings.model_path else packaged_model(settings).name
        command = [
            python,
            "-m",
            SERVER_MODULE,
            "--model",
            str(model_path),
            "--model_alias",
            name,
            "--host",
            HOST,
            "--port",
            str(port),
            "--n_ctx",
            str(settings.context),
            # Prompt processing uses n_threads_batch, which defaults to every core.
            "--n_threads",
            str(settings.threads),
            "--n_threads_batch",
            str(settings.threads),
        ]
        env = {
            key: value for key, value in os.environ.items() if key.lower() not in _SERVER_SETTINGS
        }
        log.info("starting the local model server: %s", " ".join(command))
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                env=env,
            )
        except OSError as exc:
            raise UserError(f"cannot start the local model server with {python}: {exc}") from None
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        assert process.stdout is not None
        reader = threading.Thread(
            target=_drain, args=(process.stdout, tail), name="local-llm-output", daemon=True
        )
        reader.start()
        base_url = f"http://{HOST}:{port}/v1"
        deadline = clock() + settings.start_timeout_s
        failure: str | None = None
        try:
            answered = _wait_for_models(process, base_url, deadline, clock)
            if answered is not None:
                failure = _first_completion(base_url, max(deadline - clock(), 5.0))
        except BaseException:
            _stop(process)
            raise
        if answered is None or failure is not None:
            if failure is not None:
                # A request that broke the connection has usually killed the server: let it exit.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=_STOP_S)
            exited = process.poll()
            _stop(process)
            reader.join(timeout=_STOP_S)
            if failure is None:
                raise UserError(_start_failure(exited, settings, port, tail))
            if exited is not None:
                raise UserError(_death(exited, "at its first request", tail))
            raise UserError(f"the local model server failed its first request: {failure}")
        log.info("local model server up at %s as %r", base_url, answered)
        return cls(process, base_url, answered, tail)

    def problem(self) -> str | None:
        """None while the server runs; once it has stopped by itself, why, in one line (for a
        planner whose requests start failing)."""
        code = self.process.poll()
        if code is None or self._closed:
            return None
        return _death(code, "while running", self._tail)

    @property
    def output_tail(self) -> list[str]:
        """The server's last lines of output (its log), oldest first."""
        return list(self._tail)

    def planner_settings(
        self, planner: PlannerSettings, local: LocalLLMSettings
    ) -> PlannerSettings:
        """``planner`` pointed at this server: its URL and model, no key, the local timeout."""
        return planner.model_copy(
            update={
                "base_url": self.base_url,
                "model": self.model,
                "api_key": None,
                "timeout_s": local.timeout_s,
            }
        )

    def close(self) -> None:
        """Stops the server and reaps it; safe to call again, and run at exit."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        _stop(self.process)
        atexit.unregister(self.close)

    def __enter__(self) -> LocalModelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drain(stream: IO[str], tail: deque[str]) -> None:
    # Read to the end whatever happens, so that a chatty server never blocks on a full pipe.
    with contextlib.suppress(OSError, ValueError), stream:
        for line in stream:
            if line.strip():
                tail.append(line.rstrip())


def _wait_for_models(
    process: subprocess.Popen[str],
    base_url: str,
    deadline: float,
    clock: Callable[[], float],
) -> str | None:
    """The model name the server answers ``GET /v1/models`` with, or None once it has exited or
    the ``deadline`` has passed."""
    while process.poll() is None:
        name = _models_answer(base_url)
        if name is not None:
            return name
        if clock() >= deadline:
            return None
        time.sleep(_POLL_S)
    return None


def _first_completion(base_url: str, timeout: float) -> str | None:
    """None once the model has computed one token, else the error. Loading a model proves less
    than computing with it: a build for instructions the processor refuses dies only here."""
    request = urllib.request.Request(
        f"{base_url}/completions",
        data=json.dumps({"prompt": "Hello", "max_tokens": 1}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except (OSError, urllib.error.URLError) as exc:
        return one_line(exc, 200)
    return None


def _death(code: int, when: str, tail: deque[str] | None) -> str:
    if code == -signal.SIGILL:
        return (
            f"the local model server died {when} (SIGILL): llama-cpp-python was compiled for "
            "instructions this processor refuses; rebuild it as docs/local_llm.md says"
        )
    said = f": {one_line(tail[-1], 200)}" if tail else ""
    return f"the local model server died {when} (status {code}){said}"


def _models_answer(base_url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            body = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    models = body.get("data") if isinstance(body, dict) else None
    if not models or not isinstance(models[0], dict) or "id" not in models[0]:
        return None
    return str(models[0]["id"])


def _start_failure(
    exited: int | None, settings: LocalLLMSettings, port: int, tail: deque[str]
) -> str:
    """Why the server did not come up, from its exit status (None: it was still running) and
    its last lines."""
    said = one_line(tail[-1], 200) if tail else "it printed nothing"
    if any("No module named" in line and "llama_cpp" in line for line in tail):
        return EXTRA_MISSING
    if any("address already in use" in line.lower() for line in tail):
        return (
            f"the local model server could not listen on {HOST}:{port} (in use): set "
            f"local_llm.port to a free port, or to 0 to pick one"
        )
    if exited is not None:
        return f"the local model server exited at start (status {exited}): {said}"
    return (
        f"the local model server did not answer within {settings.start_timeout_s:g} s "
        f"(local_llm.start_timeout_s): {said}"
    )


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=_STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()
