"""ROM checks: every kind of bad file is refused with one line, before PyBoy sees it, and a
known game that is not a known good dump plays with a warning."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from clirun import cli

from pokedreamer.env.cartridge import ROM_PATH, TITLE
from pokedreamer.env.rom import GOOD_DUMPS, global_checksum, header_checksum, load_rom
from pokedreamer.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROM_PATH.read_bytes()


def patched(
    rom: bytes,
    *,
    title: str | None = None,
    body_flip: int | None = None,
    destination: int | None = None,
) -> bytes:
    """The ROM with a new title, one body byte flipped and/or a new destination byte, both
    checksums made right again, so that only what was asked for is wrong."""
    data = bytearray(rom)
    if title is not None:
        data[0x134:0x144] = title.encode("ascii").ljust(16, b"\0")
    if destination is not None:
        data[0x14A] = destination
    if body_flip is not None:
        data[body_flip] ^= 0xFF
    data[0x14D] = header_checksum(bytes(data))
    data[0x14E:0x150] = global_checksum(bytes(data)).to_bytes(2, "big")
    return bytes(data)


def flipped(rom: bytes, offset: int) -> bytes:
    data = bytearray(rom)
    data[offset] ^= 0x01
    return bytes(data)


# Each bad file: how to make it, and what its one-line error must say.
BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (lambda p: None, "ROM not found"),
    "directory": (lambda p: p.mkdir(), "ROM path is not a file"),
    "empty": (lambda p: p.write_bytes(b""), "ROM is empty"),
    "truncated": (lambda p: p.write_bytes(FIXTURE[:20000]), "20000 bytes, expected a multiple"),
    "random": (
        lambda p: p.write_bytes(random.Random(0).randbytes(32 * 1024)),
        "bad header checksum",
    ),
    "bad header checksum": (
        lambda p: p.write_bytes(flipped(FIXTURE, 0x134)),  # a title byte
        "bad header checksum",
    ),
    "bad global checksum": (lambda p: p.write_bytes(flipped(FIXTURE, 0x2000)), "is corrupt"),
    "padded": (lambda p: p.write_bytes(FIXTURE + bytes(0x8000)), "but its header says 32 KiB"),
    "text": (
        lambda p: p.write_text("This is not a ROM.\n" * 2000, encoding="utf-8"),
        "expected a multiple of 16 KiB",
    ),
    "wrong game": (
        lambda p: p.write_bytes(patched(FIXTURE, title="TETRIS")),
        "has the title 'TETRIS': pokedreamer plays Pokémon Red or Blue",
    ),
    # Pocket Monsters Aka carries Red's title; only the destination byte tells it apart.
    "japanese": (
        lambda p: p.write_bytes(patched(FIXTURE, title="POKEMON RED", destination=0x00)),
        "is not the English Pokémon Red: its destination byte ($014A) is $00 (Japan), not $01",
    ),
    "unknown destination": (
        lambda p: p.write_bytes(patched(FIXTURE, title="POKEMON BLUE", destination=0x02)),
        "its destination byte ($014A) is $02, not $01",
    ),
}


def bad_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind.replace(' ', '_')}.gb"
    BAD_FILES[kind][0](path)
    return path


def test_the_fixture_cartridge_is_accepted() -> None:
    rom = load_rom(ROM_PATH)
    assert rom.game == "fixture" and rom.title == TITLE
    assert rom.data == FIXTURE and rom.path == ROM_PATH
    assert rom.known_dump and rom.warning is None
    assert len(rom.sha1) == 40


def test_the_fixture_checksums_are_what_the_checks_compute() -> None:
    assert header_checksum(FIXTURE) == FIXTURE[0x14D]
    assert global_checksum(FIXTURE) == int.from_bytes(FIXTURE[0x14E:0x150], "big")


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_files_are_refused_with_one_line(tmp_path: Path, kind: str) -> None:
    path = bad_file(tmp_path, kind)
    with pytest.raises(UserError) as info:
        load_rom(path)
    message = str(info.value)
    assert BAD_FILES[kind][1] in message
    assert str(path) in message and "\n" not in message


def test_the_fixture_plays_whatever_its_destination_byte(tmp_path: Path) -> None:
    path = tmp_path / "fixture.gb"
    for destination in (0x00, 0x01):
        path.write_bytes(patched(FIXTURE, destination=destination))
        assert load_rom(path).game == "fixture"


def test_only_the_title_is_wrong_in_the_wrong_game(tmp_path: Path) -> None:
    data = patched(FIXTURE, title="TETRIS")
    assert header_checksum(data) == data[0x14D]
    assert global_checksum(data) == int.from_bytes(data[0x14E:0x150], "big")


@pytest.mark.parametrize(("title", "game"), [("POKEMON RED", "red"), ("POKEMON BLUE", "blue")])
def test_a_known_title_that_is_no_known_dump_warns(tmp_path: Path, title: str, game: str) -> None:
    # Made here in tmp_path only: our own bytes under the game's title, never a real ROM.
    path = tmp_path / "hack.gb"
    path.write_bytes(patched(FIXTURE, title=title, destination=0x01))
    rom = load_rom(path)
    assert (rom.game, rom.title, rom.known_dump) == (game, title, False)
    assert rom.sha1 not in GOOD_DUMPS[rom.game]
    assert rom.warning is not None and "not a known good dump" in rom.warning
    assert rom.sha1 in rom.warning and "\n" not in rom.warning


@pytest.mark.parametrize("kind", BAD_FILES)
def test_run_refuses_a_bad_rom_in_one_line(tmp_path: Path, kind: str) -> None:
    path = bad_file(tmp_path, kind)
    result = cli("run", "--rom", str(path), "--headless", "--steps", "1")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert BAD_FILES[kind][1] in lines[0]


def test_run_plays_an_unknown_dump_with_a_one_line_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hack.gb"
    path.write_bytes(patched(FIXTURE, title="POKEMON RED", destination=0x01))
    # The "hack" is our cartridge under Red's title: start it from a state of the cartridge,
    # which is quicker than scripting its intro again, and keep any cache out of the home folder.
    from pokedreamer.env.gym_env import PokemonRedEnv
    from pokedreamer.env.start import save_state_bytes

    fixture_env = PokemonRedEnv()
    start = tmp_path / "start.state"
    start.write_bytes(save_state_bytes(fixture_env._pyboy))
    fixture_env.close()
    monkeypatch.setenv("POKEDREAMER_ENV__START_STATE", str(start))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    result = cli("run", "--rom", str(path), "--headless", "--steps", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: "), result.stderr
    assert "not a known good dump" in lines[0]
