"""The LLM planner against a real HTTP server on 127.0.0.1 (openai 3.x's httpx2 escapes respx)."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from llm_server import (
    FakeLLMServer,
    Reply,
    answer,
    closed_port_url,
    completion,
    error,
    llm_server_fixture,  # noqa: F401 (the llm_server fixture: pytest finds it in this module)
    slow,
)

from pokedreamer.config import PlannerSettings
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.llm import BUDGET_ERROR, LLMPlanner, PlannerCall
from pokedreamer.planner.subgoals import Plan

KEY = "sk-test-Zq9xK3vW7pL2mN8rT4yB6uH1-SECRET"
SYSTEM = "You plan for the agent."
USER = "Location: REDS_HOUSE_1F (map $25) at x=3, y=6, facing down"

# Valid on the fixture cartridge: its four maps are 10×10 steps (x 0..9, y 0..9).
PLAN: dict[str, Any] = {
    "goal": "Earn the Boulder Badge",
    "subgoals": [
        {"kind": "go_to_map", "map": "PALLET_TOWN"},
        {"kind": "go_to_tile", "map": "ROUTE_1", "x": 5, "y": 0},
        {"kind": "read_text", "contains": ""},
        {"kind": "go_to_map", "map": "PEWTER_GYM"},
        {"kind": "win_battle"},
        {"kind": "earn_badge", "badge": "BOULDER"},
    ],
    "rationale": "Brock is the first gym leader.",
}
OTHER_PLAN: dict[str, Any] = {
    "goal": "Get ready",
    "subgoals": [{"kind": "heal_party"}, {"kind": "set_event", "event": "EVENT_GOT_STARTER"}],
    "rationale": "",
}


def make_planner(url: str, api_key: str | None = KEY, **kwargs: Any) -> LLMPlanner:
    settings = PlannerSettings(
        kind="llm",
        base_url=url,
        model="test-model",
        api_key=api_key,
        timeout_s=kwargs.pop("timeout_s", 2.0),
        max_calls_per_hour=kwargs.pop("max_calls_per_hour", 100),
    )
    # Short backoffs keep the file fast; the logic is the same at any scale.
    kwargs.setdefault("backoff_s", 0.01)
    kwargs.setdefault("backoff_max_s", 0.05)
    return LLMPlanner(settings, GameFacts.fixture(), **kwargs)


def user_text(message: dict[str, Any]) -> str:
    content = message["content"]
    return content if isinstance(content, str) else content[0]["text"]


def test_structured_outputs(llm_server: FakeLLMServer) -> None:
    llm_server.script(answer(PLAN))
    call = make_planner(llm_server.url).plan(SYSTEM, USER, "start")

    assert call.error is None
    assert call.plan == Plan.model_validate(PLAN)
    assert (call.mode, call.attempts, call.repaired, call.trigger) == (
        "structured",
        1,
        False,
        "start",
    )
    assert call.raw_response == json.dumps(PLAN)
    [request] = llm_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "test-model"
    fmt = request.body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Plan"
    assert fmt["json_schema"]["strict"] is True
    assert request.body["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER},
    ]
    assert call.prompt == request.body["messages"]


def test_without_structured_outputs_uses_json_mode_with_the_schema_and_remembers(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.structured_outputs = False
    llm_server.script(answer(PLAN), answer(OTHER_PLAN))
    planner = make_planner(llm_server.url)

    first = planner.plan(SYSTEM, USER, "start")
    assert first.error is None and first.plan == Plan.model_validate(PLAN)
    assert (first.mode, first.attempts) == ("schema", 2)
    assert llm_server.kinds == ["structured", "schema"]
    assert llm_server.requests[1].body["response_format"] == {
        "type": "json_object",
        "schema": Plan.model_json_schema(),
    }
    system = llm_server.requests[1].body["messages"][0]["content"]
    # JSON mode promises only some JSON object: the schema has to be in the prompt too.
    assert system.startswith(SYSTEM) and json.dumps(Plan.model_json_schema()) in system
    assert first.prompt == llm_server.requests[1].body["messages"]
    assert not planner.structured_outputs and planner.mode == "schema"

    second = planner.plan(SYSTEM, USER, "plan done")
    assert second.plan == Plan.model_validate(OTHER_PLAN)
    assert (second.mode, second.attempts) == ("schema", 1)
    assert llm_server.kinds == ["structured", "schema", "schema"]


def test_schema_already_in_the_system_prompt_is_not_sent_twice(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.structured_outputs = False
    llm_server.script(answer(PLAN))
    schema = json.dumps(Plan.model_json_schema())
    call = make_planner(llm_server.url).plan(f"{SYSTEM}\n{schema}", USER, "start")
    assert call.plan is not None
    assert llm_server.requests[1].body["messages"][0]["content"] == f"{SYSTEM}\n{schema}"


def test_empty_structured_answer_falls_back_to_json_mode(llm_server: FakeLLMServer) -> None:
    llm_server.script(completion(None), answer(PLAN))
    planner = make_planner(llm_server.url)
    call = planner.plan(SYSTEM, USER, "start")
    assert call.plan is not None and call.mode == "schema"
    assert llm_server.kinds == ["structured", "schema"]
    assert not planner.structured_outputs


def test_fallback_not_remembered_when_every_mode_fails_alike(llm_server: FakeLLMServer) -> None:
    # A wrong model name fails every way: the response format was not the problem.
    llm_server.default = error(404, "model 'test-model' not found")
    planner = make_planner(llm_server.url)
    call = planner.plan(SYSTEM, USER, "start")
    assert call.plan is None and call.error is not None
    assert "404" in call.error and "not found" in call.error
    assert llm_server.kinds == ["structured", "schema", "json", "prompt"]  # none retried
    assert call.attempts == 4 and call.mode == "prompt"
    assert planner.structured_outputs


def test_invalid_json_gets_one_repair_turn(llm_server: FakeLLMServer) -> None:
    llm_server.script(answer('{"goal": "Leave home", "subgoals": ['), answer(PLAN))
    call = make_planner(llm_server.url).plan(SYSTEM, USER, "start")

    assert call.error is None and call.plan == Plan.model_validate(PLAN)
    assert call.repaired and call.attempts == 2 and call.mode == "structured"
    first, repair = (r.body["messages"] for r in llm_server.requests)
    assert repair[:2] == first
    assert repair[2] == {"role": "assistant", "content": '{"goal": "Leave home", "subgoals": ['}
    assert repair[3]["role"] == "user" and "Invalid JSON" in repair[3]["content"]
    # The system prompt lacked the schema and the server ignored it: the repair says it.
    assert json.dumps(Plan.model_json_schema()) in repair[3]["content"]
    assert call.prompt == repair
    assert llm_server.requests[1].response_format == "json_schema"


def test_schema_violation_repaired_and_still_bad_is_an_error(llm_server: FakeLLMServer) -> None:
    bad = {"goal": "Fly", "subgoals": [{"kind": "fly_to", "map": "MT_MOON"}], "rationale": ""}
    worse = {"goal": "", "subgoals": [], "rationale": ""}
    llm_server.structured_outputs = False
    llm_server.script(answer(bad), answer(worse))
    call = make_planner(llm_server.url).plan(SYSTEM, USER, "start")

    assert call.plan is None and call.repaired and call.mode == "schema"
    assert call.error is not None and call.error.startswith("invalid plan after a repair turn")
    assert "\n" not in call.error and "subgoals" in call.error
    assert call.raw_response == json.dumps(worse)
    assert call.attempts == 3  # refused structured, JSON mode with the schema, repair
    assert llm_server.kinds == ["structured", "schema", "schema"]
    repair = llm_server.requests[-1].body["messages"][-1]["content"]
    assert "subgoals.0" in repair and "fly_to" in repair


def test_impossible_plan_is_rejected_not_clamped(llm_server: FakeLLMServer) -> None:
    impossible = {
        "goal": "Explore",
        "subgoals": [
            {"kind": "go_to_map", "map": "CERULEAN_CITY"},  # not on the fixture cartridge
            {"kind": "go_to_tile", "map": "ROUTE_1", "x": 10, "y": 3},  # x runs 0..9
        ],
        "rationale": "",
    }
    llm_server.script(answer(impossible))
    call = make_planner(llm_server.url).plan(SYSTEM, USER, "stuck")

    assert call.plan is None and call.error is not None
    assert call.error.startswith("plan rejected")
    assert "CERULEAN_CITY" in call.error and "(10, 3)" in call.error
    assert "\n" not in call.error
    assert call.attempts == 1 and not call.repaired
    assert call.raw_response == json.dumps(impossible)


def test_rate_limit_honours_retry_after(llm_server: FakeLLMServer) -> None:
    llm_server.script(error(429, "slow down", headers={"Retry-After": "1"}), answer(PLAN))
    waits: list[float] = []
    call = make_planner(llm_server.url, sleep=waits.append).plan(SYSTEM, USER, "start")

    assert call.error is None and call.plan is not None and call.attempts == 2
    assert waits == [1.0]  # the backoff alone would wait ~0.02 s; the server asked for 1 s
    first, second = llm_server.requests
    assert second.headers["authorization"] == first.headers["authorization"]


def test_overloaded_server_honours_retry_after_ms(llm_server: FakeLLMServer) -> None:
    llm_server.script(error(503, "overloaded", headers={"retry-after-ms": "300"}), answer(PLAN))
    waits: list[float] = []
    call = make_planner(llm_server.url, sleep=waits.append).plan(SYSTEM, USER, "start")
    assert call.plan is not None and call.attempts == 2
    assert waits == [0.3] and len(llm_server.requests) == 2


def test_retry_after_past_the_deadline_gives_up_at_once(llm_server: FakeLLMServer) -> None:
    llm_server.default = error(429, "quota", headers={"Retry-After": "20"})
    waits: list[float] = []
    call = make_planner(llm_server.url, timeout_s=1.0, sleep=waits.append).plan(
        SYSTEM, USER, "start"
    )
    assert waits == []  # 20 s is past the call's 3 s: no wait, and no second attempt
    assert call.error is not None and "429" in call.error and "wait 20 s" in call.error
    assert call.attempts == 1 and len(llm_server.requests) == 1


def test_persistent_server_error_gives_up_after_four_attempts(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.default = error(500, "the model fell over")
    call = make_planner(llm_server.url).plan(SYSTEM, USER, "start")

    assert call.plan is None and call.error is not None
    assert "500" in call.error and "the model fell over" in call.error
    assert call.attempts == 4 and len(llm_server.requests) == 4


def test_client_errors_other_than_429_are_not_retried(llm_server: FakeLLMServer) -> None:
    llm_server.default = error(401, "bad credentials")
    call = make_planner(llm_server.url).plan(SYSTEM, USER, "start")
    assert call.error is not None and "401" in call.error
    assert call.attempts == 1 and len(llm_server.requests) == 1


def test_timeout_is_an_error_within_the_call_deadline(llm_server: FakeLLMServer) -> None:
    llm_server.default = slow(answer(PLAN), 5.0)
    call = make_planner(llm_server.url, timeout_s=0.25).plan(SYSTEM, USER, "start")

    assert call.plan is None and call.error is not None and "timed out" in call.error
    assert 1 <= call.attempts <= 4 and len(llm_server.requests) == call.attempts
    # Each request's read timeout (the SDK sends it along) is what was left of the call's
    # deadline, 3 x 0.25 s, when it was sent: together they never run past the deadline, however
    # slowly the machine goes, since each of them was waited out before the next was sent.
    timeouts = [float(r.headers["x-stainless-read-timeout"]) for r in llm_server.requests]
    assert all(0 < t <= 0.25 for t in timeouts), timeouts
    assert sum(timeouts) <= 3 * 0.25 + 0.001 * len(timeouts), timeouts


def test_connection_refused_is_an_error() -> None:
    call = make_planner(closed_port_url()).plan(SYSTEM, USER, "start")
    assert call.plan is None and call.error is not None
    assert "connect" in call.error and "\n" not in call.error
    assert call.attempts == 4


def test_a_planner_closed_mid_call_fails_it_without_retrying(llm_server: FakeLLMServer) -> None:
    # A run that ends closes its planner while a call may be in flight: that call must end as an
    # error rather than retry against a client that is gone.
    import threading

    llm_server.default = slow(answer(PLAN), 1.0)
    planner = make_planner(llm_server.url, timeout_s=5.0)
    calls: list[PlannerCall] = []
    asking = threading.Thread(target=lambda: calls.append(planner.plan(SYSTEM, USER, "start")))
    asking.start()
    while not llm_server.requests:
        threading.Event().wait(0.01)
    planner.close()
    asking.join()
    assert calls[0].plan is None and calls[0].error is not None
    assert calls[0].attempts == 1 and len(llm_server.requests) == 1


def test_budget_refuses_without_contacting_the_server(llm_server: FakeLLMServer) -> None:
    now = [1000.0]
    planner = make_planner(llm_server.url, max_calls_per_hour=2, clock=lambda: now[0])
    llm_server.script(answer(PLAN), error(401, "bad credentials"), answer(OTHER_PLAN))

    assert planner.plan(SYSTEM, USER, "a").plan is not None
    now[0] += 1800
    assert planner.plan(SYSTEM, USER, "b").plan is None  # failed calls count too
    now[0] += 1799
    refused = planner.plan(SYSTEM, USER, "c")
    assert refused.error == BUDGET_ERROR and refused.plan is None and refused.attempts == 0
    assert refused.prompt[1]["content"] == USER  # the trace still shows what was asked
    assert len(llm_server.requests) == 2  # the 401 was not retried, and "c" sent nothing

    now[0] += 1  # the first call is now an hour old
    assert planner.plan(SYSTEM, USER, "d").plan == Plan.model_validate(OTHER_PLAN)
    totals = planner.totals
    assert (totals.calls, totals.refused, totals.failed, totals.requests) == (3, 1, 1, 3)


def test_zero_budget_never_calls(llm_server: FakeLLMServer) -> None:
    call = make_planner(llm_server.url, max_calls_per_hour=0).plan(SYSTEM, USER, "start")
    assert call.error == BUDGET_ERROR and not llm_server.requests


def test_tokens_are_summed_over_attempts_and_calls(llm_server: FakeLLMServer) -> None:
    llm_server.script(
        answer("not a plan", prompt_tokens=7, completion_tokens=3),
        answer(PLAN, prompt_tokens=11, completion_tokens=5),
        answer(OTHER_PLAN, prompt_tokens=13, completion_tokens=2),
    )
    planner = make_planner(llm_server.url)
    first = planner.plan(SYSTEM, USER, "start")
    assert (first.prompt_tokens, first.completion_tokens) == (18, 8)
    second = planner.plan(SYSTEM, USER, "plan done")
    assert (second.prompt_tokens, second.completion_tokens) == (13, 2)
    totals = planner.totals
    assert (totals.calls, totals.requests) == (2, 3)
    assert (totals.prompt_tokens, totals.completion_tokens) == (31, 10)


def test_screenshot_is_sent_as_image_url_and_recorded_as_placeholder(
    llm_server: FakeLLMServer,
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    llm_server.script(answer(PLAN))
    call = make_planner(llm_server.url).plan(SYSTEM, USER, "start", screenshot_png=png)

    assert call.plan is not None
    text, image = llm_server.requests[0].body["messages"][1]["content"]
    assert text == {"type": "text", "text": USER}
    assert image["type"] == "image_url"
    prefix = "data:image/png;base64,"
    assert image["image_url"]["url"].startswith(prefix)
    assert base64.b64decode(image["image_url"]["url"][len(prefix) :]) == png
    recorded = call.prompt[1]["content"]
    assert recorded[0] == text
    assert recorded[1] == {
        "type": "image_url",
        "image_url": {"url": f"<screenshot {len(png)} bytes>"},
    }
    assert "base64" not in json.dumps(call.to_dict())


def test_api_key_never_recorded_or_logged(
    llm_server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's and httpx2's included
    llm_server.structured_outputs = False
    llm_server.script(
        answer("{oops"),  # repair turn
        answer(PLAN),
        error(429, f"rate limited for key {KEY}", headers={"Retry-After": "0"}),
        answer(OTHER_PLAN),
        # Some servers echo the key they were given in a 401.
        error(401, f"Incorrect API key provided: {KEY}"),
        answer({"goal": "x", "subgoals": [{"kind": "go_to_map", "map": "ATLANTIS"}]}),
    )
    planner = make_planner(llm_server.url)
    calls = [planner.plan(SYSTEM, f"{USER} ({i})", "start") for i in range(4)]

    assert [c.plan is not None for c in calls] == [True, True, False, False]
    assert calls[2].error is not None and "***" in calls[2].error
    # The key did go to the server, in the header and nowhere else.
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in llm_server.requests)
    assert not any(KEY in json.dumps(r.body) for r in llm_server.requests)
    for call in calls:
        assert KEY not in json.dumps(call.to_dict()) and KEY not in repr(call)
    assert caplog.records and KEY not in caplog.text
    assert not any(KEY in r.getMessage() for r in caplog.records)
    assert KEY not in repr(planner.totals)


def test_no_key_sends_a_placeholder(llm_server: FakeLLMServer) -> None:
    # Local servers (Ollama, llama.cpp) need no key; the planner must not refuse to start.
    llm_server.script(answer(PLAN))
    call = make_planner(llm_server.url, api_key=None).plan(SYSTEM, USER, "start")
    assert call.plan is not None
    assert llm_server.requests[0].headers["authorization"] == "Bearer not-needed"


def test_unexpected_answers_never_raise(llm_server: FakeLLMServer) -> None:
    llm_server.script(
        Reply(status=200, body="<html>not json</html>"),
        completion("", refusal="I cannot help with that."),
    )
    planner = make_planner(llm_server.url)
    calls: list[PlannerCall] = [planner.plan(SYSTEM, USER, "start") for _ in range(2)]
    assert all(c.plan is None and c.error for c in calls)
    assert calls[0].error is not None and "not JSON" in calls[0].error
    assert calls[1].error is not None and "refused" in calls[1].error
