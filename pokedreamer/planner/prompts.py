"""The planner's prompt templates: plain text with ``{{field}}`` slots, rendered by substitution.

The built-in templates are package data (``pokedreamer/prompts/*.txt``); a user's prompts folder
(``planner.prompts_dir``) replaces them file by file, and may add more. A file is read again
whenever its modification time or size changes, so an edit applies to the next plan.

Rendering is one regular-expression pass over the text that swaps each ``{{name}}`` for a value
from a fixed set of field names. Nothing is evaluated: no ``str.format`` (whose ``{0.__init__}``
reaches attributes), no template engine, and a value that itself holds ``{{goal}}`` stays as it is.
A slot naming anything outside the set is an error, raised when the file is loaded.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from pokedreamer.errors import UserError

if TYPE_CHECKING:
    from pokedreamer.env.state import GameState

# The values the planner fills in. A fixed set, so that a typo in a template fails when it is
# loaded instead of quietly sending the LLM a prompt with a hole in it.
FIELDS: dict[str, str] = {
    "schema": "the Plan JSON schema",
    "state_summary": "the GameState summary: map, position, party, badges, bag, ...",
    "dialog": "the dialog text on screen",
    "recent_outcomes": "how the last subgoals ended (done, timed out), oldest first",
    "trigger": "why a plan is asked for now (start, plan done, new dialog, stuck, ...)",
    "goal": "the current plan's goal",
}
MISSING = "(none)"
TEMPLATE_SUFFIX = ".txt"
DEFAULTS_PACKAGE = "pokedreamer.prompts"

# One line at most: a "{{" with no "}}" on its line is ordinary text, and an error message never
# quotes half a file as a field name.
_SLOT = re.compile(r"\{\{([^\n]*?)\}\}")
# Template names become file names: no separators or dots, so a name cannot leave the folder.
_NAME = re.compile(r"[A-Za-z0-9_-]+")

FieldValue = str | int | float | Sequence[str] | None


class PromptError(UserError):
    """A template that cannot be loaded or rendered; the message names the file."""


@dataclass(frozen=True)
class Template:
    """One loaded template."""

    name: str
    source: str
    """The file it was read from."""
    builtin: bool
    text: str
    fields: frozenset[str]
    """The field names its slots use."""

    def render(self, values: Mapping[str, str]) -> str:
        """Fills every slot from ``values`` (already text); an absent field renders as MISSING."""
        return _SLOT.sub(lambda m: values.get(m.group(1).strip(), MISSING), self.text)


def parse_template(name: str, text: str, source: str, builtin: bool = False) -> Template:
    """Checks every slot of ``text`` against FIELDS; the error names ``source``, line and slot."""
    used: set[str] = set()
    for match in _SLOT.finditer(text):
        field = match.group(1).strip()
        if field not in FIELDS:
            line = text.count("\n", 0, match.start()) + 1
            raise PromptError(
                f"{source}:{line}: unknown field {match.group(0)}; known fields: "
                + ", ".join("{{" + f + "}}" for f in FIELDS)
            )
        used.add(field)
    return Template(name, source, builtin, text, frozenset(used))


def field_text(value: FieldValue) -> str:
    """A field's value as prompt text: sequences one item a line; nothing or blank is MISSING."""
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value if value.strip() else MISSING
    if isinstance(value, bool):  # bool is an int; say what it means rather than "True"
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Sequence):
        items = [item for item in value if isinstance(item, str)]
        if len(items) != len(value):
            raise TypeError("a sequence field value must hold only str")
        return "\n".join(items) if any(item.strip() for item in items) else MISSING
    # Anything else is refused rather than str()-ed: a prompt should never show a repr.
    raise TypeError(f"a prompt field value must be str, a number or a list of str, not {value!r}")


def default_templates() -> dict[str, str]:
    """The built-in templates' text by name."""
    root = resources.files(DEFAULTS_PACKAGE)
    return {
        entry.name.removesuffix(TEMPLATE_SUFFIX): entry.read_text(encoding="utf-8")
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(TEMPLATE_SUFFIX) and entry.is_file()
    }


def _default_source(name: str) -> str:
    return str(resources.files(DEFAULTS_PACKAGE) / f"{name}{TEMPLATE_SUFFIX}")


