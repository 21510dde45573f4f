"""Imagined map changes the game has no way for (agent/leaps.py): judged against the map graph,
and cut from behaviour learning so that a world model's drift from the house into the gym does
not pay "go to the gym"."""

from __future__ import annotations

import pytest
import torch
from fixture_graph import GYM, HOUSE, ROUTE, TOWN, cartridge_graph
from test_behavior import ACTIONS, FACTS, TINY, config, fake_predict, starts

from pokedreamer.agent.behavior import Behavior, goal_tensor
from pokedreamer.agent.leaps import doorways, leaps
from pokedreamer.env.state import BATTLE_ORDER
from pokedreamer.planner.subgoals import GoToMap
from pokedreamer.world_model.model import WorldModel

LOST = BATTLE_ORDER.index("lost")


def steps(*moves: tuple[int, int, int, int]) -> dict[str, torch.Tensor]:
    """Two-state predictions (H=1), one column per (from map, x, y, to map); the cell is the
    one stepped from, and the next state stands at the same cell."""
    maps = torch.tensor([[m[0] for m in moves], [m[3] for m in moves]])
    cells = torch.tensor([[m[1] for m in moves]] * 2), torch.tensor([[m[2] for m in moves]] * 2)
    preds = fake_predict(maps, x=cells[0])
    preds["y"] = cells[1]
    return preds


def test_a_change_of_map_is_a_way_only_at_a_door_or_edge_that_leads_there() -> None:
    graph = cartridge_graph()
    moves = [
        (HOUSE, 3, 1, GYM),  # the top of the house is not the gym
        (HOUSE, 4, 9, TOWN),  # the mat
        (HOUSE, 3, 8, TOWN),  # a step beside it (a predicted cell may be one off)
        (HOUSE, 4, 9, GYM),  # the mat leads to the town, not the gym
        (TOWN, 2, 4, HOUSE),  # below the door, stepping up onto it
        (TOWN, 5, 0, ROUTE),  # the north edge
        (TOWN, 5, 5, ROUTE),  # the middle of the town
        (ROUTE, 4, 2, GYM),  # below the gym's door
        (GYM, 4, 2, HOUSE),  # the leader's cell is no way home
        (GYM, 4, 2, GYM),  # no change
    ]
    got = leaps(steps(*moves), graph)[0].tolist()
    assert got == [True, False, False, True, False, False, True, False, True, False]
    assert not leaps(steps(*moves), None).any()  # no graph: nothing to judge by


def test_what_cannot_be_judged_is_not_a_leap() -> None:
    graph = cartridge_graph()
    preds = steps((HOUSE, 3, 1, GYM), (HOUSE, 3, 1, -1), (-1, 3, 1, GYM), (0x33, 3, 1, GYM))
    preds["x"][0, 1] = -1
    assert leaps(preds, graph)[0].tolist() == [True, False, False, False]
    # Out of a battle: a lost one carries the player home from wherever it was.
    preds = steps((ROUTE, 5, 4, HOUSE), (ROUTE, 5, 4, HOUSE))
    preds["battle"][0, 0] = LOST
    assert leaps(preds, graph)[0].tolist() == [False, True]


def test_a_warp_not_yet_resolved_leads_anywhere() -> None:
    house = cartridge_graph().node(HOUSE)
    assert house is not None
    unresolved = house._replace(warps=tuple(w._replace(to_map=None) for w in house.warps))
    assert doorways(unresolved, GYM)[8:, 3:7].all() and not doorways(unresolved, GYM)[:7].any()
    assert not doorways(house, GYM).any()


@pytest.mark.parametrize("cut", [True, False])
def test_imagination_stops_at_a_leap_and_pays_nothing_for_it(
    cut: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Told to go to the gym: one trajectory walks down the house to its mat and into the town;
    the other presses up at the top and the model dreams it into the gym. Cut, the leap ends its
    trajectory with no bonus and no reward; not cut, the dream pays the subgoal done."""
    wm = WorldModel(TINY, ACTIONS)
    facts = FACTS.with_graph(cartridge_graph())
    maps = torch.tensor([[HOUSE, HOUSE, HOUSE, TOWN, TOWN], [HOUSE, HOUSE, GYM, GYM, GYM]]).T
    xs = torch.tensor([[4, 4, 4, 2, 2], [3, 3, 3, 3, 3]]).T
    ys = torch.tensor([[7, 8, 9, 4, 3], [2, 1, 1, 1, 1]]).T
    preds = fake_predict(maps, x=xs, reward=torch.full((5, 2), 0.5))
    preds["y"] = ys
    monkeypatch.setattr(wm, "predict", lambda feat, state=True: preds)
    gym = GoToMap(map="PEWTER_GYM")
    behavior = Behavior(TINY, ACTIONS, config(horizon=4, shaping_bonus=5.0, cut_leaps=cut))
    imag = behavior.imagine(wm, starts(wm, 2), goal_tensor(gym, facts, 2, "cpu"), gym, facts)
    walked, dreamt = imag.shaping[:, 0], imag.shaping[:, 1]
    assert (walked[:2] > 0).all() and imag.weights[:, 0].tolist() == [1.0] * 4
    if cut:
        assert dreamt[1:].abs().sum() == 0 and imag.rewards[1:, 1].abs().sum() == 0
        assert imag.conts[:, 1].tolist() == [1.0, 0.0, 0.0, 0.0]
        assert imag.weights[:, 1].tolist() == [1.0, 1.0, 0.0, 0.0]
        assert not imag.alive[:, 1].eq(0).any()  # a dreamt arrival is not the subgoal done
        assert imag.leapt is not None and imag.leapt.tolist() == [0.0, 1.0]
        assert behavior.train_on(imag)["leap_rate"] == 0.5
    else:
        assert dreamt[1] > 4  # the bonus, for a wall
        assert imag.leapt is not None and imag.leapt.tolist() == [0.0, 0.0]
        assert imag.weights[:, 1].tolist() == [1.0, 1.0, 0.0, 0.0]
