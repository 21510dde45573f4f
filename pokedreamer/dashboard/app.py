"""The live dashboard: watch the agent think, steer it, play yourself, edit the planner's prompts.

The agent loop runs in a thread of its own and publishes events; the dashboard subscribes to
them and drains its queue on a timer, drawing only the newest frame of each drain. Nothing here
waits on the loop, and the loop never waits on the dashboard: a slow terminal sees fewer frames
(the bus drops the oldest events) while the agent keeps its pace. Commands go the other way through
``loop.send``, which the loop applies between steps.

Quitting is safe: ``q`` asks the loop to stop, the loop writes its checkpoint and flushes its logs,
and only then does the dashboard exit.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from pokedreamer.agent.events import (
    HumanAction,
    ImaginedEvent,
    MetricsEvent,
    Pause,
    PlanEvent,
    Quit,
    Replan,
    Resume,
    RewardSample,
    SaveCheckpoint,
    SetPlanner,
    SetRealtime,
    SingleStep,
    StatusEvent,
    StepEvent,
    TakeControl,
)
from pokedreamer.dashboard.planner_panel import PlanDetail, PlanTrace, goal_text
from pokedreamer.dashboard.plots import Plots, RewardBins
from pokedreamer.dashboard.screen import FULL_CELLS, GameScreen
from pokedreamer.dashboard.state_panel import DialogPanel, StatePanel

if TYPE_CHECKING:
    from pokedreamer.agent.events import EventBus
    from pokedreamer.config import Settings
    from pokedreamer.planner.prompts import PromptLibrary

FPS = 30
"""Screen updates a second the dashboard aims for; frames arriving faster are dropped."""
UI_CPU_BUDGET = 0.06
"""Share of one core the dashboard's thread may take, drawing included, before it draws fewer
frames (down to MIN_FPS). The agent loop runs in the same interpreter, so every millisecond the UI
holds the GIL is one an emulator-bound loop may wait: this bounds what watching costs it."""
MIN_FPS = 4
SWITCH_INTERVAL_S = 0.0002
"""The interpreter's thread switch interval while the dashboard runs (Python's default: 5 ms).
The agent loop lets go of the GIL many times a step (each torch call, each pipe to an env), and
each time the UI thread may take it and keep it for a whole interval while drawing: the loop
then waits far longer than the UI's share of a core. A short interval makes the UI hand it back
sooner."""
SUBSCRIPTION_SIZE = 1024
"""Events held between two drains: ~0.8 s of steps at 1,200 steps/s, so that reward terms are
summed from every step; frames beyond the newest are never drawn anyway."""
PANELS_EVERY_S = 0.5
"""How often the text panels (state, dialog, goal, plots, status bar) may change. Textual redraws
the bounding box of everything that changed, so panels redrawn with every frame would make each
frame a redraw of the whole terminal; all together, twice a second, they cost ~1.5% of a core."""
MESSAGE_S = 10.0
"""How long a message stays in the status bar (an error stays until the next message)."""
PLANNERS = ("heuristic", "llm", "none")
GAME_KEYS: dict[str, str] = {
    "up": "up", "down": "down", "left": "left", "right": "right",
    "z": "a", "x": "b", "enter": "start", "backspace": "select",
}  # fmt: skip
"""Keyboard key -> Game Boy button, while a person is in control."""
_BUTTON_LABELS = {"a": "A", "b": "B", "start": "START", "select": "SELECT"}
# Both screens at full size, side by side, with the panels beside and under them.
FULL_SIZE_AT = (2 * (FULL_CELLS.width + 2) + 30, FULL_CELLS.height + 2 + 14)


class LoopStopped(Message):
    """Posted from the loop's thread when ``loop.run`` has returned or raised."""


class AgentLoopLike(Protocol):
    """What the dashboard needs of ``pokedreamer.agent.loop.AgentLoop``."""

    bus: EventBus
    settings: Settings
    buttons: list[str]

    def send(self, command: Any) -> None: ...

    def run(self, steps: int | None = None) -> Any: ...


class LoopFailed(Exception):
    """The agent loop in another process stopped with an error; the message is its one line."""


