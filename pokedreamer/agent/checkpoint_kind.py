"""The settings a checkpoint's weights were made for, taken from the checkpoint where the user
chose none: what it observes (pixels or tiles, and the tile capacity), how its encoder reads the
GameState vector (world_model.state_code) and how its actor reads the subgoal (agent.goal_code).

A checkpoint brings its preset as it brings its weights (Start.world_model_settings). These
settings differ in that they also decide what the emulators record and what the actor is fed,
before any weights are loaded, so they are settled here, from the checkpoint's JSON alone. A
setting chosen on purpose (a flag, a POKEDREAMER_* variable, a --config file) is kept, and the
loaders refuse a checkpoint it does not fit in one line, naming the setting to change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pokedreamer.agent.checkpointer import resolve_checkpoint
from pokedreamer.config import Settings
from pokedreamer.errors import UserError
from pokedreamer.world_model.checkpoint import checkpoint_stem

KIND_KEYS = (
    "world_model.observation",
    "world_model.tile_capacity",
    "world_model.state_code",
    "agent.goal_code",
)
"""The dotted settings a checkpoint's kind decides."""


def checkpoint_kind(path: Path) -> dict[str, Any]:
    """The KIND_KEYS that the checkpoint at ``path`` (a stem or either file) records. Older
    checkpoints lack the keys: they read pixels and the subgoal as a scalar. Empty when the JSON
    cannot be read: the loader then says what is wrong with it."""
    stem = checkpoint_stem(path)
    meta_file = stem.with_name(stem.name + ".json")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8")).get("meta")
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(meta, dict):
        return {}
    kind: dict[str, Any] = {
        "world_model.observation": meta.get("observation", "pixels"),
        "world_model.state_code": meta.get("state_code", "scalar"),
    }
    if isinstance(meta.get("tile_capacity"), int):
        kind["world_model.tile_capacity"] = meta["tile_capacity"]
    behavior = meta.get("behavior")
    if meta.get("kind") == "agent" and isinstance(behavior, dict):
        trained = behavior.get("settings")
        if isinstance(trained, dict):
            kind["agent.goal_code"] = trained.get("goal_code", "scalar")
    return kind


def world_model_fits(settings: Settings, path: Path) -> bool:
    """Whether the world model of the checkpoint at ``path`` is of the kind ``settings`` ask
    for: the same observation, tile capacity and GameState vector code."""
    return all(
        getattr(settings.world_model, dotted.removeprefix("world_model.")) == value
        for dotted, value in checkpoint_kind(path).items()
        if dotted.startswith("world_model.")
    )


def adopt_checkpoint_kind(
    settings: Settings, path: Path | None, chosen: frozenset[str], *, fresh_actor: bool = False
) -> Settings:
    """``settings`` with the KIND_KEYS of the checkpoint at ``path`` (as a user names it: a run
    folder, a file or the stem) wherever none was ``chosen`` (dotted keys chosen on purpose).
    ``fresh_actor``: only the checkpoint's world model is used, so the actor's goal code stays
    the settings'. No checkpoint: ``settings`` unchanged."""
    if path is None:
        return settings
    sections: dict[str, dict[str, Any]] = {}
    for dotted, value in checkpoint_kind(resolve_checkpoint(path)).items():
        if dotted in chosen or (fresh_actor and dotted == "agent.goal_code"):
            continue
        section, key = dotted.split(".")
        sections.setdefault(section, {})[key] = value
    if not sections:
        return settings
    try:
        update = {
            name: getattr(settings, name).model_validate(
                {**getattr(settings, name).model_dump(), **values}
            )
            for name, values in sections.items()
        }
    except ValueError:
        raise UserError(
            f"{path}: its JSON records settings this version does not know; give a checkpoint "
            "made by pokedreamer"
        ) from None
    return settings.model_copy(update=update)
