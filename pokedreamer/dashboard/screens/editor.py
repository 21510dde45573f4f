"""The prompt editor: open a planner template, edit it, render it against the game as it is now,
save it to the user's prompts folder, score it on the planner benchmark. A save posts
``PromptEditor.Saved`` upward; the live dashboard then tells the loop to read that folder
(``UsePrompts``), and its planner reads the file again at its next plan.

ctrl+t scores the templates as edited (unsaved drafts included) with ``pokedreamer eval planner``
in a child process, on the quick subset of scenarios and then on all of them, beside the score of
the saved templates (computed once, until the next save); ctrl+t again cancels.

Templates are plain text with ``{{field}}`` slots (pokedreamer.planner.prompts), so highlighting
means the slots: a known field in one colour, an unknown one (which the planner would refuse) in
red. Nothing is saved that does not render.
"""

from __future__ import annotations

import re
import shutil
import tempfile
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

from pokedreamer.config import LLM_KINDS
from pokedreamer.dashboard.widgets.planner_score import (
    SUBSETS,
    PlannerScore,
    Score,
    ScoreCancelled,
    ScoreFailed,
    Scoring,
    eval_command,
    write_prompts,
)
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
    from pokedreamer.config import Settings
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


def scoring_kind(planner: str) -> str:
    """The planner that scores prompts: the loop's own when it reads them, else the heuristic."""
    return planner if planner in ("llm", "local") else "heuristic"


