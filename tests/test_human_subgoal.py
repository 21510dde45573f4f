"""A person steering System 2: a subgoal typed in the dashboard becomes the agent's current one,
checked as an LLM's plan is, held against the planner's triggers until it is done, times out or
is cleared, and recorded in the plan trace with source "human" — in the planner service and
through the real agent loop on the cartridge."""

from __future__ import annotations

from pathlib import Path

import pytest
from llm_server import (
    FakeLLMServer,
    answer,
    holding,
    llm_server_fixture,  # noqa: F401 (registers the llm_server fixture)
)
from test_loop import settings
from test_pace import FakeClock
from test_planner_service import LLM_PLAN, talking, timed_service, town

from pokedreamer.agent.episodes import EpisodeReader, list_episodes
from pokedreamer.agent.events import SetSubgoal, StatusEvent, StepEvent
from pokedreamer.agent.loop import AgentLoop
from pokedreamer.agent.pace import Pace
from pokedreamer.config import PlannerSettings
from pokedreamer.env.maps import MAP_IDS
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.heuristic import HeuristicPlanner
from pokedreamer.planner.service import HUMAN_TRIGGER, PlannerService, PlanRecord, read_subgoal
from pokedreamer.planner.subgoals import GoToMap, GoToTile
from pokedreamer.rundir import RunDir

FACTS = GameFacts.fixture()
FAR = GoToTile(map="ROUTE_1", x=4, y=1)
"""The door to the gym, a map away from where the tests stand."""


def heuristic_service(records: list[PlanRecord], **planner: int) -> PlannerService:
    options = {"stuck_steps": 10_000, "replan_every": 10_000, **planner}
    return PlannerService(
        PlannerSettings(kind="heuristic", **options), FACTS, HeuristicPlanner("fixture"),
        sink=records.append,
    )  # fmt: skip


# --- the schema and the facts, as for an LLM's answer ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"kind": "go_to_map", "map": "VIRIDIAN_CITY"}', "no map named 'VIRIDIAN_CITY'"),
        ('{"kind": "go_to_tile", "map": "ROUTE_1", "x": 40, "y": 1}', "lies outside ROUTE_1"),
        ('{"kind": "go_to_tile", "map": "ROUTE_1", "x": 4}', "go_to_tile.y: Field required"),
        ('{"kind": "fly", "to": "PEWTER"}', "does not match any of the expected tags"),
        ('{"kind": "read_text", "contains": "§§"}', "characters the game never prints"),
        ("go to the gym", "Invalid JSON"),
    ],
)
def test_a_subgoal_is_checked_as_an_llms_answer_is(text: str, problem: str) -> None:
    subgoal, said = read_subgoal(text, FACTS)
    assert subgoal is None and problem in said and "\n" not in said


def test_a_good_subgoal_reads_in_the_games_names() -> None:
    subgoal, said = read_subgoal('{"kind": "go_to_map", "map": "pallet town"}', FACTS)
    assert subgoal == GoToMap(map="PALLET_TOWN") and said == ""


# --- the planner service ------------------------------------------------------------------------


def test_a_persons_subgoal_holds_against_triggers_until_it_times_out() -> None:
    records: list[PlanRecord] = []
    svc = heuristic_service(records, subgoal_timeout=20)
    svc.observe(0, town())
    svc.steer(1, town(), FAR)
    assert svc.subgoal == FAR and svc.steered and svc.source == "human"
    human = records[-1]
    assert (human.source, human.trigger, human.step) == ("human", HUMAN_TRIGGER, 1)
    assert human.plan == {"goal": "a person's subgoal: go to ROUTE_1 (4, 1)",
                          "subgoals": [FAR.model_dump()], "rationale": ""}  # fmt: skip
    # New dialog, a new map: each would make the heuristic planner plan again; not now.
    for step in range(2, 10):
        svc.observe(step, talking(step))
    svc.observe(10, town(map_id=MAP_IDS["REDS_HOUSE_1F"], map_name="REDS_HOUSE_1F"))
    assert records[-1] is human and svc.subgoal == FAR
    for step in range(11, 23):  # 21 steps after it was set
        svc.observe(step, town())
    # Its step budget spent, it fails as any subgoal does, and the planner plans again.
    assert not svc.steered and svc.outcomes[-1] == "timed out: go to ROUTE_1 (4, 1)"
    assert (records[-1].source, records[-1].trigger) == ("heuristic", "subgoal timeout")


def test_a_persons_subgoal_done_gives_the_plan_back() -> None:
    records: list[PlanRecord] = []
    svc = heuristic_service(records)
    svc.observe(0, town())
    svc.steer(1, town(), GoToMap(map="ROUTE_1"))
    route_1 = town(map_id=MAP_IDS["ROUTE_1"], map_name="ROUTE_1", x=4, y=8)
    svc.observe(2, route_1)
    assert svc.outcomes[-1] == "done: go to ROUTE_1"
    assert (records[-1].source, records[-1].trigger, records[-1].step) == (
        "heuristic", "plan done", 2,
    )  # fmt: skip


