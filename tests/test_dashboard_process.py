"""The dashboard in a process of its own (dashboard/process.py, bridge.py, __main__.py): the real
agent loop on the cartridge on one side of a socket pair, the dashboard on the other, driven with
Pilot; and the child process ``pokedreamer run`` starts, headless here."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from pokedreamer.agent.events import EventBus, Quit, StatusEvent, UsePrompts
from pokedreamer.agent.loop import AgentLoop
from pokedreamer.agent.protocol import LoopControl
from pokedreamer.config import Settings, load_settings
from pokedreamer.dashboard.app import Dashboard
from pokedreamer.dashboard.bridge import Hello, LoopBridge, LoopProxy, receive, send
from pokedreamer.dashboard.process import DashboardProcess
from pokedreamer.dashboard.screens.editor import PromptEditor
from pokedreamer.planner.prompts import PromptLibrary
from pokedreamer.rundir import RunDir

TINY = {"world_model.preset": "tiny", "agent.train_ratio": 0.0}
SIZE = (200, 60)


def tiny_loop(name: str, **extra: Any) -> AgentLoop:
    settings = load_settings(None, {**TINY, **extra})
    return AgentLoop(settings, RunDir.create(settings, name), train=False)


def wait_for(condition: Any, timeout: float = 120.0) -> None:
    """Waits for ``condition``; the timeout only keeps a broken test from hanging."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_real_loop_is_steered_through_the_socket(isolated: Path) -> None:
    """Pilot presses keys in a dashboard whose loop is a LoopProxy; the commands cross the
    socket to the real loop, its events come back, the editor's save reaches its planner, and
    q stops it with its checkpoint written."""
    loop = tiny_loop("steered")
    loop.paused = True
    ours, theirs = socket.socketpair()
    loop_end, ui_end = Connection(os.dup(ours.fileno())), Connection(os.dup(theirs.fileno()))
    ours.close()
    theirs.close()
    bridge = LoopBridge(loop, loop_end, imagined=True)
    send(loop_end, Hello.of(loop, want_human=False, imagined=True))
    bridge.start()
    outcome: dict[str, Any] = {}

    def play() -> None:
        try:
            outcome["result"] = loop.run(None)
        finally:
            bridge.finish(None, close_ui=False)

    thread = threading.Thread(target=play)
    thread.start()
    proxy = LoopProxy(ui_end, receive(ui_end))
    status = proxy.status()
    assert status.paused and status.planner == "heuristic" and "runs" in status.run_dir
    assert proxy.settings.planner.api_key is None

    async def scenario() -> None:
        app = Dashboard(proxy)
        async with app.run_test(size=SIZE) as pilot:

            async def until(condition: Any) -> None:
                deadline = time.monotonic() + 120  # only keeps a broken test from hanging
                while not condition():
                    assert time.monotonic() < deadline, "timed out waiting for the dashboard"
                    await pilot.pause(0.02)

            board = app.board
            await until(lambda: board.last_step is not None)
            assert app.steering.paused and "⏸ paused" in board.status_text().plain
            await pilot.press("n")  # one step, through the socket
            await until(lambda: loop.status().step >= 1 and board.last_step.step >= 1)  # type: ignore[union-attr]
            await pilot.press("e")
            await until(lambda: isinstance(app.screen, PromptEditor))
            await pilot.press("ctrl+s")  # saved to ./prompts, and the loop's planner reads it
            await until(lambda: loop.prompts is not None)
            assert loop.prompts.prompts_dir == Path("prompts")
            assert (isolated / "prompts" / "user.txt").is_file()
            status = app.screen.query_one("#status", Static)
            assert "saved" in str(status.render())
            await pilot.press("escape")
            await pilot.press("q")
            await until(lambda: not app.is_running)

    asyncio.run(scenario())
    ui_end.close()  # as the UI's process does on its way out
    thread.join(30)
    bridge.join()
    assert not thread.is_alive()
    assert outcome["result"].checkpoint is None  # acting only: nothing learnt to save
    assert loop.status().step >= 1


def test_the_loop_applies_use_prompts_from_any_ui(isolated: Path) -> None:
    (isolated / "mine").mkdir()
    (isolated / "mine" / "user.txt").write_text("MINE {{state_summary}}\n", encoding="utf-8")
    loop = tiny_loop("prompts")
    status = loop.bus.subscribe()
    loop.commands.apply(UsePrompts("nowhere"))  # no planner library yet, and no such folder
    assert loop.prompts is None
    assert "prompts not used: prompts folder not found" in status.drain()[-1].message
    loop.commands.apply(UsePrompts("mine"))
    assert loop.prompts is not None and loop.prompts.prompts_dir == Path("mine")
    assert loop.prompts.template("user").text.startswith("MINE")
    library = loop.prompts
    loop.commands.apply(UsePrompts("elsewhere"))  # a later save moves the library the planner holds
    assert loop.prompts is library and library.prompts_dir == Path("elsewhere")


