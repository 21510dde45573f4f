"""The watchers' commands and the modes they set: paused, single steps, a person at env 0's
buttons, the speed, a person's subgoal and quitting.

``send`` may be called from any thread; the loop applies the queued commands between steps, in
``wait_for_turn``, so a command never lands in the middle of one.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pokedreamer.agent.books import EnvBook
from pokedreamer.agent.events import (
    EventBus,
    HumanAction,
    Pause,
    Quit,
    Replan,
    Resume,
    SaveCheckpoint,
    SetPlanner,
    SetSpeed,
    SetSubgoal,
    SingleStep,
    StatusEvent,
    TakeControl,
    UsePrompts,
)
from pokedreamer.agent.pace import UNCAPPED, speed_text
from pokedreamer.agent.planners import Planners
from pokedreamer.planner.service import read_subgoal
from pokedreamer.planner.subgoals import describe

POLL_S = 0.05  # how often a waiting loop looks at its commands again


class Commands:
    def __init__(
        self,
        bus: EventBus,
        buttons: Sequence[str],
        planners: Planners,
        *,
        status: Callable[[str], StatusEvent],
        save: Callable[[], Path],
        envs: Callable[[], Sequence[EnvBook]],
        human: bool = False,
        speed: int = UNCAPPED,
    ) -> None:
        """``status`` makes the StatusEvent published after each command, ``save`` writes a
        checkpoint, ``envs`` gives the books of the envs playing now; ``speed``: the pace to
        start at (agent/pace.py)."""
        self.bus, self.buttons, self.planners = bus, list(buttons), planners
        self.status, self.save, self.envs = status, save, envs
        self.paused = False
        self.human = human
        """A person presses env 0's buttons."""
        self.speed = speed
        """Times the Game Boy's own speed; 0 is uncapped."""
        self.quitting = False
        self.single_steps = 0
        self._queue: queue.Queue[Any] = queue.Queue()
        self._human_actions: queue.Queue[int] = queue.Queue()

    def send(self, command: Any) -> None:
        """Queues a command from events.py; a HumanAction is checked at once."""
        if isinstance(command, HumanAction):
            if command.button not in self.buttons:
                raise ValueError(f"unknown button {command.button!r}; buttons: {self.buttons}")
            self._human_actions.put(self.buttons.index(command.button))
            return
        self._queue.put(command)

    def apply(self, command: Any) -> None:
        """Applies one command now and publishes the loop's status with what came of it."""
        message = ""
        if isinstance(command, Pause):
            self.paused = True
        elif isinstance(command, Resume):
            self.paused, self.single_steps = False, 0
        elif isinstance(command, SingleStep):
            self.single_steps += max(1, command.steps)
        elif isinstance(command, Replan):
            for env in self.envs():
                env.replan("asked by a person")
            message = "replanning"
        elif isinstance(command, SetPlanner):
            message = self.planners.switch(command.kind) or self._switch_planners(command.kind)
        elif isinstance(command, SetSpeed):
            self.speed = max(0, command.speed)
            message = f"speed {speed_text(self.speed)}"
        elif isinstance(command, SetSubgoal):
            message = self._steer(command)
        elif isinstance(command, SaveCheckpoint):
            message = f"checkpoint saved: {self.save()}"
        elif isinstance(command, TakeControl):
            self.human = command.human
            message = "you have control" if self.human else "the agent has control"
        elif isinstance(command, UsePrompts):
            message = self.planners.use_prompts(Path(command.folder))
        elif isinstance(command, Quit):
            self.quitting = True
        self.bus.publish(self.status(message))

    def _steer(self, command: SetSubgoal) -> str:
        """Hands env ``command.env``'s planner a person's subgoal, checked as an LLM's plan is,
        or gives the subgoal back to the planner; what came of it, in one line."""
        envs = self.envs()
        if not 0 <= command.env < len(envs):
            return f"subgoal not set: no env {command.env} is playing"
        book = envs[command.env]
        service, state = book.service, book.state
        if service is None or state is None:
            return "subgoal not set: the planner is none (p picks another)"
        if command.subgoal is None:
            if not service.steered:
                return "no subgoal of yours to clear"
            service.request(book.episode_step, state, "cleared by a person")
        else:
            subgoal, problem = read_subgoal(command.subgoal, self.planners.facts)
            if subgoal is None:
                return f"subgoal not set: {problem}"
            service.steer(book.episode_step, state, subgoal)
        book.flush()  # the plan reaches the trace (and the watchers) now, even while paused
        if command.subgoal is None:
            return "your subgoal is cleared: the planner plans again"
        return f"your subgoal: {describe(service.subgoal)}"

    def _switch_planners(self, kind: str) -> str:
        for env in self.envs():
            env.switch_planner()
        return f"planner: {kind}"

    def wait_for_turn(self) -> bool:
        """Applies commands; while paused, waits for a resume or a single step. False: quit."""
        while True:
            try:
                while True:
                    self.apply(self._queue.get_nowait())
            except queue.Empty:
                pass
            if self.quitting:
                return False
            if not self.paused:
                return True
            if self.human and not self._human_actions.empty():
                return True  # a person's button steps the game even while paused
            if self.single_steps > 0:
                self.single_steps -= 1
                return True
            with contextlib.suppress(queue.Empty):
                self.apply(self._queue.get(timeout=POLL_S))

    def human_action(self) -> int | None:
        """Waits for a person's button for env 0, still applying commands. None: the loop is
        quitting, or control went back to the agent meanwhile."""
        while self.human:
            with contextlib.suppress(queue.Empty):
                return self._human_actions.get(timeout=POLL_S)
            if not self.wait_for_turn():
                return None
        return None
