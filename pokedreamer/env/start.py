"""Start states: where every episode begins.

The fixture cartridge reaches player control a couple of seconds of emulated time after boot.
Pokémon Red has a long intro (title, Oak's speech, naming); we script it once with the button
presses a person would make, save the emulator state at the first moment the player can move in
the bedroom, and cache that state in the user's data directory under the ROM's SHA-1. No save
state of the commercial game ever ships with pokedreamer: each user's copy is made from their ROM.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from pokedreamer.env.charmap import decode
from pokedreamer.env.ram import RAM
from pokedreamer.errors import UserError
from pokedreamer.files import write_atomic

BOOT_FRAMES = 120  # the cartridge: PyBoy's boot animation (~65 frames) and our first frames
REDS_HOUSE_2F = 0x26  # where Pokémon Red's player first gets control
INTRO_PRESS_LIMIT = 1500  # presses before giving up on the intro (it takes a few hundred)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "pokedreamer"


def save_state_bytes(pyboy: Any) -> bytes:
    buffer = io.BytesIO()
    pyboy.save_state(buffer)
    return buffer.getvalue()


def load_state_bytes(pyboy: Any, state: bytes, source: str) -> None:
    """Restores a save state, or a one-line UserError naming ``source`` when it is not one."""
    try:
        pyboy.load_state(io.BytesIO(state))
    except Exception as exc:  # PyBoy raises assorted errors for foreign or truncated states
        raise UserError(
            f"{source} is not a PyBoy save state of this ROM ({type(exc).__name__}): "
            "make one with this ROM, or leave env.start_state empty"
        ) from None


def _press(pyboy: Any, button: str, frames: int = 24) -> None:
    pyboy.button_press(button)
    pyboy.tick(8, False)
    pyboy.button_release(button)
    pyboy.tick(frames - 8, False)


def script_red_intro(pyboy: Any) -> None:
    """Plays Pokémon Red/Blue's intro from power-on to the first moment of control.

    Presses A through the title, the main menu and Oak's speech; at each naming menu it moves the
    cursor down from NEW NAME to the first preset name, so no keyboard is ever needed. Control is
    reached when the player stands in the bedroom with no text shown across several checks.
    """
    mem = pyboy.memory
    font, cur_map = RAM["wFontLoaded"].address, RAM["wCurMap"].address
    tiles = RAM["wTileMap"]
    quiet = 0
    for _ in range(INTRO_PRESS_LIMIT):
        screen = bytes(mem[tiles.address : tiles.address + tiles.width])
        if mem[cur_map] == REDS_HOUSE_2F and not mem[font] & 1 and any(screen):
            # Control is ours once the bedroom has stayed free of text for a while.
            quiet += 1
            if quiet >= 4:
                return
            pyboy.tick(30, False)
            continue
        quiet = 0
        if "▶NEW NAME" in decode(screen, unknown=" "):
            _press(pyboy, "down")  # from NEW NAME to the first preset name
        _press(pyboy, "a")
    raise UserError(
        f"could not script the intro of this ROM in {INTRO_PRESS_LIMIT} presses (map "
        f"${mem[cur_map]:02X}): make a save state in the bedroom yourself and set env.start_state"
    )


class StartStates:
    """The cache of scripted start states, one file per ROM SHA-1 under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / "start_states"

    def path(self, sha1: str) -> Path:
        return self.folder / f"{sha1}.state"

    def get(self, sha1: str) -> bytes | None:
        path = self.path(sha1)
        return path.read_bytes() if path.is_file() else None

    def put(self, sha1: str, state: bytes) -> Path:
        """Writes atomically, so a crash never leaves a half-written state to be loaded later."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(sha1)
        write_atomic(path, state, f".tmp{os.getpid()}")  # per process: two envs may race
        return path
