"""The loop's pace: speeds as multiples of the Game Boy's own, and waiting out a step's time.

At 1× a step takes as long as the Game Boy takes to draw its ``action_repeat`` frames (24 frames
of 59.73 a second: 0.40 s, 2.5 steps/s); at 8× an eighth of that. Speed 0 is uncapped: the loop
steps as fast as it can. Only acting waits: the updates owed per env step are the same at every
speed, so training slows with the game. With several envs one step of all of them together is
paced as one step.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pokedreamer.config import Settings

GAME_BOY_FPS = 59.7275
"""Frames the Game Boy draws a second."""
UNCAPPED = 0
SPEEDS: tuple[int, ...] = (1, 2, 4, 8, 16, UNCAPPED)
"""The speeds the dashboard's keys step through, slowest first."""


def speed_text(speed: int) -> str:
    """The speed for people: "8×", or "uncapped"."""
    return "uncapped" if speed == UNCAPPED else f"{speed}×"


def faster(speed: int) -> int:
    """The next speed up the ladder (uncapped stays uncapped)."""
    if speed == UNCAPPED:
        return UNCAPPED
    return next((s for s in SPEEDS if s == UNCAPPED or s > speed), UNCAPPED)


def slower(speed: int) -> int:
    """The next speed down the ladder (1× stays 1×)."""
    paced = [s for s in SPEEDS if s != UNCAPPED]
    if speed == UNCAPPED:
        return paced[-1]
    return max((s for s in paced if s < speed), default=paced[0])


def watched_speed(settings: Settings, dashboard: bool) -> int:
    """The speed of a run: ``agent.speed`` while a person watches it, in the dashboard or the
    emulator's window (``env.headless = false``); uncapped when no one does."""
    return settings.agent.speed if dashboard or not settings.env.headless else UNCAPPED


class Pace:
    """Makes each step last at least its share of the Game Boy's time at the speed asked for.

    ``begin`` marks a step's start; ``wait`` sleeps what is left of its time. ``clock`` and
    ``sleep`` are the real ones unless a test hands in fakes."""

    def __init__(
        self,
        action_repeat: int,
        *,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.action_repeat = action_repeat
        self.clock = clock
        self.sleep = sleep
        self._began = 0.0

    def step_s(self, speed: int) -> float:
        """Seconds a step takes at ``speed``; 0 uncapped."""
        return 0.0 if speed == UNCAPPED else self.action_repeat / (GAME_BOY_FPS * speed)

    def begin(self) -> None:
        self._began = self.clock()

    def wait(self, speed: int) -> float:
        """Sleeps the rest of the step begun last at ``speed``; returns the seconds slept."""
        left = self.step_s(speed) - (self.clock() - self._began)
        if left <= 0:
            return 0.0
        self.sleep(left)
        return left
