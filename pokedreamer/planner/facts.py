"""What exists in the game being played: its maps (id and size), story events and badges, and
the run's map graph (the warps and connections seen, read from the game's RAM).

A plan names things by pret constant ("PALLET_TOWN", "EVENT_GOT_STARTER"). GameFacts resolves
those names for shaping; ``pokedreamer.planner.validate`` checks a plan against them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import NamedTuple

import numpy as np

from pokedreamer.env.events import EVENT_FLAGS, NUM_EVENT_FLAGS
from pokedreamer.env.graph import MapGraph, RouteLeg
from pokedreamer.env.maps import MAP_IDS, MAPS
from pokedreamer.env.names import lookup
from pokedreamer.env.state import BADGES, badge_bit

_TEXT_CELLS_CACHED = 64

# Where each badge is earned: its gym's map, by pret's map constant.
GYM_OF_BADGE: Mapping[str, str] = {
    "BOULDER": "PEWTER_GYM",
    "CASCADE": "CERULEAN_GYM",
    "THUNDER": "VERMILION_GYM",
    "RAINBOW": "CELADON_GYM",
    "SOUL": "FUCHSIA_GYM",
    "MARSH": "SAFFRON_GYM",
    "VOLCANO": "CINNABAR_GYM",
    "EARTH": "VIRIDIAN_GYM",
}


def cell_key(map_id: int, x: int, y: int) -> int:
    """One number for a cell of a map (each below 256), to look cells up in a batch at once;
    works as well on arrays of them."""
    return (map_id * 256 + y) * 256 + x


class MapFacts(NamedTuple):
    """One map: id, pret constant and size in player steps (x < width, y < height)."""

    id: int
    name: str
    width: int
    height: int


@dataclass(frozen=True)
class GameFacts:
    """The maps, events and badges of one game, by pret name."""

    game: str
    """'red', 'blue' or 'fixture', as ``Rom.game``."""
    maps: Mapping[str, MapFacts]
    """Every map that exists, by pret constant."""
    events: Mapping[str, int]
    """Every story event flag the game sets, by pret name -> flag index."""
    badges: tuple[str, ...]
    """The badges that can be earned, in wObtainedBadges bit order from bit 0."""
    graph: MapGraph | None = field(default=None, compare=False)
    """The run's map graph, shared and growing as the envs see maps (``with_graph``); go_to_map's
    potential rises along its routes. None: no route is known, only arrival counts."""
    _map_ids: dict[str, int] = field(init=False, repr=False, compare=False)
    _maps_by_id: dict[int, MapFacts] = field(init=False, repr=False, compare=False)
    _text_cells: dict[str, tuple[int, np.ndarray]] = field(init=False, repr=False, compare=False)
    _gyms: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Shaping resolves names on every step: derive the look-up tables once.
        object.__setattr__(self, "_map_ids", {n: info.id for n, info in self.maps.items()})
        object.__setattr__(self, "_maps_by_id", {info.id: info for info in self.maps.values()})
        object.__setattr__(self, "_text_cells", {})
        gyms = {b: GYM_OF_BADGE.get(b, "") for b in self.badges}
        object.__setattr__(
            self, "_gyms", {b: self.maps[g].id for b, g in gyms.items() if g in self.maps}
        )

    def with_graph(self, graph: MapGraph) -> GameFacts:
        """These facts with a run's map graph (shared, not copied: it grows as the run plays)."""
        return replace(self, graph=graph)

    def route_to(self, map_id: int) -> tuple[RouteLeg, ...]:
        """Every map from which the graph's known exits lead to ``map_id``, with how many exits
        are left to pass and the cells of the first (``MapGraph.route_to``); empty without a
        graph."""
        return self.graph.route_to(map_id) if self.graph is not None else ()

    def gym_map_id(self, badge: str) -> int | None:
        """The map of the gym that gives ``badge``; None where this game has no such map."""
        return self._gyms.get(badge)

    def gym_map_ids(self) -> np.ndarray:
        """The maps of every gym this game has (ids, int64): where trainer battles start."""
        return np.array(sorted(self._gyms.values()), dtype=np.int64)

    def steps_to(self, map_id: int, cell: tuple[int, int]) -> np.ndarray | None:
        """The fewest steps from every cell of a map to ``cell`` round the walls the graph has
        seen (``MapGraph.steps_to_cell``); None without a graph or before the map is seen."""
        return self.graph.steps_to_cell(map_id, cell) if self.graph is not None else None

    def cells_reading(self, words: str, norm: Callable[[str], str]) -> np.ndarray:
        """The cells from which the run has read a text box holding ``words`` (compared after
        ``norm``), as ``cell_key``s (K,) int64; empty without a graph. Cached per graph
        version: imagination asks on every step."""
        if self.graph is None:
            return np.empty(0, np.int64)
        cached = self._text_cells.get(words)
        if cached is not None and cached[0] == self.graph.version:
            return cached[1]
        wanted = norm(words)
        keys = sorted(
            cell_key(map_id, x, y)
            for map_id in self.graph.nodes
            for (x, y), read in self.graph.texts(map_id).items()
            if any(wanted in norm(text) for text in read)
        )
        found = np.array(keys, dtype=np.int64)
        found.flags.writeable = False  # shared by every reader until the graph changes
        if len(self._text_cells) >= _TEXT_CELLS_CACHED:  # an LLM may ask for ever new words
            self._text_cells.clear()
        self._text_cells[words] = (self.graph.version, found)
        return found

    @staticmethod
    def pokemon_red() -> GameFacts:
        """Pokémon Red (and Blue, whose maps and flags are the same)."""
        return _pokemon_red("red")

    @staticmethod
    def fixture() -> GameFacts:
        """The fixture cartridge: four maps of 10×10 cells, three events, one badge."""
        return _fixture()

    @staticmethod
    def for_game(game: str) -> GameFacts:
        """By ``Rom.game``: 'red', 'blue' or 'fixture'."""
        if game in ("red", "blue"):
            return _pokemon_red(game)
        if game == "fixture":
            return _fixture()
        raise ValueError(f"no game facts for {game!r}; expected 'red', 'blue' or 'fixture'")

    def map(self, name: str) -> MapFacts:
        """A map by pret constant (case and spaces forgiven); UnknownName suggests near misses."""
        return self._maps_by_id[lookup(self._map_ids, name, "map")]

    def map_id(self, name: str) -> int:
        return self.map(name).id

    def map_by_id(self, map_id: int) -> MapFacts | None:
        return self._maps_by_id.get(map_id)

    def event_index(self, name: str) -> int:
        """An event's flag index by pret name; UnknownName suggests near misses."""
        return lookup(self.events, name, f"{self.game} event")

    def badge_index(self, badge: str) -> int:
        """A badge's bit in wObtainedBadges; the same in every game (pret's order)."""
        return badge_bit(badge)


