"""Imagined steps that change the map where the game has no way: a world model's prior drifting
from one map's latent into another's.

The fixture's house and gym are both small rooms with a wall at the top and a mat at the bottom.
A world model trained on random play learns both, and over a few imagined steps its prior can
slide from one to the other: measured on one run, four presses of up from the top of the house
end "in the gym" in two rollouts of three. Told to go to the gym, the actor then learns to press
up against the house's wall, which imagination pays as the subgoal done. Such a leap is judged
against the run's map graph (the warps and connections the envs have read from RAM): a change of
map counts as a way out only from within a step of a warp or an edge that leads there, or out of
a battle (a lost battle carries the player home). Whatever the model imagines after a leap is
another game's future; behaviour learning cuts the trajectory at the leap (Behavior.imagine).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pokedreamer.env.graph import MapGraph, MapNode
from pokedreamer.planner.subgoals import NO_BATTLE


def leaps(preds: dict[str, Tensor], graph: MapGraph | None) -> Tensor:
    """(H, B) bool: the imagined step from s_t to s_{t+1} changes the map where no way the map
    graph knows leads. preds: the state heads' predictions on s_0 .. s_H ("map_id", "x", "y",
    "battle", each (H+1, B) int64, -1 where unknown). Not judged (False): a step from or to an
    unknown map or cell, from a map the graph has not read, or out of a battle."""
    map_id = preds["map_id"]
    before, after = map_id[:-1], map_id[1:]
    out = torch.zeros_like(before, dtype=torch.bool)
    x, y = preds["x"][:-1], preds["y"][:-1]
    changed = (before != after) & (before >= 0) & (after >= 0) & (x >= 0) & (y >= 0)
    changed &= preds["battle"][:-1] == NO_BATTLE
    if graph is None or not bool(changed.any()):
        return out
    rows, cols = changed.nonzero(as_tuple=True)
    pairs = torch.stack([before[rows, cols], after[rows, cols]], dim=1)
    for a, b in torch.unique(pairs, dim=0).tolist():
        node = graph.node(int(a))
        if node is None:
            continue
        which = (pairs[:, 0] == a) & (pairs[:, 1] == b)
        r, c = rows[which], cols[which]
        grid = torch.as_tensor(doorways(node, int(b)), device=map_id.device)
        xs, ys = x[r, c], y[r, c]
        inside = (xs < node.columns) & (ys < node.rows)
        way = torch.zeros_like(inside)
        way[inside] = grid[ys[inside], xs[inside]]
        out[r, c] = ~way
    return out


def doorways(node: MapNode, to_map: int) -> np.ndarray:
    """(rows, columns) bool: the cells of ``node``'s map within a step (the eight around, or
    on it) of a warp or edge leading to ``to_map``, or of a warp whose destination is not yet
    known. The step onto a door is taken from the cell before it, and a predicted cell may be
    one off."""
    grid = np.zeros((node.rows + 2, node.columns + 2), dtype=bool)  # a border for the shifts
    for destination, cells in node.exits():
        if destination is None or destination == to_map:
            for cx, cy in cells:
                grid[cy : cy + 3, cx : cx + 3] = True
    return grid[1:-1, 1:-1].copy()
