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
    holding,
    llm_server_fixture,  # noqa: F401 (registers the llm_server fixture)
)

from pokedreamer.config import PlannerSettings
from pokedreamer.env.state import PartyMon
from pokedreamer.planner.heuristic import HeuristicPlanner
from pokedreamer.planner.llm import LLMPlanner
from pokedreamer.planner.prompts import PromptLibrary
from pokedreamer.planner.service import PlannerService, PlanRecord
from pokedreamer.planner.subgoals import WinBattle

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
    for _ in range(7):
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
    assert isinstance(service.subgoal, ReadText) and service.subgoal.contains == "Hello"
    assert [r.trigger for r in records] == ["start"]
    assert len(records[0].plan["subgoals"]) == 3  # the record keeps the plan as the planner gave it


# --- timing, deferral, battles, pacing and the token budget, on a fake clock ------------------


class FakeClock:
    """time.monotonic for the service; ``sleep`` moves it on and remembers each wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def town(**changes: Any) -> Any:
    """The player in PALLET_TOWN next to the GUIDE, nothing on screen; ``changes`` to fields."""
    from pokedreamer.env.maps import MAP_IDS
    from pokedreamer.env.state import GameState

    fields: dict[str, Any] = {
        "map_id": MAP_IDS["PALLET_TOWN"], "map_name": "PALLET_TOWN", "x": 6, "y": 2,
        "facing": "right", "battle": "none", "enemy_hp": 0, "enemy_max_hp": 0,
        "text_shown": False, "text": (), "party": (), "badges": 0, "money": 3000,
        "event_flags": bytes(320), "pokedex_owned": 0, "pokedex_seen": 0, "bag": (),
    }  # fmt: skip
    return GameState(**{**fields, **changes})


def talking(n: int, **changes: Any) -> Any:
    """``town`` with dialog page ``n`` on screen: each page is new dialog."""
    return town(text_shown=True, text=(f"PAGE {n}",), **changes)


def timed_service(
    url: str, records: list[PlanRecord], clock: FakeClock, **planner: Any
) -> PlannerService:
    settings = PlannerSettings(
        kind="llm", base_url=url, model="test", api_key=KEY, timeout_s=2.0,
        **{"subgoal_timeout": 10_000, "stuck_steps": 10_000, "replan_every": 10_000, **planner},
    )  # fmt: skip
    heuristic = HeuristicPlanner("fixture")
    llm = LLMPlanner(settings, heuristic.facts, backoff_s=0.01, backoff_max_s=0.05)
    return PlannerService(
        settings, heuristic.facts, heuristic, PromptLibrary(), llm, sink=records.append,
        clock=clock, sleep=clock.sleep,
    )  # fmt: skip


def settle(svc: PlannerService, step: int, state: Any) -> None:
    """Lets the call in flight, if any, return; then the service sees ``state`` at ``step``."""
    assert svc.wait(timeout=60), "the LLM call never returned"
    svc.observe(step, state)


def test_a_trigger_inside_the_interval_waits_and_is_asked_when_it_allows(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.default = answer(LLM_PLAN)
    records: list[PlanRecord] = []
    clock = FakeClock()
    svc = timed_service(llm_server.url, records, clock, min_interval_s=10.0)
    svc.observe(0, town())
    settle(svc, 1, town())
    assert len(llm_server.requests) == 1 and svc.source == "llm"
    clock.now += 3
    svc.observe(2, talking(1))  # new dialog 3 s after the last call: deferred, not dropped
    assert svc.deferred == "new dialog" and not svc.busy
    for step in range(3, 8):
        clock.now += 1
        svc.observe(step, talking(1))
        assert svc.deferred == "new dialog" and len(llm_server.requests) == 1, step
    clock.now += 2.5  # 10.5 s since the last call
    svc.observe(8, talking(1))
    assert svc.busy and svc.deferred is None
    settle(svc, 9, talking(1))
    assert len(llm_server.requests) == 2
    asked = records[-1]
    assert asked.source == "llm" and asked.trigger == "new dialog at step 2 (asked at step 8)"
    svc.close(wait=True)


def test_a_trigger_while_a_call_is_in_flight_is_asked_after_it(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.default, arrived, release = holding(answer(LLM_PLAN))
    records: list[PlanRecord] = []
    clock = FakeClock()
    svc = timed_service(llm_server.url, records, clock, min_interval_s=0.0)
    svc.observe(0, town())
    assert arrived.wait(timeout=60)
    svc.observe(1, talking(1))  # the call in flight cannot have seen this page
    assert svc.busy and svc.deferred == "new dialog"
    llm_server.default = answer(LLM_PLAN)
    release.set()
    settle(svc, 2, talking(1))  # adopts the first answer and asks about the page
    assert svc.busy and svc.deferred is None
    settle(svc, 3, talking(1))
    assert len(llm_server.requests) == 2
    triggers = [r.trigger for r in records if r.source == "llm"]
    assert triggers == ["start (asked at step 0)", "new dialog at step 1 (asked at step 2)"]
    svc.close(wait=True)


def test_the_periodic_trigger_asks_every_replan_every_steps(llm_server: FakeLLMServer) -> None:
    llm_server.default = answer(LLM_PLAN)
    records: list[PlanRecord] = []
    clock = FakeClock()
    svc = timed_service(llm_server.url, records, clock, min_interval_s=0.0, replan_every=20)
    for step in range(61):
        settle(svc, step, town())  # nothing changes: only the timer asks
    llm = [r for r in records if r.source == "llm"]
    assert [r.trigger for r in llm] == [
        "start (asked at step 0)", "periodic (asked at step 21)", "periodic (asked at step 42)",
    ]  # fmt: skip
    assert len(llm_server.requests) == 3
    svc.close(wait=True)


def test_heuristic_periodic_trigger() -> None:
    records: list[PlanRecord] = []
    svc = PlannerService(
        PlannerSettings(kind="heuristic", replan_every=5, stuck_steps=1000),
        HeuristicPlanner("fixture").facts, HeuristicPlanner("fixture"), sink=records.append,
    )  # fmt: skip
    for step in range(12):
        svc.observe(step, town())
    assert [(r.step, r.trigger) for r in records] == [
        (0, "start"),
        (5, "periodic"),
        (10, "periodic"),
    ]


def test_a_battles_messages_ask_the_llm_once(llm_server: FakeLLMServer) -> None:
    llm_server.default = answer(LLM_PLAN)
    records: list[PlanRecord] = []
    clock = FakeClock()
    svc = timed_service(llm_server.url, records, clock, min_interval_s=0.0)
    settle(svc, 0, town())
    settle(svc, 1, town())
    battle = {"battle": "wild", "enemy_hp": 20, "enemy_max_hp": 20}
    step = 1
    for page in range(12):  # twelve messages of one battle
        step += 1
        settle(svc, step, talking(page, **battle))
    assert len(llm_server.requests) == 2  # the start, then the battle's first message
    step += 1
    settle(svc, step, town())  # the battle is over: that asks, as any trigger out of battle
    assert svc.wait(timeout=60) and len(llm_server.requests) == 3
    step += 1
    settle(svc, step, talking(99, **battle))  # a second battle asks again
    settle(svc, step + 1, talking(99, **battle))
    assert len(llm_server.requests) == 4
    svc.close(wait=True)


def test_the_end_of_a_battle_asks_for_a_plan() -> None:
    """The plan made in a battle's last message says "win the battle"; once the battle is over
    that subgoal is neither done nor failed, so the battle's end itself asks for the next plan
    (before, the player went on looking for battles until stuck or the timer asked)."""
    records: list[PlanRecord] = []
    heuristic = HeuristicPlanner("fixture")
    svc = PlannerService(
        PlannerSettings(kind="heuristic", replan_every=10_000, stuck_steps=10_000),
        heuristic.facts, heuristic, sink=records.append,
    )  # fmt: skip
    squirtle = {"party": (PartyMon(0xB1, 6, 22, 22),)}
    battle = {"battle": "wild", "enemy_hp": 0, "enemy_max_hp": 20, **squirtle}
    svc.observe(0, town(**squirtle))
    svc.observe(1, talking(0, **battle))  # the enemy has fainted; its last message is up
    assert isinstance(svc.subgoal, WinBattle)
    svc.observe(2, town(**squirtle))
    assert records[-1].trigger == "battle over" and records[-1].step == 2
    assert svc.subgoal is not None and not isinstance(svc.subgoal, WinBattle)
    svc.observe(3, town(**squirtle))  # no battle ended here
    assert records[-1].step == 2


def test_the_heuristic_planner_still_replans_at_each_battle_message() -> None:
    records: list[PlanRecord] = []
    heuristic = HeuristicPlanner("fixture")
    svc = PlannerService(
        PlannerSettings(kind="heuristic", replan_every=10_000), heuristic.facts, heuristic,
        sink=records.append,
    )  # fmt: skip
    svc.observe(0, town())
    battle = {"battle": "wild", "enemy_hp": 20, "enemy_max_hp": 20}
    for page in range(5):
        svc.observe(page + 1, talking(page, **battle))
    assert [r.trigger for r in records] == ["start"] + ["new dialog"] * 5


def test_between_llm_plans_the_heuristic_plan_rules(llm_server: FakeLLMServer) -> None:
    # The LLM's plan is done at once (the player is in PALLET_TOWN): the heuristic plan takes
    # over on that very step, while the next LLM call waits for its interval.
    llm_server.default = answer(
        {"goal": "Reach the town", "subgoals": [{"kind": "go_to_map", "map": "PALLET_TOWN"}]}
    )
    records: list[PlanRecord] = []
    clock = FakeClock()
    svc = timed_service(llm_server.url, records, clock, min_interval_s=30.0)
    svc.observe(0, town())
    assert svc.subgoal is not None and records[0].source == "heuristic"
    for step in range(1, 40):
        clock.now += 0.5
        if svc.busy:
            assert svc.wait(timeout=60)
        svc.observe(step, town())
        assert svc.subgoal is not None, step
    sources = [(r.source, r.trigger.split(" (")[0]) for r in records]
    assert sources[:3] == [("heuristic", "start"), ("llm", "start"), ("heuristic", "plan done")]
    assert svc.deferred == "plan done" and len(llm_server.requests) == 1
    svc.close(wait=True)


def test_paced_service_waits_for_each_plan_and_for_the_interval(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.default = answer(LLM_PLAN)
    records: list[PlanRecord] = []
    clock = FakeClock()
    svc = timed_service(llm_server.url, records, clock, min_interval_s=10.0, pace="wait")
    svc.observe(0, town())
    # The game waited: the first plan is the LLM's, and nothing was pursued before it.
    assert [r.source for r in records] == ["llm"] and not svc.busy
    clock.now += 4
    svc.observe(1, talking(1))
    assert clock.slept == [6.0]  # the rest of the interval, waited out on the fake clock
    assert [(r.source, r.step) for r in records] == [("llm", 0), ("llm", 1)]
    svc.close(wait=True)


def test_the_token_budget_stops_asking_and_says_so_once(llm_server: FakeLLMServer) -> None:
    llm_server.default = answer(LLM_PLAN, prompt_tokens=100, completion_tokens=20)
    records: list[PlanRecord] = []
    clock = FakeClock()
    svc = timed_service(llm_server.url, records, clock, min_interval_s=0.0, max_tokens=150)
    settle(svc, 0, town())
    for step in range(1, 10):
        settle(svc, step, talking(step))
        assert svc.subgoal is not None
    assert len(llm_server.requests) == 2  # 120 tokens, then 240: spent
    assert (svc.ledger.prompt_tokens, svc.ledger.completion_tokens) == (200, 40)
    notice = svc.ledger.take_notice()
    assert notice and "planner.max_tokens" in notice and svc.ledger.take_notice() is None
    assert records[-1].source == "heuristic"  # the heuristic planner plans from then on
    svc.close(wait=True)


def test_the_ledger_prices_tokens() -> None:
    from pokedreamer.planner.service import TokenLedger

    ledger = TokenLedger(prompt_price_per_1k=0.5, completion_price_per_1k=2.0)
    assert ledger.metrics() == {}
    ledger.calls, ledger.prompt_tokens, ledger.completion_tokens = 2, 3000, 500
    assert ledger.cost == 2.5
    assert ledger.metrics()["planner/cost"] == 2.5
    assert TokenLedger().totals() == {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
