"""The cartridge's four maps as its RAM holds them once each has been entered (what the map graph
of a run that has seen them all must hold), and the routes the fixture-only door table of
planner/facts.py gave before the graph replaced it."""

from __future__ import annotations

from pokedreamer.env.graph import Exit, MapGraph, MapNode

HOUSE, TOWN, ROUTE, GYM = 0x25, 0x00, 0x0C, 0x36
# Every map is 10x10 cells (5x5 blocks); the mats of the house and the gym lead to $FF in RAM,
# which wLastMap resolves.
CARTRIDGE_NODES = (
    MapNode(HOUSE, 10, 10, (Exit(4, 9, TOWN), Exit(5, 9, TOWN)), ()),
    MapNode(TOWN, 10, 10, (Exit(2, 3, HOUSE),), (("north", ROUTE),)),
    MapNode(ROUTE, 10, 10, (Exit(4, 1, GYM),), (("south", TOWN),)),
    MapNode(GYM, 10, 10, (Exit(4, 9, ROUTE), Exit(5, 9, ROUTE)), ()),
)

MATS = ((4, 9), (5, 9))
# target -> {map: (exits still to pass, the first exit's cells)}, as the door table gave them.
TABLE_ROUTES = {
    HOUSE: {TOWN: (1, ((2, 3),)), ROUTE: (2, MATS), GYM: (3, MATS)},
    TOWN: {HOUSE: (1, MATS), ROUTE: (1, MATS), GYM: (2, MATS)},
    ROUTE: {TOWN: (1, ((4, 0), (5, 0))), GYM: (1, MATS), HOUSE: (2, MATS)},
    GYM: {ROUTE: (1, ((4, 1),)), TOWN: (2, ((4, 0), (5, 0))), HOUSE: (3, MATS)},
}
# The table's legs through the town's north and the route's south edge cells are connections in
# RAM: there the first exit is the whole edge row (north: y 0; south: y 9, the last of the 10
# rows RAM gives the map).
CONNECTION_ROWS = {(HOUSE, ROUTE): 9, (TOWN, ROUTE): 9, (ROUTE, TOWN): 0, (GYM, TOWN): 0}
"""(target, map) -> the row of the edge that map's leg leaves by."""


def cartridge_graph() -> MapGraph:
    return MapGraph(CARTRIDGE_NODES)


# The cartridge's town and house as its terrain draws them (env/cartridge/world.c): T tree,
# R roof, # wall, = table block; . floor, p path, D door, M mat are walked on.
TOWN_TERRAIN = (
    "TTTTppTTTT", "T...pp...T", "TRRRpp...T", "TRDRpp...T", "T.p.pp...T",
    "T.pppp...T", "T........T", "T........T", "T........T", "TTTTTTTTTT",
)  # fmt: skip
HOUSE_TERRAIN = ("##########", "#........#", "#.==.....#", "#.==.....#",
                 *("#........#",) * 5, "####MM####")  # fmt: skip


def terrain_ground(rows: tuple[str, ...]) -> dict[tuple[int, int], bool]:
    return {(x, y): mark in ".pDM," for y, row in enumerate(rows) for x, mark in enumerate(row)}
