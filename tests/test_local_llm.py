"""The local model server: its one-line errors (against stand-in interpreters, no model needed),
the packaged model's assembly and checks, and, marked ``local_llm``, the real server answering a
plan in the Plan schema."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import openai
import pytest
from local_llm import local_server_fixture  # noqa: F401 (registers the local_server fixture)
from pydantic import ValidationError

from pokedreamer.config import LocalLLMSettings, PlannerSettings, load_settings
from pokedreamer.errors import UserError
from pokedreamer.planner.local import (
    EXTRA_MISSING,
    LocalModelServer,
    local_model_available,
    plan_grammar_schema,
)
from pokedreamer.planner.local_model import (
    INSTALL_HINT,
    PACKAGED_MODELS,
    SMOLLM2,
    PackagedModel,
    locate_model,
    sha256_of,
)
from pokedreamer.planner.subgoals import SUBGOAL_KINDS, Plan

# A stand-in for `python -m llama_cpp.server`: the wrapper answers the extra's probe (`-c ...`)
# with success and runs this script, with the server's arguments, for everything else.
WRAPPER = '#!/bin/sh\nif [ "$1" = "-c" ]; then exit 0; fi\nexec "{python}" "{script}" "$@"\n'

# Answers GET /v1/models and POST /v1/completions as llama_cpp.server does, after writing its
# arguments and whether it saw API_KEY to record.json beside it; ON_COMPLETION runs before it
# answers a completion.
ANSWERS = """
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
args = sys.argv[1:]
def arg(name):
    return args[args.index(name) + 1]
seen = {"args": args, "api_key": "API_KEY" in os.environ}
Path(__file__).with_name("record.json").write_text(json.dumps(seen))
class Server(BaseHTTPRequestHandler):
    def answer(self, reply):
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.answer({"object": "list", "data": [{"id": arg("--model_alias")}]})
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        ON_COMPLETION
        self.answer({"choices": [{"text": "!"}]})
    def log_message(self, *a):
        pass
