"""How often the live screen may draw a frame: at most ``fps`` a second, fewer while the UI's
thread takes more of a core than its budget. The clocks are arguments, so that a test can drive
the pacing with a clock of its own."""

from __future__ import annotations

import time
from collections.abc import Callable

MIN_FPS = 4
"""The fewest frames a second the budget may bring the dashboard down to."""

Clock = Callable[[], float]


class FramePacer:
    """The frame interval under a CPU budget, and the frames drawn.

    ``budget``: the share of one core the UI's thread may take, drawing included, before frames
    are drawn further apart (None: no budget, 1/fps always)."""

    def __init__(
        self,
        fps: float,
        budget: float | None,
        *,
        clock: Clock = time.monotonic,
        thread_clock: Clock = time.thread_time,
        process_clock: Clock = time.process_time,
    ) -> None:
        self.fps = fps
        self.budget = budget
        self.clock = clock
        self.thread_clock = thread_clock
        self.process_clock = process_clock
        self.frame_interval = 1 / fps
        """Seconds between frames drawn: 1/fps, longer while the UI is over its CPU budget."""
        self.cpu_share = 0.0
        """The UI thread's share of a core over the last second."""
        self.frames_drawn = 0
        self.first_frame_at: tuple[float, float, int] | None = None
        """(clock, process CPU time, frames drawn) when the first frame was drawn."""
        self.frames_per_s = 0.0
        """Frames drawn a second, over the last second or so (``count_frames``)."""
        self._frame_at = 0.0
        self._budget_mark = (clock(), thread_clock())
        self._fps_mark = (clock(), 0)

    def due(self, now: float) -> bool:
        """Whether a frame may be drawn at ``now``."""
        return now - self._frame_at >= self.frame_interval * 0.9  # 0.9: timer jitter

    def drew(self, now: float) -> None:
        """A frame was drawn at ``now``."""
        self.frames_drawn += 1
        if self.first_frame_at is None:
            self.first_frame_at = (now, self.process_clock(), self.frames_drawn)
        self._frame_at = now

    def pace(self, now: float) -> None:
        """Once a second: the UI thread's share of a core, and the frame interval it allows."""
        mark_wall, mark_cpu = self._budget_mark
        if now - mark_wall < 1.0:
            return
        cpu = self.thread_clock()
        self.cpu_share = share = (cpu - mark_cpu) / (now - mark_wall)
        self._budget_mark = (now, cpu)
        if self.budget is None:
            return
        # Proportional, damped: a frame costs about the same each time, so the share scales
        # with the frame rate.
        scale = min(max(share / self.budget, 0.5), 2.0)
        self.frame_interval = min(max(self.frame_interval * scale, 1 / self.fps), 1 / MIN_FPS)

    def count_frames(self, now: float) -> None:
        """Once a second: the frames drawn a second since the last count."""
        mark_time, mark_frames = self._fps_mark
        if now - mark_time >= 1.0:
            self.frames_per_s = (self.frames_drawn - mark_frames) / (now - mark_time)
            self._fps_mark = (now, self.frames_drawn)
