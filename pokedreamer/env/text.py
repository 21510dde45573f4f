"""Dialog text read off the screen: the text box of ``wTileMap``, shown while ``wFontLoaded``
bit 0 is set."""

from __future__ import annotations

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


def read_dialog(wram: bytes) -> tuple[str, ...]:
    """The text box's lines from a work-RAM snapshot (index = address - $C000)."""
    lines = (decode_line(wram[s]) for s in _LINE_SLICES)
    return tuple(line for line in lines if line)
