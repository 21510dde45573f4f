"""The map graph: the maps a player has seen and the ways between them, as the game's RAM says.

When a map loads, Red's work RAM holds its size, its warps and its connections (env/world.py
reads them). A :class:`MapNode` keeps one map's reading, with each warp to LAST_MAP ($FF, "the map
the player came from") resolved to a map id through wLastMap. The :class:`MapGraph` gathers the
nodes of every map seen, merges other graphs (the loop's envs each report theirs) and finds the
routes to a map: breadth-first over the exits, a connection's exit being its edge's row or column
of cells. It also keeps the ground of each map as far as the screen has shown it (which cells are
walkable, by the tileset's collision list, env/world.py), so that each leg of a route carries the
fewest steps from every cell of its map to the leg's exit, around the walls seen so far (a cell
not yet seen counts as open, so an unseen map reads as straight lines). It also keeps the text
boxes read on each map and the cell the player stood on to read them (``read``), so that
imagination, whose predicted states carry no text, can tell where a sign or a person says what a
plan asks to read. The graph is saved as JSON in a run directory, so that a resumed run keeps what
it saw.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pokedreamer.env.maps import MAPS, map_name
from pokedreamer.env.ram import RAM
from pokedreamer.env.world import (
    DIRECTIONS,
    Direction,
    Memory,
    read_connections,
    read_map_size,
    read_warps,
)
from pokedreamer.errors import UserError, check_format_version
from pokedreamer.files import write_atomic

FORMAT = "pokedreamer-map-graph"
VERSION = 3
OLDEST_VERSION = 1
CHANGES: dict[int, str] = {
    1: "maps with their size, warps and connections",
    2: "the ground seen of each map: its walkable cells and its walls",
    3: "the text boxes read on each map, with the cell the player read each from",
}
GRAPH_FILE = "map_graph.json"
TEXTS_PER_CELL = 16
"""The most distinct text boxes kept for one cell (a person's pages, a sign, a menu's lines): a
cell reading ever new text (a counter, a name) must not grow the file without end."""
MAX_TEXT_CHARS = 80
"""A text box's two lines, joined, are 37 characters at most; longer is not a box's text."""

Cell = tuple[int, int]
Target = tuple[int | None, int | None]
"""An exit as a place to close in on: a warp's (x, y); an edge's (None, row) or (column, None),
reached from anywhere along it."""


class Exit(NamedTuple):
    """A warp cell of a map and the map it leads to; ``to_map`` None while a warp to the map
    the player came from ($FF) could not be resolved."""

    x: int
    y: int
    to_map: int | None


class MapNode(NamedTuple):
    """One map as it was read: size in steps, warps in the game's order, connections."""

    map_id: int
    columns: int
    rows: int
    warps: tuple[Exit, ...]
    connections: tuple[tuple[Direction, int], ...]  # (edge, map) in DIRECTIONS' order

    def edge(self, direction: Direction) -> tuple[Cell, ...]:
        """The cells along an edge, from which a step out leads through its connection."""
        if direction == "north":
            return tuple((x, 0) for x in range(self.columns))
        if direction == "south":
            return tuple((x, self.rows - 1) for x in range(self.columns))
        if direction == "west":
            return tuple((0, y) for y in range(self.rows))
        return tuple((self.columns - 1, y) for y in range(self.rows))

    def exits(self) -> tuple[tuple[int | None, tuple[Cell, ...]], ...]:
        """Every way off the map: (map it leads to, its cells); warps first, then edges."""
        warps = tuple((w.to_map, ((w.x, w.y),)) for w in self.warps)
        return warps + tuple((m, self.edge(d)) for d, m in self.connections)

    def targets(self) -> tuple[tuple[int | None, Target], ...]:
        """Every way off the map as (map it leads to, where to close in on it), as ``exits``."""
        edges: dict[Direction, Target] = {
            "north": (None, 0), "south": (None, self.rows - 1),
            "west": (0, None), "east": (self.columns - 1, None),
        }  # fmt: skip
        warps = tuple((w.to_map, (w.x, w.y)) for w in self.warps)
        return warps + tuple((m, edges[d]) for d, m in self.connections)

    def warp_cells(self) -> frozenset[Cell]:
        return frozenset((w.x, w.y) for w in self.warps)

    def contains(self, x: int, y: int) -> bool:
        return 0 <= x < self.columns and 0 <= y < self.rows


