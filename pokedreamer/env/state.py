"""GameState: what the agent knows of the game after a step, read from RAM in one pass.

The same reader serves Pokémon Red and the fixture cartridge (both keep pret's variables).
It renders itself for the planner (``summary``) and for the world model (``vector``).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict

from pokedreamer.env.events import event_index
from pokedreamer.env.items import item_name
from pokedreamer.env.maps import map_name
from pokedreamer.env.ram import PARTY_MON_SIZE, RAM
from pokedreamer.env.species import species_name
from pokedreamer.env.text import read_battle_message, read_dialog
from pokedreamer.env.wram import WRAM_SIZE, WRAM_START

Facing = Literal["down", "up", "left", "right"]
BattleKind = Literal["none", "wild", "trainer", "lost"]

FACINGS: dict[int, Facing] = {0x00: "down", 0x04: "up", 0x08: "left", 0x0C: "right"}
BATTLE_KINDS: dict[int, BattleKind] = {0x00: "none", 0x01: "wild", 0x02: "trainer", 0xFF: "lost"}
BADGES = ("BOULDER", "CASCADE", "THUNDER", "RAINBOW", "SOUL", "MARSH", "VOLCANO", "EARTH")
BATTLE_ORDER: tuple[BattleKind, ...] = tuple(BATTLE_KINDS.values())
"""wIsInBattle's kinds as indexes 0 none, 1 wild, 2 trainer, 3 lost: the order of ``vector``'s
battle_* fields, of the world model's battle head's classes and of a StateView's ``battle``."""
MAX_PARTY = 6
DEX_SIZE = 151

# Offsets into work RAM ($C000-$DFFF), which holds every variable the GameState needs.
_A = {name: var.address - WRAM_START for name, var in RAM.items()}
assert all(a >= 0 and a + RAM[n].width <= WRAM_SIZE for n, a in _A.items())
_EVENTS = slice(_A["wEventFlags"], _A["wEventFlags"] + RAM["wEventFlags"].width)
_OWNED = slice(_A["wPokedexOwned"], _A["wPokedexOwned"] + RAM["wPokedexOwned"].width)
_SEEN = slice(_A["wPokedexSeen"], _A["wPokedexSeen"] + RAM["wPokedexSeen"].width)
_BAG_CAPACITY = 20


def badge_bit(badge: str) -> int:
    """A badge's bit in wObtainedBadges by name, case and a "BADGE" suffix forgiven ("Boulder",
    "BOULDERBADGE"); ValueError for a name that is not a badge."""
    return BADGES.index(badge.upper().removesuffix("BADGE"))


class PartyMon(NamedTuple):
    """One party POKéMON. A NamedTuple rather than a model: up to six are built every step."""

    species: int
    level: int
    hp: int
    max_hp: int

    @property
    def name(self) -> str:
        return species_name(self.species)


