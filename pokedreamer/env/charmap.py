"""Pokémon Red's character encoding (pret/pokered's charmap, English version).

On screen a tile id *is* a character code, so ``wTileMap`` decodes with the same table as
text in ROM. Codes below $50 that matter only inside ROM text are control codes.
"""

from __future__ import annotations

from collections.abc import Iterable

TERMINATOR = 0x50  # pret's "@": ends a string
SPACE = 0x7F

#: Control codes of ROM text (pret names), which never appear as screen tiles.
CONTROL_CODES: dict[int, str] = {
    0x49: "<PAGE>",
    0x4A: "<PKMN>",
    0x4B: "<_CONT>",
    0x4C: "<SCROLL>",
    0x4E: "<NEXT>",
    0x4F: "<LINE>",
    0x50: "@",
    0x51: "<PARA>",
    0x52: "<PLAYER>",
    0x53: "<RIVAL>",
    0x54: "#",
    0x55: "<CONT>",
    0x56: "<……>",
    0x57: "<DONE>",
    0x58: "<PROMPT>",
    0x59: "<TARGET>",
    0x5A: "<USER>",
    0x5B: "<PC>",
    0x5C: "<TM>",
    0x5D: "<TRAINER>",
    0x5E: "<ROCKET>",
    0x5F: "<DEXEND>",
}


def _run(first: int, chars: str) -> dict[int, str]:
    return {first + i: ch for i, ch in enumerate(chars)}


#: Printable glyphs: code -> text. The box border (┌─┐│└┘) and arrows are kept so that
#: callers can recognise and strip them.
GLYPHS: dict[int, str] = {
    **_run(0x70, "‘’“”·…"),
    **_run(0x79, "┌─┐│└┘ "),
    **_run(0x80, "ABCDEFGHIJKLMNOPQRSTUVWXYZ():;[]"),
    **_run(0xA0, "abcdefghijklmnopqrstuvwxyzé"),
    0xBB: "'d",
    0xBC: "'l",
    0xBD: "'s",
    0xBE: "'t",
    0xBF: "'v",
    0xE0: "'",
    0xE1: "PK",
    0xE2: "MN",
    0xE3: "-",
    0xE4: "'r",
    0xE5: "'m",
    0xE6: "?",
    0xE7: "!",
    0xE8: ".",
    0xEC: "▷",
    0xED: "▶",
    0xEE: "▼",
    0xEF: "♂",
    0xF0: "¥",
    0xF1: "×",
    0xF2: ".",
    0xF3: "/",
    0xF4: ",",
    0xF5: "♀",
    **_run(0xF6, "0123456789"),
}

#: Glyphs that are decoration, not words: the box border and the prompt arrows.
DECORATION = frozenset("┌─┐│└┘▷▶▼")


def decode(codes: Iterable[int], *, unknown: str = "") -> str:
    """Text for a run of codes, stopping at the terminator; unknown codes become ``unknown``."""
    out = []
    for code in codes:
        if code == TERMINATOR:
            break
        out.append(GLYPHS.get(code, unknown))
    return "".join(out)