def one_line(error: BaseException) -> str:
    if isinstance(error, LoopFailed):
        return str(error)
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


class DashboardScreen(Screen[None]):
    """The live screen and the imagined one, the state, the plan, the trace, the plots."""

    BINDINGS = [
        Binding("space", "pause", "pause/resume"),
        Binding("n", "single_step", "step"),
        Binding("r", "replan", "replan"),
        Binding("p", "planner", "planner"),
        Binding("s", "speed", "speed"),
        Binding("c", "checkpoint", "checkpoint"),
        Binding("h", "control", "take control"),
        Binding("e", "prompts", "prompts"),
        Binding("q", "app.quit", "quit"),
        # Game buttons, live only while a person plays; priority, so that the arrows and enter
        # reach the game rather than the trace table.
        *(
            Binding(
                key,
                f"button('{button}')",
                _BUTTON_LABELS.get(button, button),
                show=button in _BUTTON_LABELS,
                priority=True,
            )
            for key, button in GAME_KEYS.items()
        ),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        # Made here, not looked up: the app draws into them many times a second.
        self.live = GameScreen("waiting for the game…", id="live")
        self.imagined = GameScreen("no imagined frames yet", id="imagined")
        self.state_panel = StatePanel(id="state")
        self.dialog = DialogPanel(id="dialog")
        self.goal = Static(goal_text("", (), 0.0), id="goal")
        self.trace = PlanTrace(id="trace")
        self.plots = Plots(id="plots")
        self.status_bar = Static(id="status")
        self._goal_key: tuple[str, tuple[str, ...], int] | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="top"):
            with Vertical(id="live-box", classes="screen-box"):
                yield self.live
            with Vertical(id="imagined-box", classes="screen-box"):
                yield self.imagined
            with Vertical(id="side"):
                yield self.state_panel
                yield self.dialog
        with Horizontal(id="bottom"):
            yield self.goal
            yield self.trace
            yield self.plots
        yield self.status_bar
        yield Footer()

    def on_mount(self) -> None:
        titles = {
            "#live-box": "live",
            "#imagined-box": "imagined (world model)",
            "#state": "game state",
            "#dialog": "dialog",
            "#goal": "goal and subgoals",
            "#trace": "planner trace (enter opens)",
            "#plots": "rewards and losses",
        }
        for selector, title in titles.items():
            self.query_one(selector).border_title = title

    def on_resize(self) -> None:
        width, height = self.app.size
        half = width < FULL_SIZE_AT[0] or height < FULL_SIZE_AT[1]
        self.live.half = self.imagined.half = half

    def on_screen_resume(self) -> None:
        # Frames are not drawn while another screen covers this one; catch up at once.
        app = self.app
        if isinstance(app, Dashboard) and app.last_step is not None:
            self.show_step(app.last_step)

    def show_step(self, event: StepEvent) -> None:
        self.live.show(event.frame)
        self.show_panels(event)

    def show_panels(self, event: StepEvent) -> None:
        self.state_panel.show(event.state)
        self.dialog.show(event.state)
        key = (event.goal, event.subgoals, round(event.progress * 100))
        if key != self._goal_key:
            self._goal_key = key
            self.goal.update(goal_text(event.goal, event.subgoals, event.progress), layout=False)

    def on_plan_trace_selected(self, event: PlanTrace.Selected) -> None:
        self.app.push_screen(PlanDetail(event.record))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "button":
            # Hidden, and the key left to the focused widget, unless a person is playing.
            return isinstance(self.app, Dashboard) and self.app.human
        return True

    # --- controls ----------------------------------------------------------------------------

    @property
    def board(self) -> Dashboard:
        assert isinstance(self.app, Dashboard)
        return self.app

    def action_pause(self) -> None:
        app = self.board
        if app.send(Resume() if app.paused else Pause()):
            app.paused = not app.paused
            app.say("resumed" if not app.paused else "paused: n steps once, space resumes")

    def action_single_step(self) -> None:
        app = self.board
        if not app.paused:  # a step from a running agent means: stop here
            self.action_pause()
        elif app.send(SingleStep(1)):
            app.say("one step")

    def action_replan(self) -> None:
        if self.board.send(Replan()):
            self.board.say("asked for a new plan")

    def action_planner(self) -> None:
        app = self.board
        # From the one last asked for, not the one in use: when the loop refuses "llm" (no
        # endpoint), the next press moves on to "none" instead of asking for "llm" again.
        kind = PLANNERS[(PLANNERS.index(app.planner_asked) + 1) % len(PLANNERS)]
        if app.send(SetPlanner(kind)):
            app.planner = app.planner_asked = kind
            app.say(f"switching the planner to {kind}")

    def action_speed(self) -> None:
        app = self.board
        if app.send(SetRealtime(not app.realtime)):
            app.realtime = not app.realtime
            app.say("real time (the Game Boy's speed)" if app.realtime else "uncapped speed")

    def action_checkpoint(self) -> None:
        if self.board.send(SaveCheckpoint()):
            self.board.say("saving a checkpoint…")

    def action_control(self) -> None:
        app = self.board
        if app.send(TakeControl(not app.human)):
            app.set_human(not app.human)
            if app.human and app.paused and app.send(Resume()):
                app.paused = False  # the loop waits for your buttons rather than for a step
            app.say(
                "you play: arrows, z = A, x = B, enter = START, backspace = SELECT; "
                "your steps are recorded as demonstrations"
                if app.human
                else "the agent plays"
            )

    def action_button(self, button: str) -> None:
        app = self.board
        if button not in app.buttons:
            app.say(f"the agent's buttons do not include {button!r} (env.buttons)", error=True)
            return
        app.send(HumanAction(button))

    def action_prompts(self) -> None:
        from pokedreamer.dashboard.editor import PromptEditor

        app = self.board
        library = app.prompt_library()
        if library is None:
            return
        state = app.last_step.state if app.last_step is not None else None
        goal = app.last_step.goal if app.last_step is not None else ""
        app.push_screen(
            PromptEditor(library, app.prompts_target(library), state, goal, app.adopt_prompts)
        )


