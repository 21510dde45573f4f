"""The planner service beside a running loop: triggers, asynchronous LLM calls against a real
local server, fallback to the heuristic planner, and the subgoal trace."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cartridge_driver import TO_MOM, Game, get_starter
from llm_server import (
    FakeLLMServer,
    Reply,
    Request,
    answer,
    closed_port_url,
    completion,
    error,
    llm_server_fixture,  # noqa: F401 (registers the llm_server fixture)
)

from pokedreamer.config import PlannerSettings
from pokedreamer.planner.heuristic import HeuristicPlanner
from pokedreamer.planner.llm import LLMPlanner
from pokedreamer.planner.prompts import PromptLibrary
from pokedreamer.planner.service import PlannerService, PlanRecord

KEY = "sk-service-test-7Hq2-SECRET"
LLM_PLAN: dict[str, Any] = {
    "goal": "Talk to MOM",
    "subgoals": [{"kind": "go_to_tile", "map": "REDS_HOUSE_1F", "x": 5, "y": 2},
                 {"kind": "read_text", "contains": "MOM"}],
    "rationale": "She knows where the GUIDE is.",
}  # fmt: skip


@pytest.fixture
def game() -> Iterator[Game]:
    g = Game()
    yield g
    g.close()


def service(url: str | None, records: list[PlanRecord], **planner: Any) -> PlannerService:
    settings = PlannerSettings(
        kind="llm" if url else "heuristic",
        base_url=url or "",
        model="test",
        api_key=KEY,
        timeout_s=planner.pop("timeout_s", 2.0),
        min_interval_s=planner.pop("min_interval_s", 0.0),
        **planner,
    )
    heuristic = HeuristicPlanner("fixture")
    llm = None
    if url:
        llm = LLMPlanner(settings, heuristic.facts, backoff_s=0.01, backoff_max_s=0.05)
    prompts = PromptLibrary() if url else None
    return PlannerService(settings, heuristic.facts, heuristic, prompts, llm, sink=records.append)


def take_up_answer(svc: PlannerService, game: Game, step: int) -> int:
    """Waits for the LLM call in flight to return, then steps once (pressing B, which changes
    nothing here) so that the service adopts what it answered; returns that step."""
    assert svc.wait(timeout=60), "the LLM call never returned"
    game.press("b")
    svc.observe(step + 1, game.state)
    return step + 1


def test_heuristic_plans_at_start_and_after_progress(game: Game) -> None:
    records: list[PlanRecord] = []
    svc = service(None, records)
    svc.observe(0, game.state)
    assert records[0].trigger == "start" and records[0].source == "heuristic"
    assert svc.goal and svc.subgoal is not None
    get_starter(game)
    svc.observe(1, game.state)
    # Getting SQUIRTLE completes the plan's subgoals and changes the stage: a new plan follows.
    assert len(records) >= 2 and svc.plan is not None
    assert all(r.plan is not None for r in records)


def test_slow_llm_never_blocks_the_loop(game: Game, llm_server: FakeLLMServer) -> None:
    # The server holds its answer until the test lets it go: whatever the loop does meanwhile
    # happens while the call is certainly in flight, however fast or slow the machine.
    arrived, release, held_out = threading.Event(), threading.Event(), threading.Event()

    def held(request: Request) -> Reply:
        arrived.set()
        if not release.wait(timeout=60):  # only a test that never releases it gets here
            held_out.set()
        return answer(LLM_PLAN)

    llm_server.default = held
    records: list[PlanRecord] = []
    svc = service(llm_server.url, records)
    svc.observe(0, game.state)
    # Until the LLM answers, the agent acts on the heuristic plan, and the loop keeps stepping.
    assert records[0].source == "heuristic" and svc.busy
    assert arrived.wait(timeout=60), "the LLM call never reached the server"
    for step in range(1, 21):
        game.press("b")
        svc.observe(step, game.state)
        assert svc.busy and all(r.source != "llm" for r in records), step
    held_for = time.monotonic() - llm_server.requests[0].time
    release.set()
    take_up_answer(svc, game, 20)
    assert not held_out.is_set(), "observe waited for the LLM"
    llm = next(r for r in records if r.source == "llm")
    assert llm.plan == LLM_PLAN and llm.latency_s >= held_for and llm.prompt
    assert svc.goal == "Talk to MOM"
    svc.close(wait=True)


@pytest.mark.parametrize(
    "reply",
    [
        completion("this is not json {"),
        answer({"goal": "x", "subgoals": [{"kind": "fly_to_the_moon"}]}),
        answer({**LLM_PLAN, "subgoals": [{"kind": "go_to_map", "map": "OAKS_LAB"}]}),
        error(500),
    ],
    ids=["invalid-json", "schema-violation", "impossible-map", "server-error"],
)
def test_failed_llm_plan_falls_back_to_the_heuristic(
    game: Game, llm_server: FakeLLMServer, reply: Any
) -> None:
    llm_server.default = reply
    records: list[PlanRecord] = []
    svc = service(llm_server.url, records)
    svc.observe(0, game.state)
    take_up_answer(svc, game, 0)
    fallback = next(r for r in records if r.source == "fallback")
    assert fallback.error and fallback.plan is not None  # a valid plan all the same
    assert svc.plan is not None and svc.subgoal is not None
    svc.close(wait=True)


def test_unreachable_endpoint_falls_back(game: Game) -> None:
    records: list[PlanRecord] = []
    svc = service(closed_port_url(), records)
    svc.observe(0, game.state)
    take_up_answer(svc, game, 0)
    assert "connect" in (next(r for r in records if r.source == "fallback").error or "").lower()
    svc.close(wait=True)


def test_triggers_new_dialog_and_map_change(game: Game) -> None:
    records: list[PlanRecord] = []
    svc = service(None, records, replan_every=10_000)
    step = 0
    for move in (*TO_MOM, "a"):
        step += 1
        game.press(move)
        svc.observe(step, game.state)
    assert records[-1].trigger == "new dialog"
    for _ in range(3):
        step += 1
        game.press("a")
        svc.observe(step, game.state)
    entered = None
    for _ in range(6):
        step += 1
        game.press("down")
        svc.observe(step, game.state)
        if entered is None and game.state.map_name == "PALLET_TOWN":
            entered = step
    assert entered is not None
    # Entering the town both changes the map and completes the plan's "go to PALLET_TOWN": either
    # trigger names the replan made on that step.
    replan = next(r for r in records if r.step == entered)
    assert replan.trigger in ("map change", "subgoal done")


@pytest.mark.parametrize(
    ("options", "trigger"),
    [({"stuck_steps": 5}, "stuck"), ({"subgoal_timeout": 8}, "subgoal timeout")],
)
def test_stuck_and_timeout_triggers(game: Game, options: dict[str, int], trigger: str) -> None:
    records: list[PlanRecord] = []
    settings = {"stuck_steps": 1000, "subgoal_timeout": 1000, "replan_every": 10_000, **options}
    svc = service(None, records, **settings)
    for step in range(1, 12):
        game.press("b")  # nothing moves
        svc.observe(step, game.state)
    assert [r.trigger for r in records][:2] == ["start", trigger]
    if trigger == "subgoal timeout":
        assert any(line.startswith("timed out:") for line in svc.outcomes)


def test_trace_records_are_json_and_keep_the_key_out(game: Game, llm_server: FakeLLMServer) -> None:
    llm_server.default = answer(LLM_PLAN)
    records: list[PlanRecord] = []
    svc = service(llm_server.url, records)
    svc.observe(0, game.state)
    take_up_answer(svc, game, 0)
    svc.close(wait=True)
    assert any(r.source == "llm" for r in records)
    for record in records:
        line = record.json()
        assert KEY not in line
        parsed = json.loads(line)
        assert {"step", "trigger", "source", "plan", "latency_s", "prompt_tokens"} <= set(parsed)


def test_vision_sends_the_screen(game: Game, llm_server: FakeLLMServer) -> None:
    import numpy as np

    llm_server.default = answer(LLM_PLAN)
    records: list[PlanRecord] = []
    svc = service(llm_server.url, records, vision=True)
    screen = np.zeros((144, 160), dtype=np.uint8)
    svc.observe(0, game.state, screen)
    take_up_answer(svc, game, 0)
    svc.close(wait=True)
    content = llm_server.requests[0].body["messages"][-1]["content"]
    assert any(part.get("type") == "image_url" for part in content)
    llm = next(r for r in records if r.source == "llm")
    assert "<screenshot" in json.dumps(llm.prompt)


def test_a_new_plan_starts_at_its_first_subgoal_still_to_do() -> None:
    # Standing on the GUIDE's cell with the starter plan's first two subgoals done already:
    # the plan is adopted from its read_text, so the next steps pop nothing and ask again for
    # nothing (were a done subgoal kept, each step would pop it and replan, every step spent
    # there).
    from pokedreamer.config import PlannerSettings
    from pokedreamer.env.maps import MAP_IDS
    from pokedreamer.env.state import GameState
    from pokedreamer.planner.facts import GameFacts
    from pokedreamer.planner.heuristic import HeuristicPlanner
    from pokedreamer.planner.service import PlannerService
    from pokedreamer.planner.subgoals import ReadText

    state = GameState(
        map_id=MAP_IDS["PALLET_TOWN"], map_name="PALLET_TOWN", x=6, y=2, facing="right",
        battle="none", enemy_hp=0, enemy_max_hp=0, text_shown=False, text=(), party=(),
        badges=0, money=3000, event_flags=bytes(320), pokedex_owned=0, pokedex_seen=0, bag=(),
    )  # fmt: skip
    records = []
    service = PlannerService(
        PlannerSettings(kind="heuristic"), GameFacts.fixture(), HeuristicPlanner("fixture"),
        sink=records.append,
    )  # fmt: skip
    for step in range(5):
        service.observe(step, state)
    assert isinstance(service.subgoal, ReadText) and service.subgoal.contains == "GUIDE"
    assert [r.trigger for r in records] == ["start"]
    assert len(records[0].plan["subgoals"]) == 3  # the record keeps the plan as the planner gave it
