"""A checkpoint's observation and goal code, taken where the user chose none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pokedreamer.agent.checkpoint_kind import adopt_checkpoint_kind, checkpoint_kind
from pokedreamer.config import load_settings
from pokedreamer.errors import UserError

SHIPPED = Path(__file__).resolve().parent.parent / "pokedreamer/agent/shipped/fixture-agent"


def fake_checkpoint(folder: Path, meta: dict[str, object]) -> Path:
    """Only the JSON: checkpoint_kind reads nothing else."""
    stem = folder / "agent-000000010"
    record = {"format": "pokedreamer-checkpoint", "version": 1, "meta": meta}
    (folder / "agent-000000010.json").write_text(json.dumps(record), encoding="utf-8")
    return stem


def test_the_shipped_checkpoint_reads_pixels_and_the_goal_as_a_scalar() -> None:
    kind = checkpoint_kind(SHIPPED)
    assert kind == {
        "world_model.observation": "pixels",
        "world_model.state_code": "scalar",
        "agent.goal_code": "scalar",
    }


def test_a_tiles_and_bits_checkpoint_sets_what_was_not_chosen(tmp_path: Path) -> None:
    meta = {"kind": "agent", "observation": "tiles", "tile_capacity": 512,
            "behavior": {"settings": {"goal_code": "bits"}}}  # fmt: skip
    stem = fake_checkpoint(tmp_path, meta)
    settings = load_settings(None, {})
    adopted = adopt_checkpoint_kind(settings, stem, frozenset())
    assert (adopted.world_model.observation, adopted.world_model.tile_capacity) == ("tiles", 512)
    assert adopted.agent.goal_code == "bits"
    # Either file names the same checkpoint.
    assert checkpoint_kind(tmp_path / "agent-000000010.json") == checkpoint_kind(stem)
    # Chosen on purpose: kept, for the loader to refuse in one line.
    kept = adopt_checkpoint_kind(settings, stem, frozenset({"agent.goal_code"}))
    assert (kept.agent.goal_code, kept.world_model.observation) == ("scalar", "tiles")
    # A fresh actor: only the world model is the checkpoint's.
    fresh = adopt_checkpoint_kind(settings, stem, frozenset(), fresh_actor=True)
    assert (fresh.agent.goal_code, fresh.world_model.observation) == ("scalar", "tiles")
    # A world model alone says nothing of an actor.
    wm = fake_checkpoint(tmp_path, {"kind": "world_model", "observation": "tiles",
                                    "tile_capacity": 512})  # fmt: skip
    assert "agent.goal_code" not in checkpoint_kind(wm)


def test_an_unreadable_or_strange_checkpoint_is_left_to_the_loader(tmp_path: Path) -> None:
    settings = load_settings(None, {})
    assert checkpoint_kind(tmp_path / "missing") == {}
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert adopt_checkpoint_kind(settings, tmp_path / "bad", frozenset()) == settings
    odd = fake_checkpoint(tmp_path, {"kind": "agent", "observation": "smells"})
    with pytest.raises(UserError, match="records settings this version does not know"):
        adopt_checkpoint_kind(settings, odd, frozenset())
