"""The replay viewer's timeline: a recorded episode across the widget's width."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget

from pokedreamer.dashboard.episode_trace import EpisodeTrace

SPAN_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_green")
"""A subgoal span's colour, by its index, on the timeline and in the list of spans."""


class Timeline(Widget):
    """The episode across the widget's width: subgoal spans as coloured bands, plans as ▼, the
    current step as ▲. A click asks its screen to jump there (``Jump``)."""

    DEFAULT_CSS = """
    Timeline {
        height: 3;
    }
    """

    class Jump(Message):
        """The user clicked the timeline: show ``step``."""

        def __init__(self, step: int) -> None:
            super().__init__()
            self.step = step

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
        self.post_message(self.Jump(self.column_step(event.x)))
