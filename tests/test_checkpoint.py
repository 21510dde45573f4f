"""Checkpoints: exact round trips and resume, and one-line refusals of anything that is not a
complete checkpoint of this config, without ever unpickling a file."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from clirun import cli
from pickle_probe import CALLS, Exploit
from torch import nn

import pokedreamer
from pokedreamer.env.state import VECTOR_SIZE
from pokedreamer.errors import UserError
from pokedreamer.planner.facts import GameFacts
from pokedreamer.world_model import checkpoint
from pokedreamer.world_model.checkpoint import (
    VERSION,
    checkpoint_path,
    generator_state,
    latest_checkpoint,
    load_checkpoint,
    module_tensors,
    optimizer_tensors,
    restore_generator,
    restore_module,
    restore_optimizer,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from pokedreamer.world_model.heads import StateRanges
from pokedreamer.world_model.model import WorldModel
from pokedreamer.world_model.presets import PRESETS

META = {"preset": {"deter": 512, "stoch": 32, "kernels": [4, 3]}, "num_actions": 9, "step": 1000}


def sample_tensors() -> dict[str, torch.Tensor]:
    weight = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    return {
        "w": weight,
        "tied": weight,  # the same tensor twice, as tied weights are
        "row": weight[2],  # a view into it
        "column": weight[:, 1],  # a non-contiguous view
        "half": torch.tensor([1.5, -2.25], dtype=torch.float16),
        "bf16": torch.tensor([3.0, 0.125], dtype=torch.bfloat16),
        "steps": torch.tensor([1, 2**40], dtype=torch.int64),
        "bytes": torch.arange(5, dtype=torch.uint8),
        "mask": torch.tensor([True, False]),
        "scalar": torch.tensor(7.5),
        "empty": torch.zeros(0, 3),
    }


def refusal(path: Path, expect: dict[str, Any] | None = None) -> str:
    with pytest.raises(UserError) as info:
        load_checkpoint(path, expect)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_round_trip(tmp_path: Path) -> None:
    path = checkpoint_path(tmp_path / "checkpoints", "wm", 1000)
    assert path.name == "wm-000001000"
    tensors = sample_tensors()
    save_checkpoint(path, tensors, META)
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "wm-000001000.json",
        "wm-000001000.safetensors",
    ]
    loaded, meta = load_checkpoint(path, expect={"preset": META["preset"], "num_actions": 9})
    assert meta == META
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype, name
        assert torch.equal(loaded[name], tensor), name
    # Either file names the checkpoint as well as the stem does.
    for name in ("wm-000001000.safetensors", "wm-000001000.json"):
        assert load_checkpoint(path.parent / name)[1] == META
    # Tuples in the expected config match the lists JSON gave back.
    load_checkpoint(path, expect={"preset": {**META["preset"], "kernels": (4, 3)}})
    # Saving over it replaces both files.
    save_checkpoint(path, {"w": torch.ones(2)}, {"step": 2})
    loaded, meta = load_checkpoint(path)
    assert meta == {"step": 2} and torch.equal(loaded["w"], torch.ones(2))


def test_meta_that_is_not_json_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "wm-1", {"w": torch.ones(1)}, {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_config_mismatch_names_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "wm-000000010"
    save_checkpoint(path, {"w": torch.ones(1)}, META)
    message = refusal(
        path,
        expect={
            "preset": {"deter": 256, "stoch": 32, "kernels": [4, 3], "depth": 2},
            "num_actions": 9,
            "obs": "frames",
        },
    )
    assert "preset.deter (checkpoint 512, now 256)" in message
    assert "preset.depth" in message
    assert "obs (missing from the checkpoint)" in message
    assert "num_actions" not in message and "stoch" not in message and "step" not in message
    assert str(path) in message


def test_missing_or_incomplete_files(tmp_path: Path) -> None:
    path = tmp_path / "wm-000000010"
    assert "no checkpoint" in refusal(path)
    save_checkpoint(path, {"w": torch.ones(1)}, META)
    json_file = path.with_name(path.name + ".json")
    json_text = json_file.read_text()
    json_file.unlink()
    assert "incomplete" in refusal(path)

    json_file.write_text(json_text[:-10])
    assert "cannot read checkpoint metadata" in refusal(path)
    json_file.write_text(json.dumps({"step": 5}))
    assert "not a pokedreamer checkpoint" in refusal(path)
    record = json.loads(json_text)
    del record["meta"]
    json_file.write_text(json.dumps(record))
    assert '"meta"' in refusal(path)
    json_file.write_text(json_text)
    path.with_name(path.name + ".safetensors").unlink()
    assert "has no wm-000000010.safetensors" in refusal(path)


SHIPPED = Path(__file__).resolve().parent.parent / "pokedreamer/agent/shipped/fixture-agent"


def test_every_checkpoint_records_its_format_version(tmp_path: Path) -> None:
    path = tmp_path / "wm-000000010"
    save_checkpoint(path, {"w": torch.ones(1)}, META)
    record = json.loads(path.with_name(path.name + ".json").read_text())
    assert (record["format"], record["version"]) == ("pokedreamer-checkpoint", VERSION)
    # The shipped checkpoint is of a format this code loads.
    _, meta = load_checkpoint(SHIPPED)
    assert meta["kind"] == "agent"


def test_a_newer_or_dropped_format_version_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wm-000000010"
    save_checkpoint(path, {"w": torch.ones(1)}, META)
    json_file = path.with_name(path.name + ".json")
    record = json.loads(json_file.read_text())

    json_file.write_text(json.dumps({**record, "version": VERSION + 1}))
    message = refusal(path)
    assert f"format version {VERSION + 1}, newer than this pokedreamer loads" in message
    assert "upgrade" in message

    # A format this code no longer loads names what changed since and what to do.
    json_file.write_text(json.dumps(record))
    monkeypatch.setattr(checkpoint, "OLDEST_VERSION", VERSION + 1)
    monkeypatch.setattr(checkpoint, "VERSION", VERSION + 1)
    monkeypatch.setitem(checkpoint.CHANGES, VERSION + 1, "tensors renamed")
    message = refusal(path)
    assert f"format version {VERSION}, which this pokedreamer no longer loads" in message
    assert f"{VERSION + 1}: tensors renamed" in message
    assert "start a new run" in message

    for version in (None, "1", True):
        json_file.write_text(json.dumps({**record, "version": version}))
        assert 'lacks an integer "version"' in refusal(path)


def test_pickle_file_is_refused_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "wm-000000010"
    save_checkpoint(path, {"w": torch.ones(1)}, META)
    tensors_file = path.with_name(path.name + ".safetensors")
    # A torch.save file (a zip of pickles) and a bare pickle, each under the checkpoint's name.
    torch.save({"w": torch.ones(1), "payload": Exploit()}, tensors_file)
    message = refusal(path)
    assert "not a valid safetensors file" in message and str(tensors_file) in message
    tensors_file.write_bytes(b"\x80\x04\x95" + bytes(100))  # a pickle protocol 4 opening
    assert "not a valid safetensors file" in refusal(path)
    assert CALLS == []


def test_truncated_or_altered_tensor_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wm-000000010"
    save_checkpoint(path, {"w": torch.randn(100)}, META)
    tensors_file = path.with_name(path.name + ".safetensors")
    data = tensors_file.read_bytes()
    tensors_file.write_bytes(data[:-100])
    assert "not a valid safetensors file" in refusal(path)
    tensors_file.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit flipped
    assert "does not match" in refusal(path)


def test_latest_checkpoint_skips_incomplete_ones(tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    assert latest_checkpoint(directory) is None
    for step in (100, 200, 1000):
        save_checkpoint(checkpoint_path(directory, "wm", step), {"w": torch.ones(1)}, {})
    save_checkpoint(checkpoint_path(directory, "agent", 5000), {"w": torch.ones(1)}, {})
    # An interrupted save: tensors written, JSON not yet.
    checkpoint_path(directory, "wm", 1000).with_name("wm-000001000.json").unlink()
    (directory / "notes.json").write_text("{}")
    assert latest_checkpoint(directory, "wm") == directory / "wm-000000200"
    assert latest_checkpoint(directory) == directory / "agent-000005000"
    assert latest_checkpoint(directory, "actor") is None


def make_model(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(8, 16), nn.LayerNorm(16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 1)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95), weight_decay=1e-3)
    return model, optimizer


def train(
    model: nn.Module, optimizer: torch.optim.Optimizer, data: np.random.Generator, n: int
) -> None:
    # Data from a numpy Generator, noise and dropout from torch's RNG: resume must restore both.
    for _ in range(n):
        x = torch.from_numpy(data.standard_normal((4, 8), dtype=np.float32))
        target = torch.randn(4, 1)
        loss = ((model(x) - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_exact_resume(tmp_path: Path) -> None:
    n, m = 6, 5
    straight, straight_opt = make_model(0)
    train(straight, straight_opt, np.random.default_rng(5), n + m)

    model, optimizer = make_model(0)
    data = np.random.default_rng(5)
    train(model, optimizer, data, n)
    opt_tensors, opt_state = optimizer_tensors("opt", optimizer)
    meta = {
        "step": n,
        "optimizer": opt_state,
        "rng": rng_state(),
        "data_rng": generator_state(data),
    }
    path = checkpoint_path(tmp_path, "wm", n)
    save_checkpoint(path, {**module_tensors("wm", model), **opt_tensors}, meta)

    # Fresh objects, other weights, other RNG states: everything must come from the checkpoint.
    resumed, resumed_opt = make_model(123)
    resumed_opt.param_groups[0]["lr"] = 0.5
    resumed_data = np.random.default_rng(99)
    torch.randn(10)
    tensors, meta = load_checkpoint(latest_checkpoint(tmp_path) or path)
    restore_module("wm", resumed, tensors)
    restore_optimizer("opt", resumed_opt, tensors, meta["optimizer"])
    restore_rng(meta["rng"])
    restore_generator(resumed_data, meta["data_rng"])
    assert resumed_opt.param_groups[0]["betas"] == (0.8, 0.95)
    train(resumed, resumed_opt, resumed_data, m)

    for (name, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    for a, b in zip(straight_opt.state.values(), resumed_opt.state.values(), strict=True):
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_restore_refuses_misfits() -> None:
    model, optimizer = make_model(0)
    train(model, optimizer, np.random.default_rng(0), 1)
    tensors = module_tensors("wm", model)
    opt_tensors, opt_state = optimizer_tensors("opt", optimizer)
    wider = nn.Sequential(nn.Linear(8, 32), nn.LayerNorm(32), nn.Tanh(), nn.Linear(32, 1))
    with pytest.raises(
        UserError, match=r"0.weight is float32 \[16, 8\] there but float32 \[32, 8\]"
    ):
        restore_module("wm", wider, tensors, source="wm-000000001")
    with pytest.raises(UserError, match="missing"):
        restore_module("wm", model, {k: v for k, v in tensors.items() if "bias" not in k})
    with pytest.raises(UserError, match="does not fit the 'opt' optimizer"):
        restore_optimizer("opt", torch.optim.Adam(wider.parameters()), opt_tensors, opt_state)
    smaller = nn.Linear(8, 16)
    with pytest.raises(UserError, match=r"parameters per group \[6\] there, \[2\] here"):
        restore_optimizer("opt", torch.optim.Adam(smaller.parameters()), opt_tensors, opt_state)


@pytest.mark.parametrize("bits", [np.random.PCG64, np.random.MT19937, np.random.Philox])
def test_generator_state_round_trips_through_json(bits: type) -> None:
    original = np.random.Generator(bits(7))
    original.random(3)
    state = json.loads(json.dumps(generator_state(original)))
    copy = np.random.Generator(bits(8))
    restore_generator(copy, state)
    np.testing.assert_array_equal(original.random(5), copy.random(5))
    with pytest.raises(UserError, match="does not fit"):
        restore_generator(np.random.Generator(np.random.SFC64(0)), state)


def test_torch_rng_state_round_trips_through_json() -> None:
    state = json.loads(json.dumps(rng_state()))
    expected = torch.rand(4)
    torch.rand(10)
    restore_rng(state)
    assert torch.equal(torch.rand(4), expected)
    with pytest.raises(UserError, match="RNG state"):
        restore_rng({"torch": "bm90IGEgc3RhdGU="})


def test_source_never_unpickles() -> None:
    root = Path(__file__).parents[1] / "pokedreamer/world_model"
    for name in ("checkpoint.py", "replay.py"):
        for node in ast.walk(ast.parse((root / name).read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any("pickle" in module for module in modules), name
            if isinstance(node, ast.Call):
                assert ast.unparse(node.func) not in ("torch.load", "pickle.load"), name


# --- migrating the world model's state heads ---------------------------------------------------

SHIPPED = Path(pokedreamer.__file__).parent / "agent" / "shipped" / "fixture-agent"


def fixture_world_model() -> WorldModel:
    ranges = StateRanges.of_maps(GameFacts.fixture().maps.values())
    return WorldModel(PRESETS["tiny"], 8, ranges=ranges)


def test_the_shipped_checkpoint_migrates_into_sized_state_heads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its 256-way state heads do not fit the fixture's: everything else is kept, the state
    heads start as initialised, one line says so, and the optimiser drops only their moments."""
    tensors, meta = load_checkpoint(SHIPPED)
    torch.manual_seed(0)
    wm = fixture_world_model()
    fresh = {k: v.clone() for k, v in wm.state_dict().items() if k.startswith("state_heads.")}
    with caplog.at_level("WARNING", logger="pokedreamer.world_model.checkpoint"):
        restore_module("model", wm, tensors, SHIPPED)
    [record] = caplog.records
    assert "state heads" in record.getMessage() and "\n" not in record.getMessage()
    for key, value in wm.state_dict().items():
        expected = fresh[key] if key.startswith("state_heads.") else tensors[f"model/{key}"]
        torch.testing.assert_close(value, expected, rtol=0, atol=0, msg=key)

    optimizer = torch.optim.Adam(wm.parameters())
    restore_optimizer("optimizer", optimizer, tensors, meta["optimizer"])
    heads = {id(p) for p in wm.state_heads.parameters()}
    for param in wm.parameters():
        assert (param in optimizer.state) == (id(param) not in heads)
    wm.loss(batch_for(wm))[0].backward()
    optimizer.step()  # the re-initialised heads' moments start from nothing


