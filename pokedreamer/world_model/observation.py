"""Which kind of observation a checkpoint's world model reads, and the refusal of another kind.

A world model of tile tokens and one of pixels share the RSSM and heads but not their encoder
and decoder, and a token model's output is sized by its vocabulary's capacity: neither loads
into the other. Every checkpoint records its kind (and, for tiles, the capacity) in its JSON;
checkpoints written before the token model existed have no such key and are pixel models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pokedreamer.config import WorldModelSettings
from pokedreamer.errors import UserError

META_KEYS = ("observation", "tile_capacity", "state_code")
"""The keys of a checkpoint's JSON that observation_meta writes."""


def observation_meta(settings: WorldModelSettings) -> dict[str, Any]:
    """What a checkpoint of a model under ``settings`` records of its observation: the kind,
    for tiles the capacity (a pixel model has no use for one), and the GameState vector's code
    where it is not "scalar" (what a checkpoint without the key was made with)."""
    meta: dict[str, Any] = {"observation": settings.observation}
    if settings.observation == "tiles":
        meta["tile_capacity"] = settings.tile_capacity
    if settings.state_code != "scalar":
        meta["state_code"] = settings.state_code
    return meta


def check_observation(meta: dict[str, Any], settings: WorldModelSettings, source: object) -> None:
    """Refuses, in one line, a checkpoint (its JSON ``meta``) whose world model reads another
    kind of observation than ``settings`` asks for, tiles of another capacity, or the GameState
    vector in another code."""
    kind = meta.get("observation", "pixels")
    if kind != settings.observation:
        _refuse(
            f"{source} is a world model of {kind}", "observation", settings.observation, kind,
            f"a {settings.observation} checkpoint",
        )  # fmt: skip
    capacity = meta.get("tile_capacity")
    if kind == "tiles" and capacity != settings.tile_capacity:
        raise UserError(
            f"{source} is a world model of {capacity} tile tokens, but world_model.tile_capacity "
            f"is {settings.tile_capacity}; set world_model.tile_capacity = {capacity} or give a "
            "checkpoint of that capacity"
        )
    code = meta.get("state_code", "scalar")
    if code != settings.state_code:
        _refuse(
            f'{source} is a world model that reads the GameState vector as "{code}"',
            "state_code", settings.state_code, code, "a checkpoint made with it",
        )  # fmt: skip


def _refuse(found: str, key: str, asked: str, recorded: str, other: str) -> None:
    """The one-line refusal of a checkpoint whose world_model.``key`` was ``recorded`` where
    the settings ask for ``asked``: what was ``found``, the setting and variable that take it,
    or the ``other`` checkpoint to give."""
    raise UserError(
        f'{found}, but world_model.{key} is "{asked}"; set world_model.{key} = "{recorded}" '
        f"(POKEDREAMER_WORLD_MODEL__{key.upper()}={recorded}) or give {other}"
    )


def check_batch(batch: Mapping[str, object], settings: WorldModelSettings, source: object) -> None:
    """Refuses, in one line, a replayed batch that lacks the observations the model reads: a
    replay collected under the other kind of observation (``source`` names the replay)."""
    key = "tiles" if settings.observation == "tiles" else "frames"
    if key not in batch:
        other = "pixels" if key == "tiles" else "tiles"
        raise UserError(
            f"{source} holds {other}, not the {settings.observation} that "
            f'world_model.observation = "{settings.observation}" trains on; collect again with '
            "this setting into another run, or set it back"
        )