class GameState(BaseModel):
    """One consistent reading of the game's RAM.

    ``text_shown`` means "a message is up" everywhere: outside battle, a person's or a sign's
    text box (``wFontLoaded`` bit 0); in battle (``wIsInBattle`` non-zero), where Pokémon Red
    never sets that bit, a battle message on rows 14/16 of the text box — not the FIGHT menu or
    the move list drawn there. ``text`` holds that message's lines, and is () while a battle menu
    shows.

    In a battle (wild or trainer) the battling party slot's ``hp`` is ``wBattleMonHP``, the HP the
    player sees on the battle screen: the game copies it into the party struct only when a turn
    begins and when a POKéMON faints, so the party struct lags a hit behind in between.
    """

    model_config = ConfigDict(frozen=True)

    map_id: int
    map_name: str
    x: int
    y: int
    facing: Facing
    battle: BattleKind
    enemy_hp: int
    enemy_max_hp: int
    text_shown: bool
    text: tuple[str, ...]
    party: tuple[PartyMon, ...]
    badges: int
    money: int
    event_flags: bytes
    pokedex_owned: int
    pokedex_seen: int
    bag: tuple[tuple[int, int], ...]

    @property
    def badge_count(self) -> int:
        return self.badges.bit_count()

    @property
    def event_count(self) -> int:
        return int.from_bytes(self.event_flags, "little").bit_count()

    def has_event(self, event: str | int) -> bool:
        """Whether a story event flag is set, by pret name (EVENT_BEAT_BROCK) or index."""
        index = event_index(event) if isinstance(event, str) else event
        return bool(self.event_flags[index >> 3] >> (index & 7) & 1)

    def has_badge(self, badge: int | str) -> bool:
        bit = badge_bit(badge) if isinstance(badge, str) else badge
        return bool(self.badges >> bit & 1)

    @property
    def party_hp(self) -> int:
        return sum(mon.hp for mon in self.party)

    @property
    def party_max_hp(self) -> int:
        return sum(mon.max_hp for mon in self.party)

    @property
    def hp_fraction(self) -> float:
        """The party's HP over its max HP; 0 with no party."""
        total = self.party_max_hp
        return self.party_hp / total if total else 0.0

    @property
    def level_sum(self) -> int:
        return sum(mon.level for mon in self.party)

    @property
    def tile(self) -> tuple[int, int, int]:
        return self.map_id, self.x, self.y

    def summary(self) -> str:
        """A compact text for the planner's prompt."""
        lines = [
            f"Location: {self.map_name} (map ${self.map_id:02X}) at x={self.x}, y={self.y}, "
            f"facing {self.facing}"
        ]
        if self.battle == "none":
            lines.append("Battle: none")
        elif self.battle == "lost":
            lines.append("Battle: lost (blacking out)")
        else:
            lines.append(f"Battle: {self.battle}, enemy HP {self.enemy_hp}/{self.enemy_max_hp}")
        party = ", ".join(f"{m.name} L{m.level} {m.hp}/{m.max_hp} HP" for m in self.party)
        lines.append(f"Party: {party or 'none'}")
        earned = [BADGES[i] for i in range(8) if self.badges >> i & 1]
        lines.append(f"Badges: {len(earned)}/8" + (f" ({', '.join(earned)})" if earned else ""))
        lines.append(f"Money: ¥{self.money}")
        bag = ", ".join(f"{item_name(item)} x{qty}" for item, qty in self.bag)
        lines.append(f"Bag: {bag or 'empty'}")
        lines.append(f"Pokédex: {self.pokedex_owned} owned, {self.pokedex_seen} seen")
        lines.append(f"Story event flags set: {self.event_count}")
        if self.text_shown:
            lines.append("Text on screen: " + (" / ".join(self.text) if self.text else "(menu)"))
        return "\n".join(lines)

    def vector(self) -> np.ndarray:
        """Fixed-length float32 features for the world model, in VECTOR_FIELDS order, each in
        [0, 1]. Plain arithmetic and look-up tables: it runs on every env step."""
        hp = max_hp = 0
        for mon in self.party:
            hp += mon.hp
            max_hp += mon.max_hp
        lead = self.party[0] if self.party else None
        enemy_max = self.enemy_max_hp if self.battle != "none" else 0
        return np.array(
            (
                self.map_id / 255.0,
                self.x / 255.0,
                self.y / 255.0,
                *_FACING_ONE_HOT[self.facing],
                *_BATTLE_ONE_HOT[self.battle],
                1.0 if self.text_shown else 0.0,
                len(self.party) / MAX_PARTY,  # the reader keeps at most six
                min(hp / max_hp, 1.0) if max_hp else 0.0,
                lead.level / 255.0 if lead else 0.0,
                min(lead.hp / lead.max_hp, 1.0) if lead and lead.max_hp else 0.0,
                min(self.enemy_hp / enemy_max, 1.0) if enemy_max else 0.0,
                *_BADGE_BITS[self.badges],
                min(self.money / 999_999.0, 1.0),  # garbage BCD can exceed 999999
                min(self.event_count / 256.0, 1.0),
                self.pokedex_owned / 152.0,  # 19 bytes hold at most 152 bits
                self.pokedex_seen / 152.0,
                len(self.bag) / _BAG_CAPACITY,
            ),
            dtype=np.float32,
        )


