"""Work RAM and ROM bank 0 filled in the way Pokémon Red's engine fills them on a map load, at
pret's addresses written out (tests/test_world.py checks them against pokered.sym), for the
readers of env/world.py and env/graph.py, which nobody may run against the real game."""

from __future__ import annotations

# pret's addresses (pokered.sym) of what a map load fills in.
PRET = {
    "wSpriteStateData1": 0xC100,
    "wSpriteStateData2": 0xC200,
    "wTileMap": 0xC3A0,
    "wCurMap": 0xD35E,
    "wYCoord": 0xD361,
    "wXCoord": 0xD362,
    "wLastMap": 0xD365,
    "wCurMapHeight": 0xD368,
    "wCurMapWidth": 0xD369,
    "wCurMapConnections": 0xD370,
    "wNorthConnectionHeader": 0xD371,
    "wSouthConnectionHeader": 0xD37C,
    "wWestConnectionHeader": 0xD387,
    "wEastConnectionHeader": 0xD392,
    "wNumberOfWarps": 0xD3AE,
    "wWarpEntries": 0xD3AF,
    "wDestinationWarpID": 0xD42F,  # the byte after the warp table
    "wTilesetCollisionPtr": 0xD530,
}
CONNECTION_BIT = {"north": 0x08, "south": 0x04, "west": 0x02, "east": 0x01}
LAST_MAP = 0xFF
REDS_HOUSE_1F, REDS_HOUSE_2F, PALLET_TOWN, ROUTE_1, ROUTE_21 = 0x25, 0x26, 0x00, 0x0C, 0x20


class RedMemory:
    """A 64 KiB Game Boy address space, filled in the way Red's engine fills it."""

    def __init__(self) -> None:
        self.data = bytearray(0x10000)

    def __getitem__(self, address: int, /) -> int:
        return self.data[address]

    def player(self, map_id: int, x: int, y: int) -> None:
        self.data[PRET["wCurMap"]] = map_id
        self.data[PRET["wXCoord"]], self.data[PRET["wYCoord"]] = x, y

    def header(self, height: int, width: int) -> None:
        self.data[PRET["wCurMapHeight"]], self.data[PRET["wCurMapWidth"]] = height, width

    def warps(self, *warps: tuple[int, int, int, int], count: int | None = None) -> None:
        """Warps as (y, x, destination warp, destination map), 4 bytes each, in that order."""
        self.data[PRET["wNumberOfWarps"]] = len(warps) if count is None else count
        for i, entry in enumerate(warps):
            for k, byte in enumerate(entry):
                self.data[PRET["wWarpEntries"] + 4 * i + k] = byte

    def connection(
        self, direction: str, map_id: int, width: int, y_align: int, x_align: int
    ) -> None:
        """One map_connection_struct: map, strip source (dw), strip destination (dw), strip
        length, connected map width, Y alignment, X alignment, view pointer (dw)."""
        self.data[PRET["wCurMapConnections"]] |= CONNECTION_BIT[direction]
        header = PRET[f"w{direction.capitalize()}ConnectionHeader"]
        fields = [map_id, 0x34, 0x12, 0x78, 0x56, 0x0A, width, y_align, x_align, 0xBC, 0x9A]
        self.data[header : header + 11] = bytes(fields)

    def collision(self, pointer: int, tiles: list[int]) -> None:
        """wTilesetCollisionPtr (little-endian) to a list in ROM bank 0 ended by $FF."""
        self.data[PRET["wTilesetCollisionPtr"]] = pointer & 0xFF
        self.data[PRET["wTilesetCollisionPtr"] + 1] = pointer >> 8
        self.data[pointer : pointer + len(tiles) + 1] = bytes([*tiles, 0xFF])

    def tile(self, column: int, row: int, tile: int) -> None:
        self.data[PRET["wTileMap"] + row * 20 + column] = tile

    def sprite(self, slot: int, picture: int, x: int, y: int, on_screen: bool = True) -> None:
        one = PRET["wSpriteStateData1"] + 0x10 * slot
        two = PRET["wSpriteStateData2"] + 0x10 * slot
        self.data[one] = picture  # picture id
        self.data[one + 2] = 0x01 if on_screen else 0xFF  # image index; $FF: not drawn
        self.data[two + 4], self.data[two + 5] = y + 4, x + 4  # map Y, X, counted from 4

    def last_map(self, map_id: int) -> None:
        self.data[PRET["wLastMap"]] = map_id

    def work_ram(self) -> bytes:
        """$C000-$DFFF, as the env's snapshot holds it (index = address - $C000)."""
        return bytes(self.data[0xC000:0xE000])
