"""The world model's pipeline on real cartridge data: collect, train, resume, evaluate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_setup import one_thread  # noqa: F401 (autouse fixture)

from pokedreamer.agent.collect import collect
from pokedreamer.config import Settings, load_settings
from pokedreamer.errors import UserError
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.checkpoint import latest_checkpoint, load_checkpoint
from pokedreamer.world_model.evaluate import (
    StepGuess,
    clean_sequences,
    evaluate_run,
    open_loop,
    score_steps,
    summary_line,
    write_report,
)
from pokedreamer.world_model.replay import Replay
from pokedreamer.world_model.train import train_world_model
from pokedreamer.world_model.trainer import (
    BURN_IN,
    CHECKPOINT_NAME,
    WorldModelTrainer,
    with_context,
)

TINY = {
    "world_model.preset": "tiny",
    "world_model.batch_size": 4,
    "world_model.batch_length": 16,
    "world_model.checkpoint_every": 1000,
    "world_model.amp": "off",  # exact float32 arithmetic, so resumed runs compare bit for bit
}


def settings_in(tmp_path: Path, **extra: object) -> Settings:
    return load_settings(None, {**TINY, "run.runs_dir": str(tmp_path / "runs"), **extra})


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, RunDir]:
    tmp = tmp_path_factory.mktemp("wm")
    settings = settings_in(tmp)
    run = RunDir.create(settings, "data")
    result = collect(settings, run, steps=600, envs=1)
    assert result.steps == 600 and result.replay_steps == 600
    return settings, run


def copy_run(settings: Settings, source: RunDir, name: str) -> RunDir:
    run = RunDir.create(settings, name)
    for chunk in source.replay.iterdir():
        (run.replay / chunk.name).write_bytes(chunk.read_bytes())
    return run


def test_training_on_cartridge_data_lowers_the_loss(collected: tuple[Settings, RunDir]) -> None:
    settings, data = collected
    run = copy_run(settings, data, "train")
    train_world_model(settings, run, updates=50)
    losses = [r["loss"] for r in run.read_metrics() if r["kind"] == "world_model"]
    assert len(losses) == 2  # logged at updates 25 and 50
    trainer = WorldModelTrainer(settings.world_model, 8)
    replay = Replay(run.replay, 10_000, settings.world_model.replay_chunk, seed=5)
    batch = replay.sample(8, 16)
    with torch.no_grad():
        fresh, _, _ = trainer.model.loss(trainer.tensors(batch))
    trainer.load(latest_checkpoint(run.checkpoints, CHECKPOINT_NAME))
    with torch.no_grad():
        trained, _, _ = trainer.model.loss(trainer.tensors(batch))
    assert float(trained) < 0.8 * float(fresh), (float(fresh), float(trained))


def test_resume_continues_exactly(collected: tuple[Settings, RunDir]) -> None:
    settings, data = collected
    straight = copy_run(settings, data, "straight")
    train_world_model(settings, straight, updates=4)
    halves = copy_run(settings, data, "halves")
    train_world_model(settings, halves, updates=2)
    train_world_model(settings, halves, updates=2)  # picks up the checkpoint at update 2
    a, meta_a = load_checkpoint(latest_checkpoint(straight.checkpoints, CHECKPOINT_NAME))
    b, meta_b = load_checkpoint(latest_checkpoint(halves.checkpoints, CHECKPOINT_NAME))
    assert meta_a["updates"] == meta_b["updates"] == 4
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_open_loop_report_is_written(collected: tuple[Settings, RunDir], tmp_path: Path) -> None:
    settings, data = collected
    run = copy_run(settings, data, "eval")
    train_world_model(settings, run, updates=2)
    trainer = WorldModelTrainer(settings.world_model, 8)
    replay = Replay(run.replay, 10_000, settings.world_model.replay_chunk, seed=1)
    checkpoint = latest_checkpoint(run.checkpoints, CHECKPOINT_NAME)
    report, paths = evaluate_run(trainer, checkpoint, replay, tmp_path / "eval", 4, 5, 30, "eval")
    assert report.horizon == 30 and len(report.steps) == 30 and report.sequences == 4
    assert all(path.stat().st_size > 0 for path in paths.values())
    assert paths["grid"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["animation"].read_bytes()[:6] == b"GIF89a"
    assert "| 29 |" in paths["markdown"].read_text()


def guess_of(shades: list[np.ndarray], map_id: list[int], x: list[int], y: list[int]) -> StepGuess:
    """A one-step guess (B sequences, H = 1) from hand-made frames and positions."""
    column = [[v] for v in map_id]
    return StepGuess(
        shades=torch.as_tensor(np.stack(shades))[:, None],
        map_id=torch.tensor(column),
        x=torch.tensor([[v] for v in x], dtype=torch.float32),
        y=torch.tensor([[v] for v in y], dtype=torch.float32),
        reward=torch.zeros(len(map_id), 1),
    )


def test_psnr_is_of_the_error_pooled_over_the_steps_frames() -> None:
    true = np.zeros((4, 4), np.uint8)
    wrong = true.copy()
    wrong[0, 0] = 3  # one pixel of 16 off by the whole range of shades
    truth = guess_of([true, true], [1, 1], [0, 0], [0, 0])
    guess = guess_of([true, wrong], [1, 1], [0, 0], [0, 0])
    (row,) = score_steps(guess, truth)
    # Pooled: one error of 1.0 in 32 pixels, so MSE 1/32 and 15.05 dB. A mean of per-frame
    # PSNRs would average a perfect frame (infinite, or a cap) with 12.04 dB.
    assert row["psnr"] == pytest.approx(10 * math.log10(32))
    (perfect,) = score_steps(truth, truth)
    assert perfect["psnr"] == math.inf


def test_tile_error_counts_only_the_sequences_whose_map_is_right() -> None:
    frame = np.zeros((4, 4), np.uint8)
    truth = guess_of([frame] * 3, [1, 1, 2], [5, 5, 5], [5, 5, 5])
    # Sequence 0: right map, 3 and 4 tiles off; 1: right map and tile; 2: wrong map, far off.
    guess = guess_of([frame] * 3, [1, 1, 7], [8, 5, 200], [9, 5, 200])
    (row,) = score_steps(guess, truth)
    assert row["map_accuracy"] == pytest.approx(2 / 3)
    assert row["tile_error"] == pytest.approx(2.5)  # (5 + 0) / 2, the wrong map left out
    (none_right,) = score_steps(guess_of([frame], [9], [5], [5]), guess_of([frame], [1], [5], [5]))
    assert none_right["map_accuracy"] == 0.0 and math.isnan(none_right["tile_error"])


@pytest.fixture(scope="module")
def trained(collected: tuple[Settings, RunDir]) -> tuple[WorldModelTrainer, Replay]:
    settings, data = collected
    run = copy_run(settings, data, "openloop")
    train_world_model(settings, run, updates=2)
    trainer = WorldModelTrainer(settings.world_model, 8)
    trainer.load(latest_checkpoint(run.checkpoints, CHECKPOINT_NAME))
    return trainer, Replay(run.replay, 10_000, settings.world_model.replay_chunk, seed=3)


def test_open_loop_scores_the_frames_it_returns_by_their_pooled_error(
    trained: tuple[WorldModelTrainer, Replay],
) -> None:
    trainer, replay = trained
    batch = clean_sequences(replay, 4, 5 + 6)
    report, real, model = open_loop(trainer.model, batch, context=5)
    for i, row in enumerate(report.steps):
        error = ((real[:, 5 + i].astype(float) - model[:, 5 + i].astype(float)) / 3) ** 2
        expected = -10 * math.log10(error.mean()) if error.mean() > 0 else math.inf
        assert row["psnr"] == pytest.approx(expected, rel=1e-5), i
    observed = ((real[:, :5].astype(float) - model[:, :5].astype(float)) / 3) ** 2
    assert report.recon_psnr == pytest.approx(-10 * math.log10(observed.mean()), rel=1e-5)


def test_the_nothing_moves_baseline_is_perfect_where_nothing_moves(
    trained: tuple[WorldModelTrainer, Replay], tmp_path: Path
) -> None:
    trainer, replay = trained
    batch = clean_sequences(replay, 3, 5 + 4)
    for key in ("frames", "states"):
        batch[key] = np.repeat(batch[key][:, :1], 9, axis=1)
    batch["rewards"] = np.full_like(batch["rewards"], -0.01)  # the stuck penalty, say
    report, real, model = open_loop(trainer.model, batch, context=5)
    for row in report.steps:
        assert row["baseline_psnr"] == math.inf
        assert row["baseline_map_accuracy"] == 1.0
        assert row["baseline_tile_error"] == 0.0
        assert row["baseline_reward_error"] == 0.0
    assert "(still ∞ dB)" in summary_line(report)
    paths = write_report(tmp_path, report, real, model, {})
    saved = json.loads(paths["json"].read_text())  # strict JSON: a perfect PSNR is null
    assert saved["steps"][0]["baseline_psnr"] is None
    assert saved["steps"][0]["baseline_map_accuracy"] == 1.0
    assert "| 1 |" in paths["markdown"].read_text() and "(∞ dB)" in paths["markdown"].read_text()


def test_training_an_empty_run_says_collect_first(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    run = RunDir.create(settings, "empty")
    with pytest.raises(UserError, match="collect first"):
        train_world_model(settings, run, updates=1)


def test_a_checkpoint_of_another_preset_is_refused(collected: tuple[Settings, RunDir]) -> None:
    settings, data = collected
    run = copy_run(settings, data, "other")
    train_world_model(settings, run, updates=1)
    small = settings.model_copy(
        update={"world_model": settings.world_model.model_copy(update={"preset": "small"})}
    )
    with pytest.raises(UserError, match="another config"):
        train_world_model(small, run, updates=1)


def test_with_context_marks_the_posteriors_imagination_may_start_from() -> None:
    is_first = torch.zeros(3, 6, dtype=torch.bool)
    is_first[:, 0] = True  # as sampled: every sequence starts as an episode does
    is_first[1, 4] = True  # an episode starts inside sequence 1
    cut = torch.tensor([False, True, True])  # sequence 0 began at an episode's first step
    mask = with_context(is_first, cut, burn_in=2)
    assert mask.int().tolist() == [
        [1, 1, 1, 1, 1, 1],
        [0, 0, 1, 1, 1, 1],
        [0, 0, 1, 1, 1, 1],
    ]
    # At most half a sequence is burnt in; without `cut`, a sequence whose step 0 is not an
    # episode's first counts as cut.
    assert with_context(is_first, cut, burn_in=9).int()[2].tolist() == [0, 0, 0, 1, 1, 1]
    plain = torch.zeros(1, 4, dtype=torch.bool)
    assert with_context(plain, None, burn_in=1).int().tolist() == [[0, 1, 1, 1]]


def test_a_sequence_cut_mid_episode_is_filtered_as_from_a_reset(
    collected: tuple[Settings, RunDir],
) -> None:
    """Replay sequences cut from the middle of the collected episode begin, in the world
    model's filter, with the very state the agent begins an episode with (a reset: no past,
    no action), and their first BURN_IN posteriors are not imagined from."""
    settings, data = collected
    wm = settings.world_model
    replay = Replay(data.replay, wm.replay_capacity, wm.replay_chunk, seed=3)
    trainer = WorldModelTrainer(wm, settings.env.num_actions)
    batch = replay.sample(wm.batch_size, wm.batch_length)
    assert batch["is_first"][:, 0].all() and (batch["actions"][:, 0] == 0).all()
    assert batch["cut"].sum() >= 2  # most of the collected episode's sequences begin inside it
    t = trainer.tensors(batch)
    b = wm.batch_size
    with torch.no_grad():
        acting = trainer.model.observe_step(
            trainer.model.rssm.initial(b), torch.zeros(b, dtype=torch.int64),
            t["frames"][:, 0], t["states"][:, 0], torch.ones(b, dtype=torch.bool),
        )  # fmt: skip
    trainer.update(batch)
    assert trainer.last_posts is not None and trainer.last_context is not None
    torch.testing.assert_close(trainer.last_posts.deter[:, 0], acting.deter)
    burnt = min(BURN_IN, wm.batch_length // 2)
    cut = t["cut"]
    for i in range(b):
        restarts = t["is_first"][i, 1:].nonzero()
        first_ok = 0 if not cut[i] else min(burnt, int(restarts[0]) + 1 if len(restarts) else burnt)
        expected = [j >= first_ok for j in range(wm.batch_length)]
        assert trainer.last_context[i].tolist() == expected, i
