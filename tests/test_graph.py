"""The map graph read from RAM (env/graph.py): a map's node from work RAM in Red's layout with
its $FF warps resolved, merging, routes, the JSON file, the env reporting maps as it enters
them, and the graph of the cartridge's four maps against the door table it replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cartridge_driver import GUIDE_TO_ROUTE, MOM_TO_TOWN, TO_MOM, Game, get_starter
from fixture_graph import (
    CARTRIDGE_NODES,
    CONNECTION_ROWS,
    GYM,
    HOUSE,
    HOUSE_TERRAIN,
    ROUTE,
    TABLE_ROUTES,
    TOWN,
    TOWN_TERRAIN,
    cartridge_graph,
    terrain_ground,
)
from red_memory import LAST_MAP, RedMemory

from pokedreamer.env.graph import (
    FORMAT,
    GRAPH_FILE,
    TEXTS_PER_CELL,
    UNREACHABLE,
    Exit,
    MapGraph,
    MapNode,
    RouteLeg,
    read_map_node,
)
from pokedreamer.env.gym_env import PokemonRedEnv
from pokedreamer.env.world import Bus
from pokedreamer.env.wram import WRAM_SIZE
from pokedreamer.errors import UserError

REDS_HOUSE_1F, PALLET_TOWN, ROUTE_1, VIRIDIAN_CITY = 0x25, 0x00, 0x0C, 0x01


def red_wram(
    map_id: int,
    blocks: tuple[int, int],
    warps: list[tuple[int, int, int, int]],
    last_map: int,
    north: int | None = None,
) -> bytes:
    """Work RAM as Red's LoadMapHeader leaves it: size (height, width) in blocks, warps as
    (y, x, destination warp, destination map), wLastMap, a north connection."""
    memory = RedMemory()
    memory.player(map_id, 0, 0)
    memory.header(*blocks)
    memory.warps(*warps)
    memory.last_map(last_map)
    if north is not None:
        memory.connection("north", north, 10, 0, 0)
    return memory.work_ram()


ROM = bytes(0x8000)
# Red's house, 1F: 4x4 blocks, two exit mats to LAST_MAP and the stairs up (data/maps/objects).
HOUSE_WARPS = [(7, 2, 0, LAST_MAP), (7, 3, 0, LAST_MAP), (1, 7, 0, 0x26)]


def test_a_warp_to_the_last_map_leads_where_wlastmap_says() -> None:
    wram = red_wram(REDS_HOUSE_1F, (4, 4), HOUSE_WARPS, last_map=PALLET_TOWN)
    node = read_map_node(Bus(ROM, wram), came_from=ROUTE_1)
    assert node == MapNode(
        REDS_HOUSE_1F, 8, 8,
        (Exit(2, 7, PALLET_TOWN), Exit(3, 7, PALLET_TOWN), Exit(7, 1, 0x26)), (),
    )  # fmt: skip


@pytest.mark.parametrize("garbage", [0xF9, REDS_HOUSE_1F, 0x0B])  # no map, this map, unused
def test_a_garbage_wlastmap_falls_back_to_the_map_seen_before(garbage: int) -> None:
    wram = red_wram(REDS_HOUSE_1F, (4, 4), HOUSE_WARPS, last_map=garbage)
    node = read_map_node(Bus(ROM, wram), came_from=PALLET_TOWN)
    assert node is not None and [w.to_map for w in node.warps] == [PALLET_TOWN, PALLET_TOWN, 0x26]
    unknown = read_map_node(Bus(ROM, wram))
    assert unknown is not None and [w.to_map for w in unknown.warps] == [None, None, 0x26]


def test_no_node_before_the_map_header_loads_and_connections_are_read() -> None:
    assert read_map_node(Bus(ROM, bytes(WRAM_SIZE))) is None
    town = red_wram(PALLET_TOWN, (9, 10), [(5, 5, 0, REDS_HOUSE_1F)], 0, north=ROUTE_1)
    node = read_map_node(Bus(ROM, town))
    assert node == MapNode(PALLET_TOWN, 20, 18, (Exit(5, 5, REDS_HOUSE_1F),), (("north", ROUTE_1),))
    assert node.edge("north") == tuple((x, 0) for x in range(20))
    assert node.edge("east") == tuple((19, y) for y in range(18))


def test_merging_keeps_what_is_resolved_and_counts_changes() -> None:
    graph = MapGraph()
    unresolved = MapNode(HOUSE, 10, 10, (Exit(4, 8, None),), ())
    assert graph.add(unresolved) and graph.version == 1
    assert not graph.add(unresolved) and graph.version == 1
    resolved = unresolved._replace(warps=(Exit(4, 8, TOWN),))
    other = MapGraph([resolved, MapNode(TOWN, 10, 10, (), (("north", ROUTE),))])
    assert graph.merge(other) and len(graph) == 2
    assert not graph.add(unresolved)  # an unresolved reading keeps the resolved warp
    assert graph.node(HOUSE) == resolved
    graph.add(MapNode(TOWN, 10, 10, (), (("south", ROUTE_1),)))  # edges seen add up
    assert graph.node(TOWN).connections == (("north", ROUTE), ("south", ROUTE_1))


def test_routes_are_cached_until_the_graph_changes() -> None:
    graph = MapGraph(CARTRIDGE_NODES[:2])
    first = graph.route_to(TOWN)
    assert first == (RouteLeg(HOUSE, 1, ((4, 9), (5, 9)), ((4, 9), (5, 9))),)
    assert graph.route_to(TOWN) is first
    graph.add(CARTRIDGE_NODES[2])
    assert graph.route_to(TOWN) is not first and len(graph.route_to(TOWN)) == 2
    assert MapGraph().route_to(TOWN) == ()


def test_the_graph_keeps_in_a_versioned_json_file(tmp_path: Path) -> None:
    graph = cartridge_graph()
    graph.add(MapNode(0x26, 8, 8, (Exit(7, 1, None),), ()))
    graph.save(tmp_path / GRAPH_FILE)
    data = json.loads((tmp_path / GRAPH_FILE).read_text())
    assert data["format"] == FORMAT and data["version"] == 3
    loaded = MapGraph.load(tmp_path)  # a run directory holding one
    assert loaded.nodes == graph.nodes


def test_the_ground_seen_keeps_in_the_json_file_and_older_files_still_read(
    tmp_path: Path,
) -> None:
    graph = cartridge_graph()
    graph.see(TOWN, [(0, 0, False), (4, 0, True), (9, 9, False)])
    graph.save(tmp_path / GRAPH_FILE)
    town = next(m for m in json.loads((tmp_path / GRAPH_FILE).read_text())["maps"] if m["id"] == 0)
    assert town["ground"][0] == "#???.?????" and town["ground"][9] == "?????????#"
    loaded = MapGraph.load(tmp_path)
    assert loaded.ground(TOWN) == {(0, 0): False, (4, 0): True, (9, 9): False}
    assert loaded.walls(TOWN) == {(0, 0), (9, 9)} and loaded.ground(HOUSE) == {}
    town_alone = {k: v for k, v in town.items() if k != "ground"}
    older = {"format": FORMAT, "version": 1, "maps": [town_alone]}
    (tmp_path / "v1.json").write_text(json.dumps(older))
    assert MapGraph.load(tmp_path / "v1.json").ground(TOWN) == {}


def test_texts_read_keep_by_cell_in_the_json_file_and_older_files_still_read(
    tmp_path: Path,
) -> None:
    graph = cartridge_graph()
    version = graph.version
    assert graph.read(TOWN, 6, 2, "GUIDE: Hello, RED! Going out alone?")
    assert graph.read(TOWN, 6, 2, "It's not safe. Take this one!")
    assert not graph.read(TOWN, 6, 2, "It's not safe. Take this one!")  # read before
    assert graph.version == version + 2
    assert not graph.read(0x26, 1, 1, "a map not seen")
    assert not graph.read(TOWN, 10, 2, "off the map") and not graph.read(TOWN, 1, 1, "")
    assert not graph.read(TOWN, 1, 1, "x" * 81)  # no text box holds so much
    graph.save(tmp_path / GRAPH_FILE)
    loaded = MapGraph.load(tmp_path)
    assert loaded.texts(TOWN) == {
        (6, 2): ("GUIDE: Hello, RED! Going out alone?", "It's not safe. Take this one!")
    }
    assert loaded.texts(ROUTE) == {}
    town = next(m for m in json.loads((tmp_path / GRAPH_FILE).read_text())["maps"] if m["id"] == 0)
    older = {
        "format": FORMAT,
        "version": 2,
        "maps": [{k: v for k, v in town.items() if k != "texts"}],
    }
    (tmp_path / "v2.json").write_text(json.dumps(older))
    assert MapGraph.load(tmp_path / "v2.json").texts(TOWN) == {}


def test_a_cell_keeps_at_most_so_many_texts_and_merging_takes_them_in() -> None:
    graph = cartridge_graph()
    for i in range(TEXTS_PER_CELL + 3):
        graph.read(TOWN, 1, 1, f"COUNTER {i}")
    assert len(graph.texts(TOWN)[(1, 1)]) == TEXTS_PER_CELL
    other = cartridge_graph()
    assert other.merge(graph) and other.texts(TOWN) == graph.texts(TOWN)
    assert not other.merge(graph)


def test_ground_seen_merges_walkable_over_wall_and_counts_changes() -> None:
    graph = MapGraph(CARTRIDGE_NODES)
    version = graph.version
    assert graph.see(TOWN, [(3, 1, False), (4, 1, True)]) and graph.version == version + 1
    assert not graph.see(TOWN, [(3, 1, False), (4, 1, True)]) and graph.version == version + 1
    assert not graph.see(TOWN, [(4, 1, False)])  # once walkable, a wall reading is a misread
    assert graph.walls(TOWN) == {(3, 1)}
    assert graph.see(TOWN, [(3, 1, True)]) and graph.walls(TOWN) == frozenset()
    other = MapGraph(CARTRIDGE_NODES)
    other.see(ROUTE, [(0, 0, False)])
    assert graph.merge(other) and graph.walls(ROUTE) == {(0, 0)}


def test_route_steps_go_around_the_walls_seen() -> None:
    """With the town's ground seen, the steps to the north edge count the way round the trees
    and through the gap at x 4-5; the edge's trees are no way out; before anything is seen
    they are the straight line to the edge's row."""
    graph = MapGraph(CARTRIDGE_NODES)
    (leg,) = (leg for leg in graph.route_to(ROUTE) if leg.map_id == TOWN)
    assert leg.steps is not None
    assert [int(leg.steps[y, 8]) for y in range(4)] == [0, 1, 2, 3]
    graph.see(TOWN, ((x, y, w) for (x, y), w in terrain_ground(TOWN_TERRAIN).items()))
    (leg,) = (leg for leg in graph.route_to(ROUTE) if leg.map_id == TOWN)
    assert leg.steps is not None and leg.steps[0, 4] == leg.steps[0, 5] == 0
    assert leg.steps[0, 8] == UNREACHABLE  # a tree
    assert [int(leg.steps[y, 8]) for y in (1, 2, 3)] == [4, 5, 6]  # left along row 1, then up
    assert int(leg.steps[4, 2]) == 6 and int(leg.steps[8, 1]) == 11  # round the house
    assert leg.cells == tuple((x, 0) for x in range(10))  # what the leg is made of stays


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "is not JSON"),
        ('{"format": "pokedreamer-run", "version": 2}', "is not a map graph"),
        ('{"format": "pokedreamer-map-graph", "version": 9, "maps": []}', "newer than"),
        ('{"format": "pokedreamer-map-graph", "version": 1}', "malformed map graph"),
        ('{"format": "pokedreamer-map-graph", "version": 1, "maps": [{"id": 300}]}', "malformed"),
        (
            '{"format": "pokedreamer-map-graph", "version": 1, "maps": [{"id": 1, "columns": 2,'
            ' "rows": 2, "warps": [], "connections": {"up": 3}}]}',
            "malformed",
        ),
        (
            '{"format": "pokedreamer-map-graph", "version": 2, "maps": [{"id": 1, "columns": 2,'
            ' "rows": 2, "warps": [], "connections": {}, "ground": ["..", ".x"]}]}',
            "malformed",
        ),
        (
            '{"format": "pokedreamer-map-graph", "version": 2, "maps": [{"id": 1, "columns": 2,'
            ' "rows": 2, "warps": [], "connections": {}, "ground": [".."]}]}',
            "malformed",
        ),
        (
            '{"format": "pokedreamer-map-graph", "version": 3, "maps": [{"id": 1, "columns": 2,'
            ' "rows": 2, "warps": [], "connections": {}, "texts": [[1, 5, "SIGN"]]}]}',
            "malformed",
        ),
        (
            '{"format": "pokedreamer-map-graph", "version": 3, "maps": [{"id": 1, "columns": 2,'
            ' "rows": 2, "warps": [], "connections": {}, "texts": [[1, 1, 7]]}]}',
            "malformed",
        ),
    ],
)
def test_a_malformed_graph_file_is_refused_in_one_line(
    tmp_path: Path, text: str, says: str
) -> None:
    path = tmp_path / "graph.json"
    path.write_text(text)
    with pytest.raises(UserError, match=says) as caught:
        MapGraph.load(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    with pytest.raises(UserError, match="cannot read"):
        MapGraph.load(tmp_path / "missing.json")


def visit_every_map() -> MapGraph:
    """Plays the cartridge through its four maps, reading each map as it is entered."""
    game = Game()
    graph, seen = MapGraph(), [game["wCurMap"]]

    def read() -> None:
        if game["wCurMap"] != seen[-1]:
            seen.append(game["wCurMap"])
        node = read_map_node(game.pyboy.memory, seen[-2] if len(seen) > 1 else None)
        assert node is not None
        graph.add(node)

    try:
        read()
        get_starter(game)
        read()
        game.walk(*GUIDE_TO_ROUTE)
        read()
        game.walk("left", *("up",) * 6, flee=True)  # (5,7) -> the gym door (4,1)
        read()
        assert seen == [HOUSE, TOWN, ROUTE, GYM]
    finally:
        game.close()
    return graph


def test_the_cartridge_graph_routes_as_the_door_table_did() -> None:
    graph = visit_every_map()
    assert graph.nodes == {n.map_id: n for n in CARTRIDGE_NODES}
    for target, table in TABLE_ROUTES.items():
        legs = {leg.map_id: leg for leg in graph.route_to(target)}
        assert {m: leg.hops for m, leg in legs.items()} == {m: h for m, (h, _) in table.items()}
        for map_id, (_, cells) in table.items():
            row = CONNECTION_ROWS.get((target, map_id))
            if row is None:
                assert legs[map_id].cells == cells
            else:  # the edge row, which holds the table's cells where the map has them
                assert legs[map_id].cells == tuple((x, row) for x in range(10))
                assert legs[map_id].targets == ((None, row),)


def test_the_env_reports_a_map_when_it_enters_it() -> None:
    env = PokemonRedEnv()
    try:
        buttons = list(env.buttons)
        _, info = env.reset(seed=0)
        assert info["map"] == CARTRIDGE_NODES[0]
        reported = []
        for move in (*TO_MOM[:-1], *MOM_TO_TOWN, "up"):
            *_, info = env.step(buttons.index(move))
            reported.append(info.get("map"))
        # Nothing while the map stays; the town on the step into it, the house on the way back.
        walked = len(TO_MOM) - 1 + len(MOM_TO_TOWN) - 1
        assert [n.map_id if n else None for n in reported] == [None] * walked + [TOWN, HOUSE]
        assert reported[-2] == CARTRIDGE_NODES[1]
        _, info = env.reset(seed=1)
        assert info["map"] == CARTRIDGE_NODES[0]
    finally:
        env.close()


def test_the_env_reports_the_ground_it_sees_as_the_terrain_is() -> None:
    """Every cell the env reports while walking from the house into the town is walkable just
    where the cartridge's terrain is; a cell a sprite stands on is left out (MOM, the GUIDE),
    the town's sign is a wall; and a place already looked around reports nothing new."""
    env = PokemonRedEnv()
    try:
        buttons = list(env.buttons)
        _, info = env.reset(seed=0)
        seen: dict[int, dict[tuple[int, int], bool]] = {}

        def take(info: dict) -> int:
            if "ground" not in info:
                return 0
            map_id, cells = info["ground"]
            for x, y, walkable in cells:
                assert (x, y) not in seen.setdefault(map_id, {})  # reported once
                seen[map_id][(x, y)] = walkable
            return len(cells)

        assert take(info) == 80  # 9 rows x 9 columns on the map, MOM's cell left out
        for move in (*TO_MOM[:-1], *MOM_TO_TOWN, "right", "left"):
            *_, info = env.step(buttons.index(move))
            take(info)
        assert (6, 2) not in seen[HOUSE] and (7, 2) not in seen[TOWN]  # MOM, the GUIDE
        expected = {HOUSE: terrain_ground(HOUSE_TERRAIN), TOWN: terrain_ground(TOWN_TERRAIN)}
        expected[TOWN][(6, 5)] = False  # the sign
        for map_id in (HOUSE, TOWN):
            assert seen[map_id] == {c: expected[map_id][c] for c in seen[map_id]}
        assert len(seen[TOWN]) >= 60
        _, info = env.reset(seed=1)  # a new episode may feed a new graph: reported anew
        assert len(info["ground"][1]) == 80
    finally:
        env.close()


def test_the_planner_is_told_where_the_known_exits_lead() -> None:
    graph = cartridge_graph()
    graph.add(MapNode(0x26, 8, 8, (Exit(7, 1, None),), ()))
    assert graph.describe_exits(TOWN) == (
        "Known exits (x,y): to REDS_HOUSE_1F via (2,3); to ROUTE_1 via the north edge"
    )
    assert graph.describe_exits(0x26) == (
        "Known exits (x,y): to the map the player came from (unknown) via (7,1)"
    )
    assert graph.describe_exits(VIRIDIAN_CITY) is None
