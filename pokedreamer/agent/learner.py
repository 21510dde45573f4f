"""System 1 learning online: world-model updates from replay, behaviour updates imagining from
their posteriors under subgoals the planners set, and the actor's imitation of the
demonstrator (DAgger).

Updates are owed at a ratio to the env steps taken: ``agent.train_ratio`` replayed steps per env
step for the world model (each world-model update followed by ``agent.behavior_updates``
behaviour updates), ``imitation.ratio`` labelled states per state for the actor's imitation.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from pokedreamer.agent.behavior import Behavior
from pokedreamer.agent.events import EventBus, MetricsEvent
from pokedreamer.agent.imitation import Imitation
from pokedreamer.agent.subgoal_pool import Liveness, SubgoalPool
from pokedreamer.config import ImitationSettings, Settings, WorldModelSettings
from pokedreamer.env.state import VECTOR_SIZE
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.subgoals import GOAL_ENCODING_SIZE
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.heads import StateRanges
from pokedreamer.world_model.replay import run_replay, training_batch
from pokedreamer.world_model.rssm import RSSMState
from pokedreamer.world_model.trainer import WorldModelTrainer


class Starts(NamedTuple):
    """A world-model batch's posteriors as imagination starts."""

    posts: RSSMState
    """(N, ...) every posterior of the batch, flattened."""
    vectors: np.ndarray
    """(N, VECTOR_SIZE) the GameState observed at each."""
    usable: np.ndarray
    """int64 indices of the posteriors imagined from."""


