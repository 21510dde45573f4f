"""Reward terms: each term's edge cases on hand-made GameStates (farming pays nothing), then the
terms a real play of the fixture cartridge earns."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest
from cartridge_driver import (
    GUIDE_TO_ROUTE,
    MOM_TO_TOWN,
    TO_MOM,
    TOWN_TO_GUIDE,
    Game,
    find_wild_battle,
)

from pokedreamer.config import RewardSettings
from pokedreamer.env.rewards import TERMS, Rewards
from pokedreamer.env.state import BattleKind, GameState, PartyMon, read_game_state
from pokedreamer.env.wram import wram_snapshot

HOUSE, TOWN, ROUTE = 0x25, 0x00, 0x0C
SQUIRTLE = 0xB1
# Weights that are distinct powers of two, so a value shows which term paid and how many times.
WEIGHTS = RewardSettings(
    explore=1.0,
    new_map=2.0,
    event=4.0,
    badge=8.0,
    level=16.0,
    heal=32.0,
    seen=64.0,
    caught=128.0,
    battle_won=256.0,
    battle_lost=-512.0,
    stuck=-1024.0,
    stuck_steps=3,
)


def mon(hp: int = 20, max_hp: int = 20, level: int = 5) -> PartyMon:
    return PartyMon(species=SQUIRTLE, level=level, hp=hp, max_hp=max_hp)


def state(
    *,
    map_id: int = HOUSE,
    x: int = 3,
    y: int = 5,
    battle: BattleKind = "none",
    enemy_hp: int = 0,
    party: Iterable[PartyMon] = (),
    badges: int = 0,
    events: Iterable[int] = (),
    seen: int = 0,
    owned: int = 0,
) -> GameState:
    flags = bytearray(320)
    for index in events:
        flags[index >> 3] |= 1 << (index & 7)
    return GameState(
        map_id=map_id,
        map_name="",
        x=x,
        y=y,
        facing="down",
        battle=battle,
        enemy_hp=enemy_hp,
        enemy_max_hp=20 if battle in ("wild", "trainer") else 0,
        text_shown=False,
        text=(),
        party=tuple(party),
        badges=badges,
        money=3000,
        event_flags=bytes(flags),
        pokedex_owned=owned,
        pokedex_seen=seen,
        bag=(),
    )


def play(*states: GameState, settings: RewardSettings = WEIGHTS) -> list[dict[str, float]]:
    """Resets on the first state and steps through the rest; the terms of each step."""
    rewards = Rewards(settings)
    rewards.reset(states[0])
    return [rewards.step(s) for s in states[1:]]


def paid(terms: dict[str, float]) -> dict[str, float]:
    return {term: value for term, value in terms.items() if value}


# --- the contract ------------------------------------------------------------------------------


def test_every_term_every_step_zero_when_nothing_happens() -> None:
    (terms,) = play(state(), state())
    assert list(terms) == list(TERMS)
    assert all(value == 0.0 and isinstance(value, float) for value in terms.values())


def test_step_before_reset_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        Rewards(WEIGHTS).step(state())


def test_default_weights_apply() -> None:
    defaults = RewardSettings()
    (terms,) = play(state(), state(x=4, events=[1]), settings=defaults)
    assert paid(terms) == {"explore": defaults.explore, "event": defaults.event}


def test_reset_starts_a_new_episode() -> None:
    rewards = Rewards(WEIGHTS)
    rewards.reset(state())
    assert paid(rewards.step(state(x=4, events=[1], seen=1)))
    assert (rewards.tiles_visited, rewards.maps_visited) == (2, 1)
    rewards.reset(state())
    assert paid(rewards.step(state(x=4, events=[1], seen=1))) == {
        "explore": 1.0,
        "event": 4.0,
        "seen": 64.0,
    }


# --- exploring ------------------------------------------------------------------------------------


def test_explore_pays_each_tile_once_and_the_start_tile_never() -> None:
    steps = play(state(x=3), state(x=4), state(x=3), state(x=4), state(x=5))
    assert [paid(t) for t in steps] == [{"explore": 1.0}, {}, {}, {"explore": 1.0}]


def test_new_map_pays_each_map_once_and_the_start_map_never() -> None:
    steps = play(
        state(map_id=HOUSE, x=4, y=7),
        state(map_id=TOWN, x=4, y=7),  # the same x, y on another map is another tile
        state(map_id=HOUSE, x=4, y=7),
        state(map_id=TOWN, x=5, y=7),
        state(map_id=HOUSE, x=4, y=6),
        state(map_id=ROUTE, x=4, y=6),
    )
    assert [paid(t) for t in steps] == [
        {"explore": 1.0, "new_map": 2.0},
        {},
        {"explore": 1.0},
        {"explore": 1.0},
        {"explore": 1.0, "new_map": 2.0},
    ]


def test_stuck_starts_exactly_after_stuck_steps_and_a_new_tile_ends_it() -> None:
    still = [state(x=3)] * 5  # stuck_steps is 3
    steps = play(state(x=3), *still, state(x=4), *still)
    stuck_then = [0.0, 0.0, 0.0, -1024.0, -1024.0]
    assert [t["stuck"] for t in steps] == [*stuck_then, 0.0, *stuck_then]
    assert steps[5] == {**dict.fromkeys(TERMS, 0.0), "explore": 1.0}


def test_stuck_counts_revisits_too() -> None:
    back_and_forth = [state(x=4), state(x=3)] * 3
    steps = play(state(x=3), *back_and_forth)
    assert [t["stuck"] for t in steps] == [0.0, 0.0, 0.0, 0.0, -1024.0, -1024.0]


# --- progress: only beating the episode's best pays ---------------------------------------------


def test_event_pays_new_flags_and_toggling_pays_nothing() -> None:
    steps = play(
        state(events=[3]),  # already set at reset: nothing
        state(events=[3, 34]),
        state(events=[3]),  # cleared ...
        state(events=[3, 34]),  # ... and set again: nothing
        state(events=[3, 34, 40, 41]),  # two at once
        state(events=[3, 50, 51]),  # one cleared, one set: the count stands still
        state(events=[3, 50, 51, 60, 61]),
    )
    assert [t["event"] for t in steps] == [4.0, 0.0, 0.0, 8.0, 0.0, 4.0]


def test_badge_pays_new_badges_only() -> None:
    steps = play(
        state(), state(badges=0b1), state(badges=0), state(badges=0b1), state(badges=0b110)
    )
    assert [t["badge"] for t in steps] == [8.0, 0.0, 0.0, 8.0]


def test_pokedex_pays_new_species_only() -> None:
    steps = play(
        state(seen=1, owned=1),
        state(seen=2, owned=1),
        state(seen=4, owned=2),
        state(seen=3, owned=1),  # the game never clears these; a stray read costs nothing
        state(seen=4, owned=2),
    )
    assert [(t["seen"], t["caught"]) for t in steps] == [
        (64.0, 0.0),
        (128.0, 128.0),
        (0, 0),
        (0, 0),
    ]


def test_level_pays_the_sum_of_levels_above_its_best() -> None:
    steps = play(
        state(),
        state(party=[mon(level=5)]),  # the starter: 0 -> 5
        state(party=[mon(level=6)]),
        state(party=[mon(level=6), mon(level=3)]),  # a catch adds its level
        state(party=[mon(level=6)]),  # deposited ...
        state(party=[mon(level=6), mon(level=3)]),  # ... and withdrawn: nothing
        state(party=[mon(level=6), mon(level=4)]),
    )
    assert [t["level"] for t in steps] == [80.0, 16.0, 48.0, 0.0, 0.0, 16.0]


# --- healing -------------------------------------------------------------------------------------


def test_heal_pays_the_fraction_of_the_party_restored() -> None:
    party = [mon(hp=5, max_hp=20), mon(hp=20, max_hp=20)]  # 25 of 40
    healed = [mon(hp=20, max_hp=20), mon(hp=20, max_hp=20)]
    (terms,) = play(state(party=party), state(party=healed))
    assert paid(terms) == {"heal": 32.0 * 15 / 40}


def test_heal_in_steps_adds_up_and_hurting_costs_nothing() -> None:
    steps = play(
        state(party=[mon(hp=20)]),
        state(party=[mon(hp=10)]),
        state(party=[mon(hp=15)]),
        state(party=[mon(hp=20)]),
    )
    assert [t["heal"] for t in steps] == [0.0, 32.0 * 5 / 20, 32.0 * 5 / 20]


def test_no_heal_in_or_around_battle() -> None:
    hurt, healthy = [mon(hp=5)], [mon(hp=20)]
    steps = play(
        state(party=hurt),
        state(party=healthy, battle="wild", enemy_hp=20),  # none -> wild
        state(party=hurt, battle="wild", enemy_hp=20),
        state(party=healthy, battle="wild", enemy_hp=20),  # a potion in battle
        state(party=healthy, battle="none"),  # fled
    )
    assert [t["heal"] for t in steps] == [0.0] * 4


def test_getting_the_starter_is_no_heal() -> None:
    (terms,) = play(state(events=[]), state(party=[mon()], events=[34], seen=1, owned=1))
    assert paid(terms) == {"event": 4.0, "level": 80.0, "seen": 64.0, "caught": 128.0}


def test_a_changed_party_size_is_no_heal() -> None:
    steps = play(
        state(party=[mon(hp=5), mon(hp=20)]),
        state(party=[mon(hp=20)]),  # the hurt one deposited: 15 HP were missing, now none are
        state(party=[mon(hp=20), mon(hp=20)]),  # a healthy one withdrawn
    )
    assert [t["heal"] for t in steps] == [0.0, 0.0]


def test_a_level_up_outside_battle_is_no_heal() -> None:
    # A RARE CANDY or an evolution raises HP and max HP alike: nothing missing was restored.
    (terms,) = play(
        state(party=[mon(hp=10, max_hp=20, level=5)]),
        state(party=[mon(hp=13, max_hp=23, level=6)]),
    )
    assert paid(terms) == {"level": 16.0}


def test_a_blackout_restores_hp_but_is_no_heal() -> None:
    steps = play(
        state(party=[mon(hp=1)], battle="wild", enemy_hp=20),
        state(party=[mon(hp=0)], battle="lost", enemy_hp=20),
        state(party=[mon(hp=0)], battle="lost", enemy_hp=20),
        state(party=[mon(hp=20)], battle="none", map_id=HOUSE, x=5, y=2),  # restored at once
        state(party=[mon(hp=10)], battle="none", map_id=HOUSE, x=5, y=2),
        state(party=[mon(hp=20)], battle="none", map_id=HOUSE, x=5, y=2),  # a real heal pays
    )
    assert [t["battle_lost"] for t in steps] == [-512.0, 0.0, 0.0, 0.0, 0.0]
    assert [t["heal"] for t in steps] == [0.0, 0.0, 0.0, 0.0, 32.0 * 10 / 20]
    assert [t["battle_won"] for t in steps] == [0.0] * 5


def test_a_blackout_restore_steps_after_the_battle_ends_is_no_heal() -> None:
    # Pokémon Red fades out and warps before it restores the party, so the HP may come back some
    # steps after wIsInBattle is cleared.
    steps = play(
        state(party=[mon(hp=3)], battle="wild", enemy_hp=20),
        state(party=[mon(hp=0)], battle="lost", enemy_hp=20),
        state(party=[mon(hp=0)], battle="none"),
        state(party=[mon(hp=0)], battle="none", map_id=HOUSE, x=5, y=2),
        state(party=[mon(hp=20)], battle="none", map_id=HOUSE, x=5, y=2),
        state(party=[mon(hp=10)], battle="none", map_id=HOUSE, x=5, y=2),
        state(party=[mon(hp=20)], battle="none", map_id=HOUSE, x=5, y=2),
    )
    assert [t["heal"] for t in steps] == [0.0, 0.0, 0.0, 0.0, 0.0, 32.0 * 10 / 20]


# --- battles -------------------------------------------------------------------------------------


def test_battle_won_when_it_ends_with_the_enemy_at_zero() -> None:
    party = [mon()]
    steps = play(
        state(party=party),
        state(party=party, battle="wild", enemy_hp=20),
        state(party=party, battle="wild", enemy_hp=0),
        state(party=party, battle="wild", enemy_hp=0),  # "fainted!" and the EXP texts
        state(party=party, battle="none", enemy_hp=0),
        state(party=party, battle="none", enemy_hp=0),
    )
    assert [t["battle_won"] for t in steps] == [0.0, 0.0, 0.0, 256.0, 0.0]


def test_a_trainer_battle_is_won_once_after_its_last_enemy() -> None:
    party = [mon()]
    steps = play(
        state(party=party),
        state(party=party, battle="trainer", enemy_hp=20),
        state(party=party, battle="trainer", enemy_hp=0),  # the first enemy faints ...
        state(party=party, battle="trainer", enemy_hp=30),  # ... and the next comes out
        state(party=party, battle="trainer", enemy_hp=0),
        state(party=party, battle="none", enemy_hp=0),
    )
    assert [t["battle_won"] for t in steps] == [0.0, 0.0, 0.0, 0.0, 256.0]


def test_fleeing_or_catching_is_no_win() -> None:
    party = [mon()]
    steps = play(
        state(party=party),
        state(party=party, battle="wild", enemy_hp=20),
        state(party=party, battle="none", enemy_hp=20),  # got away (or the enemy was caught)
    )
    assert [paid(t) for t in steps] == [{}, {}]


def test_battle_lost_pays_once_per_blackout_and_never_a_win() -> None:
    party = [mon(hp=1)]
    steps = play(
        state(party=party, battle="wild", enemy_hp=0),
        state(party=[mon(hp=0)], battle="lost", enemy_hp=0),
        state(party=[mon(hp=0)], battle="lost", enemy_hp=0),
        state(party=[mon(hp=20)], battle="none", enemy_hp=0),
        state(party=[mon(hp=20)], battle="trainer", enemy_hp=20),
        state(party=[mon(hp=0)], battle="lost", enemy_hp=5),
    )
    assert [t["battle_lost"] for t in steps] == [-512.0, 0.0, 0.0, 0.0, -512.0]
    assert [t["battle_won"] for t in steps] == [0.0] * 5


# --- a real play of the fixture cartridge -----------------------------------------------------


class RewardedGame(Game):
    """The scripted player, with the rewards stepped after every press as the env does."""

    def __init__(self) -> None:
        super().__init__()
        self.rewards = Rewards(RewardSettings())
        self.rewards.reset(self.state)
        self.totals = dict.fromkeys(TERMS, 0.0)

    @property
    def state(self) -> GameState:
        return read_game_state(wram_snapshot(self.pyboy))

    def press(self, button: str) -> None:
        super().press(button)
        for term, value in self.rewards.step(self.state).items():
            self.totals[term] += value

    def earned(self) -> dict[str, float]:
        """The terms that paid since the last call."""
        totals, self.totals = self.totals, dict.fromkeys(TERMS, 0.0)
        return paid(totals)


@pytest.fixture
def game() -> Iterator[RewardedGame]:
    g = RewardedGame()
    yield g
    g.close()


def test_a_play_of_the_cartridge_earns_its_rewards(game: RewardedGame) -> None:
    w = RewardSettings()
    start = game.state

    # Out of the house to the GUIDE: tiles and one new map.
    game.walk(*TO_MOM[:-1], *MOM_TO_TOWN, *TOWN_TO_GUIDE)
    walked = game.earned()
    assert walked.keys() == {"explore", "new_map"}
    assert walked["new_map"] == w.new_map
    assert walked["explore"] == pytest.approx(w.explore * (game.rewards.tiles_visited - 1))

    # The starter: story event, Pokédex and levels, and no heal.
    game.press("a")
    game.read_all()
    got = game.state
    assert len(got.party) == 1
    assert game.earned() == {
        "event": w.event * (got.event_count - start.event_count),
        "seen": w.seen * (got.pokedex_seen - start.pokedex_seen),
        "caught": w.caught * (got.pokedex_owned - start.pokedex_owned),
        "level": w.level * got.level_sum,
    }
    assert got.event_count > start.event_count and got.pokedex_owned > start.pokedex_owned

    # A wild battle, fought and won.
    game.walk(*GUIDE_TO_ROUTE, "right", "right", "up")  # (7,6), just below the grass
    assert game.earned()["new_map"] == w.new_map
    find_wild_battle(game)
    game.earned()
    game.battle()
    fought = game.earned()
    assert fought["battle_won"] == w.battle_won
    assert "heal" not in fought and "battle_lost" not in fought
    hurt = game.state
    assert hurt.party_hp < hurt.party_max_hp

    # Home to MOM, who heals: paid for exactly the HP that was missing.
    x, y = game.pos[1:]
    game.walk(*(["left"] * (x - 4)), *(["down"] * (10 - y)), flee=True)
    game.walk(*["down"] * 4, "left", "left", "up", *["up"] * 7, "right")
    assert game.pos == (HOUSE, 5, 2)
    assert "heal" not in game.earned()
    game.press("right")
    game.press("a")
    game.read_all()
    healed = game.state
    assert healed.party_hp == healed.party_max_hp
    missing = hurt.party_max_hp - hurt.party_hp
    assert game.earned()["heal"] == pytest.approx(w.heal * missing / healed.party_max_hp)

    # Back to the grass with 1 HP: a blackout, which restores HP but is no heal.
    game.walk(*["down"] * 7, "right", "right", *["up"] * 5)
    assert game.pos == (ROUTE, 4, 9)
    game.walk("right", "right", "right", "up", "up", "up", flee=True)
    game.pyboy.memory[0xD16D] = 1  # wPartyMon1HP's low byte: the next hit knocks it out
    game.earned()
    find_wild_battle(game)
    while game["wIsInBattle"] != 0:
        game.press("a")
    assert game.pos == (HOUSE, 5, 2)
    after = game.state
    assert after.party_hp == after.party_max_hp
    lost = game.earned()
    assert lost["battle_lost"] == w.battle_lost
    assert "heal" not in lost and "battle_won" not in lost
