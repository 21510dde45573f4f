"""The token world model: the screen as its 18x20 grid of tile tokens (world_model.observation =
"tiles"). Random token grids stand in for a vocabulary's; the RSSM, heads and losses are the
pixel model's, tested in test_world_model.py."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from clirun import cli
from torch_setup import one_thread  # noqa: F401 (autouse fixture)

from pokedreamer.agent.checkpointer import Start
from pokedreamer.agent.play import SHIPPED_CHECKPOINT
from pokedreamer.config import WorldModelSettings, load_settings
from pokedreamer.errors import UserError
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.checkpoint import load_checkpoint
from pokedreamer.world_model.evaluate import (
    Render,
    StepGuess,
    evaluate_world_model,
    open_loop,
    score_steps,
    summary_line,
    truth_of,
    write_report,
)
from pokedreamer.world_model.model import WorldModel
from pokedreamer.world_model.presets import PRESETS
from pokedreamer.world_model.tile_nets import GRID_HW, TileDecoder
from pokedreamer.world_model.trainer import WorldModelTrainer

TINY = PRESETS["tiny"]
ACTIONS = 8
CAPACITY = 40  # not a square: the last group of the two-level softmax is part empty


def tiles_settings(capacity: int = CAPACITY, **extra: object) -> WorldModelSettings:
    return WorldModelSettings(
        preset="tiny", observation="tiles", tile_capacity=capacity, amp="off", **extra
    )


def token_batch(
    b: int, t: int, capacity: int = CAPACITY, seed: int = 0, grids: int | None = None
) -> dict[str, np.ndarray]:
    """A replayed batch as the replay gives it for tiles; ``grids`` draws every step's grid from
    that many random grids (a copy the model can learn) instead of each afresh."""
    rng = np.random.default_rng(seed)
    if grids is None:
        tiles = rng.integers(0, capacity, (b, t, *GRID_HW), dtype=np.uint16)
    else:
        pool = rng.integers(0, capacity, (grids, *GRID_HW), dtype=np.uint16)
        tiles = pool[rng.integers(0, grids, (b, t))]
    return {
        "tiles": tiles,
        "states": rng.random((b, t, 30), dtype=np.float32),
        "actions": rng.integers(0, ACTIONS, (b, t)),
        "rewards": np.zeros((b, t), np.float32),
        "is_first": np.eye(1, t, dtype=bool).repeat(b, 0),
        "is_terminal": np.zeros((b, t), bool),
    }


def test_shapes_of_the_token_model() -> None:
    wm = WorldModel(TINY, ACTIONS, tiles_settings())
    assert wm.observation == "tiles" and wm.observation_key == "tiles"
    batch = {k: torch.as_tensor(v) for k, v in token_batch(2, 3).items()}
    assert batch["tiles"].dtype == torch.uint16
    embed = wm.embed(batch["tiles"], batch["states"])
    assert embed.shape == (2, 3, TINY.embed_size)
    feat = torch.randn(2, 3, TINY.feat_size)
    logits = wm.decode(feat)
    assert logits.shape == (2, 3, CAPACITY, *GRID_HW)
    # Log-probabilities: each cell's distribution over the vocabulary sums to one.
    torch.testing.assert_close(logits.exp().sum(-3), torch.ones(2, 3, *GRID_HW))
    imagined = wm.imagined_obs(feat)
    assert imagined.shape == (2, 3, *GRID_HW) and imagined.dtype == torch.int64
    assert torch.equal(imagined, logits.argmax(-3))
    state = wm.rssm.initial(2)
    post = wm.observe_step(
        state, batch["actions"][:, 0], batch["tiles"][:, 0], batch["states"][:, 0],
        torch.ones(2, dtype=torch.bool),
    )  # fmt: skip
    assert post.deter.shape == (2, TINY.deter)
    loss, metrics, posts = wm.loss(batch)
    assert loss.ndim == 0 and posts.deter.shape == (2, 3, TINY.deter)
    assert 0.0 <= metrics["cell_acc"] <= 1.0 and "image_acc" not in metrics


def test_pixel_imagined_obs_is_the_argmax_of_the_shades() -> None:
    wm = WorldModel(TINY, ACTIONS)
    assert wm.observation == "pixels" and wm.observation_key == "frames"
    feat = torch.randn(2, TINY.feat_size)
    imagined = wm.imagined_obs(feat)
    assert imagined.shape == (2, *TINY.image_hw) and imagined.dtype == torch.uint8
    assert torch.equal(imagined.long(), wm.decode(feat).argmax(-3))


@pytest.mark.parametrize("capacity", [2, 40, 49])
def test_the_two_level_softmax_is_the_cross_entropy_of_its_full_distribution(
    capacity: int,
) -> None:
    """The loss trains exactly -log p(token) of the distribution that decode gives."""
    torch.manual_seed(capacity)
    decoder = TileDecoder(TINY, capacity)
    with torch.no_grad():  # biases away from zero, so that groups and slots differ
        decoder.slot_bias.normal_()
        decoder.group_out.bias.normal_()
    before = torch.randint(0, capacity + 1, (3, *GRID_HW))  # capacity: none
    cells = decoder.cells(torch.randn(3, TINY.feat_size), before)
    tokens = torch.randint(0, capacity, (3, *GRID_HW))
    log_probs = decoder.log_probs(cells)  # (3, capacity, 18, 20)
    expected = -log_probs.gather(1, tokens.unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(decoder.nll(cells, tokens), expected, rtol=1e-5, atol=1e-5)
    flat = F.cross_entropy(log_probs, tokens, reduction="none")
    torch.testing.assert_close(decoder.nll(cells, tokens), flat, rtol=1e-5, atol=1e-5)
    assert torch.equal(decoder.argmax(cells), log_probs.argmax(1))


def test_the_token_model_learns_to_copy_a_small_batch() -> None:
    torch.manual_seed(0)
    trainer = WorldModelTrainer(tiles_settings(lr=1e-2), ACTIONS)
    batch = token_batch(2, 8, grids=3)
    first = trainer.update(batch)
    for _ in range(75):
        last = trainer.update(batch)
    assert last["image_loss"] < 0.1 * first["image_loss"], (first, last)
    with torch.no_grad():
        _, metrics, _ = trainer.model.loss(trainer.tensors(batch))
    # Every 32nd step counted back from the last is scored: step 7 of each sequence here.
    assert metrics["cell_acc"] > 0.95, metrics


def test_each_step_is_decoded_over_the_grid_before_it_none_at_starts() -> None:
    wm = WorldModel(TINY, ACTIONS, tiles_settings())
    none = wm.decoder.none
    assert none == CAPACITY  # past every token
    grids = torch.arange(2 * 4).reshape(2, 4, 1, 1).expand(2, 4, *GRID_HW).to(torch.uint16)
    is_first = torch.tensor([[True, False, False, False], [False, False, True, False]])
    before = wm.previous_grids(grids, is_first)
    assert before.dtype == torch.int64
    assert before[..., 0, 0].tolist() == [[none, 0, 1, 2], [none, 4, none, 6]]
    assert (before == before[..., :1, :1]).all()
    # The loss scores each step's decoder given that grid: changing a step's grid before it
    # changes that step's image loss only where the decoder reads it.
    feat = torch.randn(2, 4, TINY.feat_size)
    target = wm.target(grids)
    loss, _ = wm._image_loss(feat, target, is_first)
    cells = wm.decoder.cells(feat.reshape(8, -1), before.reshape(8, *GRID_HW))
    expected = wm.decoder.nll(cells, target.reshape(8, *GRID_HW)).sum((-2, -1)).reshape(2, 4)
    torch.testing.assert_close(loss, expected)
    blind = wm.decoder.cells(feat.reshape(8, -1), None)
    assert not torch.allclose(cells, blind)  # the grid before is read
    # Where there is none, it is the same as no grid at all.
    torch.testing.assert_close(
        cells.reshape(2, 4, *GRID_HW, -1)[:, 0], blind.reshape(2, 4, *GRID_HW, -1)[:, 0]
    )


def test_imagination_copies_what_it_cannot_know_from_the_screen_before() -> None:
    """Every sequence shows one random grid throughout, a new one in each batch: no latent
    state can learn them, so the open-loop report's imagined screens are right only if the
    decoder draws each over the one before, the last observed one first."""
    torch.manual_seed(0)
    trainer = WorldModelTrainer(tiles_settings(lr=3e-3), ACTIONS)

    def held(seed: int, b: int = 4, t: int = 6) -> dict[str, np.ndarray]:
        batch = token_batch(b, t, seed=seed)
        batch["tiles"] = np.repeat(batch["tiles"][:, :1], t, 1)
        return batch

    for seed in range(80):
        trainer.update(held(seed))
    _, real, drawn = open_loop(trainer.model, held(10_000, b=8), context=2, render=pattern_render())
    right = (real == drawn).mean((0, 2, 3))  # the share of pixels right at each step
    # Step 0 has no grid before it: the latent alone draws it, and cannot.
    assert right[0] < 0.5 and right[1:].min() > 0.95, right


def test_a_token_checkpoint_round_trips_and_records_its_observation(tmp_path: Path) -> None:
    trainer = WorldModelTrainer(tiles_settings(), ACTIONS, seed=1)
    trainer.update(token_batch(2, 4))
    path = trainer.save(tmp_path)
    _, meta = load_checkpoint(path)
    assert (meta["observation"], meta["tile_capacity"]) == ("tiles", CAPACITY)
    other = WorldModelTrainer(tiles_settings(), ACTIONS, seed=2)
    other.load(path)
    assert other.updates == 1
    for key, value in trainer.model.state_dict().items():
        torch.testing.assert_close(other.model.state_dict()[key], value, rtol=0, atol=0)
    pixels = WorldModelTrainer(WorldModelSettings(preset="tiny", amp="off"), ACTIONS)
    _, pixel_meta = load_checkpoint(pixels.save(tmp_path / "pixels"))
    assert pixel_meta["observation"] == "pixels" and "tile_capacity" not in pixel_meta


def test_a_checkpoint_of_the_other_kind_or_capacity_is_refused_in_one_line(tmp_path: Path) -> None:
    tiles = WorldModelTrainer(tiles_settings(), ACTIONS).save(tmp_path / "tiles")
    pixels = WorldModelTrainer(WorldModelSettings(preset="tiny"), ACTIONS).save(tmp_path / "px")
    with pytest.raises(UserError) as refused:
        WorldModelTrainer(WorldModelSettings(preset="tiny"), ACTIONS).load(tiles)
    assert "world model of tiles" in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(UserError, match='world_model.observation = "pixels"'):
        WorldModelTrainer(tiles_settings(), ACTIONS).load(pixels)
    with pytest.raises(UserError, match=f"tile_capacity = {CAPACITY}"):
        WorldModelTrainer(tiles_settings(capacity=64), ACTIONS).load(tiles)


def test_the_shipped_pixel_checkpoint_loads_as_pixels_and_is_refused_as_tiles(
    tmp_path: Path,
) -> None:
    """It predates the observation key: a pixel model."""
    _, meta = load_checkpoint(SHIPPED_CHECKPOINT)
    assert "observation" not in meta
    settings = load_settings(None, {"run.runs_dir": str(tmp_path)})
    run = RunDir.create(settings, "start")
    start = Start.find(run, SHIPPED_CHECKPOINT)
    assert start is not None
    wm = start.world_model_settings(settings.world_model, settings.env.num_actions)
    assert wm.observation == "pixels"
    with pytest.raises(UserError, match="is a world model of pixels"):
        start.world_model_settings(
            settings.world_model.model_copy(update={"observation": "tiles"}),
            settings.env.num_actions,
        )


def test_run_refuses_a_pixel_checkpoint_under_tiles_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the CLI (the working directory is the test's own)."""
    monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__OBSERVATION", "tiles")
    result = cli(
        "run", "--headless", "--no-train", "--steps", "1", "--checkpoint", str(SHIPPED_CHECKPOINT)
    )
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "is a world model of pixels" in line and "POKEDREAMER_WORLD_MODEL__OBSERVATION" in line


