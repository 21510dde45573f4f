"""Pokémon Red's RAM variables, by their pret/pokered symbol names.

The addresses come from pret's generated ``pokered.sym``; the fixture cartridge writes the
same addresses with the same meaning, so one reader serves both ROMs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from pokedreamer.errors import UserError


class RamVar(NamedTuple):
    name: str  # pret symbol
    address: int
    width: int  # bytes
    meaning: str = ""


# Each connection header is pret's map_connection_struct: 11 bytes.
CONNECTION_HEADER_SIZE = 11

RAM: dict[str, RamVar] = {
    v.name: v
    for v in (
        RamVar("wSpriteStateData1", 0xC100, 0x100,
               "16 sprites x 16 bytes: picture, image, screen pixels, facing; slot 0: the player"),
        RamVar("wSpritePlayerStateData1FacingDirection", 0xC109, 1,
               "the player's facing: 0 down, 4 up, 8 left, $C right"),
        RamVar("wSpriteStateData2", 0xC200, 0x100,
               "16 sprites x 16 bytes: map position (+4 in each axis), movement byte"),
        RamVar("wTileMap", 0xC3A0, 20 * 18, "the screen's 20x18 tile ids (tile id = charmap code)"),
        RamVar("wPlayerMonNumber", 0xCC2F, 1, "the party slot (0-5) of the POKéMON in battle"),
        RamVar("wJoyIgnore", 0xCD6B, 1, "buttons the game ignores; 0 when the player has control"),
        RamVar("wFontLoaded", 0xCFC4, 1, "bit 0: a text box or menu is open (never set in battle)"),
        RamVar("wEnemyMonSpecies", 0xCFE5, 1, "the enemy's species"),
        RamVar("wEnemyMonHP", 0xCFE6, 2, "the enemy's HP, big-endian"),
        RamVar("wEnemyMonLevel", 0xCFF3, 1, "the enemy's level"),
        RamVar("wEnemyMonMaxHP", 0xCFF4, 2, "the enemy's max HP, big-endian"),
        RamVar("wBattleMonSpecies", 0xD014, 1, "the player's battling species"),
        RamVar("wBattleMonHP", 0xD015, 2, "its HP in battle (copied to the party once a turn)"),
        RamVar("wBattleMonLevel", 0xD022, 1, "its level"),
        RamVar("wBattleMonMaxHP", 0xD023, 2, "its max HP"),
        RamVar("wIsInBattle", 0xD057, 1, "0 none, 1 wild, 2 trainer, $FF lost"),
        RamVar("wPlayerName", 0xD158, 11, "the player's name, charmap text ended by $50"),
        RamVar("wPartyCount", 0xD163, 1, "POKéMON in the party (0-6)"),
        RamVar("wPartySpecies", 0xD164, 7, "the party's species, ended by $FF"),
        RamVar("wPartyMon1", 0xD16B, 0x2C, "the first party POKéMON; the next follow every $2C"),
        RamVar("wPartyMon1HP", 0xD16C, 2, "its HP, big-endian"),
        RamVar("wPartyMon1Exp", 0xD179, 3, "its experience, big-endian"),
        RamVar("wPartyMon1Level", 0xD18C, 1, "its level"),
        RamVar("wPartyMon1MaxHP", 0xD18D, 2, "its max HP, big-endian"),
        RamVar("wPokedexOwned", 0xD2F7, 19, "one bit per species owned"),
        RamVar("wPokedexSeen", 0xD30A, 19, "one bit per species seen"),
        RamVar("wNumBagItems", 0xD31D, 1, "item kinds in the bag"),
        RamVar("wBagItems", 0xD31E, 41, "(item, quantity) pairs, ended by $FF"),
        RamVar("wPlayerMoney", 0xD347, 3, "6 BCD digits, the highest two first"),
        RamVar("wObtainedBadges", 0xD356, 1, "one bit per badge, BOULDER in bit 0"),
        RamVar("wCurMap", 0xD35E, 1, "the current map's id"),
        RamVar("wYCoord", 0xD361, 1, "the player's row on the map, in steps"),
        RamVar("wXCoord", 0xD362, 1, "the player's column on the map, in steps"),
        RamVar("wLastMap", 0xD365, 1,
               "the map the player came from: where a warp to $FF leads (a building's exit)"),
        RamVar("wCurMapTileset", 0xD367, 1,
               "the map's tileset: 0 (OVERWORLD) outdoors; indoors an exit mat needs a press"),
        RamVar("wCurMapHeight", 0xD368, 1, "map height in blocks of 2x2 steps; 0 until it loads"),
        RamVar("wCurMapWidth", 0xD369, 1, "map width in blocks of 2x2 steps"),
        RamVar("wCurMapConnections", 0xD370, 1,
               "which edges lead to another map: bit 3 north, 2 south, 1 west, 0 east"),
        RamVar("wNorthConnectionHeader", 0xD371, CONNECTION_HEADER_SIZE,
               "the north connection: map, strip pointers, width, alignment"),
        RamVar("wSouthConnectionHeader", 0xD37C, CONNECTION_HEADER_SIZE, "the south connection"),
        RamVar("wWestConnectionHeader", 0xD387, CONNECTION_HEADER_SIZE, "the west connection"),
        RamVar("wEastConnectionHeader", 0xD392, CONNECTION_HEADER_SIZE, "the east connection"),
        RamVar("wNumberOfWarps", 0xD3AE, 1, "warps on this map (at most 32); 0 until it loads"),
        RamVar("wWarpEntries", 0xD3AF, 32 * 4,
               "warps, 4 bytes each: y, x, destination warp, destination map ($FF: the last map)"),
        RamVar("wTilesetCollisionPtr", 0xD530, 2,
               "pointer (little-endian) into ROM bank 0: walkable tile ids, ended by $FF"),
        RamVar("wEventFlags", 0xD747, 320, "story event flags, bit i of byte i/8"),
    )
}  # fmt: skip

PARTY_MON_SIZE = 0x2C  # bytes between wPartyMon1 and wPartyMon2
TILEMAP_WIDTH, TILEMAP_HEIGHT = 20, 18
TEXT_BOX_ROWS = range(12, 18)  # the dialog box; its two text lines are rows 14 and 16


def addresses_used() -> set[int]:
    """Every byte the RAM map covers."""
    return {v.address + i for v in RAM.values() for i in range(v.width)}


# --- checking the map against a symbol file -----------------------------------------------------

# "BB:AAAA name", as rgblink (pret) and no$gmb write it; a bank can have more than two digits in
# a big ROM, and the name may be followed by a comment.
_SYM_LINE = re.compile(r"([0-9A-Fa-f]{1,4}):([0-9A-Fa-f]{4})\s+(\S+)\s*(?:;.*)?")
# "VV name": a numeric constant (pret's file lists its exported object ids this way), no address.
_SYM_CONSTANT = re.compile(r"[0-9A-Fa-f]{1,8}\s+\S+\s*(?:;.*)?")


def parse_sym(text: str) -> dict[str, int]:
    """Bank-0 symbols of a ``.sym`` file: name -> address, the first address where a name repeats.

    Bank 0 holds the home ROM bank and, in a DMG game like Pokémon Red, all of RAM. Symbols in a
    switchable bank are left out, because their address means nothing without the bank, and so
    are numeric constants (``VV name`` lines). Raises ValueError naming the first line that is
    neither, or when the text holds no ``BB:AAAA name`` line at all.
    """
    symbols: dict[str, int] = {}
    addresses = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        # ";" comments, and the "[labels]" section headers some no$gmb-style files carry
        if not line or line.startswith((";", "[")):
            continue
        match = _SYM_LINE.fullmatch(line)
        if match is None:
            if _SYM_CONSTANT.fullmatch(line):
                continue
            shown = line if len(line) <= 40 else line[:37] + "..."
            raise ValueError(f"line {number} is not 'BANK:ADDRESS name': {shown!r}")
        addresses += 1
        bank, address, name = match.groups()
        if int(bank, 16) == 0:
            symbols.setdefault(name, int(address, 16))
    if not addresses:
        raise ValueError("it holds no 'BANK:ADDRESS name' lines")
    return symbols


def check_symbols(sym: str | Mapping[str, int]) -> list[str]:
    """One line per RAM variable whose address (or, where the file has a ``<name>End`` label,
    whose width) disagrees with a symbol file; empty when the map matches it.

    ``sym`` is the file's text or what :func:`parse_sym` made of it.
    """
    symbols = parse_sym(sym) if isinstance(sym, str) else sym
    problems = []
    for var in RAM.values():
        address = symbols.get(var.name)
        if address is None:
            problems.append(f"{var.name}: missing from the symbol file")
        elif address != var.address:
            problems.append(f"{var.name}: ours ${var.address:04X}, symbol file ${address:04X}")
        elif (end := symbols.get(var.name + "End")) is not None and end - address != var.width:
            problems.append(
                f"{var.name}: ours {var.width} bytes, symbol file {end - address} "
                f"(to {var.name}End)"
            )
    return problems


def load_sym(path: str | Path) -> dict[str, int]:
    """:func:`parse_sym` of a file, or a one-line UserError saying what is wrong with it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"symbol file not found: {path}")
    if not path.is_file():
        raise UserError(f"symbol file is not a file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a symbol file: it is not text") from None
    except OSError as exc:
        raise UserError(f"cannot read symbol file {path}: {exc.strerror or exc}") from None
    try:
        return parse_sym(text)
    except ValueError as exc:
        raise UserError(f"{path} is not a symbol file: {exc}") from None
