"""What the dashboard's tests share: a recorded cartridge run (one episode of the fixture cartridge
along a scripted route), its steps as the agent loop publishes them, and a wait for the Pilot."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cartridge_driver import MOM_TO_TOWN, TO_MOM, TOWN_TO_GUIDE
from textual.pilot import Pilot

from pokedreamer.agent.episodes import EpisodeRecorder, open_episode
from pokedreamer.agent.events import StepEvent
from pokedreamer.config import Settings
from pokedreamer.dashboard.episode_trace import EpisodeTrace
from pokedreamer.dashboard.widgets.planner_panel import describe_subgoals
from pokedreamer.planner.service import PlanRecord
from pokedreamer.rundir import RunDir

SIZE = (200, 60)
"""The terminal the dashboard is laid out for."""

# Out of the house, across the town to the GUIDE, and through his dialog: three subgoals reached
# or replaced, plans at the start and at each subgoal done, and text boxes.
ROUTE = (*TO_MOM[:-1], *MOM_TO_TOWN, *TOWN_TO_GUIDE, "a", "a", "a", "a", "a", "a")
LLM_STEP = 23


def llm_record(step: int) -> PlanRecord:
    """A planning event as the LLM planner leaves it: a prompt, a raw answer, a fallback."""
    return PlanRecord(
        step=step,
        trigger="new dialog",
        source="fallback",
        plan={"goal": "Walk to ROUTE_1", "subgoals": [{"kind": "go_to_map", "map": "ROUTE_1"}]},
        error="the answer was not a Plan",
        prompt=[
            {"role": "system", "content": "You plan for a POKéMON player."},
            {"role": "user", "content": "Why you are asked now: new dialog"},
        ],
        raw_response='{"goal": 42}',
        latency_s=1.25,
        prompt_tokens=321,
        completion_tokens=12,
    )


def record_run(folder: Path) -> RunDir:
    """One episode of the fixture cartridge, stepped by the real env with the heuristic planner
    beside it the way the agent loop runs it, and written by the episode recorder."""
    from pokedreamer.env.gym_env import PokemonRedEnv
    from pokedreamer.planner.heuristic import HeuristicPlanner
    from pokedreamer.planner.service import PlannerService
    from pokedreamer.planner.subgoals import describe

    settings = Settings()
    run = RunDir(folder)
    env = PokemonRedEnv(settings.env, settings.rewards)
    heuristic = HeuristicPlanner(env.rom.game)
    recorder = EpisodeRecorder(run)
    recorder.start({"seed": 0})
    service = PlannerService(settings.planner, heuristic.facts, heuristic, sink=recorder.plan)
    try:
        obs, info = env.reset(seed=0)
        service.observe(0, info["state"])
        subgoal = describe(service.subgoal) if service.subgoal else None
        recorder.step(obs["screen"], None, 0.0, info["rewards"], info["state"], subgoal)
        for step, button in enumerate(ROUTE, 1):
            action = env.buttons.index(button)
            obs, reward, _, _, info = env.step(action)
            service.observe(step, info["state"])
            if step == LLM_STEP:
                recorder.plan(llm_record(step))
            subgoal = describe(service.subgoal) if service.subgoal else None
            recorder.step(obs["screen"], action, reward, info["rewards"], info["state"], subgoal)
        recorder.end({"ended": "test"})
    finally:
        service.close()
        env.close()
    return run


def published_steps(recorded_run: RunDir) -> list[StepEvent]:
    """The recorded steps as the agent loop publishes them."""
    trace = EpisodeTrace(open_episode(recorded_run))
    events = []
    for record in trace.steps:
        plan = trace.plans[trace.plan_index_at(record.index) or 0]["plan"]
        queue_ = describe_subgoals(plan)
        events.append(
            StepEvent(
                step=record.index, env=0, episode=1, episode_step=record.index,
                frame=trace.frames[record.index], state=record.state, action=record.action,
                button="", reward=record.reward, terms=record.terms, goal=plan["goal"],
                subgoals=tuple(queue_), progress=0.5,
            )
        )  # fmt: skip
    return events


async def until(pilot: Pilot[Any], condition: Callable[[], Any], timeout: float = 60.0) -> None:
    """Waits for ``condition``; the timeout only keeps a broken test from hanging."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the dashboard")
        await pilot.pause(0.02)
