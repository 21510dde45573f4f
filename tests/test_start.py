"""Start states: the intro is scripted to control that is proven, not guessed from wCurMap and
wFontLoaded, the cache keeps only states that still prove it, and a battery save beside the ROM
neither changes the start nor is touched."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from cartridge_driver import Game

from pokedreamer.config import EnvSettings
from pokedreamer.env.cartridge import ROM_PATH
from pokedreamer.env.gym_env import PokemonRedEnv
from pokedreamer.env.ram import RAM
from pokedreamer.env.rom import global_checksum, header_checksum
from pokedreamer.env.start import (
    START_STATE_VERSION,
    W_CUR_MAP_HEIGHT,
    W_CUR_MAP_WIDTH,
    W_JOY_IGNORE,
    W_NUMBER_OF_WARPS,
    StartStates,
    blank_save_ram,
    cached_start_state,
    control_likely,
    control_proven,
    load_state_bytes,
    save_state_bytes,
    scripted_start_state,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pysdl2-dll announces itself on import
    from pyboy import PyBoy

HOUSE = 0x25
SHA1 = "0123456789abcdef0123456789abcdef01234567"
SAVED_NAME_OFFSET = 0x598  # sPlayerName in the cartridge's RAM bank
ASH = bytes([0x80, 0x92, 0x87, 0x50])
RED = [0x91, 0x84, 0x83, 0x50]


@pytest.fixture
def fresh() -> Iterator[Game]:
    g = Game(boot=False)
    yield g
    g.close()


def in_speech(g: Game) -> None:
    """Title, NEW GAME, and the first page of the speech."""
    g.tick(120)
    g.press("a")
    g.press("a")
    assert g.text and g.text[0].startswith("Hello there")


def name(g: Game) -> list[int]:
    start = RAM["wPlayerName"].address
    return [g.byte(start + i) for i in range(4)]


def test_the_speech_looks_like_control_to_wcurmap_and_wfontloaded_alone(fresh: Game) -> None:
    in_speech(fresh)
    # what the intro script once took for the end of the intro ...
    assert fresh["wCurMap"] == HOUSE and not fresh.text_shown and any(fresh.tilemap)
    assert (fresh["wXCoord"], fresh["wYCoord"]) == (3, 5)
    # ... while no map is loaded and the buttons are held off
    for address in (W_CUR_MAP_HEIGHT, W_CUR_MAP_WIDTH, W_NUMBER_OF_WARPS):
        assert fresh.byte(address) == 0
    assert fresh.byte(W_JOY_IGNORE) != 0
    assert not control_likely(fresh.pyboy) and not control_proven(fresh.pyboy)


def test_the_script_ends_at_proven_control_and_leaves_no_trace_of_the_probe(fresh: Game) -> None:
    state = scripted_start_state(fresh.pyboy)
    assert fresh.pos == (HOUSE, 3, 5) and name(fresh) == RED
    assert control_likely(fresh.pyboy) and fresh.byte(W_JOY_IGNORE) == 0
    assert save_state_bytes(fresh.pyboy) == state  # the probe restored the emulator
    fresh.press("up")
    assert fresh.pos == (HOUSE, 3, 4)


# --- the cache ---------------------------------------------------------------------------------


def test_the_cache_key_is_versioned_and_an_older_file_is_ignored(tmp_path: Path) -> None:
    cache = StartStates(tmp_path)
    (tmp_path / "start_states").mkdir()
    (tmp_path / "start_states" / f"{SHA1}.state").write_bytes(b"an unversioned state")
    assert cache.get(SHA1) is None
    path = cache.put(SHA1, b"state")
    assert path.name == f"{SHA1}.v{START_STATE_VERSION}.state" and cache.get(SHA1) == b"state"


def test_a_cached_state_that_fails_the_probe_is_rebuilt(fresh: Game, tmp_path: Path) -> None:
    cache = StartStates(tmp_path)
    power_on = save_state_bytes(fresh.pyboy)
    in_speech(fresh)
    cache.put(SHA1, save_state_bytes(fresh.pyboy))  # the state the old script cached
    load_state_bytes(fresh.pyboy, power_on, "power-on")
    state = cached_start_state(fresh.pyboy, SHA1, cache)
    assert cache.get(SHA1) == state and control_proven(fresh.pyboy)
    assert fresh.pos == (HOUSE, 3, 5)


def test_a_cached_state_pyboy_cannot_load_is_rebuilt(fresh: Game, tmp_path: Path) -> None:
    cache = StartStates(tmp_path)
    cache.put(SHA1, b"written by another PyBoy")
    state = cached_start_state(fresh.pyboy, SHA1, cache)
    assert cache.get(SHA1) == state and control_proven(fresh.pyboy)


def test_a_cached_state_that_proves_control_is_used_as_it_is(tmp_path: Path) -> None:
    cache = StartStates(tmp_path)
    first, second = Game(boot=False), Game(boot=False)
    try:
        state = cached_start_state(first.pyboy, SHA1, cache)
        mtime = cache.path(SHA1).stat().st_mtime_ns
        assert cached_start_state(second.pyboy, SHA1, cache) == state
        assert cache.path(SHA1).stat().st_mtime_ns == mtime
    finally:
        first.close()
        second.close()


# --- a battery save beside the ROM -------------------------------------------------------------


def rom_with_save(tmp_path: Path) -> tuple[Path, Path]:
    rom = tmp_path / "game.gb"
    shutil.copy(ROM_PATH, rom)
    save = bytearray(8 * 1024)
    save[SAVED_NAME_OFFSET : SAVED_NAME_OFFSET + len(ASH)] = ASH
    ram = tmp_path / "game.gb.ram"
    ram.write_bytes(bytes(save))
    return rom, ram


def test_a_save_beside_the_rom_puts_continue_first_and_a_continues_it(tmp_path: Path) -> None:
    rom, _ = rom_with_save(tmp_path)
    g = Game(rom, boot=False, own_save=True)
    try:
        g.tick(120)
        g.press("a")
        assert g.screen_text.index("▶CONTINUE") < g.screen_text.index("NEW GAME")
        g.press("a")
        assert name(g) == list(ASH)
    finally:
        g.close()


@pytest.mark.parametrize("blank", [True, False], ids=["blank-save", "save-loaded"])
def test_the_start_is_a_new_game_and_the_save_is_untouched(tmp_path: Path, blank: bool) -> None:
    rom, ram = rom_with_save(tmp_path)
    before = ram.read_bytes()
    extra = {"ram_file": blank_save_ram()} if blank else {}
    pyboy = PyBoy(str(rom), window="null", sound_emulated=False, log_level="ERROR", **extra)
    try:
        scripted_start_state(pyboy)  # with the save loaded, the script chooses NEW GAME
        start = RAM["wPlayerName"].address
        assert [pyboy.memory[start + i] for i in range(4)] == RED
    finally:
        pyboy.stop(save=False)
    assert ram.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["game.gb", "game.gb.ram"]


# --- the env on a game that is not the fixture ------------------------------------------------


def test_the_env_scripts_a_red_titled_cartridge_to_a_new_game_beside_a_save(tmp_path: Path) -> None:
    """Our cartridge under Red's title takes the path Pokémon Red takes: its intro scripted to
    proven control in a new game, the state cached under the versioned key, the save untouched."""
    rom, ram = rom_with_save(tmp_path)
    data = bytearray(rom.read_bytes())
    data[0x134:0x144] = b"POKEMON RED".ljust(16, b"\0")
    data[0x14A] = 0x01  # an English dump's destination byte: others are refused
    data[0x14D] = header_checksum(bytes(data))
    data[0x14E:0x150] = global_checksum(bytes(data)).to_bytes(2, "big")
    rom.write_bytes(bytes(data))
    before = ram.read_bytes()
    env = PokemonRedEnv(EnvSettings(rom=str(rom), data_dir=str(tmp_path / "data")))
    try:
        assert not env.is_fixture
        env.reset(seed=0)
        assert control_proven(env._pyboy)
        start = RAM["wPlayerName"].address
        assert [env._pyboy.memory[start + i] for i in range(4)] == RED
        assert StartStates(tmp_path / "data").get(env.rom.sha1) is not None
    finally:
        env.close()
    assert ram.read_bytes() == before