class Learner:
    """The world model, the actor-critic and what they learn from. ``rng`` is the loop's one
    numpy generator: behaviour learning and the random and DAgger policies draw from it in
    turn, and a checkpoint keeps its state."""

    def __init__(
        self,
        settings: Settings,
        world_model: WorldModelSettings,
        num_actions: int,
        run: RunDir,
        facts: GameFacts,
        bus: EventBus,
        imitation: ImitationSettings | None = None,
    ) -> None:
        self.settings = settings
        self.run_dir = run
        self.facts = facts
        self.bus = bus
        seed = settings.env.seed
        ranges = StateRanges.of_maps(facts.maps.values())  # the heads sized to this game
        self.trainer = WorldModelTrainer(world_model, num_actions, seed=seed, ranges=ranges)
        self.world_model = self.trainer.model
        self.device = self.trainer.device
        self.preset = self.world_model.preset
        self.behavior = Behavior(self.preset, num_actions, settings.agent).to(self.device)
        self.rng = np.random.default_rng(seed)
        self.replay = run_replay(run.replay, world_model, seed=seed)
        self.tiles = self.replay.vocabulary
        """The run's tile vocabulary (world_model.observation tiles), else None: acting
        tokenizes each screen with it, as the replay does."""
        self.imitation = (
            Imitation(imitation, self.behavior, seed=seed) if imitation is not None else None
        )
        self.pool = SubgoalPool(facts)
        self.last_metrics: dict[str, float] = {}

    def observation(self, frames: np.ndarray) -> np.ndarray:
        """What the world model observes of screens (..., 144, 160): the screens themselves, or
        their cell tokens (..., 18, 20) from the run's vocabulary."""
        return frames if self.tiles is None else self.tiles.tokenize(frames)

    # --- world model and behaviour --------------------------------------------------------------

    def train_owed(self, steps: int, pursued: list[Any] | None) -> None:
        """The updates owed after ``steps`` env steps; ``pursued``: the subgoals the envs
        pursue now (None: no planner sets any)."""
        wm = self.trainer.settings
        agent = self.settings.agent
        per_update = wm.batch_size * wm.batch_length
        if len(self.replay) < agent.train_after or self.replay.num_sequences(wm.batch_length) == 0:
            return
        owed = (steps - agent.train_after) * agent.train_ratio / per_update
        while self.trainer.updates < owed:
            self.train_step(steps, pursued)

    def train_step(self, steps: int, pursued: list[Any] | None) -> dict[str, float]:
        """One world-model update, then agent.behavior_updates behaviour updates imagining from
        its posteriors."""
        wm = self.trainer.settings
        batch, drawn = training_batch(self.replay, wm)
        metrics = {f"wm/{k}": v for k, v in {**self.trainer.update(batch), **drawn}.items()}
        posts, context = self.trainer.last_posts, self.trainer.last_context
        assert posts is not None and context is not None
        # Only posteriors filtered as far as when acting are started from (trainer.with_context).
        usable = np.flatnonzero(context.flatten().cpu().numpy())
        starts = Starts(posts.flatten(), batch["states"].reshape(-1, VECTOR_SIZE), usable)
        self.pool.battle_maps = self.replay.battle_maps()
        found = None
        if self.settings.agent.pairing == "subgoal" and pursued is not None:
            found = self.pool.liveness(starts.vectors[usable], pursued)
        for _ in range(self.settings.agent.behavior_updates):
            behavior = self._behavior_update(starts, pursued, found)
        metrics.update({f"behavior/{k}": v for k, v in behavior.items()})
        self.last_metrics = metrics
        if self.trainer.updates % 25 == 0:
            record = {"kind": "agent", "step": steps, "update": self.trainer.updates}
            self.run_dir.log_metrics({**record, **metrics})
            self.publish_metrics(steps, {})
        return metrics

    def _behavior_update(
        self, starts: Starts, pursued: list[Any] | None, found: Liveness | None = None
    ) -> dict[str, float]:
        """One behaviour update. ``found``, the pool's liveness at the usable starts, draws the
        rows by subgoal (``agent.pairing = "subgoal"``); without it the drawn starts are paired."""
        by_subgoal = found is not None and len(found.pool) > 0
        if found is not None and by_subgoal:
            rows, subgoals, paired = SubgoalPool.draw(
                self.rng, found, self.settings.agent.imagine_batch
            )
            chosen = starts.usable[rows]
        else:
            take = min(self.settings.agent.imagine_batch, len(starts.usable))
            chosen = self.rng.choice(starts.usable, take, replace=False)
        index = torch.from_numpy(chosen).to(self.device)
        posts = starts.posts.map(lambda x: x.index_select(0, index))
        if pursued is None or not (self.pool or pursued):
            goal = torch.zeros(len(chosen), GOAL_ENCODING_SIZE, device=self.device)
            return self.behavior.imagine_and_train(self.world_model, posts, goal, None, None)
        # Each start rehearses a subgoal that is live where it stands (SubgoalPool).
        if not by_subgoal:
            subgoals, paired = self.pool.pair(self.rng, starts.vectors[chosen], pursued)
        goal = self.pool.rows(subgoals).to(self.device)
        metrics = self.behavior.imagine_and_train(
            self.world_model, posts, goal, subgoals, self.facts
        )
        return {**metrics, "live_rate": float(paired.mean())}

    # --- imitation --------------------------------------------------------------------------------

    def imitate_owed(self, steps: int) -> None:
        """The actor's imitation updates owed for the labelled states added so far."""
        assert self.imitation is not None
        for _ in range(self.imitation.owed()):
            metrics = self.imitation.update()
            metrics["imitation/beta"] = self.imitation.beta(steps)
            self.last_metrics = metrics
            if self.imitation.updates % 100 == 0:
                record = {"kind": "imitation", "step": steps, "update": self.imitation.updates}
                self.run_dir.log_metrics({**record, **metrics})
                self.publish_metrics(steps, {})

    # --- reporting --------------------------------------------------------------------------------

    def publish_metrics(self, steps: int, extra: dict[str, float]) -> None:
        metrics = {
            **self.last_metrics, **extra,
            "updates": float(self.trainer.updates), "replay_steps": float(len(self.replay)),
        }  # fmt: skip
        self.bus.publish(MetricsEvent(steps, metrics))
