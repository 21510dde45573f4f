"""The dashboard in a process of its own, so that watching costs the agent loop almost nothing.

In one interpreter the UI and the loop share the GIL: every millisecond Textual spends drawing is
one the loop may wait for, and the loop lets go of the GIL many times a step. So ``pokedreamer
run`` keeps the loop in its own process and starts the dashboard as a child process that owns the
terminal (``python -m pokedreamer.dashboard``, ``__main__.py``); they talk over a socket pair
through ``bridge.py``. This module is the loop's side: it starts the child and runs the loop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from pokedreamer.agent.protocol import LoopControl
from pokedreamer.dashboard.bridge import Hello, LoopBridge, UIStats, send
from pokedreamer.dashboard.steering import error_text


class DashboardProcess:
    """Runs a loop in this process under a dashboard in a child process. ``run`` returns what
    the loop's ``run`` returned, after the UI has closed, and raises what it raised.

    ``human``: a person plays from the start. ``imagined=False``: no imagined frames.
    ``headless``: the UI draws into no terminal, at this (width, height), encoding each update
    as a terminal driver would (tests, the bench). ``close_when_done``: the UI exits as soon as
    the loop stops, rather than waiting for ``q``."""

    def __init__(
        self,
        loop: LoopControl,
        *,
        human: bool = False,
        imagined: bool = True,
        headless: tuple[int, int] | None = None,
        close_when_done: bool = False,
    ) -> None:
        self.loop = loop
        self.human = human
        self.imagined = imagined
        self.headless = headless
        self.close_when_done = close_when_done
        self.ui_stats: UIStats | None = None
        """What the UI reported as it exited."""
        self.ui_exit_code: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        """The UI's process, once ``run`` has started it."""
        self.bridge: LoopBridge | None = None
        """The loop's end of the link, while ``run`` runs."""

    def command(self, fd: int) -> list[str]:
        """The UI process's command line, its end of the socket pair being ``fd``."""
        command = [sys.executable, "-m", "pokedreamer.dashboard", str(fd)]
        if self.headless is not None:
            width, height = self.headless
            command += ["--headless", f"{width}x{height}"]
        return command

    def run(self, steps: int | None = None) -> Any:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            self.process = process = subprocess.Popen(
                self.command(theirs.fileno()), pass_fds=(theirs.fileno(),)
            )
            conn = Connection(os.dup(ours.fileno()))
        self.bridge = bridge = LoopBridge(self.loop, conn, self.imagined)
        send(conn, Hello.of(self.loop, want_human=self.human, imagined=self.imagined))
        bridge.start()
        error: BaseException | None = None
        result: Any = None
        previous = _stop_on_sigterm()
        try:
            result = self.loop.run(steps)
        except BaseException as exc:  # told to the UI, raised again once it has closed
            error = exc
        finally:
            interrupted = isinstance(error, KeyboardInterrupt)
            line = None if error is None or interrupted else error_text(error)
            bridge.finish(line, close_ui=interrupted or self.close_when_done)
            try:
                self.ui_exit_code = process.wait()
            except KeyboardInterrupt:
                process.terminate()
                self.ui_exit_code = process.wait()
                error = error or KeyboardInterrupt()
            finally:
                bridge.join()
                self.ui_stats = bridge.ui_stats
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)
        if error is not None:
            raise error
        return result


def _stop_on_sigterm() -> Any:
    """SIGTERM stops the loop as Ctrl-C would (checkpoint and logs written); returns the old
    handler, or None off the main thread, where handlers cannot be set."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def run_dashboard(
    loop: LoopControl, human: bool = False, steps: int | None = None, imagined: bool = True
) -> Any:
    """Runs ``loop`` in this process under the dashboard, which runs in a child process that owns
    the terminal, until the user quits (or the loop stops and the user quits); returns what
    ``loop.run`` returned. ``human``: a person plays from the start (``pokedreamer play``).
    ``steps``: passed to ``loop.run`` (None: until quit). ``imagined=False`` leaves the imagined
    screen empty and spares the loop its decodes. An error in the loop is raised again here,
    after the UI has closed; if the UI closes first (an error in it), the loop is stopped the
    safe way."""
    return DashboardProcess(loop, human=human, imagined=imagined).run(steps)
