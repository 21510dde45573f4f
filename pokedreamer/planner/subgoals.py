"""The closed Subgoal schema — what System 2 may ask of System 1 — and the shaping it implies.

Everything the LLM answers is parsed into ``Plan`` or rejected, so the schema is the whole of the
planner's vocabulary. Each kind defines ``done(view, facts)`` and a potential ``phi(view, facts)``
in [0, 1], higher nearer completion. ``shaping`` turns them into a reward:
``d*phi(s') - phi(s)`` under the returns' own discount d, with phi of a done state 0, which
telescopes and so cannot change which policy is optimal, plus a bonus on the step the subgoal
becomes done, which does: it is the subgoal's own reward.

The same functions run on the real game (a ``StateView`` of a GameState, Python numbers) and in
imagination (a ``StateView`` of the world model's predicted state, a batch of torch tensors):
they use only arithmetic, comparisons and ``&``, which both support, and never import torch.
A predicted state says only what the world model's state heads predict: no text and no event
flags, so a subgoal that needs them neither pays nor completes in imagination, save a text box
shown on a cell from which the run has read those words before (``ReadText``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields
from itertools import accumulate
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from pokedreamer.env.events import NUM_EVENT_FLAGS, event_set
from pokedreamer.env.state import BADGES, BATTLE_ORDER, GameState
from pokedreamer.planner.facts import cell_key

if TYPE_CHECKING:
    from pokedreamer.planner.facts import GameFacts

BadgeName = Literal["BOULDER", "CASCADE", "THUNDER", "RAINBOW", "SOUL", "MARSH", "VOLCANO", "EARTH"]

MAX_SUBGOALS = 8
MAX_GOAL_CHARS = 200
MAX_RATIONALE_CHARS = 600
MAX_CONTAINS_CHARS = 40

# A number, or a numpy array / torch tensor of a batch of them: the shaping code is written so
# that one body serves all three, and the planner cannot name torch's types.
Value = Any


# ----------------------------------------------------------------------------------------------
# The schema


def _llm_schema(schema: dict[str, Any]) -> None:
    """Keeps the JSON schema inside OpenAI's strict structured-output subset: every property
    required, no ``default``, no string length keywords (all refused there), one-value enums
    instead of ``const``. Python still applies the defaults and limits when it validates; the
    descriptions tell the model the limits."""
    properties = schema.get("properties", {})
    for prop in properties.values():
        for keyword in ("default", "minLength", "maxLength"):
            prop.pop(keyword, None)
        if "const" in prop:
            prop["enum"] = [prop.pop("const")]
    schema["required"] = list(properties)


def _pret_name(name: str) -> str:
    # Pret constants are upper-case with underscores; "pallet town" means PALLET_TOWN, and every
    # later comparison and log line then sees one spelling.
    return "_".join(name.upper().split())


PretName = Annotated[str, AfterValidator(_pret_name)]

_CONFIG = ConfigDict(
    extra="forbid", frozen=True, str_strip_whitespace=True, json_schema_extra=_llm_schema
)


class GoToMap(BaseModel):
    """Reach a map (any tile of it)."""

    model_config = _CONFIG

    kind: Literal["go_to_map"] = Field("go_to_map", description="Always 'go_to_map'.")
    map: PretName = Field(
        description="The map to reach, by its pret map constant name, e.g. 'PALLET_TOWN'."
    )

    def done(self, view: StateView | GameState, facts: GameFacts) -> Value:
        return as_view(view).map_id == facts.map_id(self.map)

    def phi(self, view: StateView | GameState, facts: GameFacts) -> Value:
        # 1 on the map. Where the run's map graph knows a way, the potential also rises along
        # the shortest route of exits (warps, connected edges) to it: a map k exits away is
        # worth (K - k + c) / (K + 1), K the longest route, c in [0, 0.9] the closeness to the
        # next exit; so passing an exit always raises it, and a far map's subgoal pays for
        # each step the right way. Closeness counts the steps a walker takes around the walls
        # the envs have seen (``RouteLeg.steps``), not a straight line: a straight line has a
        # maximum at every wall facing the exit, from which no step raises it. The graph
        # grows as the envs see maps; routes are cached per graph version, since this runs on
        # every imagined step.
        v = as_view(view)
        target = facts.map_id(self.map)
        potential = _float(v.map_id == target)
        legs = facts.route_to(target)
        if legs:
            longest = max(leg.hops for leg in legs)
            for leg in legs:
                assert leg.steps is not None, "MapGraph.route_to gives every leg its steps"
                distance = _steps_at(leg.steps, v)
                closeness = 0.9 * (1 - _min(distance, TILE_DISTANCE_CAP) / TILE_DISTANCE_CAP)
                here = _float(v.map_id == leg.map_id)
                potential = potential + here * (longest - leg.hops + closeness) / (longest + 1)
        return potential

    def describe(self) -> str:
        return f"go to {self.map}"


def _steps_at(steps: np.ndarray, v: StateView) -> Value:
    """``steps[y, x]`` at the view's cell, for one state or a batch (numpy or torch, on the
    batch's device); a cell outside the map (a predicted -1) reads as its nearest border."""
    rows, columns = steps.shape
    if not _is_array(v.x):
        return float(steps[min(max(int(v.y), 0), rows - 1), min(max(int(v.x), 0), columns - 1)])
    if isinstance(v.x, np.ndarray):
        ys, xs = np.clip(v.y, 0, rows - 1).astype(np.intp), np.clip(v.x, 0, columns - 1)
        return steps[ys, xs.astype(np.intp)].astype(np.float32)
    table = v.x.new_tensor(steps)  # the batch's device
    ys, xs = v.y.clamp(0, rows - 1).long(), v.x.clamp(0, columns - 1).long()
    return table[ys, xs].float()


