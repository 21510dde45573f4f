"""One planning event opened up: the plan with its rationale, the full prompt and the response."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from pokedreamer.dashboard.widgets.planner_panel import plan_detail_text


class PlanDetail(ModalScreen[None]):
    """One planning event opened up; escape or q closes it."""

    BINDINGS = [Binding("escape,q,enter", "dismiss", "close")]

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__()
        self.record = record

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="plan-detail"):
            yield Static(plan_detail_text(self.record), id="plan-detail-text")

    def on_mount(self) -> None:
        box = self.query_one("#plan-detail")
        box.border_title = f"plan at step {self.record.get('step')}"
        box.focus()
