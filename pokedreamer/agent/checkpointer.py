"""Agent checkpoints: which weights a loop starts from, and saving everything a resumed run
needs to take the same updates — weights, optimisers, counters, the subgoal pool and every RNG.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pokedreamer.agent.actor_critic import check_goal_code, check_goal_input
from pokedreamer.agent.behavior import RETURNS
from pokedreamer.agent.learner import Learner
from pokedreamer.agent.tally import Tally
from pokedreamer.config import Settings, WorldModelSettings
from pokedreamer.errors import UserError
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.checkpoint import (
    checkpoint_path,
    checkpoint_stem,
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
from pokedreamer.world_model.observation import check_observation
from pokedreamer.world_model.presets import PRESETS

CHECKPOINT_NAME = "agent"

log = logging.getLogger(__name__)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint as the user names it — a run folder, its checkpoints folder, the .json or
    .safetensors file, or the stem — as the stem the loaders take."""
    path = Path(path)
    if path.is_dir():
        for folder in (path / "checkpoints", path):
            found = latest_checkpoint(folder, CHECKPOINT_NAME) or latest_checkpoint(folder, "wm")
            if found is not None:
                return found
        raise UserError(f"{path} holds no agent or world-model checkpoint; check the path")
    return checkpoint_stem(path)


def read_checkpoint_meta(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and meta of an agent or world-model checkpoint, checked (UserError otherwise)."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") not in ("agent", "world_model") or "preset" not in meta:
        raise UserError(
            f"{path} is a {meta.get('kind', 'unknown')!r} checkpoint, not an agent or world-model "
            "one; give a checkpoint from pokedreamer run or train world-model"
        )
    return tensors, meta


@dataclass(frozen=True)
class Start:
    """The checkpoint a loop starts from."""

    source: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    resume: bool
    """The run's own checkpoint: its counters and RNGs are restored too, not only weights."""

    @classmethod
    def find(cls, run: RunDir, checkpoint: Path | None) -> Start | None:
        """This run's own latest checkpoint (a resume) before ``checkpoint``; None: neither."""
        resume = latest_checkpoint(run.checkpoints, CHECKPOINT_NAME)
        source = resume or (resolve_checkpoint(checkpoint) if checkpoint else None)
        if source is None:
            return None
        tensors, meta = read_checkpoint_meta(source)
        return cls(source, tensors, meta, resume is not None)

    def world_model_only(self) -> Start:
        """This start with its world model alone: the actor and critic begin afresh."""
        return Start(self.source, self.tensors, {**self.meta, "kind": "world_model"}, False)

    def world_model_settings(
        self, settings: WorldModelSettings, num_actions: int
    ) -> WorldModelSettings:
        """``settings`` with the checkpoint's preset; refused when its buttons or its kind of
        observation differ."""
        meta = self.meta
        check_observation(meta, settings, self.source)
        preset = next((p for p in PRESETS.values() if p.meta() == meta["preset"]), None)
        if preset is None:
            raise UserError(f"{self.source}: its preset {meta['preset'].get('name')!r} is unknown")
        if int(meta["num_actions"]) != num_actions:
            raise UserError(
                f"{self.source} was trained with {meta['num_actions']} buttons, env.buttons has "
                f"{num_actions}; use the env settings it was made with"
            )
        return settings.model_copy(update={"preset": preset.name})


class Checkpointer:
    """Saves and restores a learner and the tally of what the loop has played."""

    def __init__(
        self, run: RunDir, learner: Learner, tally: Tally, settings: Settings, game: str
    ) -> None:
        self.run_dir, self.learner, self.tally = run, learner, tally
        self.settings, self.game = settings, game

    def identity(self) -> dict[str, Any]:
        return {**self.learner.trainer.identity(), "kind": "agent"}

    def save(self) -> Path:
        """Writes ``checkpoints/agent-<steps>``: world model, behaviour, optimisers, counters and
        RNGs, so that ``--resume`` takes the updates this run would have taken."""
        learner, tally = self.learner, self.tally
        path = checkpoint_path(self.run_dir.checkpoints, CHECKPOINT_NAME, tally.steps)
        tensors = module_tensors("model", learner.world_model)
        opt_tensors, opt_meta = optimizer_tensors("optimizer", learner.trainer.optimizer)
        beh_tensors, beh_meta = learner.behavior.state_tensors()
        meta = {
            **self.identity(),
            "updates": learner.trainer.updates,
            "optimizer": opt_meta,
            "behavior": beh_meta,
            "steps": tally.steps,
            "episodes": tally.episodes,
            "badge_episodes": tally.badge_episodes,
            "rng": rng_state(),
            "loop_rng": generator_state(learner.rng),
            "replay_rng": generator_state(learner.replay.rng),
            **learner.replay.checkpoint_meta(),
            # Oldest first, as behaviour learning draws from it.
            "subgoal_pool": learner.pool.dump(),
            "settings": self.settings.model_dump(mode="json", exclude={"planner": {"api_key"}}),
            "game": self.game,
        }
        save_checkpoint(path, {**tensors, **opt_tensors, **beh_tensors}, meta)
        return path

    def load(self, start: Start, optimizer: bool) -> list[dict[str, Any]]:
        """Restores the weights (and the optimiser's moments when ``optimizer``); on a resume
        the counters and RNGs too. Returns the saved subgoal pool (empty unless resuming):
        the caller restores it once the pool is seeded."""
        learner, tensors, meta = self.learner, start.tensors, start.meta
        if meta["kind"] == "agent":  # refused before anything is said about the weights
            check_goal_input(meta["behavior"], self.settings.agent.goal_input, start.source)
            check_goal_code(meta["behavior"], self.settings.agent.goal_code, start.source)
        # What only matters to training (re-sized state heads, a critic of older returns) is
        # told to a run that trains, not to one that only acts.
        restore_module("model", learner.world_model, tensors, start.source, announce=optimizer)
        learner.replay.adopt_checkpoint(meta, start.source)
        if "optimizer" in meta and optimizer:
            restore_optimizer("optimizer", learner.trainer.optimizer, tensors, meta["optimizer"])
        if meta["kind"] == "agent":
            learner.behavior.load_state_tensors(tensors, meta["behavior"], source=start.source)
            if optimizer and meta["behavior"].get("returns", 1) != RETURNS:
                log.warning(
                    "%s: behaviour trained on earlier imagined returns (gamma*phi paid at done, "
                    "weightless returns scaled): loaded as is; training on re-learns its critic",
                    start.source,
                )
        if not start.resume:
            return []  # weights to start from; this run keeps its own counters
        learner.trainer.updates = int(meta["updates"])
        self.tally.steps = int(meta["steps"])
        self.tally.episodes = int(meta["episodes"])
        self.tally.badge_episodes = int(meta.get("badge_episodes", 0))
        restore_rng(meta["rng"])
        restore_generator(learner.rng, meta["loop_rng"])
        restore_generator(learner.replay.rng, meta["replay_rng"])
        return list(meta.get("subgoal_pool", []))
