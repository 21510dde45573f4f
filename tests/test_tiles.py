"""The tile observation on the fixture cartridge: render(tokenize(screen)) is the screen, pixel for
pixel, wherever the game goes; a full vocabulary says UNKNOWN and counts it; ids survive a save and
load; a damaged vocabulary file is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cartridge_driver import (
    GUIDE_TO_ROUTE,
    MOM_TO_TOWN,
    TO_MOM,
    TOWN_TO_GUIDE,
    Game,
    find_wild_battle,
)
from clirun import cli

from pokedreamer.env.tiles import CELL, GRID_HW, UNKNOWN, UNKNOWN_PATTERN, TileVocabulary
from pokedreamer.errors import UserError

LCDC, SCY, SCX, WY, WX, OAM = 0xFF40, 0xFF42, 0xFF43, 0xFF4A, 0xFF4B, 0xFE00


def shades(game: Game) -> np.ndarray:
    """The screen as the env's obs["screen"] has it: PyBoy's default palette read back to the
    shade index (the env's own conversion for a windowed PyBoy), after one frame drawn (the
    scripted game ticks without drawing)."""
    game.pyboy.tick(1, True)
    return (3 - (game.pyboy.screen.ndarray[:, :, 0] >> 6)).astype(np.uint8)


def rendered(game: Game, registers: dict[int, int]) -> np.ndarray:
    """The screen drawn with some of the PPU's registers set for one frame, then put back: the
    fixture game never scrolls, nor shows sprites or the window, so these are set here and the
    emulator draws them as a game's would be drawn."""
    saved = {address: game.byte(address) for address in registers}
    for address, value in registers.items():
        game.pyboy.memory[address] = value
    screen = shades(game)
    for address, value in saved.items():
        game.pyboy.memory[address] = value
    game.tick(1)
    return screen


@pytest.fixture(scope="module")
def screens() -> dict[str, np.ndarray]:
    """Screens of one scripted game, by what they show."""
    game = Game()
    try:
        out = {"overworld": shades(game)}
        lcdc = game.byte(LCDC)
        # Fine scroll: the background 3 pixels left and 5 up, so its tiles straddle the cells.
        out["scrolled"] = rendered(game, {SCX: 3, SCY: 5})
        # A sprite at pixel (13, 21) over four cells, colour 0 transparent; the window from
        # (87, 100), covering part of the background.
        for i, value in enumerate((21 + 16, 13 + 8, 2, 0)):  # y, x, tile, flags
            game.pyboy.memory[OAM + i] = value
        out["sprites_window"] = rendered(game, {LCDC: lcdc | 0x22, WX: 87 + 7, WY: 100})
        game.pyboy.memory[OAM] = 0  # the sprite off the screen again
        game.walk(*TO_MOM)
        game.press("a")
        assert game.text_shown
        out["text"] = shades(game)
        game.read_all()
        get_starter_from_mom(game)
        find_wild_battle(game)
        for _ in range(3):  # into the battle's first text, sprites drawn
            game.press("a")
        assert game["wIsInBattle"]
        out["battle"] = shades(game)
    finally:
        game.close()
    return out


def get_starter_from_mom(game: Game) -> None:
    """From facing MOM to the route's grass: out of the house, the starter, the route."""
    game.walk(*MOM_TO_TOWN, *TOWN_TO_GUIDE)
    game.press("a")
    game.read_all()
    game.walk(*GUIDE_TO_ROUTE, "right", "right", "up")


def cells(frame: np.ndarray) -> np.ndarray:
    """(18, 20, 8, 8): the frame cut on the screen's grid."""
    return frame.reshape(GRID_HW[0], CELL, GRID_HW[1], CELL).swapaxes(1, 2)


@pytest.mark.parametrize("name", ["overworld", "text", "battle", "scrolled", "sprites_window"])
def test_render_of_tokenize_is_the_screen(screens: dict[str, np.ndarray], name: str) -> None:
    vocab = TileVocabulary(1024)
    screen = screens[name]
    tokens = vocab.tokenize(screen)
    assert tokens.dtype == np.uint16 and tokens.shape == GRID_HW
    assert vocab.unknown_cells == 0 and UNKNOWN not in tokens
    np.testing.assert_array_equal(vocab.render(tokens), screen)
    # The same pattern is the same token, and different patterns different ones.
    flat = cells(screen).reshape(-1, CELL * CELL)
    distinct = len(np.unique(flat, axis=0))
    assert len(vocab) - 1 == distinct == len(np.unique(tokens))


