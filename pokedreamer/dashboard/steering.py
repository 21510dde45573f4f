"""What the dashboard knows of the loop, and how it commands it: through ``LoopControl`` alone.

The loop's modes are those its last ``StatusEvent`` reported; a key changes them here at once,
so that a second press acts on what the first asked for. A command goes through ``send``, which
refuses (with a line to show) once the loop has stopped or is stopping.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pokedreamer.agent.events import StatusEvent, UsePrompts
from pokedreamer.agent.pace import UNCAPPED, faster, slower, speed_text
from pokedreamer.agent.protocol import LoopControl
from pokedreamer.config import PLANNER_KINDS
from pokedreamer.env.cartridge import ROM_PATH
from pokedreamer.env.rom import load_rom
from pokedreamer.errors import error_line
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.prompts import PromptLibrary

PLANNERS = PLANNER_KINDS
"""The planners the ``p`` key cycles through, in order."""


class LoopFailed(Exception):
    """The agent loop in another process stopped with an error; the message is its one line."""


def error_text(error: BaseException) -> str:
    """An error as one line for the status bar: "RuntimeError: <first line>", or a LoopFailed's
    own line (already worded so in the loop's process)."""
    if isinstance(error, LoopFailed):
        return str(error)
    return error_line(error, named=True)


class Steering:
    """The loop's modes as last reported, the commands sent to it, and the prompt library the
    editor shows."""

    def __init__(self, loop: LoopControl, loop_done: threading.Event) -> None:
        self.loop = loop
        self.loop_done = loop_done
        """Set once the loop's ``run`` has returned or raised."""
        self.quitting = False
        """Quit was sent: the loop is writing its checkpoint."""
        status = loop.status()
        self.paused = status.paused
        self.human = status.human
        self.planner: str = status.planner
        self.planner_asked = self.planner
        """The planner last asked for: when the loop refuses one, the next press moves on."""
        self.speed = status.speed
        self.watch_speed = status.speed or loop.settings.agent.speed or 1
        """The pace ``s`` goes back to from uncapped: the last one asked for."""
        self.training = status.training
        self.run_dir = status.run_dir
        self.buttons: tuple[str, ...] = status.buttons
        """The loop's actions by name; a person's key is sent only when it names one of them."""
        self._prompts: PromptLibrary | None = None
        self._facts: GameFacts | None = None

    def apply(self, event: StatusEvent) -> None:
        """Takes the modes a StatusEvent reports."""
        self.paused, self.planner = event.paused, event.planner
        self.speed, self.training = event.speed, event.training
        self.watch_speed = event.speed or self.watch_speed
        self.run_dir = event.run_dir or self.run_dir
        self.buttons = event.buttons
        self.human = event.human

    @property
    def stopped(self) -> bool:
        """Whether the loop takes no more commands."""
        return self.loop_done.is_set() or self.quitting

    def send(self, command: object) -> str | None:
        """Sends a command to the loop; None when sent, else why not, as one line."""
        if self.stopped:
            return "the agent loop has stopped"
        try:
            self.loop.send(command)
        except (ValueError, RuntimeError) as exc:
            return error_text(exc)
        return None

    # --- speed and subgoals ----------------------------------------------------------------------

    def next_speed(self, change: str) -> int:
        """The speed a key asks for: "faster" and "slower" step along 1×, 2×, 4×, 8×, 16×,
        uncapped; "toggle" flips between uncapped and the pace last asked for."""
        if change == "faster":
            return faster(self.speed)
        if change == "slower":
            return slower(self.speed)
        return self.watch_speed if self.speed == UNCAPPED else UNCAPPED

    def asked_speed(self, speed: int) -> str:
        """Takes ``speed`` as sent; the line for the status bar."""
        self.speed = speed
        if speed != UNCAPPED:
            self.watch_speed = speed
        return f"speed {speed_text(speed)}"

    def facts(self) -> GameFacts:
        """The maps, events and badges of the game the loop plays, which a person's subgoal is
        checked against; UserError when its ROM cannot be read."""
        if self._facts is None:
            rom = load_rom(self.loop.settings.env.rom or str(ROM_PATH))
            self._facts = GameFacts.for_game(rom.game)
        return self._facts

    # --- prompts -------------------------------------------------------------------------------

    def prompt_library(self) -> PromptLibrary:
        """The templates the planner reads, in a library of the dashboard's own: read from the
        loop's folder (or the settings' one, before the loop has a library). Raises UserError
        when that folder cannot be read."""
        if self._prompts is None:
            library = self.loop.prompts
            folder = library.prompts_dir if library is not None else None
            self._prompts = PromptLibrary(folder or self.loop.settings.planner.prompts_dir or "")
        return self._prompts

    def prompts_target(self, library: PromptLibrary) -> Path:
        """Where a saved template goes: the library's folder, else ``prompts`` as in
        ``pokedreamer prompts init``."""
        return library.prompts_dir or Path(self.loop.settings.planner.prompts_dir or "prompts")

    def use_prompts(self, folder: Path) -> str | None:
        """Has the loop's planner read its templates from ``folder``; None when sent."""
        return self.send(UsePrompts(str(folder)))
