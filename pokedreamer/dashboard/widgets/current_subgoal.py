"""The active subgoal in two lines, for terminals too small for the goal panel beside the
screen: the subgoal, then its potential φ as progress."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from pokedreamer.dashboard.widgets.planner_panel import progress_bar


def current_subgoal_text(subgoals: Sequence[str], progress: float) -> Text:
    """``▶ subgoal`` over its progress bar; one line ends with an ellipsis rather than wrapping
    onto the progress line."""
    if not subgoals:
        return Text("no subgoal", "dim", no_wrap=True, overflow="ellipsis")
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("▶ ", "bold cyan")
    text.append(subgoals[0], "bold")
    text.append("\n  ")
    text.append_text(progress_bar(progress))
    return text


class CurrentSubgoal(Static):
    """The active subgoal and its progress."""

    DEFAULT_CSS = """
    CurrentSubgoal {
        height: 2;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(current_subgoal_text((), 0.0), id=id)

    def show(self, subgoals: Sequence[str], progress: float) -> None:
        # No layout pass: two lines, whatever the subgoal says.
        self.update(current_subgoal_text(subgoals, progress), layout=False)
