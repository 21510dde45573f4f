"""System 2 on screen: the goal and its subgoal queue, the planner's trace, and one planning event
written out with the full prompt and response that produced it (``screens/plan_detail.py``)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

PROGRESS_CELLS = 12
MAX_TRACE_ROWS = 100
"""Planning events the live trace keeps; older ones stay in plans.jsonl, where the replay viewer
reads them all."""
SOURCE_STYLES = {
    "llm": "cyan",
    "heuristic": "green",
    "fallback": "bold yellow",
    "human": "bold magenta",
}


def progress_bar(progress: float, cells: int = PROGRESS_CELLS) -> Text:
    progress = min(max(progress, 0.0), 1.0)
    filled = round(progress * cells)
    return Text.assemble(
        ("█" * filled, "cyan"), ("░" * (cells - filled), "grey35"), f" {progress:4.0%}"
    )


def goal_text(goal: str, subgoals: Sequence[str], progress: float) -> Text:
    """The goal, then the subgoal queue: the first is active, with its potential as progress."""
    text = Text()
    text.append("goal ", "bold")
    text.append(goal or "none", "" if goal else "dim")
    if not subgoals:
        text.append("\nno subgoal", "dim")
        return text
    text.append("\n▶ ", "bold cyan")
    text.append(subgoals[0], "bold")
    text.append("\n  ")
    text.append_text(progress_bar(progress))
    for number, subgoal in enumerate(subgoals[1:], 2):
        text.append(f"\n{number:>2} {subgoal}", "grey70")
    return text


def describe_subgoals(plan: dict[str, Any] | None) -> list[str]:
    """A recorded plan's subgoals as one line each, the way the agent loop names them."""
    if not plan:
        return []
    subgoals = plan.get("subgoals") or []
    try:
        from pokedreamer.planner.subgoals import Plan

        return [s.describe() for s in Plan.model_validate(plan).subgoals]
    except (ValueError, TypeError):  # a record from an older schema still shows, raw
        return [json.dumps(s, ensure_ascii=False) for s in subgoals]


def latency_text(record: dict[str, Any]) -> str:
    return f"{record['latency_s']:.2f} s" if record.get("latency_s") else "—"


def trace_row(record: dict[str, Any]) -> tuple[Text | str, ...]:
    """One planning event as a row: step, trigger, source, latency, and the goal or the error."""
    source = str(record.get("source", "?"))
    plan = record.get("plan") or {}
    what = Text(str(plan.get("goal", "")))
    if record.get("error"):
        what = Text(f"{record['error']} → {plan.get('goal', 'no plan')}", "yellow")
    return (
        str(record.get("step", "")),
        str(record.get("trigger", "")),
        Text(source, SOURCE_STYLES.get(source, "")),
        latency_text(record),
        what,
    )


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:  # a vision request: text parts and images
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
        else:
            parts.append(f"[{part.get('type', 'part') if isinstance(part, dict) else 'part'}]")
    return "\n".join(parts)


def plan_detail_text(record: dict[str, Any]) -> Text:
    """Everything about one planning event: why, how long, the plan, the prompt, the answer."""
    text = Text()
    text.append(f"step {record.get('step')} · {record.get('trigger')} · ", "bold")
    source = str(record.get("source", "?"))
    text.append(source, SOURCE_STYLES.get(source, ""))
    text.append(
        f" · latency {latency_text(record)} · tokens {record.get('prompt_tokens', 0)} in, "
        f"{record.get('completion_tokens', 0)} out\n"
    )
    if record.get("error"):
        text.append(f"error: {record['error']}\n", "yellow")
    plan = record.get("plan")
    text.append("\nPLAN\n", "bold underline")
    if plan:
        text.append(f"goal: {plan.get('goal', '')}\n")
        for number, subgoal in enumerate(describe_subgoals(plan), 1):
            text.append(f"{number:>2}. {subgoal}\n")
        if plan.get("rationale"):
            text.append(f"rationale: {plan['rationale']}\n", "italic")
    else:
        text.append("none\n", "dim")
    text.append("\nPROMPT\n", "bold underline")
    prompt = record.get("prompt")
    if not prompt:
        text.append(f"none: the {source} planner answers without one\n", "dim")
    for message in prompt or []:
        text.append(f"── {message.get('role', '?')} ──\n", "bold magenta")
        text.append(_message_text(message) + "\n")
    text.append("\nRESPONSE\n", "bold underline")
    response = record.get("raw_response")
    text.append(response if response else "none", "" if response else "dim")
    return text


