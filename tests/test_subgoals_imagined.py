"""Subgoals judged on the world model's predicted states: what imagination can honestly know.
A predicted state carries no text (read_text with words pays and completes there only on a cell
from which the run has read those words) and does carry the enemy's HP (win_battle's potential
follows it, to the head's resolution)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import cli
from fixture_graph import cartridge_graph
from test_subgoals import FIXTURE, _state

from pokedreamer.agent.subgoal_pool import live, views_of
from pokedreamer.env.graph import MapGraph
from pokedreamer.env.state import GameState
from pokedreamer.planner.facts import GameFacts, cell_key
from pokedreamer.planner.subgoals import ReadText, StateView, WinBattle, done, phi, shaping
from pokedreamer.world_model import heads


def _predicted(*states: GameState) -> StateView:
    """The world model's view of real states, as its state heads give it when they are sure:
    each head's mode on the state's own target."""
    state_heads = heads.StateHeads(8, 8, 1, heads.StateRanges.of_maps(FIXTURE.maps.values()))
    targets = state_heads.targets(torch.from_numpy(np.stack([s.vector() for s in states])))
    outputs = {}
    for name in heads.STATE_HEADS:
        size = state_heads.sizes[name]
        if state_heads.kinds[name] == "categorical":
            outputs[name] = torch.nn.functional.one_hot(targets[name], size).float() * 50
        else:
            outputs[name] = (targets[name] - 0.5) * 100
    return StateView.from_arrays(**state_heads.predicted(outputs))


SIGNS = {
    "guide": ("GUIDE: Hello, RED!", "Going out alone?"),
    "mom": ("MOM: RED! You", "should rest."),
}


def _facts_having_read(*texts: tuple[int, int, int, tuple[str, ...]]) -> GameFacts:
    """The fixture's facts with a graph of its maps from which ``texts`` (map, x, y, lines)
    were read, as the driver records them."""
    facts = FIXTURE.with_graph(cartridge_graph())
    assert facts.graph is not None
    for map_id, x, y, lines in texts:
        facts.graph.read(map_id, x, y, " ".join(lines))
    return facts


def test_reading_the_wrong_sign_pays_nothing_in_imagination() -> None:
    """Predicted states carry no text: a text box there may be any sign, so with no text read
    anywhere yet read_text("GUIDE") neither completes nor pays for one, whichever sign it is;
    in real states only the right sign completes it, with the full bonus."""
    guide = ReadText(contains="GUIDE")
    walking = _state(map_id=0, x=3, y=4)
    real = {name: _state(map_id=0, x=3, y=4, text_shown=True, text=t) for name, t in SIGNS.items()}

    # Real states: the right sign completes and pays the bonus, the wrong one nothing.
    assert done(guide, real["guide"], FIXTURE) and phi(guide, real["guide"], FIXTURE) == 1.0
    assert (
        shaping(guide, walking, real["guide"], FIXTURE, discount=1.0, bonus=10.0) == 10.0
    )  # the bonus; phi of a done state is 0
    assert not done(guide, real["mom"], FIXTURE)
    assert shaping(guide, walking, real["mom"], FIXTURE, discount=1.0, bonus=10.0) == 0.0

    # The same states as the world model predicts them.
    prev, now = _predicted(walking, walking), _predicted(real["guide"], real["mom"])
    assert now.text_shown.tolist() == pytest.approx([1.0, 1.0])  # the box itself is predicted
    assert done(guide, now, FIXTURE).tolist() == [False, False]
    assert phi(guide, now, FIXTURE).tolist() == [0.0, 0.0]
    assert shaping(guide, prev, now, FIXTURE, discount=1.0, bonus=10.0).tolist() == [0.0, 0.0]
    # read_text without words is judged on the box alone, which the model does predict.
    assert done(ReadText(), now, FIXTURE).tolist() == [True, True]


def test_a_text_box_pays_in_imagination_only_where_those_words_were_read() -> None:
    """Once the run has read the GUIDE's greeting from (6,2), a box the model predicts there
    completes read_text("Hello") with the full bonus; a box on the cell where MOM's text was
    read, or on a cell with no text read, or a battle's message, pays nothing."""
    facts = _facts_having_read((0, 6, 2, SIGNS["guide"]), (0, 3, 4, SIGNS["mom"]))
    hello = ReadText(contains="hello")  # words compare case-insensitively
    walking = _state(map_id=0, x=6, y=2)
    boxes = [
        _state(map_id=0, x=6, y=2, text_shown=True, text=SIGNS["guide"]),
        _state(map_id=0, x=3, y=4, text_shown=True, text=SIGNS["mom"]),
        _state(map_id=0, x=5, y=2, text_shown=True, text=SIGNS["guide"]),
        _state(map_id=0, x=6, y=2, battle="wild", enemy_max_hp=20, text_shown=True, text=("X",)),
    ]
    prev, now = _predicted(*[walking] * len(boxes)), _predicted(*boxes)
    assert now.text_shown.tolist() == pytest.approx([1.0] * len(boxes))
    assert done(hello, now, facts).tolist() == [True, False, False, False]
    paid = shaping(hello, prev, now, facts, discount=1.0, bonus=10.0).tolist()
    assert paid == pytest.approx([10, 0, 0, 0], abs=1e-6)
    assert phi(hello, prev, facts).tolist() == pytest.approx([0] * len(boxes), abs=1e-6)
    # The replayed states imagination starts from read the same (numpy, not torch).
    replayed = views_of(np.stack([b.vector() for b in boxes]))
    assert np.asarray(done(hello, replayed, facts)).tolist() == [True, False, False, False]
    # So the greeting's cell is where pairing rehearses it, and only there.
    starts = views_of(np.stack([walking.vector(), _state(map_id=0, x=3, y=4).vector()]))
    assert live(hello, starts, facts).tolist() == [True, False]
    assert live(hello, starts, FIXTURE).tolist() == [False, False]  # no graph: nothing read