def _one_hot(keys: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    return {k: tuple(float(k == other) for other in keys) for k in keys}


_FACING_ONE_HOT = _one_hot(tuple(FACINGS.values()))
_BATTLE_ONE_HOT = _one_hot(BATTLE_ORDER)
_BADGE_BITS = tuple(tuple(float(b >> i & 1) for i in range(8)) for b in range(256))

VECTOR_FIELDS: tuple[str, ...] = (
    "map_id", "x", "y",
    *(f"facing_{f}" for f in FACINGS.values()),
    *(f"battle_{b}" for b in BATTLE_ORDER),
    "text_shown", "party_size", "hp_fraction", "lead_level", "lead_hp_fraction",
    "enemy_hp_fraction",
    *(f"badge_{b.lower()}" for b in BADGES),
    "money", "event_count", "pokedex_owned", "pokedex_seen", "bag_items",
)  # fmt: skip
VECTOR_SIZE = len(VECTOR_FIELDS)


def _bcd(*digits: int) -> int:
    value = 0
    for byte in digits:
        value = value * 100 + (byte >> 4) * 10 + (byte & 0x0F)
    return value


# Offsets as plain ints: read_game_state runs on every env step.
_PARTY_COUNT = _A["wPartyCount"]
_PARTY_SPECIES = _A["wPartySpecies"]
_MON_HP, _MON_LEVEL, _MON_MAX_HP = _A["wPartyMon1HP"], _A["wPartyMon1Level"], _A["wPartyMon1MaxHP"]
_NUM_BAG_ITEMS, _BAG_ITEMS = _A["wNumBagItems"], _A["wBagItems"]
_FONT, _MAP, _X, _Y = _A["wFontLoaded"], _A["wCurMap"], _A["wXCoord"], _A["wYCoord"]
_FACING, _BATTLE = _A["wSpritePlayerStateData1FacingDirection"], _A["wIsInBattle"]
_ENEMY_HP, _ENEMY_MAX_HP = _A["wEnemyMonHP"], _A["wEnemyMonMaxHP"]
_BADGES, _MONEY = _A["wObtainedBadges"], _A["wPlayerMoney"]
_BATTLE_MON_HP = _A["wBattleMonHP"]
_PLAYER_MON_NUMBER = _A["wPlayerMonNumber"]  # the party slot in battle


def read_game_state(wram: bytes) -> GameState:
    """Reads the GameState from a snapshot of work RAM ($C000-$DFFF, index = address - $C000),
    as ``WorkRam.snapshot()`` or ``wram_snapshot(pyboy)`` give it."""
    m = wram
    if len(m) != WRAM_SIZE:
        raise ValueError(f"expected {WRAM_SIZE} bytes of work RAM, got {len(m)}")
    count = m[_PARTY_COUNT]
    party = []
    if count <= MAX_PARTY:  # garbage before the game sets it (e.g. in the intro) reads as none
        for i in range(count):
            base = i * PARTY_MON_SIZE
            hp, max_hp = _MON_HP + base, _MON_MAX_HP + base
            party.append(
                PartyMon(
                    m[_PARTY_SPECIES + i],
                    m[_MON_LEVEL + base],
                    m[hp] << 8 | m[hp + 1],
                    m[max_hp] << 8 | m[max_hp + 1],
                )
            )
    items = m[_NUM_BAG_ITEMS]
    bag = ()
    if 0 < items <= _BAG_CAPACITY:
        raw = m[_BAG_ITEMS : _BAG_ITEMS + 2 * items]
        bag = tuple(zip(raw[::2], raw[1::2], strict=True))
    battle = BATTLE_KINDS.get(m[_BATTLE], "none")
    if battle != "none":
        text = read_battle_message(m)
        text_shown = bool(text)
        slot = m[_PLAYER_MON_NUMBER]
        if battle != "lost" and slot < len(party):
            mon = party[slot]
            live = m[_BATTLE_MON_HP] << 8 | m[_BATTLE_MON_HP + 1]
            party[slot] = PartyMon(mon.species, mon.level, live, mon.max_hp)
    else:
        text_shown = bool(m[_FONT] & 1)
        text = read_dialog(m) if text_shown else ()
    map_id = m[_MAP]
    return GameState(
        map_id=map_id,
        map_name=map_name(map_id),
        x=m[_X],
        y=m[_Y],
        facing=FACINGS.get(m[_FACING] & 0x0C, "down"),
        battle=battle,
        enemy_hp=m[_ENEMY_HP] << 8 | m[_ENEMY_HP + 1],
        enemy_max_hp=m[_ENEMY_MAX_HP] << 8 | m[_ENEMY_MAX_HP + 1],
        text_shown=text_shown,
        text=text,
        party=tuple(party),
        badges=m[_BADGES],
        money=_bcd(m[_MONEY], m[_MONEY + 1], m[_MONEY + 2]),
        event_flags=m[_EVENTS],
        pokedex_owned=int.from_bytes(m[_OWNED], "little").bit_count(),
        pokedex_seen=int.from_bytes(m[_SEEN], "little").bit_count(),
        bag=bag,
    )
