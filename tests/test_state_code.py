"""world_model.state_code: the encoder reads the GameState vector's map id, x and y also as bits.
The code is part of the weights' shape, so every checkpoint records it, a run that chose none
takes the checkpoint's, and one chosen on purpose that does not fit is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import cli
from tiny_run import TINY_ENV
from torch_setup import one_thread  # noqa: F401 (autouse fixture)

from pokedreamer.agent.checkpoint_kind import adopt_checkpoint_kind, checkpoint_kind
from pokedreamer.config import WorldModelSettings, load_settings
from pokedreamer.env.state import VECTOR_FIELDS, VECTOR_SIZE
from pokedreamer.errors import UserError
from pokedreamer.world_model.checkpoint import load_checkpoint
from pokedreamer.world_model.nets import StateEncoder
from pokedreamer.world_model.state_code import state_input, state_input_size
from pokedreamer.world_model.trainer import WorldModelTrainer

ACTIONS = 8


def vector(map_id: int, x: int, y: int) -> torch.Tensor:
    """A GameState vector as the replay gives it back (float16), other fields at 0.5."""
    v = np.full(VECTOR_SIZE, 0.5, np.float32)
    for name, byte in (("map_id", map_id), ("x", x), ("y", y)):
        v[VECTOR_FIELDS.index(name)] = byte / 255.0
    return torch.from_numpy(v.astype(np.float16).astype(np.float32)).unsqueeze(0)


def test_bits_spell_the_map_and_the_cell_exactly_after_float16() -> None:
    scalar = vector(0x36, 4, 9)
    assert torch.equal(state_input(scalar, "scalar"), scalar)
    bits = state_input(scalar, "bits")
    assert bits.shape == (1, state_input_size("bits")) == (1, VECTOR_SIZE + 24)
    assert torch.equal(bits[:, :VECTOR_SIZE], scalar)
    spelled = bits[0, VECTOR_SIZE:].reshape(3, 8).long()
    weights = 2 ** torch.arange(8)
    assert (spelled * weights).sum(dim=1).tolist() == [0x36, 4, 9]
    for byte in range(256):  # every byte survives float16
        assert (state_input(vector(byte, byte, 255 - byte), "bits")[0, VECTOR_SIZE:].reshape(
            3, 8).long() * weights).sum(dim=1).tolist() == [byte, byte, 255 - byte]  # fmt: skip


def test_one_step_moves_a_fresh_bits_encoder_more_than_a_scalar_one() -> None:
    """The point of the code: at initialisation a scalar encoder barely tells neighbouring cells
    (or the house from the gym) apart; with bits they read as different inputs."""
    torch.manual_seed(0)
    scalar, bits = StateEncoder(64, "scalar"), StateEncoder(64, "bits")
    here, step = vector(0x25, 3, 5), vector(0x25, 4, 5)
    house, gym = vector(0x25, 4, 8), vector(0x36, 4, 8)
    with torch.no_grad():
        for a, b in ((here, step), (house, gym)):
            near = (scalar(a) - scalar(b)).norm()
            far = (bits(a) - bits(b)).norm()
            assert far > 10 * near, (far, near)


def test_a_checkpoint_records_its_code_and_the_other_code_is_refused(tmp_path: Path) -> None:
    bits = WorldModelTrainer(WorldModelSettings(preset="tiny", state_code="bits"), ACTIONS)
    assert bits.model.encoder.state_mlp[0].in_features == VECTOR_SIZE + 24
    saved = bits.save(tmp_path / "bits")
    assert load_checkpoint(saved)[1]["state_code"] == "bits"
    scalar = WorldModelTrainer(WorldModelSettings(preset="tiny"), ACTIONS)
    plain = scalar.save(tmp_path / "scalar")
    assert "state_code" not in load_checkpoint(plain)[1]  # as checkpoints before the setting
    with pytest.raises(UserError) as refused:
        WorldModelTrainer(WorldModelSettings(preset="tiny"), ACTIONS).load(saved)
    line = str(refused.value)
    assert '"bits"' in line and "POKEDREAMER_WORLD_MODEL__STATE_CODE=bits" in line
    assert "\n" not in line
    with pytest.raises(UserError, match='world_model.state_code = "scalar"'):
        WorldModelTrainer(WorldModelSettings(preset="tiny", state_code="bits"), ACTIONS).load(plain)
    again = WorldModelTrainer(WorldModelSettings(preset="tiny", state_code="bits"), ACTIONS)
    again.load(saved)
    for key, value in bits.model.state_dict().items():
        torch.testing.assert_close(again.model.state_dict()[key], value, rtol=0, atol=0)


def test_checkpoint_kind_reads_the_code_and_adopts_it_where_none_was_chosen(
    tmp_path: Path,
) -> None:
    path = WorldModelTrainer(WorldModelSettings(preset="tiny", state_code="bits"), ACTIONS).save(
        tmp_path
    )
    assert checkpoint_kind(path)["world_model.state_code"] == "bits"
    settings = load_settings(None, {})
    assert adopt_checkpoint_kind(settings, path, frozenset()).world_model.state_code == "bits"
    chosen = frozenset({"world_model.state_code"})
    assert adopt_checkpoint_kind(settings, path, chosen).world_model.state_code == "scalar"


def meta(path: Path) -> dict[str, object]:
    return json.loads(path.read_text())["meta"]


def test_run_trains_on_bits_and_its_checkpoint_plays_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the CLI: a run made with the code chosen by a variable records it; run
    --checkpoint with nothing set plays it, and with the other code set refuses in one line."""
    for key, value in TINY_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__STATE_CODE", "bits")
    made = cli("run", "--headless", "--steps", "80", "--name", "b")
    assert made.returncode == 0, made.stderr
    assert meta(Path("runs/b/checkpoints/agent-000000080.json"))["state_code"] == "bits"
    monkeypatch.delenv("POKEDREAMER_WORLD_MODEL__STATE_CODE")
    played = cli("run", "--headless", "--no-train", "--steps", "5", "--checkpoint", "runs/b")
    assert played.returncode == 0, played.stderr
    monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__STATE_CODE", "scalar")
    refused = cli("run", "--headless", "--no-train", "--steps", "5", "--checkpoint", "runs/b")
    assert refused.returncode == 2, refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("error: ") and 'world_model.state_code = "bits"' in line
