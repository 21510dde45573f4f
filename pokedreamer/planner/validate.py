"""A plan checked against the game's facts: every way it asks for something the game does not have.

A plan with any problem is rejected by its caller, never clamped: a clamped tile is a different
goal from the one the planner meant, and the planner learns nothing from it.
"""

from __future__ import annotations

from collections.abc import Mapping

from pokedreamer.env.charmap import DECORATION, GLYPHS
from pokedreamer.env.names import UnknownName
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.subgoals import (
    MAX_CONTAINS_CHARS,
    EarnBadge,
    GoToMap,
    GoToTile,
    Plan,
    ReadText,
    SetEvent,
    Subgoal,
)

# Characters the game can print (plus a space): a `contains` with any other can never match.
_PRINTABLE = frozenset("".join(GLYPHS.values())) - DECORATION | {" "}


def check(plan: Plan | Subgoal, facts: GameFacts) -> list[str]:
    """Every problem with a plan (or one subgoal) in this game, one readable line each; empty
    when the plan can be carried out as written."""
    subgoals = plan.subgoals if isinstance(plan, Plan) else [plan]
    problems = []
    for i, subgoal in enumerate(subgoals, 1):
        where = f"subgoal {i} ({subgoal.kind})" if isinstance(plan, Plan) else subgoal.kind
        problems += [f"{where}: {p}" for p in _subgoal_problems(subgoal, facts)]
    return problems


def _subgoal_problems(subgoal: Subgoal, facts: GameFacts) -> list[str]:
    if isinstance(subgoal, GoToMap | GoToTile):
        try:
            info = facts.map(subgoal.map)
        except UnknownName as e:
            return [f"{e}{_all_of(facts.maps, 'maps')}"]
        if isinstance(subgoal, GoToTile) and not (
            0 <= subgoal.x < info.width and 0 <= subgoal.y < info.height
        ):
            return [
                f"({subgoal.x}, {subgoal.y}) lies outside {info.name}, which is "
                f"{info.width}×{info.height} steps (x 0..{info.width - 1}, "
                f"y 0..{info.height - 1})"
            ]
    elif isinstance(subgoal, SetEvent):
        try:
            facts.event_index(subgoal.event)
        except UnknownName as e:
            return [f"{e}{_all_of(facts.events, 'events')}"]
    elif isinstance(subgoal, EarnBadge):
        if subgoal.badge not in facts.badges:
            return [f"{subgoal.badge} cannot be earned here; badges: {', '.join(facts.badges)}"]
    elif isinstance(subgoal, ReadText):
        problems = []
        if len(subgoal.contains) > MAX_CONTAINS_CHARS:
            problems.append(
                f"'contains' has {len(subgoal.contains)} characters; at most {MAX_CONTAINS_CHARS}"
            )
        odd = sorted(set(subgoal.contains) - _PRINTABLE)
        if odd:
            problems.append(f"'contains' has characters the game never prints: {''.join(odd)}")
        return problems
    return []


def _all_of(table: Mapping[str, object], what: str) -> str:
    """The whole table when it is short enough to read (the fixture's), else its size."""
    if len(table) <= 8:
        return f" (the {what} here: {', '.join(table)})"
    return f" ({len(table)} {what} here)"
