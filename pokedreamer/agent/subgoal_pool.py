"""The subgoals behaviour learning rehearses, and each subgoal's encoding for the actor.

Every subgoal the envs pursue is encoded here once (the actor reads the encoding every step),
and the newest ``SUBGOAL_POOL`` of them, by description, are kept in the order they were first
encoded: behaviour learning draws half its subgoals from this pool, so that the actor keeps what
it learnt for the earlier stages of the quest.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from pydantic import TypeAdapter

from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.subgoals import GOAL_ENCODING_SIZE, Subgoal, describe, encode

SUBGOAL_POOL = 32


class SubgoalPool:
    def __init__(self, facts: GameFacts) -> None:
        self.facts = facts
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

    def draw(self, rng: np.random.Generator, pursued: list[Any]) -> Any:
        """A subgoal to rehearse: one the envs pursue now half the time (when they pursue
        any), else one from the pool. The pool must not be empty."""
        if pursued and rng.random() < 0.5:
            return pursued[int(rng.integers(len(pursued)))]
        pool = list(self._subgoals.values())
        return pool[int(rng.integers(len(pool)))]

    def dump(self) -> list[dict[str, Any]]:
        """The pool, oldest first (the order draws index), as JSON."""
        return [subgoal.model_dump() for subgoal in self._subgoals.values()]

    def restore(self, saved: list[dict[str, Any]]) -> None:
        """The pool as ``dump`` gave it, in its order: a resumed run draws what it would have."""
        adapter: TypeAdapter[Any] = TypeAdapter(Subgoal)
        self._subgoals.clear()
        for entry in saved:
            self.row(adapter.validate_python(entry))
