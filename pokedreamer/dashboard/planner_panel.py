"""System 2 on screen: the goal and its subgoal queue, the planner's trace, and one plan opened up
with the full prompt and response that produced it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

PROGRESS_CELLS = 12
MAX_TRACE_ROWS = 500  # older plans stay in plans.jsonl; the replay viewer reads them all
SOURCE_STYLES = {"llm": "cyan", "heuristic": "green", "fallback": "bold yellow"}


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


class PlanTrace(DataTable[Any]):
    """The planner's trace, newest last; enter (or a click) opens an entry."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.records: list[dict[str, Any]] = []

    def on_mount(self) -> None:
        self.add_column("step", key="step", width=6)
        self.add_column("trigger", key="trigger", width=16)
        self.add_column("source", key="source", width=9)
        self.add_column("latency", key="latency", width=7)
        self.add_column("goal", key="goal")

    def add_record(self, record: dict[str, Any]) -> None:
        follow = self.row_count == 0 or self.cursor_row >= self.row_count - 1
        self.records.append(record)
        self.add_row(*trace_row(record), key=str(len(self.records) - 1))
        if self.row_count > MAX_TRACE_ROWS:
            self.remove_row(self.coordinate_to_cell_key((0, 0)).row_key)
        if follow:  # keep the newest in view unless the user is reading an older one
            self.move_cursor(row=self.row_count - 1)

    def record_at_cursor(self) -> dict[str, Any] | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value
        return self.records[int(key)] if key is not None else None


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