@dataclass(frozen=True)
class RouteLeg:
    """On the way to a map: from ``map_id``, ``hops`` exits still to pass, the first through
    one of ``cells`` (x, y) on ``map_id``; ``targets`` are those exits as ``Target``s.
    ``steps[y, x]`` is the fewest steps from cell (x, y) to one of those exits around the walls
    seen so far (``UNREACHABLE`` where the walls seen shut it off)."""

    map_id: int
    hops: int
    cells: tuple[Cell, ...]
    targets: tuple[Target, ...]
    steps: np.ndarray | None = field(default=None, compare=False, repr=False)


UNREACHABLE = 0x7FFF
"""``RouteLeg.steps`` of a cell from which the walls seen leave no way to the exit."""
_NEIGHBOURS: tuple[Cell, ...] = ((0, -1), (0, 1), (-1, 0), (1, 0))


def steps_to(node: MapNode, exits: Iterable[Cell], walls: frozenset[Cell]) -> np.ndarray:
    """The fewest steps from each cell of ``node``'s map to one of ``exits``, breadth-first
    over the cells that are not ``walls`` (an exit counts as open: a door or a mat is walked
    onto even where its tile reads as a wall). (rows, columns) int16, ``UNREACHABLE`` where no
    way is known."""
    steps = np.full((node.rows, node.columns), UNREACHABLE, dtype=np.int16)
    frontier = [c for c in dict.fromkeys(exits) if node.contains(*c)]
    for x, y in frontier:
        steps[y, x] = 0
    distance = 0
    while frontier:
        distance += 1
        reached = []
        for x, y in frontier:
            for dx, dy in _NEIGHBOURS:
                cell = (x + dx, y + dy)
                if (
                    node.contains(*cell)
                    and steps[cell[1], cell[0]] == UNREACHABLE
                    and cell not in walls
                ):
                    steps[cell[1], cell[0]] = distance
                    reached.append(cell)
        frontier = reached
    steps.flags.writeable = False  # shared by every reader of the cached route
    return steps


def _known_map(map_id: int) -> bool:
    info = MAPS.get(map_id)
    return info is not None and info.width > 0 and info.height > 0


def read_map_node(memory: Memory, came_from: int | None = None) -> MapNode | None:
    """The current map as RAM holds it; None before its header has loaded. A warp to $FF leads
    to wLastMap when that names a map other than this one, else to ``came_from`` (the map the
    reader saw before), else it stays unresolved."""
    size = read_map_size(memory)
    if not (size.height and size.width):
        return None
    map_id = memory[RAM["wCurMap"].address]
    last = memory[RAM["wLastMap"].address]
    if not _known_map(last) or last == map_id:
        last = came_from if came_from is not None and came_from != map_id else None
    warps = tuple(Exit(w.x, w.y, last if w.to_last_map else w.dest_map) for w in read_warps(memory))
    connections = tuple((c.direction, c.map_id) for c in read_connections(memory))
    return MapNode(map_id, size.columns, size.rows, warps, connections)


def _merge_nodes(old: MapNode, new: MapNode) -> MapNode:
    """The newer reading, keeping what the older one resolved where the newer could not."""
    resolved = {(w.x, w.y): w.to_map for w in old.warps if w.to_map is not None}
    warps = tuple(
        w if w.to_map is not None else w._replace(to_map=resolved.get((w.x, w.y)))
        for w in new.warps
    )
    edges = dict(old.connections) | dict(new.connections)
    connections = tuple((d, edges[d]) for d in DIRECTIONS if d in edges)
    return new._replace(warps=warps, connections=connections)


