"""The replay viewer: scrub a recorded episode with its state, rewards and subgoal trace.

``EpisodeTrace`` reads what the recorder wrote (frames, steps.jsonl, plans.jsonl) and works out
the subgoal spans: each stretch of steps with one active subgoal, and how it ended. The agent loop
records plans at the episode step they were adopted (``PlanRecord.step``), and a subgoal that is
reached is replaced at that very step by the next one, with a replan whose trigger says why
("subgoal done", "plan done", "subgoal timeout", ...), so the trace is read from those.
"""

from __future__ import annotations

import bisect
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Label, Static

from pokedreamer.agent.episodes import EpisodeReader, StepRecord, open_episode
from pokedreamer.dashboard.planner_panel import PlanDetail, trace_row
from pokedreamer.dashboard.screen import FULL_CELLS, GameScreen
from pokedreamer.dashboard.state_panel import DialogPanel, StatePanel
from pokedreamer.rundir import RunDir

JUMP_SHORT, JUMP_LONG = 10, 100
PLAY_FPS = 20
SPAN_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_green")
FULL_SIZE_AT = (FULL_CELLS.width + 2 + 40, FULL_CELLS.height + 2 + 16)


@dataclass(frozen=True, slots=True)
class SubgoalSpan:
    """Steps ``start`` to ``end`` - 1 pursued one subgoal (None: no subgoal)."""

    subgoal: str | None
    start: int
    end: int
    outcome: str
    """How it ended: done, timed out, replaced (<trigger>), or still active at the end."""

    def describe(self) -> str:
        what = self.subgoal or "no subgoal"
        if self.outcome == "still active":
            return f"{what}: from step {self.start}, still active at the end"
        return f"{what}: steps {self.start}–{self.end - 1}, {self.outcome} at step {self.end}"


def _outcome(trigger: str | None) -> str:
    if trigger is None:
        return "done"  # the queue moved on with no new plan: the service pops a subgoal when done
    if trigger.startswith(("subgoal done", "plan done")):
        return "done"
    if trigger.startswith("subgoal timeout"):
        return "timed out"
    return f"replaced ({trigger})"


class EpisodeTrace:
    """A recorded episode, with its plans placed on its steps and its subgoal spans."""

    def __init__(self, reader: EpisodeReader) -> None:
        self.reader = reader
        self.frames = reader.frames()
        self.steps: list[StepRecord] = reader.steps()
        last = max(len(self.steps) - 1, 0)
        plans = [dict(p) for p in reader.plans()]
        for plan in plans:  # a plan logged after the last complete step still shows, at the end
            plan["_at"] = min(max(int(plan.get("step", 0)), 0), last)
        self.plans = sorted(plans, key=lambda p: p["_at"])
        self.plan_steps = [p["_at"] for p in self.plans]
        self.spans = self._spans()
        self._span_starts = [span.start for span in self.spans]

    def __len__(self) -> int:
        return len(self.steps)

    def _spans(self) -> list[SubgoalSpan]:
        spans: list[SubgoalSpan] = []
        if not self.steps:
            return spans
        triggers: dict[int, str] = {}
        for plan in self.plans:
            triggers.setdefault(plan["_at"], str(plan.get("trigger", "")))
        start = 0
        for i in range(1, len(self.steps) + 1):
            if i < len(self.steps) and self.steps[i].subgoal == self.steps[start].subgoal:
                continue
            outcome = "still active" if i == len(self.steps) else _outcome(triggers.get(i))
            spans.append(SubgoalSpan(self.steps[start].subgoal, start, i, outcome))
            start = i
        return spans

    def plan_index_at(self, step: int) -> int | None:
        """The plan in effect at ``step``: the last one adopted at or before it."""
        i = bisect.bisect_right(self.plan_steps, step) - 1
        return i if i >= 0 else None

    def next_plan_step(self, step: int) -> int | None:
        i = bisect.bisect_right(self.plan_steps, step)
        return self.plan_steps[i] if i < len(self.plan_steps) else None

    def previous_plan_step(self, step: int) -> int | None:
        i = bisect.bisect_left(self.plan_steps, step) - 1
        return self.plan_steps[i] if i >= 0 else None

    def span_index_at(self, step: int) -> int:
        return max(bisect.bisect_right(self._span_starts, step) - 1, 0)

    def return_to(self, step: int) -> float:
        return sum(s.reward for s in self.steps[: step + 1])


def run_buttons(run_path: Path) -> list[str]:
    """A run's action names (action index -> button), from its config.toml as the agent loop
    reads them; the defaults when the file is missing or unreadable."""
    from pokedreamer.config import EnvSettings

    env: dict[str, Any] = {}
    try:
        with (run_path / "config.toml").open("rb") as fh:
            env = tomllib.load(fh).get("env", {})
    except (OSError, tomllib.TOMLDecodeError):
        pass
    buttons = list(env.get("buttons") or EnvSettings().buttons)
    return buttons + (["noop"] if env.get("noop") else [])


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


