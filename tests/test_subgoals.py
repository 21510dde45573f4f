"""The Subgoal schema, the game facts that check plans, and shaping on real and predicted state:
parsing and its refusals, the strict JSON schema, validate.check for both games, done/phi/shaping
on GameStates played on the fixture cartridge, and the same numbers from batches of arrays."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from cartridge_driver import (
    GUIDE_TO_ROUTE,
    MOM_TO_TOWN,
    TO_MOM,
    TOWN_TO_GUIDE,
    Game,
    find_wild_battle,
    get_starter,
)
from fixture_graph import (
    CONNECTION_ROWS,
    TABLE_ROUTES,
    TOWN_TERRAIN,
    cartridge_graph,
    terrain_ground,
)
from pydantic import TypeAdapter, ValidationError

from pokedreamer.env.graph import MapGraph
from pokedreamer.env.maps import MAPS, map_name
from pokedreamer.env.state import BATTLE_ORDER, GameState
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.subgoals import (
    GOAL_ENCODING_SIZE,
    SUBGOAL_KINDS,
    TILE_DISTANCE_CAP,
    EarnBadge,
    GoToMap,
    GoToTile,
    HealParty,
    Plan,
    ReadText,
    SetEvent,
    StateView,
    Subgoal,
    WinBattle,
    describe,
    done,
    encode,
    phi,
    shaping,
)
from pokedreamer.planner.validate import check

FIXTURE = GameFacts.fixture()
RED = GameFacts.pokemon_red()
SUBGOAL = TypeAdapter(Subgoal)

# One valid subgoal of each kind, as the LLM would send it.
ONE_OF_EACH: dict[str, dict[str, Any]] = {
    "go_to_map": {"kind": "go_to_map", "map": "PALLET_TOWN"},
    "go_to_tile": {"kind": "go_to_tile", "map": "PALLET_TOWN", "x": 6, "y": 2},
    "read_text": {"kind": "read_text", "contains": "SQUIRTLE"},
    "win_battle": {"kind": "win_battle"},
    "heal_party": {"kind": "heal_party"},
    "earn_badge": {"kind": "earn_badge", "badge": "BOULDER"},
    "set_event": {"kind": "set_event", "event": "EVENT_GOT_STARTER"},
}
ALL = [SUBGOAL.validate_python(d) for d in ONE_OF_EACH.values()]


def plan_json(*subgoals: dict[str, Any], goal: str = "Get a POKéMON", **extra: Any) -> str:
    return json.dumps({"goal": goal, "subgoals": list(subgoals), "rationale": "", **extra})


# ----------------------------------------------------------------------------------------------
# Parsing


def test_every_kind_parses_from_json() -> None:
    assert set(ONE_OF_EACH) == set(SUBGOAL_KINDS)
    plan = Plan.model_validate_json(plan_json(*ONE_OF_EACH.values()))
    assert tuple(s.kind for s in plan.subgoals) == SUBGOAL_KINDS
    assert plan.subgoals[1] == GoToTile(map="PALLET_TOWN", x=6, y=2)
    assert Plan.model_validate_json(plan.model_dump_json()) == plan  # round trip
    # Frozen and hashable: a queue can compare and deduplicate subgoals.
    assert len({*plan.subgoals, GoToMap(map="PALLET_TOWN")}) == len(SUBGOAL_KINDS)


def test_defaults_and_names_are_forgiving_where_harmless() -> None:
    plan = Plan.model_validate_json(
        '{"goal": " Leave ", "subgoals": [{"kind": "read_text"}, '
        '{"kind": "go_to_map", "map": "pallet  town"}, '
        '{"kind": "set_event", "event": "event_got_starter"}]}'
    )
    assert plan.goal == "Leave" and plan.rationale == ""
    assert plan.subgoals == [
        ReadText(contains=""),
        GoToMap(map="PALLET_TOWN"),
        SetEvent(event="EVENT_GOT_STARTER"),
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (plan_json({"kind": "fly_to", "map": "PALLET_TOWN"}), "fly_to"),  # unknown kind
        (plan_json({"kind": "go_to_map", "map": "PALLET_TOWN", "x": 3}), "extra"),  # extra field
        (plan_json({"kind": "go_to_map"}), "map"),  # missing field
        (plan_json({"map": "PALLET_TOWN"}), "kind"),  # no kind
        (plan_json(*[{"kind": "win_battle"}] * 9), "subgoals"),  # nine subgoals
        (plan_json(), "subgoals"),  # none
        (plan_json({"kind": "win_battle"}, goal="x" * 201), "goal"),
        (plan_json({"kind": "win_battle"}, goal="   "), "goal"),
        (plan_json({"kind": "win_battle"}, reason="why"), "reason"),  # extra field on the plan
        (
            json.dumps({"goal": "g", "subgoals": [{"kind": "win_battle"}], "rationale": "r" * 601}),
            "",
        ),
        (plan_json({"kind": "read_text", "contains": "x" * 41}), "contains"),
        (plan_json({"kind": "go_to_tile", "map": "PALLET_TOWN", "x": -1, "y": 2}), "x"),
        (plan_json({"kind": "go_to_tile", "map": "PALLET_TOWN", "x": 1, "y": 256}), "y"),
        (plan_json({"kind": "earn_badge", "badge": "ZEPHYR"}), "badge"),
    ],
)
def test_invalid_plans_are_refused(text: str, where: str) -> None:
    with pytest.raises(ValidationError) as info:
        Plan.model_validate_json(text)
    assert where in str(info.value)


def test_subgoals_are_immutable() -> None:
    with pytest.raises(ValidationError):
        GoToMap(map="PALLET_TOWN").map = "ROUTE_1"  # type: ignore[misc]


# ----------------------------------------------------------------------------------------------
# The JSON schema the LLM sees


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_schema_converts_to_openai_strict_mode() -> None:
    from openai.lib._pydantic import to_strict_json_schema

    plain = Plan.model_json_schema()
    strict = to_strict_json_schema(Plan)
    for schema in (plain, strict):
        assert set(schema["$defs"]) == {t.__name__ for t in map(type, ALL)}
        for node in _walk(schema):
            # Keywords OpenAI's strict mode refuses; the limits live in descriptions instead.
            assert not {
                "default",
                "oneOf",
                "discriminator",
                "const",
                "minLength",
                "maxLength",
            } & set(node), node
            if node.get("type") == "object":
                assert node["additionalProperties"] is False
                assert node["required"] == list(node["properties"])
                assert all(p.get("description") for p in node["properties"].values()), node
    items = strict["properties"]["subgoals"]["items"]
    assert len(items["anyOf"]) == len(SUBGOAL_KINDS)
    assert strict["properties"]["subgoals"]["maxItems"] == 8
    kinds = [
        strict["$defs"][ref["$ref"].split("/")[-1]]["properties"]["kind"] for ref in items["anyOf"]
    ]
    assert [k["enum"] for k in kinds] == [[kind] for kind in SUBGOAL_KINDS]
    assert '""' in strict["$defs"]["ReadText"]["properties"]["contains"]["description"]


def test_an_answer_in_the_strict_shape_parses() -> None:
    # Strict mode makes the model send every field: contains as "" and rationale too.
    answer = plan_json({"kind": "read_text", "contains": ""}, {"kind": "heal_party"})
    assert Plan.model_validate_json(answer).subgoals == [ReadText(), HealParty()]


# ----------------------------------------------------------------------------------------------
# Game facts


def test_fixture_facts() -> None:
    assert GameFacts.for_game("fixture") is FIXTURE
    assert {n: (m.id, m.width, m.height) for n, m in FIXTURE.maps.items()} == {
        "REDS_HOUSE_1F": (0x25, 10, 10),
        "PALLET_TOWN": (0x00, 10, 10),
        "ROUTE_1": (0x0C, 10, 10),
        "PEWTER_GYM": (0x36, 10, 10),
    }
    assert FIXTURE.events == {
        "EVENT_GOT_STARTER": 34,
        "EVENT_BEAT_PEWTER_GYM_TRAINER_0": 114,
        "EVENT_BEAT_BROCK": 119,
    }
    assert FIXTURE.badges == ("BOULDER",)


def test_pokemon_red_facts() -> None:
    assert GameFacts.for_game("red") is RED and GameFacts.for_game("blue").maps == RED.maps
    assert RED.map("PALLET_TOWN") == (0x00, "PALLET_TOWN", 20, 18)  # 10×9 blocks of 2×2 steps
    assert RED.map("oaks lab").id == 0x28 and RED.map_by_id(0x25).name == "REDS_HOUSE_1F"
    assert "UNUSED_MAP_0B" not in RED.maps and RED.map_by_id(0x0B) is None
    assert len(RED.maps) == sum(1 for m in MAPS.values() if m.width)
    assert RED.event_index("EVENT_BEAT_BROCK") == 119 and len(RED.badges) == 8
    with pytest.raises(ValueError, match="yellow"):
        GameFacts.for_game("yellow")


GOOD = Plan(
    goal="Get the first POKéMON",
    subgoals=[
        GoToMap(map="PALLET_TOWN"),
        GoToTile(map="PALLET_TOWN", x=6, y=2),
        ReadText(contains="SQUIRTLE"),
        SetEvent(event="EVENT_GOT_STARTER"),
        WinBattle(),
        HealParty(),
        EarnBadge(badge="BOULDER"),
    ],
)


@pytest.mark.parametrize("facts", [FIXTURE, RED], ids=["fixture", "red"])
def test_a_good_plan_has_no_problems(facts: GameFacts) -> None:
    assert check(GOOD, facts) == []
    assert all(check(s, facts) == [] for s in GOOD.subgoals)


@pytest.mark.parametrize(
    ("subgoal", "fixture_problem", "red_problem"),
    [
        (GoToMap(map="MT_MOON"), "no map named 'MT_MOON'", "no map named 'MT_MOON'"),
        (GoToMap(map="OAKS_LAB"), "no map named 'OAKS_LAB'", None),  # Red has it, the cartridge not
        (GoToMap(map="UNUSED_MAP_0B"), "no map named", "no map named"),  # an id, not a map
        (GoToTile(map="PALLET_TOWN", x=12, y=3), "(12, 3) lies outside PALLET_TOWN", None),
        (GoToTile(map="PALLET_TOWN", x=3, y=18), "lies outside", "(3, 18) lies outside"),
        (GoToTile(map="ATLANTIS", x=0, y=0), "no map named 'ATLANTIS'", "no map"),
        (SetEvent(event="EVENT_BEAT_MISTY"), "no fixture event named", None),
        (SetEvent(event="EVENT_BEAT_BROOK"), "did you mean EVENT_BEAT_BROCK", "EVENT_BEAT_BROCK"),
        (EarnBadge(badge="CASCADE"), "CASCADE cannot be earned", None),
        (ReadText(contains="100%"), "never prints: %", "never prints: %"),
    ],
)
def test_impossible_subgoals_are_reported(
    subgoal: Subgoal, fixture_problem: str, red_problem: str | None
) -> None:
    plan = Plan(goal="g", subgoals=[WinBattle(), subgoal])
    for facts, expected in ((FIXTURE, fixture_problem), (RED, red_problem)):
        problems = check(plan, facts)
        if expected is None:
            assert problems == []
        else:
            assert len(problems) == 1 and problems[0].startswith(f"subgoal 2 ({subgoal.kind}): ")
            assert expected in problems[0] and "\n" not in problems[0]


def test_every_problem_is_listed() -> None:
    plan = Plan(
        goal="g",
        subgoals=[GoToMap(map="MT_MOON"), GoToTile(map="ROUTE_1", x=10, y=0), SetEvent(event="X")],
    )
    assert [p.split(":")[0] for p in check(plan, FIXTURE)] == [
        "subgoal 1 (go_to_map)",
        "subgoal 2 (go_to_tile)",
        "subgoal 3 (set_event)",
    ]
    # The cartridge's maps are few enough to name them all, which helps a repair turn.
    assert "PEWTER_GYM" in check(plan, FIXTURE)[0]


# ----------------------------------------------------------------------------------------------
# done, phi and shaping on the real game


@pytest.fixture
def game() -> Iterator[Game]:
    g = Game()
    yield g
    g.close()


def walk(game: Game, moves: tuple[str, ...]) -> list[GameState]:
    states = []
    for move in moves:
        game.press(move)
        states.append(game.state)
    return states


def test_go_to_tile_rises_towards_the_guide(game: Game) -> None:
    beside_guide = GoToTile(map="PALLET_TOWN", x=6, y=2)
    start = game.state
    assert phi(beside_guide, start, FIXTURE) == 0.0  # in the house: not on the map yet
    assert done(GoToMap(map="REDS_HOUSE_1F"), start, FIXTURE)
    in_town = walk(game, TO_MOM[:-1] + MOM_TO_TOWN)[-1]
    assert in_town.tile == (0x00, 2, 4)
    assert done(GoToMap(map="PALLET_TOWN"), in_town, FIXTURE)
    assert phi(beside_guide, in_town, FIXTURE) == pytest.approx(0.5 + 0.5 * (1 - 6 / 20))
    path = [in_town, *walk(game, TOWN_TO_GUIDE)]
    potentials = [phi(beside_guide, s, FIXTURE) for s in path]
    assert potentials == sorted(potentials) and potentials[-1] == 1.0
    assert [bool(done(beside_guide, s, FIXTURE)) for s in path][-2:] == [True, True]
    assert not any(done(beside_guide, s, FIXTURE) for s in path[:-2])
    # Each step closer earns a positive shaped reward; the step that arrives earns the bonus
    # less the potential it leaves (the done state's own potential is 0: the subgoal ends).
    steps = list(zip(path, path[1:], strict=False))
    rewards = [shaping(beside_guide, a, b, FIXTURE, 0.997) for a, b in steps]
    assert all(r > 0 for r in rewards[:-1])
    assert rewards[-2] == pytest.approx(1.0 - 0.975)
    assert rewards[-1] == 0.0  # turning to face him: done already, nothing more to earn


def test_go_to_map_rises_along_the_route_of_the_map_graph() -> None:
    """The cartridge's map graph (as RAM gives it once its four maps are seen) makes go_to_map
    a route: a map k exits away is worth less than every cell of the map after it on the way,
    and within a map the potential rises towards the exit; with an empty graph it reads
    arrival only."""
    facts = FIXTURE.with_graph(cartridge_graph())
    for target in FIXTURE.maps:
        goal = GoToMap(map=target)
        legs = {leg.map_id: leg for leg in facts.route_to(FIXTURE.map_id(target))}
        assert set(legs) == {m.id for m in FIXTURE.maps.values()} - {FIXTURE.map_id(target)}

        def on(map_id: int, goal: GoToMap = goal) -> list[float]:
            cells = [(x, y) for x in range(10) for y in range(9)]
            return [float(phi(goal, view(map_id, x, y), facts)) for x, y in cells]

        for leg in legs.values():
            nearer = (
                FIXTURE.map_id(target)
                if leg.hops == 1
                else next(m for m, other in legs.items() if other.hops == leg.hops - 1)
            )
            assert max(on(leg.map_id)) < min(on(nearer))
            door_x, door_y = min(leg.cells, key=lambda c: abs(c[0] - 4.5) + abs(c[1] - 4))
            far = view(leg.map_id, 9 if door_x < 5 else 0, 8 if door_y < 4 else 0)
            assert phi(goal, far, facts) < phi(goal, view(leg.map_id, door_x, door_y), facts)
    gym = GoToMap(map="PEWTER_GYM")
    house = view(FIXTURE.map_id("REDS_HOUSE_1F"), 3, 5)
    assert 0 < phi(gym, house, facts) < 0.25
    assert FIXTURE.graph is None and phi(gym, house, FIXTURE) == 0.0
    empty = FIXTURE.with_graph(MapGraph())
    assert phi(gym, house, empty) == 0.0 and empty.route_to(FIXTURE.map_id("PEWTER_GYM")) == ()


def test_go_to_map_rises_on_every_step_of_the_way_round_the_walls_seen() -> None:
    """Once the town's ground is seen, every step of the walk from beside the GUIDE to the gap
    in the trees raises the potential of going to ROUTE_1, where a straight line to the edge's
    row tops out against the trees at (8, 1); arrays and tensors read the same numbers."""
    graph = cartridge_graph()
    facts = FIXTURE.with_graph(graph)
    goal, town = GoToMap(map="ROUTE_1"), FIXTURE.map_id("PALLET_TOWN")
    walk = [(8, 3), (8, 2), (8, 1), (7, 1), (6, 1), (5, 1), (5, 0)]
    straight = [float(phi(goal, view(town, x, y), facts)) for x, y in walk]
    assert straight[2] == straight[3] == straight[5]  # nothing for walking along row 1
    graph.see(town, ((x, y, w) for (x, y), w in terrain_ground(TOWN_TERRAIN).items()))
    around = [float(phi(goal, view(town, x, y), facts)) for x, y in walk]
    assert all(a < b for a, b in zip(around, around[1:], strict=False)), around
    assert around[-1] == straight[-1]  # on the gap, as before
    xs, ys = np.array([x for x, _ in walk] + [-1]), np.array([y for _, y in walk] + [-1])
    batch = {"map_id": np.full(len(xs), town), "x": xs, "y": ys}
    scalar = [*around, float(phi(goal, view(town, 0, 0), facts))]  # -1: the nearest border
    np.testing.assert_allclose(phi(goal, StateView.from_arrays(**batch), facts), scalar)
    torch = pytest.importorskip("torch")
    tensors = StateView.from_arrays(**{k: torch.as_tensor(v) for k, v in batch.items()})
    np.testing.assert_allclose(phi(goal, tensors, facts).double().numpy(), scalar, rtol=1e-6)


def test_go_to_tile_rises_on_every_step_of_the_way_round_the_walls_seen() -> None:
    """A tile behind a roof: with the town's ground seen, every step of the way round the house
    raises go_to_tile's potential, where a straight line falls as the way turns away; off the
    seen map, or off the map, it is a straight line still."""
    graph = cartridge_graph()
    facts = FIXTURE.with_graph(graph)
    goal, town = GoToTile(map="PALLET_TOWN", x=2, y=1), FIXTURE.map_id("PALLET_TOWN")
    walk = [(1, 4), (2, 4), (3, 4), (4, 4), (4, 3), (4, 2), (4, 1), (3, 1), (2, 1)]
    straight = [float(phi(goal, view(town, x, y), facts)) for x, y in walk]
    assert straight[2] < straight[1]  # walking away to get round the roof
    graph.see(town, ((x, y, w) for (x, y), w in terrain_ground(TOWN_TERRAIN).items()))
    around = [float(phi(goal, view(town, x, y), facts)) for x, y in walk]
    assert all(a < b for a, b in zip(around, around[1:], strict=False)), around
    assert around[-1] == straight[-1] == 1.0
    xs, ys = np.array([x for x, _ in walk]), np.array([y for _, y in walk])
    batch = StateView.from_arrays(map_id=np.full(len(xs), town), x=xs, y=ys)
    np.testing.assert_allclose(phi(goal, batch, facts), around)
    assert facts.steps_to(0x01, (2, 1)) is None  # a map never seen (VIRIDIAN_CITY)
    assert facts.steps_to(town, (12, 1)) is None and FIXTURE.steps_to(town, (2, 1)) is None


def table_phi(target: int, map_id: int, x: int, y: int) -> float:
    """go_to_map's potential as the fixture's door table gave it: (K - k + c) / (K + 1)."""
    if map_id == target:
        return 1.0
    routes = TABLE_ROUTES[target]
    longest = max(hops for hops, _ in routes.values())
    hops, cells = routes[map_id]
    distance = min(abs(x - cx) + abs(y - cy) for cx, cy in cells)
    closeness = 0.9 * (1 - min(distance, TILE_DISTANCE_CAP) / TILE_DISTANCE_CAP)
    return (longest - hops + closeness) / (longest + 1)


def test_go_to_map_on_the_ram_graph_pays_as_the_door_table_did() -> None:
    """On every cell of a map whose way on is a warp, the potential over the RAM graph is the
    table's; where the way on is a connection, it closes in on the edge row instead of its two
    exit cells, within the same band of the route."""
    facts = FIXTURE.with_graph(cartridge_graph())
    for target, routes in TABLE_ROUTES.items():
        goal = GoToMap(map=map_name(target))
        longest = max(hops for hops, _ in routes.values())
        for map_id, (hops, _) in routes.items():
            for x, y in [(x, y) for x in range(10) for y in range(9)]:
                got = float(phi(goal, view(map_id, x, y), facts))
                row = CONNECTION_ROWS.get((target, map_id))
                if row is None:
                    assert got == pytest.approx(table_phi(target, map_id, x, y))
                else:
                    closeness = 0.9 * (1 - abs(y - row) / TILE_DISTANCE_CAP)
                    assert got == pytest.approx((longest - hops + closeness) / (longest + 1))


def view(map_id: int, x: int, y: int) -> StateView:
    return StateView(
        map_id=map_id, x=x, y=y, battle=0, text_shown=0.0, hp_fraction=1.0, badges=[0.0] * 8
    )


def test_the_quest_to_the_first_battle(game: Game) -> None:
    starter, squirtle = SetEvent(event="EVENT_GOT_STARTER"), ReadText(contains="got squirtle")
    assert phi(starter, game.state, FIXTURE) == 0.0
    assert phi(HealParty(), game.state, FIXTURE) == 0.0  # no party: nothing to heal
    game.walk(*TO_MOM[:-1], *MOM_TO_TOWN, *TOWN_TO_GUIDE)
    game.press("a")
    # A text box: any text will do, but `contains` only on the page that says it.
    page = game.state
    assert page.text == ("GUIDE: Hello, RED!", "Going out alone?")
    assert done(ReadText(), page, FIXTURE) and not done(squirtle, page, FIXTURE)
    assert phi(squirtle, page, FIXTURE) == 0.0
    while "SQUIRTLE" not in " ".join(game.state.text):
        game.press("a")
    assert done(squirtle, game.state, FIXTURE) and phi(squirtle, game.state, FIXTURE) == 1.0
    assert done(starter, game.state, FIXTURE) and phi(starter, game.state, FIXTURE) == 1.0
    assert done(HealParty(), game.state, FIXTURE)
    game.read_all()
    assert not done(ReadText(), game.state, FIXTURE)

    game.walk(*GUIDE_TO_ROUTE, "right", "right", "up")

    win = WinBattle()
    assert phi(win, game.state, FIXTURE) == 0.0  # no battle yet
    find_wild_battle(game)
    states = [game.state]
    while game.state.battle == "wild":
        game.press("a")
        states.append(game.state)
    fighting = [s for s in states if s.battle == "wild"]
    potentials = [phi(win, s, FIXTURE) for s in fighting]
    # Starting the battle raised it by a quarter: a step into the grass pays before any blow.
    assert potentials[0] == 0.25 and potentials == sorted(potentials) and potentials[-1] == 1.0
    first_done = next(i for i, s in enumerate(states) if done(win, s, FIXTURE))
    assert states[first_done].enemy_hp == 0 and states[first_done - 1].enemy_hp > 0
    bonus = [shaping(win, a, b, FIXTURE, bonus=1.0) - shaping(win, a, b, FIXTURE, bonus=0.0)
             for a, b in zip(states, states[1:], strict=False)]  # fmt: skip
    assert bonus.count(1.0) == 1 and bonus.index(1.0) == first_done - 1
    assert phi(win, states[-1], FIXTURE) == 0.0 and states[-1].battle == "none"
    # The enemy hit back: the party is hurt, and heal_party's potential says how much.
    hurt = states[-1]
    assert 0 < phi(HealParty(), hurt, FIXTURE) == hurt.hp_fraction < 1
    assert not done(HealParty(), hurt, FIXTURE)


def test_mom_heals_the_party(game: Game) -> None:
    get_starter(game)
    game.pyboy.memory[0xD16D] = 5  # wPartyMon1HP's low byte: 5 of 20 HP
    hurt = game.state
    heal = HealParty()
    assert phi(heal, hurt, FIXTURE) == 0.25 and not done(heal, hurt, FIXTURE)
    game.walk("down", "down", "left", "left", "left", "left", "up")  # to the house door
    game.walk(*["up"] * 7, "right")  # to MOM
    game.press("a")
    healed = game.state
    assert healed.text_shown and "MOM" in healed.text[0]
    assert done(heal, healed, FIXTURE)
    assert shaping(heal, hurt, healed, FIXTURE, 0.997) == pytest.approx(1.0 - 0.25)


def test_badge_and_event_views() -> None:
    state = _state(badges=0b1, events=bytes([0, 0, 0, 0, 0b100]) + bytes(315))
    assert done(EarnBadge(badge="BOULDER"), state, FIXTURE)
    assert phi(EarnBadge(badge="CASCADE"), state, RED) == 0.0
    assert done(SetEvent(event="EVENT_GOT_STARTER"), state, FIXTURE)
    assert not done(SetEvent(event="EVENT_BEAT_BROCK"), state, FIXTURE)
    menu = StateView.from_game_state(_state(text_shown=True, text=()))
    assert done(ReadText(), menu, FIXTURE) and not done(ReadText(contains="MOM"), menu, FIXTURE)
    # The game prints POKéMON; a planner writes POKEMON.
    healed = _state(text_shown=True, text=("Your POKéMON are", "fully healed!"))
    assert done(ReadText(contains="pokemon are fully"), healed, FIXTURE)


def _state(**changes: Any) -> GameState:
    base = dict(
        map_id=0, map_name="PALLET_TOWN", x=0, y=0, facing="down", battle="none", enemy_hp=0,
        enemy_max_hp=0, text_shown=False, text=(), party=(), badges=0, money=0,
        event_flags=bytes(320), pokedex_owned=0, pokedex_seen=0, bag=(),
    )  # fmt: skip
    if "events" in changes:
        changes["event_flags"] = changes.pop("events")
    return GameState(**{**base, **changes})


# ----------------------------------------------------------------------------------------------
# The same functions on batches of predicted state


def _recorded_views() -> list[StateView]:
    """Views along the quest: house, town, the guide's dialog, a battle and its end."""
    game = Game()
    try:
        views = [StateView.from_game_state(game.state)]
        for move in (*TO_MOM[:-1], *MOM_TO_TOWN, *TOWN_TO_GUIDE, "a", "a", "a", "a"):
            game.press(move)
            views.append(StateView.from_game_state(game.state))
        game.walk(*GUIDE_TO_ROUTE, "right", "right", "up")

        find_wild_battle(game)
        while game.state.battle == "wild":
            views.append(StateView.from_game_state(game.state))
            game.press("a")
        views.append(StateView.from_game_state(game.state))
    finally:
        game.close()
    # A predicted view knows neither the text nor the flags; compare like with like.
    return [dataclasses.replace(v, text="", text_known=False, events=None) for v in views]


