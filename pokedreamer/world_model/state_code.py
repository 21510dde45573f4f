"""How the encoder reads the GameState vector's map id and position (world_model.state_code).

The vector holds each of them as a byte over 255 (env/state.py), so one step of the player moves
its input by 0.004 while the other features span 0..1: an encoder's first layer tells the house
from the gym, or one cell from the next, only once its weights have grown a hundredfold. "bits"
also gives the encoder the three bytes' eight bits each (24 inputs of 0 or 1), recovered from
the vector itself, so the replay's format and the env are unchanged. "scalar" reads the vector
alone, as every checkpoint made before the setting existed does.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from pokedreamer.env.state import VECTOR_FIELDS, VECTOR_SIZE

StateCode = Literal["scalar", "bits"]

BYTE_FIELDS = ("map_id", "x", "y")
"""The vector's fields that are bytes over 255 and that "bits" spells out."""
_BITS = 8


def vector_byte(vector: Tensor, name: str) -> Tensor:
    """A GameState vector's byte field (stored as value / 255) read back as int64, over any
    leading dims. Exact from float16 too (its spacing below 1 is at most 2^-11)."""
    return torch.round(vector[..., VECTOR_FIELDS.index(name)].float() * 255.0).long().clamp(0, 255)


def state_input_size(code: StateCode) -> int:
    """The width of ``state_input``'s output."""
    return VECTOR_SIZE + (len(BYTE_FIELDS) * _BITS if code == "bits" else 0)


def state_input(vector: Tensor, code: StateCode) -> Tensor:
    """GameState vectors (N, VECTOR_SIZE) as the encoder reads them under ``code``:
    (N, state_input_size(code))."""
    assert vector.ndim == 2 and vector.shape[1] == VECTOR_SIZE, vector.shape
    if code == "scalar":
        return vector
    values = torch.stack([vector_byte(vector, name) for name in BYTE_FIELDS], dim=-1)
    shifts = torch.arange(_BITS, device=vector.device)
    bits = (values.unsqueeze(-1) >> shifts) & 1  # (N, 3, 8), least significant first
    return torch.cat([vector, bits.flatten(1).to(vector.dtype)], dim=1)
