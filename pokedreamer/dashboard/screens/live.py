"""The live screen: the real and the imagined Game Boy screen, the state, the plan, the trace, the
plots and the status bar; the keys that steer the loop. How they are arranged follows the
terminal's size (``dashboard/layout.py``).

``drain`` takes every event waiting on the dashboard's subscription, many times a second, and
draws only the newest frame of env 0 (older ones are dropped), at most as often as the frame
pacer allows; the text panels change together, twice a second. Nothing here waits on the loop.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static, TabbedContent

from pokedreamer.agent.events import (
    HumanAction,
    ImaginedEvent,
    MetricsEvent,
    Pause,
    PlanEvent,
    Replan,
    Resume,
    RewardSample,
    SaveCheckpoint,
    SetPlanner,
    SetSpeed,
    SetSubgoal,
    SingleStep,
    StatusEvent,
    StepEvent,
    Subscription,
    TakeControl,
)
from pokedreamer.agent.pace import speed_text
from pokedreamer.dashboard.layout import (
    TIER_NAMES,
    Showing,
    Tier,
    one_screen,
    side_by_side,
    tier_for,
)
from pokedreamer.dashboard.pacing import FramePacer
from pokedreamer.dashboard.screens.editor import PromptEditor
from pokedreamer.dashboard.screens.plan_detail import PlanDetail
from pokedreamer.dashboard.screens.subgoal import SubgoalInput
from pokedreamer.dashboard.steering import PLANNERS, Steering, error_text
from pokedreamer.dashboard.widgets.current_subgoal import CurrentSubgoal
from pokedreamer.dashboard.widgets.game_screen import GameScreen
from pokedreamer.dashboard.widgets.planner_panel import PlanTrace, goal_text
from pokedreamer.dashboard.widgets.plots import Plots, RewardBins
from pokedreamer.dashboard.widgets.state_panel import DialogPanel, StatePanel
from pokedreamer.dashboard.widgets.status_bar import StatusBar, status_text
from pokedreamer.errors import UserError

PANELS_EVERY_S = 0.5
"""How often the text panels (state, dialog, goal, plots, status bar) may change. Textual redraws
the bounding box of everything that changed, so panels redrawn with every frame would make each
frame a redraw of the whole terminal; all together, twice a second, they cost ~1.5% of a core."""
GAME_KEYS: dict[str, str] = {
    "up": "up", "down": "down", "left": "left", "right": "right",
    "z": "a", "x": "b", "enter": "start", "backspace": "select",
}  # fmt: skip
"""Keyboard key -> Game Boy button, while a person is in control."""
_BUTTON_LABELS = {"a": "A", "b": "B", "start": "START", "select": "SELECT"}


class LiveScreen(Screen[None]):
    """The live screen and the imagined one, the state, the plan, the trace, the plots."""

    BINDINGS = [
        Binding("space", "pause", "pause/resume"),
        Binding("i", "flip", "live/imagined"),  # shown only where one screen is
        Binding("n", "single_step", "step"),
        Binding("r", "replan", "replan"),
        Binding("p", "planner", "planner"),
        Binding("s", "speed('toggle')", "speed"),
        Binding("plus,equals_sign", "speed('faster')", "faster"),
        Binding("minus", "speed('slower')", "slower"),
        Binding("g", "subgoal", "subgoal"),
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

    def __init__(
        self,
        steering: Steering,
        subscription: Subscription,
        *,
        fps: float,
        cpu_budget: float | None,
        imagined: bool,
    ) -> None:
        super().__init__(id="dashboard")
        self.steering = steering
        self.subscription = subscription
        self.pacer = FramePacer(fps, cpu_budget)
        self.tier = tier_for(200, 60)
        """The arrangement in use (compose sets it from the terminal's size)."""
        self.showing: Showing = "live"
        """The screen shown where one is shown at a time."""
        self._tab = "state"  # the tab open where the panels are in tabs
        self._imagined_placeholder = "no imagined frames yet" if imagined else "imagined frames off"
        self._new_panels()
        # The count so far; steps and statuses keep it current from here on.
        self.state_panel.demos.status(steering.loop.status())
        self.status_bar = StatusBar(id="status")
        self.last_step: StepEvent | None = None
        """The newest step of env 0, drawn or not."""
        self.metrics: dict[str, float] = {}
        self.rewards = RewardBins()
        self._goal_key: tuple[str, tuple[str, ...], int] | None = None
        self._undrawn: StepEvent | None = None
        self._undrawn_imagined: ImaginedEvent | None = None
        self._unshown_plans: list[dict[str, Any]] = []  # for the trace, with the panels
        self._panels_at = 0.0

    # --- the arrangement ---------------------------------------------------------------------

    def _new_panels(self) -> None:
        # Made here, not looked up: the drain draws into them many times a second.
        self.live = GameScreen("waiting for the game…", id="live")
        self.imagined = GameScreen(self._imagined_placeholder, id="imagined")
        self.state_panel = StatePanel(id="state")
        self.dialog = DialogPanel(id="dialog")
        self.goal = Static(goal_text("", (), 0.0), id="goal")
        self.subgoal = CurrentSubgoal(id="subgoal")
        self.trace = PlanTrace(id="trace")
        self.plots = Plots(id="plots")
        titles = {
            self.state_panel: "game state",
            self.dialog: "dialog",
            self.goal: "goal and subgoals",
            self.trace: "planner trace (enter opens)",
            self.plots: "rewards and losses",
        }
        for panel, title in titles.items():
            panel.border_title = title

    def _arranged(self) -> Widget:
        if self.tier.one_screen:
            return one_screen(
                self.live, self.imagined, self.subgoal, self.state_panel, self.dialog, self.goal,
                self.trace, self.plots, showing=self.showing,
            )  # fmt: skip
        return side_by_side(
            self.live,
            self.imagined,
            self.state_panel,
            self.dialog,
            self.goal,
            self.trace,
            self.plots,
        )

    def compose(self) -> ComposeResult:
        self.tier = tier_for(*self.app.size)
        yield self._arranged()
        yield self.status_bar
        yield Footer()

    def on_mount(self) -> None:
        self._apply_tier()

    async def on_resize(self) -> None:
        tier = tier_for(*self.app.size)
        if tier.one_screen != self.tier.one_screen:
            await self._rearrange(tier)
        self.tier = tier
        self._apply_tier()

    async def _rearrange(self, tier: Tier) -> None:
        """Puts the panels in the arrangement of ``tier``. A widget taken out of the screen
        cannot be mounted again, so the arrangement gets new ones that go on from the old."""
        live, imagined, trace, plots = self.live, self.imagined, self.trace, self.plots
        demos = self.state_panel.demos
        self._new_panels()
        self.state_panel.demos = demos
        self.live.continue_from(live)
        self.imagined.continue_from(imagined)
        self.trace.continue_from(trace)
        self.plots.continue_from(plots)
        self._goal_key = None
        if self.last_step is not None:
            self.show_panels(self.last_step)
        self.tier = tier
        await self.query_one("#body").remove()
        await self.mount(self._arranged(), before=self.status_bar)
        if tier.one_screen:  # the tab open when the terminal was last this small
            self.query_one("#tabs", TabbedContent).active = f"tab-{self._tab}"

    def _apply_tier(self) -> None:
        tier = self.tier
        for name in TIER_NAMES:
            self.set_class(tier.name == name, f"-{name}")
        self.live.scale = self.imagined.scale = tier.scale
        self.refresh_bindings()  # i appears in the footer, or leaves it

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._tab = (event.pane.id or "tab-state").removeprefix("tab-")

    def action_flip(self) -> None:
        """Shows the imagined screen in the live one's place, or the live one again."""
        self.showing = "imagined" if self.showing == "live" else "live"
        self.query_one("#live-box").display = self.showing == "live"
        self.query_one("#imagined-box").display = self.showing == "imagined"

    def on_screen_resume(self) -> None:
        # Frames are not drawn while another screen covers this one; catch up at once.
        if self.last_step is not None:
            self.show_step(self.last_step)

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
            self.subgoal.show(event.subgoals, event.progress)

    def on_plan_trace_selected(self, event: PlanTrace.Selected) -> None:
        self.app.push_screen(PlanDetail(event.record))

    # --- events from the loop ------------------------------------------------------------------

    def drain(self) -> None:
        """Takes every waiting event; draws the newest frame of env 0 and the rest of the news."""
        step = imagined = None
        for event in self.subscription.drain():
            kind = type(event)
            if kind is StepEvent:
                if event.env == 0:
                    step = event
                    self.rewards.add(event.reward, event.terms)
                    self.state_panel.demos.step(event)
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
                self.plots.add_metrics(event.metrics)
            elif kind is StatusEvent:
                self.apply_status(event)
        means = self.rewards.close()
        if means is not None:
            self.plots.add_rewards(means)
        if step is not None:
            self.last_step = self._undrawn = step
        if imagined is not None:
            self._undrawn_imagined = imagined
        pacer = self.pacer
        now = time.monotonic()
        pacer.pace(now)
        panels = now - self._panels_at >= PANELS_EVERY_S
        if panels:
            self._panels_at = now
        if self.is_current:  # another screen on top: draw nothing it would hide
            # Only the newest frame waits to be drawn: older ones are dropped, and the newest
            # is drawn once the frame interval allows, even if no step follows it.
            if pacer.due(now):
                if self._undrawn is not None:
                    self.live.show(self._undrawn.frame)
                    pacer.drew(now)
                    self._undrawn = None
                if self._undrawn_imagined is not None:
                    self.imagined.show(self._undrawn_imagined.frame)
                    self._undrawn_imagined = None
            if panels:
                if self.last_step is not None:
                    self.show_panels(self.last_step)
                self.plots.redraw()
        steering = self.steering
        if panels or steering.paused or steering.loop_done.is_set():  # at once when nothing runs
            plans, self._unshown_plans = self._unshown_plans, []
            self.trace.add_records(plans)
        if panels:
            self.show_status()

    def apply_status(self, event: StatusEvent) -> None:
        human = self.steering.human
        self.steering.apply(event)
        if event.human != human:
            self.refresh_bindings()  # the game buttons appear in, or leave, the footer
        if event.message:
            refused = event.message.startswith(("planner stays", "subgoal not set"))
            self.say(event.message, error=refused)
        self.state_panel.demos.status(event)
        self.show_status()

    # --- the status bar -----------------------------------------------------------------------

    def say(self, message: str, error: bool = False) -> None:
        """One line in the status bar."""
        self.status_bar.say(message, error)
        self.show_status()

    def status_text(self) -> Text:
        steering, bar = self.steering, self.status_bar
        return status_text(
            paused=steering.paused, message=bar.message, message_is_error=bar.message_is_error,
            step=self.last_step, metrics=self.metrics, ui_fps=self.pacer.frames_per_s,
            ui_cpu_share=self.pacer.cpu_share, planner=steering.planner,
            speed=steering.speed, human=steering.human, training=steering.training,
            run_dir=steering.run_dir,
        )  # fmt: skip

    def show_status(self) -> None:
        """Redraws the status bar: at once for a key's effect, else with the other panels."""
        now = time.monotonic()
        self.status_bar.expire(now)
        self.pacer.count_frames(now)
        self.status_bar.show(self.status_text())

    # --- controls ----------------------------------------------------------------------------

    def send(self, command: object) -> bool:
        """Sends a command to the loop; False (and a line in the status bar) when it cannot."""
        refusal = self.steering.send(command)
        if refusal is not None:
            self.say(refusal, error=True)
        return refusal is None

    def set_human(self, human: bool) -> None:
        self.steering.human = human
        self.refresh_bindings()  # the game buttons appear in, or leave, the footer

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "button":
            # Hidden, and the key left to the focused widget, unless a person is playing.
            return self.steering.human
        if action == "flip":  # both screens are in sight in all but small terminals
            return self.tier.one_screen
        return True

    def action_pause(self) -> None:
        steering = self.steering
        if self.send(Resume() if steering.paused else Pause()):
            steering.paused = not steering.paused
            self.say("resumed" if not steering.paused else "paused: n steps once, space resumes")

    def action_single_step(self) -> None:
        if not self.steering.paused:  # a step from a running agent means: stop here
            self.action_pause()
        elif self.send(SingleStep(1)):
            self.say("one step")

    def action_replan(self) -> None:
        if self.send(Replan()):
            self.say("asked for a new plan")

    def action_planner(self) -> None:
        steering = self.steering
        # From the one last asked for, not the one in use: when the loop refuses "llm" (no
        # endpoint) or "local" (not installed), the next press moves on to the kind after it
        # instead of asking for the refused one again.
        kind = PLANNERS[(PLANNERS.index(steering.planner_asked) + 1) % len(PLANNERS)]
        if self.send(SetPlanner(kind)):
            steering.planner = steering.planner_asked = kind
            self.say(f"switching the planner to {kind}")

    def action_speed(self, change: str = "toggle") -> None:
        steering = self.steering
        speed = steering.next_speed(change)
        if speed == steering.speed:
            self.say(f"speed {speed_text(speed)}: as far as it goes")
        elif self.send(SetSpeed(speed)):
            self.say(steering.asked_speed(speed))

    def action_subgoal(self) -> None:
        """Opens the subgoal input; what it returns (a subgoal, or giving it back to the
        planner) is sent to the loop, which says how it went in the status bar."""
        try:
            facts = self.steering.facts()
        except UserError as exc:
            self.say(error_text(exc), error=True)
            return

        def send(command: SetSubgoal | None) -> None:
            if command is not None and self.send(command):
                self.say("sending your subgoal…" if command.subgoal else "clearing your subgoal…")

        step = self.last_step
        shown = step.subgoals[0] if step is not None and step.subgoals else ""
        self.app.push_screen(SubgoalInput(facts, shown), send)

    def action_checkpoint(self) -> None:
        if self.send(SaveCheckpoint()):
            self.say("saving a checkpoint…")

    def action_control(self) -> None:
        steering = self.steering
        if self.send(TakeControl(not steering.human)):
            self.set_human(not steering.human)
            if steering.human and steering.paused and self.send(Resume()):
                steering.paused = False  # the loop waits for your buttons rather than for a step
            self.say(
                "you play: arrows, z = A, x = B, enter = START, backspace = SELECT; "
                "your steps are recorded as demonstrations"
                if steering.human
                else "the agent plays"
            )

    def action_button(self, button: str) -> None:
        if button not in self.steering.buttons:
            self.say(f"the agent's buttons do not include {button!r} (env.buttons)", error=True)
            return
        self.send(HumanAction(button))

    def action_prompts(self) -> None:
        steering = self.steering
        try:
            library = steering.prompt_library()
        except UserError as exc:
            self.say(error_text(exc), error=True)
            return
        step = self.last_step
        self.app.push_screen(
            PromptEditor(
                library,
                steering.prompts_target(library),
                step.state if step is not None else None,
                step.goal if step is not None else "",
                steering.planner,
                settings=steering.loop.settings,
            )
        )
