"""The current map's world as the game itself keeps it in RAM, in Pokémon Red's layout.

What a player needs to find the way is all in work RAM once a map has loaded (pret/pokered's
``EnterMap`` fills it): the map's size, its warps (doors, stairs, exit mats), which of its four
edges lead on to another map, the screen's tiles and the sprites standing about. Whether a step
cell can be walked on is the game's own test: the tile at the cell's lower-left corner must be in
the tileset's collision list, a list of walkable tile ids in ROM bank 0 ended by $FF that
wTilesetCollisionPtr points to. Reading these instead of writing tables per map makes any game
that keeps Red's layout (Red, Blue, the fixture cartridge) readable the same way.

Every reader here is a pure function of a :class:`Memory`: anything indexed by a Game Boy address
that gives a byte — PyBoy's ``memory``, a 64 KiB ``bytes``, or a :class:`Bus` over the ROM file's
bytes and a work-RAM snapshot as the env keeps them. Garbage (before the first map loads, in the
intro) reads as an empty world rather than raising.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol

from pokedreamer.env.ram import CONNECTION_HEADER_SIZE, RAM, TILEMAP_HEIGHT, TILEMAP_WIDTH
from pokedreamer.env.wram import WRAM_END, WRAM_SIZE, WRAM_START


class Memory(Protocol):
    """A byte at each Game Boy address asked for."""

    def __getitem__(self, address: int, /) -> int: ...


HOME_BANK_END = 0x4000  # ROM bank 0, always mapped at $0000-$3FFF


class Bus:
    """The addresses the world is read from: ROM bank 0 out of the ROM file's bytes and work RAM
    ($C000-$DFFF) out of a snapshot (index = address - $C000). Other addresses raise IndexError."""

    __slots__ = ("_rom", "_wram")

    def __init__(self, rom: bytes, wram: bytes) -> None:
        if len(wram) != WRAM_SIZE:
            raise ValueError(f"expected {WRAM_SIZE} bytes of work RAM, got {len(wram)}")
        self._rom = rom[:HOME_BANK_END]
        self._wram = wram

    def __getitem__(self, address: int, /) -> int:
        if 0 <= address < len(self._rom):
            return self._rom[address]
        if WRAM_START <= address < WRAM_END:
            return self._wram[address - WRAM_START]
        raise IndexError(f"${address:04X} is neither in ROM bank 0 nor in work RAM")


def _address(name: str) -> int:
    return RAM[name].address


def _word(memory: Memory, address: int) -> int:
    """A 16-bit value as the Game Boy stores it: low byte first."""
    return memory[address] | memory[address + 1] << 8


# --- warps ---------------------------------------------------------------------------------------

MAX_WARPS = 32  # pret's MAX_WARP_EVENTS: wWarpEntries holds this many
WARP_ENTRY_SIZE = 4
LAST_MAP = 0xFF  # a warp to "the map the player came from" (the outside of a building)


class Warp(NamedTuple):
    """One of wWarpEntries: where it is on this map and where it leads."""

    y: int
    x: int
    dest_warp: int  # the index of the warp on the destination map where the player arrives
    dest_map: int  # a map id, or LAST_MAP

    @property
    def to_last_map(self) -> bool:
        return self.dest_map == LAST_MAP


def read_warps(memory: Memory) -> tuple[Warp, ...]:
    """The current map's warps in the game's order; none while wNumberOfWarps is 0 (no map
    loaded yet) or more than the table holds (garbage)."""
    count = memory[_address("wNumberOfWarps")]
    if count > MAX_WARPS:
        return ()
    base = _address("wWarpEntries")
    return tuple(
        Warp(*(memory[base + i * WARP_ENTRY_SIZE + k] for k in range(WARP_ENTRY_SIZE)))
        for i in range(count)
    )


# --- map size ------------------------------------------------------------------------------------


class MapSize(NamedTuple):
    """The map's size in blocks (wCurMapHeight, wCurMapWidth); a block is 2x2 step cells."""

    height: int
    width: int

    @property
    def rows(self) -> int:
        """Step cells from top to bottom: wYCoord runs over 0..rows-1."""
        return 2 * self.height

    @property
    def columns(self) -> int:
        return 2 * self.width

    def contains(self, x: int, y: int) -> bool:
        return 0 <= x < self.columns and 0 <= y < self.rows


