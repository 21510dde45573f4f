"""The random-button demo behind ``pokedreamer run`` until the agent exists (issue #6).

It boots the ROM headless, presses random buttons with the env's action timing, and prints the
Pokémon Red facts it reads from RAM every few steps — a live check that the cartridge (or a
user's ROM) and our RAM map agree.
"""

from __future__ import annotations

import random
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any

from pokedreamer.env.cartridge import ROM_PATH
from pokedreamer.env.ram import RAM, TILEMAP_HEIGHT, TILEMAP_WIDTH
from pokedreamer.env.rom import load_rom
from pokedreamer.env.text import dialog_lines

if TYPE_CHECKING:
    from pokedreamer.config import Settings

BUTTONS = ("a", "b", "up", "down", "left", "right", "start", "select")
FACING = {0x00: "down", 0x04: "up", 0x08: "left", 0x0C: "right"}
BATTLE = {0: "none", 1: "wild", 2: "trainer", 0xFF: "lost"}


def _read(memory: Any, name: str) -> int:
    var = RAM[name]
    value = 0
    for i in range(var.width):
        value = (value << 8) | memory[var.address + i]
    return value


def _bcd(value: int) -> int:
    return int(f"{value:x}") if value else 0


def read_facts(memory: Any) -> dict[str, Any]:
    """The facts a GameState will hold, read straight from RAM."""
    tiles = RAM["wTileMap"]
    tilemap = bytes(memory[tiles.address : tiles.address + TILEMAP_WIDTH * TILEMAP_HEIGHT])
    events = RAM["wEventFlags"]
    flags = memory[events.address : events.address + events.width]
    text_shown = bool(_read(memory, "wFontLoaded") & 1)
    return {
        "map": _read(memory, "wCurMap"),
        "x": _read(memory, "wXCoord"),
        "y": _read(memory, "wYCoord"),
        "facing": FACING.get(_read(memory, "wSpritePlayerStateData1FacingDirection"), "?"),
        "battle": BATTLE.get(_read(memory, "wIsInBattle"), "?"),
        "party": _read(memory, "wPartyCount"),
        "hp": _read(memory, "wPartyMon1HP"),
        "max_hp": _read(memory, "wPartyMon1MaxHP"),
        "level": _read(memory, "wPartyMon1Level"),
        "badges": bin(_read(memory, "wObtainedBadges")).count("1"),
        "money": _bcd(_read(memory, "wPlayerMoney")),
        "events": sum(bin(b).count("1") for b in flags),
        "text": dialog_lines(tilemap) if text_shown else [],
    }


def format_facts(step: int, facts: dict[str, Any]) -> str:
    party = (
        f"party {facts['party']} L{facts['level']} {facts['hp']}/{facts['max_hp']}HP"
        if facts["party"]
        else "party 0"
    )
    line = (
        f"step {step:>6}  map ${facts['map']:02X} ({facts['x']},{facts['y']}) "
        f"{facts['facing']:<5}  "
        f"battle {facts['battle']:<7}  {party}  badges {facts['badges']}  ${facts['money']}  "
        f"events {facts['events']}"
    )
    if facts["text"]:
        line += "  text: " + " / ".join(facts["text"])
    return line


def random_play(settings: Settings) -> None:
    # The ROM is checked before PyBoy is imported, so a bad file is refused at once.
    rom_path = settings.env.rom or str(ROM_PATH)
    rom = load_rom(rom_path)
    if rom.warning:
        print(f"warning: {rom.warning}", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pysdl2-dll announces itself on import
        from pyboy import PyBoy  # heavy: imported only when a game runs

    env = settings.env
    rng = random.Random(env.seed)
    pyboy = PyBoy(
        rom_path,
        window="null" if env.headless else "SDL2",
        sound_emulated=False,
        log_level="ERROR",
    )
    steps, every = settings.run.steps, settings.run.print_every
    print(f"random buttons on {rom_path} — {'until Ctrl-C' if not steps else f'{steps} steps'}")
    start, step = time.perf_counter(), 0
    try:
        while not steps or step < steps:
            button = rng.choice(BUTTONS)
            pyboy.button_press(button)
            pyboy.tick(env.hold_frames, False)
            pyboy.button_release(button)
            pyboy.tick(env.action_repeat - env.hold_frames, not env.headless)
            step += 1
            if every and (step % every == 0 or step == steps):
                print(format_facts(step, read_facts(pyboy.memory)), flush=True)
    finally:
        elapsed = time.perf_counter() - start
        pyboy.stop(save=False)
        print(f"{step} steps in {elapsed:.1f} s ({step / max(elapsed, 1e-9):.0f} steps/s)")
