"""Text read off the screen: the text box of ``wTileMap`` (rows 12-17, lines on rows 14 and 16).

Outside battle a person's or a sign's dialog is up while ``wFontLoaded`` bit 0 is set. A battle
never sets it (pret prints battle messages with ``PrintText``), so there the box itself says what it
holds: a message is printed into a fresh box whose top border runs unbroken from (0,12) to (19,12),
while the battle menu (a box from (8,12), ``BATTLE_MENU_TEMPLATE``) and the move list (a box from
(4,12) with a ``┘`` at (10,12)) break that border, and a menu's ``▶``/``▷`` cursor may sit on the
text rows."""

from __future__ import annotations

import re
from functools import lru_cache

from pokedreamer.env.charmap import DECORATION, decode
from pokedreamer.env.ram import RAM, TILEMAP_WIDTH
from pokedreamer.env.wram import WRAM_START

TEXT_LINE_ROWS = (14, 16)  # Pokémon Red prints a box's two lines at (1,14) and (1,16)
LINE_WIDTH = TILEMAP_WIDTH - 2  # inside the border


@lru_cache(maxsize=4096)
def decode_line(codes: bytes) -> str:
    """One text-box line as clean text: border and prompt arrows gone, spaces collapsed.

    Cached because the same lines stay on screen for many steps.
    """
    text = decode(codes, unknown=" ")
    return " ".join("".join(" " if ch in DECORATION else ch for ch in text).split())


def dialog_lines(tilemap: bytes | bytearray | memoryview) -> list[str]:
    """The non-empty text lines of the text box in a 20×18 tilemap."""
    lines = []
    for row in TEXT_LINE_ROWS:
        start = row * TILEMAP_WIDTH + 1
        text = decode_line(bytes(tilemap[start : start + LINE_WIDTH]))
        if text:
            lines.append(text)
    return lines


_LINE_SLICES = tuple(
    slice(RAM["wTileMap"].address - WRAM_START + row * TILEMAP_WIDTH + 1,
          RAM["wTileMap"].address - WRAM_START + row * TILEMAP_WIDTH + 1 + LINE_WIDTH)
    for row in TEXT_LINE_ROWS
)  # fmt: skip


_WRAM_TILEMAP = RAM["wTileMap"].address - WRAM_START
_BOX_TOP_ROW = slice(_WRAM_TILEMAP + 12 * TILEMAP_WIDTH, _WRAM_TILEMAP + 13 * TILEMAP_WIDTH)
MESSAGE_BOX_TOP = bytes([0x79, *[0x7A] * LINE_WIDTH, 0x7B])  # ┌──…──┐ across the whole screen
MENU_CURSORS = b"\xec\xed"  # ▷ ▶
_FIND_CURSOR = re.compile(b"[" + re.escape(MENU_CURSORS) + b"]").search


def read_dialog(wram: bytes) -> tuple[str, ...]:
    """The text box's lines from a work-RAM snapshot (index = address - $C000)."""
    lines = (decode_line(wram[s]) for s in _LINE_SLICES)
    return tuple(line for line in lines if line)


def read_battle_message(wram: bytes) -> tuple[str, ...]:
    """A battle message's lines from a work-RAM snapshot; () while a menu covers the text box
    (its border broken on row 12, or a cursor on a text row) or the box is not drawn."""
    if wram[_BOX_TOP_ROW] != MESSAGE_BOX_TOP:
        return ()
    first, second = wram[_LINE_SLICES[0]], wram[_LINE_SLICES[1]]
    if _FIND_CURSOR(first) or _FIND_CURSOR(second):
        return ()
    lines = (decode_line(first), decode_line(second))
    return tuple(line for line in lines if line)
