"""A person's subgoal for the agent: pick its kind and fill in its fields, or type it as JSON.

What is typed is checked exactly as an LLM's answer is — the closed Subgoal schema, then the
game's facts (``planner.service.read_subgoal``) — and a subgoal with a problem is not sent: the
problem is shown under the fields, in one line. The screen returns the ``SetSubgoal`` command to
send (``subgoal=None`` gives the subgoal back to the planner), or None when cancelled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from pokedreamer.agent.events import SetSubgoal
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.service import read_subgoal
from pokedreamer.planner.subgoals import SUBGOAL_TYPES

AS_JSON = "json"
"""The kind chooser's last entry: the whole subgoal typed as one JSON object."""
KINDS: dict[str, type[BaseModel]] = {t.model_fields["kind"].default: t for t in SUBGOAL_TYPES}
FIELDS: tuple[str, ...] = tuple(
    dict.fromkeys(name for t in SUBGOAL_TYPES for name in t.model_fields if name != "kind")
)
"""Every field any kind has (map, x, y, contains, badge, event), one input each."""
SHORT_LIST = 8
"""Name the game's maps, events or badges in a field's hint when there are no more than this."""


def field_hint(kind: type[BaseModel], name: str, facts: GameFacts) -> str:
    """What the field wants (its description in the schema), with the game's names when short."""
    hint = kind.model_fields[name].description or name
    names: Mapping[str, Any] | tuple[str, ...] = {}
    if name == "map":
        names = facts.maps
    elif name == "event":
        names = facts.events
    elif name == "badge":
        names = facts.badges
    if 0 < len(names) <= SHORT_LIST:
        hint += f" Here: {', '.join(names)}."
    return hint


def form_json(kind: str, values: Mapping[str, str]) -> str:
    """The subgoal the fields spell, as JSON: whole numbers as numbers, empty fields left out
    (the schema's defaults apply, or it names what is missing)."""
    subgoal: dict[str, Any] = {"kind": kind}
    for name, value in values.items():
        value = value.strip()
        if value:
            subgoal[name] = int(value) if value.lstrip("-").isdigit() else value
    return json.dumps(subgoal)


class SubgoalInput(ModalScreen[SetSubgoal | None]):
    """The subgoal input: a kind, its fields (or JSON), the problem if any, and the keys."""

    BINDINGS = [
        Binding("escape", "cancel", "cancel"),
        Binding("ctrl+s", "send", "send"),
        Binding("ctrl+r", "release", "give it back to the planner"),
    ]
    DEFAULT_CSS = """
    SubgoalInput { align: center middle; }
    #subgoal-box {
        width: 78; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    #subgoal-box .field { height: 1; margin: 1 0 0 0; }
    #subgoal-box .field Label { width: 9; }
    #subgoal-box .field Input, #subgoal-kind { width: 1fr; }
    #subgoal-problem { color: $error; text-style: bold; height: auto; margin: 1 0 0 0; }
    #subgoal-keys { color: $text-muted; margin: 1 0 0 0; }
    #subgoal-send { margin: 1 0 0 9; }
    """

    def __init__(self, facts: GameFacts, pursued: str = "") -> None:
        """``pursued``: the subgoal the agent pursues now, described, to show above the form."""
        super().__init__()
        self.facts = facts
        self.pursued = pursued
        self.problem = ""
        """The last problem shown; "" when none."""

    def compose(self) -> ComposeResult:
        with Vertical(id="subgoal-box"):
            yield Static(f"pursued now: {self.pursued or 'no subgoal'}", id="subgoal-now")
            options = [(kind, kind) for kind in KINDS] + [("type it as JSON", AS_JSON)]
            # Compact widgets, a line each: the whole form fits an 80×24 terminal.
            with Horizontal(classes="field"):
                yield Label("kind")
                yield Select(
                    options, value="go_to_map", allow_blank=False, compact=True, id="subgoal-kind"
                )
            for name in FIELDS:
                with Horizontal(classes="field", id=f"field-{name}"):
                    yield Label(name)
                    yield Input(compact=True, id=f"subgoal-{name}")
            with Horizontal(classes="field", id="field-json"):
                yield Label("JSON")
                yield Input(
                    placeholder='{"kind": "go_to_tile", "map": "PALLET_TOWN", "x": 5, "y": 3}',
                    compact=True,
                    id="subgoal-json",
                )
            yield Button("send", compact=True, id="subgoal-send")
            yield Static("", id="subgoal-problem")
            yield Static(
                "enter sends · escape cancels · ctrl+r gives it back to the planner",
                id="subgoal-keys",
            )

    def on_mount(self) -> None:
        self.query_one("#subgoal-box").border_title = "a subgoal for the agent"
        self.show_fields("go_to_map")

    @property
    def kind(self) -> str:
        return str(self.query_one("#subgoal-kind", Select).value)

    def show_fields(self, kind: str) -> None:
        """Shows the inputs ``kind`` has, with what each wants, and focuses the first."""
        model = KINDS.get(kind)
        shown = [n for n in FIELDS if model is not None and n in model.model_fields]
        for name in FIELDS:
            self.query_one(f"#field-{name}").display = name in shown
            if model is not None and name in shown:
                self.query_one(f"#subgoal-{name}", Input).placeholder = field_hint(
                    model, name, self.facts
                )
        self.query_one("#field-json").display = kind == AS_JSON
        first = f"#subgoal-{shown[0]}" if shown else "#subgoal-json"
        self.query_one(first if shown or kind == AS_JSON else "#subgoal-send").focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.show_fields(str(event.value))
        self.say("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_send()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_send()

    def typed(self) -> str:
        """The subgoal as typed: the JSON input, or the shown fields of the kind chosen."""
        kind = self.kind
        if kind == AS_JSON:
            return self.query_one("#subgoal-json", Input).value
        model = KINDS[kind]
        values = {
            name: self.query_one(f"#subgoal-{name}", Input).value
            for name in FIELDS
            if name in model.model_fields
        }
        return form_json(kind, values)

    def say(self, problem: str) -> None:
        self.problem = problem
        self.query_one("#subgoal-problem", Static).update(problem)

    def action_send(self) -> None:
        subgoal, problem = read_subgoal(self.typed(), self.facts)
        if subgoal is None:
            self.say(f"not sent: {problem}")
            return
        self.dismiss(SetSubgoal(subgoal.model_dump_json()))

    def action_release(self) -> None:
        self.dismiss(SetSubgoal(None))

    def action_cancel(self) -> None:
        self.dismiss(None)
