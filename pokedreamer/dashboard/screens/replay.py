"""The replay viewer's screen: scrub an episode with its state, rewards and subgoal trace.

Arranged for the terminal's size, as the live screen is: from 122×54 the frame at half size
(at full size from 202×90) with the panels beside and under it; from 100×34 the frame at quarter
size, the state beside the dialog and the reward terms; below that (80×24) the frame at quarter
size beside the dialog, and the other panels in tabs. A resize across the last line composes the
screen again, and the step shown stays."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Label, Static, TabbedContent, TabPane

from pokedreamer.dashboard.episode_trace import EpisodeTrace
from pokedreamer.dashboard.screens.plan_detail import PlanDetail
from pokedreamer.dashboard.widgets.game_screen import FULL_CELLS, HALF_CELLS, GameScreen
from pokedreamer.dashboard.widgets.planner_panel import trace_row
from pokedreamer.dashboard.widgets.state_panel import DialogPanel, StatePanel
from pokedreamer.dashboard.widgets.timeline import SPAN_COLOURS, Timeline

JUMP_SHORT, JUMP_LONG = 10, 100
PLAY_FPS = 20
# The frame in its border, the side column beside it; the timeline, the plans and the bars under.
FULL_SIZE_AT = (FULL_CELLS.width + 2 + 40, FULL_CELLS.height + 2 + 16)
HALF_SIZE_AT = (HALF_CELLS.width + 2 + 40, HALF_CELLS.height + 2 + 16)
QUARTER_SIZE_AT = (100, 34)
"""The quarter-size frame (42×20 in its border) with two columns of panels beside it (the
state; the dialog over the reward terms), the timeline (5 rows) and the plans (7 rows) under it.
Below, the panels go into tabs."""
TITLES = {
    "#state": "game state",
    "#dialog": "dialog",
    "#terms": "reward terms",
    "#timeline": "subgoal trace (▼ plan, ▲ here; click to jump)",
    "#plans": "plans (enter jumps, i opens)",
    "#spans": "subgoals: when each was active and how it ended",
}
TABS = {
    "state": "#state",
    "terms": "#terms",
    "trace": "#timeline",
    "plans": "#plans",
    "spans": "#spans",
}
"""A small terminal's tabs and the panel each holds."""


def frame_scale(width: int, height: int) -> int:
    """The frame's scale in a terminal of ``width`` × ``height``: 1 full, 2 half, 4 quarter."""
    if width >= FULL_SIZE_AT[0] and height >= FULL_SIZE_AT[1]:
        return 1
    if width >= HALF_SIZE_AT[0] and height >= HALF_SIZE_AT[1]:
        return 2
    return 4  # text no longer reads on the frame; the dialog panel has it


def in_tabs(width: int, height: int) -> bool:
    """Whether the panels go into tabs beside the frame (a small terminal)."""
    return width < QUARTER_SIZE_AT[0] or height < QUARTER_SIZE_AT[1]


def button_name(action: int | None, buttons: list[str]) -> str:
    if action is None:
        return "— (start)"
    return buttons[action] if 0 <= action < len(buttons) else f"#{action}"


def terms_text(trace: EpisodeTrace, step: int, buttons: list[str]) -> Text:
    record = trace.steps[step]
    text = Text()
    text.append(f"pressed {button_name(record.action, buttons)}  ")
    text.append(f"reward {record.reward:+.3f}\n")
    text.append(f"return so far {trace.return_to(step):+.3f}\n", "bold")
    for name, value in record.terms.items():
        style = "green" if value > 0 else "red" if value < 0 else "grey50"
        text.append(f"{name:<12}{value:+.3f}\n", style)
    text.rstrip()
    return text


def spans_text(trace: EpisodeTrace, step: int, rows: int) -> Text:
    """The subgoal spans around the active one, which is marked and bold."""
    if not trace.spans:
        return Text("no steps", style="dim")
    active = trace.span_index_at(step)
    first = max(0, min(active - rows // 2, len(trace.spans) - rows))
    lines = []
    for i in range(first, min(first + max(rows, 1), len(trace.spans))):
        span = trace.spans[i]
        colour = SPAN_COLOURS[i % len(SPAN_COLOURS)]
        marker = "▶ " if i == active else "  "
        lines.append(
            Text.assemble(
                (marker, "bold"), ("■ ", colour), (span.describe(), "bold" if i == active else "")
            )
        )
    return Text("\n").join(lines)


class GoToStep(ModalScreen[int | None]):
    """Asks for a step number."""

    BINDINGS = [Binding("escape", "dismiss", "cancel")]

    def __init__(self, last: int) -> None:
        super().__init__()
        self.last = last

    def compose(self) -> ComposeResult:
        with Vertical(id="goto-box"):
            yield Label(f"go to step (0–{self.last}):")
            yield Input(type="integer", id="goto")

    def on_mount(self) -> None:
        self.query_one("#goto", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(int(event.value) if event.value.strip().lstrip("-").isdigit() else None)


class ReplayScreen(Screen[None]):
    """One episode, one step at a time."""

    # Priority: the arrows, page keys and home/end move through the episode even while the plan
    # table has focus (its own up/down still pick a plan).
    BINDINGS = [
        Binding("left", "move(-1)", "step back", key_display="←", priority=True),
        Binding("right", "move(1)", "step", key_display="→", priority=True),
        Binding("shift+left", f"move(-{JUMP_SHORT})", f"-{JUMP_SHORT}", show=False, priority=True),
        Binding("shift+right", f"move({JUMP_SHORT})", f"+{JUMP_SHORT}", show=False, priority=True),
        Binding("pageup", f"move(-{JUMP_LONG})", f"-{JUMP_LONG}", priority=True),
        Binding("pagedown", f"move({JUMP_LONG})", f"+{JUMP_LONG}", priority=True),
        Binding("home", "go(0)", "start", show=False, priority=True),
        Binding("end", "go(-1)", "end", show=False, priority=True),
        Binding("left_square_bracket", "plan(-1)", "prev plan", key_display="["),
        Binding("right_square_bracket", "plan(1)", "next plan", key_display="]"),
        Binding("g", "ask_step", "go to step"),
        Binding("i", "inspect", "open plan"),
        Binding("space", "play", "play/pause"),
        Binding("q", "app.quit", "quit"),
    ]

    def __init__(self, trace: EpisodeTrace, title: str, buttons: list[str]) -> None:
        super().__init__(id="replay")
        self.trace = trace
        self.title_text = title
        self.buttons = buttons
        self.step = 0
        self._player: Any = None
        self.tabbed = False
        """The panels in tabs beside the frame (a small terminal)."""

    def compose(self) -> ComposeResult:
        self.tabbed = in_tabs(*self.app.size)
        frame_box = Vertical(
            GameScreen("empty episode", id="frame"), id="frame-box", classes="screen-box"
        )
        state, dialog, terms = StatePanel(id="state"), DialogPanel(id="dialog"), Static(id="terms")
        timeline = Timeline(self.trace, id="timeline")
        plans = DataTable(id="plans", cursor_type="row", zebra_stripes=True)
        spans = Static(id="spans")
        if self.tabbed:
            panels = {"#state": state, "#terms": terms, "#timeline": timeline, "#plans": plans,
                      "#spans": spans}  # fmt: skip
            tabs = TabbedContent(id="tabs")
            for name, selector in TABS.items():
                tabs.compose_add_child(TabPane(name, panels[selector], id=f"tab-{name}"))
            with Horizontal(id="top", classes="one-screen"):
                yield frame_box
                yield Vertical(dialog, tabs, id="side")
        else:
            with Horizontal(id="top"):
                yield frame_box
                yield Vertical(state, dialog, terms, id="side")
            yield timeline
            yield Horizontal(plans, spans, id="bottom")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self._fill()

    def _fill(self) -> None:
        """Titles, the plan table's rows and the step shown, in newly composed panels."""
        self.query_one("#frame-box").border_title = self.title_text
        for selector, title in TITLES.items():
            self.query_one(selector).border_title = title
        table = self.query_one("#plans", DataTable)
        for name, width in (("step", 6), ("trigger", 16), ("source", 9), ("latency", 7)):
            table.add_column(name, key=name, width=width)
        table.add_column("goal", key="goal")
        for i, plan in enumerate(self.trace.plans):
            row = trace_row(plan)
            table.add_row(str(plan["_at"]), *row[1:], key=str(i))
        self.query_one("#frame", GameScreen).scale = frame_scale(*self.app.size)
        self.go(self.step)

    async def on_resize(self) -> None:
        width, height = self.app.size
        if in_tabs(width, height) != self.tabbed:
            await self.recompose()
            self._fill()
            self.refresh_bindings()  # the new footer shows the keys
        self.set_class(frame_scale(width, height) == 4 and not self.tabbed, "-quarter")
        self.query_one("#frame", GameScreen).scale = frame_scale(width, height)

    # --- moving through the episode ------------------------------------------------------------

    def go(self, step: int) -> None:
        """Shows ``step`` (clamped to the episode; -1 is the last)."""
        trace = self.trace
        if not len(trace):
            self.query_one("#status", Static).update("this episode has no steps")
            return
        last = len(trace) - 1
        self.step = last if step == -1 else min(max(step, 0), last)
        record = trace.steps[self.step]
        self.query_one("#frame", GameScreen).show(trace.frames[self.step])
        self.query_one("#state", StatePanel).show(record.state)
        self.query_one("#dialog", DialogPanel).show(record.state)
        self.query_one("#terms", Static).update(terms_text(trace, self.step, self.buttons))
        timeline = self.query_one("#timeline", Timeline)
        timeline.step = self.step
        timeline.refresh()
        spans = self.query_one("#spans", Static)
        spans.update(spans_text(trace, self.step, max(spans.size.height, 8)))
        plan = trace.plan_index_at(self.step)
        table = self.query_one("#plans", DataTable)
        if plan is not None and table.row_count:
            table.move_cursor(row=plan)
        self.query_one("#status", Static).update(self.status_text())

    def status_text(self) -> Text:
        trace = self.trace
        record = trace.steps[self.step]
        text = Text()
        text.append(f"step {self.step}/{len(trace) - 1}", "bold")
        plan = trace.plan_index_at(self.step)
        if plan is not None:
            p = trace.plans[plan]
            text.append(
                f" · plan {plan + 1}/{len(trace.plans)} from step {p['_at']} "
                f"({p.get('trigger', '')}, {p.get('source', '')})"
            )
        else:
            text.append(" · no plan yet")
        span = trace.spans[trace.span_index_at(self.step)]
        text.append(" · active: ")
        text.append(record.subgoal or "no subgoal", "bold cyan")
        if span.outcome == "still active":
            text.append(f" (since step {span.start}, still active at the end)")
        else:
            text.append(f" (since step {span.start}, {span.outcome} at step {span.end})")
        if record.extra and record.extra.get("human"):
            text.append(" · a person played this step", "magenta")
        return text

    def action_move(self, delta: int) -> None:
        self.go(self.step + delta)

    def action_go(self, step: int) -> None:
        self.go(step)

    def action_plan(self, direction: int) -> None:
        trace = self.trace
        if direction > 0:
            target = trace.next_plan_step(self.step)
        else:
            target = trace.previous_plan_step(self.step)
        if target is None:
            self.notify_status("no later plan" if direction > 0 else "no earlier plan")
            return
        self.go(target)

    def notify_status(self, message: str) -> None:
        status = self.query_one("#status", Static)
        status.update(Text.assemble(self.status_text(), "  ", (message, "bold yellow")))

    def action_ask_step(self) -> None:
        def chosen(step: int | None) -> None:
            if step is not None:
                self.go(step)

        self.app.push_screen(GoToStep(max(len(self.trace) - 1, 0)), chosen)

    def action_inspect(self) -> None:
        plan = self.trace.plan_index_at(self.step)
        if plan is None:
            self.notify_status("no plan at this step")
            return
        record = {k: v for k, v in self.trace.plans[plan].items() if not k.startswith("_")}
        self.app.push_screen(PlanDetail(record))

    def action_play(self) -> None:
        """Plays the episode forward at PLAY_FPS steps a second; space again stops."""
        if self._player is not None:
            self._player.stop()
            self._player = None
            return

        def advance() -> None:
            if self.step >= len(self.trace) - 1:
                self.action_play()
                return
            self.go(self.step + 1)

        self._player = self.set_interval(1 / PLAY_FPS, advance)

    def on_timeline_jump(self, event: Timeline.Jump) -> None:
        self.go(event.step)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.go(self.trace.plans[int(event.row_key.value)]["_at"])