class MapGraph:
    """The maps seen, by id; ``version`` counts the changes (routes are cached per version)."""

    def __init__(
        self,
        nodes: Iterable[MapNode] = (),
        ground: Mapping[int, Mapping[Cell, bool]] | None = None,
        texts: Mapping[int, Iterable[tuple[int, int, str]]] | None = None,
    ) -> None:
        self._nodes: dict[int, MapNode] = {}
        self._ground: dict[int, dict[Cell, bool]] = {}
        self._texts: dict[int, dict[Cell, list[str]]] = {}
        self._walls: dict[int, set[Cell]] = {}  # the ground's non-walkable cells
        self.version = 0
        self._routes: dict[int, tuple[RouteLeg, ...]] = {}
        self._to_cell: dict[tuple[int, Cell], np.ndarray | None] = {}
        self._routes_version = 0
        for node in nodes:
            self.add(node)
        for map_id, cells in (ground or {}).items():
            self.see(map_id, ((x, y, open_) for (x, y), open_ in cells.items()))
        for map_id, read in (texts or {}).items():
            for x, y, text in read:
                self.read(map_id, x, y, text)

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, map_id: object) -> bool:
        return map_id in self._nodes

    @property
    def nodes(self) -> Mapping[int, MapNode]:
        return self._nodes

    def node(self, map_id: int) -> MapNode | None:
        return self._nodes.get(map_id)

    def add(self, node: MapNode) -> bool:
        """Takes in one reading of a map; True when the graph changed."""
        old = self._nodes.get(node.map_id)
        merged = node if old is None else _merge_nodes(old, node)
        if merged == old:
            return False
        self._nodes[node.map_id] = merged
        self.version += 1
        return True

    def see(self, map_id: int, cells: Iterable[tuple[int, int, bool]]) -> bool:
        """Takes in cells of a map as the screen showed them, (x, y, walkable); True when the
        graph changed. Once read as walkable a cell stays so: a wall read by mistake (say,
        under a sprite drawn into the tile map) is mended by the next reading, and an open
        cell read by mistake only makes the routes optimistic."""
        ground = self._ground.setdefault(map_id, {})
        changed = False
        for x, y, walkable in cells:
            known = ground.get((x, y))
            if known is None or (walkable and not known):
                ground[(x, y)] = walkable
                walls = self._walls.setdefault(map_id, set())
                if walkable:
                    walls.discard((x, y))
                else:
                    walls.add((x, y))
                changed = True
        if changed:
            self.version += 1
        return changed

    def ground(self, map_id: int) -> Mapping[Cell, bool]:
        """The cells of a map seen so far: walkable or not."""
        return self._ground.get(map_id, {})

    def walls(self, map_id: int) -> frozenset[Cell]:
        """The cells of a map seen not to be walkable."""
        return frozenset(self._walls.get(map_id, ()))

    def read(self, map_id: int, x: int, y: int, text: str) -> bool:
        """Takes in a text box read outside a battle with the player on (x, y) of a map seen
        (its lines joined by spaces); True when the graph changed. A map not yet seen, an
        empty or over-long text, or a cell already holding ``TEXTS_PER_CELL`` texts is
        ignored."""
        node = self._nodes.get(map_id)
        if node is None or not node.contains(x, y) or not 0 < len(text) <= MAX_TEXT_CHARS:
            return False
        known = self._texts.setdefault(map_id, {}).setdefault((x, y), [])
        if text in known or len(known) >= TEXTS_PER_CELL:
            return False
        known.append(text)
        self.version += 1
        return True

    def texts(self, map_id: int) -> Mapping[Cell, tuple[str, ...]]:
        """The text boxes read on a map, by the cell the player read each from."""
        return {cell: tuple(read) for cell, read in self._texts.get(map_id, {}).items()}

    def merge(self, other: MapGraph) -> bool:
        """Takes in every map of ``other`` and the ground it saw; True when the graph changed."""
        changed = False
        for node in other.nodes.values():
            changed = self.add(node) or changed
        for map_id, cells in other._ground.items():
            changed = self.see(map_id, ((x, y, w) for (x, y), w in cells.items())) or changed
        for map_id, by_cell in other._texts.items():
            for (x, y), read in by_cell.items():
                for text in read:
                    changed = self.read(map_id, x, y, text) or changed
        return changed

    def route_to(self, target: int) -> tuple[RouteLeg, ...]:
        """Every seen map from which the known exits lead to ``target``: how many exits are
        left to pass and which cells are the first of them (breadth-first back from the
        target; by hops, then map id). Cached until the graph changes."""
        self._forget_old_routes()
        if target not in self._routes:
            self._routes[target] = self._search(target)
        return self._routes[target]

    def steps_to_cell(self, map_id: int, cell: Cell) -> np.ndarray | None:
        """The fewest steps from every cell of a map to ``cell``, around the walls seen (as
        ``RouteLeg.steps``); None while the map has not been seen or the cell is off it.
        Cached until the graph changes."""
        self._forget_old_routes()
        key = (map_id, cell)
        if key not in self._to_cell:
            node = self._nodes.get(map_id)
            found = node is not None and node.contains(*cell)
            self._to_cell[key] = steps_to(node, [cell], self.walls(map_id)) if found else None
        return self._to_cell[key]

    def _forget_old_routes(self) -> None:
        if self._routes_version != self.version:
            self._routes, self._to_cell, self._routes_version = {}, {}, self.version

    def _search(self, target: int) -> tuple[RouteLeg, ...]:
        placed = {target}
        legs: list[RouteLeg] = []
        frontier = {target}
        depth = 0
        while frontier:
            depth += 1
            reached = {}
            for node in self._nodes.values():
                if node.map_id in placed:
                    continue
                cells = tuple(c for to, cs in node.exits() if to in frontier for c in cs)
                if cells:
                    targets = tuple(t for to, t in node.targets() if to in frontier)
                    reached[node.map_id] = (tuple(dict.fromkeys(cells)), targets)
            for map_id in sorted(reached):
                cells, targets = reached[map_id]
                node, walls = self._nodes[map_id], self.walls(map_id)
                # An edge's wall cells (trees along it) are no way out; a warp always is.
                warps = node.warp_cells()
                exits = [c for c in cells if c in warps or c not in walls]
                steps = steps_to(node, exits, walls)
                legs.append(RouteLeg(map_id, depth, cells, targets, steps))
            placed |= reached.keys()
            frontier = set(reached)
        return tuple(legs)

    def exits_from(self, map_id: int) -> tuple[tuple[int | None, tuple[Cell, ...]], ...]:
        node = self._nodes.get(map_id)
        return node.exits() if node is not None else ()

    def describe_exits(self, map_id: int) -> str | None:
        """One line for the planner's prompt: where the known exits of a map lead, grouped by
        destination; None while the map has not been seen."""
        node = self._nodes.get(map_id)
        if node is None:
            return None
        ways: dict[str, list[str]] = {}
        for warp in node.warps:
            ways.setdefault(_destination(warp.to_map), []).append(f"({warp.x},{warp.y})")
        for direction, to_map in node.connections:
            ways.setdefault(_destination(to_map), []).append(f"the {direction} edge")
        listed = "; ".join(f"to {to} via {', '.join(places)}" for to, places in ways.items())
        return f"Known exits (x,y): {listed or 'none'}"

    # --- the JSON form -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "maps": [
                {
                    "id": n.map_id,
                    "columns": n.columns,
                    "rows": n.rows,
                    "warps": [[w.x, w.y, w.to_map] for w in n.warps],
                    "connections": {d: m for d, m in n.connections},
                    **_ground_json(n, self._ground.get(n.map_id, {})),
                    **_texts_json(self._texts.get(n.map_id, {})),
                }
                for n in self._nodes.values()
            ],
        }

    @classmethod
    def from_json(cls, data: Any, source: str) -> MapGraph:
        """A graph from its JSON form; UserError in one line naming ``source`` otherwise."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UserError(f'{source} is not a map graph (expected "format": "{FORMAT}")')
        version = data.get("version")
        if not isinstance(version, int):
            raise UserError(f"{source}: the map graph's version is missing or not a number")
        check_format_version(
            version, VERSION, OLDEST_VERSION, CHANGES,
            subject=f"map graph {source} has", reads="reads", open_with="read",
        )  # fmt: skip
        try:
            nodes = [_node(entry) for entry in data["maps"]]
            ground = {
                node.map_id: _ground(entry["ground"], node)
                for node, entry in zip(nodes, data["maps"], strict=True)
                if "ground" in entry
            }
            texts = {
                node.map_id: _texts(entry["texts"], node)
                for node, entry in zip(nodes, data["maps"], strict=True)
                if "texts" in entry
            }
            return cls(nodes, ground, texts)
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{source}: a malformed map graph ({exc!r:.80})") from None

    def save(self, path: Path) -> None:
        write_atomic(path, (json.dumps(self.to_json(), separators=(",", ":")) + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> MapGraph:
        """The graph in ``path`` (a map_graph.json, or a run directory holding one)."""
        if path.is_dir():
            path = path / GRAPH_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot read the map graph {path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UserError(f"{path} is not JSON: {exc}") from None
        return cls.from_json(data, str(path))


def _destination(map_id: int | None) -> str:
    return map_name(map_id) if map_id is not None else "the map the player came from (unknown)"


def _byte(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise ValueError(f"{value!r} is not a byte")
    return value


def _size(value: Any) -> int:
    # A map is at most 255 blocks of 2 steps each way.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 2 * 0xFF:
        raise ValueError(f"{value!r} is not a map size in steps")
    return value


def _node(entry: Any) -> MapNode:
    warps = tuple(
        Exit(_byte(x), _byte(y), None if to is None else _byte(to)) for x, y, to in entry["warps"]
    )
    edges = entry["connections"]
    unknown = set(edges) - set(DIRECTIONS)
    if unknown:
        raise ValueError(f"no edge {sorted(unknown)[0]!r}")
    connections = tuple((d, _byte(edges[d])) for d in DIRECTIONS if d in edges)
    return MapNode(
        _byte(entry["id"]), _size(entry["columns"]), _size(entry["rows"]), warps, connections
    )


# The ground of a map in JSON: one string per row, a character per cell.
GROUND_OPEN, GROUND_WALL, GROUND_UNSEEN = ".", "#", "?"


def _ground_json(node: MapNode, ground: Mapping[Cell, bool]) -> dict[str, Any]:
    if not ground:
        return {}
    marks = {True: GROUND_OPEN, False: GROUND_WALL}
    rows = [
        "".join(marks.get(ground.get((x, y)), GROUND_UNSEEN) for x in range(node.columns))
        for y in range(node.rows)
    ]
    return {"ground": rows}


def _ground(rows: Any, node: MapNode) -> dict[Cell, bool]:
    if not isinstance(rows, list) or len(rows) != node.rows:
        raise ValueError(f"map {node.map_id}'s ground is not {node.rows} rows")
    ground = {}
    for y, row in enumerate(rows):
        if not isinstance(row, str) or len(row) != node.columns:
            raise ValueError(f"map {node.map_id}'s ground row {y} is not {node.columns} cells")
        for x, mark in enumerate(row):
            if mark not in (GROUND_OPEN, GROUND_WALL, GROUND_UNSEEN):
                raise ValueError(f"no ground mark {mark!r}")
            if mark != GROUND_UNSEEN:
                ground[(x, y)] = mark == GROUND_OPEN
    return ground


def _texts_json(texts: Mapping[Cell, list[str]]) -> dict[str, Any]:
    if not texts:
        return {}
    return {"texts": [[x, y, text] for (x, y), read in texts.items() for text in read]}


def _texts(entries: Any, node: MapNode) -> list[tuple[int, int, str]]:
    if not isinstance(entries, list):
        raise ValueError(f"map {node.map_id}'s texts are not a list")
    texts = []
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 3:
            raise ValueError(f"map {node.map_id}'s text {entry!r:.40} is not [x, y, text]")
        x, y, text = entry
        if not node.contains(_byte(x), _byte(y)):
            raise ValueError(f"map {node.map_id}'s text at ({x}, {y}) is off the map")
        if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT_CHARS:
            raise ValueError(f"map {node.map_id}'s text at ({x}, {y}) is not a text box's")
        texts.append((x, y, text))
    return texts
