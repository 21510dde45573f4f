"""A scripted player of subgoals: the teacher System 1's actor imitates.

It reads only what the agent's other parts read — the GameState from RAM, the planner's active
subgoal and the run's map graph (the maps' sizes, warps and connections the envs have read from
RAM, ``GameFacts.graph``) — and knows nothing of a map's walls in advance. It walks by
breadth-first search over the cells of the current map, treating an edge as open until a press
along it has failed while the player already faced that way (a press from another facing may only
have turned the player), and remembers the walls it has bumped into for the rest of its life.
That makes it an optimistic planner: it is never wrong for long, and on the fixture's 10×10 maps it
has learnt every wall on its way within a few dozen steps.

What it does per subgoal:

- ``go_to_tile``: walk to the cell (on another map: go towards that map first);
- ``go_to_map``: walk to the nearest exit of the graph's shortest route (``MapGraph.route_to``);
  with no known route, explore: head for an exit whose destination has not been seen (on this
  map, else on the nearest map that has one), else roam. Standing on an exit that has not taken
  the player off the map (an exit mat), press towards the map's nearest edge, as Red's
  overworld loop wants for a mat (home/overworld.asm);
- ``win_battle``: in a battle, A (FIGHT is where the cursor starts, and A turns text pages); out
  of one, walk to random cells of the map, which finds the tall grass sooner or later;
- ``read_text``, ``heal_party``, ``earn_badge``, ``set_event``: A through any text or battle;
  otherwise stand on the cell of the plan's last ``go_to_tile`` and face each blocked neighbour
  in turn, pressing A, until somebody answers.

With ``pace_grass`` it also remembers the cells where wild battles began (tall grass, learnt as
walls are), and for ``win_battle`` out of a battle it walks to the nearest such cell of the map
and paces between them instead of roaming: ``eval agent --variants floor``, a measure of the
fewest steps the quest takes given its random encounters, not the teacher.

It is a demonstrator, not the agent: ``pokedreamer train imitation`` labels the states the actor
visits with its buttons (DAgger), and ``eval agent --variants demonstrator`` measures it as the
ceiling the imitation is aiming for.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from pokedreamer.env.graph import MapGraph
from pokedreamer.env.state import GameState
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.subgoals import GoToMap, GoToTile, WinBattle

# Direction -> (dx, dy); the press that walks it has the same name.
MOVES: dict[str, tuple[int, int]] = {
    "up": (0, -1),
    "down": (0, 1),
    "left": (-1, 0),
    "right": (1, 0),
}

Cell = tuple[int, int]
Edge = tuple[int, int, int, str]  # map, x, y, direction


class Demonstrator:
    """One player's scripted buttons; keep one per env (it remembers where it stands)."""

    def __init__(
        self, facts: GameFacts, buttons: Sequence[str], seed: int = 0, pace_grass: bool = False
    ) -> None:
        missing = [b for b in ("a", *MOVES) if b not in buttons]
        if missing:
            raise ValueError(f"the demonstrator needs the buttons {', '.join(missing)}")
        self.facts = facts
        self.graph = facts.graph if facts.graph is not None else MapGraph()
        """The run's map graph (shared: the loop grows it as the envs see maps)."""
        self.index = {name: i for i, name in enumerate(buttons)}
        self.names = list(buttons)
        self.rng = np.random.default_rng(seed)
        self._exits: dict[int, dict[Cell, int]] = {}
        """Cells a step onto took the player off the map, and the map it led to (beside the
        graph's warps: on the cartridge, the cells of an edge that lead on)."""
        self.walls: set[Edge] = set()
        """Edges a press has failed to cross; shared by nothing, kept across episodes."""
        self.pace_grass = pace_grass
        self.grass: dict[int, set[Cell]] = {}
        """Per map, the cells where a wild battle began; kept across episodes."""
        self._open: set[Edge] = set()
        self._last: tuple[GameState, str] | None = None
        self._stand: tuple[int, Cell] | None = None  # map and cell of the last go_to_tile
        self._probe = 0  # which neighbour an interaction faces next
        self._wander: tuple[int, Cell] | None = None

    def reset(self) -> None:
        """A new episode: the walls are kept, where the player was is not."""
        self._last = None
        self._stand = None
        self._wander = None
        self._probe = 0

    def act(self, state: GameState, subgoal: object | None) -> int:
        """The button (an index into ``buttons``) to press in ``state`` for ``subgoal``."""
        self._learn(state)
        button = self._choose(state, subgoal)
        self._last = (state, button)
        return self.index[button]

    def pressed(self, button: int) -> None:
        """The button actually pressed after ``act`` (another player's, when the demonstrator
        only labels), so that the walls it learns and the A it waits on are that button's."""
        if self._last is not None:
            self._last = (self._last[0], self.names[button])

    # -- learning walls -----------------------------------------------------------------------

    def _learn(self, state: GameState) -> None:
        if self._last is None:
            return
        before, button = self._last
        if before.battle == "none" and state.battle == "wild" and state.map_id == before.map_id:
            self.grass.setdefault(state.map_id, set()).add((state.x, state.y))
        if button not in MOVES or _busy(before) or _busy(state):
            return
        if state.map_id != before.map_id:  # a step that led off the map: never roam onto it
            dx, dy = MOVES[button]
            cell = (before.x + dx, before.y + dy)
            self._exits.setdefault(before.map_id, {})[cell] = state.map_id
            return
        edge = (before.map_id, before.x, before.y, button)
        if (state.x, state.y) != (before.x, before.y):
            self._open.add(edge)
            self.walls.discard(edge)
        elif before.facing == button:
            self.walls.add(edge)

    # -- choosing -----------------------------------------------------------------------------

    def _choose(self, state: GameState, subgoal: object | None) -> str:
        if _busy(state):
            return "a"  # text pages, the battle menu's FIGHT and TACKLE all answer to A
        if isinstance(subgoal, GoToTile):
            self._stand = (self.facts.map_id(subgoal.map), (subgoal.x, subgoal.y))
            target = self._stand
            if target[0] == state.map_id:
                return self._walk(state, {target[1]}) or self._interact(state)
            return self._towards_map(state, target[0])
        if isinstance(subgoal, GoToMap):
            return self._towards_map(state, self.facts.map_id(subgoal.map))
        if isinstance(subgoal, WinBattle) and self.pace_grass:
            return self._pace(state)
        if isinstance(subgoal, WinBattle) or subgoal is None:
            return self._roam(state)
        # An interaction: from the plan's last stand, if any, face the neighbours and press A.
        if self._stand is not None and self._stand[0] == state.map_id:
            step = self._walk(state, {self._stand[1]})
            if step is not None:
                return step
        return self._interact(state)

    def _interact(self, state: GameState) -> str:
        last = self._last[1] if self._last is not None else None
        if last != "a":
            return "a"
        # A answered nothing: turn to the next neighbour a person could stand on (a blocked or
        # unknown edge, never one known to be open floor) and press A there next. A turn into
        # open floor walks instead; the edge is then known open and the stand is walked back to.
        directions = list(MOVES)
        for _ in range(len(directions)):
            self._probe = (self._probe + 1) % len(directions)
            direction = directions[self._probe]
            if direction != state.facing and self._may_be_blocked(state, direction):
                return direction
        return "a"

    def _may_be_blocked(self, state: GameState, direction: str) -> bool:
        dx, dy = MOVES[direction]
        size = self._size(state.map_id)
        if size is not None and not (0 <= state.x + dx < size[0] and 0 <= state.y + dy < size[1]):
            return False
        return (state.map_id, state.x, state.y, direction) not in self._open

    def _size(self, map_id: int) -> tuple[int, int] | None:
        """(columns, rows): as RAM gave them to the graph, else as the game's facts say."""
        node = self.graph.node(map_id)
        if node is not None:
            return node.columns, node.rows
        info = self.facts.map_by_id(map_id)
        return (info.width, info.height) if info is not None else None

    def _doors(self, map_id: int) -> frozenset[Cell]:
        """Cells that lead off the map: walked onto only as a goal, and never roamed to."""
        node = self.graph.node(map_id)
        warps = node.warp_cells() if node is not None else frozenset()
        return warps | self._exits.get(map_id, {}).keys()

    def _towards_map(self, state: GameState, target: int) -> str:
        if state.map_id == target:
            return self._roam(state)
        route = self.graph.route_to(target)
        leg = next((leg for leg in route if leg.map_id == state.map_id), None)
        if leg is None:
            return self._explore(state)
        # The cells a step has been seen to leave by towards the next map count as its exits.
        hops = {target: 0} | {other.map_id: other.hops for other in route}
        learnt = self._exits.get(state.map_id, {})
        cells = set(leg.cells) | {c for c, to in learnt.items() if hops.get(to) == leg.hops - 1}
        return self._leave(state, cells) or self._roam(state)

    def _explore(self, state: GameState) -> str:
        """No known way: towards an exit whose destination has not been seen, on this map or
        on the nearest map that has one; else roam."""
        graph = self.graph
        unseen = {
            m: {c for to, cells in node.exits() if to is None or to not in graph for c in cells}
            for m, node in graph.nodes.items()
        }
        cells = unseen.get(state.map_id)
        if not cells:
            legs = [
                leg
                for m, found in unseen.items()
                if found
                for leg in graph.route_to(m)
                if leg.map_id == state.map_id
            ]
            cells = set(min(legs, key=lambda leg: leg.hops).cells) if legs else set()
        return (self._leave(state, cells) if cells else None) or self._roam(state)

    def _leave(self, state: GameState, cells: set[Cell]) -> str | None:
        """The press that goes on towards one of the exit ``cells``. Standing on one, the
        player has not left: an exit mat, which Red takes only on a press towards the map's
        edge (home/overworld.asm), so press towards the nearest edge."""
        step = self._walk(state, cells)
        if step is not None or (state.x, state.y) not in cells:
            return step
        size = self._size(state.map_id)
        if size is None:
            return None
        columns, rows = size
        gaps = {
            "down": rows - 1 - state.y, "up": state.y,
            "left": state.x, "right": columns - 1 - state.x,
        }  # fmt: skip
        return min(gaps, key=lambda d: gaps[d])

    def _pace(self, state: GameState) -> str:
        """To the nearest other cell of this map where a wild battle has begun: from off the
        grass the nearest grass, on it a neighbouring grass cell, straight on first (``_walk``
        tries the facing direction first; a turn may cost a press). Roams while it knows no
        grass here, or stands on a lone cell of it."""
        grass = self.grass.get(state.map_id, set()) - {(state.x, state.y)}
        return self._walk(state, grass) or self._roam(state)

    def _roam(self, state: GameState) -> str:
        size = self._size(state.map_id)
        if size is None:
            return str(self.rng.choice(list(MOVES)))
        doors = self._doors(state.map_id)
        for _ in range(4):
            # A cell learnt since to lead off the map is no wander target any more.
            wander = self._wander
            if wander is None or wander[0] != state.map_id or wander[1] in doors:
                cell = (int(self.rng.integers(size[0])), int(self.rng.integers(size[1])))
                if cell in doors:  # roaming stays on the map
                    continue
                self._wander = (state.map_id, cell)
            step = self._walk(state, {self._wander[1]})
            if step is not None:
                return step
            self._wander = None  # reached, or out of reach: pick another
        # Nowhere to go that is known: a random press, but not onto a way off the map.
        stay = [d for d, (dx, dy) in MOVES.items() if (state.x + dx, state.y + dy) not in doors]
        return str(self.rng.choice(stay or list(MOVES)))

    def _walk(self, state: GameState, goals: set[Cell]) -> str | None:
        """The first press of a shortest path to any of ``goals`` over edges not known to be
        walls; None when standing on one of them or none can be reached."""
        start = (state.x, state.y)
        if start in goals:
            return None
        width, height = self._size(state.map_id) or (256, 256)
        doors = self._doors(state.map_id) - goals
        first: dict[Cell, str] = {start: ""}
        frontier = deque([start])
        # Try the facing direction first: equal paths then need no turn.
        order = [state.facing, *(d for d in MOVES if d != state.facing)]
        while frontier:
            cell = frontier.popleft()
            for direction in order:
                if (state.map_id, *cell, direction) in self.walls:
                    continue
                dx, dy = MOVES[direction]
                nxt = (cell[0] + dx, cell[1] + dy)
                if (
                    nxt in first
                    or nxt in doors
                    or not (0 <= nxt[0] < width and 0 <= nxt[1] < height)
                ):
                    continue
                first[nxt] = first[cell] or direction
                if nxt in goals:
                    return first[nxt]
                frontier.append(nxt)
        return None


def _busy(state: GameState) -> bool:
    return state.text_shown or state.battle != "none"