HTTPServer((arg("--host"), int(arg("--port"))), Server).serve_forever()
"""


def answers(on_completion: str = "pass") -> str:
    return ANSWERS.replace("ON_COMPLETION", on_completion)


class ClockAfter:
    """A fake clock that stands still until ``flag`` exists, then moves ``step`` seconds each time
    it is read: a deadline passes a known number of polls after an event, however slow the
    machine."""

    def __init__(self, flag: Path, step: float) -> None:
        self.flag = flag
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        if self.flag.exists():
            self.now += self.step
        return self.now


def stand_in(tmp_path: Path, script: str) -> str:
    """An "interpreter" that runs ``script`` as the server; its path."""
    body = tmp_path / "server.py"
    body.write_text(textwrap.dedent(script), encoding="utf-8")
    wrapper = tmp_path / "python"
    wrapper.write_text(WRAPPER.format(python=sys.executable, script=body), encoding="utf-8")
    wrapper.chmod(0o755)
    return str(wrapper)


def no_site_python(tmp_path: Path) -> str:
    """A real Python without site-packages, so without llama-cpp-python whatever is installed."""
    wrapper = tmp_path / "bare-python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF")
    return path


def start_error(settings: LocalLLMSettings, clock: ClockAfter | None = None) -> str:
    with pytest.raises(UserError) as info:
        if clock is None:
            LocalModelServer.start(settings)
        else:
            LocalModelServer.start(settings, clock=clock)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- what is missing -------------------------------------------------------------------------


def test_an_interpreter_without_the_extra_is_one_line_naming_the_install(
    tmp_path: Path, model_file: Path
) -> None:
    settings = LocalLLMSettings(python=no_site_python(tmp_path), model_path=str(model_file))
    assert local_model_available(settings) == EXTRA_MISSING
    assert start_error(settings) == EXTRA_MISSING
    assert "pip install -e '.[local-llm]'" in EXTRA_MISSING and "make local-llm" in EXTRA_MISSING


def test_a_server_that_cannot_import_llama_cpp_is_the_same_line(
    tmp_path: Path, model_file: Path
) -> None:
    # The probe passes, then the server itself finds no llama_cpp (as from a broken install).
    script = tmp_path / "bare" / "python"
    script.parent.mkdir()
    script.write_text(
        f'#!/bin/sh\nif [ "$1" = "-c" ]; then exit 0; fi\nexec "{sys.executable}" -S "$@"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    settings = LocalLLMSettings(python=str(script), model_path=str(model_file))
    assert start_error(settings) == EXTRA_MISSING


def test_a_missing_interpreter_or_model_file_is_one_line(tmp_path: Path, model_file: Path) -> None:
    gone = tmp_path / "no-python"
    settings = LocalLLMSettings(python=str(gone), model_path=str(model_file))
    assert local_model_available(settings) == f"local_llm.python: no such interpreter: {gone}"
    assert start_error(settings) == f"local_llm.python: no such interpreter: {gone}"

    missing = tmp_path / "nowhere.gguf"
    settings = LocalLLMSettings(python=stand_in(tmp_path, answers()), model_path=str(missing))
    assert local_model_available(settings) == f"local_llm.model_path: no such file: {missing}"
    assert start_error(settings) == f"local_llm.model_path: no such file: {missing}"


def test_a_packaged_model_that_is_not_installed_names_the_install() -> None:
    absent = PackagedModel(
        name="absent", title="Absent 1M", file_name="absent.gguf", sha256="0" * 64, size=4,
        chunks=(("pokedreamer-no-such-model", "absent/absent.gguf"),), licence="none",
        install="pip install absent",
    )  # fmt: skip
    with pytest.raises(UserError) as info:
        locate_model(LocalLLMSettings(), absent)
    assert str(info.value) == "the local model Absent 1M is not installed: pip install absent"
    assert SMOLLM2.install == INSTALL_HINT  # the extra brings it


def test_the_model_setting_names_the_packaged_models() -> None:
    field = LocalLLMSettings.model_fields["model"]
    assert set(get_args(field.annotation)) == set(PACKAGED_MODELS)
    assert PACKAGED_MODELS[LocalLLMSettings().model] is SMOLLM2


# --- a model in chunks -----------------------------------------------------------------------


def install_chunks(site: Path, pieces: list[bytes]) -> PackagedModel:
    """Fake distributions under ``site`` holding ``pieces``, and the model they make."""
    chunks = []
    for i, piece in enumerate(pieces):
        name = f"pokedreamer_test_part{i}"
        info = site / f"{name}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (site / name).mkdir()
        (site / name / f"m.gguf.part{i:02d}").write_bytes(piece)
        chunks.append((name, f"{name}/m.gguf.part{i:02d}"))
    whole = b"".join(pieces)
    digest = hashlib.sha256(whole).hexdigest()
    return PackagedModel(
        name="test-model", title="Test 1K", file_name="m.gguf", sha256=digest,
        size=len(whole), chunks=tuple(chunks), licence="none", install="pip install test",
    )  # fmt: skip


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path where importlib.metadata finds fake distributions."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_chunks_are_put_together_once_checked_and_reused(tmp_path: Path, site: Path) -> None:
    model = install_chunks(site, [b"GGUF" + b"a" * 1000, b"b" * 999, b"c" * 7])
    settings = LocalLLMSettings(models_dir=str(tmp_path / "models"))
    path = locate_model(settings, model)
    assert path == tmp_path / "models" / "m.gguf"
    assert sha256_of(path) == model.sha256
    assert not list(path.parent.glob("*.partial"))
    stamp = path.stat().st_mtime_ns
    assert locate_model(settings, model) == path
    assert path.stat().st_mtime_ns == stamp  # reused, not written again


def test_a_damaged_copy_or_wrong_pieces_are_refused_in_one_line(tmp_path: Path, site: Path) -> None:
    model = install_chunks(site, [b"GGUF1234", b"5678"])
    settings = LocalLLMSettings(models_dir=str(tmp_path / "models"))
    path = locate_model(settings, model)
    path.write_bytes(b"GGUF9999" + b"5678")  # same size, other bytes
    with pytest.raises(UserError, match=r"is damaged \(SHA-256 .*delete .* to have it put"):
        locate_model(settings, model)

    wrong = PackagedModel(**{**model.__dict__, "sha256": "f" * 64})
    path.unlink()
    with pytest.raises(UserError, match="do not make the expected file: reinstall them"):
        locate_model(settings, wrong)
    assert not path.exists() and not list(path.parent.glob("*.partial"))


def test_models_dir_defaults_to_the_user_data_folder(
    tmp_path: Path, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    model = install_chunks(site, [b"GGUF", b"!"])
    assert locate_model(LocalLLMSettings(), model) == tmp_path / "data/pokedreamer/models/m.gguf"


# --- the server's start and stop -------------------------------------------------------------


def test_start_waits_for_the_server_and_close_stops_it(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_KEY", "sk-would-lock-the-server")
    settings = LocalLLMSettings(
        python=stand_in(tmp_path, answers()), model_path=str(model_file), threads=3, context=1024
    )
    assert local_model_available(settings) is None
    server = LocalModelServer.start(settings)
    try:
        assert server.model == "tiny"
        assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=5) as response:
            assert json.loads(response.read())["data"][0]["id"] == "tiny"
        seen = json.loads((tmp_path / "record.json").read_text())
        args = seen["args"]
        assert args[args.index("--model") + 1] == str(model_file)
        assert args[args.index("--host") + 1] == "127.0.0.1"
        assert args[args.index("--n_threads") + 1] == "3"
        assert args[args.index("--n_threads_batch") + 1] == "3"
        assert args[args.index("--n_ctx") + 1] == "1024"
        assert seen["api_key"] is False
    finally:
        server.close()
    assert server.process.returncode is not None
    server.close()  # a second close is harmless


def test_planner_settings_point_at_the_server(tmp_path: Path, model_file: Path) -> None:
    local = LocalLLMSettings(python=stand_in(tmp_path, answers()), model_path=str(model_file))
    with LocalModelServer.start(local) as server:
        planner = server.planner_settings(
            PlannerSettings(api_key="sk-hosted-SECRET", timeout_s=30), local
        )
    assert planner.base_url == server.base_url
    assert planner.model == "tiny"
    assert planner.api_key is None
    assert planner.timeout_s == local.timeout_s
    assert server.process.returncode is not None  # the with block closed it


def test_a_port_in_use_is_one_line(tmp_path: Path, model_file: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = LocalLLMSettings(
            python=stand_in(tmp_path, answers()), model_path=str(model_file), port=port
        )
        assert start_error(settings).startswith(f"cannot listen on 127.0.0.1:{port} (")
        assert not (tmp_path / "record.json").exists()  # refused before anything started


def test_a_server_that_reports_the_port_taken_is_one_line(tmp_path: Path, model_file: Path) -> None:
    script = """
        import sys
        print("INFO:     Started server process", flush=True)
        print("ERROR:    [Errno 98] error while attempting to bind on address: address already "
              "in use", file=sys.stderr, flush=True)
        sys.exit(1)
    """
    settings = LocalLLMSettings(python=stand_in(tmp_path, script), model_path=str(model_file))
    message = start_error(settings)
    assert message.startswith("the local model server could not listen on 127.0.0.1:")
    assert message.endswith("(in use): set local_llm.port to a free port, or to 0 to pick one")


def test_a_server_that_dies_at_start_gives_its_last_line(tmp_path: Path, model_file: Path) -> None:
    script = """
        import sys
        print("llama_model_loader: loaded meta data", flush=True)
        print("gguf_init_from_file: invalid magic characters 'GGUF'\\n", file=sys.stderr)
        print("ValueError: Failed to load model from file: tiny.gguf", file=sys.stderr)
        sys.exit(3)
    """
    settings = LocalLLMSettings(python=stand_in(tmp_path, script), model_path=str(model_file))
    assert start_error(settings) == (
        "the local model server exited at start (status 3): "
        "ValueError: Failed to load model from file: tiny.gguf"
    )


def test_a_server_that_never_answers_is_stopped_and_named(tmp_path: Path, model_file: Path) -> None:
    script = """
        import os, time
        from pathlib import Path
        Path(__file__).with_name("pid").write_text(str(os.getpid()))
        print("llama_model_load: loading model tensors", flush=True)
        time.sleep(600)
    """
    settings = LocalLLMSettings(
        python=stand_in(tmp_path, script), model_path=str(model_file), start_timeout_s=5
    )
    # The deadline passes two polls after the server has started (written its pid).
    pid_file = tmp_path / "pid"
    message = start_error(settings, ClockAfter(pid_file, step=3.0))
    assert message == (
        "the local model server did not answer within 5 s (local_llm.start_timeout_s): "
        "llama_model_load: loading model tensors"
    )
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(int(pid_file.read_text()), 0)


def test_a_build_the_processor_refuses_is_named_at_the_first_request(
    tmp_path: Path, model_file: Path
) -> None:
    # Loading succeeds; the first computation dies of SIGILL, as an AMX build does where the
    # kernel does not allow AMX.
    script = answers("print('ggml: computing', flush=True); os.kill(os.getpid(), signal.SIGILL)")
    settings = LocalLLMSettings(python=stand_in(tmp_path, script), model_path=str(model_file))
    message = start_error(settings)
    assert message.startswith("the local model server died at its first request (SIGILL): ")
    assert message.endswith("rebuild it as docs/local_llm.md says")


def test_a_server_that_dies_at_its_first_request_gives_its_last_line(
    tmp_path: Path, model_file: Path
) -> None:
    script = answers("print('GGML_ASSERT failed', flush=True); os._exit(6)")
    settings = LocalLLMSettings(python=stand_in(tmp_path, script), model_path=str(model_file))
    assert start_error(settings) == (
        "the local model server died at its first request (status 6): GGML_ASSERT failed"
    )


def test_a_server_that_dies_later_says_why(tmp_path: Path, model_file: Path) -> None:
    settings = LocalLLMSettings(python=stand_in(tmp_path, answers()), model_path=str(model_file))
    with LocalModelServer.start(settings) as server:
        assert server.problem() is None
        server.process.send_signal(signal.SIGILL)
        server.process.wait(timeout=30)
        assert (server.problem() or "").startswith(
            "the local model server died while running (SIGILL): "
        )
    assert server.problem() is None  # closed by us: nothing to report


def test_settings_come_from_config_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("config.toml").write_text("[local_llm]\nthreads = 2\nport = 8090\n", encoding="utf-8")
    monkeypatch.setenv("POKEDREAMER_LOCAL_LLM__CONTEXT", "2048")
    local = load_settings(None, {}).local_llm
    assert (local.threads, local.port, local.context) == (2, 8090, 2048)


def test_the_grammar_schema_adds_the_short_string_limits_only() -> None:
    schema = plan_grammar_schema()
    assert schema["$defs"]["ReadText"]["properties"]["contains"]["maxLength"] == 40
    assert "maxLength" not in schema["properties"]["goal"]  # 200: too slow for the grammar
    assert "maxLength" not in schema["properties"]["rationale"]
    del schema["$defs"]["ReadText"]["properties"]["contains"]["maxLength"]
    assert schema == Plan.model_json_schema()


# --- the real server (the local-llm extra and its model) -------------------------------------


@pytest.fixture(scope="module")
def planner_prompt() -> Iterator[tuple[str, str]]:
    from pokedreamer.bench.local_llm import planner_prompts
    from pokedreamer.config import Settings

    system, user, _ = planner_prompts(Settings())
    yield system, user


BOUNDS = {"string_too_long", "less_than_equal", "greater_than_equal", "too_long", "too_short"}
"""pydantic error types of bounds that the schema's grammar does not enforce."""


