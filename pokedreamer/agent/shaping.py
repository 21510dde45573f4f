"""The subgoal's part of imagined rewards: System 2's subgoals judged on the world model's
predicted states, as potential shaping plus a completion bonus (planner.subgoals.shaping)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.subgoals import StateView, Subgoal, done, shaping
from pokedreamer.world_model.heads import STATE_HEADS


def subgoal_shaping(
    preds: dict[str, Tensor],
    subgoal: Subgoal | Sequence[Subgoal | None] | None,
    facts: GameFacts | None,
    discount: Tensor,
    bonus: float,
) -> tuple[Tensor, Tensor]:
    """The subgoal part of imagined rewards, unscaled: (shaping (H, B), not_done (H+1, B)).

    preds: the world model's predictions on s_0 .. s_H, each (H+1, B, ...). discount (H, B):
    gamma * cont(s_{t+1}), the returns' own discount of s_t -> s_{t+1} before the subgoal's end,
    so the potential part telescopes (planner.subgoals.shaping). `subgoal`: one for every
    trajectory, or one per trajectory; those that share one are shaped together, by column."""
    h, b = discount.shape
    device = discount.device
    shaped, not_done = torch.zeros(h, b, device=device), torch.ones(h + 1, b, device=device)
    pairs = subgoal if isinstance(subgoal, Sequence) else [subgoal] * b
    assert len(pairs) == b, (len(pairs), b)
    columns: dict[Any, list[int]] = {}
    for i, each in enumerate(pairs):
        if each is not None:
            columns.setdefault(each, []).append(i)
    for each, where in columns.items():
        assert facts is not None, "shaping a subgoal needs the game's facts"
        cols, n = torch.tensor(where, device=device), len(where)
        arrays = {name: preds[name].index_select(1, cols) for name in STATE_HEADS}
        prev = StateView.from_arrays(**{k: v[:-1] for k, v in arrays.items()})
        nxt = StateView.from_arrays(**{k: v[1:] for k, v in arrays.items()})
        reward = shaping(each, prev, nxt, facts, discount.index_select(1, cols), bonus)
        shaped.index_copy_(1, cols, _batch(reward, h, n, device))
        reached = _batch(done(each, StateView.from_arrays(**arrays), facts), h + 1, n, device)
        not_done.index_copy_(1, cols, 1.0 - reached)
    return shaped, not_done


def _batch(value: Any, h: int, b: int, device: torch.device) -> Tensor:
    """A subgoal function's result (a tensor, or a plain number where it cannot judge
    predicted states) as float32 (h, b) on device."""
    out = torch.as_tensor(value, device=device).float()
    return out.expand(h, b) if out.shape != (h, b) else out
