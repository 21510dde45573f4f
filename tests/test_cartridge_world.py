"""The fixture cartridge keeps Red's world in RAM with Red's meaning, and moves as Red does: the
readers of pokedreamer.env.world, run on the cartridge, tell the truth about what a press does."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from cartridge_driver import Game, addr

from pokedreamer.env.world import (
    HOME_BANK_END,
    LAST_MAP,
    Connection,
    MapSize,
    Sprite,
    Warp,
    World,
    read_collision_tiles,
    read_sprites,
    read_world,
)

HOUSE, TOWN, ROUTE, GYM = 0x25, 0x00, 0x0C, 0x36
SPRITE_OAK, SPRITE_COOLTRAINER_M, SPRITE_HIKER, SPRITE_MOM, SPRITE_POKE_BALL = (
    0x03, 0x07, 0x0E, 0x33, 0x3D,
)  # fmt: skip
STEPS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
STEP_FRAMES = 12  # a held direction walks one cell per 12 frames
EDGE = {"up": "north", "down": "south", "left": "west", "right": "east"}

# The quest's ways between the maps (the house's mat is at (4,9)/(5,9), the town's door at (2,3),
# the route's gym door at (4,1); the town's top row joins the route's bottom row).
START_TO_TOWN = ("right", "down", "down", "down", "down")  # (3,5) -> the mat (4,9) -> (2,4)
TOWN_TO_GUIDE = ("right", "right", "right", "right", "up", "up", "right")  # (6,2) facing him
GUIDE_TO_ROUTE = ("up", "left", "up", "up")  # (5,0), then off the town's top edge
ROUTE_TO_GYM = ("up",) * 7 + ("left", "up")  # (5,9) -> (5,2) -> (4,2) -> the door (4,1)


@pytest.fixture
def game() -> Iterator[Game]:
    g = Game()
    yield g
    g.close()


def world(game: Game) -> World:
    return read_world(game.pyboy.memory)


def to_town(game: Game) -> None:
    """Out of the house by its mat: down until the map changes."""
    game.walk(*START_TO_TOWN[:2])
    for _ in range(len(START_TO_TOWN) - 2):
        if game.pos[0] == HOUSE:
            game.press("down")
    assert game.pos == (TOWN, 2, 4)


def to_route(game: Game) -> None:
    to_town(game)
    game.walk(*TOWN_TO_GUIDE)
    game.press("a")
    game.read_all()
    assert game["wPartyCount"] == 1
    game.walk(*GUIDE_TO_ROUTE)
    assert game.pos == (ROUTE, 5, 9)


def to_gym(game: Game) -> None:
    to_route(game)
    game.walk(*ROUTE_TO_GYM, flee=True)
    assert game.pos == (GYM, 4, 9)


# --- exit mats and doors (pret's home/overworld.asm) ---------------------------------------------


def test_standing_on_the_house_mat_does_not_warp_until_a_press_down(game: Game) -> None:
    to_town(game)
    game.press("up")  # the town's door: one arrives on the house's mat, Red's destination warp
    assert game.pos == (HOUSE, 4, 9)
    game.tick(120)
    assert game.pos == (HOUSE, 4, 9)
    game.press("left")  # a wall: no edge of the map in that direction
    assert game.pos == (HOUSE, 4, 9)
    game.press("right")  # onto the mat's other cell, facing along the edge
    assert game.pos == (HOUSE, 5, 9)
    game.press("down")  # toward the map's edge: out
    assert game.pos == (TOWN, 2, 4)


def test_a_press_down_on_the_gym_mat_leads_back_to_the_route(game: Game) -> None:
    to_gym(game)
    game.tick(60)
    game.press("right")
    assert game.pos == (GYM, 5, 9)
    game.press("down")
    assert game.pos == (ROUTE, 4, 2)  # out of the gym's door, one step below it


def test_doors_warp_on_contact_onto_the_destination_warp(game: Game) -> None:
    to_town(game)
    game.press("up")
    assert game.pos == (HOUSE, 4, 9)  # the house's warp 0
    game.press("down")
    assert game.pos == (TOWN, 2, 4)
    game.walk(*TOWN_TO_GUIDE)
    game.press("a")
    game.read_all()
    game.walk(*GUIDE_TO_ROUTE, *ROUTE_TO_GYM[:-1], flee=True)
    assert game.pos == (ROUTE, 4, 2)
    game.press("up")
    assert game.pos == (GYM, 4, 9)  # the gym's warp 0


# --- warps to LAST_MAP and wLastMap --------------------------------------------------------------


def test_building_exits_lead_to_last_map_and_wlastmap_names_the_outside(game: Game) -> None:
    # a new game: PrepareForSpecialWarp leaves PALLET_TOWN in wLastMap
    assert game["wLastMap"] == TOWN
    assert world(game).warps == (Warp(9, 4, 0, LAST_MAP), Warp(9, 5, 0, LAST_MAP))
    to_gym(game)
    assert game["wLastMap"] == ROUTE  # set on leaving the outside map (WarpFound2)
    assert world(game).warps == (Warp(9, 4, 0, LAST_MAP), Warp(9, 5, 0, LAST_MAP))
    assert all(w.to_last_map for w in world(game).warps)


# --- the whole world read on each map ------------------------------------------------------------


def test_read_world_gives_each_maps_size_warps_and_connections(game: Game) -> None:
    size = MapSize(5, 5)
    house = world(game)
    assert (house.map_id, house.size, house.connections) == (HOUSE, size, ())
    assert size.rows == 10 and size.columns == 10
    to_town(game)
    town = world(game)
    north = Connection("north", ROUTE, 5, 9, 0)
    assert (town.size, town.warps, town.connections) == (size, (Warp(3, 2, 0, HOUSE),), (north,))
    game.walk(*TOWN_TO_GUIDE)
    game.press("a")
    game.read_all()
    game.walk(*GUIDE_TO_ROUTE[:-1])
    assert game.pos == (TOWN, 5, 0)
    game.press("up")
    assert game.pos == (ROUTE, *north.arrival(5, 0))
    route = world(game)
    south = Connection("south", TOWN, 5, 0, 0)
    assert (route.size, route.warps, route.connections) == (size, (Warp(1, 4, 0, GYM),), (south,))
    game.press("down")
    assert game.pos == (TOWN, *south.arrival(5, 9))


def test_the_collision_list_is_in_rom_bank_0_and_ended(game: Game) -> None:
    for enter in (lambda: None, lambda: to_town(game)):
        enter()
        pointer = (
            game.byte(addr("wTilesetCollisionPtr"))
            | game.byte(addr("wTilesetCollisionPtr") + 1) << 8
        )
        tiles = read_collision_tiles(game.pyboy.memory)
        assert 0 < pointer < HOME_BANK_END and tiles
        assert game.byte(pointer + len(tiles)) == 0xFF


def explore(game: Game) -> tuple[set[tuple[int, int]], list[str]]:
    """Every cell of the current map reachable on foot, and every press from each of them whose
    outcome read_world did not predict: a step where can_step said no, or none where it said yes
    (a step onto a warp or across a connection counts as a step)."""
    map_id = game.pos[0]

    def save() -> bytes:
        buffer = io.BytesIO()
        game.pyboy.save_state(buffer)
        return buffer.getvalue()

    start = save()
    seen, frontier, wrong = {game.pos[1:]}, [start], []
    while frontier:
        state = frontier.pop()
        for button, (dx, dy) in STEPS.items():
            game.pyboy.load_state(io.BytesIO(state))
            before = world(game)
            target = (before.x + dx, before.y + dy)
            predicted = before.can_step(*target)
            # a short press: the game moves on the first frame it sees a direction held
            game.pyboy.button_press(button)
            game.tick(2)
            game.pyboy.button_release(button)
            game.tick(2)
            after_map, x, y = game.pos
            if after_map == map_id:
                stepped = (x, y) == target
                if stepped and target not in seen:
                    assert not game.text_shown and not game["wIsInBattle"]
                    game.tick(STEP_FRAMES)  # until the next step may begin
                    seen.add(target)
                    frontier.append(save())
            elif before.size.contains(*target):
                stepped = before.warp_at(*target) is not None  # onto a door or a mat
            else:
                stepped = any(c.direction == EDGE[button] for c in before.connections)
            if stepped != predicted:
                wrong.append(f"{(before.x, before.y)} {button}: {stepped=} {predicted=}")
    game.pyboy.load_state(io.BytesIO(start))
    return seen, wrong


def test_read_walkable_predicts_every_press_on_every_map(game: Game) -> None:
    """Walk every reachable cell of every map and press each direction there."""
    reached = {}
    reached[HOUSE] = explore(game)
    assert not reached[HOUSE][1], reached[HOUSE][1]
    to_gym(game)
    reached[GYM] = explore(game)
    game.press("right")
    game.press("down")
    assert game.pos == (ROUTE, 4, 2)
    game.pyboy.memory[addr("wPartyCount")] = 0  # no wild POKéMON on the route's grass
    reached[ROUTE] = explore(game)
    game.walk(*["down"] * 8)  # through the grass and off the route's bottom edge
    assert game.pos == (TOWN, 4, 0)
    game.pyboy.memory[addr("wPartyCount")] = 1  # the guide lets a player with a POKéMON pass
    reached[TOWN] = explore(game)
    for map_id, (_, wrong) in reached.items():
        assert not wrong, (hex(map_id), wrong)
    # Every cell one can stand on: the 8x8 inside of each map less what stands on it, plus the
    # edge cells. A step onto a door or (with the press toward the edge still held) onto a mat
    # leaves at once, so the house's mat and the outside doors are never stood on.
    assert {m: len(seen) for m, (seen, _) in reached.items()} == {
        HOUSE: 64 - 4 - 1,  # the table, MOM
        GYM: 64 - 2 - 2 + 2,  # two tables, two people; the mat one arrives on
        ROUTE: 7 * 8 - 1 + 2,  # rows 2-8, less the ball; the bottom edge's path
        TOWN: 64 - 5 - 1 - 2 + 2,  # the house's roof and walls, its door, GUIDE and sign; the top
    }


# --- sprite state (wSpriteStateData1/2) ----------------------------------------------------------


def test_read_sprites_lists_the_people_at_their_cells(game: Game) -> None:
    assert read_sprites(game.pyboy.memory) == (Sprite(1, SPRITE_MOM, 6, 2, True),)
    # the player is slot 0: picture SPRITE_RED, map position +4, screen pixels at cell (4, 4)
    one, two = addr("wSpriteStateData1"), addr("wSpriteStateData2")
    assert [game.byte(one + i) for i in (0, 4, 6)] == [0x01, 0x3C, 0x40]
    assert (game.byte(two + 5), game.byte(two + 4)) == (3 + 4, 5 + 4)
    # MOM, three rows up and three columns right of the player, in screen pixels
    assert (game.byte(one + 0x14), game.byte(one + 0x16)) == (0x3C - 3 * 16, 0x40 + 3 * 16)
    to_town(game)
    assert read_sprites(game.pyboy.memory) == (Sprite(1, SPRITE_OAK, 7, 2, True),)
    game.walk(*TOWN_TO_GUIDE)
    game.press("a")
    game.read_all()
    game.walk(*GUIDE_TO_ROUTE)
    ball = Sprite(1, SPRITE_POKE_BALL, 8, 6, True)
    assert read_sprites(game.pyboy.memory) == (ball,)
    game.walk("up", "up", "up", flee=True)  # (5,6): the ball three cells to the right
    game.walk("right", "right", flee=True)
    game.press("right")
    game.press("a")
    game.read_all()
    assert game["wNumBagItems"] == 1
    assert read_sprites(game.pyboy.memory) == (ball._replace(on_screen=False),)  # hidden
    assert world(game).can_step(8, 6)
    game.walk("left", "left", "up", "up", "up", "up", "left", "up", flee=True)
    assert game.pos == (GYM, 4, 9)
    assert read_sprites(game.pyboy.memory) == (
        Sprite(1, SPRITE_HIKER, 4, 1, False),  # the screen shows rows 5-13 here
        Sprite(2, SPRITE_COOLTRAINER_M, 6, 4, False),
    )
    game.press("up")
    assert [s.on_screen for s in read_sprites(game.pyboy.memory)] == [False, True]
