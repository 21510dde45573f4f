"""Who presses the buttons: the actor, uniform random buttons, the scripted demonstrator, or the
actor learning from the demonstrator (DAgger).

Every step the actor filters each env's posterior with the newest observation and picks its
buttons, whoever then presses them: the posterior is the world model's belief for imagined
frames and for DAgger's labels, and the actor's sampling keeps its place in the torch random
stream whichever policy plays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from pokedreamer.agent.books import EnvBook
from pokedreamer.agent.demonstrator import Demonstrator
from pokedreamer.agent.imitation import Imitation
from pokedreamer.agent.learner import Learner
from pokedreamer.errors import UserError
from pokedreamer.planner.facts import GameFacts
from pokedreamer.world_model.model import WorldModel

POLICIES = ("agent", "random", "demonstrator", "floor")
"""The names a loop takes for its policy (DAgger is the agent's, with imitation settings);
"floor" is the demonstrator pacing the tall grass it has found (Demonstrator's pace_grass)."""
SCRIPTED = ("demonstrator", "floor")
"""The policies that play the planner's subgoals by script."""


def check_policy(name: str, imitation: bool, planner: str) -> None:
    """Refuses a policy the loop cannot play (UserError), before anything is built."""
    if name not in POLICIES:
        raise UserError(f"unknown policy {name!r}: {', '.join(POLICIES)}")
    if (name in SCRIPTED or imitation) and planner == "none":
        raise UserError("the demonstrator plays the planner's subgoals: it needs a planner")
    if imitation and name != "agent":
        raise UserError("imitation trains the agent's own policy: use policy 'agent'")


@dataclass(frozen=True, slots=True)
class Turn:
    """What a policy may look at to choose every env's button."""

    step: int
    """The loop's env steps so far (all envs together)."""
    actor: torch.Tensor
    """The actor's buttons (n,) int64, on the CPU."""
    post: Any
    """The world model's posterior for each env after its newest observation."""
    goal: torch.Tensor
    """The actor's goal input (n, G), on the model's device."""
    envs: Sequence[EnvBook]
    """Each env's books: its newest GameState and the subgoal it pursues."""


class Policy(Protocol):
    def start(self, envs: int) -> None:
        """A run begins with ``envs`` envs."""
        ...

    def begin(self, env: int) -> None:
        """Env ``env`` begins a new episode."""
        ...

    def act(self, turn: Turn) -> torch.Tensor:
        """The buttons (n,) int64 on the CPU, one per env."""
        ...


class ActorPolicy:
    """The actor's own buttons; where an env's plan has kept its goal for ``explore_after``
    steps (0: never), ``explore_share`` of them are uniform random ones until the goal changes.

    The actor learns only what imagination shows it, and imagination only what the replay
    holds: a move the actor never makes (A beside MOM) stays unseen, and the actor stuck. The
    random buttons put it into the replay. Draws come from the learner's generator only while
    an env is stuck, so a run that never is draws exactly what it would without them.
    """

    def __init__(
        self, rng: np.random.Generator, num_actions: int, explore_after: int = 0,
        explore_share: float = 0.0,
    ) -> None:  # fmt: skip
        self.rng, self.num_actions = rng, num_actions
        self.explore_after, self.explore_share = explore_after, explore_share
        self.goals: list[str] = []
        self.held: list[int] = []
        """Steps each env's plan has kept its goal."""
        self.explored = 0
        """Buttons replaced by random ones in this run."""

    def start(self, envs: int) -> None:
        self.goals, self.held = [""] * envs, [0] * envs

    def begin(self, env: int) -> None:
        self.goals[env], self.held[env] = "", 0

    def act(self, turn: Turn) -> torch.Tensor:
        if not self.explore_after:
            return turn.actor
        stuck = np.zeros(len(turn.envs), bool)
        for i, book in enumerate(turn.envs):
            goal = book.service.goal if book.service is not None else ""
            self.held[i] = self.held[i] + 1 if goal == self.goals[i] else 0
            self.goals[i] = goal
            stuck[i] = self.held[i] >= self.explore_after
        if not stuck.any():
            return turn.actor
        n = len(turn.envs)
        mixed = stuck & (self.rng.random(n) < self.explore_share)
        buttons = self.rng.integers(0, self.num_actions, n)
        self.explored += int(mixed.sum())
        return torch.where(torch.from_numpy(mixed), torch.from_numpy(buttons), turn.actor)


class RandomPolicy:
    """Uniform random buttons from the loop's generator."""

    def __init__(self, rng: np.random.Generator, num_actions: int) -> None:
        self.rng, self.num_actions = rng, num_actions

    def start(self, envs: int) -> None:
        pass

    def begin(self, env: int) -> None:
        pass

    def act(self, turn: Turn) -> torch.Tensor:
        return torch.from_numpy(self.rng.integers(0, self.num_actions, len(turn.envs)))


class DemonstratorPolicy:
    """The scripted player of each env's active subgoal; one per env, each new run (a
    demonstrator remembers the walls it bumped into for the rest of its life)."""

    def __init__(
        self, facts: GameFacts, buttons: Sequence[str], seed: int, pace_grass: bool = False
    ) -> None:
        self.facts, self.buttons, self.seed = facts, list(buttons), seed
        self.pace_grass = pace_grass
        self.teachers: list[Demonstrator] = []

    def start(self, envs: int) -> None:
        self.teachers = [
            Demonstrator(self.facts, self.buttons, seed=self.seed + i, pace_grass=self.pace_grass)
            for i in range(envs)
        ]

    def begin(self, env: int) -> None:
        self.teachers[env].reset()

    def labels(self, envs: Sequence[EnvBook]) -> torch.Tensor:
        """Each env's demonstrator's button for its newest state and active subgoal."""
        buttons = []
        for teacher, book in zip(self.teachers, envs, strict=True):
            assert book.state is not None
            buttons.append(teacher.act(book.state, book.subgoal))
        return torch.tensor(buttons)

    def act(self, turn: Turn) -> torch.Tensor:
        return self.labels(turn.envs)


class DaggerPolicy(DemonstratorPolicy):
    """The actor's buttons, every env's state labelled with the demonstrator's button and kept
    for imitation; with the chance beta the demonstrator's button is the one pressed."""

    def __init__(
        self, facts: GameFacts, buttons: Sequence[str], seed: int, imitation: Imitation,
        world_model: WorldModel, rng: np.random.Generator,
    ) -> None:  # fmt: skip
        super().__init__(facts, buttons, seed)
        self.imitation, self.world_model, self.rng = imitation, world_model, rng

    def act(self, turn: Turn) -> torch.Tensor:
        labels = self.labels(turn.envs)
        self.imitation.add(self.world_model.rssm.feat(turn.post), turn.goal, labels)
        chosen = self.rng.random(len(labels)) < self.imitation.beta(turn.step)
        actions = torch.where(torch.from_numpy(chosen), labels, turn.actor)
        for teacher, action in zip(self.teachers, actions.tolist(), strict=True):
            teacher.pressed(action)  # the walls it learns are those of the button pressed
        return actions


def make_policy(
    name: str, learner: Learner, facts: GameFacts, buttons: Sequence[str], seed: int,
    explore_after: int = 0, explore_share: float = 0.0,
) -> Policy:  # fmt: skip
    """The policy ``name`` (POLICIES); the agent's is DAgger when the learner imitates, and
    mixes in random buttons where an env is stuck with ``explore_after`` (ActorPolicy)."""
    if name == "random":
        return RandomPolicy(learner.rng, len(buttons))
    if name in SCRIPTED:
        return DemonstratorPolicy(facts, buttons, seed, pace_grass=name == "floor")
    if learner.imitation is not None:
        return DaggerPolicy(
            facts, buttons, seed, learner.imitation, learner.world_model, learner.rng
        )
    return ActorPolicy(learner.rng, len(buttons), explore_after, explore_share)
