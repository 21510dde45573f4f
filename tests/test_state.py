"""GameState read from the fixture cartridge at each beat of its quest, its summary and vector,
the dialog decoder, and the fast work-RAM reads it is built on."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from cartridge_driver import (
    GUIDE_TO_ROUTE,
    ROUTE_TO_ITEM,
    TO_MOM,
    Game,
    find_wild_battle,
    get_starter,
)
from pret_reference import reference_file

from pokedreamer.env.charmap import GLYPHS
from pokedreamer.env.ram import RAM, parse_sym
from pokedreamer.env.state import VECTOR_FIELDS, VECTOR_SIZE, GameState, PartyMon, read_game_state
from pokedreamer.env.text import dialog_lines
from pokedreamer.env.wram import WRAM_SIZE, WorkRam, wram_snapshot


@pytest.fixture
def game() -> Iterator[Game]:
    g = Game()
    yield g
    g.close()


def feature(state: GameState, name: str) -> float:
    return float(state.vector()[VECTOR_FIELDS.index(name)])


def test_start_of_the_game(game: Game) -> None:
    s = game.state
    assert (s.map_id, s.map_name, s.x, s.y, s.facing) == (0x25, "REDS_HOUSE_1F", 3, 5, "down")
    assert s.battle == "none" and not s.text_shown and s.text == ()
    assert s.party == () and s.hp_fraction == 0.0 and s.level_sum == 0
    assert (s.badges, s.badge_count, s.money, s.event_count) == (0, 0, 3000, 0)
    assert (s.pokedex_owned, s.pokedex_seen, s.bag) == (0, 0, ())
    assert not s.has_event("EVENT_GOT_STARTER")
    v = s.vector()
    assert v.shape == (VECTOR_SIZE,) and v.dtype == np.float32
    assert v.min() >= 0.0 and v.max() <= 1.0
    assert feature(s, "facing_down") == 1.0 and feature(s, "battle_none") == 1.0
    summary = s.summary()
    assert "REDS_HOUSE_1F (map $25) at x=3, y=5, facing down" in summary
    assert "Party: none" in summary and "Money: ¥3000" in summary


def test_multi_page_dialog_pages(game: Game) -> None:
    game.walk(*TO_MOM)
    pages = []
    game.press("a")
    while game.state.text_shown:
        pages.append(game.state.text)
        game.press("a")
    assert pages == [
        ("MOM: Good morning,", "RED!"),
        ("The GUIDE is in", "town. Go see him."),
        ("Come home to rest", "whenever you like."),
    ]


def test_after_the_guide(game: Game) -> None:
    get_starter(game)
    s = game.state
    assert s.party == (PartyMon(0xB1, 5, 20, 20),) and s.party[0].name == "SQUIRTLE"
    assert s.has_event("EVENT_GOT_STARTER") and s.has_event(34) and s.event_count == 1
    assert (s.pokedex_owned, s.pokedex_seen) == (1, 1)
    assert s.hp_fraction == 1.0 and feature(s, "party_size") == pytest.approx(1 / 6)
    assert "Party: SQUIRTLE L5 20/20 HP" in s.summary()


def test_item_in_the_bag(game: Game) -> None:
    get_starter(game)
    game.walk(*GUIDE_TO_ROUTE, *ROUTE_TO_ITEM)
    game.press("a")
    s = game.state
    assert s.text == ("RED found POTION!",)
    assert s.bag == ((0x14, 1),) and "Bag: POTION x1" in s.summary()


def test_battle_state_and_battle_text(game: Game) -> None:
    get_starter(game)
    game.walk(*GUIDE_TO_ROUTE, "right", "right", "up")
    find_wild_battle(game)
    s = game.state
    assert s.battle == "wild" and s.map_name == "ROUTE_1"
    assert s.text[0] in ("Wild RATTATA", "Wild PIDGEY") and s.text[1] == "appeared!"
    assert s.enemy_hp == s.enemy_max_hp > 0 and s.pokedex_seen == 2
    assert feature(s, "battle_wild") == 1.0 and feature(s, "enemy_hp_fraction") == 1.0
    assert "Battle: wild, enemy HP" in s.summary()
    texts = []
    while game.state.battle == "wild":
        texts.append(game.state.text)
        game.press("a")
    assert () in texts  # the battle menu is up: no message, and its words are not dialog
    assert "FIGHT" not in " ".join(" ".join(t) for t in texts)
    assert ("SQUIRTLE used", "TACKLE!") in texts
    assert any(t[0].startswith("Enemy ") and t[1] == "fainted!" for t in texts if len(t) == 2)
    assert game.state.battle == "none" and game.state.party[0].hp < 20


def test_lost_battle_reads_lost(game: Game) -> None:
    get_starter(game)
    game.walk(*GUIDE_TO_ROUTE, "right", "right", "up")
    game.pyboy.memory[0xD16D] = 1  # wPartyMon1HP low byte: one HP left
    find_wild_battle(game)
    while game.state.battle == "wild":
        game.press("a")
    s = game.state
    assert s.battle == "lost" and "Battle: lost" in s.summary()
    assert feature(s, "battle_lost") == 1.0 and s.hp_fraction == 0.0


def test_money_and_badges_decode() -> None:
    base = dict(
        map_id=0x36, map_name="PEWTER_GYM", x=4, y=2, facing="up", battle="none", enemy_hp=0,
        enemy_max_hp=0, text_shown=False, text=(), party=(), money=3820,
        event_flags=bytes(320), pokedex_owned=0, pokedex_seen=0, bag=(),
    )  # fmt: skip
    s = GameState(badges=0b101, **base)
    assert s.badge_count == 2 and s.has_badge("BOULDER") and s.has_badge("THUNDERBADGE")
    assert not s.has_badge(1)
    assert "Badges: 2/8 (BOULDER, THUNDER)" in s.summary()


# Amounts whose three BCD bytes all differ, so that reading them in the wrong order shows.
MONEY = [((0x12, 0x34, 0x56), 123_456), ((0x01, 0x02, 0x03), 10_203), ((0x99, 0x00, 0x01), 990_001)]


@pytest.mark.parametrize(("digits", "amount"), MONEY)
def test_money_on_the_cartridge(game: Game, digits: tuple[int, int, int], amount: int) -> None:
    address = RAM["wPlayerMoney"].address
    for i, byte in enumerate(digits):
        game.pyboy.memory[address + i] = byte
    game.tick(2)  # the cartridge keeps what was written
    assert game.state.money == amount
    assert f"Money: ¥{amount}" in game.state.summary()


@pytest.mark.parametrize(("digits", "amount"), MONEY)
def test_money_in_reds_layout(digits: tuple[int, int, int], amount: int) -> None:
    # pret's wPlayerMoney: 3 bytes of BCD, the highest two digits in the first.
    symbols = parse_sym(reference_file("pokered.sym").read_text(encoding="utf-8"))
    wram = bytearray(WRAM_SIZE)
    start = symbols["wPlayerMoney"] - 0xC000
    wram[start : start + 3] = bytes(digits)
    assert read_game_state(bytes(wram)).money == amount


def test_dialog_lines_strip_border_and_arrows() -> None:
    tilemap = bytearray([0x7F] * 360)
    row14 = [0x7C, 0x92, 0xA7, 0xAE, 0xB6, 0x7F, 0x7F, 0xAC, 0xA4] + [0x7F] * 10 + [0x7C]
    tilemap[14 * 20 : 15 * 20] = bytes(row14)
    tilemap[16 * 20 + 1 : 16 * 20 + 4] = bytes([0xF6, 0xF7, 0xE7])
    tilemap[16 * 20 + 18] = 0xEE  # ▼
    assert dialog_lines(bytes(tilemap)) == ["Show me", "01!"]


def test_fast_work_ram_tracks_the_emulator(game: Game) -> None:
    ram = WorkRam(game.pyboy)
    assert ram.fast, "PyBoy's work-RAM buffer should be found on the pinned PyBoy"
    for move in ("up", "a", "right"):
        game.press(move)
        assert ram.snapshot() == wram_snapshot(game.pyboy)
    import io

    saved = io.BytesIO()
    game.pyboy.save_state(saved)
    game.press("left")
    saved.seek(0)
    game.pyboy.load_state(saved)  # a reset reloads state into the same buffer
    assert ram.snapshot() == wram_snapshot(game.pyboy)
    assert len(ram.snapshot()) == WRAM_SIZE


def test_read_game_state_refuses_a_wrong_snapshot() -> None:
    with pytest.raises(ValueError, match="8192 bytes"):
        read_game_state(bytes(100))


# --- battle text and HP in Pokémon Red's layout, work RAM built by hand from pret's source ---

_CODES = {ch: code for code, ch in GLYPHS.items() if len(ch) == 1}


def _red_wram(battle: int) -> tuple[bytearray, dict[str, int]]:
    symbols = parse_sym(reference_file("pokered.sym").read_text(encoding="utf-8"))
    wram = bytearray(WRAM_SIZE)
    tilemap = symbols["wTileMap"] - 0xC000
    wram[tilemap : tilemap + 360] = bytes([0x7F]) * 360  # ClearScreen
    wram[symbols["wIsInBattle"] - 0xC000] = battle
    return wram, symbols


def _put(wram: bytearray, symbols: dict[str, int], x: int, y: int, codes: bytes | str) -> None:
    data = bytes(_CODES[ch] for ch in codes) if isinstance(codes, str) else codes
    at = symbols["wTileMap"] - 0xC000 + y * 20 + x
    wram[at : at + len(data)] = data


def _box(wram: bytearray, symbols: dict[str, int], x1: int, y1: int, x2: int, y2: int) -> None:
    """home/text.asm's TextBoxBorder over the cells (x1,y1)-(x2,y2), inside blanked."""
    inner = x2 - x1 - 1
    _put(wram, symbols, x1, y1, "┌" + "─" * inner + "┐")
    for y in range(y1 + 1, y2):
        _put(wram, symbols, x1, y, "│" + " " * inner + "│")
    _put(wram, symbols, x1, y2, "└" + "─" * inner + "┘")