def test_the_states_differ_as_they_should(screens: dict[str, np.ndarray]) -> None:
    # Guards the test above: each state is on screen, not one frame five times.
    frames = list(screens.values())
    for i, a in enumerate(frames):
        for b in frames[i + 1 :]:
            assert (a != b).any()
    # The scrolled frame is the overworld moved by (5, 3) pixels, wrapping round the 256 x 256
    # background (the map beyond the screen is blank here): cut on the fixed grid, it shows
    # patterns the unscrolled frame lacks.
    overworld, scrolled = screens["overworld"], screens["scrolled"]
    np.testing.assert_array_equal(scrolled[:-5, :-3], overworld[5:, 3:])
    # The sprite is drawn over the background at (13, 21), the window left of x=87 unchanged.
    sprite_box = (slice(21, 29), slice(13, 21))
    assert (screens["sprites_window"][sprite_box] != overworld[sprite_box]).any()
    np.testing.assert_array_equal(screens["sprites_window"][:, 21:87], overworld[:, 21:87])
    vocab = TileVocabulary(1024)
    before = set(vocab.tokenize(overworld).ravel().tolist())
    assert set(vocab.tokenize(scrolled).ravel().tolist()) - before


def test_a_batch_tokenizes_as_its_frames_do(screens: dict[str, np.ndarray]) -> None:
    batch = np.stack([screens["overworld"], screens["text"], screens["battle"]])[:, None]
    vocab = TileVocabulary(1024)
    tokens = vocab.tokenize(batch)
    assert tokens.shape == (3, 1, *GRID_HW)
    np.testing.assert_array_equal(vocab.render(tokens), batch)
    again = TileVocabulary(1024)
    for i in range(3):  # first-seen order: frame by frame, row-major within a frame
        np.testing.assert_array_equal(again.tokenize(batch[i, 0]), tokens[i, 0])


def test_a_full_vocabulary_says_unknown_never_a_wrong_token(
    screens: dict[str, np.ndarray],
) -> None:
    vocab = TileVocabulary(6)  # UNKNOWN and 5 patterns
    screen = screens["battle"]
    tokens = vocab.tokenize(screen)
    assert len(vocab) == 6
    unknown = tokens == UNKNOWN
    assert vocab.unknown_cells == int(unknown.sum()) > 0
    frame_cells, drawn = cells(screen), cells(vocab.render(tokens))
    np.testing.assert_array_equal(drawn[~unknown], frame_cells[~unknown])
    assert (drawn[unknown] == UNKNOWN_PATTERN).all()
    # Full, it learns nothing more: the same frame gives the same tokens, counted again.
    np.testing.assert_array_equal(vocab.tokenize(screen), tokens)
    assert vocab.unknown_cells == 2 * int(unknown.sum()) and len(vocab) == 6


def test_ids_not_given_out_yet_render_as_unknown() -> None:
    vocab = TileVocabulary(8)
    vocab.tokenize(np.zeros((144, 160), np.uint8))
    drawn = vocab.render(np.full(GRID_HW, 5))
    assert (cells(drawn) == UNKNOWN_PATTERN).all()
    with pytest.raises(ValueError, match="0..7"):
        vocab.render(np.full(GRID_HW, 8))


def test_ids_survive_save_and_load(screens: dict[str, np.ndarray], tmp_path: Path) -> None:
    vocab = TileVocabulary(40)
    first = vocab.tokenize(screens["overworld"])
    vocab.tokenize(screens["battle"])  # fills it: some cells unknown
    assert vocab.unknown_cells > 0
    path = tmp_path / "tiles.npz"
    vocab.save(path)
    loaded = TileVocabulary.load(path)
    assert (len(loaded), loaded.capacity, loaded.unknown_cells) == (
        len(vocab), vocab.capacity, vocab.unknown_cells,
    )  # fmt: skip
    np.testing.assert_array_equal(loaded.patterns, vocab.patterns)
    np.testing.assert_array_equal(loaded.tokenize(screens["overworld"]), first)
    for name in ("text", "battle"):
        np.testing.assert_array_equal(loaded.render(loaded.tokenize(screens[name])),
                                      vocab.render(vocab.tokenize(screens[name])))  # fmt: skip
    from_meta = TileVocabulary.from_meta(vocab.to_meta(), "checkpoint x")
    np.testing.assert_array_equal(from_meta.patterns, vocab.patterns)