def test_checkpoint_json_is_plain(tmp_path: Path) -> None:
    path = WorldModelTrainer(tiles_settings(), ACTIONS).save(tmp_path)
    record = json.loads(path.with_name(path.name + ".json").read_text())
    assert record["meta"]["settings"]["observation"] == "tiles"


# --- the open-loop report ----------------------------------------------------------------------


def pattern_render(capacity: int = CAPACITY, seed: int = 0) -> Render:
    """A stand-in vocabulary's render: a random 8x8 pattern of shades per token."""
    patterns = np.random.default_rng(seed).integers(0, 4, (capacity, 8, 8), dtype=np.uint8)

    def render(tokens: np.ndarray) -> np.ndarray:
        cells = patterns[tokens]  # (..., 18, 20, 8, 8)
        lead = tokens.shape[:-2]
        return cells.swapaxes(-3, -2).reshape(*lead, 144, 160)

    return render


def test_the_open_loop_report_of_a_token_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    wm = WorldModel(TINY, ACTIONS, tiles_settings())
    batch = token_batch(3, 7, grids=2)
    report, real, model = open_loop(wm, batch, context=2, render=pattern_render())
    assert report.observation == "tiles" and report.horizon == 5
    assert real.shape == model.shape == (3, 7, 144, 160) and real.dtype == np.uint8
    # The real frames are the true grids rendered.
    np.testing.assert_array_equal(real, pattern_render()(batch["tiles"]))
    assert report.recon_cell_accuracy is not None and 0.0 <= report.recon_cell_accuracy <= 1.0
    row = report.at(5)
    assert {"cell_accuracy", "baseline_cell_accuracy", "psnr", "baseline_psnr"} <= row.keys()
    paths = write_report(tmp_path, report, real, model, {"checkpoint": "wm-1"})
    assert "cells right where the map is right" in paths["markdown"].read_text()
    saved = json.loads(paths["json"].read_text())
    assert saved["observation"] == "tiles" and "cell_accuracy" in saved["steps"][0]
    assert "cells right" in summary_line(report)