class GoToTile(BaseModel):
    """Stand on one tile of a map."""

    model_config = _CONFIG

    kind: Literal["go_to_tile"] = Field("go_to_tile", description="Always 'go_to_tile'.")
    map: PretName = Field(description="The tile's map, by its pret map constant name.")
    x: int = Field(ge=0, le=255, description="The tile's column in steps, 0 at the map's left.")
    y: int = Field(ge=0, le=255, description="The tile's row in steps, 0 at the map's top.")

    def done(self, view: StateView | GameState, facts: GameFacts) -> Value:
        v = as_view(view)
        return (v.map_id == facts.map_id(self.map)) & (v.x == self.x) & (v.y == self.y)

    def phi(self, view: StateView | GameState, facts: GameFacts) -> Value:
        # Half for reaching the map, half for closing in; the distance saturates so that a far
        # corner of a big map still reads as "on the map" rather than as nothing. Where the
        # run's map graph has seen the map, the distance is the steps round the walls seen
        # (as go_to_map's), else a straight line.
        v = as_view(view)
        map_id = facts.map_id(self.map)
        on_map = _float(v.map_id == map_id)
        steps = facts.steps_to(map_id, (self.x, self.y))
        if steps is not None:
            distance = _min(_steps_at(steps, v), TILE_DISTANCE_CAP)
        else:
            distance = _min(abs(v.x - self.x) + abs(v.y - self.y), TILE_DISTANCE_CAP)
        return on_map * (0.5 + 0.5 * (1 - distance / TILE_DISTANCE_CAP))

    def describe(self) -> str:
        return f"go to {self.map} ({self.x}, {self.y})"


class ReadText(BaseModel):
    """Talk to someone or read a sign: a text box shows (one containing ``contains``, if set).

    A predicted state (``text_known`` false) carries no text: a box the model imagines could be
    any sign. There a ReadText with ``contains`` counts a box shown outside a battle only on a
    cell from which the run has read a box holding those words (``GameFacts.cells_reading``,
    grown from real states like the map graph), so the actor can learn to face the GUIDE and
    press A, and reading another sign pays nothing. One without ``contains`` is judged on the
    text box alone, real or predicted."""

    model_config = _CONFIG

    kind: Literal["read_text"] = Field("read_text", description="Always 'read_text'.")
    contains: str = Field(
        "",
        max_length=MAX_CONTAINS_CHARS,
        description=(
            "Words the text box must contain (case-insensitive), at most "
            f'{MAX_CONTAINS_CHARS} characters; send an empty string "" for any text box.'
        ),
    )

    def _matches(self, v: StateView, facts: GameFacts) -> Value:
        if not self.contains:
            return True
        if v.text_known:
            return _norm(self.contains) in _norm(v.text)
        cells = facts.cells_reading(self.contains, _norm)
        return _at_cells(cells, v) & (v.battle == NO_BATTLE)

    def done(self, view: StateView | GameState, facts: GameFacts) -> Value:
        v = as_view(view)
        return (v.text_shown > 0.5) & self._matches(v, facts)

    def phi(self, view: StateView | GameState, facts: GameFacts) -> Value:
        v = as_view(view)
        return v.text_shown * _float(self._matches(v, facts))

    def describe(self) -> str:
        return f'read a text box containing "{self.contains}"' if self.contains else "read text"