@pytest.fixture(scope="module")
def recorded() -> list[StateView]:
    return _recorded_views()


NUMERIC = ("map_id", "x", "y", "battle", "text_shown", "hp_fraction", "badges", "enemy_hp_fraction")


def _batch(views: list[StateView], lib: Any = np) -> StateView:
    arrays = {name: np.array([np.asarray(getattr(v, name)) for v in views]) for name in NUMERIC}
    if lib is not np:
        arrays = {name: lib.as_tensor(a) for name, a in arrays.items()}
    return StateView.from_arrays(**arrays)


SUBGOALS = [
    *ALL,
    GoToTile(map="PALLET_TOWN", x=0, y=8),
    GoToTile(map="ROUTE_1", x=7, y=4),
    ReadText(),
]


@pytest.mark.parametrize("subgoal", SUBGOALS, ids=describe)
def test_arrays_give_the_scalar_numbers(recorded: list[StateView], subgoal: Subgoal) -> None:
    batch = _batch(recorded)
    assert len({v.battle for v in recorded}) >= 2 and len({v.map_id for v in recorded}) == 3
    for fn in (phi, done):
        scalar = np.array([fn(subgoal, v, FIXTURE) for v in recorded], dtype=float)
        vector = fn(subgoal, batch, FIXTURE)
        assert np.shape(vector) == (len(recorded),)
        np.testing.assert_allclose(np.asarray(vector, dtype=float), scalar)
    prev, now = _batch(recorded[:-1]), _batch(recorded[1:])
    scalar = [shaping(subgoal, a, b, FIXTURE) for a, b in zip(recorded, recorded[1:], strict=False)]
    np.testing.assert_allclose(shaping(subgoal, prev, now, FIXTURE), scalar)


