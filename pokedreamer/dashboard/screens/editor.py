"""The prompt editor: open a planner template, edit it, render it against the game as it is now,
save it to the user's prompts folder. A save posts ``PromptEditor.Saved`` upward; the live
dashboard then tells the loop to read that folder (``UsePrompts``), and its planner reads the file
again at its next plan.

Templates are plain text with ``{{field}}`` slots (pokedreamer.planner.prompts), so highlighting
means the slots: a known field in one colour, an unknown one (which the planner would refuse) in
red. Nothing is saved that does not render.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from rich.style import Style
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static, TextArea
from textual.widgets.option_list import Option
from textual.widgets.text_area import TextAreaTheme

from pokedreamer.errors import UserError, first_line
from pokedreamer.files import write_atomic
from pokedreamer.planner.prompts import (
    FIELDS,
    TEMPLATE_SUFFIX,
    PromptError,
    field_text,
    parse_template,
    sample_fields,
)

if TYPE_CHECKING:
    from pokedreamer.env.state import GameState
    from pokedreamer.planner.prompts import PromptLibrary

_SLOT = re.compile(r"\{\{([^\n]*?)\}\}")  # as pokedreamer.planner.prompts reads them
THEME = TextAreaTheme(
    name="pokedreamer-prompt",
    base_style=Style(color="#e0e0e0", bgcolor="#1e1e1e"),
    gutter_style=Style(color="#6e6e6e", bgcolor="#1e1e1e"),
    cursor_style=Style(color="#1e1e1e", bgcolor="#e0e0e0"),
    cursor_line_style=Style(bgcolor="#2a2a2a"),
    selection_style=Style(bgcolor="#44475a"),
    syntax_styles={
        "slot": Style(color="#66d9ef", bold=True),
        "slot.unknown": Style(color="#ff5555", bold=True, underline=True),
    },
)


def slot_highlights(line: str) -> list[tuple[int, int, str]]:
    """Each ``{{field}}`` on a line as (start byte, end byte, highlight name), the way TextArea
    takes highlights (UTF-8 byte offsets)."""
    spans = []
    for match in _SLOT.finditer(line):
        start = len(line[: match.start()].encode("utf-8"))
        end = start + len(match.group(0).encode("utf-8"))
        known = match.group(1).strip() in FIELDS
        spans.append((start, end, "slot" if known else "slot.unknown"))
    return spans


class TemplateArea(TextArea):
    """A TextArea that highlights template slots (no tree-sitter grammar needed)."""

    def _build_highlight_map(self) -> None:
        self._line_cache.clear()
        highlights = self._highlights
        highlights.clear()
        for row, line in enumerate(self.document.lines):
            if "{{" in line:
                highlights[row].extend(slot_highlights(line))


class PromptEditor(Screen[None]):
    """Edit the planner's templates; ctrl+r renders, ctrl+s saves, escape goes back."""

    BINDINGS = [
        Binding("ctrl+r", "render", "render against the game"),
        Binding("ctrl+s", "save", "save"),
        Binding("escape", "close", "back"),
    ]

    class Saved(Message):
        """A template was saved in ``folder``: the planner should read its templates there."""

        def __init__(self, folder: Path) -> None:
            super().__init__()
            self.folder = folder

    def __init__(
        self,
        library: PromptLibrary,
        folder: Path,
        state: GameState | None,
        goal: str = "",
        planner: str = "",
    ) -> None:
        super().__init__(id="prompt-editor")
        self.library = library
        """The templates shown: the user's folder over the built-in ones, as the planner reads."""
        self.folder = folder
        """Where a saved template goes (the user's prompts folder)."""
        self.state = state
        """The game state to render against; None before the first step."""
        self.goal = goal
        self.planner = planner
        """The loop's planner kind, to say when a saved template takes effect."""
        self.name_open: str | None = None
        self.drafts: dict[str, str] = {}
        """Unsaved text by template name: switching templates keeps edits."""

    def compose(self) -> ComposeResult:
        with Horizontal(id="editor-body"):
            yield OptionList(id="templates")
            area = TemplateArea(id="template", show_line_numbers=True, soft_wrap=True)
            area.register_theme(THEME)
            area.theme = THEME.name
            yield area
            yield TextArea(id="preview", read_only=True, soft_wrap=True)
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#templates").border_title = "templates"
        self.query_one("#preview").border_title = "rendered against the game now"
        names = self.library.names()
        options = self.query_one("#templates", OptionList)
        for name in names:
            options.add_option(Option(self._label(name), id=name))
        first = "user" if "user" in names else names[0]
        options.highlighted = names.index(first)
        self.open(first)
        self.query_one("#template", TemplateArea).focus()

    def _label(self, name: str) -> str:
        try:
            builtin = self.library.template(name).builtin
        except UserError:
            return f"{name} (unreadable)"
        return f"{name} ({'built-in' if builtin else 'yours'})"

    @property
    def area(self) -> TemplateArea:
        return self.query_one("#template", TemplateArea)

    def say(self, message: str, error: bool = False) -> None:
        bar = self.query_one("#status", Static)
        bar.update(first_line(message))
        bar.set_class(error, "-error")

    def open(self, name: str) -> None:
        """Shows template ``name``: its unsaved draft, else the file the planner reads now."""
        if self.name_open is not None:
            self.drafts[self.name_open] = self.area.text
        self.name_open = name
        if name in self.drafts:
            text, source = self.drafts[name], "unsaved edits"
        else:
            try:
                template = self.library.template(name)
            except UserError as exc:  # a user file that no longer loads: show it to fix it
                path = self.folder / f"{name}{TEMPLATE_SUFFIX}"
                text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
                self.area.load_text(text)
                self.area.border_title = name
                self.say(str(exc), error=True)
                return
            text, source = template.text, template.source
        self.area.load_text(text)
        self.area.border_title = f"{name} — {source}"
        self.validate()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None and event.option.id != self.name_open:
            self.open(event.option.id)
            self.area.focus()

    def validate(self) -> str | None:
        """Parses the text and renders it against the current state; shows the result or the
        error. Returns the rendered prompt, or None when the template is invalid."""
        assert self.name_open is not None
        name = self.name_open
        try:
            template = parse_template(name, self.area.text, f"{name}{TEMPLATE_SUFFIX}")
            if self.state is not None:
                fields = sample_fields(self.state, trigger="asked by a person", goal=self.goal)
                values = {name: field_text(value) for name, value in fields.items()}
            else:
                values = {name: f"<{name}>" for name in FIELDS}
            rendered = template.render(values)  # as PromptLibrary.render fills it
        except PromptError as exc:
            self.say(f"✗ {exc}", error=True)
            return None
        preview = self.query_one("#preview", TextArea)
        preview.load_text(rendered)
        against = "the game now" if self.state is not None else "placeholders (no step yet)"
        self.say(f"✓ {name} renders: {len(rendered):,} characters against {against}")
        return rendered

    def action_render(self) -> None:
        self.validate()

    def action_save(self) -> None:
        if self.validate() is None:
            return  # the error is on screen; a template the planner would refuse is not saved
        assert self.name_open is not None
        name = self.name_open
        path = self.folder / f"{name}{TEMPLATE_SUFFIX}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(path, self.area.text.encode("utf-8"))
        except OSError as exc:
            self.say(f"✗ cannot save {path}: {exc}", error=True)
            return
        self.drafts.pop(name, None)
        if self.library.prompts_dir is None:
            # The library looks at its folder on every read, so this takes effect at once;
            # templates not saved there stay the built-in ones.
            self.library.prompts_dir = self.folder
        self.post_message(self.Saved(self.folder))
        note = "the next LLM plan uses it" if self.planner == "llm" else "LLM plans will use it"
        try:
            self.library.template(name)  # read back as the planner will read it
        except UserError as exc:
            self.say(f"✗ saved, but the planner cannot read it: {exc}", error=True)
            return
        options = self.query_one("#templates", OptionList)
        options.replace_option_prompt(name, self._label(name))
        self.say(f"✓ saved {path}: {note}")

    def action_close(self) -> None:
        self.app.pop_screen()