def _at_cells(cells: np.ndarray, v: StateView) -> Value:
    """Whether the view's cell is one of ``cells`` (``cell_key``s), for one state or a batch
    (numpy or torch); an unknown cell (map -1) is none of them."""
    key = cell_key(v.map_id, v.x, v.y)
    if not _is_array(key):
        return bool(np.isin(int(key), cells))
    if isinstance(key, np.ndarray):
        return np.isin(key.astype(np.int64), cells)
    table = key.new_tensor(cells).long()  # the batch's device
    return (key.long()[..., None] == table).any(-1)


class WinBattle(BaseModel):
    """Win a battle: the one under way, or, outside one, the next to start."""

    model_config = _CONFIG

    kind: Literal["win_battle"] = Field("win_battle", description="Always 'win_battle'.")

    def done(self, view: StateView | GameState, facts: GameFacts) -> Value:
        v = as_view(view)
        return ((v.battle == WILD) | (v.battle == TRAINER)) & (v.enemy_hp_fraction <= 0)

    def phi(self, view: StateView | GameState, facts: GameFacts) -> Value:
        v = as_view(view)
        # A quarter for a battle under way and the share of the enemy's HP taken for the rest:
        # outside a battle, starting one pays (in grass a battle is a few steps away, a win
        # dozens, beyond an imagined trajectory); a battle fled or lost falls back to nothing.
        # Predicted states carry the battle and enemy-HP heads (a fainted enemy reads exactly
        # 0 there where the head finds it likelier than not, other fractions to 1/20).
        fighting = _float(v.battle == WILD) + _float(v.battle == TRAINER)
        return fighting * (BATTLE_STARTED + (1 - BATTLE_STARTED) * (1 - v.enemy_hp_fraction))

    def describe(self) -> str:
        return "win the battle"


class HealParty(BaseModel):
    """Bring the whole party to full HP."""

    model_config = _CONFIG

    kind: Literal["heal_party"] = Field("heal_party", description="Always 'heal_party'.")

    def done(self, view: StateView | GameState, facts: GameFacts) -> Value:
        return as_view(view).hp_fraction >= HP_FULL

    def phi(self, view: StateView | GameState, facts: GameFacts) -> Value:
        return as_view(view).hp_fraction * 1.0

    def describe(self) -> str:
        return "heal the party"


class EarnBadge(BaseModel):
    """Earn a gym badge. The badge bit is the whole of it; on the way, a trainer battle in the
    badge's gym is a quarter of the potential at its start and half with the enemy down, so
    that imagination, which has seldom or never seen the badge given, still finds the leader
    (a gym's trainers stand between the door and him). A lost battle falls back to nothing."""

    model_config = _CONFIG

    kind: Literal["earn_badge"] = Field("earn_badge", description="Always 'earn_badge'.")
    badge: BadgeName = Field(description="The badge, e.g. 'BOULDER' for Pewter City's gym.")

    def done(self, view: StateView | GameState, facts: GameFacts) -> Value:
        return as_view(view).badges[..., BADGES.index(self.badge)] > 0.5

    def phi(self, view: StateView | GameState, facts: GameFacts) -> Value:
        v = as_view(view)
        earned = v.badges[..., BADGES.index(self.badge)] * 1.0
        gym = facts.gym_map_id(self.badge)
        if gym is None:
            return earned
        fighting = _float(v.battle == TRAINER) * _float(v.map_id == gym)
        return earned + (1 - earned) * fighting * (0.25 + 0.25 * (1 - v.enemy_hp_fraction))

    def describe(self) -> str:
        return f"earn the {self.badge}BADGE"


class SetEvent(BaseModel):
    """Make a story event happen (its event flag set)."""

    model_config = _CONFIG

    kind: Literal["set_event"] = Field("set_event", description="Always 'set_event'.")
    event: PretName = Field(
        description="The event flag by its pret name, e.g. 'EVENT_GOT_STARTER'."
    )

    def done(self, view: StateView | GameState, facts: GameFacts) -> Value:
        return self.phi(view, facts) > 0.5

    def phi(self, view: StateView | GameState, facts: GameFacts) -> Value:
        v = as_view(view)
        if v.events is None:  # the world model predicts no flags: no shaping, rather than a guess
            return v.hp_fraction * 0.0
        return 1.0 if event_set(v.events, facts.event_index(self.event)) else 0.0

    def describe(self) -> str:
        return f"set {self.event}"