class PromptLibrary:
    """The templates in use: a user's prompts folder over the built-in ones, kept up to date.

    Every template is loaded (and so checked) when the library is made; ``render`` looks at the
    user's file again each time, which costs one ``stat`` and picks up edits, new files and
    deleted ones (which fall back to the built-in template).
    """

    def __init__(self, prompts_dir: str | Path = "") -> None:
        self.prompts_dir: Path | None = Path(prompts_dir).expanduser() if str(prompts_dir) else None
        if self.prompts_dir is not None and not self.prompts_dir.is_dir():
            raise PromptError(f"prompts folder not found: {self.prompts_dir}")
        self._builtin = {
            name: parse_template(name, text, _default_source(name), builtin=True)
            for name, text in default_templates().items()
        }
        # Path -> (mtime_ns, size) when read, and what it held. The dashboard's prompt editor may
        # render from another thread than the agent loop, hence the lock.
        self._read: dict[Path, tuple[tuple[int, int], Template]] = {}
        self._lock = threading.Lock()
        for name in self.names():
            self.template(name)

    def names(self) -> list[str]:
        """Every template available: the built-in ones and any the user's folder adds."""
        names = set(self._builtin)
        if self.prompts_dir is not None:
            names.update(
                path.stem
                for path in self.prompts_dir.glob(f"*{TEMPLATE_SUFFIX}")
                if _NAME.fullmatch(path.stem) and path.is_file()
            )
        return sorted(names)

    def template(self, name: str) -> Template:
        """The template ``name`` as its file holds it now."""
        if not _NAME.fullmatch(name):
            raise PromptError(f"bad template name {name!r}: letters, digits, _ and - only")
        if self.prompts_dir is not None:
            path = self.prompts_dir / f"{name}{TEMPLATE_SUFFIX}"
            try:
                stat = path.stat()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise PromptError(f"{path}: cannot read: {exc}") from None
            else:
                return self._user_template(name, path, (stat.st_mtime_ns, stat.st_size))
        if name in self._builtin:
            return self._builtin[name]
        raise PromptError(f"no prompt template {name!r}; there are: {', '.join(self.names())}")

    def _user_template(self, name: str, path: Path, stamp: tuple[int, int]) -> Template:
        with self._lock:
            seen = self._read.get(path)
            if seen is not None and seen[0] == stamp:
                return seen[1]
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise PromptError(f"{path}: cannot read: {exc}") from None
            template = parse_template(name, text, str(path))
            self._read[path] = (stamp, template)
            return template

    def render(self, name: str, **fields: FieldValue) -> str:
        """The template ``name`` with its slots filled; fields it does not use are ignored."""
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            # A caller's typo, not a user's: a TypeError, as for a bad keyword argument.
            raise TypeError(f"unknown prompt field(s) {', '.join(unknown)}; known: {list(FIELDS)}")
        template = self.template(name)
        return template.render({k: field_text(v) for k, v in fields.items()})

    def sources(self) -> dict[str, str]:
        """The file each template comes from now, by name."""
        return {name: self.template(name).source for name in self.names()}


def init_prompts_dir(directory: Path, force: bool = False) -> list[Path]:
    """Copies the built-in templates into ``directory`` (made if need be) for a user to edit.

    Refuses, writing nothing, when any of the files exists already and ``force`` is false.
    """
    templates = default_templates()
    targets = {directory / f"{name}{TEMPLATE_SUFFIX}": text for name, text in templates.items()}
    if directory.exists() and not directory.is_dir():
        raise PromptError(f"{directory} exists and is not a folder")
    existing = [path for path in targets if path.exists()]
    if existing and not force:
        raise PromptError(
            f"{', '.join(str(p) for p in existing)} already "
            f"{'exists' if len(existing) == 1 else 'exist'}; "
            "use --force to overwrite (your edits there would be lost)"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, text in targets.items():
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PromptError(f"cannot write the templates to {directory}: {exc}") from None
    return list(targets)


def plan_schema() -> str:
    """The Plan JSON schema as the system prompt's {{schema}} carries it."""
    from pokedreamer.planner.subgoals import Plan

    return json.dumps(Plan.model_json_schema())


def sample_fields(state: GameState, trigger: str = "start", goal: str = "") -> dict[str, str]:
    """Every field filled from one GameState, as the planner does at the start of an episode."""
    return {
        "schema": plan_schema(),
        "state_summary": state.summary(),
        "dialog": " / ".join(state.text),
        "recent_outcomes": "",
        "trigger": trigger,
        "goal": goal,
    }
