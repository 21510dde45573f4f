"""Prediction heads on feat: reward (twohot), continue (Bernoulli) and the GameState heads.

The state heads are how System 2 shapes System 1 in imagination: subgoals' done/phi run on
``StateHeads.predicted(...)``, whose names are StateView's (map_id, x, y, battle, text_shown,
hp_fraction, badges, enemy_hp_fraction). They are sized to the game (``StateRanges``): a map
head with a class per map the game has, x and y heads as wide as its largest map, so that their
cost stays below the rollout's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pokedreamer.env.state import BATTLE_ORDER, VECTOR_FIELDS, VECTOR_SIZE
from pokedreamer.world_model.nets import MLP
from pokedreamer.world_model.state_code import vector_byte

HeadKind = Literal["categorical", "bernoulli"]

STATE_HEADS: tuple[str, ...] = (
    "map_id", "x", "y", "battle", "text_shown", "hp_fraction", "badges", "enemy_hp_fraction",
)  # fmt: skip
"""The state heads, in the order of the shared trunk's outputs; also predicted()'s keys."""

ENEMY_HP_BINS = 20
"""Classes of the enemy's HP fraction above 0: (0, 1/20], (1/20, 2/20], ... A class of its own
for 0 makes a fainted enemy read exactly 0, as win_battle's done needs; the resolution of the
fraction elsewhere is 1/20 (a prediction is its bin's centre)."""

_BADGES = tuple(name for name in VECTOR_FIELDS if name.startswith("badge_"))
_BATTLE_FIRST = VECTOR_FIELDS.index(f"battle_{BATTLE_ORDER[0]}")
_NONE = BATTLE_ORDER.index("none")
assert VECTOR_FIELDS[_BATTLE_FIRST : _BATTLE_FIRST + len(BATTLE_ORDER)] == tuple(
    f"battle_{k}" for k in BATTLE_ORDER
), VECTOR_FIELDS
# The battle head's classes are BATTLE_ORDER, VECTOR_FIELDS' battle_* order: index 0 none, 1 wild,
# 2 trainer, 3 lost. predicted() gives the index; BATTLE_ORDER[i] is GameState.battle's value.


class SizedMap(Protocol):
    """A map's id and size in steps (GameFacts' MapFacts is one)."""

    @property
    def id(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...


@dataclass(frozen=True)
class StateRanges:
    """The values a game's maps can give the state heads: the map ids that exist and the
    largest map's size in steps. Anything outside them (an id the game lacks, a coordinate past
    every map's edge) is one more class, predicted as -1: unknown, which no subgoal counts as
    progress."""

    map_ids: tuple[int, ...]
    """Every map id of the game, ascending, each a byte."""
    width: int
    """Columns of the widest map: x < width."""
    height: int
    """Rows of the tallest map: y < height."""

    def __post_init__(self) -> None:
        ids = self.map_ids
        if not ids or list(ids) != sorted(set(ids)) or not 0 <= ids[0] <= ids[-1] <= 255:
            raise ValueError(f"map_ids must be distinct bytes in ascending order, got {ids}")
        if not (1 <= self.width <= 256 and 1 <= self.height <= 256):
            raise ValueError(f"map size {self.width}x{self.height} is not within 1..256 steps")

    @staticmethod
    def of_maps(maps: Iterable[SizedMap]) -> StateRanges:
        """The ranges of a game's maps, e.g. ``StateRanges.of_maps(facts.maps.values())``."""
        maps = list(maps)
        return StateRanges(
            tuple(sorted({m.id for m in maps})),
            max(m.width for m in maps),
            max(m.height for m in maps),
        )

    def classes(self) -> dict[str, int]:
        """Each categorical head's number of classes."""
        return {
            "map_id": len(self.map_ids) + 1,
            "x": self.width + 1,
            "y": self.height + 1,
            "battle": len(BATTLE_ORDER),
            "enemy_hp_fraction": ENEMY_HP_BINS + 1,
        }


ANY_BYTE = StateRanges(tuple(range(256)), 256, 256)
"""Ranges for a game nobody named: every byte a map id and a coordinate."""

_BERNOULLI_SIZES = {"text_shown": 1, "hp_fraction": 1, "badges": len(_BADGES)}


def _field(name: str) -> int:
    return VECTOR_FIELDS.index(name)


class StateHeads(nn.Module):
    """All state heads on one shared MLP trunk with a split output layer: in imagination they
    run on every imagined step, so one trunk instead of eight.

    The `ranges` buffer (width, height, map ids) is saved with the weights: a checkpoint says
    what its classes meant, and one made for other ranges is migrated (WorldModel)."""

    def __init__(
        self, feat_size: int, hidden: int, layers: int, ranges: StateRanges = ANY_BYTE
    ) -> None:
        super().__init__()
        self.state_ranges = ranges
        self.kinds: dict[str, HeadKind] = {
            name: "bernoulli" if name in _BERNOULLI_SIZES else "categorical" for name in STATE_HEADS
        }
        self.sizes = {**ranges.classes(), **_BERNOULLI_SIZES}
        self.mlp = MLP(feat_size, sum(self.sizes.values()), hidden, layers)
        ids = torch.tensor(ranges.map_ids, dtype=torch.int64)
        self.register_buffer(
            "ranges", torch.tensor([ranges.width, ranges.height, *ranges.map_ids]), persistent=True
        )
        # byte -> class (the last, "elsewhere", for ids the game lacks) and class -> id.
        map_class = torch.full((256,), len(ids), dtype=torch.int64)
        map_class[ids] = torch.arange(len(ids))
        self.register_buffer("map_class", map_class, persistent=False)
        self.register_buffer("map_id", torch.cat([ids, ids.new_tensor([-1])]), persistent=False)

    def forward(self, feat: Tensor) -> dict[str, Tensor]:
        """feat (..., F) -> each head's logits (..., size)."""
        sizes = [self.sizes[name] for name in STATE_HEADS]
        return dict(zip(STATE_HEADS, self.mlp(feat).split(sizes, dim=-1), strict=True))

    def targets(self, vector: Tensor) -> dict[str, Tensor]:
        """Every head's target from GameState vectors (..., VECTOR_SIZE): int64 classes (...)
        for the categoricals, floats in [0, 1] (..., size) for the Bernoullis."""
        assert vector.shape[-1] == VECTOR_SIZE, vector.shape
        r = self.state_ranges
        battle = vector[..., _BATTLE_FIRST : _BATTLE_FIRST + len(BATTLE_ORDER)]
        enemy = vector[..., _field("enemy_hp_fraction")].float()
        badges = vector[..., _field(_BADGES[0]) : _field(_BADGES[-1]) + 1]
        return {
            "map_id": self.map_class[vector_byte(vector, "map_id")],
            "x": vector_byte(vector, "x").clamp(max=r.width),
            "y": vector_byte(vector, "y").clamp(max=r.height),
            "battle": battle.argmax(-1),  # none when all are zero
            "text_shown": vector[..., _field("text_shown")].unsqueeze(-1),
            "hp_fraction": vector[..., _field("hp_fraction")].unsqueeze(-1),
            "badges": badges,
            "enemy_hp_fraction": torch.ceil(enemy * ENEMY_HP_BINS).long().clamp(0, ENEMY_HP_BINS),
        }

    def losses(self, outputs: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each head's negative log-likelihood per step (...), float32: categoricals'
        cross-entropy, Bernoullis' BCE summed over their outputs; the enemy's HP only in a
        battle (0 elsewhere)."""
        losses = {}
        for name in STATE_HEADS:
            logits, target = outputs[name].float(), targets[name]
            if self.kinds[name] == "categorical":
                assert target.dtype == torch.int64 and target.shape == logits.shape[:-1], (
                    name,
                    target.shape,
                )
                loss = F.cross_entropy(logits.flatten(0, -2), target.flatten(), reduction="none")
                losses[name] = loss.reshape(target.shape)
            else:
                assert target.shape == logits.shape, (name, target.shape, logits.shape)
                bce = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
                losses[name] = bce.sum(-1)
        # The enemy's HP means something only in a battle. Outside one its target is 0, the class
        # of a fainted enemy, so where the model doubted that a battle would go on the head
        # read "fainted" while the battle head still read "wild": imagination completed
        # win_battle from full HP in one step, without a blow.
        losses["enemy_hp_fraction"] = losses["enemy_hp_fraction"] * (targets["battle"] != _NONE)
        return losses

    def predicted(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Point predictions under StateView's names, from each categorical's mode and each
        Bernoulli's probabilities: map_id, x, y int64 (...), -1 where the mode is the class
        outside the ranges; battle an index into BATTLE_ORDER; enemy_hp_fraction exactly 0
        where the fainted class is more likely than not, else the centre of the likeliest other
        bin (untrained outside a battle, where no subgoal reads it); text_shown and
        hp_fraction (...); badges (..., 8)."""
        r = self.state_ranges
        modes = {
            n: outputs[n].argmax(-1)
            for n in ("map_id", "x", "y", "battle")  # the enemy's HP is read below
        }
        # A fainted enemy completes win_battle and ends the imagined return with its bonus. As
        # the mode of 21 classes it can win at a third of the mass, and imagination then won
        # battles from full HP in one step; so a faint must be likelier than not.
        enemy_probs = torch.softmax(outputs["enemy_hp_fraction"].float(), -1)
        fainted = enemy_probs[..., 0] > 0.5
        enemy = enemy_probs[..., 1:].argmax(-1) + 1
        preds = {
            "map_id": self.map_id[modes["map_id"]],
            "x": torch.where(modes["x"] == r.width, -1, modes["x"]),
            "y": torch.where(modes["y"] == r.height, -1, modes["y"]),
            "battle": modes["battle"],
            "enemy_hp_fraction": torch.where(fainted, 0.0, (enemy - 0.5) / ENEMY_HP_BINS),
        }
        for name, size in _BERNOULLI_SIZES.items():
            probs = torch.sigmoid(outputs[name].float())
            preds[name] = probs.squeeze(-1) if size == 1 else probs
        return {name: preds[name] for name in STATE_HEADS}