Subgoal = Annotated[
    GoToMap | GoToTile | ReadText | WinBattle | HealParty | EarnBadge | SetEvent,
    Field(discriminator="kind"),
]
SUBGOAL_TYPES: tuple[type[BaseModel], ...] = (
    GoToMap,
    GoToTile,
    ReadText,
    WinBattle,
    HealParty,
    EarnBadge,
    SetEvent,
)
SUBGOAL_KINDS: tuple[str, ...] = tuple(t.model_fields["kind"].default for t in SUBGOAL_TYPES)


def _plan_schema(schema: dict[str, Any]) -> None:
    _llm_schema(schema)
    # Pydantic writes a discriminated union as oneOf + discriminator, which OpenAI's strict mode
    # does not take; anyOf means the same here, since each variant's `kind` is a distinct value.
    items = schema["properties"]["subgoals"]["items"]
    items.pop("discriminator", None)
    if "oneOf" in items:
        items["anyOf"] = items.pop("oneOf")


class Plan(BaseModel):
    """A goal and the queue of subgoals that reach it, first one first."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, json_schema_extra=_plan_schema
    )

    goal: str = Field(
        min_length=1,
        max_length=MAX_GOAL_CHARS,
        description=f"The goal these subgoals reach, in at most {MAX_GOAL_CHARS} characters.",
    )
    subgoals: list[Subgoal] = Field(
        min_length=1,
        max_length=MAX_SUBGOALS,
        description=f"1 to {MAX_SUBGOALS} subgoals, in the order to do them.",
    )
    rationale: str = Field(
        "",
        max_length=MAX_RATIONALE_CHARS,
        description=f'Why this plan, in at most {MAX_RATIONALE_CHARS} characters (may be "").',
    )


# ----------------------------------------------------------------------------------------------
# The state the subgoals are judged on

NO_BATTLE, WILD, TRAINER, LOST = map(BATTLE_ORDER.index, ("none", "wild", "trainer", "lost"))

BATTLE_STARTED = 0.25
"""win_battle's potential as a battle starts: enough that starting one is worth a step into the
grass, little enough that fleeing it costs what starting it paid."""
TILE_DISTANCE_CAP = 20
"""Steps beyond which go_to_tile's potential stops rising with closeness (Manhattan)."""
HP_FULL = 0.99
"""heal_party is done at this HP fraction: the world model's head is a sigmoid that never reads
exactly 1, and one HP short of a 100-HP party is still 0.99."""


class _Same:
    """Reads as the same value at every index: unknown badges in a predicted view."""

    def __init__(self, value: Value) -> None:
        self.value = value

    def __getitem__(self, index: object) -> Value:
        return self.value

    def __repr__(self) -> str:
        return f"_Same({self.value})"