def test_cell_accuracy_counts_the_cells_right_where_the_map_is_right() -> None:
    tokens = torch.zeros(2, 1, *GRID_HW, dtype=torch.int64)
    truth = truth_of(torch.zeros(2, 1, 144, 160), torch.zeros(2, 1, 30), torch.zeros(2, 1), tokens)
    guessed = tokens.clone()
    guessed[0, 0, :9] = 1  # half the cells of sequence 0 wrong
    guess = StepGuess(truth.shades, truth.map_id.clone(), truth.x, truth.y, truth.reward, guessed)
    assert score_steps(guess, truth)[0]["cell_accuracy"] == 0.75
    guess.map_id[1] = 7  # sequence 1's map wrong: only sequence 0 counts
    assert score_steps(guess, truth)[0]["cell_accuracy"] == 0.5
    guess.map_id[0] = 7
    assert math.isnan(score_steps(guess, truth)[0]["cell_accuracy"])


def test_the_report_of_a_token_model_without_a_vocabulary_is_refused(tmp_path: Path) -> None:
    settings = load_settings(
        None, {"run.runs_dir": str(tmp_path), "world_model.observation": "tiles"}
    )
    run = RunDir.create(settings, "tokens")
    WorldModelTrainer(settings.world_model, settings.env.num_actions).save(run.checkpoints)
    with pytest.raises(UserError, match="no tile vocabulary"):
        evaluate_world_model(settings, run, run, None, 4, 2, 3)


