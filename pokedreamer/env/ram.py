"""Pokémon Red's RAM variables, by their pret/pokered symbol names.

The addresses come from pret's generated ``pokered.sym``; the fixture cartridge writes the
same addresses with the same meaning, so one reader serves both ROMs.
"""

from __future__ import annotations

from typing import NamedTuple


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