def test_clearing_or_replanning_hands_it_back_at_once() -> None:
    records: list[PlanRecord] = []
    svc = heuristic_service(records)
    svc.observe(0, town())
    svc.steer(1, town(), FAR)
    svc.request(2, town(), "cleared by a person")
    assert not svc.steered and svc.subgoal != FAR
    assert (records[-1].source, records[-1].trigger) == ("heuristic", "cleared by a person")


def test_an_llm_answer_asked_before_the_person_spoke_is_set_aside(
    llm_server: FakeLLMServer,
) -> None:
    llm_server.default, arrived, release = holding(answer(LLM_PLAN))
    records: list[PlanRecord] = []
    svc = timed_service(llm_server.url, records, FakeClock(), min_interval_s=0.0)
    svc.observe(0, town())  # asks the LLM (held) and pursues the heuristic plan meanwhile
    assert arrived.wait(timeout=60) and svc.busy
    svc.steer(1, town(), FAR)
    release.set()
    assert svc.wait(timeout=60)
    for step in range(2, 6):
        svc.observe(step, talking(step))
    assert svc.subgoal == FAR and not svc.busy and svc.ledger.calls == 1
    assert [r.source for r in records] == ["heuristic", "human"]
    # Cleared: the heuristic plan at once, and the LLM is asked again.
    svc.request(6, town(), "cleared by a person")
    assert records[-1].source == "heuristic" and svc.busy
    svc.close(wait=True)


# --- through the real loop ---------------------------------------------------------------------


def loop_for(tmp_path: Path, name: str, **extra: object) -> AgentLoop:
    s = settings(**{"run.runs_dir": str(tmp_path), "agent.train_ratio": 0.0, **extra})
    return AgentLoop(s, RunDir.create(s, name), train=False)


def test_the_loop_adopts_a_persons_subgoal_and_records_it(tmp_path: Path) -> None:
    loop = loop_for(tmp_path, "steered", **{"planner.subgoal_timeout": 15})
    events = loop.bus.subscribe(maxlen=10_000, kinds=(StatusEvent, StepEvent))
    loop.send(SetSubgoal('{"kind": "go_to_map", "map": "VIRIDIAN_CITY"}'))  # refused
    loop.send(SetSubgoal(FAR.model_dump_json()))
    loop.run(30)
    got = events.drain()
    said = [e.message for e in got if isinstance(e, StatusEvent) and e.message]
    refused = next(m for m in said if m.startswith("subgoal not set"))
    assert "no map named 'VIRIDIAN_CITY'" in refused and "\n" not in refused
    assert "your subgoal: go to ROUTE_1 (4, 1)" in said
    # The steps carry it until its budget of 15 steps is spent, whatever the agent meets.
    carried = [e.episode_step for e in got if isinstance(e, StepEvent) and e.subgoals[:1] ==
               ("go to ROUTE_1 (4, 1)",)]  # fmt: skip
    assert carried == list(range(1, 16))  # the first frame was shown before it came
    [episode] = list_episodes(loop.run_dir)
    reader = EpisodeReader(episode.path)
    plans = [(p["step"], p["source"], p["trigger"]) for p in reader.plans()]
    assert plans[:3] == [(0, "heuristic", "start"), (0, "human", HUMAN_TRIGGER),
                         (16, "heuristic", "subgoal timeout")]  # fmt: skip
    assert reader.plans()[1]["plan"]["subgoals"] == [FAR.model_dump()]
    assert [s.subgoal for s in reader.steps()[1:16]] == ["go to ROUTE_1 (4, 1)"] * 15


def test_a_person_clears_their_subgoal_mid_run(tmp_path: Path) -> None:
    loop = loop_for(tmp_path, "cleared")
    statuses = loop.bus.subscribe(kinds=(StatusEvent,))
    # The pace's sleep comes once a step: commands sent from it land on known steps.
    clock = FakeClock()
    script = {3: SetSubgoal(FAR.model_dump_json()), 8: SetSubgoal(None), 9: SetSubgoal(None)}

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.slept) in script:
            loop.send(script[len(clock.slept)])

    loop.pace = Pace(24, clock=clock, sleep=sleep)
    loop.commands.speed = 16
    loop.run(12)
    said = [e.message for e in statuses.drain() if e.message]
    assert "your subgoal is cleared: the planner plans again" in said
    assert "no subgoal of yours to clear" in said
    [episode] = list_episodes(loop.run_dir)
    plans = [(p["step"], p["source"], p["trigger"]) for p in EpisodeReader(episode.path).plans()]
    assert (3, "human", HUMAN_TRIGGER) in plans
    assert plans[plans.index((3, "human", HUMAN_TRIGGER)) + 1] == (
        8, "heuristic", "cleared by a person",
    )  # fmt: skip


def test_without_a_planner_a_subgoal_is_refused(tmp_path: Path) -> None:
    loop = loop_for(tmp_path, "none", **{"planner.kind": "none"})
    statuses = loop.bus.subscribe(kinds=(StatusEvent,))
    loop.send(SetSubgoal(FAR.model_dump_json()))
    loop.run(2)
    said = [e.message for e in statuses.drain() if e.message]
    assert "subgoal not set: the planner is none (p picks another)" in said
