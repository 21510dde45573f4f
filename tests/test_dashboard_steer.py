"""Steering from the dashboard with the Pilot, over the fake loop of test_dashboard: the pace
keys and the status bar, and a person's subgoal typed in its input — checked there, refused
inline when it has a problem, sent as a command when it has none, and given back."""

from __future__ import annotations

import asyncio
import json

from dashboard_recording import until
from test_dashboard import FakeLoop, dashboard, status_line
from textual.widgets import Input, Select, Static

from pokedreamer.agent.events import SetSpeed, SetSubgoal, StepEvent
from pokedreamer.dashboard.screens.subgoal import SubgoalInput


def test_the_pace_keys_step_the_speed_and_the_status_bar_shows_it(
    step_events: list[StepEvent],
) -> None:
    async def scenario() -> None:
        loop = FakeLoop(step_events, paused=True)  # uncapped, as a loop no one paces
        async with dashboard(loop) as (app, pilot):
            assert "speed uncapped" in status_line(app)

            async def press(key: str, speed: int, shows: str) -> None:
                count = len(loop.commands)
                await pilot.press(key)
                assert loop.commands[count:] == [SetSpeed(speed)], key
                await until(pilot, lambda: shows in status_line(app) and loop.speed == speed)

            await pilot.press("plus")  # uncapped is as fast as it goes: nothing is sent
            assert loop.commands == [] and "as far as it goes" in status_line(app)
            await press("minus", 16, "speed 16×")
            await press("minus", 8, "speed 8×")
            await press("minus", 4, "speed 4×")
            await press("equals_sign", 8, "speed 8×")  # = is + without shift
            await press("s", 0, "speed uncapped")
            await press("s", 8, "speed 8×")  # back to the pace last asked for
            await press("plus", 16, "speed 16×")
            await press("plus", 0, "speed uncapped")
            for _ in range(5):
                await pilot.press("minus")
            await until(pilot, lambda: loop.speed == 1)
            await pilot.press("minus")
            assert loop.speed == 1 and "speed 1×: as far as it goes" in status_line(app)

    asyncio.run(scenario())


def test_a_typed_subgoal_is_checked_sent_and_given_back(step_events: list[StepEvent]) -> None:
    async def scenario() -> None:
        loop = FakeLoop(step_events, paused=True)
        async with dashboard(loop) as (app, pilot):
            board = app.board
            await pilot.press("g")
            await until(pilot, lambda: isinstance(app.screen, SubgoalInput))
            screen = app.screen
            assert isinstance(screen, SubgoalInput)
            assert screen.kind == "go_to_map" and app.focused is screen.query_one("#subgoal-map")
            hint = screen.query_one("#subgoal-map", Input).placeholder
            assert "PALLET_TOWN" in hint and "PEWTER_GYM" in hint  # the cartridge's maps
            # A map the game does not have: shown in one line under the fields, not sent.
            await pilot.press(*"viridian city", "enter")
            problem = str(screen.query_one("#subgoal-problem", Static).render())
            assert problem.startswith("not sent: go_to_map: no map named 'VIRIDIAN_CITY'")
            assert "\n" not in problem and app.screen is screen
            assert not any(isinstance(c, SetSubgoal) for c in loop.commands)
            # Another kind, its fields typed in: x 40 lies outside ROUTE_1, then x 4 does not.
            screen.query_one("#subgoal-kind", Select).value = "go_to_tile"
            await until(pilot, lambda: app.focused is screen.query_one("#subgoal-map"))
            screen.query_one("#subgoal-map", Input).value = ""
            await pilot.press(*"route 1", "tab", *"40", "tab", "1", "enter")
            assert "lies outside ROUTE_1" in screen.problem and app.screen is screen
            x = screen.query_one("#subgoal-x", Input)
            x.value = ""
            x.focus()
            await pilot.press("4", "enter")
            await until(pilot, lambda: app.screen is board)
            sent = [c for c in loop.commands if isinstance(c, SetSubgoal)]
            assert len(sent) == 1 and json.loads(sent[0].subgoal or "") == {
                "kind": "go_to_tile", "map": "ROUTE_1", "x": 4, "y": 1,
            }  # fmt: skip
            await until(pilot, lambda: "your subgoal: go to ROUTE_1 (4, 1)" in status_line(app))
            await until(pilot, lambda: board.trace.shown >= 2)
            assert board.trace.records[-1]["source"] == "human"
            # Typed as JSON.
            await pilot.press("g")
            await until(pilot, lambda: isinstance(app.screen, SubgoalInput))
            screen = app.screen
            assert isinstance(screen, SubgoalInput)
            screen.query_one("#subgoal-kind", Select).value = "json"
            await until(pilot, lambda: app.focused is screen.query_one("#subgoal-json"))
            await pilot.press(*'{"kind": "win_battle"}', "enter")
            await until(pilot, lambda: app.screen is board)
            assert loop.commands[-1] == SetSubgoal('{"kind":"win_battle"}')
            # Given back to the planner; escape sends nothing.
            await pilot.press("g")
            await until(pilot, lambda: isinstance(app.screen, SubgoalInput))
            await pilot.press("ctrl+r")
            await until(pilot, lambda: app.screen is board)
            assert loop.commands[-1] == SetSubgoal(None)
            count = len(loop.commands)
            await pilot.press("g")
            await until(pilot, lambda: isinstance(app.screen, SubgoalInput))
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is board)
            assert len(loop.commands) == count

    asyncio.run(scenario())