def read_map_size(memory: Memory) -> MapSize:
    """(0, 0) until the map's header has loaded."""
    return MapSize(memory[_address("wCurMapHeight")], memory[_address("wCurMapWidth")])


# --- connections ---------------------------------------------------------------------------------

Direction = Literal["north", "south", "west", "east"]
# The connection headers' order in RAM, and each direction's bit in wCurMapConnections (pret's
# NORTH, SOUTH, WEST, EAST); the byte's upper bits carry other map-header flags.
DIRECTIONS: tuple[Direction, ...] = ("north", "south", "west", "east")
CONNECTION_BITS: dict[Direction, int] = {"north": 0x08, "south": 0x04, "west": 0x02, "east": 0x01}

# Offsets in a connection header (pret's map_connection_struct): the map, two strip pointers
# and the strip's length for redrawing the edge, then the fields that say where one arrives.
_CONNECTED_MAP, _CONNECTED_WIDTH, _Y_ALIGNMENT, _X_ALIGNMENT = 0, 6, 7, 8


class Connection(NamedTuple):
    """An edge of the current map that leads on to another map."""

    direction: Direction
    map_id: int
    width: int  # the connected map's width in blocks
    y_alignment: int  # raw bytes: see ``arrival``
    x_alignment: int

    def arrival(self, x: int, y: int) -> tuple[int, int]:
        """Where the player lands on the connected map after stepping off this edge from (x, y)
        on the current map, as pret's CheckMapConnections computes it: the coordinate across the
        edge becomes the alignment, the one along it is shifted by the other (mod 256)."""
        if self.direction in ("north", "south"):
            return (x + self.x_alignment) & 0xFF, self.y_alignment
        return self.x_alignment, (y + self.y_alignment) & 0xFF


def read_connections(memory: Memory) -> tuple[Connection, ...]:
    """The current map's connections in the order north, south, west, east; none before the
    map header loads."""
    flags = memory[_address("wCurMapConnections")]
    found = []
    for direction in DIRECTIONS:
        if not flags & CONNECTION_BITS[direction]:
            continue
        header = _address(f"w{direction.capitalize()}ConnectionHeader")
        found.append(
            Connection(
                direction,
                memory[header + _CONNECTED_MAP],
                memory[header + _CONNECTED_WIDTH],
                memory[header + _Y_ALIGNMENT],
                memory[header + _X_ALIGNMENT],
            )
        )
    return tuple(found)


# The four headers follow wCurMapConnections back to back, in DIRECTIONS' order.
assert all(
    _address(f"w{d.capitalize()}ConnectionHeader")
    == _address("wCurMapConnections") + 1 + i * CONNECTION_HEADER_SIZE
    for i, d in enumerate(DIRECTIONS)
)


# --- walkable cells on screen --------------------------------------------------------------------

COLLISION_LIST_END = 0xFF
# Red's lists hold a few dozen tiles at most; a garbage pointer stops here instead of reading
# the whole bank.
MAX_COLLISION_TILES = 64
SCREEN_ROWS, SCREEN_COLUMNS = TILEMAP_HEIGHT // 2, TILEMAP_WIDTH // 2  # 9 x 10 step cells
# The player's step cell on screen: tiles (8..9, 8..9) of wTileMap, so cell (row 4, column 4).
PLAYER_ROW, PLAYER_COLUMN = 4, 4


def read_collision_tiles(memory: Memory) -> frozenset[int]:
    """The tileset's walkable tile ids; none when wTilesetCollisionPtr points outside ROM bank 0
    (no tileset loaded yet)."""
    pointer = _word(memory, _address("wTilesetCollisionPtr"))
    tiles: set[int] = set()
    for address in range(pointer, min(pointer + MAX_COLLISION_TILES, HOME_BANK_END)):
        tile = memory[address]
        if tile == COLLISION_LIST_END:
            break
        tiles.add(tile)
    return frozenset(tiles)


def cell_tile(memory: Memory, row: int, column: int) -> int:
    """The tile the game tests for a screen step cell: its lower-left tile in wTileMap (pret's
    ``lda_coord 8, 9`` for the player's own cell)."""
    return memory[_address("wTileMap") + (2 * row + 1) * TILEMAP_WIDTH + 2 * column]