class PlanTrace(Widget, can_focus=True):
    """The planner's trace, newest last, as a log: up/down (or a click) picks an entry, enter
    opens it. The cursor stays on the newest entry unless moved up.

    Drawn line by line from Strips made once per entry: a new plan costs one Strip and a repaint
    of this widget's few visible lines. (A DataTable re-renders every visible cell whenever a
    row changes, and changes its size, which lays out the whole screen again, as rows come and
    go; the heuristic planner may plan many times a second.)"""

    BINDINGS = [
        Binding("up", "move(-1)", "up", show=False),
        Binding("down", "move(1)", "down", show=False),
        Binding("pageup", "move(-10)", "page up", show=False),
        Binding("pagedown", "move(10)", "page down", show=False),
        Binding("home", "move(-1000000)", "first", show=False),
        Binding("end", "move(1000000)", "last", show=False),
        Binding("enter", "select", "open", show=False),
    ]

    class Selected(Message):
        """An entry was opened (enter, or a click on it)."""

        def __init__(self, record: dict[str, Any]) -> None:
            super().__init__()
            self.record = record

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.records: deque[dict[str, Any]] = deque(maxlen=MAX_TRACE_ROWS)
        self._strips: deque[Strip] = deque(maxlen=MAX_TRACE_ROWS)
        self.cursor_row = 0
        self._top = 0  # the entry on the first line below the header

    @property
    def shown(self) -> int:
        """How many planning events the trace holds (at most MAX_TRACE_ROWS)."""
        return len(self.records)

    def add_records(self, records: list[dict[str, Any]]) -> None:
        """Appends planning events, the oldest dropped beyond MAX_TRACE_ROWS."""
        if not records:
            return
        following = self.cursor_row >= len(self.records) - 1
        dropped = max(len(self.records) + len(records) - MAX_TRACE_ROWS, 0)
        for record in records[-MAX_TRACE_ROWS:]:  # no Strip for an entry dropped at once
            self.records.append(record)
            self._strips.append(_trace_strip(record))
        if following:
            self.cursor_row = len(self.records) - 1
        else:  # reading an older entry: it stays under the cursor while it is kept
            self.cursor_row = max(self.cursor_row - dropped, 0)
            self._top = max(self._top - dropped, 0)
        self._scroll_to_cursor()
        self.refresh()

    def continue_from(self, other: PlanTrace) -> None:
        """Holds ``other``'s entries, its cursor and scroll: a widget taken out of the screen
        cannot be mounted again, so a re-arranged screen shows the trace in a new one."""
        self.records = other.records.copy()
        self._strips = other._strips.copy()
        self.cursor_row, self._top = other.cursor_row, other._top
        self.refresh()

    def move_cursor(self, *, row: int) -> None:
        self.cursor_row = min(max(row, 0), max(len(self.records) - 1, 0))
        self._scroll_to_cursor()
        self.refresh()

    def record_at_cursor(self) -> dict[str, Any] | None:
        return self.records[self.cursor_row] if self.records else None

    def action_move(self, by: int) -> None:
        self.move_cursor(row=self.cursor_row + by)

    def action_select(self) -> None:
        record = self.record_at_cursor()
        if record is not None:
            self.post_message(self.Selected(record))

    def on_click(self, event: events.Click) -> None:
        if event.y >= 1 and self._top + event.y - 1 < len(self.records):
            self.move_cursor(row=self._top + event.y - 1)
            self.action_select()

    def on_resize(self) -> None:
        self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        lines = max(self.size.height - 1, 1)
        if self.cursor_row < self._top:
            self._top = self.cursor_row
        elif self.cursor_row >= self._top + lines:
            self._top = self.cursor_row - lines + 1

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            return _TRACE_HEADER.crop_extend(0, width, None)
        index = self._top + y - 1
        if index >= len(self.records):
            return Strip.blank(width)
        strip = self._strips[index]
        if index == self.cursor_row:
            style = _CURSOR_FOCUSED if self.has_focus else _CURSOR
            strip = strip.apply_style(style)
        return strip.crop_extend(0, width, None)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


_TRACE_WIDTHS = (6, 16, 9, 7)  # step, trigger, source, latency; the goal takes the rest
_CURSOR = Style(reverse=True, dim=True)
_CURSOR_FOCUSED = Style(reverse=True)


def _trace_line(cells: Sequence[Text | str]) -> Text:
    line = Text(no_wrap=True, overflow="crop")
    for cell, width in zip(cells, (*_TRACE_WIDTHS, None), strict=True):
        text = cell.copy() if isinstance(cell, Text) else Text(cell)
        if width is not None:
            text.truncate(width, pad=True)
            text.append(" ")
        line.append_text(text)
    return line


def _trace_strip(record: dict[str, Any]) -> Strip:
    line = _trace_line(trace_row(record))
    return Strip(list(line.render(_CONSOLE)), line.cell_len)


_CONSOLE = Console(width=1000, color_system="truecolor", force_terminal=True)
"""Renders a trace line to segments; wide, as the widget crops each line to its own width."""
_HEADER_LINE = _trace_line(("step", "trigger", "source", "latency", "goal"))
_HEADER_LINE.stylize("bold")
_TRACE_HEADER = Strip(list(_HEADER_LINE.render(_CONSOLE)), _HEADER_LINE.cell_len)