@pytest.mark.parametrize("subgoal", SUBGOALS, ids=describe)
def test_torch_tensors_give_the_scalar_numbers(recorded: list[StateView], subgoal: Subgoal) -> None:
    torch = pytest.importorskip("torch")
    prev, now = _batch(recorded[:-1], torch), _batch(recorded[1:], torch)
    reward = shaping(subgoal, prev, now, FIXTURE)
    assert isinstance(reward, torch.Tensor) and reward.shape == (len(recorded) - 1,)
    expected = shaping(subgoal, _batch(recorded[:-1]), _batch(recorded[1:]), FIXTURE)
    np.testing.assert_allclose(reward.double().numpy(), expected, rtol=1e-6, atol=1e-6)


def test_predicted_state_from_the_world_model_shapes_a_batch() -> None:
    torch = pytest.importorskip("torch")
    from pokedreamer.world_model import heads

    assert BATTLE_ORDER == heads.BATTLE_ORDER  # the battle index means the same on both sides
    state_heads = heads.StateHeads(8, 8, 1, heads.StateRanges.of_maps(FIXTURE.maps.values()))
    view = StateView.from_arrays(**state_heads.predicted(state_heads(torch.randn(4, 5, 8))))
    for subgoal in SUBGOALS:
        reward = shaping(subgoal, view, view, FIXTURE)
        assert reward.shape == (4, 5) and reward.dtype == torch.float32, subgoal
        assert torch.isfinite(reward).all()
        assert done(subgoal, view, FIXTURE).shape == (4, 5)