def read_walkable(memory: Memory) -> tuple[tuple[bool, ...], ...]:
    """For each of the screen's 9x10 step cells (rows, then columns), whether its tile is in the
    tileset's collision list. The player stands in cell (4, 4); sprites are not counted here."""
    walkable = read_collision_tiles(memory)
    return tuple(
        tuple(cell_tile(memory, row, column) in walkable for column in range(SCREEN_COLUMNS))
        for row in range(SCREEN_ROWS)
    )


# --- sprites -------------------------------------------------------------------------------------

SPRITE_SLOTS = 16  # slot 0 is the player
SPRITE_STATE_SIZE = 0x10
SPRITE_OFF_SCREEN = 0xFF  # wSpriteStateData1's image index for a sprite that is not drawn
SPRITE_MAP_OFFSET = 4  # wSpriteStateData2's map position counts the map's top-left cell as 4
# Offsets in a slot: picture id and image index (data 1), map Y and X (data 2).
_PICTURE_ID, _IMAGE_INDEX, _MAP_Y, _MAP_X = 0, 2, 4, 5


class Sprite(NamedTuple):
    """A sprite of the current map other than the player."""

    slot: int  # 1..15
    picture_id: int
    x: int  # map coordinates, in steps
    y: int
    on_screen: bool


def read_sprites(memory: Memory) -> tuple[Sprite, ...]:
    """The map's sprites in slot order: the slots whose picture id is set."""
    data1, data2 = _address("wSpriteStateData1"), _address("wSpriteStateData2")
    sprites = []
    for slot in range(1, SPRITE_SLOTS):
        one, two = data1 + slot * SPRITE_STATE_SIZE, data2 + slot * SPRITE_STATE_SIZE
        picture = memory[one + _PICTURE_ID]
        if not picture:
            continue
        sprites.append(
            Sprite(
                slot,
                picture,
                (memory[two + _MAP_X] - SPRITE_MAP_OFFSET) & 0xFF,
                (memory[two + _MAP_Y] - SPRITE_MAP_OFFSET) & 0xFF,
                memory[one + _IMAGE_INDEX] != SPRITE_OFF_SCREEN,
            )
        )
    return tuple(sprites)


# --- all of it -----------------------------------------------------------------------------------


class World(NamedTuple):
    """One reading of the current map's world."""

    map_id: int
    x: int  # the player, in steps
    y: int
    size: MapSize
    warps: tuple[Warp, ...]
    connections: tuple[Connection, ...]
    walkable: tuple[tuple[bool, ...], ...]  # screen step cells, row by row; player at (4, 4)
    sprites: tuple[Sprite, ...]

    @property
    def loaded(self) -> bool:
        """Whether a map's header is in RAM (it is not during the intro)."""
        return self.size.height > 0 and self.size.width > 0

    def screen_cell(self, x: int, y: int) -> tuple[int, int] | None:
        """The screen (row, column) of a map cell, or None when it is off screen."""
        row, column = y - self.y + PLAYER_ROW, x - self.x + PLAYER_COLUMN
        if 0 <= row < SCREEN_ROWS and 0 <= column < SCREEN_COLUMNS:
            return row, column
        return None

    def blocked_by_sprite(self, x: int, y: int) -> bool:
        return any(s.on_screen and (s.x, s.y) == (x, y) for s in self.sprites)

    def can_step(self, x: int, y: int) -> bool | None:
        """Whether the player may stand on map cell (x, y) now: its tile is walkable and no sprite
        stands on it. None when the cell is off screen (nothing is known of it)."""
        cell = self.screen_cell(x, y)
        if cell is None:
            return None
        row, column = cell
        return self.walkable[row][column] and not self.blocked_by_sprite(x, y)

    def warp_at(self, x: int, y: int) -> Warp | None:
        return next((w for w in self.warps if (w.x, w.y) == (x, y)), None)


def read_world(memory: Memory) -> World:
    """Everything above in one reading. Before a map has loaded nothing is walkable: the
    collision pointer still holds whatever the intro left there."""
    size = read_map_size(memory)
    loaded = size.height > 0 and size.width > 0
    return World(
        map_id=memory[_address("wCurMap")],
        x=memory[_address("wXCoord")],
        y=memory[_address("wYCoord")],
        size=size,
        warps=read_warps(memory),
        connections=read_connections(memory),
        walkable=read_walkable(memory) if loaded else _NOTHING_WALKABLE,
        sprites=read_sprites(memory),
    )


_NOTHING_WALKABLE = ((False,) * SCREEN_COLUMNS,) * SCREEN_ROWS
