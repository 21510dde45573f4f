"""Ctrl-C and SIGTERM taken between env steps, not inside one.

A signal that raises KeyboardInterrupt while the parent reads a worker's answer from its pipe
can stop the read half-way through a message (a PyBoy snapshot is 150 KB), and the next read of
that pipe, closing the envs, then waits for bytes that never come. Inside ``between_steps`` the
signals only note that a stop was asked for; the caller's loop calls the function it yields at a
point where no answer is half-read, and that raises KeyboardInterrupt there.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def between_steps() -> Iterator[Callable[[], None]]:
    """Yields ``check()``, which raises KeyboardInterrupt once Ctrl-C or SIGTERM has come. Off the
    main thread (where Python cannot take signals) ``check`` never raises."""
    asked: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        asked.append(signum)

    def check() -> None:
        if asked:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield check
        return
    previous = {sig: signal.signal(sig, note) for sig in SIGNALS}
    try:
        yield check
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