def test_unknown_fields_count_as_no_progress() -> None:
    batch = StateView.from_arrays(map_id=np.array([0, 0]), x=np.array([6, 1]), y=np.array([2, 2]))
    assert np.asarray(batch.enemy_hp_fraction).tolist() == [1.0, 1.0]
    for subgoal in (SetEvent(event="EVENT_GOT_STARTER"), EarnBadge(badge="BOULDER"), WinBattle()):
        assert np.asarray(phi(subgoal, batch, FIXTURE)).tolist() == [0.0, 0.0]
    assert done(GoToTile(map="PALLET_TOWN", x=6, y=2), batch, FIXTURE).tolist() == [True, False]
    with pytest.raises(TypeError, match="xcoord"):
        StateView.from_arrays(xcoord=np.zeros(2))


def test_shaping_telescopes(recorded: list[StateView]) -> None:
    """Along the recorded quest, up to each subgoal's first done state (where its return
    ends): the discounted shaped rewards sum to D * phi(last) - phi(first) when it is never
    done, and to the discounted bonus less phi(first) when it is (no gamma * phi(done))."""
    gamma, bonus = 0.9, 2.0
    for subgoal in SUBGOALS:
        dones = [bool(done(subgoal, v, FIXTURE)) for v in recorded]
        if dones[0]:
            assert shaping(subgoal, recorded[0], recorded[1], FIXTURE, gamma, bonus) == 0.0
            continue
        end = dones.index(True) if any(dones) else len(recorded) - 1
        path = recorded[: end + 1]
        steps = list(zip(path, path[1:], strict=False))
        total = sum(
            gamma**t * shaping(subgoal, a, b, FIXTURE, gamma, bonus)
            for t, (a, b) in enumerate(steps)
        )
        first = phi(subgoal, path[0], FIXTURE)
        if dones[end]:
            expected = gamma ** (len(steps) - 1) * bonus - first
        else:
            expected = gamma ** len(steps) * phi(subgoal, path[-1], FIXTURE) - first
        assert total == pytest.approx(expected), subgoal
        # Undiscounted and without the bonus, only the ends count.
        plain = sum(shaping(subgoal, a, b, FIXTURE, 1.0, 0.0) for a, b in steps)
        last = 0.0 if dones[end] else phi(subgoal, path[-1], FIXTURE)
        assert plain == pytest.approx(last - first), subgoal