def test_a_run_records_the_text_its_player_reads_and_where() -> None:
    """The real CLI on the cartridge: the shipped agent talks to the GUIDE from (6,2), and the
    run's map graph then holds his pages there, so that imagination may pay for reading them;
    a resumed run keeps them."""
    first = cli("run", "--headless", "--steps", "120", "--name", "texts")
    assert first.returncode == 0, first.stderr
    graph = MapGraph.load(Path("runs/texts"))
    assert "GUIDE: Hello, RED! Going out alone?" in graph.texts(0)[(6, 2)]
    facts = FIXTURE.with_graph(graph)
    assert cell_key(0, 6, 2) in facts.cells_reading("Hello", str.lower).tolist()
    assert cell_key(0, 6, 2) not in facts.cells_reading("MOM", str.lower).tolist()
    again = cli("run", "--headless", "--steps", "10", "--resume", "runs/texts")
    assert again.returncode == 0, again.stderr
    assert MapGraph.load(Path("runs/texts")).texts(0)[(6, 2)] == graph.texts(0)[(6, 2)]


@pytest.mark.parametrize("enemy_hp", [20, 15, 10, 3, 0])
def test_win_battle_on_predicted_states_tracks_the_enemy_hp(enemy_hp: int) -> None:
    """The enemy-HP head carries win_battle into imagination: a predicted state gives the
    potential the real one gives (within the head's 1/20), and a fainted enemy completes it."""
    win = WinBattle()
    fight = _state(map_id=12, x=4, y=4, battle="wild", enemy_hp=enemy_hp, enemy_max_hp=20)
    predicted = _predicted(fight)
    real_phi = phi(win, fight, FIXTURE)
    assert real_phi == pytest.approx(0.25 + 0.75 * (1 - enemy_hp / 20))
    assert phi(win, predicted, FIXTURE).item() == pytest.approx(
        real_phi, abs=1 / heads.ENEMY_HP_BINS
    )
    assert done(win, predicted, FIXTURE).item() == done(win, fight, FIXTURE) == (enemy_hp == 0)


def test_win_battle_pays_in_imagination_as_the_enemy_falls() -> None:
    win = WinBattle()
    hp = [20, 14, 6, 0]
    fights = [_state(map_id=12, battle="wild", enemy_hp=h, enemy_max_hp=20) for h in hp]
    prev, now = _predicted(*fights[:-1]), _predicted(*fights[1:])
    rewards = shaping(win, prev, now, FIXTURE, discount=1.0, bonus=10.0)
    pairs = zip(fights, fights[1:], strict=False)
    real = [shaping(win, a, b, FIXTURE, discount=1.0, bonus=10.0) for a, b in pairs]
    # into done: the bonus less phi(prev), phi of a done state being 0
    assert real == pytest.approx([0.75 * 0.3, 0.75 * 0.4, 10.0 - 0.25 - 0.75 * 0.7])
    assert rewards.tolist() == pytest.approx(real, abs=2 / 20)
    assert rewards[-1].item() > 9.0  # the bonus, once, where the enemy faints
    # Outside a battle the enemy head's reading counts for nothing.
    calm = _predicted(_state(map_id=12, x=4, y=4))
    assert phi(win, calm, FIXTURE).item() == 0.0 and not done(win, calm, FIXTURE).item()
