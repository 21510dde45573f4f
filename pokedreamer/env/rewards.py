"""Reward terms read from RAM, weighted by RewardSettings and reported one by one.

The terms follow the strongest Pokémon Red RL work (exploration of tiles and maps, story events,
badges, levels, healing, the Pokédex, battles) and are built so that none can be farmed: progress
counters pay only for beating the episode's best so far, and healing pays only for HP that was
really missing.

``Rewards.step`` runs once per env step, whose whole budget for rewards is a few microseconds, so
it keeps the previous step's numbers as plain ints and compares before it counts anything.
"""

from __future__ import annotations

from pokedreamer.config import RewardSettings
from pokedreamer.env.state import GameState

TERMS: tuple[str, ...] = (
    "explore",
    "new_map",
    "event",
    "badge",
    "level",
    "heal",
    "seen",
    "caught",
    "battle_won",
    "battle_lost",
    "stuck",
)


class Rewards:
    """Turns the stream of GameStates of one episode into weighted reward terms."""

    def __init__(self, settings: RewardSettings) -> None:
        self._w_explore = float(settings.explore)
        self._w_new_map = float(settings.new_map)
        self._w_event = float(settings.event)
        self._w_badge = float(settings.badge)
        self._w_level = float(settings.level)
        self._w_heal = float(settings.heal)
        self._w_seen = float(settings.seen)
        self._w_caught = float(settings.caught)
        self._w_battle_won = float(settings.battle_won)
        self._w_battle_lost = float(settings.battle_lost)
        self._w_stuck = float(settings.stuck)
        self._stuck_steps = settings.stuck_steps
        self._tiles: set[tuple[int, int, int]] | None = None
        self._maps: set[int] = set()
        self._steps_since_new_tile = 0
        self._event_flags = b""
        self._max_events = 0
        self._badges = 0
        self._max_badges = 0
        self._max_seen = 0
        self._max_owned = 0
        self._max_levels = 0
        self._party_size = 0
        self._hp = 0
        self._max_hp = 0
        self._battle = "none"
        self._enemy_hp = 0
        self._blackout_pending = False

    @property
    def tiles_visited(self) -> int:
        """Distinct (map, x, y) tiles seen this episode, the reset state's included."""
        return len(self._tiles or ())

    @property
    def maps_visited(self) -> int:
        """Distinct maps seen this episode, the reset state's included."""
        return len(self._maps)

    def reset(self, state: GameState) -> None:
        """Starts an episode at ``state``; what it already has (tile, map, events) earns nothing."""
        self._tiles = {(state.map_id, state.x, state.y)}
        self._maps = {state.map_id}
        self._steps_since_new_tile = 0
        self._event_flags = state.event_flags
        self._max_events = state.event_count
        self._badges = state.badges
        self._max_badges = state.badge_count
        self._max_seen = state.pokedex_seen
        self._max_owned = state.pokedex_owned
        self._party_size = len(state.party)
        self._hp = state.party_hp
        self._max_hp = state.party_max_hp
        self._max_levels = state.level_sum
        self._battle = state.battle
        self._enemy_hp = state.enemy_hp
        self._blackout_pending = state.battle == "lost"

    def step(self, state: GameState) -> dict[str, float]:
        """The weighted value of every term in TERMS for the step that led to ``state``."""
        tiles = self._tiles
        if tiles is None:
            raise RuntimeError("Rewards.step called before Rewards.reset")
        explore = new_map = event = badge = level = heal = 0.0
        seen = caught = battle_won = battle_lost = stuck = 0.0

        map_id = state.map_id
        tile = (map_id, state.x, state.y)
        if tile in tiles:
            self._steps_since_new_tile += 1
            if self._steps_since_new_tile > self._stuck_steps:
                stuck = self._w_stuck
        else:
            tiles.add(tile)
            explore = self._w_explore
            self._steps_since_new_tile = 0
            # A new map always brings a new tile, so maps need checking only here.
            if map_id not in self._maps:
                self._maps.add(map_id)
                new_map = self._w_new_map

        # Progress pays only above the episode's best, so toggling a flag, depositing a POKéMON
        # or losing a level and winning it back earns nothing the second time.
        flags = state.event_flags
        if flags != self._event_flags:  # a 320-byte compare is far cheaper than a bit count
            self._event_flags = flags
            count = int.from_bytes(flags, "little").bit_count()
            if count > self._max_events:
                event = self._w_event * (count - self._max_events)
                self._max_events = count
        badges = state.badges
        if badges != self._badges:
            self._badges = badges
            count = badges.bit_count()
            if count > self._max_badges:
                badge = self._w_badge * (count - self._max_badges)
                self._max_badges = count
        count = state.pokedex_seen
        if count > self._max_seen:
            seen = self._w_seen * (count - self._max_seen)
            self._max_seen = count
        count = state.pokedex_owned
        if count > self._max_owned:
            caught = self._w_caught * (count - self._max_owned)
            self._max_owned = count

        # One pass over the party instead of GameState's three properties (three generators).
        party = state.party
        hp = max_hp = levels = 0
        for mon in party:
            hp += mon.hp
            max_hp += mon.max_hp
            levels += mon.level
        if levels > self._max_levels:
            level = self._w_level * (levels - self._max_levels)
            self._max_levels = levels

        battle = state.battle
        previous_battle = self._battle
        if battle != previous_battle:
            if battle == "lost":
                battle_lost = self._w_battle_lost
                self._blackout_pending = True
            elif battle == "none" and previous_battle != "lost" and self._enemy_hp == 0:
                # previous_battle is wild or trainer here, and it was its last state we saw.
                battle_won = self._w_battle_won
        elif battle == "none" and len(party) == self._party_size and max_hp:
            # Healing is missing HP restored: measuring the deficit rather than HP means a level-up
            # or an evolution outside battle (which raise HP and max HP alike) is not a heal.
            restored = (self._max_hp - self._hp) - (max_hp - hp)
            if restored > 0 and not self._blackout_pending:
                heal = self._w_heal * restored / max_hp
        if self._blackout_pending and battle == "none" and hp == max_hp:
            # The game restores the party after a blackout, maybe a few steps after the battle
            # ends (Pokémon Red warps first); that restore is no heal, so wait for full HP.
            self._blackout_pending = False

        self._battle = battle
        self._enemy_hp = state.enemy_hp
        self._party_size = len(party)
        self._hp = hp
        self._max_hp = max_hp
        return {
            "explore": explore,
            "new_map": new_map,
            "event": event,
            "badge": badge,
            "level": level,
            "heal": heal,
            "seen": seen,
            "caught": caught,
            "battle_won": battle_won,
            "battle_lost": battle_lost,
            "stuck": stuck,
        }