def test_world_model_verbs_refuse_the_other_observation_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A pixel run's replay and checkpoint, then the token model asked of them: one line each,
    and nothing written."""
    monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__PRESET", "tiny")
    monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__BATCH_LENGTH", "16")
    result = cli("collect", "--run", "px", "--steps", "100", "--envs", "1")
    assert result.returncode == 0, result.stderr
    checkpoints = tmp_path / "runs" / "px" / "checkpoints"

    def as_kind(kind: str, *args: str) -> subprocess.CompletedProcess[str]:
        # Explicit each time: `train world-model` writes the run's config.toml with the
        # settings it was given, even when it then refuses them.
        monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__OBSERVATION", kind)
        return cli(*args)

    def refused(*args: str) -> str:
        result = as_kind("tiles", *args)
        assert result.returncode != 0
        [line] = result.stderr.strip().splitlines()
        return line

    train = ("train", "world-model", "--run", "px", "--updates", "1")
    assert "holds a pixel replay (chunks without tiles.npz)" in refused(*train)
    assert not any(checkpoints.glob("*.json"))
    result = as_kind("pixels", *train)
    assert result.returncode == 0, result.stderr
    assert "wm-000000001 is a world model of pixels" in refused(*train)
    assert [p.name for p in checkpoints.glob("*.json")] == ["wm-000000001.json"]