def _battle_menu(wram: bytearray, symbols: dict[str, int], cursor: tuple[int, int]) -> None:
    # DisplayBattleMenu: PrintEmptyString (an empty MESSAGE_BOX, 0,12-19,17), then
    # BATTLE_MENU_TEMPLATE (data/text_boxes.asm): a box 8,12-19,17, BattleMenuText at (10,14)
    _box(wram, symbols, 0, 12, 19, 17)
    _box(wram, symbols, 8, 12, 19, 17)
    _put(wram, symbols, 10, 14, "FIGHT")
    _put(wram, symbols, 16, 14, bytes([0xE1, 0xE2]))  # <PK><MN>
    _put(wram, symbols, 10, 16, "ITEM  RUN")
    _put(wram, symbols, *cursor, "▶")


def test_a_battle_message_in_reds_layout_is_dialog_without_font_loaded() -> None:
    wram, symbols = _red_wram(battle=1)
    _box(wram, symbols, 0, 12, 19, 17)  # PrintText's MESSAGE_BOX
    _put(wram, symbols, 1, 14, "Wild PIDGEY")
    _put(wram, symbols, 1, 16, "appeared!")
    _put(wram, symbols, 18, 16, "▼")
    s = read_game_state(bytes(wram))
    assert s.battle == "wild" and s.text_shown and s.text == ("Wild PIDGEY", "appeared!")
    assert "Text on screen: Wild PIDGEY / appeared!" in s.summary()
    assert feature(s, "text_shown") == 1.0
    wram[symbols["wIsInBattle"] - 0xC000] = 0  # the same box outside battle: wFontLoaded rules
    assert read_game_state(bytes(wram)).text == () and not read_game_state(bytes(wram)).text_shown


