"""Where each env step goes besides its episode files: the replay learning samples from, a
person's steps kept as demonstrations, and the events watchers subscribe to."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pokedreamer.agent.books import Step
from pokedreamer.agent.demos import DemoLog, log_path, recorded_steps
from pokedreamer.agent.events import EventBus, PlanEvent, StepEvent
from pokedreamer.agent.tally import Tally
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.service import PlanRecord
from pokedreamer.planner.subgoals import phi
from pokedreamer.world_model.replay import Replay


class ReplayWriter:
    """Every step into the replay, each env its own stream."""

    def __init__(self, replay: Replay) -> None:
        self.replay = replay

    def __call__(self, step: Step) -> None:
        first = step.action is None
        self.replay.add(
            step.env, step.frame, step.vector, 0 if first else step.action, step.reward,
            is_first=first, is_terminal=step.terminated,
        )  # fmt: skip


class Demonstrations:
    """A person's steps, kept apart for behaviour cloning (``train imitation --demos``): their
    observations in a replay of their own (made at the first one) and, in demos.jsonl beside
    it, the subgoal each was played under (demos.py)."""

    def __init__(self, folder: Path, capacity: int, chunk: int) -> None:
        self.folder, self.capacity, self.chunk = folder, capacity, chunk
        self.replay: Replay | None = None
        self.log = DemoLog(log_path(folder))
        self.added = 0
        """Steps added in this process."""
        self.on_disk = recorded_steps(folder)

    @property
    def steps(self) -> int:
        """The person's steps this run has recorded, before this process and since."""
        return len(self.replay) if self.replay is not None else self.on_disk

    def __call__(self, step: Step) -> None:
        if not step.human or step.action is None:
            return
        if self.replay is None:
            self.replay = Replay(self.folder, self.capacity, self.chunk)
        first = step.episode_step == 1
        self.replay.add(0, step.frame, step.vector, step.action, step.reward, is_first=first)
        self.log.add(step.episode, step.episode_step, step.action, step.subgoal)
        self.added += 1
        if self.added % self.chunk == 0:  # the replay has just written its full chunk
            self.log.write()

    def flush(self) -> None:
        if self.replay is not None:
            self.replay.flush()
            self.log.write()


class Events:
    """Steps and plans as events, built only while someone listens."""

    def __init__(self, bus: EventBus, buttons: Sequence[str], facts: GameFacts, tally: Tally):
        self.bus, self.buttons, self.facts, self.tally = bus, buttons, facts, tally

    def step(self, step: Step) -> None:
        if not self.bus.wants(StepEvent):
            return
        subgoal, state, action = step.subgoal, step.state, step.action
        progress = float(phi(subgoal, state, self.facts)) if subgoal is not None else 0.0
        self.bus.publish(
            StepEvent(
                step=self.tally.steps, env=step.env, episode=step.episode,
                episode_step=step.episode_step, frame=step.frame, state=state, action=action,
                button="" if action is None else self.buttons[action], reward=step.reward,
                terms=step.terms, goal=step.goal, subgoals=step.subgoals, progress=progress,
                human=step.human,
            )
        )  # fmt: skip

    def plan(self, env: int, episode: int, record: PlanRecord) -> None:
        if self.bus.wants(PlanEvent):
            # A shallow copy: each record's plan dict is its own.
            self.bus.publish(PlanEvent(env, episode, dict(record.__dict__)))
