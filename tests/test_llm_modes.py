"""How the LLM planner finds what a real server supports: each mode, each decision to step down or
retry, counted request by request against the fake server playing llama.cpp's and other
servers' handling of response_format."""

from __future__ import annotations

import json
import logging

import pytest
from llm_server import (
    FakeLLMServer,
    Reply,
    answer,
    closed_port_url,
    error,
    llm_server_fixture,  # noqa: F401 (the llm_server fixture: pytest finds it in this module)
    slow,
)
from test_llm_planner import OTHER_PLAN, PLAN, SYSTEM, USER, make_planner

from pokedreamer.planner.subgoals import Plan

SCHEMA = Plan.model_json_schema()


def test_llama_cpp_takes_json_mode_with_the_schema_after_one_refusal(
    llm_server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pokedreamer")
    llm_server.dialect = "llama.cpp"
    llm_server.script(answer(PLAN), answer(OTHER_PLAN))
    planner = make_planner(llm_server.url)

    first = planner.plan(SYSTEM, USER, "start")
    assert first.error is None and first.plan == Plan.model_validate(PLAN)
    # The 500 named response_format: a request the server cannot parse, sent once, not retried.
    assert llm_server.kinds == ["structured", "schema"]
    assert llm_server.requests[1].body["response_format"] == {
        "type": "json_object",
        "schema": SCHEMA,
    }
    assert (first.mode, first.attempts) == ("schema", 2)
    assert first.to_dict()["mode"] == "schema"
    assert planner.mode == "schema" and not planner.structured_outputs
    assert "refused structured mode (HTTP 500" in caplog.text

    second = planner.plan(SYSTEM, USER, "plan done")
    assert second.plan == Plan.model_validate(OTHER_PLAN)
    assert (second.mode, second.attempts) == ("schema", 1)
    assert llm_server.kinds == ["structured", "schema", "schema"]


def test_a_named_refusal_is_remembered_even_when_the_next_mode_fails(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.dialect = "llama.cpp"
    # The model is busy: the schema request is a transient failure, and is retried.
    llm_server.script(*[error(503, "busy")] * 4, answer(PLAN))
    planner = make_planner(llm_server.url)

    first = planner.plan(SYSTEM, USER, "start")
    assert first.plan is None and first.error is not None and "503" in first.error
    assert llm_server.kinds == ["structured"] + ["schema"] * 4
    assert planner.mode == "schema"

    second = planner.plan(SYSTEM, USER, "start")
    assert second.plan == Plan.model_validate(PLAN) and second.attempts == 1
    assert llm_server.kinds[5:] == ["schema"]


def test_json_mode_without_the_schema_gets_an_empty_object_from_a_tiny_model(
    llm_server: FakeLLMServer,
) -> None:
    # Why the schema rides in the response_format: plain JSON mode is answered "{}" there, and
    # the repair turn cannot mend that.
    llm_server.dialect = "llama.cpp"
    planner = make_planner(llm_server.url, mode="json")
    call = planner.plan(SYSTEM, USER, "start")

    assert llm_server.kinds == ["json", "json"]
    assert call.plan is None and call.repaired and call.raw_response == "{}"
    assert call.error is not None and call.error.startswith("invalid plan after a repair turn")
    assert "\n" not in call.error
    assert planner.mode == "json"


def test_a_planner_told_its_server_asks_in_that_mode_from_the_start(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.dialect = "llama.cpp"
    llm_server.script(answer(PLAN))
    call = make_planner(llm_server.url, mode="schema").plan(SYSTEM, USER, "start")
    assert call.plan is not None and llm_server.kinds == ["schema"]


def test_a_server_refusing_every_response_format_gets_plain_requests(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.dialect = "plain"
    llm_server.script(answer(PLAN), answer(OTHER_PLAN))
    planner = make_planner(llm_server.url)

    first = planner.plan(SYSTEM, USER, "start")
    assert first.plan == Plan.model_validate(PLAN)
    assert llm_server.kinds == ["structured", "schema", "json", "prompt"]
    assert "response_format" not in llm_server.requests[3].body
    system = llm_server.requests[3].body["messages"][0]["content"]
    assert json.dumps(SCHEMA) in system  # the prompt alone says what to answer
    assert (first.mode, first.attempts) == ("prompt", 4)
    assert planner.mode == "prompt"

    second = planner.plan(SYSTEM, USER, "plan done")
    assert second.plan == Plan.model_validate(OTHER_PLAN) and second.attempts == 1
    assert llm_server.kinds[4:] == ["prompt"]


def test_a_bare_refusal_is_remembered_once_a_weaker_mode_is_answered(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.script(error(400, "Bad Request"), answer(PLAN), answer(OTHER_PLAN))
    planner = make_planner(llm_server.url)

    assert planner.plan(SYSTEM, USER, "start").plan == Plan.model_validate(PLAN)
    assert llm_server.kinds == ["structured", "schema"]
    assert planner.mode == "schema"
    assert planner.plan(SYSTEM, USER, "plan done").plan == Plan.model_validate(OTHER_PLAN)
    assert llm_server.kinds[2:] == ["schema"]


def test_a_bare_refusal_is_forgotten_when_the_weaker_mode_fails_too(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.script(error(400, "Bad Request"), error(401, "bad credentials"))
    planner = make_planner(llm_server.url)
    call = planner.plan(SYSTEM, USER, "start")
    assert call.error is not None and "401" in call.error
    assert llm_server.kinds == ["structured", "schema"]  # a 401 is not about the format
    assert planner.mode == "structured"


def test_an_error_naming_another_field_is_not_a_refusal(llm_server: FakeLLMServer) -> None:
    too_long = {
        "message": "This model's maximum context length is 2048 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    llm_server.default = Reply(status=400, body={"error": too_long})
    planner = make_planner(llm_server.url)
    call = planner.plan(SYSTEM, USER, "start")
    assert call.error is not None and "maximum context length" in call.error
    assert llm_server.kinds == ["structured"] and planner.mode == "structured"


def test_fastapis_own_422_naming_response_format_is_a_refusal(llm_server: FakeLLMServer) -> None:
    detail = [{"loc": ["body", "response_format", "type"], "msg": "Input should be 'text'"}]
    llm_server.script(Reply(status=422, body={"detail": detail}), error(503, "busy"))
    llm_server.default = error(503, "still busy")
    planner = make_planner(llm_server.url, max_attempts=2)
    call = planner.plan(SYSTEM, USER, "start")
    assert call.plan is None and llm_server.kinds == ["structured", "schema", "schema"]
    assert planner.mode == "schema"


def test_a_server_error_that_is_not_about_the_request_is_retried(
    llm_server: FakeLLMServer,
) -> None:
    # It names response_format, but says nothing of the request being invalid.
    llm_server.script(error(500, "out of memory while applying the response_format grammar"))
    llm_server.script(answer(PLAN))
    planner = make_planner(llm_server.url)
    call = planner.plan(SYSTEM, USER, "start")
    assert call.plan is not None and llm_server.kinds == ["structured", "structured"]
    assert planner.mode == "structured"


@pytest.mark.parametrize(
    "trouble", ["garbage", "empty object", "slow", "down", "every mode refused"]
)
def test_a_bad_server_ends_in_one_line_without_a_traceback(
    llm_server: FakeLLMServer, caplog: pytest.LogCaptureFixture, trouble: str
) -> None:
    caplog.set_level(logging.DEBUG)
    url = llm_server.url
    if trouble == "garbage":
        llm_server.default = Reply(status=200, body="<html>Bad Gateway</html>")
    elif trouble == "empty object":
        llm_server.default = answer({})
    elif trouble == "slow":
        llm_server.default = slow(answer(PLAN), 5.0)
    elif trouble == "down":
        url = closed_port_url()
    else:
        llm_server.dialect = "plain"
        llm_server.default = error(400, "unsupported request")
    call = make_planner(url, timeout_s=0.2).plan(SYSTEM, USER, "start")

    assert call.plan is None and call.error
    assert "\n" not in call.error and len(call.error) <= 300
    assert "Traceback" not in caplog.text
    json.dumps(call.to_dict())  # the record is plain JSON