@pytest.mark.parametrize("font", [0, 1])
@pytest.mark.parametrize("cursor", [(9, 14), (9, 16), (15, 14), (15, 16)])
def test_reds_battle_menu_is_not_dialog(cursor: tuple[int, int], font: int) -> None:
    # the cursor cells are DisplayBattleMenu's: x 9 (FIGHT, ITEM) or 15 (PkMn, RUN), y 14 or 16;
    # in battle wFontLoaded is no evidence either way
    wram, symbols = _red_wram(battle=2)
    wram[symbols["wFontLoaded"] - 0xC000] = font
    _battle_menu(wram, symbols, cursor)
    s = read_game_state(bytes(wram))
    assert s.battle == "trainer" and not s.text_shown and s.text == ()
    assert feature(s, "text_shown") == 0.0


def test_reds_move_list_is_not_dialog() -> None:
    # MoveSelectionMenu over the battle menu: a box from (4,12) with '─' at (4,12) and '┘' at
    # (10,12), the moves single-spaced from (6,13), the cursor at x 5; PrintMenuItem's TYPE box
    # from (0,8) to (10,12).
    wram, symbols = _red_wram(battle=1)
    _battle_menu(wram, symbols, (9, 14))
    _box(wram, symbols, 4, 12, 19, 17)
    _put(wram, symbols, 4, 12, "─")
    _put(wram, symbols, 10, 12, "┘")
    for row, move in enumerate(("TACKLE", "TAIL WHIP", "-", "-")):
        _put(wram, symbols, 6, 13 + row, move)
    _box(wram, symbols, 0, 8, 10, 12)
    _put(wram, symbols, 1, 9, "TYPE/")
    wram[symbols["wFontLoaded"] - 0xC000] = 1
    for cursor_row in (13, 14, 16):
        _put(wram, symbols, 5, 13, " ")
        _put(wram, symbols, 5, 14, " ")
        _put(wram, symbols, 5, 16, " ")
        _put(wram, symbols, 5, cursor_row, "▶")
        s = read_game_state(bytes(wram))
        assert not s.text_shown and s.text == ()


