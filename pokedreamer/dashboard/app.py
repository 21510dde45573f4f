"""The live dashboard: watch the agent think, steer it, play yourself, edit the planner's prompts.

``Dashboard`` is a thin App over one loop, seen only through ``LoopControl``: it runs the loop's
``run`` in a thread of its own, drains the loop's bus on a timer into the live screen
(``screens/live.py``), and stops safely. In ``pokedreamer run`` the loop is a ``LoopProxy``
whose ``run`` receives the real loop's events from the loop's process (``bridge.py``); in tests
it is a fake. Nothing here waits on the loop, and the loop never waits on the dashboard: a slow
terminal sees fewer frames (the bus drops the oldest events) while the agent keeps its pace.
Commands go the other way through ``loop.send``, which the loop applies between steps.

Quitting is safe: ``q`` asks the loop to stop, the loop writes its checkpoint and flushes its logs,
and only then does the dashboard exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from textual.app import App
from textual.message import Message

from pokedreamer.agent.events import (
    MetricsEvent,
    PlanEvent,
    Quit,
    StatusEvent,
    StepEvent,
    TakeControl,
)
from pokedreamer.agent.protocol import LoopControl
from pokedreamer.dashboard.screens.editor import PromptEditor
from pokedreamer.dashboard.screens.live import LiveScreen
from pokedreamer.dashboard.steering import Steering, error_text

FPS = 30
"""Screen updates a second the dashboard aims for; frames arriving faster are dropped."""
UI_CPU_BUDGET = 0.4
"""Share of one core the UI's thread may take, drawing included, before it draws fewer frames
(down to pacing.MIN_FPS). In a process of its own it holds no GIL the loop needs; the bound keeps
a slow terminal from taking a core from env processes."""
SUBSCRIPTION_SIZE = 1024
"""Events held between two drains: ~0.8 s of steps at 1,200 steps/s, so that reward terms are
summed from every step; frames beyond the newest are never drawn anyway."""


class LoopStopped(Message):
    """Posted from the loop's thread when ``loop.run`` has returned or raised."""


class Dashboard(App[Any]):
    """The live dashboard over one loop.

    ``human``: a person plays from the start (``pokedreamer play``). ``steps``: passed to
    ``loop.run``. ``fps`` and ``cpu_budget``: see FPS and UI_CPU_BUDGET (None: no budget).
    ``imagined=False`` leaves the imagined screen empty and, as the loop decodes imagined frames
    only for those who subscribe to them, spares it its decodes. ``exits_with_loop`` is asked
    when the loop stops: True exits at once instead of waiting for ``q``."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "pokedreamer"
    ENABLE_COMMAND_PALETTE = False

    def __init__(
        self,
        loop: LoopControl,
        *,
        human: bool = False,
        steps: int | None = None,
        fps: float = FPS,
        cpu_budget: float | None = UI_CPU_BUDGET,
        imagined: bool = True,
        exits_with_loop: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self.loop = loop
        self.steps = steps
        self.fps = fps
        self.want_human = human
        self.exits_with_loop = exits_with_loop
        kinds = None if imagined else (StepEvent, PlanEvent, MetricsEvent, StatusEvent)
        self.subscription = loop.bus.subscribe(SUBSCRIPTION_SIZE, kinds)
        self.loop_done = threading.Event()
        self.steering = Steering(loop, self.loop_done)
        self.loop_result: Any = None
        self.loop_error: BaseException | None = None
        self.board = LiveScreen(
            self.steering, self.subscription, fps=fps, cpu_budget=cpu_budget, imagined=imagined
        )

    def get_default_screen(self) -> LiveScreen:
        return self.board

    def on_mount(self) -> None:
        # A thread of our own rather than a Textual thread worker: those run in asyncio's
        # default executor, which the app waits for on the way out, so a UI that exits by an
        # error would hang until the loop ended.
        threading.Thread(target=self._play, name="agent loop").start()
        self.set_interval(1 / self.fps, self.board.drain, name="drain")
        if self.want_human != self.steering.human:
            self.board.send(TakeControl(self.want_human))
            self.board.set_human(self.want_human)
        self.board.show_status()

    def _play(self) -> None:
        try:
            self.loop_result = self.loop.run(self.steps)
        except BaseException as exc:  # shown in the status bar
            self.loop_error = exc
        finally:
            self.loop_done.set()
            self.post_message(LoopStopped())  # thread-safe; False once the app has closed

    def on_loop_stopped(self, message: LoopStopped) -> None:
        self.board.drain()  # its last events: the checkpoint it wrote
        if self.steering.quitting or (self.exits_with_loop is not None and self.exits_with_loop()):
            self.exit(self.loop_result)
        elif self.loop_error is not None:
            line = error_text(self.loop_error)
            self.board.say(f"the agent loop stopped: {line}; q quits", error=True)
        else:
            self.board.say("the agent loop finished; q quits")

    async def action_quit(self) -> None:
        """Stops the loop (it writes a checkpoint and flushes its logs), then exits."""
        if self.loop_done.is_set():
            self.exit(self.loop_result)
            return
        if not self.steering.quitting:
            self.steering.quitting = True
            self.loop.send(Quit())
        self.board.say("quitting: the agent loop is writing its checkpoint…")

    def on_prompt_editor_saved(self, message: PromptEditor.Saved) -> None:
        refusal = self.steering.use_prompts(message.folder)
        if refusal is not None:
            self.board.say(refusal, error=True)
