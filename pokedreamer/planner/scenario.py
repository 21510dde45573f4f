"""The planner benchmark's scenarios: a moment of the game and what a good next subgoal is there.

A scenario holds a GameState (with the dialog on screen in its ``text``), why a plan is asked for
(``trigger``, ``goal``, ``recent_outcomes``, as the planner service fills the prompt) and the
subgoals a good plan may start with, as predicates over a Subgoal rather than exact answers: "go
to one of these maps", "stand on a tile of OAKS_LAB in this box", "read a text box that mentions
OAK", "win the battle". A plan is judged by the subgoal the agent would pursue first: its first
subgoal not yet done in the scenario's state, as the planner service adopts a plan.

The scenarios are package data, one JSON file per game in ``planner/scenarios/``::

    {"game": "red", "about": "...", "scenarios": [
      {"id": "red-bedroom", "about": "...", "quick": true, "trigger": "start",
       "state": {...}, "accept": [{"kind": "go_to_map", "map": ["REDS_HOUSE_1F"]}, ...]}]}

``state`` is the GameState's JSON with one change: the 320 bytes of ``event_flags`` (which
pydantic would write as UTF-8 text, failing on most values) are given as the list of flags set,
by pret name (``"events"``). Loading checks every name against the game's facts, and says which
file and scenario a problem is in.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pokedreamer.env.events import EVENT_NAMES, NUM_EVENT_FLAGS
from pokedreamer.env.maps import map_name
from pokedreamer.env.names import UnknownName
from pokedreamer.env.species import MISSINGNO, SPECIES
from pokedreamer.env.state import GameState
from pokedreamer.errors import Location, UserError, dotted, validation_summary
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.service import still_to_do
from pokedreamer.planner.subgoals import (
    SUBGOAL_KINDS,
    EarnBadge,
    GoToMap,
    GoToTile,
    Plan,
    ReadText,
    SetEvent,
    StateView,
    Subgoal,
)

SCENARIO_PACKAGE = "pokedreamer.planner"
SCENARIO_DIR = "scenarios"
SELECTIONS = ("all", "quick")
"""Named selections; anything else is a comma-separated list of id patterns (``red-*``)."""

_STRICT = ConfigDict(extra="forbid", frozen=True)


class ScenarioError(UserError):
    """A scenario file that cannot be used; the message names the file and the scenario."""


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


class Acceptable(BaseModel):
    """One kind of good next subgoal. A field left out accepts any value; a list accepts any of
    its values."""

    model_config = _STRICT

    kind: str
    map: tuple[str, ...] = ()
    """go_to_map, go_to_tile: the map is one of these (pret names)."""
    x: tuple[int, int] | None = None
    """go_to_tile: the column lies in [low, high]."""
    y: tuple[int, int] | None = None
    """go_to_tile: the row lies in [low, high]."""
    contains: tuple[str, ...] = ()
    """read_text: the words asked for include one of these (case-insensitive); "" among them
    also accepts any text box."""
    badge: tuple[str, ...] = ()
    """earn_badge: the badge is one of these."""
    event: tuple[str, ...] = ()
    """set_event: the event is one of these (pret names)."""

    @field_validator("kind")
    @classmethod
    def _a_kind(cls, kind: str) -> str:
        if kind not in SUBGOAL_KINDS:
            raise ValueError(f"no subgoal kind {kind!r}; kinds: {', '.join(SUBGOAL_KINDS)}")
        return kind

    def matches(self, subgoal: Subgoal) -> bool:
        if subgoal.kind != self.kind:
            return False
        if isinstance(subgoal, GoToMap | GoToTile) and self.map and subgoal.map not in self.map:
            return False
        if isinstance(subgoal, GoToTile):
            for bounds, value in ((self.x, subgoal.x), (self.y, subgoal.y)):
                if bounds is not None and not bounds[0] <= value <= bounds[1]:
                    return False
        if isinstance(subgoal, ReadText) and self.contains:
            asked = _norm(subgoal.contains)
            if not asked:
                return "" in self.contains
            return any(word and _norm(word) in asked for word in self.contains)
        if isinstance(subgoal, EarnBadge) and self.badge:
            return subgoal.badge in self.badge
        if isinstance(subgoal, SetEvent) and self.event:
            return subgoal.event in self.event
        return True

    def problems(self, facts: GameFacts) -> list[str]:
        """Names the game lacks and fields that do not apply to the kind."""
        fields = {
            "map": ("go_to_map", "go_to_tile"),
            "x": ("go_to_tile",),
            "y": ("go_to_tile",),
            "contains": ("read_text",),
            "badge": ("earn_badge",),
            "event": ("set_event",),
        }
        found = [
            f"{name!r} does not apply to {self.kind}"
            for name, kinds in fields.items()
            if self.kind not in kinds and getattr(self, name) not in ((), None)
        ]
        found += [f"no map {m!r} in {facts.game}" for m in self.map if m not in facts.maps]
        found += [f"no event {e!r} in {facts.game}" for e in self.event if e not in facts.events]
        found += [f"no badge {b!r} in {facts.game}" for b in self.badge if b not in facts.badges]
        for axis, bounds in (("x", self.x), ("y", self.y)):
            if bounds is not None and bounds[0] > bounds[1]:
                found.append(f"{axis} [{bounds[0]}, {bounds[1]}] is empty")
        return found

    def describe(self) -> str:
        """The predicate in words, for tables."""
        parts = [self.kind]
        if self.map:
            parts.append("|".join(self.map))
        if self.x is not None or self.y is not None:
            x = f"{self.x[0]}-{self.x[1]}" if self.x else "*"
            y = f"{self.y[0]}-{self.y[1]}" if self.y else "*"
            parts.append(f"({x}, {y})")
        if self.contains:
            parts.append("|".join(f'"{w}"' for w in self.contains))
        parts += ["|".join(v) for v in (self.badge, self.event) if v]
        return " ".join(parts)


class _StateSpec(BaseModel):
    """A GameState as a scenario file writes it: its own fields, the event flags by name."""

    model_config = _STRICT

    map_id: int = Field(ge=0, le=255)
    map_name: str
    x: int = Field(ge=0, le=255)
    y: int = Field(ge=0, le=255)
    facing: Literal["down", "up", "left", "right"]
    battle: Literal["none", "wild", "trainer", "lost"]
    enemy_hp: int = Field(0, ge=0)
    enemy_max_hp: int = Field(0, ge=0)
    text_shown: bool
    text: tuple[str, ...] = ()
    party: tuple[tuple[int, int, int, int], ...] = Field((), max_length=6)
    """(species, level, hp, max hp), species by the game's internal index as RAM holds it."""
    badges: int = Field(0, ge=0, le=255)
    money: int = Field(0, ge=0, le=999_999)
    events: tuple[str, ...] = ()
    pokedex_owned: int = Field(0, ge=0, le=152)
    pokedex_seen: int = Field(0, ge=0, le=152)
    bag: tuple[tuple[int, int], ...] = ()

    @field_validator("events")
    @classmethod
    def _known(cls, events: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [e for e in events if e not in _EVENT_INDEX]
        if unknown:
            raise ValueError(f"no event flag named {', '.join(unknown)}")
        return events


_EVENT_INDEX = {name: index for index, name in EVENT_NAMES.items()}


def state_from_spec(data: dict[str, Any]) -> GameState:
    """A GameState from a scenario file's ``state``; ValidationError when it is malformed."""
    spec = _StateSpec.model_validate(data)
    flags = bytearray(NUM_EVENT_FLAGS // 8)
    for event in spec.events:
        index = _EVENT_INDEX[event]
        flags[index >> 3] |= 1 << (index & 7)
    fields = spec.model_dump(exclude={"events"})
    return GameState.model_validate({**fields, "event_flags": bytes(flags)})


def state_to_spec(state: GameState) -> dict[str, Any]:
    """A GameState as a scenario file writes it; ``state_from_spec`` gives back an equal one.
    ValueError for a flag set that pret leaves unnamed (the game never sets one)."""
    data = state.model_dump(mode="json", exclude={"event_flags"})
    bits = int.from_bytes(state.event_flags, "little")
    events = []
    for index in range(NUM_EVENT_FLAGS):
        if bits >> index & 1:
            if index not in EVENT_NAMES:
                raise ValueError(f"event flag {index} is set but has no pret name")
            events.append(EVENT_NAMES[index])
    return {**data, "events": events}


class _ScenarioSpec(BaseModel):
    model_config = _STRICT

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    about: str = Field(min_length=1)
    quick: bool = False
    trigger: str = "start"
    goal: str = ""
    recent_outcomes: tuple[str, ...] = ()
    state: dict[str, Any]
    accept: tuple[Acceptable, ...] = Field(min_length=1)


class _FileSpec(BaseModel):
    model_config = _STRICT

    game: Literal["fixture", "red"]
    about: str = ""
    scenarios: tuple[_ScenarioSpec, ...]


class Scenario(BaseModel):
    """One moment of a game and the good next subgoals there."""

    model_config = ConfigDict(frozen=True)

    id: str
    game: str
    """'fixture' or 'red', as ``Rom.game``."""
    about: str
    """What is happening, in a sentence or two."""
    quick: bool
    """In the quick subset, which the prompt editor scores first."""
    trigger: str
    """Why a plan is asked for, as the service would say."""
    goal: str
    """The current plan's goal, if any."""
    recent_outcomes: tuple[str, ...]
    state: GameState
    accept: tuple[Acceptable, ...]

    @property
    def facts(self) -> GameFacts:
        return GameFacts.for_game(self.game)

    def pursued(self, plan: Plan) -> Subgoal:
        """The subgoal the agent would pursue first: the plan's first one not yet done here,
        the last one always staying (the planner service's rule when it adopts a plan)."""
        return still_to_do(plan, StateView.from_game_state(self.state), self.facts)[0]

    def accepts(self, plan: Plan) -> bool:
        """Whether the plan's pursued subgoal is one of the acceptable ones."""
        subgoal = self.pursued(plan)
        return any(rule.matches(subgoal) for rule in self.accept)


def _scenario(spec: _ScenarioSpec, game: str, facts: GameFacts, where: str) -> Scenario:
    try:
        state = state_from_spec(spec.state)
    except ValidationError as exc:
        raise ScenarioError(f"{where}: state: {validation_summary(exc, dotted, most=6)}") from None
    problems = []
    if state.map_name != map_name(state.map_id):
        problems.append(f"map_name {state.map_name} is not map ${state.map_id:02X}")
    if facts.map_by_id(state.map_id) is None:
        problems.append(f"map {state.map_name} is not in {game}")
    else:
        info = facts.map_by_id(state.map_id)
        assert info is not None
        if not (state.x < info.width and state.y < info.height):
            problems.append(f"({state.x}, {state.y}) lies outside {info.name}")
    problems += [
        f"party species {mon.species} is no species"
        for mon in state.party
        if SPECIES.get(mon.species, MISSINGNO) == MISSINGNO
    ]
    for number, rule in enumerate(spec.accept, 1):
        problems += [f"accept {number}: {p}" for p in rule.problems(facts)]
    if problems:
        raise ScenarioError(f"{where}: " + "; ".join(problems))
    return Scenario(
        id=spec.id,
        game=game,
        about=spec.about,
        quick=spec.quick,
        trigger=spec.trigger,
        goal=spec.goal,
        recent_outcomes=spec.recent_outcomes,
        state=state,
        accept=spec.accept,
    )


def _where(data: Any) -> Callable[[Location], str]:
    """Words a location in a scenario file with the scenario's id: "mine: accept"."""

    def where(loc: Location) -> str:
        if len(loc) >= 2 and loc[0] == "scenarios" and isinstance(loc[1], int):
            entries = data.get("scenarios") if isinstance(data, dict) else None
            entry = entries[loc[1]] if isinstance(entries, list) else None
            name = entry.get("id") if isinstance(entry, dict) else None
            label = name if isinstance(name, str) else f"scenario {loc[1] + 1}"
            return ": ".join(filter(None, (label, dotted(loc[2:]))))
        return dotted(loc)

    return where


def parse_file(raw: bytes, source: str) -> list[Scenario]:
    """The scenarios of one file; ScenarioError naming ``source`` and the scenario otherwise."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{source}: not JSON: {exc}") from None
    try:
        spec = _FileSpec.model_validate(data)
    except ValidationError as exc:
        summary = validation_summary(exc, _where(data), most=6)
        raise ScenarioError(f"{source}: {summary}") from None
    if not spec.scenarios:
        raise ScenarioError(f"{source}: no scenarios")
    try:
        facts = GameFacts.for_game(spec.game)
    except (ValueError, UnknownName) as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    return [_scenario(s, spec.game, facts, f"{source}: {s.id}") for s in spec.scenarios]


def load_scenarios(folder: str | Path | None = None) -> list[Scenario]:
    """Every scenario: of the built-in files, or of the ``*.json`` files in ``folder``."""
    if folder is None:
        root = resources.files(SCENARIO_PACKAGE) / SCENARIO_DIR
        entries = [e for e in root.iterdir() if e.name.endswith(".json") and e.is_file()]
        files = [(str(e), e.read_bytes()) for e in sorted(entries, key=lambda e: e.name)]
    else:
        paths = sorted(Path(folder).glob("*.json"))
        if not paths:
            raise ScenarioError(f"no scenario files (*.json) in {folder}")
        files = [(str(p), p.read_bytes()) for p in paths]
    scenarios: list[Scenario] = []
    for source, raw in files:
        scenarios += parse_file(raw, source)
    seen: set[str] = set()
    for scenario in scenarios:
        if scenario.id in seen:
            raise ScenarioError(f"two scenarios are named {scenario.id}")
        seen.add(scenario.id)
    return scenarios


def select(scenarios: list[Scenario], which: str) -> list[Scenario]:
    """``all``, ``quick``, or the scenarios whose id matches one of comma-separated patterns."""
    if which == "all":
        return list(scenarios)
    if which == "quick":
        return [s for s in scenarios if s.quick]
    patterns = [p.strip() for p in which.split(",") if p.strip()]
    chosen = [s for s in scenarios if any(fnmatch.fnmatchcase(s.id, p) for p in patterns)]
    if not chosen:
        raise UserError(
            f"no scenario matches {which!r}; choose all, quick or ids such as "
            f"{', '.join(s.id for s in scenarios[:4])} (patterns like red-* work)"
        )
    return chosen
