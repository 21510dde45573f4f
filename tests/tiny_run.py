"""Settings small enough that a test's run trains a few updates in a second or two, as dotted
keys for load_settings and as the POKEDREAMER_* variables a CLI subprocess reads."""

from __future__ import annotations

from typing import Any

TINY: dict[str, Any] = {
    "world_model.preset": "tiny",
    "world_model.batch_size": 2,
    "world_model.batch_length": 16,
    "world_model.replay_chunk": 64,
    "agent.train_after": 48,
    "agent.train_ratio": 8.0,
    "agent.imagine_batch": 16,
    "agent.horizon": 5,
}


def as_env(settings: dict[str, Any]) -> dict[str, str]:
    """Dotted settings as environment variables: {"a.b": 1} -> {"POKEDREAMER_A__B": "1"}."""
    return {f"POKEDREAMER_{k.upper().replace('.', '__')}": str(v) for k, v in settings.items()}


TINY_ENV = as_env(TINY)
