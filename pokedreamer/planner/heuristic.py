"""The offline planner: the story as a table of stages, read from a data file for each game.

It is the default planner when no LLM endpoint is configured, and the fallback whenever an LLM
plan fails or is rejected, so it must answer every GameState, instantly, with a plan that passes
``validate.check``. The knowledge lives in TOML beside this module (``knowledge/fixture.toml``,
``knowledge/pokemon_red.toml``) so that the story can be read and corrected without reading code.

A knowledge file holds ``games`` (the ``Rom.game`` values it is for), a ``description`` and a list
of ``[[stage]]`` tables, each with a ``name``, a ``when`` table of conditions and a ``plan`` in the
very shape the LLM answers (``goal``, ``subgoals``, ``rationale``). Stages are tried in order and
the first whose conditions all hold gives the plan; the last stage has no conditions, so every
state gets one. The conditions:

====================  ========================================================================
``requires_events``   every one of these event flags is set (pret names)
``lacks_events``      none of these event flags is set
``requires_badges``   every one of these badges is earned (BOULDER, CASCADE, ...)
``lacks_badges``      none of these badges is earned
``min_party``         at least this many POKéMON in the party
``max_party``         at most this many (0: no party yet)
``min_level``         the lead POKéMON's level is at least this (false with no party)
``max_level``         the lead POKéMON's level is at most this (true with no party)
``hp_below``          the party's HP over its max HP is below this fraction (false with no party)
``on_maps``           the player is on one of these maps (pret constants)
``not_on_maps``       the player is on none of these maps
``min_x`` … ``max_y``  the player's cell on the current map is within these bounds
``battle``            the battle kind is one of these: none, wild, trainer, lost
====================  ========================================================================

Waypoints: when a plan is emitted, its subgoals up to and including its last ``go_to_map`` of the
player's current map are dropped — they lead to where the player already is — so a route written
as a list of maps picks up from wherever the player stands on it. The last subgoal always stays.

Loading checks everything once: unknown keys, values of the wrong kind, names the game does not
have (spelled exactly as pret does), plans that ``validate.check`` rejects, and stages that could
never be chosen. Each problem names the file and the stage.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pokedreamer.env.names import UnknownName
from pokedreamer.env.state import GameState
from pokedreamer.errors import Location, UserError, validation_summary
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.subgoals import GoToMap, Plan
from pokedreamer.planner.validate import check

KNOWLEDGE_PACKAGE = "pokedreamer.planner"
KNOWLEDGE_DIR = "knowledge"
# Rom.game -> the knowledge file for it: Blue's story is Red's.
KNOWLEDGE_FILES: dict[str, str] = {
    "fixture": "fixture.toml",
    "red": "pokemon_red.toml",
    "blue": "pokemon_red.toml",
}

_STRICT = ConfigDict(extra="forbid", frozen=True)


class KnowledgeError(UserError):
    """A knowledge file that cannot be used; the message names the file and the stage."""


class Condition(BaseModel):
    """A stage's ``when`` table: every condition given must hold (see the module docstring)."""

    model_config = _STRICT

    requires_events: tuple[str, ...] = ()
    lacks_events: tuple[str, ...] = ()
    requires_badges: tuple[str, ...] = ()
    lacks_badges: tuple[str, ...] = ()
    min_party: int | None = Field(None, ge=0, le=6)
    max_party: int | None = Field(None, ge=0, le=6)
    min_level: int | None = Field(None, ge=1, le=100)
    max_level: int | None = Field(None, ge=0, le=100)
    hp_below: float | None = Field(None, gt=0, le=1)
    on_maps: tuple[str, ...] = ()
    not_on_maps: tuple[str, ...] = ()
    min_x: int | None = Field(None, ge=0, le=255)
    max_x: int | None = Field(None, ge=0, le=255)
    min_y: int | None = Field(None, ge=0, le=255)
    max_y: int | None = Field(None, ge=0, le=255)
    battle: tuple[Literal["none", "wild", "trainer", "lost"], ...] = ()


class _StageSpec(BaseModel):
    model_config = _STRICT

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    when: Condition = Field(default_factory=Condition)
    plan: Plan


class _KnowledgeSpec(BaseModel):
    model_config = _STRICT

    games: tuple[str, ...] = Field(min_length=1)
    description: str = ""
    stage: tuple[_StageSpec, ...] = Field(min_length=1)


_NO_BOUND = (0, 1 << 16)