def test_adopt_takes_a_longer_vocabulary_of_the_same_start(
    screens: dict[str, np.ndarray],
) -> None:
    short, long = TileVocabulary(1024), TileVocabulary(1024)
    short.tokenize(screens["overworld"])
    long.tokenize(screens["overworld"])
    tokens = long.tokenize(screens["battle"])
    short.adopt(long, "the checkpoint")
    np.testing.assert_array_equal(short.patterns, long.patterns)
    np.testing.assert_array_equal(short.tokenize(screens["battle"]), tokens)
    other = TileVocabulary(1024)
    other.tokenize(screens["battle"])
    with pytest.raises(UserError, match="numbers tile patterns differently"):
        short.adopt(other, "the checkpoint")
    with pytest.raises(UserError, match="tile capacity of 64"):
        short.adopt(TileVocabulary(64), "the checkpoint")


def test_translation_renumbers_another_runs_grids_into_this_vocabulary(
    screens: dict[str, np.ndarray],
) -> None:
    model = TileVocabulary(1024)  # a model's vocabulary: the overworld first
    model.tokenize(screens["overworld"])
    data = TileVocabulary(1024)  # another run's: the battle first, then the overworld
    grids = data.tokenize(np.stack([screens["battle"], screens["overworld"]]))
    table = model.translation(data)
    assert table[UNKNOWN] == UNKNOWN
    renumbered = table[grids]
    # The same pictures under the model's numbering; the battle's patterns it lacked are learnt.
    np.testing.assert_array_equal(model.render(renumbered), data.render(grids))
    np.testing.assert_array_equal(renumbered[1], model.tokenize(screens["overworld"]))
    assert not np.array_equal(renumbered, grids)  # the orders of first sightings differ
    # A full model vocabulary says unknown for what it lacks, never another pattern's id.
    full = TileVocabulary(3)
    full.tokenize(screens["overworld"])  # its first two patterns: ids 1 and 2, then full
    table = full.translation(data)
    known = {full.render(np.full(GRID_HW, t, np.uint16))[:8, :8].tobytes() for t in (1, 2)}
    for token in range(1, len(data)):
        drawn = data.render(np.full(GRID_HW, token, np.uint16))[:8, :8].tobytes()
        assert (table[token] != UNKNOWN) == (drawn in known)


def one_line(error: pytest.ExceptionInfo[UserError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "damage",
    ["truncated", "garbage", "object array", "duplicate pattern", "too many", "missing field"],
)
def test_a_damaged_vocabulary_is_refused_in_one_line(tmp_path: Path, damage: str) -> None:
    vocab = TileVocabulary(8)
    vocab.tokenize(np.tile(np.arange(4, dtype=np.uint8), (144, 40)))
    path = tmp_path / "tiles.npz"
    vocab.save(path)
    fields = dict(np.load(path, allow_pickle=False))
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"not a vocabulary at all")
    elif damage == "object array":
        fields["patterns"] = np.array([object()], dtype=object)
        with open(path, "wb") as f:
            np.savez(f, **fields)  # allow_pickle on save: loading must refuse it
    elif damage == "duplicate pattern":
        fields["patterns"] = np.concatenate([fields["patterns"], fields["patterns"]])
        np.savez(path, **fields)
    elif damage == "too many":
        fields["capacity"] = np.array(1, np.int64)
        np.savez(path, **fields)
    else:
        del fields["patterns"]
        np.savez(path, **fields)
    with pytest.raises(UserError) as error:
        TileVocabulary.load(path)
    assert one_line(error).startswith(f"{path} is not a valid tile vocabulary")


def test_bad_checkpoint_meta_and_capacity_are_refused_in_one_line() -> None:
    with pytest.raises(UserError) as error:
        TileVocabulary.from_meta({"capacity": 8, "patterns": "%%%", "unknown_cells": 0}, "ckpt")
    assert one_line(error).startswith("ckpt is not a valid tile vocabulary")
    with pytest.raises(UserError) as error:
        TileVocabulary(1)
    assert "tile_capacity" in one_line(error)


def test_bench_tiles_reports_the_cost_and_the_vocabulary_it_grew() -> None:
    result = cli("bench", "tiles", "--steps", "40", "--capacity", "64", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert list(report) == [
        "machine", "env_steps", "tile_capacity", "env_step_us", "tokenize_us_per_frame",
        "tokenize_over_env_step", "render_us_per_frame", "vocabulary_after_steps",
        "unknown_cells", "scenes", "maps_visited", "screens_from",
    ]  # fmt: skip
    assert report["env_steps"] == 40 and report["tile_capacity"] == 64
    assert report["env_step_us"] > 0 and report["tokenize_us_per_frame"] > 0
    grown = list(report["vocabulary_after_steps"].values())
    assert grown == sorted(grown) and 1 < grown[-1] <= 64
    assert report["scenes"]["overworld"]["screens"] > 0