@dataclass(frozen=True, slots=True)
class StateView:
    """What the subgoals read of a state: numbers for one real state, or same-shaped arrays
    (numpy or torch) for a batch of predicted ones. Build it with ``from_game_state`` or
    ``from_arrays``."""

    map_id: Value
    """Map id (int)."""
    x: Value
    """Column in steps (int)."""
    y: Value
    """Row in steps (int)."""
    battle: Value
    """Index into BATTLE_ORDER: 0 none, 1 wild, 2 trainer, 3 lost."""
    text_shown: Value
    """A text box, or a battle's message, is shown: 0 or 1 (a probability when predicted)."""
    hp_fraction: Value
    """The party's HP over its max HP, 0..1 (0 with no party)."""
    badges: Value
    """Eight values 0..1 in wObtainedBadges bit order, read as ``badges[..., i]``."""
    enemy_hp_fraction: Value = 1.0
    """The enemy's HP over its max HP in a battle; 1 outside one and when unknown. Predicted:
    the enemy-HP head's bin centre (untrained outside a battle, where no subgoal reads it)."""
    text: str = ""
    """The text box's lines, joined by spaces; "" when there is none or it is unknown."""
    text_known: bool = False
    """Whether ``text`` was read (a real state) rather than unknown (a predicted one). Only read
    text matches a ReadText's ``contains``: a shown box with no text is a menu, and a predicted
    box is no text in particular."""
    events: bytes | None = None
    """wEventFlags' bytes; None when unknown (predicted)."""

    @staticmethod
    def from_game_state(state: GameState) -> StateView:
        fighting = state.battle in ("wild", "trainer") and state.enemy_max_hp > 0
        return StateView(
            map_id=state.map_id,
            x=state.x,
            y=state.y,
            battle=BATTLE_ORDER.index(state.battle),
            text_shown=1.0 if state.text_shown else 0.0,
            hp_fraction=min(state.hp_fraction, 1.0),
            badges=_BADGE_BITS[state.badges],
            enemy_hp_fraction=min(state.enemy_hp / state.enemy_max_hp, 1.0) if fighting else 1.0,
            text=" ".join(state.text) if state.text_shown else "",
            text_known=True,
            events=state.event_flags,
        )

    @staticmethod
    def from_arrays(**arrays: Value) -> StateView:
        """A batch view from arrays under StateView's names, e.g. the world model's
        ``predict(...)`` state (map_id, x, y, battle, text_shown, hp_fraction, badges,
        enemy_hp_fraction).
        Missing fields are unknown: they are filled with values no subgoal counts as progress
        (map and tile -1, no battle, no text, HP 0, no badges, enemy HP 1, no events), shaped
        like the batch so that every potential keeps the batch's shape."""
        unknown = set(arrays) - set(_FIELDS)
        if unknown:
            raise TypeError(f"StateView has no field(s) {sorted(unknown)}; fields: {_FIELDS}")
        shape_of = next((a for k, a in arrays.items() if k in _PER_STEP and _is_array(a)), None)
        filled: dict[str, Value] = {}
        for name, default in _UNKNOWN.items():
            if name in arrays:
                filled[name] = arrays[name]
            elif name == "badges":
                filled[name] = _Same(0.0 if shape_of is None else shape_of * 0.0)
            else:  # the batch's type, device and shape, without naming torch
                filled[name] = default if shape_of is None else shape_of * 0 + default
        return StateView(**filled, **{k: arrays[k] for k in _NON_NUMERIC if k in arrays})


def _badge_bits(badges: int) -> np.ndarray:
    bits = np.array([float(badges >> i & 1) for i in range(8)])
    bits.flags.writeable = False  # shared by every view with these badges
    return bits


_BADGE_BITS = tuple(map(_badge_bits, range(256)))
_FIELDS = tuple(f.name for f in fields(StateView))
_NON_NUMERIC = ("text", "text_known", "events")
_UNKNOWN: dict[str, float | int] = {
    "map_id": -1,
    "x": -1,
    "y": -1,
    "battle": NO_BATTLE,
    "text_shown": 0.0,
    "hp_fraction": 0.0,
    "badges": 0.0,
    "enemy_hp_fraction": 1.0,
}
_PER_STEP = frozenset(_UNKNOWN) - {"badges"}


def as_view(state: StateView | GameState) -> StateView:
    """A StateView of either; subgoals take both."""
    return state if isinstance(state, StateView) else StateView.from_game_state(state)


