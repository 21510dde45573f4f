"""The replay viewer on a recorded cartridge run: the subgoal spans, scrubbing, jumps, go to step,
plans, the active subgoal and how it ended, the timeline, the layout at 200×60."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from dashboard_recording import LLM_STEP, ROUTE, SIZE, until
from textual.geometry import Region
from textual.widgets import DataTable, Static

from pokedreamer.agent.episodes import EpisodeReader, open_episode
from pokedreamer.dashboard.episode_trace import EpisodeTrace
from pokedreamer.dashboard.replay import ReplayApp
from pokedreamer.dashboard.screens.plan_detail import PlanDetail
from pokedreamer.dashboard.widgets.game_screen import GameScreen
from pokedreamer.dashboard.widgets.timeline import Timeline
from pokedreamer.rundir import RunDir

# --- the replay viewer --------------------------------------------------------------------------


def test_episode_trace_places_plans_and_subgoal_spans(recorded_run: RunDir) -> None:
    trace = EpisodeTrace(open_episode(recorded_run))
    assert len(trace) == len(ROUTE) + 1
    assert trace.plan_steps[0] == 0 and LLM_STEP in trace.plan_steps
    spans = [(s.subgoal, s.start, s.end, s.outcome) for s in trace.spans]
    assert spans[0] == ("go to PALLET_TOWN", 0, 12, "done")  # out of the house at step 12
    assert spans[1][:2] == ("go to PALLET_TOWN (6, 2)", 12) and spans[1][3] == "done"
    assert spans[-1][3] == "still active"
    assert trace.steps[12].state.map_name == "PALLET_TOWN"
    assert trace.span_index_at(11) == 0 and trace.span_index_at(12) == 1
    assert trace.next_plan_step(0) == 12 and trace.previous_plan_step(12) == 0
    assert trace.plan_index_at(11) == 0 and trace.next_plan_step(len(trace) - 1) is None


def test_replay_viewer_scrubs_jumps_to_plans_and_shows_the_active_subgoal(
    recorded_run: RunDir,
) -> None:
    async def scenario() -> None:
        reader = open_episode(recorded_run)
        app = ReplayApp(reader, "demo")
        last = len(reader) - 1
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            frame = screen.query_one("#frame", GameScreen)

            def status() -> str:
                return str(screen.query_one("#status", Static).render())

            assert screen.step == 0 and np.array_equal(frame.frame, reader.frame(0))
            assert "active: go to PALLET_TOWN (since step 0, done at step 12)" in status()
            await pilot.press("right", "right")
            assert screen.step == 2 and np.array_equal(frame.frame, reader.frame(2))
            terms = str(screen.query_one("#terms", Static).render())
            assert f"pressed {ROUTE[1]}" in terms and "return so far" in terms
            await pilot.press("left")
            assert screen.step == 1
            await pilot.press("shift+right")  # ten steps on: on the house's mat
            assert screen.step == 11
            assert "REDS" in str(screen.query_one("#state", Static).render())
            await pilot.press("right")
            assert "REDS" not in str(screen.query_one("#state", Static).render())
            await pilot.press("shift+left", "shift+left")
            assert screen.step == 0
            await pilot.press("pagedown")
            assert screen.step == last  # clamped to the episode
            await pilot.press("pageup", "home")
            assert screen.step == 0
            await pilot.press("end")
            assert screen.step == last and "still active at the end" in status()
            # Plans: ] and [ jump between the steps where a plan was adopted.
            await pilot.press("home", "right_square_bracket")
            assert screen.step == 12 and "plan 2/" in status() and "(subgoal done" in status()
            assert "active: go to PALLET_TOWN (6, 2) (since step 12" in status()
            await pilot.press("left_square_bracket")
            assert screen.step == 0
            # Go to a step by number.
            await pilot.press("g")
            await until(pilot, lambda: app.screen is not screen)
            await pilot.press("2", "0", "enter")
            await until(pilot, lambda: app.screen is screen)
            assert screen.step == 20
            assert "GUIDE: Hello, RED!" in str(screen.query_one("#dialog", Static).render())
            spans = str(screen.query_one("#spans", Static).render())
            assert "▶ ■ go to ROUTE_1" in spans
            assert "go to PALLET_TOWN: steps 0–11, done at step 12" in spans
            # The timeline: a click jumps; the plan table selects a plan's step.
            timeline = screen.query_one("#timeline", Timeline)
            await pilot.click("#timeline", offset=(1, 1))
            assert screen.step == timeline.column_step(0)
            table = screen.query_one("#plans", DataTable)
            table.focus()
            table.move_cursor(row=1)
            await pilot.press("enter")
            assert screen.step == 12
            # The plan in effect, opened: the LLM's prompt and raw answer.
            screen.go(LLM_STEP)
            await pilot.press("i")
            await until(pilot, lambda: isinstance(app.screen, PlanDetail))
            detail = str(app.screen.query_one("#plan-detail-text", Static).render())
            assert '{"goal": 42}' in detail and "the answer was not a Plan" in detail
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen)
            await pilot.press("q")
            await until(pilot, lambda: not app.is_running)

    asyncio.run(scenario())


def test_replay_of_a_missing_run_or_episode_is_one_line(recorded_run: RunDir) -> None:
    from pokedreamer.dashboard.replay import run_replay
    from pokedreamer.errors import UserError

    with pytest.raises(UserError, match="run directory not found"):
        run_replay(recorded_run.path.parent / "nope")
    with pytest.raises(UserError, match="episode 9 not found .* numbered 1 to 1"):
        run_replay(recorded_run.path, 9)


def test_replay_layout_at_200x60(recorded_run: RunDir) -> None:
    async def scenario() -> None:
        app = ReplayApp(EpisodeReader(recorded_run.episodes / "000001"), "demo")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            regions = {
                w.id: w.region for w in screen.query("*") if w.id and not w.id.startswith("_")
            }
            assert (regions["frame"].width, regions["frame"].height) == (80, 36)
            assert regions["side"].x == regions["frame-box"].right
            assert regions["timeline"] == Region(0, 38, 200, 5)
            assert regions["plans"].y == regions["spans"].y == 43
            assert regions["status"] == Region(0, 58, 200, 1)
            title = screen.query_one("#frame-box").border_title
            assert title == f"demo episode 1 ({len(ROUTE) + 1} steps)"
            await pilot.press("q")

    asyncio.run(scenario())
