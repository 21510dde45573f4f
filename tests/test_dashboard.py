"""The Textual dashboard, driven headless with the Pilot: the half-block screen, every control, the
prompt editor, the replay viewer on a recorded cartridge run, and the layout at 200×60."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cartridge_driver import MOM_TO_TOWN, TO_MOM, TOWN_TO_GUIDE
from rich.segment import Segment
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widgets import DataTable, Footer, Static

from pokedreamer.agent.episodes import EpisodeReader, EpisodeRecorder, open_episode
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
    SetRealtime,
    SingleStep,
    StatusEvent,
    StepEvent,
    TakeControl,
    UsePrompts,
)
from pokedreamer.agent.protocol import LoopControl
from pokedreamer.config import Settings
from pokedreamer.dashboard.app import Dashboard
from pokedreamer.dashboard.episode_trace import EpisodeTrace
from pokedreamer.dashboard.pacing import MIN_FPS, FramePacer
from pokedreamer.dashboard.replay import ReplayApp
from pokedreamer.dashboard.screens.editor import PromptEditor, TemplateArea, slot_highlights
from pokedreamer.dashboard.screens.plan_detail import PlanDetail
from pokedreamer.dashboard.widgets.game_screen import (
    GREY_COLOURS,
    HALF_BLOCK,
    GameScreen,
    cell_codes,
    row_strips,
)
from pokedreamer.dashboard.widgets.planner_panel import (
    MAX_TRACE_ROWS,
    PlanTrace,
    describe_subgoals,
    plan_detail_text,
)
from pokedreamer.dashboard.widgets.plots import RewardBins, sparkline
from pokedreamer.dashboard.widgets.state_panel import dialog_text, state_text
from pokedreamer.dashboard.widgets.timeline import Timeline
from pokedreamer.planner.prompts import PromptLibrary, sample_fields
from pokedreamer.planner.service import PlanRecord
from pokedreamer.rundir import RunDir

SIZE = (200, 60)

# --- a recorded cartridge run -------------------------------------------------------------------

# Out of the house, across the town to the GUIDE, and through his dialog: three subgoals reached
# or replaced, plans at the start and at each subgoal done, and text boxes.
ROUTE = (*TO_MOM[:-1], *MOM_TO_TOWN, *TOWN_TO_GUIDE, "a", "a", "a", "a", "a", "a")
LLM_STEP = 22


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


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """One episode of the fixture cartridge, stepped by the real env with the heuristic planner
    beside it the way the agent loop runs it, and written by the episode recorder."""
    from pokedreamer.env.gym_env import PokemonRedEnv
    from pokedreamer.planner.heuristic import HeuristicPlanner
    from pokedreamer.planner.service import PlannerService
    from pokedreamer.planner.subgoals import describe

    settings = Settings()
    run = RunDir(tmp_path_factory.mktemp("runs") / "demo")
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


@pytest.fixture(scope="module")
def step_events(recorded_run: RunDir) -> list[StepEvent]:
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
        self.human = self.realtime = False
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
            realtime=self.realtime, training=self.training, run_dir=str(self.run_dir.path),
            message=message, finished=finished, buttons=self.buttons,
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
        elif isinstance(command, SetRealtime):
            self.realtime = command.realtime
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


async def until(pilot: Pilot[Any], condition: Callable[[], Any], timeout: float = 60.0) -> None:
    """Waits for ``condition``; the timeout only keeps a broken test from hanging."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the dashboard")
        await pilot.pause(0.02)


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


# --- panels -------------------------------------------------------------------------------------


def test_panels_read_the_game_state(step_events: list[StepEvent]) -> None:
    house, guide = step_events[0].state, step_events[19].state
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
            await press("p", SetPlanner("none"), "planner none")  # on past the refused one
            await press("p", SetPlanner("heuristic"), "planner heuristic")
            await press("s", SetRealtime(True), "real time")
            await press("s", SetRealtime(False), "uncapped")
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


def test_slots_are_highlighted_known_and_unknown() -> None:
    line = "Now: {{trigger}} and {{nope}} — é {{ goal }}"
    spans = slot_highlights(line)
    data = line.encode("utf-8")
    assert [(data[a:b].decode(), kind) for a, b, kind in spans] == [
        ("{{trigger}}", "slot"), ("{{nope}}", "slot.unknown"), ("{{ goal }}", "slot"),
    ]  # fmt: skip


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


# --- the replay viewer --------------------------------------------------------------------------


def test_episode_trace_places_plans_and_subgoal_spans(recorded_run: RunDir) -> None:
    trace = EpisodeTrace(open_episode(recorded_run))
    assert len(trace) == len(ROUTE) + 1
    assert trace.plan_steps[0] == 0 and LLM_STEP in trace.plan_steps
    spans = [(s.subgoal, s.start, s.end, s.outcome) for s in trace.spans]
    assert spans[0] == ("go to PALLET_TOWN", 0, 11, "done")  # out of the house at step 11
    assert spans[1][:2] == ("go to PALLET_TOWN (6, 2)", 11) and spans[1][3] == "done"
    assert spans[-1][3] == "still active"
    assert trace.steps[11].state.map_name == "PALLET_TOWN"
    assert trace.span_index_at(10) == 0 and trace.span_index_at(11) == 1
    assert trace.next_plan_step(0) == 11 and trace.previous_plan_step(11) == 0
    assert trace.plan_index_at(10) == 0 and trace.next_plan_step(len(trace) - 1) is None


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
            assert "active: go to PALLET_TOWN (since step 0, done at step 11)" in status()
            await pilot.press("right", "right")
            assert screen.step == 2 and np.array_equal(frame.frame, reader.frame(2))
            terms = str(screen.query_one("#terms", Static).render())
            assert f"pressed {ROUTE[1]}" in terms and "return so far" in terms
            await pilot.press("left")
            assert screen.step == 1
            await pilot.press("shift+right")
            assert screen.step == 11
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
            assert screen.step == 11 and "plan 2/" in status() and "(subgoal done" in status()
            assert "active: go to PALLET_TOWN (6, 2) (since step 11" in status()
            await pilot.press("left_square_bracket")
            assert screen.step == 0
            # Go to a step by number.
            await pilot.press("g")
            await until(pilot, lambda: app.screen is not screen)
            await pilot.press("1", "9", "enter")
            await until(pilot, lambda: app.screen is screen)
            assert screen.step == 19
            assert "GUIDE: Hello, RED!" in str(screen.query_one("#dialog", Static).render())
            spans = str(screen.query_one("#spans", Static).render())
            assert "▶ ■ go to ROUTE_1" in spans
            assert "go to PALLET_TOWN: steps 0–10, done at step 11" in spans
            # The timeline: a click jumps; the plan table selects a plan's step.
            timeline = screen.query_one("#timeline", Timeline)
            await pilot.click("#timeline", offset=(1, 1))
            assert screen.step == timeline.column_step(0)
            table = screen.query_one("#plans", DataTable)
            table.focus()
            table.move_cursor(row=1)
            await pilot.press("enter")
            assert screen.step == 11
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