@dataclass(frozen=True)
class _Test:
    """A Condition with its names resolved to flag indexes, badge bits and map ids, so that
    choosing a stage is plain integer work."""

    events_set: tuple[int, ...]
    events_clear: tuple[int, ...]
    badges_all: int
    badges_none: int
    party: tuple[int, int]
    level: tuple[int, int]
    hp_below: float | None
    maps_in: frozenset[int] | None
    maps_out: frozenset[int]
    x: tuple[int, int]
    y: tuple[int, int]
    battle: frozenset[str] | None

    def __call__(self, state: GameState) -> bool:
        if any(not state.has_event(i) for i in self.events_set):
            return False
        if any(state.has_event(i) for i in self.events_clear):
            return False
        if state.badges & self.badges_all != self.badges_all or state.badges & self.badges_none:
            return False
        if not self.party[0] <= len(state.party) <= self.party[1]:
            return False
        level = state.party[0].level if state.party else 0
        if not self.level[0] <= level <= self.level[1]:
            return False
        if self.hp_below is not None and not (state.party and state.hp_fraction < self.hp_below):
            return False
        if self.maps_in is not None and state.map_id not in self.maps_in:
            return False
        if state.map_id in self.maps_out:
            return False
        if not (self.x[0] <= state.x <= self.x[1] and self.y[0] <= state.y <= self.y[1]):
            return False
        return self.battle is None or state.battle in self.battle


@dataclass(frozen=True)
class Stage:
    """One story stage: when it applies and the plan it gives."""

    name: str
    when: Condition
    plan: Plan
    """The plan as written, before waypoints already reached are dropped."""
    _test: _Test = field(repr=False, compare=False)
    _plans_by_map: dict[int, Plan] = field(repr=False, compare=False)

    def matches(self, state: GameState) -> bool:
        return self._test(state)

    def plan_for(self, state: GameState) -> Plan:
        """The plan from where the player stands: waypoints already reached are dropped."""
        return self._plans_by_map.get(state.map_id, self.plan)

    def plans(self) -> list[Plan]:
        """Every plan this stage can emit: as written, and from each of its waypoints."""
        return [self.plan, *self._plans_by_map.values()]


class HeuristicPlanner:
    """Chooses the first stage of the game's knowledge file whose conditions hold."""

    def __init__(self, game: str, knowledge: str | Path | None = None) -> None:
        """``game`` is ``Rom.game`` ('fixture', 'red' or 'blue'); ``knowledge`` a TOML file to use
        instead of the built-in one for that game."""
        if knowledge is None and game not in KNOWLEDGE_FILES:
            raise KnowledgeError(
                f"no knowledge file for game {game!r}; known: {', '.join(KNOWLEDGE_FILES)}"
            )
        try:
            self.facts = GameFacts.for_game(game)
        except ValueError as exc:
            raise KnowledgeError(str(exc)) from None
        self.game = game
        if knowledge is None:
            entry = resources.files(KNOWLEDGE_PACKAGE) / KNOWLEDGE_DIR / KNOWLEDGE_FILES[game]
            self.source = str(entry)
            raw = entry.read_bytes()
        else:
            self.source = str(knowledge)
            try:
                raw = Path(knowledge).read_bytes()
            except OSError as exc:
                raise KnowledgeError(f"{knowledge}: cannot read: {exc}") from None
        spec = _parse(raw, self.source)
        if game not in spec.games:
            raise KnowledgeError(f"{self.source}: is for {', '.join(spec.games)}, not for {game!r}")
        self.description = spec.description
        self.stages: tuple[Stage, ...] = _compile(spec, self.facts, self.source)

    def stage(self, state: GameState) -> Stage:
        """The stage the game is at: the first whose conditions hold."""
        for stage in self.stages:
            if stage.matches(state):
                return stage
        # Loading makes the last stage unconditional, so this is a broken invariant, not input.
        raise AssertionError(f"{self.source}: no stage matched, and the last one always should")

    def plan(self, state: GameState) -> Plan:
        return self.stage(state).plan_for(state)


def _parse(raw: bytes, source: str) -> _KnowledgeSpec:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise KnowledgeError(f"{source}: {exc}") from None
    try:
        return _KnowledgeSpec.model_validate(data)
    except ValidationError as exc:
        raise KnowledgeError(f"{source}: {validation_summary(exc, _where(data))}") from None


def _stage_label(data: Any, index: int) -> str:
    stages = data.get("stage") if isinstance(data, dict) else None
    name = None
    if isinstance(stages, list) and index < len(stages) and isinstance(stages[index], dict):
        name = stages[index].get("name")
    return f"stage {index + 1}" + (f" ({name})" if isinstance(name, str) else "")


def _where(data: Any) -> Callable[[Location], str]:
    """Words a location in a knowledge file: the stage by number and name, then the key path
    inside it, lists counted from 1 as a reader counts them."""

    def where(loc: Location) -> str:
        rest = list(loc)
        parts = []
        if len(rest) >= 2 and rest[0] == "stage" and isinstance(rest[1], int):
            parts.append(_stage_label(data, rest[1]))
            rest = rest[2:]
        path = "".join(f"[{p + 1}]" if isinstance(p, int) else f".{p}" for p in rest).lstrip(".")
        if path:
            parts.append(path)
        return ": ".join(parts)

    return where