class PromptEditor(Screen[None]):
    """Edit the planner's templates; ctrl+r renders, ctrl+s saves, ctrl+t scores, escape goes
    back."""

    BINDINGS = [
        Binding("ctrl+r", "render", "render against the game"),
        Binding("ctrl+s", "save", "save"),
        Binding("ctrl+t", "score", "score / cancel"),
        Binding("escape", "close", "back"),
    ]

    class Saved(Message):
        """A template was saved in ``folder``: the planner should read its templates there."""

        def __init__(self, folder: Path) -> None:
            super().__init__()
            self.folder = folder

    class Scored(Message):
        """A score came back (from the scoring worker's thread)."""

        def __init__(self, which: str, subset: str, score: Score) -> None:
            super().__init__()
            self.which, self.subset, self.score = which, subset, score

    class ScoreProgress(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class ScoringEnded(Message):
        """The scoring stopped: done, cancelled, or ``error`` (one line)."""

        def __init__(self, error: str | None = None, cancelled: bool = False) -> None:
            super().__init__()
            self.error, self.cancelled = error, cancelled

    def __init__(
        self,
        library: PromptLibrary,
        folder: Path,
        state: GameState | None,
        goal: str = "",
        planner: str = "",
        settings: Settings | None = None,
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
        self.settings = settings
        """The loop's settings, which the scoring command reads (without the API key, which
        it takes from the environment); None: it reads ./config.toml as any command does."""
        self.saved_scores: dict[str, Score] = {}
        """The saved templates' score by subset, until the next save."""
        self.scoring: Scoring | None = None
        """The scoring under way, if any."""

    def compose(self) -> ComposeResult:
        with Horizontal(id="editor-body"):
            yield OptionList(id="templates")
            area = TemplateArea(id="template", show_line_numbers=True, soft_wrap=True)
            area.register_theme(THEME)
            area.theme = THEME.name
            yield area
            yield TextArea(id="preview", read_only=True, soft_wrap=True)
        yield PlannerScore(id="score")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#templates").border_title = "templates"
        self.query_one("#preview").border_title = "rendered against the game now"
        names = self.library.names()
        options = self.query_one("#templates", OptionList)
        for name in names:
            options.add_option(Option(self._label(name), id=name))
        self.query_one(PlannerScore).planner = scoring_kind(self.planner)
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
        self._forget_saved_scores()
        if self.library.prompts_dir is None:
            # The library looks at its folder on every read, so this takes effect at once;
            # templates not saved there stay the built-in ones.
            self.library.prompts_dir = self.folder
        self.post_message(self.Saved(self.folder))
        note = "the next LLM plan uses it" if self.planner in LLM_KINDS else "LLM plans will use it"
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

    # --- scoring ------------------------------------------------------------------------------

    def action_score(self) -> None:
        if self.scoring is not None:
            self.scoring.cancel()
            self.say("cancelling the scoring…")
            return
        edited = self._texts(edited=True)
        saved = self._texts(edited=False)
        if edited is None or saved is None:
            return  # the error is on screen
        folder = Path(tempfile.mkdtemp(prefix="pokedreamer-score-"))
        try:
            write_prompts(folder / "edited", edited)
            write_prompts(folder / "saved", saved)
            config = None
            if self.settings is not None:
                config = folder / "config.toml"
                config.write_text(self.settings.to_toml(), encoding="utf-8")
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            self.say(f"✗ cannot write the prompts to score: {exc}", error=True)
            return
        scoring = self.scoring = Scoring()
        board = self.query_one(PlannerScore)
        board.scores = {k: v for k, v in board.scores.items() if k[0] == "saved"}
        board.note = "scoring… ctrl+t cancels"
        board.refresh_text()
        self.say(f"scoring the edited prompts with the {scoring_kind(self.planner)} planner…")
        self.run_worker(
            lambda: self._score(scoring, folder, config), thread=True, exit_on_error=False
        )

    def _texts(self, edited: bool) -> dict[str, str] | None:
        """Every template's text, as edited (drafts and the open one) or as saved; None, with
        the error shown, when one does not load."""
        texts = {}
        for name in self.library.names():
            try:
                if edited and name == self.name_open:
                    text = self.area.text
                elif edited and name in self.drafts:
                    text = self.drafts[name]
                else:
                    text = self.library.template(name).text
                parse_template(name, text, f"{name}{TEMPLATE_SUFFIX}")
            except UserError as exc:
                self.say(f"✗ not scored: {exc}", error=True)
                return None
            texts[name] = text
        return texts

    def _score(self, scoring: Scoring, folder: Path, config: Path | None) -> None:
        """The worker: edited then saved (unless cached), the quick subset then all."""
        kind = scoring_kind(self.planner)
        try:
            for subset in SUBSETS:
                for which in ("edited", "saved"):
                    cached = self.saved_scores.get(subset) if which == "saved" else None
                    if cached is None:
                        report = scoring.run(
                            eval_command(kind, folder / which, subset, config),
                            folder / f"{which}-{subset}.json",
                            lambda line, w=which, s=subset: self.post_message(
                                self.ScoreProgress(f"{w} prompts, {s}: {line}")
                            ),
                        )
                        cached = Score.from_report(report)
                    self.post_message(self.Scored(which, subset, cached))
        except ScoreCancelled:
            self.post_message(self.ScoringEnded(cancelled=True))
        except ScoreFailed as exc:
            self.post_message(self.ScoringEnded(error=str(exc)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.post_message(self.ScoringEnded(error=f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(self.ScoringEnded())
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def on_prompt_editor_scored(self, message: Scored) -> None:
        if message.which == "saved":
            self.saved_scores[message.subset] = message.score
        board = self.query_one(PlannerScore)
        board.scores[message.which, message.subset] = message.score
        board.refresh_text()

    def on_prompt_editor_score_progress(self, message: ScoreProgress) -> None:
        board = self.query_one(PlannerScore)
        board.note = f"{message.text} · ctrl+t cancels"
        board.refresh_text()

    def on_prompt_editor_scoring_ended(self, message: ScoringEnded) -> None:
        self.scoring = None
        board = self.query_one(PlannerScore)
        if message.cancelled:
            board.note = "cancelled · ctrl+t scores again"
            self.say("scoring cancelled")
        elif message.error is not None:
            board.note = "failed · ctrl+t scores again"
            self.say(f"✗ scoring failed: {message.error}", error=True)
        else:
            board.note = "done · ctrl+t scores again"
            self.say("✓ scored the edited prompts beside the saved ones")
        board.refresh_text()

    def _forget_saved_scores(self) -> None:
        self.saved_scores.clear()
        board = self.query_one(PlannerScore)
        board.scores = {k: v for k, v in board.scores.items() if k[0] != "saved"}
        board.refresh_text()

    def on_unmount(self) -> None:
        if self.scoring is not None:
            self.scoring.cancel()