def test_shaping_of_a_loop_is_nothing_and_a_terminal_step_pays_no_potential() -> None:
    """Hand-built views under go_to_tile (6, 2) of PALLET_TOWN: out and back to the start
    shapes nothing undiscounted, and D_n * phi(s_n) - phi(s_0) under per-step discounts; the
    step into done pays bonus - phi(prev); a step the returns do not continue past
    (discount 0) pays -phi(prev); a step from a done state pays 0."""
    town = FIXTURE.map_id("PALLET_TOWN")
    tile = GoToTile(map="PALLET_TOWN", x=6, y=2)
    loop = [view(town, x, 2) for x in (0, 1, 2, 3, 2, 1, 0)]
    phis = [0.5 + 0.5 * (1 - (6 - x) / 20) for x in (0, 1, 2, 3, 2, 1, 0)]
    assert [phi(tile, v, FIXTURE) for v in loop] == pytest.approx(phis)
    steps = list(zip(loop, loop[1:], strict=False))
    assert sum(shaping(tile, a, b, FIXTURE) for a, b in steps) == pytest.approx(0.0)
    discounts = [0.9, 0.8, 0.95, 0.7, 0.99, 0.85]
    total, reach = 0.0, 1.0
    for (a, b), d in zip(steps, discounts, strict=True):
        total += reach * shaping(tile, a, b, FIXTURE, d, 0.0)
        reach *= d
    assert total == pytest.approx(reach * phis[-1] - phis[0])
    # The batch form takes one discount per transition.
    batch = shaping(tile, _batch(loop[:-1]), _batch(loop[1:]), FIXTURE, np.array(discounts), 0.0)
    assert batch.tolist() == pytest.approx(
        [d * phis[t + 1] - phis[t] for t, d in enumerate(discounts)]
    )
    near, on = view(town, 5, 2), view(town, 6, 2)
    assert shaping(tile, near, on, FIXTURE, 0.9, 2.0) == pytest.approx(2.0 - 0.975)
    assert shaping(tile, loop[0], loop[1], FIXTURE, 0.0) == pytest.approx(-0.85)
    assert shaping(tile, on, near, FIXTURE, 0.9, 2.0) == 0.0


