"""Looking up the game's tables by pret name, with a useful answer to a typo.

Names arrive from people and from the LLM planner ("EVENT_BEAT_BROOK", "oaks lab"), so a miss
names the closest real names instead of a bare KeyError.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping


class UnknownName(KeyError):
    """A name that is not in a table; its message suggests the nearest names."""

    def __str__(self) -> str:
        # KeyError's own str() quotes its argument, which garbles a sentence.
        return str(self.args[0]) if self.args else ""


def lookup(table: Mapping[str, int], name: str, kind: str) -> int:
    """``table[name]``, case-insensitively; otherwise UnknownName naming up to five near misses."""
    key = name.strip().upper().replace(" ", "_")
    if key in table:
        return table[key]
    close = difflib.get_close_matches(key, list(table), n=5, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else f"e.g. {next(iter(table))}"
    raise UnknownName(f"no {kind} named {name!r}; {hint}")