class Timeline(Widget):
    """The episode across the widget's width: subgoal spans as coloured bands, plans as ▼, the
    current step as ▲. A click jumps there."""

    DEFAULT_CSS = """
    Timeline {
        height: 3;
    }
    """

    def __init__(self, trace: EpisodeTrace, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.trace = trace
        self.step = 0

    def column_step(self, column: int) -> int:
        """The first step a column stands for."""
        width = max(self.size.width, 1)
        return min(column * len(self.trace) // width, max(len(self.trace) - 1, 0))

    def step_column(self, step: int) -> int:
        width = max(self.size.width, 1)
        return min(step * width // max(len(self.trace), 1), width - 1)

    def render(self) -> Text:
        width = self.size.width
        trace = self.trace
        if not len(trace) or width <= 0:
            return Text("empty episode", style="dim")
        bands = Text()
        for column in range(width):
            index = trace.span_index_at(self.column_step(column))
            span = trace.spans[index]
            if span.subgoal is None:
                bands.append("·", "grey35")
            else:
                bands.append("█", SPAN_COLOURS[index % len(SPAN_COLOURS)])
        marks = [" "] * width
        for plan_step in trace.plan_steps:
            marks[self.step_column(plan_step)] = "▼"
        cursor = [" "] * width
        at = self.step_column(self.step)
        cursor[at] = "▲"
        label = f" step {self.step}"
        if at + 1 + len(label) <= width:
            cursor[at + 1 : at + 1 + len(label)] = label
        elif at - len(label) >= 0:
            cursor[at - len(label) : at] = label
        return Text("\n").join(
            [Text("".join(marks), "bold yellow"), bands, Text("".join(cursor), "bold")]
        )

    def on_click(self, event: events.Click) -> None:
        screen = self.screen
        if isinstance(screen, ReplayScreen):
            screen.go(self.column_step(event.x))


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

    def compose(self) -> ComposeResult:
        with Horizontal(id="top"):
            with Vertical(id="frame-box", classes="screen-box"):
                yield GameScreen("empty episode", id="frame")
            with Vertical(id="side"):
                yield StatePanel(id="state")
                yield DialogPanel(id="dialog")
                yield Static(id="terms")
        yield Timeline(self.trace, id="timeline")
        with Horizontal(id="bottom"):
            yield DataTable(id="plans", cursor_type="row", zebra_stripes=True)
            yield Static(id="spans")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        titles = {
            "#frame-box": self.title_text,
            "#state": "game state",
            "#dialog": "dialog",
            "#terms": "reward terms",
            "#timeline": "subgoal trace (▼ plan, ▲ here; click to jump)",
            "#plans": "plans (enter jumps, i opens)",
            "#spans": "subgoals: when each was active and how it ended",
        }
        for selector, title in titles.items():
            self.query_one(selector).border_title = title
        table = self.query_one("#plans", DataTable)
        for name, width in (("step", 6), ("trigger", 16), ("source", 9), ("latency", 7)):
            table.add_column(name, key=name, width=width)
        table.add_column("goal", key="goal")
        for i, plan in enumerate(self.trace.plans):
            row = trace_row(plan)
            table.add_row(str(plan["_at"]), *row[1:], key=str(i))
        self.go(0)

    def on_resize(self) -> None:
        width, height = self.app.size
        frame = self.query_one("#frame", GameScreen)
        frame.half = width < FULL_SIZE_AT[0] or height < FULL_SIZE_AT[1]

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

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.go(self.trace.plans[int(event.row_key.value)]["_at"])


class ReplayApp(App[None]):
    """The replay viewer over one recorded episode."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "pokedreamer replay"
    ENABLE_COMMAND_PALETTE = False

    def __init__(
        self, reader: EpisodeReader, run_name: str = "", buttons: list[str] | None = None
    ) -> None:
        super().__init__()
        self.trace = EpisodeTrace(reader)
        # episodes/<n>/ sits in the run folder, whose config.toml names the buttons.
        self.buttons = buttons if buttons is not None else run_buttons(reader.path.parent.parent)
        cut = "" if reader.ended else ", cut short"
        where = f"{run_name} " if run_name else ""
        self.episode_title = f"{where}episode {reader.number} ({len(self.trace)} steps{cut})"

    def get_default_screen(self) -> ReplayScreen:
        return ReplayScreen(self.trace, self.episode_title, self.buttons)


def run_replay(run_path: Path, episode: int | None = None) -> None:
    """Opens the replay viewer on episode ``episode`` of the run in ``run_path`` (default: the
    latest). A missing run or episode is a one-line UserError, raised before the UI starts."""
    run = RunDir.open(run_path)
    reader = open_episode(run, episode)
    ReplayApp(reader, run.path.name).run()