def _spelling(name: str, kind: Literal["map", "event"], facts: GameFacts) -> str | None:
    """A problem with a condition's name unless it is spelled exactly as pret does. The file is
    our own data: a near miss there is a typo to fix, not something to forgive as for the LLM
    (whose names the subgoal schema normalises)."""
    table: Any = facts.maps if kind == "map" else facts.events
    if name in table:
        return None
    try:
        if kind == "map":
            canonical = facts.map(name).name
        else:
            index = facts.event_index(name)
            canonical = next(n for n, i in facts.events.items() if i == index)
    except UnknownName as exc:
        return str(exc)
    return f"write {kind} {name!r} as pret does: {canonical}"


def _bounds(low: int | None, high: int | None, what: str, problems: list[str]) -> tuple[int, int]:
    if low is not None and high is not None and low > high:
        problems.append(f"min_{what} {low} is above max_{what} {high}: the stage never applies")
    return (_NO_BOUND[0] if low is None else low, _NO_BOUND[1] if high is None else high)


def _resolve(when: Condition, facts: GameFacts) -> tuple[_Test | None, list[str]]:
    spelled = [
        *(_spelling(e, "event", facts) for e in (*when.requires_events, *when.lacks_events)),
        *(_spelling(m, "map", facts) for m in (*when.on_maps, *when.not_on_maps)),
    ]
    problems = [p for p in spelled if p]
    for badge in (*when.requires_badges, *when.lacks_badges):
        if badge not in facts.badges:
            problems.append(f"no badge {badge!r} in this game; badges: {', '.join(facts.badges)}")
    if problems:
        return None, problems
    test = _Test(
        events_set=tuple(facts.event_index(e) for e in when.requires_events),
        events_clear=tuple(facts.event_index(e) for e in when.lacks_events),
        badges_all=sum(1 << facts.badge_index(b) for b in set(when.requires_badges)),
        badges_none=sum(1 << facts.badge_index(b) for b in set(when.lacks_badges)),
        party=_bounds(when.min_party, when.max_party, "party", problems),
        level=_bounds(when.min_level, when.max_level, "level", problems),
        hp_below=when.hp_below,
        maps_in=frozenset(facts.map_id(m) for m in when.on_maps) if when.on_maps else None,
        maps_out=frozenset(facts.map_id(m) for m in when.not_on_maps),
        x=_bounds(when.min_x, when.max_x, "x", problems),
        y=_bounds(when.min_y, when.max_y, "y", problems),
        battle=frozenset(when.battle) if when.battle else None,
    )
    if test.badges_all & test.badges_none:
        problems.append("a badge is both required and lacking: the stage never applies")
    if set(when.requires_events) & set(when.lacks_events):
        problems.append("an event is both required and lacking: the stage never applies")
    return test, problems


def _waypoint_plans(plan: Plan, facts: GameFacts) -> dict[int, Plan]:
    """The plan from each map it routes through: subgoals up to its last go_to_map of that map
    dropped, the final subgoal always kept."""
    cuts: dict[int, int] = {}
    for index, subgoal in enumerate(plan.subgoals):
        if isinstance(subgoal, GoToMap):
            cuts[facts.map_id(subgoal.map)] = min(index + 1, len(plan.subgoals) - 1)
    # model_copy skips validation: a non-empty tail of a valid plan is valid.
    return {m: plan.model_copy(update={"subgoals": plan.subgoals[cut:]}) for m, cut in cuts.items()}


def _compile(spec: _KnowledgeSpec, facts: GameFacts, source: str) -> tuple[Stage, ...]:
    problems: list[str] = []
    stages: list[Stage] = []
    seen: set[str] = set()
    last = len(spec.stage) - 1
    for index, stage_spec in enumerate(spec.stage):
        label = f"stage {index + 1} ({stage_spec.name})"
        own: list[str] = []
        if stage_spec.name in seen:
            own.append("a stage of this name comes earlier")
        seen.add(stage_spec.name)
        test, condition_problems = _resolve(stage_spec.when, facts)
        own += condition_problems
        unconditional = stage_spec.when == Condition()
        if index == last and not unconditional:
            own.append("the last stage must have no `when`, so that every state gets a plan")
        if index < last and unconditional:
            own.append("has no `when`, so the stages after it could never be chosen")
        own += [f"plan: {p}" for p in check(stage_spec.plan, facts)]
        problems += [f"{label}: {p}" for p in own]
        if not own and test is not None:
            stages.append(
                Stage(
                    name=stage_spec.name,
                    when=stage_spec.when,
                    plan=stage_spec.plan,
                    _test=test,
                    _plans_by_map=_waypoint_plans(stage_spec.plan, facts),
                )
            )
    if problems:
        raise KnowledgeError(f"{source}: " + "; ".join(problems))
    return tuple(stages)