def test_no_subgoal_shapes_nothing(recorded: list[StateView]) -> None:
    assert shaping(None, recorded[0], recorded[1], FIXTURE) == 0.0
    assert np.asarray(shaping(None, _batch(recorded), _batch(recorded), FIXTURE)).shape == (
        len(recorded),
    )


# ----------------------------------------------------------------------------------------------
# Encoding and words


def test_encoding_is_fixed_length_and_tells_kinds_apart() -> None:
    assert encode(None, FIXTURE) == [0.0] * GOAL_ENCODING_SIZE
    codes = [tuple(encode(s, FIXTURE)) for s in ALL]
    assert all(len(c) == GOAL_ENCODING_SIZE for c in codes)
    assert all(0.0 <= x <= 1.0 for c in codes for x in c)
    assert len(set(codes)) == len(ALL)
    assert len(set(code[: len(SUBGOAL_KINDS)] for code in codes)) == len(ALL)  # kind one-hot
    pairs = [
        (GoToTile(map="PALLET_TOWN", x=6, y=2), GoToTile(map="PALLET_TOWN", x=6, y=3)),
        (GoToMap(map="PALLET_TOWN"), GoToMap(map="ROUTE_1")),
        (SetEvent(event="EVENT_GOT_STARTER"), SetEvent(event="EVENT_BEAT_BROCK")),
        (ReadText(), ReadText(contains="MOM")),
    ]
    for a, b in pairs:
        assert encode(a, FIXTURE) != encode(b, FIXTURE), (a, b)
    assert encode(ReadText(contains="mom"), FIXTURE) == encode(ReadText(contains="MOM"), FIXTURE)


def test_encoding_is_the_same_in_every_process() -> None:
    # Python salts str hashes per process; a saved policy must see the same buckets.
    code = (
        "from pokedreamer.planner.subgoals import encode, SetEvent, ReadText;"
        "from pokedreamer.planner.facts import GameFacts;f=GameFacts.fixture();"
        "print(encode(SetEvent(event='EVENT_BEAT_BROCK'), f) + encode(ReadText(contains='x'), f))"
    )
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)}  # fmt: skip
    assert len(runs) == 1


def test_descriptions() -> None:
    assert [describe(s) for s in ALL] == [
        "go to PALLET_TOWN",
        "go to PALLET_TOWN (6, 2)",
        'read a text box containing "SQUIRTLE"',
        "win the battle",
        "heal the party",
        "earn the BOULDERBADGE",
        "set EVENT_GOT_STARTER",
    ]
    assert describe(ReadText()) == "read text" and describe(None) == "no subgoal"


def test_the_planner_does_not_import_torch() -> None:
    code = (
        "import sys, pokedreamer.planner.subgoals, pokedreamer.planner.facts;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
