"""Dialog text read off the screen: the text box of ``wTileMap``, shown while ``wFontLoaded``
bit 0 is set."""

from __future__ import annotations

from pokedreamer.env.charmap import DECORATION, decode
from pokedreamer.env.ram import TILEMAP_WIDTH

TEXT_LINE_ROWS = (14, 16)  # Pokémon Red prints a box's two lines at (1,14) and (1,16)


def dialog_lines(tilemap: bytes | bytearray | memoryview) -> list[str]:
    """The non-empty text lines of the text box, with border and prompt arrows stripped."""
    lines = []
    for row in TEXT_LINE_ROWS:
        start = row * TILEMAP_WIDTH + 1
        text = decode(tilemap[start : start + TILEMAP_WIDTH - 2], unknown=" ")
        text = "".join(" " if ch in DECORATION else ch for ch in text).strip()
        if text:
            lines.append(" ".join(text.split()))
    return lines