def test_fitting_state_heads_load_without_a_migration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    saved = fixture_world_model()
    tensors = module_tensors("model", saved)
    wm = fixture_world_model()
    with caplog.at_level("WARNING", logger="pokedreamer.world_model.checkpoint"):
        restore_module("model", wm, tensors)
    assert caplog.records == []
    for key, value in wm.state_dict().items():
        torch.testing.assert_close(value, tensors[f"model/{key}"], rtol=0, atol=0)


def test_state_heads_for_other_ranges_of_the_same_shape_are_migrated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Same shapes, other meanings (other map ids): the classes would be misread, so the heads
    start afresh rather than load."""
    other = StateRanges((1, 2, 3, 4), 10, 10)
    saved = WorldModel(PRESETS["tiny"], 8, ranges=other)
    tensors = module_tensors("model", saved)
    wm = fixture_world_model()
    before = wm.state_heads.mlp[-1].weight.clone()
    with caplog.at_level("WARNING", logger="pokedreamer.world_model.checkpoint"):
        restore_module("model", wm, tensors)
    assert len(caplog.records) == 1
    torch.testing.assert_close(wm.state_heads.mlp[-1].weight, before, rtol=0, atol=0)
    assert wm.state_heads.ranges.tolist() == [10, 10, 0x00, 0x0C, 0x25, 0x36]


def batch_for(wm: WorldModel, b: int = 2, t: int = 3) -> dict[str, torch.Tensor]:
    return {
        "frames": torch.randint(0, 4, (b, t, 144, 160), dtype=torch.uint8),
        "states": torch.rand(b, t, VECTOR_SIZE),
        "actions": torch.randint(0, wm.num_actions, (b, t)),
        "rewards": torch.zeros(b, t),
        "is_first": torch.zeros(b, t, dtype=torch.bool),
        "is_terminal": torch.zeros(b, t, dtype=torch.bool),
    }


def test_the_shipped_checkpoint_loads_and_acts_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    acting = cli("run", "--no-train", "--headless", "--steps", "50")
    assert acting.returncode == 0, acting.stderr
    assert "done: 50 steps" in acting.stdout and "Traceback" not in acting.stderr
    # What only matters to training is told to a run that trains, in one line each: its state
    # heads start untrained, its critic learnt earlier returns. A run that only acts is quiet.
    told = ("state heads", "earlier imagined returns")
    assert not [line for line in acting.stderr.splitlines() if any(t in line for t in told)]
    training = cli("run", "--headless", "--steps", "5", "--name", "trains")
    assert training.returncode == 0, training.stderr
    for words in told:
        assert len([line for line in training.stderr.splitlines() if words in line]) == 1, words
