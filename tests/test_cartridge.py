"""The fixture cartridge: built reproducibly, boots in PyBoy, and writes Pokémon Red's RAM
variables with Pokémon Red's meaning — each proven by a scripted button sequence."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from cartridge_driver import (
    GUIDE_TO_ROUTE,
    MOM_TO_TOWN,
    ROUTE_TO_ITEM,
    TO_MOM,
    Game,
    addr,
    find_wild_battle,
    get_starter,
)

from pokedreamer.env.cartridge import ROM_PATH, SYM_PATH, TITLE
from pokedreamer.env.cartridge.build import DATA_LOC, build, missing_tools
from pokedreamer.env.ram import addresses_used
from pokedreamer.env.rom import header_checksum, read_title

HOUSE, TOWN, ROUTE, GYM = 0x25, 0x00, 0x0C, 0x36
DOWN, UP, LEFT, RIGHT = 0x00, 0x04, 0x08, 0x0C
EVENT_GOT_STARTER, EVENT_BEAT_PEWTER_GYM_TRAINER_0, EVENT_BEAT_BROCK = 34, 114, 119
SQUIRTLE, POTION = 0xB1, 0x14


@pytest.fixture
def game() -> Iterator[Game]:
    g = Game()
    yield g
    g.close()


def symbols() -> dict[str, int]:
    table = {}
    for line in SYM_PATH.read_text().splitlines():
        if line and not line.startswith(";"):
            where, name = line.split()
            table[name] = int(where.split(":")[1], 16)
    return table


# --- the ROM itself ---------------------------------------------------------------------------


@pytest.mark.skipif(bool(missing_tools()), reason="sdcc is not installed (CI installs it)")
def test_rebuild_is_byte_identical(tmp_path) -> None:
    rom = build(tmp_path)
    assert rom.read_bytes() == ROM_PATH.read_bytes()
    assert (tmp_path / "fixture.sym").read_text() == SYM_PATH.read_text()


def test_header_is_ours_and_valid() -> None:
    rom = ROM_PATH.read_bytes()
    assert len(rom) == 32 * 1024
    assert read_title(rom) == TITLE
    assert "POKEMON" not in read_title(rom)
    assert rom[0x104:0x134] == b"\xff" * 0x30, "the Nintendo logo area must stay empty"
    assert rom[0x147] == 0x09  # ROM+RAM+BATTERY: a battery save, no MBC
    assert rom[0x149] == 0x02  # one 8 KiB RAM bank
    assert header_checksum(rom) == rom[0x14D]


def test_own_variables_are_clear_of_pret_addresses() -> None:
    sym = symbols()
    start, end = sym["s__DATA"], sym["s__DATA"] + sym["l__DATA"] + sym.get("l__BSS", 0)
    assert start == DATA_LOC
    assert end <= 0xC100, "our variables must stay below wSpriteStateData1 ($C100)"
    assert not set(range(start, end)) & addresses_used()
    assert start <= sym["_rng_state"] < end


# --- boot, walking, doors ------------------------------------------------------------------------


def map_header(game: Game) -> tuple[int, int, int, list[tuple[int, ...]]]:
    """wCurMapHeight, wCurMapWidth, wCurMapConnections and the warp table, as Red keeps them."""
    count = game.byte(0xD3AE)
    warps = [tuple(game.byte(0xD3AF + 4 * i + j) for j in range(4)) for i in range(count)]
    return game.byte(0xD368), game.byte(0xD369), game.byte(0xD370), warps


def test_the_new_game_intro_is_red_like() -> None:
    g = Game(boot=False)
    try:
        g.tick(120)
        assert "DREAMER" in g.screen_text
        g.press("a")  # the title
        assert "▶NEW GAME" in g.screen_text and "CONTINUE" not in g.screen_text
        g.press("a")
        pages = []
        for _ in range(10):  # the speech: text in the box, wFontLoaded clear, the warp already set
            if "▶NEW NAME" in g.screen_text:
                break
            assert not g.text_shown and g.pos == (HOUSE, 3, 5) and g.byte(0xCD6B)
            assert map_header(g) == (0, 0, 0, [])
            pages.append(" ".join(g.text))
            g.press("a")
        assert pages[-1] == "First, what is your name?"
        g.press("down")
        g.press("a")  # RED, the first preset name
        assert " ".join(g.text) == "Right! So your name is RED!"
        for _ in range(10):
            if g.byte(0xD368):
                break
            assert not g.text_shown and g.byte(0xCD6B)
            g.press("a")
        assert g.pos == (HOUSE, 3, 5) and g.byte(0xCD6B) == 0 and not g.text_shown
        assert map_header(g) == (5, 5, 0, [(9, 4, 0, 0xFF), (9, 5, 0, 0xFF)])  # LAST_MAP
    finally:
        g.close()


def test_start_state(game: Game) -> None:
    assert game.pos == (HOUSE, 3, 5)
    assert game["wSpritePlayerStateData1FacingDirection"] == DOWN
    assert game["wPartyCount"] == 0 and game.byte(addr("wPartySpecies")) == 0xFF
    assert game["wPlayerMoney"] == 0x003000  # BCD $3000
    assert game["wNumBagItems"] == 0 and game.byte(addr("wBagItems")) == 0xFF
    assert game["wIsInBattle"] == 0 and not game.text_shown
    assert game["wObtainedBadges"] == 0
    # the player's name in pret's charmap, ended by the terminator
    assert [game.byte(addr("wPlayerName") + i) for i in range(4)] == [0x91, 0x84, 0x83, 0x50]


def test_one_tile_per_step_walls_block_and_a_blocked_press_turns(game: Game) -> None:
    game.press("up")
    assert game.pos == (HOUSE, 3, 4) and game["wSpritePlayerStateData1FacingDirection"] == UP
    game.press("up")  # a table at (3,3)
    assert game.pos == (HOUSE, 3, 4)
    game.walk("left", "left")
    assert game.pos == (HOUSE, 1, 4) and game["wSpritePlayerStateData1FacingDirection"] == LEFT
    game.press("left")  # the wall
    assert game.pos == (HOUSE, 1, 4)
    game.press("up")
    assert game.pos == (HOUSE, 1, 3)
    game.press("right")  # the table again: no step, but the player turns to face it
    assert game.pos == (HOUSE, 1, 3)
    assert game["wSpritePlayerStateData1FacingDirection"] == RIGHT


def test_doors_join_the_maps(game: Game) -> None:
    game.walk("right", "down", "down", "down", "down")  # (4,9) is the mat
    assert game.pos == (TOWN, 2, 4)
    game.walk("up")  # the house's door: onto the house's mat
    assert game.pos == (HOUSE, 4, 9)


def test_each_map_loads_its_header_at_reds_addresses(game: Game) -> None:
    get_starter(game)
    assert map_header(game) == (5, 5, 0x08, [(3, 2, 0, HOUSE)])  # the route joins to the north
    assert game.byte(0xD371) == ROUTE  # wNorthConnectionHeader's map
    game.walk(*GUIDE_TO_ROUTE, flee=True)
    assert map_header(game) == (5, 5, 0x04, [(1, 4, 0, GYM)])  # the town joins to the south
    assert game.byte(0xD37C) == TOWN and game.byte(0xD371) == 0


def test_route_is_guarded_until_the_player_has_a_pokemon(game: Game) -> None:
    game.walk(*TO_MOM[:-1], *MOM_TO_TOWN, "right", "right", "up", "up", "up", "up")
    assert game.pos == (TOWN, 4, 0)
    game.press("up")
    assert game.text_shown and game.pos == (TOWN, 4, 0)
    assert "Wait, RED!" in " ".join(game.text)
    game.read_all()
    assert game.pos == (TOWN, 4, 0)


# --- text --------------------------------------------------------------------------------------


def test_multi_page_dialog_sets_font_loaded_and_advances_with_a_and_b(game: Game) -> None:
    game.walk(*TO_MOM)
    assert game["wSpritePlayerStateData1FacingDirection"] == RIGHT and not game.text_shown
    game.press("a")
    assert game.text_shown
    assert game.text == ["MOM: Good morning,", "RED!"]
    # the text sits in rows 12-17, drawn with pret's box border and charmap
    tiles = game.tilemap
    assert tiles[12 * 20] == 0x79 and tiles[12 * 20 + 19] == 0x7B and tiles[17 * 20] == 0x7D
    assert tiles[14 * 20 + 1] == 0x8C  # "M" at (1,14)
    assert tiles[16 * 20 + 18] == 0xEE  # ▼: another page follows
    game.press("b")
    assert game.text == ["The GUIDE is in", "town. Go see him."]
    game.press("a")
    assert game.text == ["Come home to rest", "whenever you like."]
    game.press("b")
    assert not game.text_shown
    assert game.tilemap[14 * 20 + 1] != 0x8C  # the map is drawn back


# --- the quest -----------------------------------------------------------------------------------


def test_guide_gives_the_starter(game: Game) -> None:
    pages = get_starter(game)
    assert pages[-1] == "RED got SQUIRTLE!"
    assert game["wPartyCount"] == 1
    assert [game.byte(addr("wPartySpecies") + i) for i in range(2)] == [SQUIRTLE, 0xFF]
    assert game.byte(addr("wPartyMon1")) == SQUIRTLE
    assert game["wPartyMon1Level"] == 5
    assert game["wPartyMon1HP"] == game["wPartyMon1MaxHP"] == 20
    assert game["wPartyMon1Exp"] == 125
    assert game.event(EVENT_GOT_STARTER) and game.byte(0xD74B) == 0b100
    assert game.byte(addr("wPokedexOwned")) >> 6 & 1  # #007 SQUIRTLE
    game.walk(*GUIDE_TO_ROUTE)
    assert game.pos == (ROUTE, 5, 7)


def test_item_goes_into_the_bag(game: Game) -> None:
    get_starter(game)
    game.walk(*GUIDE_TO_ROUTE, *ROUTE_TO_ITEM)
    assert game.pos == (ROUTE, 7, 6)
    game.press("a")
    assert game.read_all() == ["RED found POTION!"]
    assert game["wNumBagItems"] == 1
    assert [game.byte(addr("wBagItems") + i) for i in range(3)] == [POTION, 1, 0xFF]
    game.walk("right")  # the ball is gone, so its cell can be walked on
    assert game.pos == (ROUTE, 8, 6)


def test_wild_battle_fight_and_win(game: Game) -> None:
    get_starter(game)
    game.walk(*GUIDE_TO_ROUTE, "right", "right", "up")  # (7,6), just below the grass
    find_wild_battle(game)
    assert game["wIsInBattle"] == 1 and not game.text_shown  # Red's battles leave wFontLoaded clear
    assert game.text[0].startswith("Wild ")
    species = game["wEnemyMonSpecies"]
    assert species in (0xA5, 0x24)  # RATTATA or PIDGEY
    seen_bit = {0xA5: 19, 0x24: 16}[species] - 1
    assert game.byte(addr("wPokedexSeen") + seen_bit // 8) >> (seen_bit % 8) & 1
    assert game["wEnemyMonHP"] == game["wEnemyMonMaxHP"] > 0
    assert game["wBattleMonHP"] == game["wPartyMon1HP"] == 20
    texts = game.battle()
    assert any("FIGHT" in t and "RUN" in t for t in texts)
    assert any(t.endswith("fainted!") and t.startswith("Enemy") for t in texts)
    assert game["wIsInBattle"] == 0 and not game.text_shown
    assert game["wEnemyMonHP"] == 0
    assert game["wPartyMon1HP"] == game["wBattleMonHP"] < 20  # kept in step, and it was hit
    assert game["wPartyMon1Exp"] > 125


def test_running_from_a_wild_battle(game: Game) -> None:
    get_starter(game)
    game.walk(*GUIDE_TO_ROUTE, "right", "right", "up")
    find_wild_battle(game)
    while "FIGHT" not in " ".join(game.text):
        game.press("a")
    game.press("right")  # cursor to RUN
    assert game.tilemap[16 * 20 + 15] == 0xED  # Red's cursor cell for RUN
    game.press("a")
    assert game.text == ["Got away safely!"]
    game.press("a")
    assert game["wIsInBattle"] == 0 and not game.text_shown
    assert game.pos == (ROUTE, 7, 5) or game.pos == (ROUTE, 7, 4)


def test_losing_a_battle_blacks_out_to_the_heal_spot(game: Game) -> None:
    get_starter(game)
    game.walk(*GUIDE_TO_ROUTE, "right", "right", "up")
    game.pyboy.memory[addr("wPartyMon1HP") + 1] = 1  # one HP left: the next hit knocks it out
    find_wild_battle(game)
    assert game["wBattleMonHP"] == 1
    told: list[str] = []
    for _ in range(40):
        if game["wIsInBattle"] != 1:
            break
        game.press("a")
    assert game["wIsInBattle"] == 0xFF, "wIsInBattle is $FF while the loss is told"
    while game["wIsInBattle"] == 0xFF:
        told.append(" ".join(game.text))
        game.press("a")
    assert told == ["SQUIRTLE fainted!", "RED is out of usable POKéMON!", "RED blacked out!"]
    assert game["wIsInBattle"] == 0 and not game.text_shown
    assert game.pos == (HOUSE, 5, 2)  # in front of MOM
    assert game["wSpritePlayerStateData1FacingDirection"] == RIGHT
    assert game["wPartyMon1HP"] == game["wPartyMon1MaxHP"]


def test_heal_spot_restores_hp(game: Game) -> None:
    get_starter(game)
    game.pyboy.memory[addr("wPartyMon1HP") + 1] = 3
    game.walk("left", "down", "down", "left", "left", "left", "up")  # town (6,2) -> house door
    assert game.pos == (HOUSE, 4, 9)
    game.walk(*["up"] * 7, "right", "right")  # -> (5,2) facing MOM
    game.press("a")
    assert "healed" in " ".join(game.read_all())
    assert game["wPartyMon1HP"] == game["wPartyMon1MaxHP"] == 20


def test_the_whole_quest_earns_the_badge(game: Game) -> None:
    """Leave the house, get a POKéMON from the guide, win in the grass, heal, beat the gym."""
    get_starter(game)
    game.walk(*GUIDE_TO_ROUTE, "right", "right", "up")
    while game["wPartyMon1Level"] < 6:
        find_wild_battle(game)
        texts = game.battle()
        assert game.pos[0] == ROUTE, f"lost a wild battle: {texts[-3:]}"
    assert "grew to level 6!" in " ".join(texts)
    assert game["wPartyMon1MaxHP"] == 22
    # heal at home: route -> town -> house
    x, y = game.pos[1:]
    game.walk(*(["left"] * (x - 4)), *(["down"] * (10 - y)), flee=True)
    assert game.pos == (TOWN, 4, 0)
    game.walk(*["down"] * 4, "left", "left", "up", *["up"] * 7, "right")
    assert game.pos == (HOUSE, 5, 2)
    game.press("right")
    game.press("a")
    game.read_all()
    assert game["wPartyMon1HP"] == 22
    # to the gym: house -> town -> route -> gym door at (4,1)
    game.walk(*["down"] * 7)
    assert game.pos == (TOWN, 2, 4)
    game.walk("right", "right", "up", "up", "up", "up", "up")
    assert game.pos == (ROUTE, 4, 9)
    game.walk(*["up"] * 8, flee=True)
    assert game.pos == (GYM, 4, 9)
    # the gym trainer: a trainer battle
    game.walk(*["up"] * 5, "right", "right")
    assert game.pos == (GYM, 5, 4)
    money = game["wPlayerMoney"]
    game.press("a")
    assert game.text == ["CAMPER: Not so", "fast! Battle me!"]
    game.press("a")
    assert game["wIsInBattle"] == 2
    texts = game.battle()
    assert game.pos == (GYM, 5, 4), f"lost to the CAMPER: {texts[-3:]}"
    assert "RED got ¥120 for winning!" in texts
    assert game.event(EVENT_BEAT_PEWTER_GYM_TRAINER_0)
    assert game["wPlayerMoney"] == money + 0x120  # BCD: $3000 + $120 = $3120
    # heal again, then the leader
    game.walk("left", *["down"] * 5)  # down onto the mat, down still held: out
    assert game.pos == (ROUTE, 4, 2)
    game.walk(*(["down"] * 8), flee=True)
    assert game.pos == (TOWN, 4, 0)
    game.walk(*["down"] * 4, "left", "left", "up", *["up"] * 7, "right")
    game.press("right")
    game.press("a")
    game.read_all()
    game.walk(*["down"] * 7, "right", "right")
    game.walk(*(["up"] * 13), flee=True)
    assert game.pos == (GYM, 4, 9)
    game.walk(*["up"] * 7)
    assert game.pos == (GYM, 4, 2)
    game.press("a")
    game.press("a")
    game.press("a")
    assert game["wIsInBattle"] == 2 and game["wEnemyMonSpecies"] == 0x22  # ONIX
    texts = game.battle()
    assert game.pos == (GYM, 4, 2), f"lost to the LEADER: {texts[-3:]}"
    assert "RED received the BOULDERBADGE!" in texts
    assert game["wObtainedBadges"] == 0b1
    assert game.event(EVENT_BEAT_BROCK) and game.byte(0xD755) >> 7 & 1
    assert game["wPlayerMoney"] == money + 0x820


def test_same_inputs_same_game() -> None:
    snapshots = []
    for _ in range(2):
        g = Game()
        try:
            get_starter(g)
            g.walk(*GUIDE_TO_ROUTE, "right", "right", "up")
            find_wild_battle(g)
            g.battle()
            snapshots.append(bytes(g.pyboy.memory[0xC000:0xE000]))
        finally:
            g.close()
    assert snapshots[0] == snapshots[1]


def test_sdcc_is_on_path_in_ci() -> None:
    """CI installs sdcc so the byte-identical rebuild really runs there."""
    import os

    if os.environ.get("CI"):
        assert shutil.which("sdcc"), "CI must install sdcc (see .ci/run)"