def _is_array(value: Value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _float(condition: Value) -> Value:
    """A bool, bool array or bool tensor as 0/1 floats (torch refuses `1 - bool_tensor`)."""
    return condition * 1.0


def _min(a: Value, b: Value) -> Value:
    """min() that also works elementwise on arrays and tensors."""
    return (a + b - abs(a - b)) / 2


def _norm(text: str) -> str:
    # The game prints POKéMON; the planner writes POKEMON.
    return " ".join(text.lower().replace("é", "e").split())


# ----------------------------------------------------------------------------------------------
# Shaping, encoding and words


def done(subgoal: Subgoal, view: StateView | GameState, facts: GameFacts) -> Value:
    """Whether the subgoal is reached (bool, or a bool array over a batch)."""
    return subgoal.done(as_view(view), facts)


def phi(subgoal: Subgoal, view: StateView | GameState, facts: GameFacts) -> Value:
    """The subgoal's potential in [0, 1], higher nearer completion."""
    return subgoal.phi(as_view(view), facts)


def shaping(
    subgoal: Subgoal | None,
    prev_view: StateView | GameState,
    view: StateView | GameState,
    facts: GameFacts,
    discount: Value = 1.0,
    bonus: float = 1.0,
) -> Value:
    """The shaped reward of the transition prev_view -> view (elementwise over a batch):
    ``discount*phi(view) - phi(prev)``, with phi of a state where the subgoal is done taken
    as 0, plus ``bonus`` on the step the subgoal becomes done. A transition out of a done
    state pays 0, and no subgoal gives 0.

    ``discount`` must be the one the returns apply to this transition: gamma times the
    probability the trajectory goes on (imagination passes gamma * cont(view), an array).
    Reaching done ends the subgoal: the state is then absorbing, so its potential is 0 (Ng,
    Harada and Russell, 1999) and the step pays ``bonus - phi(prev)``, no ``discount * phi``.
    Then the potential part of any trajectory's return telescopes to
    ``D_n * phi(s_n) - phi(s_0)`` (``D_n`` the product of the discounts, 0 once it ended) and
    leaves the optimal policy alone. The bonus is the subgoal's own reward and does change it:
    it is what makes reaching done worth more than its neighbours. Stepping out of done and
    back in would earn it again, so the return must stop at the first done step (imagination's
    continuation is ``cont * (1 - done)``; the agent loop moves to the next subgoal)."""
    prev, now = as_view(prev_view), as_view(view)
    if subgoal is None:
        return now.hp_fraction * 0.0
    was_done = _float(subgoal.done(prev, facts))
    is_done = _float(subgoal.done(now, facts))
    potential = discount * (1 - is_done) * subgoal.phi(now, facts) - subgoal.phi(prev, facts)
    return (1 - was_done) * (potential + bonus * is_done)


_HASH_BUCKETS = 8
_ENCODING_LAYOUT: tuple[tuple[str, int], ...] = (
    ("kind", len(SUBGOAL_KINDS)),  # one-hot
    ("map", 1),  # map id / 255
    ("tile", 2),  # x / 255, y / 255
    ("badge", len(BADGES)),  # one-hot
    ("event", 1),  # flag index / number of flags: nearby flags are related story beats
    ("hash", _HASH_BUCKETS),  # one-hot bucket of the event name or the text to find
    ("contains", 1),  # 1 when read_text names text to find
)
_OFFSETS = {  # where each part starts: its running end less its own size
    name: end - size
    for (name, size), end in zip(
        _ENCODING_LAYOUT, accumulate(size for _, size in _ENCODING_LAYOUT), strict=True
    )
}
GOAL_ENCODING_SIZE = sum(size for _, size in _ENCODING_LAYOUT)
"""Length of ``encode``'s vector: the policy's subgoal input."""
GOAL_ID_SLOTS: tuple[int, ...] = (_OFFSETS["map"], _OFFSETS["tile"], _OFFSETS["tile"] + 1)
"""Where ``encode`` writes the map id and the tile's x and y, each as a byte / 255."""


def encode(subgoal: Subgoal | None, facts: GameFacts) -> list[float]:
    """A fixed-length vector of the subgoal, in [0, 1], to condition the policy on; all zeros
    for no subgoal. Names are resolved through ``facts``, so check the plan first."""
    out = [0.0] * GOAL_ENCODING_SIZE
    if subgoal is None:
        return out
    out[_OFFSETS["kind"] + SUBGOAL_KINDS.index(subgoal.kind)] = 1.0
    if isinstance(subgoal, GoToMap | GoToTile):
        out[_OFFSETS["map"]] = facts.map_id(subgoal.map) / 255.0
    if isinstance(subgoal, GoToTile):
        out[_OFFSETS["tile"]] = subgoal.x / 255.0
        out[_OFFSETS["tile"] + 1] = subgoal.y / 255.0
    if isinstance(subgoal, EarnBadge):
        out[_OFFSETS["badge"] + BADGES.index(subgoal.badge)] = 1.0
    if isinstance(subgoal, SetEvent):
        out[_OFFSETS["event"]] = facts.event_index(subgoal.event) / NUM_EVENT_FLAGS
        out[_OFFSETS["hash"] + _bucket(subgoal.event.upper())] = 1.0
    if isinstance(subgoal, ReadText) and subgoal.contains:
        out[_OFFSETS["hash"] + _bucket(_norm(subgoal.contains))] = 1.0
        out[_OFFSETS["contains"]] = 1.0
    return out


def _bucket(text: str) -> int:
    # crc32, not hash(): Python salts str hashes per process, and a checkpoint's policy must
    # read the same bucket in every run.
    return zlib.crc32(text.encode()) % _HASH_BUCKETS


def describe(subgoal: Subgoal | None) -> str:
    """One line for people, e.g. "go to PALLET_TOWN (6, 2)"."""
    return "no subgoal" if subgoal is None else subgoal.describe()
