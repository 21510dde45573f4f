"""Prediction heads on feat: reward (twohot), continue (Bernoulli) and the GameState heads.

The state heads are how System 2 shapes System 1 in imagination: subgoals' done/phi run on
predicted_state(...), whose names are GameState's (map_id, x, y, battle, text_shown, hp_fraction,
badges). What each head predicts and how its target is read from the stored GameState vector is
data (STATE_HEADS), so adding a head is one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pokedreamer.env.state import BATTLE_ORDER, VECTOR_FIELDS, VECTOR_SIZE
from pokedreamer.world_model.nets import MLP

HeadKind = Literal["categorical", "bernoulli"]

# The battle head's classes are BATTLE_ORDER, VECTOR_FIELDS' battle_* order: index 0 none, 1 wild,
# 2 trainer, 3 lost. predicted_state gives the index; BATTLE_ORDER[i] is GameState.battle's value.


def _field(name: str) -> int:
    return VECTOR_FIELDS.index(name)


def _byte(name: str) -> Callable[[Tensor], Tensor]:
    """A byte stored as value / 255, read back as its int64 class."""
    i = _field(name)
    return lambda v: torch.round(v[..., i] * 255.0).long().clamp(0, 255)


def _battle_index() -> Callable[[Tensor], Tensor]:
    """The index of the set battle_* bit (none when all are zero)."""
    first = _field(f"battle_{BATTLE_ORDER[0]}")
    group = slice(first, first + len(BATTLE_ORDER))
    assert VECTOR_FIELDS[group] == tuple(f"battle_{k}" for k in BATTLE_ORDER), VECTOR_FIELDS
    return lambda v: v[..., group].argmax(-1)


def _probs(*names: str) -> Callable[[Tensor], Tensor]:
    """[0, 1] fields as Bernoulli targets (..., len(names))."""
    first = _field(names[0])
    assert VECTOR_FIELDS[first : first + len(names)] == names, names
    return lambda v: v[..., first : first + len(names)]


@dataclass(frozen=True)
class StateHead:
    """One GameState quantity predicted from feat."""

    kind: HeadKind
    """categorical: `size`-way softmax, target an int64 class; bernoulli: `size` independent
    sigmoids, target (..., size) floats in [0, 1] (BCE, also right for fractions)."""
    size: int
    """Output logits of the head."""
    target: Callable[[Tensor], Tensor]
    """GameState vector (..., VECTOR_SIZE) -> target: int64 (...) or float (..., size)."""


_BADGES = tuple(name for name in VECTOR_FIELDS if name.startswith("badge_"))

STATE_HEADS: dict[str, StateHead] = {
    "map_id": StateHead("categorical", 256, _byte("map_id")),
    "x": StateHead("categorical", 256, _byte("x")),
    "y": StateHead("categorical", 256, _byte("y")),
    "battle": StateHead("categorical", len(BATTLE_ORDER), _battle_index()),
    "text_shown": StateHead("bernoulli", 1, _probs("text_shown")),
    "hp_fraction": StateHead("bernoulli", 1, _probs("hp_fraction")),
    "badges": StateHead("bernoulli", len(_BADGES), _probs(*_BADGES)),
}


def state_targets(vector: Tensor) -> dict[str, Tensor]:
    """Every head's target from GameState vectors (..., VECTOR_SIZE)."""
    assert vector.shape[-1] == VECTOR_SIZE, vector.shape
    return {name: head.target(vector) for name, head in STATE_HEADS.items()}


class StateHeads(nn.Module):
    """All state heads on one shared MLP trunk with a split output layer: in imagination they
    run on every imagined step, so one trunk instead of seven."""

    def __init__(self, feat_size: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.sizes = [head.size for head in STATE_HEADS.values()]
        self.mlp = MLP(feat_size, sum(self.sizes), hidden, layers)

    def forward(self, feat: Tensor) -> dict[str, Tensor]:
        """feat (..., F) -> each head's logits (..., size)."""
        outputs = self.mlp(feat).split(self.sizes, dim=-1)
        return dict(zip(STATE_HEADS, outputs, strict=True))


def state_losses(outputs: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, Tensor]:
    """Each head's negative log-likelihood per step (...), float32: categoricals' cross-entropy,
    Bernoullis' BCE summed over their outputs."""
    losses = {}
    for name, head in STATE_HEADS.items():
        logits, target = outputs[name].float(), targets[name]
        if head.kind == "categorical":
            assert target.dtype == torch.int64 and target.shape == logits.shape[:-1], target.shape
            loss = F.cross_entropy(logits.flatten(0, -2), target.flatten(), reduction="none")
            losses[name] = loss.reshape(target.shape)
        else:
            assert target.shape == logits.shape, (name, target.shape, logits.shape)
            bce = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
            losses[name] = bce.sum(-1)
    return losses


def predicted_state(outputs: dict[str, Tensor]) -> dict[str, Tensor]:
    """Point predictions under GameState's names: a categorical head gives its mode as int64
    (...) (map_id, x, y; battle as an index into BATTLE_ORDER), a Bernoulli head its
    probabilities, (...) for one output (text_shown, hp_fraction), (..., size) for more (badges)."""
    preds = {}
    for name, head in STATE_HEADS.items():
        logits = outputs[name]
        if head.kind == "categorical":
            preds[name] = logits.argmax(-1)
        else:
            probs = torch.sigmoid(logits.float())
            preds[name] = probs.squeeze(-1) if head.size == 1 else probs
    return preds
