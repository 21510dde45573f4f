"""``pokedreamer train world-model``: updates on a run's replay, logged and checkpointed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pokedreamer.errors import UserError

if TYPE_CHECKING:
    from pokedreamer.config import Settings
    from pokedreamer.rundir import RunDir
    from pokedreamer.world_model.distributed import Ranks
    from pokedreamer.world_model.heads import StateRanges

LOG_EVERY = 25


def train_world_model(
    settings: Settings,
    run: RunDir,
    updates: int,
    ranges: StateRanges | None = None,
    ranks: Ranks | None = None,
    on_ready: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Trains for ``updates`` more updates, resuming from the run's latest checkpoint.
    ``ranks``: under torchrun, this process's place among the learner's (world_model.distributed);
    each trains on its share of every batch, and rank 0 alone writes checkpoints and metrics.
    ``on_ready``: called once the checkpoint and the replay have passed their checks, before the
    first update (the CLI saves the run's settings there, so a refused command changes nothing)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from pokedreamer.world_model.checkpoint import (
        checkpoint_path,
        generator_state,
        latest_checkpoint,
        restore_generator,
    )
    from pokedreamer.world_model.distributed import SINGLE, barrier, rank_seed
    from pokedreamer.world_model.observation import check_batch
    from pokedreamer.world_model.replay import run_replay, training_batch
    from pokedreamer.world_model.trainer import CHECKPOINT_NAME, WorldModelTrainer

    ranks = ranks or SINGLE
    wm = settings.world_model
    rows = ranks.share(wm.batch_size)
    trainer = WorldModelTrainer(
        wm, settings.env.num_actions, seed=settings.env.seed, ranges=ranges, ranks=ranks
    )
    latest = latest_checkpoint(run.checkpoints, CHECKPOINT_NAME)
    # The checkpoint first: a model of the other observation is refused as such, before its
    # replay (of that kind too) would be.
    meta = trainer.load(latest) if latest is not None else {}
    replay = run_replay(run.replay, wm, seed=settings.env.seed)
    if replay.num_sequences(wm.batch_length) == 0:
        raise UserError(
            f"{run.replay} holds {len(replay)} steps but no sequence of {wm.batch_length}: "
            f"collect first (pokedreamer collect --run {run.path.name})"
        )
    replay.adopt_checkpoint(meta, latest)
    if "replay_rng" in meta:  # so the resumed run draws the batches it would have drawn
        restore_generator(replay.rng, meta["replay_rng"])

    # A replay of the other observation is refused before anything is trained or saved; the
    # look draws one sequence and puts the sampler back, so a resumed run draws as it would have.
    drawn_from = replay.rng.bit_generator.state
    check_batch(replay.sample(1, wm.batch_length), wm, run.replay)
    replay.rng.bit_generator.state = drawn_from
    rank_seed(settings.env.seed, trainer.updates, ranks)
    if on_ready is not None:
        on_ready()

    def save() -> Path:
        # Every rank holds the same weights and replay generator: rank 0's are the run's.
        path = checkpoint_path(run.checkpoints, CHECKPOINT_NAME, trainer.updates)
        if ranks.is_main:
            extra = {"replay_rng": generator_state(replay.rng), **replay.checkpoint_meta()}
            trainer.save(run.checkpoints, extra)
        barrier(ranks)
        return path

    target = trainer.updates + updates
    start = time.perf_counter()
    metrics: dict[str, float] = {}
    columns = (TextColumn("world model"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn())  # fmt: skip
    try:
        with Progress(*columns, transient=True, disable=not ranks.is_main) as progress:
            task = progress.add_task("train", total=target, completed=trainer.updates, loss=0.0)
            while trainer.updates < target:
                batch, drawn = training_batch(replay, wm, rows)
                metrics = {**trainer.update(batch), **drawn}
                progress.update(task, completed=trainer.updates, loss=metrics["loss"])
                logged = trainer.updates % LOG_EVERY == 0 or trainer.updates == target
                if logged and ranks.is_main:
                    run.log_metrics(
                        {"kind": "world_model", "update": trainer.updates,
                         "seconds": round(time.perf_counter() - start, 3), **metrics}
                    )  # fmt: skip
                if trainer.updates % wm.checkpoint_every == 0:
                    save()
    finally:
        # Also on Ctrl-C: the work done so far is kept.
        path = save()
    return {"updates": trainer.updates, "seconds": time.perf_counter() - start,
            "checkpoint": str(path), **metrics}  # fmt: skip
