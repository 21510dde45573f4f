"""The subgoals behaviour learning rehearses, and each subgoal's encoding for the actor.

Every subgoal the envs pursue is encoded here once (the actor reads the encoding every step),
and the newest ``SUBGOAL_POOL`` of them, by description, are kept in the order they were first
encoded, so that the actor keeps what it learnt for the earlier stages of the quest.

Behaviour learning pairs each imagination start with a subgoal that is *live* there (``live``):
not done, and with a potential that is not flat around the start. A subgoal on another map, a
badge that is all-or-nothing, read no different anywhere a short imagined trajectory can reach,
so their shaping would teach nothing from that start. A battle to win is live outside a battle
only on the maps where the replay has seen battles start (``battle_maps``): there a few steps
may lead into one, which is how the player finds a battle to win in the first place.

Two ways to pair (``agent.pairing``): ``pair`` draws the starts, then a live subgoal for each;
``draw`` draws a subgoal per row, each live one alike, then one of its starts. Drawn by start,
subgoals live nearly everywhere (going to a map) fill most rows and a leg live at few places
(the GUIDE's cell, a battle) is rarely rehearsed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from pydantic import TypeAdapter

from pokedreamer.env.state import BATTLE_ORDER, VECTOR_FIELDS, VECTOR_SIZE
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.subgoals import (
    GOAL_ENCODING_SIZE,
    NO_BATTLE,
    TRAINER,
    WILD,
    StateView,
    Subgoal,
    describe,
    done,
    encode,
    phi,
)

SUBGOAL_POOL = 32

PROBE_STEPS = (1, 3)
"""Tiles the liveness probe moves a start by, in each of the four directions: a step, and a
few (a subgoal's potential may round to the same value one tile away)."""


@dataclass(frozen=True)
class Liveness:
    """The pool's subgoals, oldest first; which of them are live at each of N starts (N, K)
    bool; and which are pursued by the envs now (K,) bool."""

    pool: list[Any]
    alive: np.ndarray
    pursued: np.ndarray


class SubgoalPool:
    def __init__(self, facts: GameFacts) -> None:
        self.facts = facts
        self.battle_maps: np.ndarray = np.empty(0, np.int64)
        """Map ids where battles have started (``Replay.battle_maps``), kept up to date by the
        learner: there ``live`` reckons with a battle starting."""
        self._subgoals: OrderedDict[str, Any] = OrderedDict()
        self._rows: dict[int, tuple[Any, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._subgoals)

    def row(self, subgoal: Any) -> torch.Tensor:
        """The subgoal's encoding (G,); a subgoal seen first here joins the pool."""
        # By identity, for speed; the entry holds the subgoal so that its id is not reused.
        cached = self._rows.get(id(subgoal))
        if cached is not None:
            return cached[1]
        if len(self._rows) > 4 * SUBGOAL_POOL:
            self._rows.clear()
        row = torch.tensor(encode(subgoal, self.facts), dtype=torch.float32)
        self._rows[id(subgoal)] = (subgoal, row)
        name = describe(subgoal)
        self._subgoals[name] = subgoal
        self._subgoals.move_to_end(name)
        while len(self._subgoals) > SUBGOAL_POOL:
            self._subgoals.popitem(last=False)
        return row

    def goal_row(self, subgoal: Any | None) -> torch.Tensor:
        """The actor's goal input for an env pursuing ``subgoal`` (zeros for none)."""
        if subgoal is None:
            return torch.zeros(GOAL_ENCODING_SIZE)
        return self.row(subgoal)

    def add(self, subgoals: Iterable[Any]) -> None:
        for subgoal in subgoals:
            self.row(subgoal)

    def subgoals(self) -> list[Any]:
        """The pool, oldest first."""
        return list(self._subgoals.values())

    def pair(
        self, rng: np.random.Generator, vectors: np.ndarray, pursued: list[Any]
    ) -> tuple[list[Any], np.ndarray]:
        """A subgoal for each of N imagination starts, whose GameState vectors are ``vectors``
        (N, VECTOR_SIZE): uniformly one of the pool's subgoals live at that start, and half
        the time one the envs pursue now when one of those is live there. A start where none
        is live gets a pursued subgoal (any of the pool's when none is pursued): there its
        return still carries the game's reward. Returns (subgoals, live (N,) bool). The pool
        must not be empty."""
        found = self.liveness(vectors, pursued)
        pool, alive, chosen = found.pool, found.alive, found.pursued
        n, k = alive.shape
        scores = rng.random((n, k))

        def pick(allowed: np.ndarray) -> np.ndarray:
            """Per start, a random allowed column, -1 where none is allowed."""
            best = np.where(allowed, scores, -1.0).argmax(1)
            return np.where(allowed.any(1), best, -1)

        choice = pick(alive)
        favoured = pick(alive & chosen)
        choice = np.where((rng.random(n) < 0.5) & (favoured >= 0), favoured, choice)
        fallback = pick(np.broadcast_to(chosen if chosen.any() else np.ones(k, bool), (n, k)))
        paired = choice >= 0
        choice = np.where(paired, choice, fallback)
        assert (choice >= 0).all()
        return [pool[i] for i in choice.tolist()], paired

    def liveness(self, vectors: np.ndarray, pursued: list[Any]) -> Liveness:
        """Which of the pool's subgoals are live at each of N starts (``vectors`` (N,
        VECTOR_SIZE)), for ``draw``: found once per replayed batch, drawn from many times."""
        self.add(pursued)  # a pursued subgoal is in the pool, by name
        pool = self.subgoals()
        names = {describe(s) for s in pursued}
        views = views_of(vectors)
        alive = [live(s, views, self.facts, self.battle_maps) for s in pool]
        return Liveness(
            pool,
            np.stack(alive, axis=1).reshape(len(vectors), len(pool)),
            np.array([describe(s) in names for s in pool], dtype=bool),
        )

    @staticmethod
    def draw(
        rng: np.random.Generator, found: Liveness, take: int
    ) -> tuple[np.ndarray, list[Any], np.ndarray]:
        """``take`` imagination rows balanced by subgoal: each row's subgoal is, half the time,
        one the envs pursue now and otherwise any of the pool's, uniformly among those live at
        one start or more, and its start one of those where it is live (a start may serve
        several rows: the actor and the model sample, so no two rollouts are alike). Where no
        subgoal is live anywhere, starts are drawn as ``pair`` draws them and get a pursued
        subgoal (any of the pool's when none is pursued). Returns (start indices (take,),
        subgoals, live (take,) bool)."""
        n, k = found.alive.shape
        somewhere = found.alive.any(0)
        if not somewhere.any():
            starts = rng.choice(n, min(take, n), replace=False)
            options = np.flatnonzero(found.pursued) if found.pursued.any() else np.arange(k)
            columns = rng.choice(options, len(starts))
            return starts, [found.pool[c] for c in columns.tolist()], np.zeros(len(starts), bool)
        columns = rng.choice(np.flatnonzero(somewhere), take)
        favoured = np.flatnonzero(somewhere & found.pursued)
        if len(favoured):
            swap = rng.random(take) < 0.5
            columns[swap] = rng.choice(favoured, int(swap.sum()))
        starts = np.empty(take, np.int64)
        for column in np.unique(columns):
            rows = np.flatnonzero(columns == column)
            starts[rows] = rng.choice(np.flatnonzero(found.alive[:, column]), len(rows))
        return starts, [found.pool[c] for c in columns.tolist()], np.ones(take, bool)

    def rows(self, subgoals: list[Any]) -> torch.Tensor:
        """The encodings (N, G) of N subgoals."""
        return torch.stack([self.row(subgoal) for subgoal in subgoals])

    def dump(self) -> list[dict[str, Any]]:
        """The pool, oldest first (the order draws index), as JSON."""
        return [subgoal.model_dump() for subgoal in self._subgoals.values()]

    def restore(self, saved: list[dict[str, Any]]) -> None:
        """The pool as ``dump`` gave it, in its order: a resumed run draws what it would have."""
        adapter: TypeAdapter[Any] = TypeAdapter(Subgoal)
        self._subgoals.clear()
        for entry in saved:
            self.row(adapter.validate_python(entry))


def views_of(vectors: np.ndarray) -> StateView:
    """A batch StateView (N,) of GameState vectors (N, VECTOR_SIZE): what the subgoals read of
    the replayed states behind imagination starts (text and event flags unknown)."""
    assert vectors.ndim == 2 and vectors.shape[1] == VECTOR_SIZE, vectors.shape
    v = np.asarray(vectors, dtype=np.float32)

    def field(name: str) -> np.ndarray:
        return v[:, VECTOR_FIELDS.index(name)]

    def byte(name: str) -> np.ndarray:
        return np.rint(field(name) * 255.0).astype(np.int64)

    first = VECTOR_FIELDS.index(f"battle_{BATTLE_ORDER[0]}")
    battle = v[:, first : first + len(BATTLE_ORDER)].argmax(1)
    fighting = (battle == BATTLE_ORDER.index("wild")) | (battle == BATTLE_ORDER.index("trainer"))
    badges = VECTOR_FIELDS.index("badge_boulder")
    return StateView.from_arrays(
        map_id=byte("map_id"),
        x=byte("x"),
        y=byte("y"),
        battle=battle,
        text_shown=field("text_shown"),
        hp_fraction=field("hp_fraction"),
        badges=v[:, badges : badges + 8],
        # The vector holds 0 outside a battle; a StateView reads 1 there (no enemy hurt).
        enemy_hp_fraction=np.where(fighting, field("enemy_hp_fraction"), 1.0),
    )


def live(
    subgoal: Any, view: StateView, facts: GameFacts, battle_maps: np.ndarray | None = None
) -> np.ndarray:
    """(N,) bool: the subgoal is not done in the view's states and its potential changes in at
    least one nearby state: the player a few tiles away on the same map, a text box open, the
    enemy (in a battle) half as healthy, or, outside a battle on one of ``battle_maps`` (map
    ids), a wild battle under way with the enemy half as healthy, or, outside a battle in a
    gym, a trainer battle so. These are the changes a short imagined trajectory can make; a
    potential that none of them moves is flat there."""
    shape = np.shape(view.map_id)

    def potential(v: StateView) -> np.ndarray:
        return np.broadcast_to(np.asarray(phi(subgoal, v, facts), dtype=np.float64), shape)

    here = potential(view)
    moved = np.zeros(shape, dtype=bool)
    probes = [
        replace(view, x=view.x + dx * step, y=view.y + dy * step)
        for step in PROBE_STEPS
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))
    ]
    probes.append(replace(view, text_shown=np.ones_like(view.text_shown)))
    probes.append(replace(view, enemy_hp_fraction=view.enemy_hp_fraction * 0.5))
    if battle_maps is not None and len(battle_maps):
        probes.append(_battle_under_way(view, battle_maps, WILD))
    gyms = facts.gym_map_ids()
    if len(gyms):  # a gym's trainers and leader wait there
        probes.append(_battle_under_way(view, gyms, TRAINER))
    for probe in probes:
        moved |= potential(probe) != here
    return moved & ~np.broadcast_to(np.asarray(done(subgoal, view, facts), dtype=bool), shape)


def _battle_under_way(view: StateView, maps: np.ndarray, kind: int) -> StateView:
    """``view`` with, where it is outside a battle on one of ``maps`` (ids), a battle of
    ``kind`` (an index into BATTLE_ORDER) under way and the enemy half as healthy."""
    can_start = (np.asarray(view.battle) == NO_BATTLE) & np.isin(np.asarray(view.map_id), maps)
    return replace(
        view,
        battle=np.where(can_start, kind, view.battle),
        enemy_hp_fraction=np.where(can_start, 0.5, view.enemy_hp_fraction),
    )
