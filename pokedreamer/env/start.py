"""Start states: where every episode begins, reached through the game's intro and proven.

Pokémon Red and the fixture cartridge both open with a title, a main menu, a speech and a naming
menu. We script them once with the button presses a person would make and save the emulator state
only once control is proven: the map header is loaded (Red fills wCurMapHeight, wCurMapWidth and
wNumberOfWarps only when the map is entered, after the speech), wJoyIgnore is 0, no text box is
open, and a movement probe walks the player. wCurMap and wFontLoaded prove nothing on their own:
Red's OakSpeech sets the new-game warp before Oak appears and prints with PrintText, which leaves
wFontLoaded clear. Red's state is cached in the user's data directory under a versioned key and
the ROM's SHA-1, and checked with the same probe whenever it is loaded. No save state of the
commercial game ever ships with pokedreamer: each user's copy is made from their ROM.
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

INTRO_PRESS_LIMIT = 1500  # presses before giving up on the intro (Red's takes a few hundred)
# Bumped whenever what a start state must prove changes, so an older cached state is never used.
START_STATE_VERSION = 2
# Pokémon Red's variables that tell the intro from control (pret's pokered.sym).
W_JOY_IGNORE = 0xCD6B
W_CUR_MAP_HEIGHT = 0xD368
W_CUR_MAP_WIDTH = 0xD369
W_NUMBER_OF_WARPS = 0xD3AE
PROBE_BUTTONS = ("up", "down", "left", "right")
PROBE_TRIES = 2  # a first press may only turn the player to face the way pressed
SETTLE_FRAMES = 30  # frames control must last before the probe
# Cartridge RAM of the largest cartridge (16 banks of 8 KiB), all zero: a battery save that holds
# no game, so the main menu never offers CONTINUE and the user's `<rom>.ram` is never opened.
BLANK_SAVE_BYTES = 16 * 8 * 1024


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "pokedreamer"


def blank_save_ram() -> io.BytesIO:
    """A ``ram_file`` for PyBoy: the game starts as if no battery save existed."""
    return io.BytesIO(bytes(BLANK_SAVE_BYTES))


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


def _position(mem: Any) -> tuple[int, int, int]:
    return mem[RAM["wCurMap"].address], mem[RAM["wYCoord"].address], mem[RAM["wXCoord"].address]


def map_loaded(pyboy: Any) -> bool:
    """The current map's header is in WRAM: it has a size and at least one warp."""
    mem = pyboy.memory
    return all(mem[a] for a in (W_CUR_MAP_HEIGHT, W_CUR_MAP_WIDTH, W_NUMBER_OF_WARPS))


def control_likely(pyboy: Any) -> bool:
    """What RAM alone says: the map loaded, no buttons ignored, no text box open."""
    mem = pyboy.memory
    font = mem[RAM["wFontLoaded"].address] & 1
    return map_loaded(pyboy) and mem[W_JOY_IGNORE] == 0 and not font


def movement_probe(pyboy: Any) -> bool:
    """Whether a direction press moves the player; the emulator is restored either way."""
    before = save_state_bytes(pyboy)
    try:
        start = _position(pyboy.memory)
        for button in PROBE_BUTTONS:
            for _ in range(PROBE_TRIES):
                _press(pyboy, button)
                if _position(pyboy.memory) != start:
                    return True
        return False
    finally:
        pyboy.load_state(io.BytesIO(before))


def control_proven(pyboy: Any) -> bool:
    return control_likely(pyboy) and movement_probe(pyboy)


def script_red_intro(pyboy: Any) -> None:
    """Plays the intro from power-on to the first moment of proven control.

    Presses A through the title, the main menu and the speech. On a main menu that offers CONTINUE
    (a battery save) it moves down to NEW GAME first; at each naming menu it moves the cursor down
    from NEW NAME to the first preset name, so no keyboard is ever needed.
    """
    mem = pyboy.memory
    tiles = RAM["wTileMap"]
    for _ in range(INTRO_PRESS_LIMIT):
        if control_likely(pyboy):
            pyboy.tick(SETTLE_FRAMES, False)
            if control_proven(pyboy):
                return
            # RAM alone can look like control (a menu over a loaded save): press on
        screen = decode(bytes(mem[tiles.address : tiles.address + tiles.width]), unknown=" ")
        if "▶NEW NAME" in screen or "▶CONTINUE" in screen:
            _press(pyboy, "down")  # to the first preset name, or to NEW GAME
        _press(pyboy, "a")
    raise UserError(
        f"could not script the intro of this ROM in {INTRO_PRESS_LIMIT} presses (map "
        f"${mem[RAM['wCurMap'].address]:02X}): make a save state with the player in control "
        "and set env.start_state"
    )


def scripted_start_state(pyboy: Any) -> bytes:
    """Scripts the intro of a freshly booted emulator and returns the proven start state."""
    script_red_intro(pyboy)
    return save_state_bytes(pyboy)


def cached_start_state(pyboy: Any, sha1: str, cache: StartStates) -> bytes:
    """The cached start state of this ROM when it loads and passes the probe, else a new one.

    ``pyboy`` must be freshly booted: a cached state that fails is replaced by scripting the
    intro from power-on again.
    """
    power_on = save_state_bytes(pyboy)
    state = cache.get(sha1)
    if state is not None:
        try:
            pyboy.load_state(io.BytesIO(state))
            proven = control_proven(pyboy)
        except Exception:  # a state another PyBoy version wrote, or a damaged file
            proven = False
        if proven:
            return state
        pyboy.load_state(io.BytesIO(power_on))
    state = scripted_start_state(pyboy)
    cache.put(sha1, state)
    return state


class StartStates:
    """The cache of scripted start states, one file per ROM SHA-1 under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / "start_states"

    def path(self, sha1: str) -> Path:
        return self.folder / f"{sha1}.v{START_STATE_VERSION}.state"

    def get(self, sha1: str) -> bytes | None:
        path = self.path(sha1)
        return path.read_bytes() if path.is_file() else None

    def put(self, sha1: str, state: bytes) -> Path:
        """Writes atomically, so a crash never leaves a half-written state to be loaded later."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(sha1)
        write_atomic(path, state, f".tmp{os.getpid()}")  # per process: two envs may race
        return path