@pytest.mark.local_llm
def test_the_local_model_answers_a_plan_in_the_schema(
    local_server: LocalModelServer, planner_prompt: tuple[str, str]
) -> None:
    assert local_server.model == SMOLLM2.name
    system, user = planner_prompt
    client = openai.OpenAI(base_url=local_server.base_url, api_key="none", max_retries=0)
    try:
        reply = client.chat.completions.create(
            model=local_server.model,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            response_format={"type": "json_object", "schema": plan_grammar_schema()},
            temperature=0.0,
            seed=0,
            timeout=LocalLLMSettings().timeout_s,
        )
    finally:
        client.close()
    # The schema becomes a grammar: the answer has the Plan's shape and subgoal kinds. Bounds a
    # grammar does not carry (string lengths, tile ranges) are the validator's to enforce, and a
    # 135M model breaks them at times, so only the shape is asserted here.
    answer = json.loads(reply.choices[0].message.content or "")
    assert isinstance(answer["goal"], str) and answer["subgoals"]
    assert {subgoal["kind"] for subgoal in answer["subgoals"]} <= set(SUBGOAL_KINDS)
    try:
        Plan.model_validate(answer)
    except ValidationError as exc:
        assert {e["type"] for e in exc.errors()} <= BOUNDS, exc
    assert reply.usage is not None and reply.usage.completion_tokens > 0


@pytest.mark.local_llm
def test_close_stops_the_real_server(local_server: LocalModelServer) -> None:
    # Last in the module: the fixture's own close then finds it closed.
    port = int(local_server.base_url.rsplit(":", 1)[1].split("/")[0])
    local_server.close()
    assert local_server.process.returncode is not None
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))
