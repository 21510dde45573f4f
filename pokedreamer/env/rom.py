"""Checks a ROM file before the emulator sees it, so that a bad file gets one clear line."""

from __future__ import annotations

from pathlib import Path

from pokedreamer.errors import UserError

HEADER_END = 0x150
TITLE_SLICE = slice(0x134, 0x144)
HEADER_CHECKSUM = 0x14D


def header_checksum(rom: bytes) -> int:
    """The cartridge header checksum over $0134-$014C, as the boot ROM computes it."""
    value = 0
    for byte in rom[0x134:0x14D]:
        value = (value - byte - 1) & 0xFF
    return value


def read_title(rom: bytes) -> str:
    return rom[TITLE_SLICE].split(b"\0", 1)[0].decode("ascii", "replace").strip()


def load_rom(path: str | Path) -> bytes:
    """The ROM's bytes, or a UserError naming what is wrong with the file and what to do."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"ROM not found: {path} (give the path to your own Game Boy ROM file)")
    if not path.is_file():
        raise UserError(f"ROM path is not a file: {path}")
    rom = path.read_bytes()
    if not rom:
        raise UserError(f"ROM is empty: {path}")
    if len(rom) < 0x8000 or len(rom) % 0x4000:
        raise UserError(
            f"{path} is not a Game Boy ROM: {len(rom)} bytes, expected a multiple of 16 KiB "
            "of at least 32 KiB (is the file truncated?)"
        )
    if header_checksum(rom) != rom[HEADER_CHECKSUM]:
        raise UserError(
            f"{path} has a bad header checksum: the file is corrupt or not a Game Boy ROM"
        )
    return rom
