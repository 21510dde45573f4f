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


RAM: dict[str, RamVar] = {
    v.name: v
    for v in (
        RamVar("wSpritePlayerStateData1FacingDirection", 0xC109, 1),
        RamVar("wTileMap", 0xC3A0, 20 * 18),
        RamVar("wFontLoaded", 0xCFC4, 1),
        RamVar("wEnemyMonSpecies", 0xCFE5, 1),
        RamVar("wEnemyMonHP", 0xCFE6, 2),
        RamVar("wEnemyMonLevel", 0xCFF3, 1),
        RamVar("wEnemyMonMaxHP", 0xCFF4, 2),
        RamVar("wBattleMonSpecies", 0xD014, 1),
        RamVar("wBattleMonHP", 0xD015, 2),
        RamVar("wBattleMonLevel", 0xD022, 1),
        RamVar("wBattleMonMaxHP", 0xD023, 2),
        RamVar("wIsInBattle", 0xD057, 1),
        RamVar("wPlayerName", 0xD158, 11),
        RamVar("wPartyCount", 0xD163, 1),
        RamVar("wPartySpecies", 0xD164, 7),
        RamVar("wPartyMon1", 0xD16B, 0x2C),
        RamVar("wPartyMon1HP", 0xD16C, 2),
        RamVar("wPartyMon1Exp", 0xD179, 3),
        RamVar("wPartyMon1Level", 0xD18C, 1),
        RamVar("wPartyMon1MaxHP", 0xD18D, 2),
        RamVar("wPokedexOwned", 0xD2F7, 19),
        RamVar("wPokedexSeen", 0xD30A, 19),
        RamVar("wNumBagItems", 0xD31D, 1),
        RamVar("wBagItems", 0xD31E, 41),
        RamVar("wPlayerMoney", 0xD347, 3),
        RamVar("wObtainedBadges", 0xD356, 1),
        RamVar("wCurMap", 0xD35E, 1),
        RamVar("wYCoord", 0xD361, 1),
        RamVar("wXCoord", 0xD362, 1),
        RamVar("wEventFlags", 0xD747, 320),
    )
}

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
