"""Behaviour cloning with DAgger: the actor learns the demonstrator's buttons on the states it
visits itself.

Plain behaviour cloning trains on the teacher's own trajectories and falls apart the first time
the student strays from them, because it has never seen a state off the teacher's path. DAgger
(Ross, Gordon & Bagnell, 2011) labels every state the *student's* play reaches with the
teacher's button and trains on all of them; a chance beta, falling over the run, hands the
buttons to the teacher so that the early, clueless student still gets somewhere worth learning.

The world model is held fixed meanwhile, so the features stored with each label stay what the
actor will see for that state. Only the actor learns; its imitation optimiser is separate from
the actor-critic's, whose moments (and small learning rate) are kept for training on in
imagination afterwards.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pokedreamer.agent.behavior import Behavior
from pokedreamer.config import ImitationSettings
from pokedreamer.planner.subgoals import GOAL_ENCODING_SIZE


class Imitation:
    """The labelled states seen so far and the updates that fit the actor to them."""

    def __init__(self, settings: ImitationSettings, behavior: Behavior, seed: int = 0) -> None:
        self.settings = settings
        self.behavior = behavior
        feat = behavior.preset.feat_size
        self.feats = torch.zeros(settings.capacity, feat)
        self.goals = torch.zeros(settings.capacity, GOAL_ENCODING_SIZE)
        self.labels = torch.zeros(settings.capacity, dtype=torch.int64)
        self.seen = 0
        """Labelled states added in all (the owed updates are counted from it)."""
        self.updates = 0
        self.rng = np.random.default_rng(seed)
        self.optimizer = torch.optim.Adam(behavior.actor.parameters(), lr=settings.lr)

    @property
    def size(self) -> int:
        """Labelled states kept now."""
        return min(self.seen, self.settings.capacity)

    def beta(self, steps: int) -> float:
        """The chance that the demonstrator presses the buttons at env step ``steps``."""
        s = self.settings
        if s.beta_steps == 0 or steps >= s.beta_steps:
            return s.beta_end
        return s.beta_start + (s.beta_end - s.beta_start) * steps / s.beta_steps

    def add(self, feats: Tensor, goals: Tensor, labels: Tensor) -> None:
        """States (n, F) under goals (n, G), with the demonstrator's buttons (n,) for them."""
        n = feats.shape[0]
        assert feats.shape == (n, self.feats.shape[1]), feats.shape
        assert goals.shape == (n, GOAL_ENCODING_SIZE), goals.shape
        assert labels.shape == (n,) and labels.dtype == torch.int64, labels
        index = (self.seen + torch.arange(n)) % self.settings.capacity  # the oldest go first
        self.feats[index] = feats.detach().float().cpu()
        self.goals[index] = goals.detach().float().cpu()
        self.labels[index] = labels.cpu()
        self.seen += n

    def owed(self) -> int:
        """Updates due now: ``ratio`` labelled states trained on per state added."""
        s = self.settings
        if self.size < max(s.train_after, 1):
            return 0
        return max(0, int((self.seen - s.train_after) * s.ratio / s.batch_size) - self.updates)

    def update(self) -> dict[str, float]:
        """One cross-entropy step of the actor on a uniform batch of the labelled states."""
        device = next(self.behavior.actor.parameters()).device
        take = min(self.settings.batch_size, self.size)
        index = torch.from_numpy(self.rng.integers(0, self.size, take))
        feats = self.feats[index].to(device)
        goals = self.goals[index].to(device)
        labels = self.labels[index].to(device)
        log_probs = self.behavior.actor(feats, goals)
        loss = torch.nn.functional.nll_loss(log_probs, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        with torch.no_grad():
            accuracy = (log_probs.argmax(-1) == labels).float().mean()
        return {"imitation/loss": loss.item(), "imitation/accuracy": accuracy.item()}
