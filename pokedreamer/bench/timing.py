"""The one way the benches time work, and the name of the machine their figures come from.

A bench times a piece of work with :func:`timed`, counts how many runs of it fit in a wall time
with :func:`repeat_for`, or compares two kinds of work with :func:`alternate`. The clock is an
argument, so a bench can count only its own thread's CPU time where the machine is shared, and a
test can drive a fake one.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


def timed(
    work: Callable[[], object],
    clock: Clock = time.perf_counter,
    sync: Callable[[], object] | None = None,
) -> float:
    """Seconds ``clock`` counts while ``work`` runs once.

    ``sync`` (such as ``torch.cuda.synchronize``) runs before the clock starts and again before
    it stops, so that work queued on an accelerator is counted when it is done, not when queued.
    """
    if sync is not None:
        sync()
    start = clock()
    work()
    if sync is not None:
        sync()
    return clock() - start


def repeat_for(seconds: float, work: Callable[[], object], clock: Clock = time.perf_counter) -> int:
    """Runs ``work`` again and again until ``seconds`` have passed on ``clock``; how many runs.

    The run under way at the deadline finishes, so a caller's rate is runs x work per run over
    ``seconds`` and errs by at most one run.
    """
    deadline = clock() + seconds
    runs = 0
    while clock() < deadline:
        work()
        runs += 1
    return runs


@dataclass(frozen=True)
class Alternated:
    """Seconds of two kinds of work timed in alternating rounds: ``first[i]`` ran just before
    ``second[i]``."""

    first: list[float]
    second: list[float]

    def ratio(self) -> float:
        """The median over rounds of first / second: second's speed over first's.

        A round's two runs share whatever else the machine was doing at the time, and the median
        of the rounds' ratios shrugs off the rounds a burst of noise hit.
        """
        return statistics.median(a / b for a, b in zip(self.first, self.second, strict=True))


def alternate(rounds: int, first: Callable[[], float], second: Callable[[], float]) -> Alternated:
    """Runs ``first`` then ``second``, ``rounds`` times; each returns the seconds it timed (so
    that what is set up or torn down around the timed work stays out of the figure)."""
    firsts: list[float] = []
    seconds: list[float] = []
    for _ in range(rounds):
        firsts.append(first())
        seconds.append(second())
    return Alternated(firsts, seconds)


def machine_description() -> str:
    """The processor, core count and system a figure was measured on."""
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )
