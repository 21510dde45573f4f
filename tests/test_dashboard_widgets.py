"""The dashboard's widgets and their words: the half-block screen checked pixel by pixel, the
panels, the plots, the frame pacing on a fake clock, a plan opened up, the planner trace, the
prompt editor's highlighting."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

import numpy as np
import pytest
from dashboard_recording import llm_record
from rich.segment import Segment
from textual.app import App, ComposeResult

from pokedreamer.agent.events import StepEvent
from pokedreamer.dashboard.pacing import MIN_FPS, FramePacer
from pokedreamer.dashboard.screens.editor import slot_highlights
from pokedreamer.dashboard.widgets.game_screen import (
    GREY_COLOURS,
    HALF_BLOCK,
    GameScreen,
    cell_codes,
    row_strips,
)
from pokedreamer.dashboard.widgets.planner_panel import MAX_TRACE_ROWS, PlanTrace, plan_detail_text
from pokedreamer.dashboard.widgets.plots import RewardBins, sparkline
from pokedreamer.dashboard.widgets.state_panel import dialog_text, state_text
from pokedreamer.planner.service import PlanRecord

# --- the half-block screen ----------------------------------------------------------------------


def cells_of(strip: Any) -> list[tuple[str, str]]:
    """A strip as (foreground, background) colour per cell."""
    cells = []
    for segment in strip:
        assert isinstance(segment, Segment) and set(segment.text) == {HALF_BLOCK}
        colours = (segment.style.color.name, segment.style.bgcolor.name)
        cells += [colours] * len(segment.text)
    return cells


def test_each_cell_shows_its_upper_pixel_over_its_lower_one() -> None:
    frame = np.random.default_rng(0).integers(0, 4, (144, 160), dtype=np.uint8)
    frame[:, 40:90] = 2  # long runs too, which become one segment each
    strips = row_strips(cell_codes(frame, half=False))
    assert len(strips) == 72
    for row in (0, 1, 35, 71):
        cells = cells_of(strips[row])
        assert len(cells) == 160 and strips[row].cell_length == 160
        for col in (0, 1, 39, 40, 89, 159):
            upper, lower = frame[2 * row, col], frame[2 * row + 1, col]
            assert cells[col] == (GREY_COLOURS[upper], GREY_COLOURS[lower])
    assert len(list(strips[10])) < 160 - 49  # the run 40..89 is one segment


def test_half_size_takes_the_darkest_pixel_of_each_2x2_block() -> None:
    frame = np.zeros((144, 160), dtype=np.uint8)
    frame[5, 7] = 3  # one dark pixel: block row 2 (upper half of cell row 1), block column 3
    frame[142, 0] = 1
    codes = cell_codes(frame, half=True)
    assert codes.shape == (36, 80)
    assert codes[1, 3] == 3 << 2 | 0
    assert codes[35, 0] == 0 << 2 | 1
    assert np.count_nonzero(codes) == 2
    cells = cells_of(row_strips(codes)[1])
    assert len(cells) == 80 and cells[3] == (GREY_COLOURS[3], GREY_COLOURS[0])
    # A stray value from a model is clipped to the darkest shade instead of failing.
    assert cell_codes(np.full((144, 160), 7, np.uint8), half=True).max() == 15


def test_game_screen_repaints_only_the_rows_that_changed() -> None:
    async def scenario() -> None:
        screen = GameScreen(id="screen")

        class One(App[None]):
            def compose(self) -> ComposeResult:
                yield screen

        async with One().run_test(size=(100, 40)) as pilot:
            frame = np.zeros((144, 160), np.uint8)
            screen.show(frame)
            await pilot.pause()
            before = list(screen._strips)
            frame = frame.copy()
            frame[20:24, :] = 3  # pixel rows 20-23: half-size cell row 5 only
            screen.show(frame)
            after = screen._strips
            changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a is not b]
            assert changed == [5]
            assert screen.render_line(5).cell_length == 80
            assert cells_of(screen.render_line(5))[0] == (GREY_COLOURS[3], GREY_COLOURS[3])
            updates = screen.updates
            screen.show(frame.copy())  # the same picture: nothing to draw
            assert screen.updates == updates

    asyncio.run(scenario())


# --- panels, pacing, a plan opened up -----------------------------------------------------------


def test_panels_read_the_game_state(step_events: list[StepEvent]) -> None:
    house, guide = step_events[0].state, step_events[20].state
    text = state_text(house).plain
    assert "REDS_HOUSE_1F" in text and "x 3  y 5  facing down" in text
    assert "party: none" in text and "badges ○○○○○○○○ 0/8" in text and "¥3,000" in text
    assert dialog_text(house).plain == "no text on screen"
    assert dialog_text(guide).plain == "GUIDE: Hello, RED!\nGoing out alone?"
    starter = step_events[-1].state
    assert "SQUIRTLE" in state_text(starter).plain and "█" in state_text(starter).plain
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8) == "▁▂▃▄▅▆▇█"
    assert sparkline([1.0] * 3, 10) == "▄▄▄" and sparkline([], 5) == ""
    bins = RewardBins(seconds=0.0)
    bins.add(1.0, {"explore": 0.5})
    bins.add(0.0, {"explore": 0.0})
    assert bins.close() == {"reward": 0.5, "explore": 0.25}
    assert bins.close() is None  # no steps since: no bin


def test_frames_are_drawn_further_apart_while_the_ui_is_over_its_budget() -> None:
    clock = {"wall": 100.0, "thread": 0.0, "process": 0.0}
    pacer = FramePacer(
        30, 0.1, clock=lambda: clock["wall"], thread_clock=lambda: clock["thread"],
        process_clock=lambda: clock["process"],
    )  # fmt: skip
    assert pacer.frame_interval == pytest.approx(1 / 30)
    assert pacer.due(100.0) and pacer.first_frame_at is None
    pacer.drew(100.0)
    assert pacer.first_frame_at == (100.0, 0.0, 1)
    assert not pacer.due(100.02) and pacer.due(100.0 + 0.9 / 30)  # 0.9: timer jitter

    def second(thread_cpu: float) -> None:
        clock["wall"] += 1.0
        clock["thread"] += thread_cpu
        pacer.pace(clock["wall"])

    second(0.4)  # four times the budget: the interval doubles, at most
    assert pacer.cpu_share == pytest.approx(0.4)
    assert pacer.frame_interval == pytest.approx(2 / 30)
    for _ in range(5):
        second(0.4)
    assert pacer.frame_interval == pytest.approx(1 / MIN_FPS)  # never fewer than MIN_FPS
    second(0.15)  # over the budget by half: 1.5 times further apart, but still MIN_FPS
    assert pacer.frame_interval == pytest.approx(1 / MIN_FPS)
    for _ in range(5):
        second(0.01)  # well under it: back up, to fps at most
    assert pacer.frame_interval == pytest.approx(1 / 30)
    pacer.pace(clock["wall"] + 0.5)  # less than a second since the last: nothing changes
    assert pacer.cpu_share == pytest.approx(0.01)
    for at in (101.0, 101.1, 101.2):
        pacer.drew(at)
    pacer.count_frames(102.0)
    assert pacer.frames_per_s == pytest.approx(4 / 2.0)
    unbudgeted = FramePacer(30, None, clock=lambda: 0.0, thread_clock=lambda: clock["thread"])
    clock["thread"] += 1.0
    unbudgeted.pace(1.0)
    assert unbudgeted.cpu_share == pytest.approx(1.0)
    assert unbudgeted.frame_interval == pytest.approx(1 / 30)


def test_plan_detail_shows_the_prompt_and_the_answer() -> None:
    text = plan_detail_text(asdict(llm_record(22))).plain
    for expected in (
        "step 22 · new dialog · fallback", "latency 1.25 s", "321 in, 12 out",
        "error: the answer was not a Plan", "goal: Walk to ROUTE_1", "1. go to ROUTE_1",
        "── system ──", "You plan for a POKéMON player.", "── user ──", '{"goal": 42}',
    ):  # fmt: skip
        assert expected in text
    heuristic = plan_detail_text({"step": 0, "trigger": "start", "source": "heuristic"}).plain
    assert "none: the heuristic planner answers without one" in heuristic


# --- template slots, the planner trace ------------------------------------------------------------


def test_slots_are_highlighted_known_and_unknown() -> None:
    line = "Now: {{trigger}} and {{nope}} — é {{ goal }}"
    spans = slot_highlights(line)
    data = line.encode("utf-8")
    assert [(data[a:b].decode(), kind) for a, b, kind in spans] == [
        ("{{trigger}}", "slot"), ("{{nope}}", "slot.unknown"), ("{{ goal }}", "slot"),
    ]  # fmt: skip


def test_plan_trace_keeps_the_newest_entries_and_the_one_being_read() -> None:
    """The live trace as a log: the newest last, at most MAX_TRACE_ROWS, the cursor following the
    newest unless moved up, and then kept on the same entry as more arrive."""
    opened: list[dict[str, Any]] = []

    class TraceApp(App[None]):
        def compose(self) -> ComposeResult:
            yield PlanTrace(id="trace")

        def on_plan_trace_selected(self, event: PlanTrace.Selected) -> None:
            opened.append(event.record)

    def record(step: int) -> dict[str, Any]:
        return asdict(PlanRecord(step, "new dialog", "heuristic", {"goal": f"goal {step}"}))

    async def scenario() -> None:
        app = TraceApp()
        async with app.run_test(size=(100, 12)) as pilot:
            trace = app.query_one(PlanTrace)
            assert trace.record_at_cursor() is None
            trace.add_records([record(i) for i in range(5)])
            await pilot.pause()
            assert trace.shown == 5 and trace.record_at_cursor()["step"] == 4  # following
            lines = [trace.render_line(y).text for y in range(trace.size.height)]
            assert lines[0].split() == ["step", "trigger", "source", "latency", "goal"]
            assert lines[1].startswith("0 ") and "goal 4" in lines[5] and lines[6].strip() == ""
            trace.focus()
            await pilot.press("up", "up")
            assert trace.record_at_cursor()["step"] == 2
            trace.add_records([record(i) for i in range(5, MAX_TRACE_ROWS + 3)])  # 3 dropped
            await pilot.pause()
            assert trace.shown == MAX_TRACE_ROWS and trace.records[0]["step"] == 3
            # Entry 2 was dropped: the cursor rests on the oldest kept.
            assert trace.record_at_cursor()["step"] == 3
            await pilot.press("down")
            trace.add_records([record(MAX_TRACE_ROWS + 3)])
            assert trace.record_at_cursor()["step"] == 4  # the entry being read stays
            await pilot.press("end", "enter")
            assert opened and opened[-1]["step"] == MAX_TRACE_ROWS + 3
            # The last visible line is the newest, the one under the cursor.
            assert f"goal {MAX_TRACE_ROWS + 3}" in trace.render_line(trace.size.height - 1).text

    asyncio.run(scenario())
