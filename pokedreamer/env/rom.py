"""Checks a ROM file before the emulator sees it, so that a bad file gets one clear line.

PyBoy boots almost anything and then shows a blank screen or crashes deep inside, so every check
the cartridge header allows runs here first: size, header checksum, ROM-size byte, global checksum,
title and, for Red and Blue, the destination byte (a Japanese game keeps its RAM elsewhere). A
known game whose bytes are not a published good dump still plays, with a warning: ROM hacks and
bad dumps may put things elsewhere in RAM.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pokedreamer.env.cartridge import TITLE as FIXTURE_TITLE
from pokedreamer.errors import UserError

HEADER_END = 0x150
TITLE_SLICE = slice(0x134, 0x144)
ROM_SIZE = 0x148  # ROM size code: 32 KiB << value
DESTINATION = 0x14A  # $00 sold in Japan, $01 sold elsewhere
OVERSEAS = 0x01
HEADER_CHECKSUM = 0x14D
GLOBAL_CHECKSUM = slice(0x14E, 0x150)  # big-endian

BANK = 0x4000
MIN_SIZE = 2 * BANK
MAX_SIZE_CODE = 8  # 8 MiB, the largest size code Nintendo defined

Game = Literal["red", "blue", "fixture"]
GAMES: dict[str, Game] = {"POKEMON RED": "red", "POKEMON BLUE": "blue", FIXTURE_TITLE: "fixture"}

#: SHA-1 of the good dumps (No-Intro; pret/pokered's ``roms.sha1`` builds to the same bytes).
GOOD_DUMPS: dict[Game, frozenset[str]] = {
    "red": frozenset({"ea9bcae617fdf159b045185467ae58b2e4a48b9a"}),  # Pokémon Red (UE)
    "blue": frozenset({"d7037c83e1ae5b39bde3c30787637ba1d4c48ce2"}),  # Pokémon Blue (UE)
}

_GAME_NAMES: dict[Game, str] = {
    "red": "Pokémon Red",
    "blue": "Pokémon Blue",
    "fixture": "the fixture cartridge",
}


@dataclass(frozen=True)
class Rom:
    """A ROM file that passed every check."""

    path: Path
    data: bytes = field(repr=False)
    title: str
    game: Game
    sha1: str
    #: A published good dump of Red or Blue; always true for the fixture cartridge, which is
    #: built from source here and has no published hash to compare with.
    known_dump: bool

    @property
    def warning(self) -> str | None:
        """One line for the user when the game is right but the dump is not a known good one."""
        if self.known_dump:
            return None
        return (
            f"{self.path} says it is {_GAME_NAMES[self.game]} but is not a known good dump "
            f"(SHA-1 {self.sha1}); a ROM hack, another language or a bad dump may keep its "
            "RAM elsewhere"
        )


def header_checksum(rom: bytes) -> int:
    """The cartridge header checksum over $0134-$014C, as the boot ROM computes it."""
    value = 0
    for byte in rom[0x134:0x14D]:
        value = (value - byte - 1) & 0xFF
    return value


def global_checksum(rom: bytes) -> int:
    """The sum of every byte but the checksum's own two, mod 65536. The hardware never checks
    it, but every good dump matches it, so a mismatch means the file was damaged."""
    return (sum(rom) - sum(rom[GLOBAL_CHECKSUM])) & 0xFFFF


def read_title(rom: bytes) -> str:
    return rom[TITLE_SLICE].split(b"\0", 1)[0].decode("ascii", "replace").strip()


def _kib(size: int) -> str:
    return f"{size // 1024} KiB" if size < 1 << 20 else f"{size >> 20} MiB"


def load_rom(path: str | Path) -> Rom:
    """The checked ROM, or a UserError naming what is wrong with the file and what to do."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"ROM not found: {path} (give the path to your own Game Boy ROM file)")
    if not path.is_file():
        raise UserError(f"ROM path is not a file: {path}")
    try:
        rom = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read ROM {path}: {exc.strerror or exc}") from None
    if not rom:
        raise UserError(f"ROM is empty: {path}")
    if len(rom) < MIN_SIZE or len(rom) % BANK:
        raise UserError(
            f"{path} is not a Game Boy ROM: {len(rom)} bytes, expected a multiple of 16 KiB "
            "of at least 32 KiB (is the file truncated?)"
        )
    if header_checksum(rom) != rom[HEADER_CHECKSUM]:
        raise UserError(
            f"{path} has a bad header checksum: the file is corrupt or not a Game Boy ROM"
        )
    code = rom[ROM_SIZE]
    if code > MAX_SIZE_CODE:
        raise UserError(f"{path} is not a ROM pokedreamer knows: ROM size code ${code:02X}")
    if len(rom) != MIN_SIZE << code:
        raise UserError(
            f"{path} is {_kib(len(rom))} but its header says {_kib(MIN_SIZE << code)}: "
            "the file is truncated or padded; use a clean dump"
        )
    stored = int.from_bytes(rom[GLOBAL_CHECKSUM], "big")
    if global_checksum(rom) != stored:
        raise UserError(
            f"{path} is corrupt: its global checksum is ${stored:04X} but its bytes sum to "
            f"${global_checksum(rom):04X}; use a clean dump"
        )
    title = read_title(rom)
    game = GAMES.get(title)
    if game is None:
        found = f"the title {title!r}" if title else "no title"
        raise UserError(
            f"{path} has {found}: pokedreamer plays Pokémon Red or Blue "
            f"(POKEMON RED, POKEMON BLUE) or its own fixture cartridge ({FIXTURE_TITLE})"
        )
    # The Japanese games carry the same titles but keep their variables at other addresses, so
    # every RAM read would be wrong; the fixture cartridge is exempt: it is built here with Red's
    # layout, whatever its header says.
    if game != "fixture" and rom[DESTINATION] != OVERSEAS:
        found = "$00 (Japan)" if rom[DESTINATION] == 0 else f"${rom[DESTINATION]:02X}"
        raise UserError(
            f"{path} is not the English {_GAME_NAMES[game]}: its destination byte ($014A) is "
            f"{found}, not $01, and other versions keep their RAM elsewhere; use an English "
            "(UE) dump"
        )
    sha1 = hashlib.sha1(rom).hexdigest()
    known = game == "fixture" or sha1 in GOOD_DUMPS[game]
    return Rom(path=path, data=rom, title=title, game=game, sha1=sha1, known_dump=known)
