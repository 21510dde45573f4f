"""One env's books: its episode, its planner, its newest observation, and the writes of its steps.

An ``EnvBook`` takes in each step as the env returns it — the planner sees it at once — and
writes it later, at ``flush``: to the env's episode recorder, then to the driver's ``on_step``
callbacks (replay, demonstrations, events). The driver flushes while the envs step the next
step, so the writes cost the step rate nothing when the envs are the slower part. An episode's
first step, from the reset, is written at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pokedreamer.agent.episodes import EpisodeRecorder
from pokedreamer.agent.planners import Planners
from pokedreamer.agent.quest import stages_reached
from pokedreamer.agent.tally import Tally
from pokedreamer.env.frames import FRAME_SHAPE
from pokedreamer.env.rom import Rom
from pokedreamer.env.state import VECTOR_SIZE, GameState
from pokedreamer.planner.service import PlannerService, PlanRecord
from pokedreamer.planner.subgoals import describe


@dataclass(frozen=True, slots=True)
class Step:
    """One step of one env as its writers take it (the first of an episode has no action)."""

    env: int
    episode: int
    """The recorder's episode number (0 when episodes are not recorded)."""
    episode_step: int
    frame: np.ndarray
    vector: np.ndarray
    state: GameState
    action: int | None
    reward: float
    terms: dict[str, float]
    terminated: bool
    human: bool
    """A person pressed the button."""
    subgoal: Any | None
    """The subgoal the planner chose on seeing this step."""
    goal: str
    subgoals: tuple[str, ...]
    """The planner's queue, described; the first is active."""


StepCallback = Callable[[Step], None]
PlanCallback = Callable[[int, int, PlanRecord], None]
"""Takes env, episode and a plan made for it."""


