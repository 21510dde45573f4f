"""The live dashboard's layout at the terminal sizes people have: at 80×24, 120×40 and 200×60 the
live screen, the imagined one (at 80×24, the key that flips to it), the current subgoal, the
dialog and the status bar are whole on screen, uncut by any parent, and no widget on screen is
zero wide or high; a resize re-arranges the panels and they go on showing what they showed. The
fake loop of tests/test_dashboard.py replays the recorded cartridge run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from clirun import cli
from dashboard_recording import until
from test_dashboard import FakeLoop
from textual.app import App
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static, TabbedContent

from pokedreamer.agent.episodes import open_episode
from pokedreamer.agent.events import StepEvent
from pokedreamer.config import Settings
from pokedreamer.dashboard.app import Dashboard
from pokedreamer.dashboard.layout import Tier, one_screen, tier_for
from pokedreamer.dashboard.replay import ReplayApp
from pokedreamer.dashboard.screens.live import LiveScreen
from pokedreamer.dashboard.screens.replay import ReplayScreen
from pokedreamer.dashboard.widgets.current_subgoal import CurrentSubgoal
from pokedreamer.dashboard.widgets.game_screen import SCALES, GameScreen, scaled_codes
from pokedreamer.dashboard.widgets.planner_panel import PlanTrace
from pokedreamer.dashboard.widgets.plots import Plots
from pokedreamer.dashboard.widgets.state_panel import DialogPanel, StatePanel
from pokedreamer.env.text import LINE_WIDTH
from pokedreamer.rundir import RunDir

SIZES = {
    (80, 24): Tier("small", 4),
    (112, 42): Tier("small", 2),  # narrow and tall: the one screen at half size
    (120, 40): Tier("medium", 4),
    (200, 60): Tier("large", 2),
}


@asynccontextmanager
async def live_at(
    events: list[StepEvent], size: tuple[int, int]
) -> AsyncIterator[tuple[Dashboard, Pilot[Any]]]:
    """The dashboard over a paused fake loop in a terminal of ``size``, its panels drawn."""
    loop = FakeLoop(events, paused=True)
    app = Dashboard(loop)
    async with app.run_test(size=size) as pilot:
        try:
            board = app.board
            await until(pilot, lambda: board.state_panel.state is not None)
            await until(pilot, lambda: board.trace.shown >= 1)
            yield app, pilot
        finally:
            loop._quit = True  # never leave the loop's thread behind a failed test
            await until(pilot, lambda: app.loop_done.is_set())


def on_screen(widget: Widget) -> bool:
    """Displayed, and so is every container it is in."""
    return all(node.display for node in widget.ancestors_with_self if isinstance(node, Widget))


def assert_whole(widget: Widget) -> None:
    """On screen, not empty, and not cut: neither by the terminal's edge nor by a parent."""
    assert on_screen(widget), f"{widget} is hidden"
    geometry = widget.screen.find_widget(widget)
    region = geometry.region
    assert region.width > 0 and region.height > 0, f"{widget} is {region.size}"
    assert geometry.visible_region == region, f"{widget} at {region} is cut to {geometry.clip}"
    assert widget.screen.region.contains_region(region)
    for parent in widget.ancestors:
        if isinstance(parent, Widget) and not isinstance(parent, Screen):
            assert parent.region.contains_region(region), f"{widget} spills out of {parent}"


def assert_nothing_empty(board: Screen[Any]) -> None:
    """No widget on screen is zero columns wide or zero rows high."""
    for widget in board.query("*"):
        if on_screen(widget):
            size = widget.region.size
            assert size.width > 0 and size.height > 0, f"{widget} is {size}"