def test_a_menu_cursor_on_the_text_rows_is_not_dialog() -> None:
    wram, symbols = _red_wram(battle=1)
    _box(wram, symbols, 0, 12, 19, 17)
    _put(wram, symbols, 1, 14, "▶FIGHT")
    assert read_game_state(bytes(wram)).text == ()
    _put(wram, symbols, 1, 14, "▷FIGHT")
    assert read_game_state(bytes(wram)).text == ()


def test_the_blacked_out_screen_has_no_text() -> None:
    # HandlePlayerBlackOut clears the screen before wIsInBattle becomes $FF
    wram, _symbols = _red_wram(battle=0xFF)
    s = read_game_state(bytes(wram))
    assert s.battle == "lost" and not s.text_shown and s.text == ()


def _two_mons(wram: bytearray, symbols: dict[str, int]) -> None:
    wram[symbols["wPartyCount"] - 0xC000] = 2
    species = symbols["wPartySpecies"] - 0xC000
    wram[species : species + 3] = b"\xb1\x24\xff"
    for slot, hp in ((0, 30), (1, 25)):
        base = slot * 0x2C - 0xC000
        wram[symbols["wPartyMon1HP"] + base + 1] = hp
        wram[symbols["wPartyMon1MaxHP"] + base + 1] = 31
        wram[symbols["wPartyMon1Level"] + base] = 9
    wram[symbols["wPlayerMonNumber"] - 0xC000] = 1  # the second POKéMON is out
    wram[symbols["wBattleMonHP"] - 0xC000 + 1] = 7  # hit since this turn began


HPS_BY_BATTLE = [(1, (30, 7)), (2, (30, 7)), (0, (30, 25)), (0xFF, (30, 25))]


@pytest.mark.parametrize(("battle", "hps"), HPS_BY_BATTLE)
def test_the_battling_slot_shows_the_battle_hp(battle: int, hps: tuple[int, int]) -> None:
    # ReadPlayerMonCurHPAndStatus (engine/battle/core.asm) copies wBattleMonHP to the slot
    # wPlayerMonNumber names only when a turn begins or a POKéMON faints; the battle screen shows
    # wBattleMonHP all along, and the party struct is right again once the battle is over.
    wram, symbols = _red_wram(battle)
    _two_mons(wram, symbols)
    s = read_game_state(bytes(wram))
    assert tuple(mon.hp for mon in s.party) == hps
    assert s.party[1].max_hp == 31 and s.party[1].level == 9 and s.party[1].species == 0x24