class EnvBook:
    def __init__(
        self,
        index: int,
        recorder: EpisodeRecorder,
        planners: Planners,
        tally: Tally,
        rom: Rom,
        *,
        record: bool,
        end_at_badges: int,
        on_step: Sequence[StepCallback],
        on_plan: Sequence[PlanCallback],
    ) -> None:
        self.index = index
        self.recorder = recorder
        self.planners = planners
        self.tally = tally
        self.rom = rom
        self.record_episodes = record
        self.end_at_badges = end_at_badges
        self.on_step = tuple(on_step)
        self.on_plan = tuple(on_plan)
        self.service: PlannerService | None = None
        self.state: GameState | None = None
        self.frame: np.ndarray = np.zeros(FRAME_SHAPE, np.uint8)
        self.vector: np.ndarray = np.zeros(VECTOR_SIZE, np.float32)
        self.episode = 0
        self.episode_step = 0
        self.badge = False
        self.seed = 0
        self.reached: dict[str, int] = {}
        self._queue_plan: Any = None
        self._queue_length = -1
        self._queue_texts: tuple[str, ...] = ()
        self._unwritten: tuple[Any, ...] | None = None
        self._unwritten_plans: list[PlanRecord] = []

    @property
    def subgoal(self) -> Any | None:
        """The subgoal this env pursues now."""
        return self.service.subgoal if self.service is not None else None

    def begin(self, frame: np.ndarray, vector: np.ndarray, state: GameState, seed: int) -> None:
        """A new episode from the reset observation; its first step is written at once."""
        self.frame, self.vector, self.state = frame, vector, state
        self.episode_step = 0
        self.badge = False
        self.seed = seed
        self.reached = {}
        stages_reached(state, self.reached, 0)
        if self.record_episodes:
            self.episode = self.recorder.start(
                {"env": self.index, "seed": seed, "game": self.rom.game,
                 "rom_sha1": self.rom.sha1, "step": self.tally.steps}
            )  # fmt: skip
        self.service = self.planners.service(self._take_plan)
        if self.service is not None:
            self.service.observe(0, state, frame)
        self._write(frame, vector, state, None, 0.0, {}, False, False)

    def take(
        self, frame: np.ndarray, vector: np.ndarray, state: GameState, action: int,
        reward: float, terms: dict[str, float], terminated: bool, truncated: bool, human: bool,
    ) -> bool:  # fmt: skip
        """Takes in one step: the planner sees it now, its writes wait for ``flush``. True when
        the episode ended with it."""
        self.frame, self.vector, self.state = frame, vector, state
        self.episode_step += 1
        if self.service is not None:
            self.service.observe(self.episode_step, state, frame)
        self._unwritten = (frame, vector, state, action, reward, terms, terminated, human)
        stages_reached(state, self.reached, self.episode_step)
        if state.badge_count and not self.badge:
            self.badge = True
            self.tally.won_badge()
        end_at = self.end_at_badges
        if terminated or truncated or (end_at and state.badge_count >= end_at):
            self.end("terminated" if terminated else "truncated" if truncated else "quest done")
            return True
        return False

    def flush(self) -> None:
        """Writes the step taken in by ``take``, if not yet written. The subgoal recorded is the
        one the planner chose on seeing that step, as no later step has been seen."""
        if self._unwritten_plans:
            self._write_plans()
        if self._unwritten is None:
            return
        frame, vector, state, action, reward, terms, terminated, human = self._unwritten
        self._unwritten = None
        self._write(frame, vector, state, action, reward, terms, terminated, human)

    def _write(
        self, frame: np.ndarray, vector: np.ndarray, state: GameState, action: int | None,
        reward: float, terms: dict[str, float], terminated: bool, human: bool,
    ) -> None:  # fmt: skip
        service = self.service
        texts = self.queue_texts()
        step = Step(
            self.index, self.episode, self.episode_step, frame, vector, state, action, reward,
            terms, terminated, human, service.subgoal if service is not None else None,
            service.goal if service is not None else "", texts,
        )  # fmt: skip
        if self.recorder.recording:
            extra = {"human": True} if human else None
            active = texts[0] if texts else None
            self.recorder.step(frame, action, reward, terms, state, active, extra)
        for callback in self.on_step:
            callback(step)

    def queue_texts(self) -> tuple[str, ...]:
        """The subgoal queue, described (the first is active). Read every step but changed a
        few times an episode, so it is described once per plan and queue length: the queue is
        always a tail of its plan's subgoals."""
        service = self.service
        if service is None:
            return ()
        plan, length = service.plan, len(service.queue)
        if plan is not self._queue_plan or length != self._queue_length:
            self._queue_plan, self._queue_length = plan, length
            self._queue_texts = tuple(describe(s) for s in service.queue)
        return self._queue_texts

    def _take_plan(self, record: PlanRecord) -> None:
        self._unwritten_plans.append(record)  # written by flush, with the step's writes

    def _write_plans(self) -> None:
        records, self._unwritten_plans = self._unwritten_plans, []
        for record in records:
            if self.recorder.recording:
                self.recorder.plan(record)
            for callback in self.on_plan:
                callback(self.index, self.episode, record)

    def replan(self, trigger: str) -> None:
        """Asks this env's planner for a new plan now."""
        if self.service is not None and self.state is not None:
            self.service.request(self.episode_step, self.state, trigger)

    def switch_planner(self) -> None:
        """A new planner of the kind in use now, which looks at the newest state."""
        if self.service is not None:
            self.service.close()  # its LLM worker thread, if any, is not needed any more
        self.service = self.planners.service(self._take_plan) if self.state is not None else None
        if self.service is not None and self.state is not None:
            self.service.observe(self.episode_step, self.state)

    def end(self, why: str) -> None:
        self.flush()  # the episode's last step, before its summary and the next episode
        if self.service is not None:
            self.service.close()
        self.tally.ended(
            {"seed": self.seed, "env": self.index, "steps": self.episode_step, "ended": why,
             "stages": dict(self.reached)}
        )  # fmt: skip
        if self.recorder.recording:
            state = self.state
            self.recorder.end(
                {"ended": why, "badges": state.badge_count if state else 0,
                 "events": state.event_count if state else 0}
            )  # fmt: skip

    def close(self) -> None:
        """At the loop's end: an episode still running is ended as cut short."""
        if self.recorder.recording:
            self.end("loop stopped")
        elif self.service is not None:
            self.service.close()
        self.service = None  # no subgoal is pursued any more
