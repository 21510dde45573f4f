"""Plays the fixture cartridge in PyBoy with scripted buttons, for the tests."""

from __future__ import annotations

import warnings
from pathlib import Path

from pokedreamer.env.cartridge import ROM_PATH, SYM_PATH
from pokedreamer.env.charmap import decode
from pokedreamer.env.ram import RAM, TILEMAP_HEIGHT, TILEMAP_WIDTH, parse_sym
from pokedreamer.env.start import blank_save_ram, script_red_intro
from pokedreamer.env.state import GameState, read_game_state
from pokedreamer.env.text import dialog_lines
from pokedreamer.env.wram import wram_snapshot

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pysdl2-dll announces itself on import
    from pyboy import PyBoy

HOLD, FRAMES = 8, 24  # the env's default action: button held 8 frames of 24
# The generator's state that every scripted game here starts from, so that a button sequence
# always meets the same encounters and damage rolls.
START_RNG = 0x2A50


def addr(name: str) -> int:
    return RAM[name].address


class Game:
    def __init__(self, rom: Path = ROM_PATH, boot: bool = True, own_save: bool = False) -> None:
        """``boot`` plays the intro to proven control, as the env does, and seeds the game;
        ``own_save`` lets PyBoy load the battery save beside the ROM, else the save is blank."""
        ram = {} if own_save else {"ram_file": blank_save_ram()}
        self.pyboy = PyBoy(str(rom), window="null", sound_emulated=False, log_level="ERROR", **ram)
        self.frames = 0
        if boot:
            script_red_intro(self.pyboy)
            self.seed(START_RNG)

    def seed(self, value: int) -> None:
        rng = parse_sym(SYM_PATH.read_text())["_rng_state"]
        self.pyboy.memory[rng] = value & 0xFF
        self.pyboy.memory[rng + 1] = value >> 8

    def close(self) -> None:
        self.pyboy.stop(save=False)

    def tick(self, frames: int) -> None:
        self.pyboy.tick(frames, False)
        self.frames += frames

    def press(self, button: str) -> None:
        self.pyboy.button_press(button)
        self.tick(HOLD)
        self.pyboy.button_release(button)
        self.tick(FRAMES - HOLD)

    def __getitem__(self, name: str) -> int:
        """A RAM variable by its pret name, big-endian when wider than a byte."""
        var = RAM[name]
        value = 0
        for i in range(var.width):
            value = (value << 8) | self.pyboy.memory[var.address + i]
        return value

    def byte(self, address: int) -> int:
        return self.pyboy.memory[address]

    def event(self, index: int) -> bool:
        return bool(self.byte(addr("wEventFlags") + index // 8) >> (index % 8) & 1)

    @property
    def pos(self) -> tuple[int, int, int]:
        return self["wCurMap"], self["wXCoord"], self["wYCoord"]

    @property
    def state(self) -> GameState:
        """The GameState as the env reads it."""
        return read_game_state(wram_snapshot(self.pyboy))

    @property
    def text_shown(self) -> bool:
        return bool(self["wFontLoaded"] & 1)

    @property
    def tilemap(self) -> bytes:
        start = addr("wTileMap")
        return bytes(self.pyboy.memory[start : start + TILEMAP_WIDTH * TILEMAP_HEIGHT])

    @property
    def screen_text(self) -> str:
        return decode(self.tilemap, unknown=" ")

    @property
    def text(self) -> list[str]:
        return dialog_lines(self.tilemap)

    def read_all(self, button: str = "a", limit: int = 30) -> list[str]:
        """Presses A (or B) through a dialog until the box closes; returns every page's lines."""
        pages = []
        for _ in range(limit):
            if not self.text_shown:
                return pages
            pages.append(" ".join(self.text))
            self.press(button)
        raise AssertionError(f"dialog did not close: {pages}")

    def battle(self, limit: int = 200) -> list[str]:
        """Presses A (FIGHT, then through the texts) until the battle is over; returns the texts."""
        seen: list[str] = []
        for _ in range(limit):
            if self["wIsInBattle"] == 0:
                return seen
            page = " ".join(self.text)
            if not seen or seen[-1] != page:
                seen.append(page)
            self.press("a")
        raise AssertionError(f"battle did not end: {seen[-5:]}")

    def flee(self) -> None:
        """Runs from a wild battle: through the intro, cursor to RUN, and out."""
        while "FIGHT" not in " ".join(self.text):
            self.press("a")
        self.press("right")
        self.press("a")
        assert self.text == ["Got away safely!"]
        self.press("a")

    def walk(self, *moves: str, flee: bool = False) -> None:
        """Presses directions; a wild battle on the way is fought (or fled) before going on."""
        for move in moves:
            self.press(move)
            if self["wIsInBattle"]:
                self.flee() if flee else self.battle()
            assert not self.text_shown, f"unexpected text while walking: {self.text}"


# Routes through the quest, from the start of the game (map ids: $25 house, $00 town, $0C route,
# $36 gym).
TO_MOM = ("right", "right", "up", "up", "up", "right")  # house (3,5) -> (5,2) facing MOM
MOM_TO_TOWN = ("down",) * 7  # house (5,2) -> the mat (5,9), down held -> town (2,4)
TOWN_TO_GUIDE = ("right", "right", "right", "right", "up", "up", "right")  # -> (6,2) facing GUIDE
GUIDE_TO_ROUTE = ("up", "left", "up", "up", "up", "up")  # town (5,0) -> route (5,9) -> (5,7)
ROUTE_TO_ITEM = ("right", "right", "up", "right")  # -> (7,6) facing the POTION


def get_starter(game: Game) -> list[str]:
    game.walk(*TO_MOM[:-1], *MOM_TO_TOWN, *TOWN_TO_GUIDE)
    game.press("a")
    return game.read_all()


def find_wild_battle(game: Game, limit: int = 100) -> None:
    """Paces up and down in the tall grass at (7,5)/(7,4) until a wild POKéMON appears."""
    for i in range(limit):
        game.press("up" if i % 2 == 0 else "down")
        if game["wIsInBattle"]:
            return
    raise AssertionError("no wild battle in the grass")