async def settled(pilot: Pilot[Any], board: Screen[Any], seconds: float = 10.0) -> None:
    """Gives a re-arranged screen time to lay out: on a loaded machine one pause can find the
    footer's keys still zero wide. Returns once nothing on screen is empty, or after
    ``seconds``, leaving the asserts that follow to say what is wrong."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await pilot.pause(0.02)
        if all(
            w.region.width > 0 and w.region.height > 0 for w in board.query("*") if on_screen(w)
        ):
            return


def assert_shows_what_matters(board: LiveScreen, size: tuple[int, int]) -> None:
    width, height = size
    tier = SIZES[size]
    assert board.tier == tier and board.has_class(f"-{tier.name}")
    cells = SCALES[tier.scale]
    for screen in (board.live, board.imagined) if not tier.one_screen else (board.live,):
        assert_whole(screen)
        assert screen.region.size == cells and screen.render_line(0).cell_length == cells.width
    # The dialog: both of the text box's lines, whole.
    assert_whole(board.dialog)
    assert board.dialog.content_size.height >= 2 and board.dialog.content_size.width >= LINE_WIDTH
    # The current subgoal: on its own line where one screen is, in the goal panel elsewhere.
    step = board.last_step
    assert step is not None and step.subgoals
    current = board.subgoal if tier.one_screen else board.goal
    assert_whole(current)
    assert current.content_size.height >= 2  # the subgoal, then its progress
    assert f"▶ {step.subgoals[0]}" in str(current.render())
    # The status bar: the whole width, above the footer.
    assert_whole(board.status_bar)
    assert board.status_bar.region.width == width and board.status_bar.region.y == height - 2
    assert_nothing_empty(board)


@pytest.mark.parametrize("size", list(SIZES), ids=lambda s: f"{s[0]}x{s[1]}")
def test_what_matters_is_whole_at_each_size(
    step_events: list[StepEvent], size: tuple[int, int]
) -> None:
    async def scenario() -> None:
        async with live_at(step_events, size) as (app, pilot):
            board = app.board
            await until(pilot, lambda: board.live.frame is not None)
            await settled(pilot, board)  # the footer's keys can still be zero wide here
            assert_shows_what_matters(board, size)
            if board.tier.one_screen:
                assert not on_screen(board.imagined)
                tabs = board.query_one("#tabs", TabbedContent)
                # The panels that do not fit beside the screen, each whole in its tab.
                for tab, panel in (
                    ("state", board.state_panel),
                    ("goal", board.goal),
                    ("trace", board.trace),
                    ("plots", board.plots),
                ):
                    tabs.active = f"tab-{tab}"
                    await settled(pilot, board)
                    assert_whole(panel)
                    assert_nothing_empty(board)
            else:
                for panel in (board.state_panel, board.goal, board.trace, board.plots):
                    assert_whole(panel)
                with pytest.raises(NoMatches):
                    board.query_one("#tabs")

    asyncio.run(scenario())


def test_i_flips_between_the_live_and_the_imagined_screen_where_one_fits(
    step_events: list[StepEvent],
) -> None:
    def footer_keys(board: LiveScreen) -> set[str]:
        bindings = board.active_bindings
        return {key for key, b in bindings.items() if b.binding.show and b.enabled}

    async def scenario() -> None:
        async with live_at(step_events, (80, 24)) as (app, pilot):
            board = app.board
            live_box, imagined_box = board.query_one("#live-box"), board.query_one("#imagined-box")
            assert "i" in footer_keys(board)
            assert live_box.border_title == "live · i: imagined"
            await until(pilot, lambda: board.imagined.frame is not None)
            await pilot.press("i")
            assert_whole(board.imagined)
            assert not on_screen(board.live)
            assert board.imagined.region.size == SCALES[4]
            assert imagined_box.border_title == "imagined (world model) · i: live"
            assert board.imagined.render_line(0).cell_length == 40
            assert_shows_what_matters_but_the_screen(board)
            await pilot.press("i")
            assert_whole(board.live)
            assert not on_screen(board.imagined)
            # Where both screens are in sight, i is neither shown nor does anything.
            await pilot.resize_terminal(120, 40)
            await until(pilot, lambda: board.tier.name == "medium")
            await pilot.pause()
            assert "i" not in footer_keys(board)
            await pilot.press("i")
            assert_whole(board.live)
            assert_whole(board.imagined)

    asyncio.run(scenario())


def assert_shows_what_matters_but_the_screen(board: LiveScreen) -> None:
    for widget in (board.dialog, board.subgoal, board.status_bar):
        assert_whole(widget)
    assert_nothing_empty(board)


def test_a_resize_re_arranges_and_the_panels_go_on(step_events: list[StepEvent]) -> None:
    async def scenario() -> None:
        async with live_at(step_events, (200, 60)) as (app, pilot):
            board = app.board
            await until(pilot, lambda: board.imagined.frame is not None)
            await until(pilot, lambda: "steps_per_s" in board.plots.series)
            frame, trace = board.live.frame, board.trace
            plans, curves, updates = trace.shown, dict(board.plots.series), board.live.updates
            small_before = False
            for size in ((80, 24), (120, 40), (80, 24), (200, 60)):
                await pilot.resize_terminal(*size)
                await until(pilot, lambda size=size: board.tier == SIZES[size])
                await pilot.pause()
                assert_shows_what_matters(board, size)
                if board.tier.one_screen:  # the tab open last time is open again
                    tabs = board.query_one("#tabs", TabbedContent)
                    assert tabs.active == ("tab-plots" if small_before else "tab-state")
                    tabs.active, small_before = "tab-plots", True
                    await pilot.pause()
                # New widgets where the arrangement changed, showing what the old ones showed.
                assert board.live.frame is frame and board.live.updates >= updates
                assert board.trace.shown >= plans and board.plots.series.keys() >= curves.keys()
            assert board.trace is not trace  # rebuilt on the way

    asyncio.run(scenario())


def test_the_trace_opens_a_plan_from_its_tab(step_events: list[StepEvent]) -> None:
    async def scenario() -> None:
        async with live_at(step_events, (80, 24)) as (app, pilot):
            board = app.board
            board.query_one("#tabs", TabbedContent).active = "tab-trace"
            await pilot.pause()
            board.trace.focus()
            board.trace.move_cursor(row=0)
            await pilot.press("enter")
            await until(pilot, lambda: app.screen is not board)
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is board)
            assert board.query_one("#tabs", TabbedContent).active == "tab-trace"

    asyncio.run(scenario())


def test_the_replay_viewer_at_each_size(recorded_run: RunDir) -> None:
    async def scenario() -> None:
        app = ReplayApp(open_episode(recorded_run), "demo")
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.screen
            assert isinstance(screen, ReplayScreen)
            screen.go(18)
            for size, cells, tabbed in (
                ((80, 24), SCALES[4], True),
                ((120, 40), SCALES[4], False),
                ((200, 60), SCALES[2], False),
                ((80, 24), SCALES[4], True),
            ):
                await pilot.resize_terminal(*size)
                await until(pilot, lambda t=tabbed: screen.tabbed == t)
                await pilot.pause()
                frame = screen.query_one("#frame")
                assert_whole(frame)
                assert frame.region.size == cells
                for selector in ("#dialog", "#status"):
                    assert_whole(screen.query_one(selector))
                assert screen.step == 18  # the step shown stays across re-arrangements
                panels = ("#state", "#terms", "#timeline", "#plans", "#spans")
                if tabbed:
                    tabs = screen.query_one("#tabs", TabbedContent)
                    for name, selector in zip(
                        ("state", "terms", "trace", "plans", "spans"), panels, strict=True
                    ):
                        tabs.active = f"tab-{name}"
                        await pilot.pause()
                        assert_whole(screen.query_one(selector))
                        assert_nothing_empty(screen)
                else:
                    for selector in panels:
                        assert_whole(screen.query_one(selector))
                    assert_nothing_empty(screen)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("width", "height", "tier"),
    [
        (80, 24, Tier("small", 4)),
        (119, 41, Tier("small", 4)),
        (119, 42, Tier("small", 2)),  # one screen at half size fits beside the tabs
        (111, 60, Tier("small", 4)),
        (120, 31, Tier("small", 4)),
        (120, 32, Tier("medium", 4)),
        (193, 100, Tier("medium", 4)),
        (194, 49, Tier("medium", 4)),
        (194, 50, Tier("large", 2)),
        (353, 100, Tier("large", 2)),
        (354, 85, Tier("large", 2)),
        (354, 86, Tier("large", 1)),
    ],
)
def test_the_tier_is_the_largest_that_fits(width: int, height: int, tier: Tier) -> None:
    assert tier_for(width, height) == tier


def test_quarter_size_takes_the_darkest_shade_two_pixels_of_a_block_share() -> None:
    frame = np.zeros((144, 160), dtype=np.uint8)
    frame[0, 0] = 3  # a lone dark pixel (the floors' dither): the block stays light
    frame[4, 4] = frame[5, 6] = 2  # two of a shade: block row 1, column 1 takes it
    frame[8, 8], frame[9, 9] = 3, 1  # a dark pixel and a light one: the shade both reach, 1
    frame[140:144, 156] = 3  # a line down the last block
    codes = scaled_codes(frame, 4)
    assert codes.shape == (18, 40)
    assert codes[0, 0] == 0  # cell row 0: block rows 0 (upper) and 1 (lower)
    assert codes[0, 1] == 0 << 2 | 2
    assert codes[1, 2] == 1 << 2 | 0  # block row 2, the upper half of cell row 1
    assert codes[17, 39] == 0 << 2 | 3
    assert np.count_nonzero(codes) == 3
    with pytest.raises(ValueError, match="scale"):
        scaled_codes(frame, 3)


# --- the bench at several sizes -----------------------------------------------------------------


def test_bench_measures_at_each_size(step_events: list[StepEvent]) -> None:
    from pokedreamer.bench.dashboard import bench_dashboard

    result = bench_dashboard(
        Settings(), seconds=0.5, round_seconds=0.5, rounds=1,
        loop_factory=lambda: FakeLoop(step_events), sizes=((80, 24), (120, 40)),
    )  # fmt: skip
    assert list(result) == ["machine", "by_size"] and list(result["by_size"]) == ["80x24", "120x40"]
    small, medium = result["by_size"].values()
    assert (small["terminal"], small["tier"], small["screen_size"]) == ("80x24", "small", "quarter")
    assert (medium["tier"], medium["screen_size"]) == ("medium", "quarter")
    for figures in (small, medium):
        assert figures["updates_per_s"] > 0 and figures["loop_steps_per_s_watched"] > 0
        assert "ui_frames_drawn_per_s_while_watching" in figures  # the UI's process, that size


def test_bench_refuses_a_bad_size_in_one_line() -> None:
    result = cli("bench", "dashboard", "--size", "80x24,wide")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --size 'wide': give columns x rows, such as 80x24"
    ]


def test_the_small_arrangement_lets_an_app_close_while_it_mounts() -> None:
    """An app that closes at once (a loop that ended, a UI told to close) may take the tabs out
    before their strip has mounted: it must not then go looking for the tab it was told to open.
    Closing after each number of turns of the event loop meets every stage of the mounting."""

    class Closing(App[None]):
        def __init__(self, turns: int) -> None:
            super().__init__()
            self.turns = turns

        async def on_mount(self) -> None:
            panels = (StatePanel(), DialogPanel(), Static(), PlanTrace(), Plots())
            self.mount(
                one_screen(GameScreen(), GameScreen(), CurrentSubgoal(), *panels, showing="live")
            )
            for _ in range(self.turns):
                await asyncio.sleep(0)
            self.exit()

    async def scenario() -> None:
        for turns in range(12):
            app = Closing(turns)
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
            assert app.return_code == 0, f"closing after {turns} turns failed"

    asyncio.run(scenario())