class Dashboard(App[Any]):
    """The live dashboard over one agent loop (see ``run_dashboard``)."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "pokedreamer"
    ENABLE_COMMAND_PALETTE = False

    def __init__(
        self,
        loop: AgentLoopLike,
        human: bool = False,
        steps: int | None = None,
        fps: float = FPS,
        start_loop: bool = True,
        cpu_budget: float | None = UI_CPU_BUDGET,
        imagined: bool = True,
        switch_interval: float | None = SWITCH_INTERVAL_S,
    ) -> None:
        super().__init__()
        self.loop = loop
        self.switch_interval = switch_interval
        """The thread switch interval while the app runs (None leaves the interpreter's): short
        when the loop runs in this interpreter, and pointless when it runs in another process."""
        self.steps = steps
        self.fps = fps
        self.cpu_budget = cpu_budget
        self.frame_interval = 1 / fps
        """Seconds between frames drawn: 1/fps, longer while the UI is over its CPU budget."""
        self.ui_cpu_share = 0.0
        self.start_loop = start_loop
        # Without ImaginedEvent among the kinds the loop decodes no imagined frames at all
        # (it asks the bus whether anyone listens), which is most of what watching costs a
        # loop whose world model decodes on a CPU.
        self.imagined = imagined
        kinds = None if imagined else (StepEvent, PlanEvent, MetricsEvent, StatusEvent)
        self.subscription = loop.bus.subscribe(SUBSCRIPTION_SIZE, kinds)
        self.buttons: list[str] = list(getattr(loop, "buttons", loop.settings.env.buttons))
        # The loop's modes as last reported (StatusEvent); a key changes them here at once, so a
        # second press acts on what the first asked for.
        self.paused = bool(getattr(loop, "paused", False))
        self.human = bool(getattr(loop, "human", False))
        self.want_human = human
        self.planner: str = str(getattr(loop, "planner_kind", loop.settings.planner.kind))
        self.planner_asked = self.planner
        self.realtime = bool(getattr(loop, "realtime", False))
        self.training = bool(getattr(loop, "training", False))
        run_dir = getattr(loop, "run_dir", None)
        self.run_dir = str(run_dir.path) if run_dir is not None else ""
        self.message = ""
        self.message_is_error = False
        self._message_at = 0.0
        self.last_step: StepEvent | None = None
        self._undrawn: StepEvent | None = None
        self._undrawn_imagined: ImaginedEvent | None = None
        self._unshown_plans: list[dict[str, Any]] = []  # for the trace, with the panels
        self._switch_interval = sys.getswitchinterval()  # restored on the way out
        self.metrics: dict[str, float] = {}
        self.rewards = RewardBins()
        self.loop_result: Any = None
        self.loop_error: BaseException | None = None
        self.loop_done = threading.Event()
        self.quitting = False
        self.loop_started = False
        self.events_seen = 0
        self.frames_drawn = 0
        self.first_frame_at: tuple[float, float, int] | None = None
        """(monotonic time, process CPU time, frames drawn) when the first frame was drawn."""
        self._own_prompts: PromptLibrary | None = None
        self._panels_at = 0.0
        self._frame_at = 0.0
        self._budget_mark = (time.monotonic(), time.thread_time())
        self._fps_mark = (time.monotonic(), 0)
        self.ui_fps = 0.0

    def get_default_screen(self) -> DashboardScreen:
        self.board = DashboardScreen(id="dashboard")
        if not self.imagined:
            self.board.imagined.placeholder = "imagined frames off"
        return self.board

    def on_mount(self) -> None:
        if self.switch_interval is not None:
            sys.setswitchinterval(self.switch_interval)
        if self.start_loop:
            # A thread of our own rather than a Textual thread worker: those run in asyncio's
            # default executor, which the app waits for on the way out, so a UI that exits by
            # an error would hang until the loop ended; run_dashboard stops this one safely.
            self.loop_started = True
            threading.Thread(target=self._play, name="agent loop").start()
        self.set_interval(1 / self.fps, self.drain, name="drain")
        if self.want_human != self.human:
            self.send(TakeControl(self.want_human))
            self.set_human(self.want_human)
        self.show_status()

    def on_unmount(self) -> None:
        sys.setswitchinterval(self._switch_interval)

    def _play(self) -> None:
        try:
            self.loop_result = self.loop.run(self.steps)
        except BaseException as exc:  # shown in the status bar, raised again by run_dashboard
            self.loop_error = exc
        finally:
            self.loop_done.set()
            self.post_message(LoopStopped())  # thread-safe; False once the app has closed

    # --- events from the loop ------------------------------------------------------------------

    def drain(self) -> None:
        """Takes every waiting event; draws the newest frame of env 0 and the rest of the news."""
        events = self.subscription.drain()
        self.events_seen += len(events)
        board = self.board
        step = imagined = None
        for event in events:
            kind = type(event)
            if kind is StepEvent:
                if event.env == 0:
                    step = event
                    self.rewards.add(event.reward, event.terms)
            elif kind is RewardSample:
                if event.env == 0:
                    self.rewards.add(event.reward, event.terms)
            elif kind is ImaginedEvent:
                if event.env == 0:
                    imagined = event
            elif kind is PlanEvent:
                if event.env == 0:
                    self._unshown_plans.append(event.record)
            elif kind is MetricsEvent:
                self.metrics.update(event.metrics)
                board.plots.add_metrics(event.metrics)
            elif kind is StatusEvent:
                self.apply_status(event)
        means = self.rewards.close()
        if means is not None:
            board.plots.add_rewards(means)
        if step is not None:
            self.last_step = self._undrawn = step
        if imagined is not None:
            self._undrawn_imagined = imagined
        now = time.monotonic()
        self._pace(now)
        panels = now - self._panels_at >= PANELS_EVERY_S
        if panels:
            self._panels_at = now
        if board.is_current:  # another screen on top: draw nothing it would hide
            # Only the newest frame waits to be drawn: older ones are dropped, and the newest
            # is drawn once the frame interval allows, even if no step follows it.
            if now - self._frame_at >= self.frame_interval * 0.9:  # 0.9: timer jitter
                if self._undrawn is not None:
                    board.live.show(self._undrawn.frame)
                    self.frames_drawn += 1
                    if self.first_frame_at is None:
                        self.first_frame_at = (now, time.process_time(), self.frames_drawn)
                    self._frame_at = now
                    self._undrawn = None
                if self._undrawn_imagined is not None:
                    board.imagined.show(self._undrawn_imagined.frame)
                    self._undrawn_imagined = None
            if panels:
                if self.last_step is not None:
                    board.show_panels(self.last_step)
                board.plots.redraw()
        if panels or self.paused or self.loop_done.is_set():  # at once when nothing runs
            plans, self._unshown_plans = self._unshown_plans, []
            board.trace.add_records(plans)
        if panels:
            self.show_status()

    def _pace(self, now: float) -> None:
        """Once a second: the UI thread's share of a core, and the frame interval it allows."""
        mark_wall, mark_cpu = self._budget_mark
        if now - mark_wall < 1.0:
            return
        cpu = time.thread_time()
        self.ui_cpu_share = share = (cpu - mark_cpu) / (now - mark_wall)
        self._budget_mark = (now, cpu)
        if self.cpu_budget is None:
            return
        # Proportional, damped: a frame costs about the same each time, so the share scales
        # with the frame rate.
        scale = min(max(share / self.cpu_budget, 0.5), 2.0)
        self.frame_interval = min(max(self.frame_interval * scale, 1 / self.fps), 1 / MIN_FPS)

    def apply_status(self, event: StatusEvent) -> None:
        self.paused, self.planner = event.paused, event.planner
        self.realtime, self.training = event.realtime, event.training
        self.run_dir = event.run_dir or self.run_dir
        if event.human != self.human:
            self.set_human(event.human)
        if event.message:
            planner_refused = event.message.startswith("planner stays")
            self.say(event.message, error=planner_refused)
        self.show_status()

    def set_human(self, human: bool) -> None:
        self.human = human
        self.board.refresh_bindings()  # the game buttons appear in, or leave, the footer

    # --- the loop's worker ---------------------------------------------------------------------

    def on_loop_stopped(self, message: LoopStopped) -> None:
        self.drain()  # its last events: the checkpoint it wrote
        if self.quitting or getattr(self.loop, "close_ui", False):
            self.exit(self.loop_result)
        elif self.loop_error is not None:
            self.say(f"the agent loop stopped: {one_line(self.loop_error)}; q quits", error=True)
        else:
            self.say("the agent loop finished; q quits")

    async def action_quit(self) -> None:
        """Stops the loop (it writes a checkpoint and flushes its logs), then exits."""
        if self.loop_done.is_set() or not self.start_loop:
            self.exit(self.loop_result)
            return
        if not self.quitting:
            self.quitting = True
            self.loop.send(Quit())
        self.say("quitting: the agent loop is writing its checkpoint…")

    # --- commands ------------------------------------------------------------------------------

    def send(self, command: Any) -> bool:
        """Sends a command to the loop; False (and a line in the status bar) when it cannot."""
        if self.loop_done.is_set() or self.quitting:
            self.say("the agent loop has stopped", error=True)
            return False
        try:
            self.loop.send(command)
        except (ValueError, RuntimeError) as exc:
            self.say(one_line(exc), error=True)
            return False
        return True

    # --- prompts -------------------------------------------------------------------------------

    def prompt_library(self) -> PromptLibrary | None:
        """The planner's own library (edits apply to its next plan), or one read the same way
        when no LLM planner has been made yet."""
        from pokedreamer.errors import UserError
        from pokedreamer.planner.prompts import PromptLibrary

        library = getattr(self.loop, "prompts", None)
        if library is not None:
            return library
        if self._own_prompts is None:
            try:
                self._own_prompts = PromptLibrary(self.loop.settings.planner.prompts_dir)
            except UserError as exc:
                self.say(one_line(exc), error=True)
                return None
        return self._own_prompts

    def prompts_target(self, library: PromptLibrary) -> Path:
        """Where a saved template goes: the library's folder, else ``prompts`` as in
        ``pokedreamer prompts init``."""
        return library.prompts_dir or Path(self.loop.settings.planner.prompts_dir or "prompts")

    def adopt_prompts(self, library: PromptLibrary, folder: Path) -> str:
        """After a save: makes the planner read ``folder``; returns what to tell the user."""
        if library.prompts_dir is None:
            # The library looks at prompts_dir on every render, so this takes effect at the
            # next plan; templates not saved there stay the built-in ones.
            library.prompts_dir = folder
        if getattr(self.loop, "prompts", None) is None:
            self.loop.prompts = library  # type: ignore[attr-defined]
        return "the next LLM plan uses it" if self.planner == "llm" else "LLM plans will use it"

    # --- the status bar -----------------------------------------------------------------------

    def say(self, message: str, error: bool = False) -> None:
        """One line in the status bar (errors too: the UI never prints); it goes after
        MESSAGE_S, an error only when another message replaces it."""
        self.message = message.splitlines()[0] if message else ""
        self.message_is_error = error
        self._message_at = time.monotonic()
        self.show_status()

    def status_text(self) -> Text:
        """The mode, then the latest message (before the figures: a narrow terminal cuts the
        end of the line), then step, speeds, planner, control, training and the run."""
        step = self.last_step
        rate = self.metrics.get("steps_per_s")
        text = Text()
        if self.paused:
            text.append("⏸ paused", "bold yellow")
        else:
            text.append("▶ running", "bold")
        if self.message:
            text.append("  ")
            text.append(self.message, "bold red" if self.message_is_error else "bold cyan")
            text.append("  ")
        parts: list[tuple[str, str] | str] = [f"step {step.step:,}" if step else "step 0"]
        if step is not None and step.episode:
            parts.append(f"episode {step.episode} · {step.episode_step}")
        parts += [
            f"{rate:,.0f} steps/s" if rate is not None else "— steps/s",
            f"ui {self.ui_fps:.0f} fps, {self.ui_cpu_share:.0%} cpu",
            f"planner {self.planner}",
            "real time" if self.realtime else "uncapped",
            ("you play", "bold magenta") if self.human else "agent plays",
        ]
        if self.training:
            parts.append(f"training · {self.metrics.get('updates', 0):,.0f} updates")
        else:
            parts.append("not training")
        if self.run_dir:
            parts.append(self.run_dir)
        for part in parts:
            text.append(" · ", "dim")
            text.append(*(part if isinstance(part, tuple) else (part,)))
        return text

    def show_status(self) -> None:
        """Redraws the status bar: at once for a key's effect, else with the other panels."""
        now = time.monotonic()
        if self.message and not self.message_is_error and now - self._message_at > MESSAGE_S:
            self.message = ""
        mark_time, mark_frames = self._fps_mark
        if now - mark_time >= 1.0:
            self.ui_fps = (self.frames_drawn - mark_frames) / (now - mark_time)
            self._fps_mark = (now, self.frames_drawn)
        bar = self.board.status_bar
        # No layout pass: the panels' sizes are fixed by the CSS, and a layout of the whole
        # screen costs ~50 ms, more than a second of frames.
        bar.update(self.status_text(), layout=False)
        bar.set_class(self.message_is_error, "-error")


def run_dashboard(
    loop: AgentLoopLike, human: bool = False, steps: int | None = None, imagined: bool = True
) -> Any:
    """Runs ``loop`` in this process under the dashboard, which runs in a child process that owns
    the terminal (``remote.py``: so drawing never holds the loop's interpreter), until the user
    quits (or the loop stops and the user quits); returns what ``loop.run`` returned.
    ``human``: a person plays from the start (``pokedreamer play``). ``steps``: passed to
    ``loop.run`` (None: until quit). ``imagined=False`` leaves the imagined screen empty and
    spares the loop its decodes. An error in the loop is raised again here, after the UI has
    closed; if the UI closes first (an error in it), the loop is stopped the safe way."""
    from pokedreamer.dashboard.remote import DashboardProcess

    return DashboardProcess(loop, human=human, imagined=imagined).run(steps)