@cache
def _pokemon_red(game: str) -> GameFacts:
    # A block is 2×2 steps; ids pret leaves unused have no size and no map to go to.
    maps = {
        info.name: MapFacts(info.id, info.name, 2 * info.width, 2 * info.height)
        for info in MAPS.values()
        if info.width and info.height
    }
    assert len(EVENT_FLAGS) and max(EVENT_FLAGS.values()) < NUM_EVENT_FLAGS
    return GameFacts(game=game, maps=maps, events=dict(EVENT_FLAGS), badges=BADGES)


# The fixture cartridge's world (env/cartridge/README.md): pret's ids, its own 10×10 sizes.
_FIXTURE_MAPS = ("REDS_HOUSE_1F", "PALLET_TOWN", "ROUTE_1", "PEWTER_GYM")
_FIXTURE_EVENTS = ("EVENT_GOT_STARTER", "EVENT_BEAT_PEWTER_GYM_TRAINER_0", "EVENT_BEAT_BROCK")
FIXTURE_MAP_SIZE = (10, 10)


@cache
def _fixture() -> GameFacts:
    width, height = FIXTURE_MAP_SIZE
    maps = {name: MapFacts(MAP_IDS[name], name, width, height) for name in _FIXTURE_MAPS}
    events = {name: EVENT_FLAGS[name] for name in _FIXTURE_EVENTS}
    return GameFacts(game="fixture", maps=maps, events=events, badges=("BOULDER",))
