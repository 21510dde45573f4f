"""Battles on the fixture cartridge behave like Pokémon Red's where the env reads them: no
wFontLoaded at any frame, messages on rows 14/16 that the GameState carries as dialog (and never
the menu's words), and the party's HP copied from wBattleMonHP only when a turn begins or a
POKéMON faints (pret's ReadPlayerMonCurHPAndStatus)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cartridge_driver import FRAMES, GUIDE_TO_ROUTE, HOLD, Game, get_starter

from pokedreamer.env.charmap import decode
from pokedreamer.env.ram import TILEMAP_WIDTH
from pokedreamer.env.state import GameState


@pytest.fixture
def game() -> Iterator[Game]:
    g = Game()
    get_starter(g)
    g.walk(*GUIDE_TO_ROUTE, "right", "right", "up")  # (7,6), just below the grass
    yield g
    g.close()


class FontWatch:
    """Presses buttons one frame at a time, noting every frame in battle with wFontLoaded set."""

    def __init__(self, game: Game) -> None:
        self.game = game
        self.battle_frames = 0
        self.font_frames: list[int] = []

    def press(self, button: str) -> None:
        pyboy = self.game.pyboy
        pyboy.button_press(button)
        for frame in range(FRAMES):
            if frame == HOLD:
                pyboy.button_release(button)
            self.game.tick(1)
            if self.game["wIsInBattle"]:
                self.battle_frames += 1
                if self.game["wFontLoaded"] & 1:
                    self.font_frames.append(self.game.frames)

    def find_wild_battle(self, limit: int = 100) -> None:
        for i in range(limit):
            self.press("up" if i % 2 == 0 else "down")
            if self.game["wIsInBattle"]:
                return
        raise AssertionError("no wild battle in the grass")


def menu_shown(game: Game) -> bool:
    """The battle menu's FIGHT is somewhere in the text box's rows, wherever the menu is drawn."""
    return "FIGHT" in decode(game.tilemap[12 * TILEMAP_WIDTH :], unknown=" ")


def cells(game: Game, x: int, y: int, n: int) -> str:
    start = y * TILEMAP_WIDTH + x
    return decode(game.tilemap[start : start + n], unknown="?")


def test_a_wild_battle_never_sets_font_loaded(game: Game) -> None:
    watch = FontWatch(game)
    watch.find_wild_battle()
    for _ in range(200):
        if not game["wIsInBattle"]:
            break
        watch.press("a")
    assert game["wIsInBattle"] == 0 and game["wEnemyMonHP"] == 0  # won, every text paged through
    assert watch.battle_frames > 100
    assert watch.font_frames == [], "wFontLoaded bit 0 set in battle (pret's battles never set it)"


def test_a_trainer_battle_never_sets_font_loaded() -> None:
    # the CAMPER's own speech is a person's text (DisplayTextIDInit sets wFontLoaded, and
    # CloseTextDisplay clears it as the speech ends); his battle sets it at no frame
    game = Game()
    try:
        get_starter(game)
        game.walk(*GUIDE_TO_ROUTE, "left", *(["up"] * 6), flee=True)  # route (4,7) -> gym door
        game.walk(*(["up"] * 5), "right", "right")  # gym mat (4,9) -> (5,4), facing the CAMPER
        game.press("a")
        assert game.text_shown and game.state.text == ("CAMPER: Not so", "fast! Battle me!")
        watch = FontWatch(game)
        watch.press("a")
        assert game["wIsInBattle"] == 2
        assert game.state.text == ("CAMPER wants", "to fight!") and game.state.text_shown
        for _ in range(200):
            if not game["wIsInBattle"]:
                break
            watch.press("a")
        assert game["wIsInBattle"] == 0 and watch.battle_frames > 100
        assert watch.font_frames == []
    finally:
        game.close()


def test_the_dialog_holds_battle_messages_and_never_menu_words(game: Game) -> None:
    watch = FontWatch(game)
    watch.find_wild_battle()
    first = game.state
    assert first.text in (("Wild RATTATA", "appeared!"), ("Wild PIDGEY", "appeared!"))
    assert first.text_shown and not game["wFontLoaded"] & 1
    states: list[GameState] = []
    menus = 0
    while game["wIsInBattle"]:
        s = game.state
        states.append(s)
        if menu_shown(game):
            menus += 1
            assert s.text == () and not s.text_shown, s.text
            assert "Text on screen" not in s.summary()
        else:
            assert s.text and s.text_shown, game.screen_text
        watch.press("a")
    assert menus >= 2  # one a turn; the enemy takes at least two TACKLEs
    words = " ".join(" ".join(s.text) for s in states)
    assert "FIGHT" not in words and "RUN" not in words
    assert any(s.text == ("Go! SQUIRTLE!",) for s in states)
    assert any(s.text == ("SQUIRTLE used", "TACKLE!") for s in states)
    fainted = [s for s in states if s.text[-1:] == ("fainted!",)]
    assert fainted and fainted[0].text[0].startswith("Enemy ")
    assert f"Text on screen: {fainted[0].text[0]} / fainted!" in fainted[0].summary()


def to_menu(game: Game) -> None:
    for _ in range(20):
        if menu_shown(game):
            return
        game.press("a")
    raise AssertionError(f"no battle menu: {game.screen_text}")


def test_the_battle_menu_is_reds_box_words_and_cursor_cells(game: Game) -> None:
    # pret's data/text_boxes.asm: BATTLE_MENU_TEMPLATE is a box from (8,12) to (19,17) with
    # "FIGHT" at (10,14) and "RUN" at (16,16); DisplayBattleMenu puts the cursor at x 9 or 15.
    FontWatch(game).find_wild_battle()
    to_menu(game)
    assert cells(game, 0, 12, 20) == "┌───────┌──────────┐"
    assert cells(game, 8, 14, 12) == "│▶FIGHT    │"
    assert cells(game, 8, 16, 12) == "│       RUN│"
    assert cells(game, 0, 17, 20) == "└───────└──────────┘"
    game.press("right")
    assert cells(game, 8, 14, 12) == "│ FIGHT    │"
    assert cells(game, 8, 16, 12) == "│      ▶RUN│"
    game.press("a")
    assert game.state.text == ("Got away safely!",) and game.state.text_shown
    game.press("a")
    assert game["wIsInBattle"] == 0


def test_the_party_hp_lags_the_battle_hp_within_a_turn(game: Game) -> None:
    watch = FontWatch(game)
    watch.find_wild_battle()
    to_menu(game)
    assert game["wBattleMonHP"] == game["wPartyMon1HP"] == 20
    game.press("a")  # FIGHT: SQUIRTLE moves first; no wild enemy here faints at the first TACKLE
    assert game.state.text == ("SQUIRTLE used", "TACKLE!")
    game.press("a")  # the enemy's TACKLE
    assert game.state.text[1:] == ("used TACKLE!",)
    hit = game["wBattleMonHP"]
    assert hit < 20 and game["wPartyMon1HP"] == 20, "the party struct is copied when a turn begins"
    assert game.state.party[0].hp == hit  # the GameState shows the HP on the battle screen
    game.press("a")  # the next turn begins: MainInBattleLoop copies, then shows the menu
    assert menu_shown(game)
    assert game["wPartyMon1HP"] == game["wBattleMonHP"] == hit == game.state.party[0].hp


def test_the_blackout_path(game: Game) -> None:
    game.pyboy.memory[0xD16D] = 1  # wPartyMon1HP's low byte: the next hit knocks SQUIRTLE out
    watch = FontWatch(game)
    watch.find_wild_battle()
    lag_seen = False
    told: list[tuple[str, ...]] = []
    for _ in range(40):
        if not game["wIsInBattle"]:
            break
        s = game.state
        if game["wIsInBattle"] == 1 and game["wBattleMonHP"] == 0:
            lag_seen = True  # the enemy's TACKLE is told; the faint has not been handled yet
            assert game["wPartyMon1HP"] == 1 and s.party[0].hp == 0
        if game["wIsInBattle"] == 0xFF:
            # copied before "fainted!", as RemoveFaintedPlayerMon does
            assert game["wPartyMon1HP"] == 0
            assert s.battle == "lost" and s.text_shown and s.party[0].hp == 0
            told.append(s.text)
        watch.press("a")
    assert lag_seen
    assert told == [
        ("SQUIRTLE", "fainted!"),
        ("RED is out of", "usable POKéMON!"),
        ("RED blacked out!",),
    ]
    assert watch.font_frames == []
    assert game["wIsInBattle"] == 0 and game["wPartyMon1HP"] == game["wPartyMon1MaxHP"]
