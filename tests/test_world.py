"""The world read from RAM (env/world.py) against memory written byte by byte in Pokémon Red's
layout, as pret/pokered lays it out: ram/wram.asm (addresses, wWarpEntries), macros/ram.asm
(map_connection_struct, spritestatedata1/2), constants/map_data_constants.asm (MAX_WARP_EVENTS,
the connection bits), home/overworld.asm (CheckMapConnections, the collision test at the step
cell's lower-left tile). The addresses below are written out here, not taken from ram.py, so that
the reader is checked against pret rather than against itself; pret's symbol file checks them."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from cartridge_driver import Game
from pret_reference import reference_file
from red_memory import (
    LAST_MAP,
    PALLET_TOWN,
    PRET,
    REDS_HOUSE_1F,
    REDS_HOUSE_2F,
    ROUTE_1,
    ROUTE_21,
    RedMemory,
)

from pokedreamer.env.cartridge import ROM_PATH
from pokedreamer.env.ram import parse_sym
from pokedreamer.env.world import (
    MAX_WARPS,
    Bus,
    Connection,
    MapSize,
    Sprite,
    Warp,
    read_collision_tiles,
    read_connections,
    read_sprites,
    read_warps,
    read_world,
)
from pokedreamer.env.wram import WRAM_SIZE, wram_snapshot


def test_the_layout_here_is_pret_symbols() -> None:
    symbols = parse_sym(reference_file("pokered.sym").read_text(encoding="utf-8"))
    assert {name: symbols[name] for name in PRET} == PRET


def test_before_a_map_loads_the_world_is_empty() -> None:
    memory = RedMemory()
    memory.player(REDS_HOUSE_2F, 3, 6)  # Oak's speech: the warp is set, the header is not
    world = read_world(memory)
    assert (world.map_id, world.x, world.y) == (REDS_HOUSE_2F, 3, 6)
    assert not world.loaded and world.size == MapSize(0, 0)
    assert world.warps == () and world.connections == () and world.sprites == ()
    assert not any(any(row) for row in world.walkable)


# --- warps ---------------------------------------------------------------------------------------


def test_warps_of_reds_house_1f() -> None:
    # pret's RedsHouse1F: warp_event 2,7 and 3,7 to LAST_MAP warp 1, 7,1 to REDS_HOUSE_2F warp 1;
    # stored as Y, X, warp index from 0, map.
    memory = RedMemory()
    memory.header(4, 4)
    memory.warps((7, 2, 0, LAST_MAP), (7, 3, 0, LAST_MAP), (1, 7, 0, REDS_HOUSE_2F))
    warps = read_warps(memory)
    assert warps == (
        Warp(y=7, x=2, dest_warp=0, dest_map=LAST_MAP),
        Warp(y=7, x=3, dest_warp=0, dest_map=LAST_MAP),
        Warp(y=1, x=7, dest_warp=0, dest_map=REDS_HOUSE_2F),
    )
    assert [w.to_last_map for w in warps] == [True, True, False]
    world = read_world(memory)
    assert world.warp_at(7, 1) == warps[2] and world.warp_at(1, 7) is None


def test_no_warps() -> None:
    memory = RedMemory()
    memory.warps((7, 2, 0, LAST_MAP), count=0)  # a stale entry behind a count of 0
    assert read_warps(memory) == ()


def test_the_table_holds_32_warps_and_a_larger_count_is_garbage() -> None:
    assert MAX_WARPS == 32 == (PRET["wDestinationWarpID"] - PRET["wWarpEntries"]) // 4
    memory = RedMemory()
    entries = [(i, 31 - i, i % 4, i + 1) for i in range(32)]
    memory.warps(*entries)
    assert read_warps(memory) == tuple(Warp(*e) for e in entries)
    memory.data[PRET["wNumberOfWarps"]] = 33
    assert read_warps(memory) == ()


# --- size and connections ------------------------------------------------------------------------


def test_map_size_in_blocks_and_steps() -> None:
    memory = RedMemory()
    memory.header(9, 10)  # PALLET_TOWN
    world = read_world(memory)
    assert world.loaded and world.size == MapSize(height=9, width=10)
    assert (world.size.rows, world.size.columns) == (18, 20)
    assert world.size.contains(19, 17) and not world.size.contains(20, 0)


def test_no_connections() -> None:
    memory = RedMemory()
    memory.header(4, 4)
    memory.data[PRET["wNorthConnectionHeader"]] = ROUTE_1  # a stale header, its bit clear
    assert read_connections(memory) == ()


def test_all_four_connections_in_header_order() -> None:
    memory = RedMemory()
    memory.connection("east", 0x21, 10, 0xF8, 0)
    memory.connection("west", 0x22, 11, 0x04, 19)
    memory.connection("south", 0x23, 12, 0, 0xFC)
    memory.connection("north", 0x24, 13, 35, 0x0A)
    memory.data[PRET["wCurMapConnections"]] |= 0x30  # other map-header flags share the byte
    assert read_connections(memory) == (
        Connection("north", 0x24, 13, 35, 0x0A),
        Connection("south", 0x23, 12, 0, 0xFC),
        Connection("west", 0x22, 11, 0x04, 19),
        Connection("east", 0x21, 10, 0xF8, 0),
    )


def test_pallet_town_connects_north_and_south() -> None:
    memory = RedMemory()
    memory.connection("north", ROUTE_1, 10, 35, 0)
    memory.connection("south", ROUTE_21, 10, 0, 0)
    found = read_connections(memory)
    assert [(c.direction, c.map_id) for c in found] == [("north", ROUTE_1), ("south", ROUTE_21)]


def test_arrival_follows_check_map_connections() -> None:
    # Across a north/south edge the row becomes the alignment and the column is shifted; across
    # a west/east edge the other way round; shifts are signed bytes.
    north = Connection("north", ROUTE_1, 10, 35, 0)
    assert north.arrival(x=10, y=0xFF) == (10, 35)
    south = Connection("south", ROUTE_21, 10, 0, 0xFC)  # -4
    assert south.arrival(x=10, y=18) == (6, 0)
    west = Connection("west", 0x22, 11, 0xFE, 19)  # -2
    assert west.arrival(x=0xFF, y=5) == (19, 3)
    east = Connection("east", 0x21, 10, 0x04, 0)
    assert east.arrival(x=20, y=5) == (0, 9)


# --- walkable cells and sprites ------------------------------------------------------------------


def test_collision_list_in_rom_bank_0() -> None:
    memory = RedMemory()
    memory.collision(0x1A00, [0x00, 0x10, 0x1B])
    assert read_collision_tiles(memory) == {0x00, 0x10, 0x1B}
    memory.collision(0x1A00, [])
    assert read_collision_tiles(memory) == frozenset()
    memory.data[PRET["wTilesetCollisionPtr"] + 1] = 0x45  # $45xx: not bank 0
    assert read_collision_tiles(memory) == frozenset()


def test_a_cell_is_walkable_by_its_lower_left_tile() -> None:
    memory = RedMemory()
    memory.header(4, 4)
    memory.player(REDS_HOUSE_1F, 3, 5)
    memory.data[PRET["wTileMap"] : PRET["wTileMap"] + 360] = bytes([0x20] * 360)  # walls
    memory.collision(0x1A00, [0x01])
    memory.tile(8, 9, 0x01)  # the player's own cell: lower-left of tiles (8..9, 8..9)
    memory.tile(10, 8, 0x01)  # the cell to the right: only its upper-left tile
    memory.tile(6, 11, 0x01)  # the cell below-left: its lower-left tile
    world = read_world(memory)
    assert world.walkable[4][4] and world.walkable[5][3]
    assert not world.walkable[4][5]
    assert sum(map(sum, world.walkable)) == 2
    assert world.can_step(3, 5) and world.can_step(2, 6)
    assert world.can_step(4, 5) is False
    assert world.screen_cell(3, 5) == (4, 4) and world.screen_cell(-1, 1) == (0, 0)
    assert world.can_step(9, 5) is None and world.can_step(3, 10) is None  # off screen


def test_sprites_from_both_state_tables() -> None:
    memory = RedMemory()
    memory.sprite(0, 0x01, 3, 5)  # the player's slot is not a sprite in the way
    memory.sprite(1, 0x04, 5, 4)  # MOM
    memory.sprite(3, 0x07, 9, 9, on_screen=False)
    assert read_sprites(memory) == (Sprite(1, 0x04, 5, 4, True), Sprite(3, 0x07, 9, 9, False))


def test_a_sprite_blocks_its_cell() -> None:
    memory = RedMemory()
    memory.header(4, 4)
    memory.player(REDS_HOUSE_1F, 6, 4)
    memory.data[PRET["wTileMap"] : PRET["wTileMap"] + 360] = bytes([0x01] * 360)
    memory.collision(0x1A00, [0x01])
    memory.sprite(1, 0x04, 5, 4)
    world = read_world(memory)
    assert world.walkable[4][3] and world.blocked_by_sprite(5, 4)
    assert world.can_step(5, 4) is False and world.can_step(7, 4) is True


def test_a_full_table_of_sprites() -> None:
    memory = RedMemory()
    for slot in range(1, 16):
        memory.sprite(slot, slot, slot, 15 - slot)
    sprites = read_sprites(memory)
    assert [s.slot for s in sprites] == list(range(1, 16))
    assert sprites[-1] == Sprite(15, 15, 15, 0, True)


# --- the memory view the env has -----------------------------------------------------------------


def test_bus_reads_rom_bank_0_and_work_ram() -> None:
    rom = ROM_PATH.read_bytes()
    wram = bytearray(WRAM_SIZE)
    wram[PRET["wCurMap"] - 0xC000] = PALLET_TOWN
    wram[PRET["wNumberOfWarps"] - 0xC000] = 1
    bus = Bus(rom, bytes(wram))
    assert bus[0x0134] == rom[0x0134] and bus[0x3FFF] == rom[0x3FFF]
    assert bus[PRET["wNumberOfWarps"]] == 1 and read_world(bus).map_id == PALLET_TOWN
    for address in (0x4000, 0x8000, 0xE000, 0xFF80):
        with pytest.raises(IndexError):
            bus[address]
    with pytest.raises(ValueError, match="8192 bytes"):
        Bus(rom, bytes(100))


def test_pyboy_memory_and_the_bus_read_the_same_world() -> None:
    game = Game()
    try:
        game.walk("up")
        by_pyboy = read_world(game.pyboy.memory)
        by_bus = read_world(Bus(ROM_PATH.read_bytes(), wram_snapshot(game.pyboy)))
        assert by_pyboy == by_bus
        state = game.state
        assert (by_bus.map_id, by_bus.x, by_bus.y) == (state.map_id, state.x, state.y)
    finally:
        game.close()


# --- what the knowledge tables rely on -----------------------------------------------------------

KNOWLEDGE = Path(__file__).resolve().parents[1] / "pokedreamer/planner/knowledge"


def test_heal_at_home_walks_to_mom() -> None:
    # pret's RedsHouse1F objects: object_event 5, 4, SPRITE_MOM. Talking needs the player on a
    # cell next to her; the plan must name one, or the player stops at the map's door.
    MOM = (5, 4)
    text = (KNOWLEDGE / "pokemon_red.toml").read_text(encoding="utf-8")
    stage = next(s for s in tomllib.loads(text)["stage"] if s["name"] == "heal_at_home")
    kinds = [s["kind"] for s in stage["plan"]["subgoals"]]
    tiles = [s for s in stage["plan"]["subgoals"] if s["kind"] == "go_to_tile"]
    assert len(tiles) == 1 and tiles[0]["map"] == "REDS_HOUSE_1F"
    assert abs(tiles[0]["x"] - MOM[0]) + abs(tiles[0]["y"] - MOM[1]) == 1
    assert kinds.index("go_to_map") < kinds.index("go_to_tile") < kinds.index("heal_party")
