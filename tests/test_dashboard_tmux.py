"""``pokedreamer run`` as a person starts it in a default 80×24 terminal window: the real CLI with
the shipped checkpoint, in a detached tmux session of that size, read back with capture-pane;
``q`` ends it, with exit status 0. Skipped where tmux is missing (``.ci/run`` installs it)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"
)

WAIT_S = 180.0
"""Only keeps a broken run from hanging the test: every wait ends on what the pane shows."""
SIZE = (80, 24)


class Terminal:
    """A detached tmux session of its own server (its own socket), running one command."""

    def __init__(self, folder: Path) -> None:
        self.socket = folder / "tmux.sock"

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", str(self.socket), *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    def start(self, command: str) -> None:
        width, height = SIZE
        self.tmux(
            "new-session", "-d", "-s", "run", "-x", str(width), "-y", str(height), command
        )  # fmt: skip

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "run")

    def wait_for(self, what: str, shown: Callable[[str], bool]) -> str:
        deadline = time.monotonic() + WAIT_S
        while True:
            screen = self.screen()
            if shown(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the pane shows:\n{screen}")
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], capture_output=True)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path)
    try:
        yield term
    finally:
        term.close()


def status_bar_shown(screen: str) -> bool:
    lines = screen.splitlines()
    return any(line.lstrip().startswith(("▶ running", "⏸ paused")) for line in lines)


def subgoal_shown(screen: str) -> bool:
    lines = screen.splitlines()
    return drawn(screen) and lines[20].lstrip().startswith("▶ ")


def drawn(screen: str) -> bool:
    lines = screen.splitlines()
    return (
        len(lines) == SIZE[1]
        and "▀" in screen
        and status_bar_shown(lines[-2])
        and lines[-1].strip() != ""
    )


def test_run_in_an_80x24_terminal_shows_the_dashboard_and_q_quits(
    terminal: Terminal, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exit_file = isolated / "exit-status"
    # The tmux server takes this process's environment: the package from this checkout, one
    # torch thread (the machine is shared with the rest of the suite).
    checkout = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([checkout, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__THREADS", "1")
    run = [sys.executable, "-m", "pokedreamer", "run", "--no-train", "--steps", "100000"]
    terminal.start(f"{shlex.join(run)}; echo $? > {shlex.quote(str(exit_file))}")
    assert terminal.tmux("display", "-p", "-t", "run", "#{window_width}x#{window_height}") == (
        "80x24\n"
    )

    # Drawn: a frame on the screen, the status bar and, last of all, the footer's keys.
    terminal.wait_for("the dashboard", drawn)
    # Until the planner's first plan lands the line under the screen says "no subgoal"; on a
    # busy machine the dashboard can be drawn before that.
    screen = terminal.wait_for("the first subgoal", subgoal_shown)
    lines = screen.splitlines()
    assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
    assert "live · i: imagined" in lines[0]  # the one screen, saying what i brings
    assert "dialog" in lines[0]
    assert lines[20].lstrip().startswith("▶ ")  # the current subgoal, under the screen
    assert lines[21].rstrip().endswith("%")  # and its progress
    assert "state" in screen and "trace" in screen  # the other panels, in tabs
    assert status_bar_shown(lines[22])
    assert "i live/imagined" in lines[23]  # the footer's keys

    terminal.tmux("send-keys", "-t", "run", "q")
    deadline = time.monotonic() + WAIT_S
    while not exit_file.exists() or not exit_file.read_text().strip():
        if time.monotonic() > deadline:
            raise AssertionError(f"q did not end the run; the pane shows:\n{terminal.screen()}")
        time.sleep(0.2)
    assert exit_file.read_text().strip() == "0"