def test_the_ui_process_closes_when_the_loop_is_done_and_reports(isolated: Path) -> None:
    loop = tiny_loop("child")
    process = DashboardProcess(loop, headless=SIZE, close_when_done=True)

    def quit_once_the_ui_has_drawn() -> None:
        # The UI reports what it has drawn about once a second: quit after a report of frames.
        def drawn() -> bool:
            stats = process.bridge.ui_stats if process.bridge is not None else None
            return stats is not None and stats.frames_per_s > 0

        try:
            wait_for(drawn)
        finally:
            loop.send(Quit())

    quitter = threading.Thread(target=quit_once_the_ui_has_drawn)
    quitter.start()
    try:
        result = process.run(None)
    finally:
        quitter.join()
    assert process.ui_exit_code == 0
    assert result.steps > 0
    assert process.ui_stats is not None and process.ui_stats.frames_per_s > 0


def test_a_ui_that_dies_stops_the_loop_safely(isolated: Path) -> None:
    loop = tiny_loop("orphan", **{"agent.checkpoint_every": 0})
    process = DashboardProcess(loop, headless=SIZE)

    def kill_the_ui() -> None:
        wait_for(lambda: process.process is not None and loop.status().step > 20)
        assert process.process is not None
        process.process.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_the_ui)
    killer.start()
    result = process.run(None)  # returns: the loop was told to quit, as by q
    killer.join()
    assert process.ui_exit_code == -signal.SIGKILL
    assert result.steps > 20
    episodes = list((Path(loop.status().run_dir) / "episodes").iterdir())
    assert episodes and (episodes[0] / "steps.jsonl").stat().st_size > 0


class FailingLoop:
    """A loop that fails at once, as a real one does on a bad checkpoint mid-run."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.settings = Settings()

    @property
    def prompts(self) -> PromptLibrary | None:
        return None

    def status(self, message: str = "", finished: bool = False) -> StatusEvent:
        return StatusEvent(0, False, False, "heuristic", False, False, "", message, finished)

    def send(self, command: Any) -> None:
        pass

    def run(self, steps: int | None = None) -> None:
        raise RuntimeError("the world model's weights went missing")


def test_a_failing_loop_is_raised_again_after_the_ui_closes(isolated: Path) -> None:
    loop: LoopControl = FailingLoop()
    process = DashboardProcess(loop, headless=SIZE, close_when_done=True)
    with pytest.raises(RuntimeError, match="went missing"):
        process.run(None)
    assert process.ui_exit_code == 0


@contextlib.contextmanager
def silent_bridge() -> Iterator[tuple[EventBus, LoopBridge]]:
    """A bridge on a loop that is only a bus, its socket's far end never read."""

    class Silent:
        bus = EventBus()

    ours, theirs = socket.socketpair()
    with ours, theirs:
        bridge = LoopBridge(Silent(), Connection(os.dup(ours.fileno())), imagined=True)  # type: ignore[arg-type]
        try:
            yield Silent.bus, bridge
        finally:
            bridge.conn.close()


def test_the_bridge_sends_the_newest_screen_and_every_reward() -> None:
    from pokedreamer.agent.events import ImaginedEvent, RewardSample, StepEvent
    from pokedreamer.bench.dashboard import cartridge_events

    steps = cartridge_events(4)
    with silent_bridge() as (bus, bridge):
        for event in steps:
            bus.publish(event)
        bus.publish(dataclasses.replace(steps[0], env=1))  # another env's: not drawn
        bus.publish(ImaginedEvent(3, 0, steps[0].frame))
        bus.publish(ImaginedEvent(4, 0, steps[1].frame))
        batch = bridge.batch()
    assert [type(e) for e in batch] == [RewardSample] * 3 + [StepEvent, ImaginedEvent]
    assert [e.reward for e in batch[:3]] == [e.reward for e in steps[:3]]
    assert batch[3] is steps[3] and batch[4].step == 4


def test_a_detached_bridge_leaves_the_loop_unwatched_until_attached_again() -> None:
    from pokedreamer.agent.events import ImaginedEvent, StepEvent
    from pokedreamer.bench.dashboard import cartridge_events

    steps = cartridge_events(3)
    with silent_bridge() as (bus, bridge):
        assert bus.wants(StepEvent) and bus.wants(ImaginedEvent)
        bridge.detach()
        # As with no dashboard: the loop builds no step events and decodes no imagined frames.
        assert not bus.wants(StepEvent) and not bus.wants(ImaginedEvent)
        bus.publish(steps[0])
        assert bridge.batch() == []
        bridge.detach()  # twice is harmless
        bridge.attach()
        bus.publish(steps[1])
        batch = bridge.batch()
    assert batch == [steps[1]]


def test_toggled_cost_pairs_each_unwatched_window_with_its_neighbours() -> None:
    from pokedreamer.bench.dashboard import toggled_cost

    # Watched windows 90, 80, 90 around unwatched 100, 100: ratios .9, .8, .8, .9.
    result = toggled_cost([90.0, 80.0, 90.0], [100.0, 100.0])
    assert result["pairs"] == 4
    assert result["cost_median"] == pytest.approx(0.15)
    assert result["cost_mean"] == pytest.approx(0.15)
    assert toggled_cost([], [])["pairs"] == 0
