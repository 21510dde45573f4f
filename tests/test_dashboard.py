"""The live dashboard, driven headless with the Pilot over a fake loop that replays a recorded
cartridge run: the layout at 200×60 and at full size, every control, the prompt editor, a failing
loop, and the bench run with tiny settings."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from dashboard_recording import SIZE, llm_record, until
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widgets import Footer, Static

from pokedreamer.agent.events import (
    EventBus,
    HumanAction,
    ImaginedEvent,
    MetricsEvent,
    Pause,
    PlanEvent,
    Quit,
    Replan,
    Resume,
    SaveCheckpoint,
    SetPlanner,
    SetSpeed,
    SetSubgoal,
    SingleStep,
    StatusEvent,
    StepEvent,
    TakeControl,
    UsePrompts,
)
from pokedreamer.agent.pace import speed_text
from pokedreamer.agent.protocol import LoopControl
from pokedreamer.config import Settings
from pokedreamer.dashboard.app import Dashboard
from pokedreamer.dashboard.screens.editor import PromptEditor, TemplateArea
from pokedreamer.dashboard.screens.plan_detail import PlanDetail
from pokedreamer.dashboard.widgets.game_screen import cell_codes
from pokedreamer.dashboard.widgets.state_panel import state_text
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.prompts import PromptLibrary, sample_fields
from pokedreamer.planner.service import HUMAN_TRIGGER, PlanRecord, read_subgoal
from pokedreamer.planner.subgoals import describe
from pokedreamer.rundir import RunDir

# --- a stand-in for the agent loop --------------------------------------------------------------


class FakeLoop:
    """A LoopControl (bus, settings, prompts, status, send, run), replaying recorded steps from
    its thread and answering commands the way the agent loop does: a StatusEvent after each, a
    step at a time while paused, a step per button while a person plays, and a prompt library
    read from the folder UsePrompts names.

    Tests start it paused where they can: Pilot waits for the process to go idle after each key,
    which a running loop never lets it do."""

    def __init__(
        self, events: list[StepEvent], paused: bool = False, prompts: PromptLibrary | None = None
    ) -> None:
        self.bus = EventBus()
        self.settings = Settings()
        self.buttons = tuple(self.settings.env.buttons)
        self.run_dir = RunDir(Path("runs/fake"))
        self._prompts = prompts
        self.events = events
        self.commands: list[Any] = []
        self.pressed: list[str] = []
        self.paused = paused
        self.human = False
        self.speed = 0
        self.demo_steps = 0
        self.planner_kind = "heuristic"
        self.training = True
        self.steps = 0
        self.checkpoints = 0
        self.finished = False
        self._queue: queue.Queue[Any] = queue.Queue()
        self._single = 0
        self._quit = False

    @property
    def prompts(self) -> PromptLibrary | None:
        return self._prompts

    def send(self, command: Any) -> None:
        if isinstance(command, HumanAction) and command.button not in self.buttons:
            raise ValueError(f"unknown button {command.button!r}")
        self.commands.append(command)
        self._queue.put(command)

    def status(self, message: str = "", finished: bool = False) -> StatusEvent:
        return StatusEvent(
            step=self.steps, paused=self.paused, human=self.human, planner=self.planner_kind,
            speed=self.speed, training=self.training, run_dir=str(self.run_dir.path),
            message=message, finished=finished, buttons=self.buttons, demo_steps=self.demo_steps,
        )  # fmt: skip

    def _apply(self, command: Any) -> None:
        message = ""
        if isinstance(command, Pause):
            self.paused = True
        elif isinstance(command, Resume):
            self.paused = False
        elif isinstance(command, SingleStep):
            self._single += command.steps
        elif isinstance(command, Replan):
            message = "replanning"
            record = PlanRecord(self.steps, "asked by a person", "heuristic", {"goal": "asked"})
            self.bus.publish(PlanEvent(0, 1, asdict(record)))
        elif isinstance(command, SetPlanner):
            if command.kind == "llm":  # as the loop does without an endpoint or a key
                message = "planner stays heuristic: the LLM planner needs planner.base_url"
            else:
                self.planner_kind = command.kind
                message = f"planner: {command.kind}"
        elif isinstance(command, SetSpeed):
            self.speed = command.speed
            message = f"speed {speed_text(command.speed)}"
        elif isinstance(command, SetSubgoal):  # as the loop does with a checked subgoal
            subgoal, message = None, "your subgoal is cleared: the planner plans again"
            if command.subgoal is not None:
                subgoal, message = read_subgoal(command.subgoal, GameFacts.fixture())
            if subgoal is not None:
                plan = {"goal": "a person's subgoal", "subgoals": [subgoal.model_dump()]}
                record = PlanRecord(self.steps, HUMAN_TRIGGER, "human", plan)
                self.bus.publish(PlanEvent(0, 1, asdict(record)))
                message = f"your subgoal: {describe(subgoal)}"
        elif isinstance(command, SaveCheckpoint):
            self.checkpoints += 1
            message = f"checkpoint saved: runs/fake/checkpoints/agent-{self.steps}"
        elif isinstance(command, TakeControl):
            self.human = command.human
            message = "you have control" if self.human else "the agent has control"
        elif isinstance(command, HumanAction):
            self.pressed.append(command.button)
            self._single += 1
            return
        elif isinstance(command, UsePrompts):
            if self._prompts is not None:
                self._prompts.prompts_dir = Path(command.folder)
            else:
                self._prompts = PromptLibrary(command.folder)
        elif isinstance(command, Quit):
            self._quit = True
        self.bus.publish(self.status(message))

    def _step(self) -> None:
        event = self.events[self.steps % len(self.events)]
        if self.human:  # a person's steps, which the loop records as demonstrations
            event = replace(event, step=self.steps + 1, human=True)  # counted as the loop does
            self.demo_steps += 1
        self.bus.publish(event)
        self.bus.publish(ImaginedEvent(self.steps, 0, self.events[0].frame))
        if self.steps % 10 == 0:
            metrics = {"steps_per_s": 400.0, "wm/loss": 1 / (1 + self.steps)}
            self.bus.publish(MetricsEvent(self.steps, metrics))
        self.steps += 1

    def run(self, steps: int | None = None) -> dict[str, Any]:
        self.bus.publish(self.status("started"))
        self.bus.publish(PlanEvent(0, 1, asdict(llm_record(0))))
        self._step()  # the reset observation, published even when paused
        target = self.steps + steps if steps else None
        deadline = time.monotonic() + 240  # a failed test never leaves this thread running
        while not self._quit and (target is None or self.steps < target):
            if time.monotonic() > deadline:
                break
            try:
                while True:
                    self._apply(self._queue.get_nowait())
            except queue.Empty:
                pass
            if self._quit:
                break
            if (self.paused or self.human) and not self._single:
                time.sleep(0.005)
                continue
            self._single = max(self._single - 1, 0)
            self._step()
            time.sleep(0.004)
        self.bus.publish(self.status("stopped; checkpoint runs/fake/checkpoints/agent", True))
        self.finished = True
        return {"steps": self.steps}


@asynccontextmanager
async def dashboard(loop: FakeLoop, **kwargs: Any) -> AsyncIterator[tuple[Dashboard, Pilot[Any]]]:
    app = Dashboard(loop, **kwargs)
    async with app.run_test(size=SIZE) as pilot:
        try:
            await until(pilot, lambda: app.board.last_step is not None)
            yield app, pilot
        finally:
            loop._quit = True  # never leave the loop's thread behind a failed test
            await until(pilot, lambda: app.loop_done.is_set())


def status_line(app: Dashboard) -> str:
    return app.board.status_text().plain


def test_the_fake_loop_is_a_loop_control(step_events: list[StepEvent]) -> None:
    loop: LoopControl = FakeLoop(step_events)
    assert loop.status().buttons == tuple(Settings().env.buttons) and loop.prompts is None


# --- the live dashboard -------------------------------------------------------------------------


def test_layout_at_200x60(step_events: list[StepEvent]) -> None:
    async def scenario() -> None:
        loop = FakeLoop(step_events)
        async with dashboard(loop) as (app, pilot):
            board = app.board

            def region(selector: str) -> Region:
                return board.query_one(selector).region

            live, imagined = region("#live"), region("#imagined")
            assert (live.width, live.height) == (80, 36)  # half size: two screens fit
            assert (imagined.width, imagined.height) == (80, 36)
            assert live.y == imagined.y == 1 and imagined.x == live.right + 2
            side = region("#side")
            assert side.x == imagined.right + 1 and side.right == 200 and side.height == 38
            assert region("#state").y == 0 and region("#dialog").bottom == 38
            bottom = [region(s) for s in ("#goal", "#trace", "#plots")]
            assert all(r.y == 38 and r.bottom == 58 for r in bottom)
            assert bottom[0].x == 0 and bottom[-1].right == 200
            assert all(a.right == b.x for a, b in zip(bottom, bottom[1:], strict=False))
            assert region("#status") == Region(0, 58, 200, 1)
            assert board.query_one(Footer).region == Region(0, 59, 200, 1)
            titles = {w.id: w.border_title for w in board.query("*") if w.border_title}
            assert titles["live-box"] == "live" and titles["trace"].startswith("planner trace")

    asyncio.run(scenario())


def test_big_terminal_gets_full_size_screens(step_events: list[StepEvent]) -> None:
    async def scenario() -> None:
        loop = FakeLoop(step_events)
        app = Dashboard(loop)
        async with app.run_test(size=(360, 90)) as pilot:
            live = app.board.live
            await until(pilot, lambda: app.board.last_step is not None and live.region.width == 160)
            assert (live.region.width, live.region.height) == (160, 72)
            assert live.render_line(71).cell_length == 160
            await app.action_quit()
            await until(pilot, lambda: app.loop_done.is_set())

    asyncio.run(scenario())


def test_the_screen_panels_and_trace_follow_the_loop(step_events: list[StepEvent]) -> None:
    async def scenario() -> None:
        loop = FakeLoop(step_events)
        async with dashboard(loop) as (app, pilot):
            board = app.board
            await pilot.press("space")
            await until(pilot, lambda: app.steering.paused and not app.subscription._events)
            shown = app.board.last_step
            assert shown is not None
            # The newest frame is drawn, and the panels catch up within PANELS_EVERY_S.
            await until(pilot, lambda: board.state_panel.state is shown.state)
            assert np.array_equal(board.live._codes, cell_codes(shown.frame, half=True))
            assert np.array_equal(board.imagined._codes, cell_codes(step_events[0].frame, True))
            assert shown.state.map_name in state_text(board.state_panel.state).plain
            goal = str(board.goal.render())
            assert shown.goal in goal and f"▶ {shown.subgoals[0]}" in goal
            assert board.trace.shown >= 1  # the loop's first PlanEvent
            assert "steps_per_s" in board.plots.series and "wm/loss" in board.plots.series
            assert "400 steps/s" in status_line(app) and "runs/fake" in status_line(app)
            # Open the planner trace's entry: its full prompt and response.
            board.trace.focus()
            board.trace.move_cursor(row=0)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, PlanDetail))
            detail = str(app.screen.query_one("#plan-detail-text", Static).render())
            assert "You plan for a POKéMON player." in detail and '{"goal": 42}' in detail
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is board)

    asyncio.run(scenario())


def test_every_control_sends_its_command_and_the_ui_follows(step_events: list[StepEvent]) -> None:
    async def scenario() -> None:
        loop = FakeLoop(step_events, paused=True)
        async with dashboard(loop) as (app, pilot):

            async def press(key: str, command: Any, shows: str) -> None:
                count = len(loop.commands)
                await pilot.press(key)
                assert loop.commands[count:] == [command], key
                await until(pilot, lambda: shows in status_line(app))

            def footer_keys() -> set[str]:
                bindings = app.board.active_bindings
                return {key for key, b in bindings.items() if b.binding.show and b.enabled}

            await press("space", Resume(), "▶ running")
            await until(pilot, lambda: loop.steps > 3)
            await press("n", Pause(), "⏸ paused")  # while running, n stops first
            await press("space", Resume(), "▶ running")
            await press("space", Pause(), "⏸ paused")
            steps = loop.steps
            await press("n", SingleStep(1), "one step")
            await until(pilot, lambda: loop.steps == steps + 1)
            await press("r", Replan(), "replanning")
            await until(pilot, lambda: app.board.trace.shown >= 2)
            await press("p", SetPlanner("llm"), "planner stays heuristic")
            assert app.board.status_bar.has_class("-error") and app.steering.planner == "heuristic"
            await press("p", SetPlanner("local"), "planner local")  # on past the refused one
            await press("p", SetPlanner("none"), "planner none")
            await press("p", SetPlanner("heuristic"), "planner heuristic")
            await press("s", SetSpeed(4), "speed 4×")
            await press("s", SetSpeed(0), "speed uncapped")
            await press("c", SaveCheckpoint(), "checkpoint saved: runs/fake/checkpoints/agent-")
            assert loop.checkpoints == 1
            # Game keys do nothing until a person takes control, nor show in the footer.
            assert not {"z", "x", "enter", "backspace"} & footer_keys()
            count = len(loop.commands)
            await pilot.press("up", "z")
            assert loop.commands[count:] == []
            count = len(loop.commands)
            await pilot.press("h")  # while paused: taking control also resumes
            assert loop.commands[count:] == [TakeControl(True), Resume()]
            await until(
                pilot, lambda: "you play" in status_line(app) and "running" in status_line(app)
            )
            assert {"z", "x", "enter", "backspace"} <= footer_keys()
            await pilot.press("up", "down", "left", "right", "z", "x", "enter", "backspace")
            await until(pilot, lambda: len(loop.pressed) == 8)
            assert loop.pressed == ["up", "down", "left", "right", "a", "b", "start", "select"]
            await press("h", TakeControl(False), "agent plays")
            assert not {"z", "x", "enter", "backspace"} & footer_keys()
            # Quit: the loop is told, stops (writing its checkpoint), then the app exits.
            await pilot.press("q")
            assert loop.commands[-1] == Quit()
            await until(pilot, lambda: loop.finished and app.return_value is not None)
            assert app.return_value == {"steps": loop.steps}

    asyncio.run(scenario())


def test_play_starts_with_the_person_in_control(step_events: list[StepEvent]) -> None:
    async def scenario() -> None:
        loop = FakeLoop(step_events, paused=True)
        async with dashboard(loop, human=True) as (app, pilot):
            assert loop.commands[0] == TakeControl(True)
            await until(pilot, lambda: "you play" in status_line(app))
            await pilot.press("enter")
            await until(pilot, lambda: loop.pressed == ["start"])

    asyncio.run(scenario())


def test_the_state_panel_counts_the_runs_demonstration_steps(
    step_events: list[StepEvent],
) -> None:
    async def scenario() -> None:
        loop = FakeLoop(step_events, paused=True)
        loop.demo_steps = 7  # recorded earlier in this run
        async with dashboard(loop) as (app, pilot):
            board = app.board
            shown = lambda: str(board.state_panel.render())  # noqa: E731
            await until(pilot, lambda: "demonstrations 7 steps" in shown())
            await pilot.press("h")  # take control: each press is a recorded step
            await until(pilot, lambda: "you play" in status_line(app))
            for _ in range(3):
                await pilot.press("up")
            await until(pilot, lambda: "demonstrations 10 steps" in shown())
            await pilot.resize_terminal(80, 24)  # new panels, the same count
            await until(pilot, lambda: board.tier.one_screen)
            await pilot.resize_terminal(*SIZE)
            await until(pilot, lambda: not board.tier.one_screen)
            await until(pilot, lambda: "demonstrations 10 steps" in shown())

    asyncio.run(scenario())


def test_a_failing_loop_is_one_line_in_the_status_bar(step_events: list[StepEvent]) -> None:
    class Broken(FakeLoop):
        def run(self, steps: int | None = None) -> dict[str, Any]:
            self.bus.publish(self.events[0])
            raise RuntimeError("the emulator fell over\nand a traceback")

    async def scenario() -> None:
        loop = Broken(step_events)
        app = Dashboard(loop)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "fell over" in status_line(app))
            line = status_line(app)
            assert "the agent loop stopped: RuntimeError: the emulator fell over" in line
            assert "traceback" not in status_line(app)
            assert app.board.status_bar.has_class("-error")
            await pilot.press("space")  # commands to a stopped loop are refused, not sent
            assert loop.commands == []
            await pilot.press("q")
            await until(pilot, lambda: not app.is_running)
        assert isinstance(app.loop_error, RuntimeError)

    asyncio.run(scenario())


# --- the prompt editor --------------------------------------------------------------------------


def test_prompt_editor_validates_saves_and_the_next_plan_uses_it(
    step_events: list[StepEvent], isolated: Path
) -> None:
    async def scenario() -> None:
        # An LLM planner's library, built-in templates only.
        loop = FakeLoop(step_events, paused=True, prompts=PromptLibrary())
        async with dashboard(loop) as (app, pilot):
            await pilot.press("e")
            await until(pilot, lambda: isinstance(app.screen, PromptEditor))
            editor = app.screen
            assert isinstance(editor, PromptEditor)
            area = editor.query_one("#template", TemplateArea)
            status = editor.query_one("#status", Static)
            assert editor.name_open == "user" and "{{state_summary}}" in area.text
            assert "user renders" in str(status.render())
            preview = editor.query_one("#preview").text  # type: ignore[attr-defined]
            assert "Location: " in preview and "{{" not in preview  # the game now, filled in
            assert area._highlights  # the slots are highlighted
            # A bad template: the error is shown and nothing is saved.
            area.load_text("Where: {{state_summary}}\nWhat: {{nope}}")
            await pilot.press("ctrl+r")
            assert "✗ user.txt:2: unknown field {{nope}}" in str(status.render())
            assert status.has_class("-error")
            await pilot.press("ctrl+s")
            assert not (isolated / "prompts").exists()
            # A good one: rendered against the state, saved, and what the planner renders next.
            area.load_text("EDITED {{trigger}}\n{{state_summary}}")
            await pilot.press("ctrl+r")
            assert "✓ user renders" in str(status.render())
            await pilot.press("ctrl+s")
            saved = isolated / "prompts" / "user.txt"
            assert saved.read_text() == "EDITED {{trigger}}\n{{state_summary}}"
            assert f"✓ saved {Path('prompts') / 'user.txt'}" in str(status.render())
            await until(pilot, lambda: UsePrompts("prompts") in loop.commands)  # read it there
            await until(pilot, lambda: loop.prompts.prompts_dir == Path("prompts"))
            rendered = loop.prompts.render("user", **sample_fields(step_events[0].state, "stuck"))
            assert rendered.startswith("EDITED stuck\nLocation: REDS_HOUSE_1F")
            assert loop.prompts.template("system").builtin  # the others stay built-in
            # Switching templates keeps unsaved edits.
            area.insert("draft ")
            editor.open("system")
            assert editor.name_open == "system" and "draft" not in area.text
            editor.open("user")
            assert area.text.startswith("draft EDITED")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is app.board)

    asyncio.run(scenario())


def test_editor_without_a_planner_library_makes_its_own(
    step_events: list[StepEvent], isolated: Path
) -> None:
    async def scenario() -> None:
        loop = FakeLoop(step_events, paused=True)
        async with dashboard(loop) as (app, pilot):
            await pilot.press("e")
            await until(pilot, lambda: isinstance(app.screen, PromptEditor))
            await pilot.press("ctrl+s")
            assert (isolated / "prompts" / "user.txt").is_file()
            await until(pilot, lambda: loop.prompts is not None)
            assert loop.prompts is not None and loop.prompts.prompts_dir == Path("prompts")

    asyncio.run(scenario())


# --- the bench ----------------------------------------------------------------------------------


def test_bench_reports_updates_and_the_loop_cost(step_events: list[StepEvent]) -> None:
    from pokedreamer.bench.dashboard import bench_dashboard

    result = bench_dashboard(
        Settings(), seconds=0.5, round_seconds=0.5, rounds=1,
        loop_factory=lambda: FakeLoop(step_events), toggle_seconds=2.0, window_seconds=0.5,
    )  # fmt: skip
    assert result["terminal"] == "200x60" and result["screen_size"] == "half"
    assert result["updates_per_s"] > 0 and result["ui_cpu_ms_per_update"] > 0
    assert result["loop"] == "custom" and result["rounds"] == 1
    assert result["loop_steps_per_s_alone"] > 0 and result["loop_steps_per_s_watched"] > 0
    assert result["loop_steps_per_s_watched_without_imagined"] > 0
    assert {"loop_cost", "loop_cost_without_imagined", "ui_cpu_share_while_watching"} <= set(result)
    # The toggled figure: one loop, watched and unwatched windows in turn, paired.
    for key in ("toggled", "toggled_without_imagined"):
        toggled = result[key]
        assert toggled["watched_steps_per_s"] and toggled["unwatched_steps_per_s"]
        assert toggled["pairs"] >= 1 and result[f"loop_cost_{key}"] == toggled["cost_median"]
