"""Errors that the CLI reports to the user as one line rather than as a crash, and the wording
that makes any error one line."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError
    from pydantic_core import ErrorDetails

Location = tuple[int | str, ...]
"""Where in the validated data a pydantic error lies: keys and list indexes, outermost first."""


class UserError(Exception):
    """A mistake the user can fix (a bad path, a malformed config, a bad value).

    The CLI prints its message as a single line prefixed with ``error:``, without a traceback, and
    exits with status 2, so keep the message to one line that names what to fix.
    """


def first_line(text: str) -> str:
    """The first line of ``text`` once its surrounding whitespace is stripped; "" when blank."""
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def error_line(error: BaseException, named: bool = False) -> str:
    """An error as one line: the first line of its message, after its type's name when
    ``named`` ("ValueError: ..."); its type's name alone when the message is blank."""
    line = first_line(str(error))
    if not line:
        return type(error).__name__
    return f"{type(error).__name__}: {line}" if named else line


def one_line(text: object, most: int | None = None) -> str:
    """``str(text)`` with each run of whitespace, line breaks included, made one space; cut to
    ``most`` characters, the last one "…", when longer."""
    line = " ".join(str(text).split())
    if most is None or len(line) <= most:
        return line
    return line[: most - 1] + "…"


def dotted(loc: Location) -> str:
    """A pydantic error's location as "subgoals.0.map"."""
    return ".".join(str(part) for part in loc)


def validation_summary(
    exc: ValidationError,
    where: Callable[[Location], str] = dotted,
    *,
    detail: Callable[[ErrorDetails], str] | None = None,
    most: int | None = None,
) -> str:
    """A pydantic ValidationError as one line, "where: problem; where: problem".

    ``where`` words each error's location (an empty answer leaves the problem alone). The problem
    is pydantic's message, except that a key the model forbids reads "unknown key" and the
    messages of our own validators lose pydantic's "Value error, " prefix; ``detail`` may append
    to it (the value given, say: input values are shown only that way). With ``most``, errors
    past that many are counted ("and 3 more") rather than listed.
    """
    errors = exc.errors(include_url=False)
    shown = errors if most is None else errors[:most]
    parts = []
    for error in shown:
        if error["type"] == "extra_forbidden":
            problem = "unknown key"
        else:
            problem = error["msg"].removeprefix("Value error, ")
        if detail is not None:
            problem += detail(error)
        place = where(tuple(error["loc"]))
        parts.append(f"{place}: {problem}" if place else problem)
    if len(errors) > len(shown):
        parts.append(f"and {len(errors) - len(shown)} more")
    return "; ".join(parts)


def check_format_version(
    found: int,
    newest: int,
    oldest: int,
    changes: Mapping[int, str],
    *,
    subject: str,
    reads: str,
    open_with: str,
) -> None:
    """Refuses (UserError, one line) a recorded format's version ``found`` outside
    ``oldest``..``newest``, naming what changed since (``changes``, by version) when it is too old.

    ``subject`` leads the message ("checkpoint X has"), ``reads`` is what this code does with the
    format ("loads") and ``open_with`` what the user may do instead ("load").
    """
    if found > newest:
        raise UserError(
            f"{subject} format version {found}, newer than this pokedreamer {reads} (up to "
            f"{newest}): {open_with} it with the pokedreamer that wrote it, or upgrade"
        )
    if found < oldest:
        since = "; ".join(f"{v}: {text}" for v, text in changes.items() if v > found)
        raise UserError(
            f"{subject} format version {found}, which this pokedreamer no longer {reads} "
            f"(changed since: {since}); {open_with} it with an older pokedreamer, or start a "
            "new run"
        )
